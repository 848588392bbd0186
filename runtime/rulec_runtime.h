/* rulec's C runtime: the elementwise helpers, vector math and random
 * generator every generated kernel uses (JIT and exported), over the ABI of
 * rulec_abi.h. C99, no Python, no dependencies beyond libm.
 */
#ifndef RULEC_RUNTIME_H
#define RULEC_RUNTIME_H

#include "rulec_abi.h"
#include "rulec_math.h"
#include "rulec_rng.h"
#include "rulec_elementwise.h"

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

/* Not inlined: one copy per module, called once per slot per checked step.
 * A float is NaN or inf when its exponent bits are all ones, so the largest
 * magnitude's bits, compared as an unsigned integer, tell whether any is:
 * one integer max over the array, a vectorized loop. */
RULEC_NOINLINE RULEC_UNUSED static int rulec_all_finite(const float *a, int64_t n)
{
    uint32_t most = 0;
    RULEC_OMP_SIMD(reduction(max:most))
    for (int64_t i = 0; i < n; ++i) {
        uint32_t bits;
        rulec_memcpy(&bits, a + i, sizeof bits);
        bits &= 0x7fffffffu;
        most = bits > most ? bits : most;
    }
    return most < 0x7f800000u;
}

#endif /* RULEC_RUNTIME_H */
