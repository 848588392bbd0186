/* The benchmark's baselines in plain C, written as a careful C programmer
 * would: one loop per node over its half-edges (reduction and update fused,
 * `omp simd` so the sum may be vectorized), tanhf per node, x double-buffered;
 * and the STREAM triad. Built by bench/kernels.py with rulec's compiler and
 * flags. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* After the steps: the result into the caller's x, the spare buffer freed. */
static void finish(float *x, float *cur, float *next, int64_t n)
{
    if (cur != x)
        memcpy(x, cur, sizeof(float) * (size_t)n);
    free(cur != x ? cur : next);
}

/* Node u's part of the fused step: its sum, and its half-edges' w updated. */
static inline float fused_node(int64_t u, const int64_t *restrict row_ptr,
                               const int32_t *restrict nbr, const float *restrict cur,
                               float *restrict w, float lr, float decay)
{
    const int64_t h0 = row_ptr[u], h1 = row_ptr[u + 1];
    const float xu = cur[u];
    float acc = 0.0f;
#pragma omp simd reduction(+:acc)
    for (int64_t h = h0; h < h1; ++h) {
        const float wh = w[h], xv = cur[nbr[h]];
        acc += wh * xv;
        w[h] = wh + lr * (xu * xv - decay * wh);
    }
    return acc;
}

/* Node u's sum of w * nbr.x. */
static inline float reduce_node(int64_t u, const int64_t *restrict row_ptr,
                                const int32_t *restrict nbr, const float *restrict cur,
                                const float *restrict w)
{
    float acc = 0.0f;
#pragma omp simd reduction(+:acc)
    for (int64_t h = row_ptr[u]; h < row_ptr[u + 1]; ++h)
        acc += w[h] * cur[nbr[h]];
    return acc;
}

/* x = tanh(sum(w * nbr.x)); w += lr * (x * nbr.x - decay * w), where x on the
 * right is the value before the step (double-buffered). */
void hand_fused(int64_t n, const int64_t *restrict row_ptr, const int32_t *restrict nbr,
                float *x, float *restrict w, float lr, float decay, int64_t steps)
{
    float *spare = malloc(sizeof(float) * (size_t)n + 1);
    float *cur = x, *next = spare;
    for (int64_t step = 0; step < steps; ++step) {
        for (int64_t u = 0; u < n; ++u)
            next[u] = tanhf(fused_node(u, row_ptr, nbr, cur, w, lr, decay));
        float *t = cur;
        cur = next;
        next = t;
    }
    finish(x, cur, next, n);
}

/* x = tanh(sum(w * nbr.x)) */
void hand_reduce(int64_t n, const int64_t *restrict row_ptr, const int32_t *restrict nbr,
                 float *x, const float *restrict w, int64_t steps)
{
    float *spare = malloc(sizeof(float) * (size_t)n + 1);
    float *cur = x, *next = spare;
    for (int64_t step = 0; step < steps; ++step) {
        for (int64_t u = 0; u < n; ++u)
            next[u] = tanhf(reduce_node(u, row_ptr, nbr, cur, w));
        float *t = cur;
        cur = next;
        next = t;
    }
    finish(x, cur, next, n);
}

/* The long-loop designs (bench/degrees.py): a block of LONG_NODES nodes at a
 * time, whose half-edges are contiguous in CSR. Edge work runs as one long
 * loop over the block's half-edges into a tile (in L1), and the sums as a
 * segmented reduction over the tile: no per-node loop setup, lane sum or
 * remainder in the loop that gathers. A block with more half-edges than the
 * tile holds goes node by node, as above. */
#define LONG_NODES 64
#define LONG_TILE 4096

/* The segmented reduction: next[u] = tanh of the sum of u's products in p. */
static inline void segmented_tanh(int64_t b0, int64_t b1, const int64_t *restrict row_ptr,
                                  const float *restrict p, float *restrict next)
{
    for (int64_t u = b0; u < b1; ++u) {
        float acc = 0.0f;
        for (int64_t h = row_ptr[u]; h < row_ptr[u + 1]; ++h)
            acc += p[h];
        next[u] = tanhf(acc);
    }
}

