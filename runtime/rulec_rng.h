/* rulec's counter-based random generator (docs/rng.md), shared by the JIT
 * kernels and exported C. A draw is a pure function of
 * (seed, block, ordinal, time, element):
 *
 *   counter = (element, time mod 2^32, ordinal, crc32(block label))
 *   key     = (seed mod 2^32, seed >> 32)
 *   r       = Philox4x32-10(counter, key)
 *   uniform = (r[0] >> 8) * 2^-24                       exact, in [0, 1)
 *   gauss   = sqrt(-2 ln u1) * cos(2 pi u2)             u1 = ((r[0] >> 8) + 1) * 2^-24,
 *                                                       u2 = (r[1] >> 8) * 2^-24
 *
 * uniform() is bit-identical to rulec.rng in Python; gauss() agrees within
 * float tolerance (the reference computes it in double and rounds).
 * Header-only, C99, no dependencies beyond <stdint.h> and libm (rulec_math.h).
 * The CUDA kernels include it too (through rulec_cuda.h, which makes RULEC_FN
 * a device function and supplies the types and math), so draws on a GPU are
 * the same bits.
 */
#ifndef RULEC_RNG_H
#define RULEC_RNG_H

#ifndef RULEC_FN
#define RULEC_FN static inline
#endif

#ifndef __CUDACC_RTC__
#include <stdint.h>
#endif

#include "rulec_math.h"

typedef struct { uint32_t v[4]; } rulec_philox_ctr;

/* One Philox round, as a statement on c (a rulec_philox_ctr) with key k0, k1. */
#define RULEC_PHILOX_ROUND(c, k0, k1)                                 \
    do {                                                              \
        uint64_t p0 = (uint64_t)0xD2511F53u * (c).v[0];               \
        uint64_t p1 = (uint64_t)0xCD9E8D57u * (c).v[2];               \
        rulec_philox_ctr next_;                                       \
        next_.v[0] = (uint32_t)(p1 >> 32) ^ (c).v[1] ^ (k0);          \
        next_.v[1] = (uint32_t)p1;                                    \
        next_.v[2] = (uint32_t)(p0 >> 32) ^ (c).v[3] ^ (k1);          \
        next_.v[3] = (uint32_t)p0;                                    \
        (c) = next_;                                                  \
    } while (0)

/* Ten rounds, the key bumped between rounds; no branches, so loops that draw
 * numbers vectorize. */
RULEC_FN rulec_philox_ctr rulec_philox4x32_10(rulec_philox_ctr c, uint32_t k0, uint32_t k1)
{
    RULEC_PHILOX_ROUND(c, k0, k1);
    for (int round = 1; round < 10; ++round) {
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
        RULEC_PHILOX_ROUND(c, k0, k1);
    }
    return c;
}

RULEC_FN rulec_philox_ctr rulec_draw_bits(uint64_t seed, uint32_t block_key,
                                               uint32_t ordinal, uint64_t time,
                                               uint32_t element)
{
    rulec_philox_ctr c = {{element, (uint32_t)time, ordinal, block_key}};
    return rulec_philox4x32_10(c, (uint32_t)seed, (uint32_t)(seed >> 32));
}

RULEC_FN float rulec_uniform(uint64_t seed, uint32_t block_key, uint32_t ordinal,
                                  uint64_t time, uint32_t element)
{
    rulec_philox_ctr r = rulec_draw_bits(seed, block_key, ordinal, time, element);
    return (float)(r.v[0] >> 8) * 0x1p-24f;
}

/* gauss() from the first two words of its draw's bits: the VM makes the
 * bits of a run of draws in one vectorized loop, then this in another. */
RULEC_FN float rulec_gauss_of_bits(uint32_t r0, uint32_t r1)
{
    double u1 = ((double)(r0 >> 8) + 1.0) * 0x1p-24;
    double u2 = (double)(r1 >> 8) * 0x1p-24;
    return (float)(rulec_sqrt(-2.0 * rulec_log(u1)) * rulec_cos(6.283185307179586 * u2));
}

RULEC_FN float rulec_gauss(uint64_t seed, uint32_t block_key, uint32_t ordinal,
                                uint64_t time, uint32_t element)
{
    rulec_philox_ctr r = rulec_draw_bits(seed, block_key, ordinal, time, element);
    return rulec_gauss_of_bits(r.v[0], r.v[1]);
}

#endif /* RULEC_RNG_H */
