/* rulec's elementwise helpers: the C forms of the language's ops that are
 * more than one libm call (sign, sigmoid, relu, min/max with NumPy's NaN
 * rules, clip, floor) and the loop IR's blends and order keys. Part of
 * rulec's C runtime, and shared with the CUDA kernels: every function is
 * declared RULEC_FN (static inline in C; rulec_cuda.h makes it a device
 * function), and float bits go through rulec_bits_of / rulec_float_of
 * (memcpy here; __float_as_uint on the device).
 *
 * The includer provides <stdint.h>'s types and the rulec_* math names
 * (rulec_math.h, or rulec_cuda.h on the device).
 */
#ifndef RULEC_ELEMENTWISE_H
#define RULEC_ELEMENTWISE_H

#ifndef RULEC_FN
#define RULEC_FN static inline
#endif

#ifndef RULEC_HAVE_BITS
RULEC_FN uint32_t rulec_bits_of(float a)
{
    uint32_t bits;
    rulec_memcpy(&bits, &a, sizeof bits);
    return bits;
}

RULEC_FN float rulec_float_of(uint32_t bits)
{
    float a;
    rulec_memcpy(&a, &bits, sizeof a);
    return a;
}
#endif

/* +1, -1, and the argument itself for +-0 and NaN. */
RULEC_FN float rulec_signf(float a)
{
    return a > 0.0f ? 1.0f : (a < 0.0f ? -1.0f : a);
}

RULEC_FN float rulec_sigmoidf(float a)
{
    return 1.0f / (1.0f + rulec_expf(-a));
}

/* max(a, 0) that keeps NaN and -0. */
RULEC_FN float rulec_reluf(float a)
{
    return a < 0.0f ? 0.0f : a;
}


/* `keep ? a : b` and `keep ? a : 0` as bit operations: GCC if-converts a
 * conditional store or reduction term written with `?:` into a branch on
 * AVX2, which stops vectorization; these always vectorize. keep is 0 or 1. */
RULEC_FN float rulec_blendf(int keep, float a, float b)
{
    const uint32_t mask = (uint32_t)0 - (uint32_t)keep;
    return rulec_float_of((rulec_bits_of(a) & mask) | (rulec_bits_of(b) & ~mask));
}

RULEC_FN float rulec_keepf(int keep, float a)
{
    return rulec_blendf(keep, a, 0.0f);
}

/* fmaxf / fminf (NaN-ignoring) and NumPy's maximum / minimum (NaN-propagating),
 * as blends so that loops vectorize whatever their arguments are (GCC
 * if-converted `c ? a : b` with a shared argument into a conditional store). */
RULEC_FN float rulec_fmaxf(float a, float b)
{
    return rulec_blendf((a > b) | (b != b), a, b);
}

RULEC_FN float rulec_fminf(float a, float b)
{
    return rulec_blendf((a < b) | (b != b), a, b);
}

RULEC_FN float rulec_maxnanf(float a, float b)
{
    return rulec_blendf((a != a) | (a > b), a, b);
}

RULEC_FN float rulec_minnanf(float a, float b)
{
    return rulec_blendf((a != a) | (a < b), a, b);
}

/* clip(x, lo, hi) = minimum(maximum(x, lo), hi): NaN in any argument gives NaN. */
RULEC_FN float rulec_clipf(float x, float lo, float hi)
{
    return rulec_minnanf(rulec_maxnanf(x, lo), hi);
}

/* floorf, branch-free so that loops vectorize on any x86-64 (no SSE4.1):
 * below 2^23 in magnitude, truncate and step down where that went up;
 * larger values, infinities and NaN are their own floor; floor(-0) is -0
 * and floor(0.5) is +0, as in C and NumPy. */
RULEC_FN float rulec_floorf(float a)
{
    const int small = rulec_fabsf(a) < 8388608.0f;
    const float t = (float)(int32_t)rulec_keepf(small, a);
    const float f = t - rulec_keepf(t > a, 1.0f);
    return rulec_blendf(small & (a != 0.0f), f, a);
}

/* A float's bits as an int32 that orders like the float (-0 before +0), and
 * back: max/min reductions run on these, which vectorize without the NaN
 * and signed-zero rules that keep GCC from vectorizing float max/min. */
RULEC_FN int32_t rulec_orderf(float a)
{
    const int32_t bits = (int32_t)rulec_bits_of(a);
    return bits ^ ((bits >> 31) & 0x7fffffff);
}

RULEC_FN float rulec_unorderf(int32_t key)
{
    return rulec_float_of((uint32_t)(key ^ ((key >> 31) & 0x7fffffff)));
}

#endif /* RULEC_ELEMENTWISE_H */
