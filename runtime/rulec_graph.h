/* Build a rulec_graph from an undirected edge list, in C or C++, with the
 * orders of the spec (docs/embedding.md): half-edges by (owner, neighbour),
 * undirected edges by (min, max). Header-only; every function is static.
 *
 *     rulec_graph_data data;
 *     char error[200];
 *     if (rulec_graph_from_edges(n_nodes, n_edges, pairs, &data, error, sizeof error) != 0)
 *         fprintf(stderr, "%s\n", error);
 *     ... use &data.graph ...
 *     rulec_graph_free(&data);
 *
 * `pairs` holds 2 * n_edges node ids: u0, v0, u1, v1, ... in any order and
 * direction. Self-loops, duplicate edges and ids outside 0..n_nodes-1 are
 * errors (the message names the first one).
 */
#ifndef RULEC_GRAPH_H
#define RULEC_GRAPH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "rulec_abi.h"

/* A graph and the arrays it owns. */
typedef struct rulec_graph_data {
    rulec_graph graph;
    int64_t *row_ptr;
    int32_t *nbr, *rev, *eid, *edge_half;
    float *degree;
} rulec_graph_data;

static int rulec_compare_keys_(const void *a, const void *b)
{
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void rulec_graph_free(rulec_graph_data *data)
{
    free(data->row_ptr);
    free(data->nbr);
    free(data->rev);
    free(data->eid);
    free(data->edge_half);
    free(data->degree);
    data->row_ptr = NULL;
    data->nbr = data->rev = data->eid = data->edge_half = NULL;
    data->degree = NULL;
}

/* Returns 0, or -1 with a message in `error` (and nothing to free). */
static int rulec_graph_from_edges(int64_t n_nodes, int64_t n_edges, const int32_t *pairs,
                                  rulec_graph_data *data, char *error, size_t error_size)
{
    int64_t e, u;
    uint64_t *keys;
    int64_t *next;
    const size_t m = (size_t)n_edges, h = 2 * (size_t)n_edges, n = (size_t)n_nodes;
    data->row_ptr = NULL;
    data->nbr = data->rev = data->eid = data->edge_half = NULL;
    data->degree = NULL;
    if (n_nodes < 0 || n_edges < 0 || n_nodes > INT32_MAX) {
        snprintf(error, error_size, "bad sizes: %lld nodes, %lld edges",
                 (long long)n_nodes, (long long)n_edges);
        return -1;
    }
    keys = (uint64_t *)malloc(sizeof(uint64_t) * m + 1);
    if (!keys) {
        snprintf(error, error_size, "out of memory");
        return -1;
    }
    for (e = 0; e < n_edges; ++e) {
        int64_t a = pairs[2 * e], b = pairs[2 * e + 1];
        if (a < 0 || b < 0 || a >= n_nodes || b >= n_nodes || a == b) {
            snprintf(error, error_size, "edge %lld (%lld, %lld): %s", (long long)e,
                     (long long)a, (long long)b,
                     a == b ? "a self-loop" : "a node id outside 0..n_nodes-1");
            free(keys);
            return -1;
        }
        if (a > b) {
            int64_t t = a;
            a = b;
            b = t;
        }
        keys[e] = (uint64_t)a * (uint64_t)n_nodes + (uint64_t)b;
    }
    qsort(keys, m, sizeof(uint64_t), rulec_compare_keys_);
    for (e = 1; e < n_edges; ++e) {
        if (keys[e] == keys[e - 1]) {
            snprintf(error, error_size, "edge (%lld, %lld) is given twice",
                     (long long)(keys[e] / (uint64_t)n_nodes),
                     (long long)(keys[e] % (uint64_t)n_nodes));
            free(keys);
            return -1;
        }
    }
    data->row_ptr = (int64_t *)calloc(n + 1, sizeof(int64_t));
    data->nbr = (int32_t *)malloc(sizeof(int32_t) * h + 1);
    data->rev = (int32_t *)malloc(sizeof(int32_t) * h + 1);
    data->eid = (int32_t *)malloc(sizeof(int32_t) * h + 1);
    data->edge_half = (int32_t *)malloc(sizeof(int32_t) * m + 1);
    data->degree = (float *)malloc(sizeof(float) * n + 1);
    next = (int64_t *)malloc(sizeof(int64_t) * n + 1);
    if (!data->row_ptr || !data->nbr || !data->rev || !data->eid || !data->edge_half
        || !data->degree || !next) {
        snprintf(error, error_size, "out of memory");
        rulec_graph_free(data);
        free(keys);
        free(next);
        return -1;
    }
    for (e = 0; e < n_edges; ++e) {
        data->row_ptr[keys[e] / (uint64_t)n_nodes + 1] += 1;
        data->row_ptr[keys[e] % (uint64_t)n_nodes + 1] += 1;
    }
    for (u = 0; u < n_nodes; ++u) {
        data->degree[u] = (float)data->row_ptr[u + 1];
        data->row_ptr[u + 1] += data->row_ptr[u];
        next[u] = data->row_ptr[u];
    }
    /* Edges in (min, max) order fill each node's half-edges in neighbour
     * order: a node's smaller neighbours come from edges met earlier. */
    for (e = 0; e < n_edges; ++e) {
        const int64_t a = (int64_t)(keys[e] / (uint64_t)n_nodes);
        const int64_t b = (int64_t)(keys[e] % (uint64_t)n_nodes);
        const int64_t ab = next[a]++, ba = next[b]++;
        data->nbr[ab] = (int32_t)b;
        data->nbr[ba] = (int32_t)a;
        data->rev[ab] = (int32_t)ba;
        data->rev[ba] = (int32_t)ab;
        data->eid[ab] = data->eid[ba] = (int32_t)e;
        data->edge_half[e] = (int32_t)ab;
    }
    free(keys);
    free(next);
    data->graph.n_nodes = n_nodes;
    data->graph.n_edges = n_edges;
    data->graph.row_ptr = data->row_ptr;
    data->graph.nbr = data->nbr;
    data->graph.rev = data->rev;
    data->graph.eid = data->eid;
    data->graph.edge_half = data->edge_half;
    data->graph.degree = data->degree;
    return 0;
}

#endif /* RULEC_GRAPH_H */
