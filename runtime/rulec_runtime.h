/* rulec's C runtime: the elementwise helpers, vector math and random
 * generator every generated kernel uses (JIT and exported), over the ABI of
 * rulec_abi.h. C99, no Python, no dependencies beyond libm.
 */
#ifndef RULEC_RUNTIME_H
#define RULEC_RUNTIME_H

#include "rulec_abi.h"
#include "rulec_math.h"
#include "rulec_rng.h"

/* `restrict` in C99; the compilers' spelling in C++, which has none. */
#ifdef __cplusplus
#if defined(__GNUC__) || defined(__clang__) || defined(_MSC_VER)
#define RULEC_RESTRICT __restrict
#else
#define RULEC_RESTRICT
#endif
#else
#define RULEC_RESTRICT restrict
#endif

/* Loops that should vectorize are marked RULEC_OMP_SIMD(clauses): an OpenMP
 * `simd` pragma when OpenMP is on (-fopenmp), or with -fopenmp-simd when
 * RULEC_OPENMP_SIMD is defined; otherwise nothing, so the code builds
 * warning-free with -Wall -Wextra -Werror -pedantic (no unknown pragmas). */
#if defined(_OPENMP) || defined(RULEC_OPENMP_SIMD)
#define RULEC_PRAGMA_(text) _Pragma(#text)
#define RULEC_OMP_SIMD(clauses) RULEC_PRAGMA_(omp simd clauses)
#else
#define RULEC_OMP_SIMD(clauses)
#endif

/* +1, -1, and the argument itself for +-0 and NaN. */
static inline float rulec_signf(float a)
{
    return a > 0.0f ? 1.0f : (a < 0.0f ? -1.0f : a);
}

static inline float rulec_sigmoidf(float a)
{
    return 1.0f / (1.0f + rulec_expf(-a));
}

/* max(a, 0) that keeps NaN and -0. */
static inline float rulec_reluf(float a)
{
    return a < 0.0f ? 0.0f : a;
}


/* `keep ? a : b` and `keep ? a : 0` as bit operations: GCC if-converts a
 * conditional store or reduction term written with `?:` into a branch on
 * AVX2, which stops vectorization; these always vectorize. keep is 0 or 1. */
static inline float rulec_blendf(int keep, float a, float b)
{
    uint32_t x, y;
    const uint32_t mask = (uint32_t)0 - (uint32_t)keep;
    rulec_memcpy(&x, &a, sizeof x);
    rulec_memcpy(&y, &b, sizeof y);
    x = (x & mask) | (y & ~mask);
    rulec_memcpy(&a, &x, sizeof a);
    return a;
}

static inline float rulec_keepf(int keep, float a)
{
    return rulec_blendf(keep, a, 0.0f);
}

/* fmaxf / fminf (NaN-ignoring) and NumPy's maximum / minimum (NaN-propagating),
 * as blends so that loops vectorize whatever their arguments are (GCC
 * if-converted `c ? a : b` with a shared argument into a conditional store). */
static inline float rulec_fmaxf(float a, float b)
{
    return rulec_blendf((a > b) | (b != b), a, b);
}

static inline float rulec_fminf(float a, float b)
{
    return rulec_blendf((a < b) | (b != b), a, b);
}

static inline float rulec_maxnanf(float a, float b)
{
    return rulec_blendf((a != a) | (a > b), a, b);
}

static inline float rulec_minnanf(float a, float b)
{
    return rulec_blendf((a != a) | (a < b), a, b);
}

/* clip(x, lo, hi) = minimum(maximum(x, lo), hi): NaN in any argument gives NaN. */
static inline float rulec_clipf(float x, float lo, float hi)
{
    return rulec_minnanf(rulec_maxnanf(x, lo), hi);
}

/* floorf, branch-free so that loops vectorize on any x86-64 (no SSE4.1):
 * below 2^23 in magnitude, truncate and step down where that went up;
 * larger values, infinities and NaN are their own floor; floor(-0) is -0
 * and floor(0.5) is +0, as in C and NumPy. */
static inline float rulec_floorf(float a)
{
    const int small = rulec_fabsf(a) < 8388608.0f;
    const float t = (float)(int32_t)rulec_keepf(small, a);
    const float f = t - rulec_keepf(t > a, 1.0f);
    return rulec_blendf(small & (a != 0.0f), f, a);
}

/* A float's bits as an int32 that orders like the float (-0 before +0), and
 * back: max/min reductions run on these, which vectorize without the NaN
 * and signed-zero rules that keep GCC from vectorizing float max/min. */
static inline int32_t rulec_orderf(float a)
{
    int32_t bits;
    rulec_memcpy(&bits, &a, sizeof bits);
    return bits ^ ((bits >> 31) & 0x7fffffff);
}

static inline float rulec_unorderf(int32_t key)
{
    const int32_t bits = key ^ ((key >> 31) & 0x7fffffff);
    float a;
    rulec_memcpy(&a, &bits, sizeof a);
    return a;
}

/* Not inlined: one copy per module, called once per slot per checked step. */
RULEC_NOINLINE static int rulec_all_finite(const float *a, int64_t n)
{
    int finite = 1;
    for (int64_t i = 0; i < n; ++i)
        finite &= rulec_isfinite(a[i]) != 0;
    return finite;
}

#endif /* RULEC_RUNTIME_H */
