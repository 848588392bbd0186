/* rulec's C runtime: the elementwise helpers, vector math and random
 * generator every generated kernel uses (JIT and exported), over the ABI of
 * rulec_abi.h. C99, no Python, no dependencies beyond libm.
 */
#ifndef RULEC_RUNTIME_H
#define RULEC_RUNTIME_H

#include "rulec_abi.h"
#include "rulec_math.h"
#include "rulec_rng.h"

#ifdef _OPENMP
#include <omp.h>
#endif

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
 * warning-free with -Wall -Wextra -Werror -pedantic (no unknown pragmas).
 * RULEC_NO_SIMD drops the pragmas (batches of random rules: vectorizing
 * their many short loops is most of their compile time). */
#if (defined(_OPENMP) || defined(RULEC_OPENMP_SIMD)) && !defined(RULEC_NO_SIMD)
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

/* How much work a node is worth beside one half-edge when threads share a
 * step: its loop setup, the sum of vector lanes, node math such as tanhf.
 * Measured on a power-law graph (2 threads, fused and reduce steps of
 * bench/kernels.py): 32 split the time better than 4 or 16, and than a split
 * by node count. Override with -DRULEC_NODE_WORK=n in RULEC_CFLAGS. */
#ifndef RULEC_NODE_WORK
#define RULEC_NODE_WORK 32
#endif

/* Where share `part` of `parts` starts when threads split nodes 0..n_nodes-1
 * into node blocks of `block`: shares start on a block boundary and are
 * balanced by work, counted as one unit per half-edge and RULEC_NODE_WORK per
 * node, so a thread whose nodes have many half-edges gets fewer nodes (a
 * static split by node count leaves the threads of a power-law graph waiting
 * for the one with the hubs). Each node block is computed the same way
 * whichever thread runs it, so results do not depend on the split. A binary
 * search over the blocks: a few dozen loads per thread per step. */
static inline int64_t rulec_share_start(const int64_t *row_ptr, int64_t n_nodes,
                                        int64_t block, int part, int parts)
{
    if (part <= 0)
        return 0;
    if (part >= parts)
        return n_nodes;
    const int64_t target = (row_ptr[n_nodes] + RULEC_NODE_WORK * n_nodes) * part / parts;
    int64_t lo = 0, hi = (n_nodes + block - 1) / block;
    while (lo < hi) {  /* the first block that starts at or past the target */
        const int64_t mid = lo + (hi - lo) / 2;
        const int64_t u = mid * block;
        if (row_ptr[u] + RULEC_NODE_WORK * u < target)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo * block < n_nodes ? lo * block : n_nodes;
}

#if defined(__GNUC__)
#define RULEC_UNUSED __attribute__((__unused__))
#else
#define RULEC_UNUSED
#endif

/* One step's node blocks, as the kernels' `nodes` functions compute them. */
typedef void (*rulec_nodes_fn)(const void *step, int64_t block_start);

/* Run nodes(step, b) for every node block b = 0, block, 2 * block, ... of
 * nodes 0..n_nodes-1. With threads > 1 each thread runs one contiguous share
 * (rulec_share_start); with one thread a plain loop: no OpenMP region, which
 * costs more than a small step. One copy per module, not one per kernel: the
 * threading code compiled once keeps a batch of rules quick to compile, for
 * an indirect call per node block. */
RULEC_NOINLINE RULEC_UNUSED static void rulec_run_blocks(rulec_nodes_fn nodes, const void *step,
                                                         const int64_t *row_ptr, int64_t n_nodes,
                                                         int64_t block, int threads)
{
#ifdef _OPENMP
    if (threads > 1) {
#pragma omp parallel num_threads(threads)
        {
            const int part = omp_get_thread_num(), parts = omp_get_num_threads();
            const int64_t last = rulec_share_start(row_ptr, n_nodes, block, part + 1, parts);
            for (int64_t b = rulec_share_start(row_ptr, n_nodes, block, part, parts); b < last;
                 b += block)
                nodes(step, b);
        }
        return;
    }
#else
    (void)threads; (void)row_ptr;
#endif
    for (int64_t b = 0; b < n_nodes; b += block)
        nodes(step, b);
}

/* A shared slot after a step that wrote it: each edge takes the mean of the
 * proposals of the ends that wrote it (and keeps its value if neither did). */
RULEC_NOINLINE RULEC_UNUSED static void rulec_settle_shared(
    float *slot, const float *proposal, const uint8_t *proposed, const int32_t *edge_half,
    const int32_t *rev, int64_t n_edges, int threads)
{
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads) if(threads > 1)
#else
    (void)threads;
#endif
    for (int64_t e = 0; e < n_edges; ++e) {
        const int32_t ha = edge_half[e], hb = rev[ha];
        const int fa = proposed[ha], fb = proposed[hb];
        if (fa | fb) {
            const float total = (fa ? proposal[ha] : 0.0f) + (fb ? proposal[hb] : 0.0f);
            slot[e] = total / (float)(fa + fb);
        }
    }
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