void hand_reduce_long(int64_t n, const int64_t *restrict row_ptr, const int32_t *restrict nbr,
                      float *x, const float *restrict w, int64_t steps)
{
    float *spare = malloc(sizeof(float) * (size_t)n + 1);
    float *cur = x, *next = spare;
    float tile[LONG_TILE];
    for (int64_t step = 0; step < steps; ++step) {
        for (int64_t b0 = 0; b0 < n; b0 += LONG_NODES) {
            const int64_t b1 = b0 + LONG_NODES < n ? b0 + LONG_NODES : n;
            const int64_t h0 = row_ptr[b0], h1 = row_ptr[b1];
            if (h1 - h0 <= LONG_TILE) {
                float *restrict p = tile - h0;
#pragma omp simd
                for (int64_t h = h0; h < h1; ++h)
                    p[h] = w[h] * cur[nbr[h]];
                segmented_tanh(b0, b1, row_ptr, p, next);
            } else {
                for (int64_t u = b0; u < b1; ++u)
                    next[u] = tanhf(reduce_node(u, row_ptr, nbr, cur, w));
            }
        }
        float *t = cur;
        cur = next;
        next = t;
    }
    finish(x, cur, next, n);
}

void hand_fused_long(int64_t n, const int64_t *restrict row_ptr, const int32_t *restrict nbr,
                     float *x, float *restrict w, float lr, float decay, int64_t steps)
{
    float *spare = malloc(sizeof(float) * (size_t)n + 1);
    float *cur = x, *next = spare;
    float tile[LONG_TILE], own[LONG_TILE];
    for (int64_t step = 0; step < steps; ++step) {
        for (int64_t b0 = 0; b0 < n; b0 += LONG_NODES) {
            const int64_t b1 = b0 + LONG_NODES < n ? b0 + LONG_NODES : n;
            const int64_t h0 = row_ptr[b0], h1 = row_ptr[b1];
            if (h1 - h0 <= LONG_TILE) {
                float *restrict p = tile - h0, *restrict xo = own - h0;
                for (int64_t u = b0; u < b1; ++u)  /* each half-edge's owner value */
                    for (int64_t h = row_ptr[u]; h < row_ptr[u + 1]; ++h)
                        xo[h] = cur[u];
#pragma omp simd
                for (int64_t h = h0; h < h1; ++h) {
                    const float wh = w[h], xv = cur[nbr[h]];
                    p[h] = wh * xv;
                    w[h] = wh + lr * (xo[h] * xv - decay * wh);
                }
                segmented_tanh(b0, b1, row_ptr, p, next);
            } else {
                for (int64_t u = b0; u < b1; ++u)
                    next[u] = tanhf(fused_node(u, row_ptr, nbr, cur, w, lr, decay));
            }
        }
        float *t = cur;
        cur = next;
        next = t;
    }
    finish(x, cur, next, n);
}

/* STREAM triad: a = b + s * c, `times` times. */
void triad(int64_t n, float *restrict a, const float *restrict b, const float *restrict c,
           float s, int64_t times)
{
    for (int64_t t = 0; t < times; ++t) {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i)
            a[i] = b[i] + s * c[i];
        __asm__ volatile("" : : "r"(a) : "memory"); /* keep every pass */
    }
}

/* The triad on `threads` threads, each on a static share of the arrays (as
 * STREAM measures it). The arrays should have been first touched the same
 * way (triad_threads once before timing). */
void triad_threads(int64_t n, float *restrict a, const float *restrict b,
                   const float *restrict c, float s, int64_t times, int threads)
{
    for (int64_t t = 0; t < times; ++t) {
#pragma omp parallel for simd schedule(static) num_threads(threads)
        for (int64_t i = 0; i < n; ++i)
            a[i] = b[i] + s * c[i];
        __asm__ volatile("" : : "r"(a) : "memory");
    }
}

/* `calls` calls of a rulec kernel with steps=1, from C: the cost of a call
 * beside the cost of a step (one call with steps=calls). */
typedef int64_t (*kernel_fn)(const void *graph, void *state, const float *params,
                             int64_t steps, int threads, int check_finite);

void call_kernel(void *kernel, const void *graph, void *state, const float *params,
                 int64_t calls, int64_t steps, int threads)
{
    kernel_fn fn = (kernel_fn)kernel;
    for (int64_t i = 0; i < calls; ++i)
        fn(graph, state, params, steps, threads, 0);
}
