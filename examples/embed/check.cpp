// The exported headers from C++: a minimal program that builds a graph and
// runs one step of hebbian (examples/embed/driver.c is the full C driver).
#include <cstdio>
#include <vector>

#include "hebbian.h"
#include "rulec_graph.h"

int main()
{
    static_assert(HEBBIAN_ABI_VERSION == RULEC_ABI_VERSION, "one ABI");
    if (hebbian_abi_version() != HEBBIAN_ABI_VERSION || hebbian_layout_hash() != HEBBIAN_LAYOUT_HASH)
        return 1;
    const int32_t pairs[] = {0, 2, 1, 2};
    rulec_graph_data graph;
    char error[128];
    if (rulec_graph_from_edges(3, 2, pairs, &graph, error, sizeof error) != 0)
        return 1;
    std::vector<float> x(3, 0.5f), w(4, 0.0f);
    float *node[] = {x.data()}, *edge[] = {w.data()};
    hebbian_state state = {node, edge, nullptr, 0, 0};
    float params[HEBBIAN_PARAMS];
    hebbian_default_params(params);
    hebbian_init(&graph.graph, &state, params, 1, 1);
    const long long steps = hebbian_step_update(&graph.graph, &state, params, 1, 1);
    std::printf("steps %lld time %llu x2 %g\n", steps, (unsigned long long)state.time, x[2]);
    rulec_graph_free(&graph);
    return steps == 1 && state.time == 1 ? 0 : 1;
}
