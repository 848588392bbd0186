"""Semantics of the reference interpreter: the spec's rules, one test each."""

from __future__ import annotations

import numpy as np
import pytest

import rulec
from rulec import rng
from rulec.rng import block_key

PATH = rulec.Graph.from_edges(3, [(0, 1), (1, 2)])  # 0 - 1 - 2


def run(text, graph=PATH, steps=1, block="update", seed=None, setup=None, params=None):
    rule = rulec.compile(text)
    state = rule.state(graph)
    if setup:
        setup(state)
    if seed is not None:
        rule.init(state, seed=seed)
    rule.step(state, steps=steps, block=block, params=params)
    return state


def test_reads_see_block_start_state_so_a_swap_works():
    def setup(s):
        s.node["a"] = [1, 2, 3]
        s.node["b"] = [4, 5, 6]

    s = run("node a, b\nupdate { a = b; b = a }", setup=setup)
    assert s.node["a"].tolist() == [4, 5, 6]
    assert s.node["b"].tolist() == [1, 2, 3]


def test_augmented_assignment_reads_the_block_start_value():
    s = run("node x\nupdate { x = 10; x += 1 }", setup=lambda s: s.node.__setitem__("x", 5))
    assert s.node["x"].tolist() == [6, 6, 6]


def test_later_write_to_the_same_element_wins():
    s = run("node x\nupdate { x = 1; x = 2 }")
    assert s.node["x"].tolist() == [2, 2, 2]


def test_filtered_edge_write_touches_only_selected_half_edges():
    s = run("edge w\nupdate { w = 1; w[incoming] = 2 }")
    # half-edges in CSR order: 0->1, 1->0, 1->2, 2->1; incoming = neighbour id smaller
    assert s.edge["w"].tolist() == [1, 2, 1, 2]


def test_filtered_value_writes_only_where_its_filter_selects():
    s = run("edge w\nupdate { w = (parity * 3)[outgoing] }")
    assert s.edge["w"].tolist() == [3, 0, 3, 0]


def test_shared_slot_takes_the_mean_of_the_proposals():
    graph = rulec.Graph.from_edges(2, [(0, 1)])
    s = run("node x\nshared edge c\nupdate { c = x }", graph=graph,
            setup=lambda s: s.node.__setitem__("x", [1, 4]))
    assert s.edge["c"].tolist() == [2.5]


def test_shared_slot_with_one_proposal_takes_it_and_with_none_keeps_its_value():
    graph = rulec.Graph.from_edges(3, [(0, 1), (1, 2)])

    def setup(s):
        s.node["x"] = [0, 7, 0]
        s.edge["c"] = [9, 9]

    # only node 1 writes; edge (0,1) and (1,2) get node 1's proposal
    s = run("node x\nshared edge c\nupdate { if x > 0 { c = x } }", graph=graph, setup=setup)
    assert s.edge["c"].tolist() == [7, 7]
    s = run("node x\nshared edge c\nupdate { if x > 100 { c = x } }", graph=graph, setup=setup)
    assert s.edge["c"].tolist() == [9, 9]


def test_shared_slot_proposal_respects_filters():
    graph = rulec.Graph.from_edges(2, [(0, 1)])
    # node 0's half-edge is outgoing, node 1's incoming: only node 1 proposes
    s = run("node x\nshared edge c\nupdate { c[incoming] = x }", graph=graph,
            setup=lambda s: s.node.__setitem__("x", [1, 4]))
    assert s.edge["c"].tolist() == [4]


def test_reducers_over_empty_selection_give_zero():
    graph = rulec.Graph.from_edges(3, [(0, 1)])  # node 2 isolated
    for op in ["sum", "mean", "max", "min", "count"]:
        s = run(f"node x, y\nupdate {{ y = {op}((nbr.x + 5)[incoming]) }}", graph=graph,
                setup=lambda s: s.node.__setitem__("x", [1, 2, 3]))
        # node 0 has no incoming half-edge, node 2 none at all
        assert s.node["y"][0] == 0 and s.node["y"][2] == 0, op
        assert s.node["y"][1] == {"count": 1}.get(op, 6), op


