/* rulec's CUDA runtime: what the generated CUDA kernels (templates/cuda.cu.j2)
 * include, in two forms from one text (docs/cuda.md, "How it is tested"):
 *
 *   on a GPU (NVRTC or nvcc: __CUDACC__)  device functions; a node's group of
 *       `lanes` threads (a power of two up to a warp) shares its half-edges,
 *       and a group reduction is a butterfly of warp shuffles;
 *   on the CPU (gcc, as C)                the same kernel text runs as plain
 *       loops: the grid is a loop over groups, a group's lanes a loop over
 *       lanes, and a shuffle a loop over the lanes' partial values, in the
 *       butterfly's order, so a sum adds the same numbers in the same order.
 *
 * The macros below are the whole difference between the two; the kernels'
 * bodies are the same text. Node-level code runs in every lane of a group
 * on the GPU (its values are the same in every lane: they depend on the node
 * and on group reductions, which end with one value in every lane) and once
 * on the CPU.
 *
 *   RULEC_KERNEL                  a kernel (extern "C" __global__ void / void)
 *   RULEC_FOR_GROUPS(g, n)        the body runs for groups g = 0 .. n-1
 *   RULEC_FOR_LANES(lane)         the body runs for this thread's lane / every lane
 *   RULEC_LANE_VAR(type, name)    one value per lane; RULEC_LANE_AT(name) this lane's
 *   rulec_group_sumf(v, lanes)    the group's sum of v, butterfly order
 *   rulec_group_maxi / _mini      the group's max / min of int32 v
 *   RULEC_LEAD                    true in one lane of the group (stores node values)
 *   RULEC_GROUP_SYNC(lanes)       the group's lanes meet (before node stores)
 *   RULEC_FOR_ELEMENTS(i, n)      a grid-stride loop over 0 .. n-1
 *   RULEC_STOP_AT(flag, value)    sets *flag to value if it is 0 (atomically on a GPU)
 */
#ifndef RULEC_CUDA_H
#define RULEC_CUDA_H

/* The most lanes a node's group has: one warp. */
#define RULEC_MAX_LANES 32

#ifdef __CUDACC__
/* ------------------------------------------------------------ the GPU */

#ifdef __CUDACC_RTC__
/* NVRTC has no system headers */
typedef signed char int8_t;
typedef unsigned char uint8_t;
typedef int int32_t;
typedef unsigned int uint32_t;
typedef long long int64_t;
typedef unsigned long long uint64_t;
#else
#include <stdint.h>
#endif

#define RULEC_FN static __device__ __forceinline__
#define RULEC_KERNEL extern "C" __global__ void
#define RULEC_RESTRICT __restrict__

/* The device's math library in place of rulec_math.h's libm and libmvec
 * (which is for the host): rulec_rng.h and rulec_elementwise.h use these. */
#define RULEC_MATH_H 1
#define rulec_fabsf fabsf
#define rulec_sqrtf sqrtf
#define rulec_sqrt sqrt
#define rulec_isfinite isfinite
#define rulec_expf expf
#define rulec_logf logf
#define rulec_sinf sinf
#define rulec_cosf cosf
#define rulec_tanhf tanhf
#define rulec_atanf atanf
#define rulec_powf powf
#define rulec_atan2f atan2f
#define rulec_log log
#define rulec_cos cos
#define RULEC_INFINITY __int_as_float(0x7f800000)
#define RULEC_NAN __int_as_float(0x7fc00000)

#define RULEC_HAVE_BITS 1
RULEC_FN uint32_t rulec_bits_of(float a) { return __float_as_uint(a); }
RULEC_FN float rulec_float_of(uint32_t bits) { return __uint_as_float(bits); }

#include "rulec_rng.h"
#include "rulec_elementwise.h"

/* A node's group: `lanes` consecutive threads of a warp (lanes divides 32,
 * and blocks are whole warps, so a group never straddles two warps). */
#define RULEC_FOR_GROUPS(g, n)                                                        \
    const int rulec_lane_ = (int)(threadIdx.x % (unsigned)lanes);                     \
    const int64_t g = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / lanes;       \
    if (g < (n))
#define RULEC_FOR_LANES(lane) \
    for (int lane = rulec_lane_, rulec_once_ = 1; rulec_once_; rulec_once_ = 0)
#define RULEC_LANE_VAR(type, name) type name
#define RULEC_LANE_AT(name) name
#define RULEC_LEAD (rulec_lane_ == 0)
#define RULEC_GROUP_SYNC(lanes) __syncwarp(rulec_group_mask(lanes))
#define RULEC_FOR_ELEMENTS(i, n)                                                      \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);         \
         i += (int64_t)gridDim.x * blockDim.x)
#define RULEC_STOP_AT(flag, value) atomicCAS((flag), 0, (value))

/* The threads of this thread's group, as a warp mask. */
RULEC_FN unsigned rulec_group_mask(int lanes)
{
    if (lanes >= 32)
        return 0xffffffffu;
    const unsigned first = (threadIdx.x & 31u) & ~(unsigned)(lanes - 1);
    return ((1u << lanes) - 1u) << first;
}

