/* rulec's C runtime: the graph and state structs of the C ABI, and the
 * elementwise helpers every kernel uses. Included by every generated kernel
 * (JIT and exported); C99, no Python, no dependencies beyond libm.
 *
 * Graph layout (docs/c-abi.md): nodes 0..N-1, each undirected edge {u, v}
 * seen as two half-edges numbered in CSR order (by owner, then neighbour).
 *
 *   row_ptr[N+1]   node u owns half-edges row_ptr[u] .. row_ptr[u+1]-1
 *   nbr[2M]        the neighbour across each half-edge
 *   rev[2M]        the opposite half-edge (v->u for u->v)
 *   eid[2M]        the undirected edge of each half-edge (edges in (min, max) order)
 *   edge_half[M]   the min->max half-edge of each undirected edge
 *   degree[N]      each node's degree, as float
 *
 * State layout: one float array per slot, in the rule's declaration order:
 * node slots [N], private edge slots [2M] (half-edge order), shared edge
 * slots [M] (edge order).
 */
#ifndef RULEC_RUNTIME_H
#define RULEC_RUNTIME_H

#include <stdint.h>

typedef struct rulec_graph {
    int64_t n_nodes;
    int64_t n_edges;
    const int64_t *row_ptr;
    const int32_t *nbr;
    const int32_t *rev;
    const int32_t *eid;
    const int32_t *edge_half;
    const float *degree;
} rulec_graph;

typedef struct rulec_state {
    float *const *node;
    float *const *edge;
    float *const *shared;
    uint64_t time;
    uint64_t seed;
} rulec_state;

/* A kernel runs one block `steps` times and returns the number of steps it
 * ran: fewer when check_finite is set and a step left NaN or inf in the
 * state (the state is then the one after that step), -1 when out of memory. */
typedef int64_t (*rulec_kernel)(const rulec_graph *graph, rulec_state *state,
                                const float *params, int64_t steps, int threads,
                                int check_finite);

/* A JIT module's table of kernels, looked up by name from Python. */
typedef struct rulec_entry {
    const char *name;
    rulec_kernel kernel;
} rulec_entry;

#include "rulec_math.h"
#include "rulec_rng.h"

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

/* fmaxf / fminf (NaN-ignoring), written so that loops vectorize. */
static inline float rulec_fmaxf(float a, float b)
{
    return (a > b || b != b) ? a : b;
}

static inline float rulec_fminf(float a, float b)
{
    return (a < b || b != b) ? a : b;
}

/* NumPy's maximum / minimum: NaN-propagating. */
static inline float rulec_maxnanf(float a, float b)
{
    return (a != a || a > b) ? a : b;
}

static inline float rulec_minnanf(float a, float b)
{
    return (a != a || a < b) ? a : b;
}

/* clip(x, lo, hi) = minimum(maximum(x, lo), hi): NaN in any argument gives NaN. */
static inline float rulec_clipf(float x, float lo, float hi)
{
    return rulec_minnanf(rulec_maxnanf(x, lo), hi);
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