def test_count_counts_selected_elements_that_are_positive():
    graph = rulec.Graph.from_edges(4, [(0, 3), (1, 3), (2, 3)])

    def setup(s):
        s.node["x"] = [1, -1, 2, 0]

    s = run("node x, y\nupdate { y = count(nbr.x) }", graph=graph, setup=setup)
    assert s.node["y"].tolist() == [0, 0, 0, 2]


def test_max_and_min_ignore_nan_like_fmaxf():
    graph = rulec.Graph.from_edges(3, [(0, 2), (1, 2)])
    s = run("node x, a, b\nupdate { a = max(nbr.x); b = min(nbr.x) }",
            graph=graph, setup=lambda s: s.node.__setitem__("x", [np.nan, 3, 0]))
    assert s.node["a"][2] == 3 and s.node["b"][2] == 3
    s = run("node x, a\nupdate { a = max(nbr.x) }", graph=graph,
            setup=lambda s: s.node.__setitem__("x", [np.nan, np.nan, 0]))
    assert np.isnan(s.node["a"][2])  # all-NaN selection
    s = run("node x, y\nupdate { y = max(x, 5) }",
            setup=lambda s: s.node.__setitem__("x", [np.nan, 7, 1]))
    assert s.node["y"].tolist() == [5, 7, 5]


def test_nested_conditionals_and_else_apply_per_node():
    text = """node x, y
    update {
        if x > 1 {
            if x > 2 { y = 3 } else { y = 2 }
        } elif x > 0 {
            y = 1
        } else {
            y = -1
        }
    }"""
    graph = rulec.Graph.from_edges(5, [])
    s = run(text, graph=graph, setup=lambda s: s.node.__setitem__("x", [3, 2, 0.5, 0, np.nan]))
    assert s.node["y"].tolist() == [3, 2, 1, -1, -1]


def test_float_broadcasts_to_every_half_edge():
    s = run("node x\nedge w\nupdate { w = x + parity }",
            setup=lambda s: s.node.__setitem__("x", [10, 20, 30]))
    assert s.edge["w"].tolist() == [11, 19, 21, 29]


def test_peer_reads_the_reverse_half_edge_and_nbr_the_neighbour():
    def setup(s):
        s.edge["w"] = [1, 2, 3, 4]
        s.node["x"] = [10, 20, 30]

    s = run("node x\nedge w, p, n\nupdate { p = peer.w; n = nbr.x }", setup=setup)
    assert s.edge["p"].tolist() == [2, 1, 4, 3]
    assert s.edge["n"].tolist() == [20, 10, 30, 20]


def test_builtins():
    s = run("node d, n, t\nedge i, o, nd\nupdate { d = degree; n = nodes; t = time;"
            " i = incoming; o = outgoing; nd = nbr.degree }", steps=3)
    assert s.node["d"].tolist() == [1, 2, 1]
    assert s.node["n"].tolist() == [3, 3, 3]
    assert s.node["t"].tolist() == [2, 2, 2]  # time at the start of the third step
    assert s.edge["i"].tolist() == [0, 1, 0, 1]
    assert s.edge["o"].tolist() == [1, 0, 1, 0]
    assert s.edge["nd"].tolist() == [2, 1, 1, 2]
    assert s.time == 3


def test_float32_ieee_division_by_zero_and_nan():
    s = run("node a, b, c\nupdate { a = 1 / 0; b = -1 / 0; c = 0 / 0 }")
    assert np.isposinf(s.node["a"]).all() and np.isneginf(s.node["b"]).all()
    assert np.isnan(s.node["c"]).all()
    assert s.node["a"].dtype == np.float32


def test_arithmetic_is_float32():
    s = run("node x\nupdate { x = 0.1 + 0.2 }")
    assert s.node["x"][0] == np.float32(np.float32(0.1) + np.float32(0.2))


def test_logic_and_comparisons_give_one_or_zero():
    s = run("node x, a, o, n, e\nupdate { a = x and 1; o = x or 0; n = not x; e = x != x }",
            setup=lambda s: s.node.__setitem__("x", [1, 0, np.nan]))
    assert s.node["a"].tolist() == [1, 0, 0]
    assert s.node["o"].tolist() == [1, 0, 0]
    assert s.node["n"].tolist() == [0, 1, 1]
    assert s.node["e"].tolist() == [0, 0, 1]