/* Butterfly reductions: after log2(lanes) rounds every lane holds the same
 * value (lane i adds v[i] + v[i ^ offset], lane i ^ offset the same two
 * numbers, and float addition is commutative). */
RULEC_FN float rulec_group_sumf(float v, int lanes)
{
    const unsigned mask = rulec_group_mask(lanes);
    for (int offset = lanes >> 1; offset > 0; offset >>= 1)
        v = v + __shfl_xor_sync(mask, v, offset, lanes);
    return v;
}

RULEC_FN int32_t rulec_group_maxi(int32_t v, int lanes)
{
    const unsigned mask = rulec_group_mask(lanes);
    for (int offset = lanes >> 1; offset > 0; offset >>= 1) {
        const int32_t other = __shfl_xor_sync(mask, v, offset, lanes);
        v = other > v ? other : v;
    }
    return v;
}

RULEC_FN int32_t rulec_group_mini(int32_t v, int lanes)
{
    const unsigned mask = rulec_group_mask(lanes);
    for (int offset = lanes >> 1; offset > 0; offset >>= 1) {
        const int32_t other = __shfl_xor_sync(mask, v, offset, lanes);
        v = other < v ? other : v;
    }
    return v;
}

#else
/* ------------------------------------------------- the CPU (verification) */

#include "rulec_runtime.h"

#define RULEC_KERNEL void
#define RULEC_FOR_GROUPS(g, n) for (int64_t g = 0; g < (n); ++g)
#define RULEC_FOR_LANES(lane) for (int lane = 0; lane < lanes; ++lane)
#define RULEC_LANE_VAR(type, name) type name[RULEC_MAX_LANES]
#define RULEC_LANE_AT(name) name[lane]
#define RULEC_LEAD 1
#define RULEC_GROUP_SYNC(lanes) ((void)(lanes))
#define RULEC_FOR_ELEMENTS(i, n) for (int64_t i = 0; i < (n); ++i)
#define RULEC_STOP_AT(flag, value) (*(flag) == 0 ? (void)(*(flag) = (value)) : (void)0)

/* The GPU's butterfly, round by round, over the lanes' values. */
static inline float rulec_group_sumf(const float *values, int lanes)
{
    float v[RULEC_MAX_LANES] = {0.0f}, w[RULEC_MAX_LANES] = {0.0f};
    for (int lane = 0; lane < lanes; ++lane)
        v[lane] = values[lane];
    for (int offset = lanes >> 1; offset > 0; offset >>= 1) {
        for (int lane = 0; lane < lanes; ++lane)
            w[lane] = v[lane] + v[lane ^ offset];
        for (int lane = 0; lane < lanes; ++lane)
            v[lane] = w[lane];
    }
    return v[0];
}

static inline int32_t rulec_group_maxi(const int32_t *values, int lanes)
{
    int32_t best = values[0];
    for (int lane = 1; lane < lanes; ++lane)
        best = values[lane] > best ? values[lane] : best;
    return best;
}

static inline int32_t rulec_group_mini(const int32_t *values, int lanes)
{
    int32_t best = values[0];
    for (int lane = 1; lane < lanes; ++lane)
        best = values[lane] < best ? values[lane] : best;
    return best;
}

#endif

/* ----------------------------------------- kernels every module shares */

/* A shared slot after a step that wrote it: each edge takes the mean of the
 * proposals of the ends that wrote it (rulec_settle_shared's rule), in every
 * copy of a batch (copy c's edges at c * n_edges, its half-edges' proposals
 * at c * 2 * n_edges) that check_finite has not stopped. */
RULEC_KERNEL rulec_cuda_settle(int64_t n_total, int64_t n_edges, float *RULEC_RESTRICT slot,
                               const float *RULEC_RESTRICT proposal,
                               const uint8_t *RULEC_RESTRICT proposed,
                               const int32_t *RULEC_RESTRICT edge_half,
                               const int32_t *RULEC_RESTRICT rev, const int32_t *stops)
{
    RULEC_FOR_ELEMENTS(i, n_total) {
        const int64_t copy = i / n_edges, e = i - copy * n_edges;
        if (stops[copy])
            continue;
        const int64_t base = copy * 2 * n_edges;
        const int32_t ha = edge_half[e], hb = rev[ha];
        const int fa = proposed[base + ha], fb = proposed[base + hb];
        if (fa | fb) {
            const float total = (fa ? proposal[base + ha] : 0.0f)
                              + (fb ? proposal[base + hb] : 0.0f);
            slot[i] = total / (float)(fa + fb);
        }
    }
}

/* After step `step` (counted from 1): stops[c] = step for each copy c (of
 * per_copy values each) with a NaN or infinite value, unless an earlier
 * step stopped it. */
RULEC_KERNEL rulec_cuda_finite(int64_t n_total, int64_t per_copy,
                               const float *RULEC_RESTRICT values, int32_t *stops,
                               int32_t step)
{
    RULEC_FOR_ELEMENTS(i, n_total) {
        if (!rulec_isfinite(values[i]))
            RULEC_STOP_AT(&stops[i / per_copy], step);
    }
}

#endif /* RULEC_CUDA_H */
