/* rulec's C ABI: the graph and state structs every kernel takes (JIT and
 * exported). C99 and C++; nothing but <stdint.h>. See docs/embedding.md.
 *
 * Graph layout: nodes 0..N-1, each undirected edge {u, v}
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
#ifndef RULEC_ABI_H
#define RULEC_ABI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this layout and calling convention; it changes only when
 * rulec_graph, rulec_state or the kernel signature change. */
#define RULEC_ABI_VERSION 1

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

#ifdef __cplusplus
}
#endif

#endif /* RULEC_ABI_H */