def test_elementwise_functions_match_numpy_float32():
    x = np.array([-2.0, 0.5, 3.0], dtype=np.float32)
    s = run("node x, a, b, c, d, e\nupdate { a = sigmoid(x); b = relu(x); c = sign(x);"
            " d = clip(x, -1, 1); e = select(x, 1, 2) }",
            setup=lambda s: s.node.__setitem__("x", x))
    np.testing.assert_allclose(s.node["a"], 1 / (1 + np.exp(-x)), rtol=1e-6)
    assert s.node["b"].tolist() == [0, 0.5, 3]
    assert s.node["c"].tolist() == [-1, 1, 1]
    assert s.node["d"].tolist() == [-1, 0.5, 1]
    assert s.node["e"].tolist() == [2, 1, 1]


def test_let_values_are_computed_once_so_a_draw_is_shared():
    s = run("node a, b\nupdate { let g = gauss(); a = g; b = g }", seed=3)
    assert (s.node["a"] == s.node["b"]).all()


def test_params_default_and_override():
    s = run("param k = 2\nnode x\nupdate { x = k }")
    assert s.node["x"].tolist() == [2, 2, 2]
    s = run("param k = 2\nnode x\nupdate { x = k }", params={"k": 5})
    assert s.node["x"].tolist() == [5, 5, 5]


def test_named_blocks_run_separately():
    s = run("node x\nupdate { x = 1 }\nupdate other { x = 2 }", block="other")
    assert s.node["x"].tolist() == [2, 2, 2]


# --------------------------------------------------------------------- RNG


@pytest.mark.parametrize("counter, key, expected", [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
])
def test_philox_known_answers_from_random123(counter, key, expected):
    assert tuple(int(w) for w in rng.philox4x32(counter, key)) == expected


def test_uniform_known_answers():
    # uniform() = (r0 >> 8) / 2**24 of Philox((element, time, ordinal, block), seed)
    values = rng.uniform(3, seed=0, block_key=0, ordinal=0, time=0)
    assert values[0] == np.float32((0x6627E8D5 >> 8) / 2**24)
    # regression values of this definition, for other backends to match bit for bit
    assert values.tolist() == [0.3990464210510254, 0.9722411632537842, 0.01944941282272339]


def test_draws_in_a_rule_follow_the_documented_counter():
    s = run("node x\nedge w\nupdate { x = uniform(); w = uniform() }", seed=42, steps=2)
    key = block_key("update")
    assert (s.node["x"] == rng.uniform(3, 42, key, 0, 1)).all()  # time 1 at step 2
    assert (s.edge["w"] == rng.uniform(4, 42, key, 1, 1)).all()


def test_draw_statistics():
    u = rng.uniform(200_000, 7, 1, 0, 0)
    g = rng.gauss(200_000, 7, 1, 0, 0)
    assert u.min() >= 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    assert abs(g.mean()) < 0.01 and abs(g.std() - 1) < 0.01
    assert abs(np.mean(g**4) - 3) < 0.1  # Gaussian kurtosis
    assert np.isfinite(g).all()


def test_same_seed_same_draws_different_seed_different_draws():
    text = "edge w\ninit { w = gauss() }\nupdate { w += uniform() }"
    a, b, c = (run(text, seed=seed, steps=2) for seed in (1, 1, 2))
    assert (a.edge["w"] == b.edge["w"]).all()
    assert not np.allclose(a.edge["w"], c.edge["w"])


def test_draw_type_follows_context():
    # vector in an edge assignment: one per half-edge; float in a node one: one per node
    s = run("node x\nedge w\nupdate { w = uniform(); x = sum(uniform() * 0 + 1) }", seed=0)
    assert len(set(s.edge["w"].tolist())) == 4
    assert s.node["x"].tolist() == [1, 2, 1]


def test_non_finite_detection_names_step_slot_and_element():
    rule = rulec.compile("node x\nedge w\nupdate { w = 1 / (time - 2) * x }")
    state = rule.state(PATH)
    state.node["x"] = [1, 0, 1]
    with pytest.raises(rulec.NonFiniteError) as info:
        rule.step(state, steps=10, check_finite=True)
    err = info.value
    assert (err.step, err.slot, err.element) == (3, "w", 0)
    assert "half-edge 0 (0->1)" in str(err) and "time 3" in str(err)
