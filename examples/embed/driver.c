/* Run two exported rules, hebbian and flow, on a graph, with no Python.
 *
 *   rulec export examples/hebbian.rule -o build/hebbian
 *   rulec export examples/flow.rule -o build/flow
 *   cc -O2 -std=c99 -Ibuild/hebbian -Ibuild/flow examples/embed/driver.c \
 *      build/hebbian/hebbian.c build/flow/flow.c -lm -o driver
 *   ./driver graph.txt 20 7 out/
 *
 * graph.txt: "N M" on the first line, then M lines "u v". The driver checks
 * each library's ABI version and layout against its header, builds the graph
 * (rulec_graph.h), runs init with the seed and `steps` update steps of each
 * rule from a zero state with default params, and writes every slot to
 * OUT/<rule>.<kind>.<slot>.f32 (raw little-endian float32) and the time to
 * OUT/<rule>.time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow.h"
#include "hebbian.h"
#include "rulec_graph.h"

typedef struct {
    const char *name;
    int abi, expected_abi;
    uint32_t layout, expected_layout;
    int n_node, n_edge, n_shared, n_params;
    const char *const *node_names, *const *edge_names, *const *shared_names;
    void (*defaults)(float *);
    int64_t (*init)(const rulec_graph *, rulec_state *, const float *, uint64_t, int);
    int64_t (*step)(const rulec_graph *, rulec_state *, const float *, int64_t, int);
} rule_api;

static int write_slot(const char *dir, const char *rule, const char *kind, const char *slot,
                      const float *values, int64_t count)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.%s.%s.f32", dir, rule, kind, slot);
    FILE *out = fopen(path, "wb");
    if (!out || fwrite(values, sizeof(float), (size_t)count, out) != (size_t)count) {
        fprintf(stderr, "driver: cannot write %s\n", path);
        if (out)
            fclose(out);
        return -1;
    }
    return fclose(out);
}

static float **zeros(int count, int64_t length)
{
    float **arrays = (float **)calloc((size_t)count + 1, sizeof(float *));
    for (int k = 0; k < count; ++k)
        arrays[k] = (float *)calloc((size_t)length + 1, sizeof(float));
    return arrays;
}

static int run(const rule_api *api, const rulec_graph *graph, int64_t steps, uint64_t seed,
               const char *dir)
{
    if (api->abi != api->expected_abi || api->layout != api->expected_layout) {
        fprintf(stderr, "driver: %s: the library (ABI %d, layout %u) does not match its "
                "header (ABI %d, layout %u); export and build again\n", api->name, api->abi,
                api->layout, api->expected_abi, api->expected_layout);
        return -1;
    }
    const int64_t n = graph->n_nodes, m = graph->n_edges;
    float **node = zeros(api->n_node, n), **edge = zeros(api->n_edge, 2 * m),
          **shared = zeros(api->n_shared, m);
    float *params = (float *)calloc((size_t)api->n_params + 1, sizeof(float));
    rulec_state state = {node, edge, shared, 0, 0};
    api->defaults(params);
    if (api->init(graph, &state, params, seed, 1) < 0 || api->step(graph, &state, params,
                                                                   steps, 1) != steps) {
        fprintf(stderr, "driver: %s: out of memory\n", api->name);
        return -1;
    }
    int failed = 0;
    for (int k = 0; k < api->n_node; ++k)
        failed |= write_slot(dir, api->name, "node", api->node_names[k], node[k], n);
    for (int k = 0; k < api->n_edge; ++k)
        failed |= write_slot(dir, api->name, "edge", api->edge_names[k], edge[k], 2 * m);
    for (int k = 0; k < api->n_shared; ++k)
        failed |= write_slot(dir, api->name, "shared", api->shared_names[k], shared[k], m);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.time", dir, api->name);
    FILE *out = fopen(path, "w");
    if (out) {
        fprintf(out, "%llu\n", (unsigned long long)state.time);
        fclose(out);
    }
    printf("%s: %lld steps, time %llu\n", api->name, (long long)steps,
           (unsigned long long)state.time);
    return failed;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s GRAPH.txt STEPS SEED OUTDIR\n", argv[0]);
        return 2;
    }
    FILE *in = fopen(argv[1], "r");
    long long n, m;
    if (!in || fscanf(in, "%lld %lld", &n, &m) != 2) {
        fprintf(stderr, "driver: cannot read %s\n", argv[1]);
        return 1;
    }
    int32_t *pairs = (int32_t *)malloc(sizeof(int32_t) * (size_t)(2 * m) + 1);
    for (long long e = 0; e < 2 * m; ++e) {
        if (fscanf(in, "%d", &pairs[e]) != 1) {
            fprintf(stderr, "driver: %s: expected %lld edges\n", argv[1], m);
            return 1;
        }
    }
    fclose(in);
    rulec_graph_data graph;
    char error[256];
    if (rulec_graph_from_edges(n, m, pairs, &graph, error, sizeof error) != 0) {
        fprintf(stderr, "driver: %s: %s\n", argv[1], error);
        return 1;
    }
    const rule_api rules[] = {
        {"hebbian", hebbian_abi_version(), HEBBIAN_ABI_VERSION, hebbian_layout_hash(),
         HEBBIAN_LAYOUT_HASH, HEBBIAN_NODE_SLOTS, HEBBIAN_EDGE_SLOTS, HEBBIAN_SHARED_SLOTS,
         HEBBIAN_PARAMS, hebbian_node_slots, hebbian_edge_slots, hebbian_shared_slots,
         hebbian_default_params, hebbian_init, hebbian_step_update},
        {"flow", flow_abi_version(), FLOW_ABI_VERSION, flow_layout_hash(), FLOW_LAYOUT_HASH,
         FLOW_NODE_SLOTS, FLOW_EDGE_SLOTS, FLOW_SHARED_SLOTS, FLOW_PARAMS, flow_node_slots,
         flow_edge_slots, flow_shared_slots, flow_default_params, flow_init, flow_step_update},
    };
    const int64_t steps = atoll(argv[2]);
    const uint64_t seed = strtoull(argv[3], NULL, 10);
    for (int r = 0; r < 2; ++r)
        if (run(&rules[r], &graph.graph, steps, seed, argv[4]) != 0)
            return 1;
    rulec_graph_free(&graph);
    free(pairs);
    return 0;
}
