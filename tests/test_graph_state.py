"""Graphs in the spec's CSR order, their validation, and states (views, save/load)."""

from __future__ import annotations

import zlib

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import rulec
import rulec.graph
from rulec import graphs
from rulec.graph import GraphError


def test_csr_order_reverse_and_edge_ids():
    g = rulec.Graph.from_edges(4, [(2, 0), (1, 0), (3, 2), (1, 2)])
    assert g.edges.tolist() == [[0, 1], [0, 2], [1, 2], [2, 3]]
    assert g.row_ptr.tolist() == [0, 2, 4, 7, 8]
    assert g.nbr.tolist() == [1, 2, 0, 2, 0, 1, 3, 2]
    assert g.owner.tolist() == [0, 0, 1, 1, 2, 2, 2, 3]
    for e in range(g.n_half_edges):
        r = g.rev[e]
        assert (g.owner[r], g.nbr[r]) == (g.nbr[e], g.owner[e])
        assert g.eid[e] == g.eid[r]
        assert sorted((g.owner[e], g.nbr[e])) == g.edges[g.eid[e]].tolist()
    assert g.parity.tolist() == [1, 1, -1, 1, -1, -1, 1, -1]


def _oracle(n, pairs):
    """The spec's arrays, by the book: half-edges sorted by (owner, neighbour)."""
    edges = sorted({(min(u, v), max(u, v)) for u, v in pairs})
    halves = sorted([(u, v) for u, v in edges] + [(v, u) for u, v in edges])
    index = {half: h for h, half in enumerate(halves)}
    row_ptr = np.searchsorted([u for u, _ in halves], np.arange(n + 1))
    return {
        "edges": [list(e) for e in edges],
        "row_ptr": row_ptr.tolist(),
        "nbr": [v for _, v in halves],
        "owner": [u for u, _ in halves],
        "rev": [index[(v, u)] for u, v in halves],
        "eid": [edges.index((min(u, v), max(u, v))) for u, v in halves],
        "edge_halves": [[index[(u, v)], index[(v, u)]] for u, v in edges],
    }


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40).flatmap(lambda n: st.tuples(st.just(n), st.sets(
    st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).filter(lambda p: p[0] < p[1])
    .map(lambda p: p if hash(p) % 2 else p[::-1]), max_size=120))),
    st.sampled_from([1, 3, 1 << 20]))
def test_graph_arrays_match_the_spec_for_any_edge_list(case, chunk):
    n, pairs = case
    pairs = sorted(pairs, key=lambda p: hash((p, 7)))  # any order, either direction
    expected = _oracle(n, pairs)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rulec.graph, "_CHUNK", chunk)  # the chunked loops, several chunks
        built = [rulec.Graph.from_edges(n, np.array(pairs, dtype=np.int64).reshape(-1, 2))]
        built.append(rulec.Graph.from_edges(n, np.array(pairs, dtype=np.uint32).reshape(-1, 2)))
        built.append(rulec.Graph.from_csr(built[0].row_ptr, built[0].nbr))
        for g in built:
            for name, value in expected.items():
                assert getattr(g, name).tolist() == value, name
            crc = zlib.crc32(np.array(expected["edges"], dtype=np.int32).reshape(-1, 2).tobytes())
            assert g.fingerprint == f"{n}:{len(expected['edges'])}:{crc:08x}"


def test_a_graph_keeps_only_its_csr_until_asked():
    g = graphs.ring(6)
    held = {name for name, value in vars(g).items() if isinstance(value, np.ndarray)}
    assert held == {"row_ptr", "nbr"}
    g.fingerprint, g.rev  # noqa: B018
    assert "edges" not in vars(g) and "rev" in vars(g)


@pytest.mark.parametrize("backend", ["c", "vm"])
def test_kernels_ask_the_graph_only_for_the_arrays_their_rule_reads(backend):
    g = graphs.ring(8)
    made = lambda: {n for n in ("owner", "rev", "eid", "edge_halves") if n in vars(g)}  # noqa: E731
    def run(source):  # two steps from x = node id; the reference interpreter's result too
        results = []
        for b, graph in ((backend, g), ("numpy", graphs.ring(8))):
            rule = rulec.compile(source, backend=b)
            state = rule.state(graph)
            state.node["x"][:] = np.arange(8)
            rule.step(state, steps=2)
            results.append(state.node["x"].tolist())
        assert results[0] == results[1]
        return results[0]

    # the VM reads `w + x` with x through each half-edge's owner (a fused
    # operand): through the graph's owner array on a small graph
    owner = {"owner"} if backend == "vm" else set()
    run("node x\nedge w\nupdate { x = sum(w * nbr.x) + 1; w += x }")
    assert made() == owner
    assert run("node x\nedge w\nupdate { w = nbr.x; x = sum(peer.w) }") == [
        2.0 * u for u in range(8)]  # each half-edge's reverse carries the node's own x
    assert made() == {"rev"} | owner
    assert run("node x\nshared edge c\nupdate { c = nbr.x; x = sum(c) }") != [0.0] * 8
    assert made() == {"rev", "eid", "edge_halves"} | owner
    # on a larger graph, from row_ptr a chunk at a time: no owner array
    from rulec.backends.vm.native import SMALL_HALF_EDGES

    large = graphs.ring(SMALL_HALF_EDGES // 2 + 1)
    rule = rulec.compile("node x\nedge w\nupdate { x = sum(w * nbr.x) + 1; w += x }",
                         backend=backend)
    rule.step(rule.state(large))
    assert "owner" not in vars(large)


def test_arrays_are_read_only():
    g = rulec.Graph.from_edges(2, [(0, 1)])
    with pytest.raises(ValueError):
        g.nbr[0] = 5


@pytest.mark.parametrize("n, edges, message", [
    (3, [(0, 0)], "self-loop"),
    (3, [(0, 1), (1, 0)], "duplicate"),
    (3, [(0, 3)], "outside 0..2"),
    (3, [(-1, 2)], "outside"),
    (3, [(0, 1, 2)], "(M, 2)"),
    (3, [[0.5, 1]], "integers"),
    (-1, [], ">= 0"),
])
def test_bad_graphs_get_clear_errors(n, edges, message):
    with pytest.raises(GraphError, match=message.replace("(", r"\(").replace(")", r"\)")):
        rulec.Graph.from_edges(n, edges)


def test_isolated_nodes_and_empty_graphs():
    g = rulec.Graph.from_edges(5, [])
    assert g.n_edges == 0 and g.row_ptr.tolist() == [0] * 6
    rule = rulec.compile("node x\nedge w\nupdate { x = sum(w) + 1; w = 2 }")
    state = rule.state(g)
    rule.step(state)
    assert state.node["x"].tolist() == [1] * 5


def test_large_graph_is_built_vectorized():
    rng = np.random.default_rng(0)
    n = 200_000
    pairs = rng.integers(0, n, size=(1_200_000, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    key = np.unique(np.minimum(pairs[:, 0], pairs[:, 1]) * n + np.maximum(*pairs.T))
    g = rulec.Graph.from_edges(n, np.stack([key // n, key % n], axis=1))
    assert g.n_half_edges == 2 * len(key)
    assert (np.diff(g.owner) >= 0).all()


def test_from_networkx_and_scipy_agree_with_from_edges():
    G = nx.gnp_random_graph(30, 0.2, seed=1)
    a = rulec.Graph.from_networkx(G)
    b = rulec.Graph.from_scipy(nx.to_scipy_sparse_array(G))
    c = rulec.Graph.from_edges(30, list(G.edges))
    assert a == b == c
    labelled = rulec.Graph.from_networkx(nx.relabel_nodes(G, {i: f"n{i}" for i in G}))
    assert labelled.labels[0] == "n0" and labelled.n_edges == G.number_of_edges()
    with pytest.raises(GraphError, match="undirected"):
        rulec.Graph.from_networkx(nx.DiGraph([(0, 1)]))
    with pytest.raises(GraphError, match="self-loop"):
        rulec.Graph.from_scipy(sp.eye(3))


@pytest.mark.parametrize("spec, nodes, edges", [
    ("ring:5", 5, 5), ("grid:3x2", 6, 7), ("moore:3x3", 9, 20), ("layered:2,3,1", 6, 9),
    ("complete:5", 5, 10), ("er:50,0.0", 50, 0), ("er:20,1.0", 20, 190),
])
def test_graph_specs(spec, nodes, edges):
    g = graphs.from_spec(spec)
    assert (g.n_nodes, g.n_edges) == (nodes, edges)


def test_erdos_renyi_and_waxman_are_seeded_and_plausible():
    a, b = graphs.erdos_renyi(300, 0.05, seed=1), graphs.erdos_renyi(300, 0.05, seed=1)
    assert a == b and abs(a.n_edges - 0.05 * 300 * 299 / 2) < 150
    assert graphs.waxman(100, seed=1) == graphs.waxman(100, seed=1)


def test_power_law_graphs_have_hubs_and_are_seeded():
    g = graphs.from_spec("powerlaw:4000,8,2")
    assert g == graphs.power_law(4000, 8, seed=2) != graphs.power_law(4000, 8, seed=3)
    degree = np.asarray(g.degree)
    assert 6 < degree.mean() <= 8  # repeated edges dropped: somewhat below D
    assert degree.max() > 20 * np.median(degree) and degree.argmax() == 0  # node 0 the hub
    heavy = graphs.power_law(4000, 8, exponent=2.2).degree.max()
    assert heavy > graphs.power_law(4000, 8, exponent=3.5).degree.max()


@pytest.mark.parametrize("spec, message", [
    ("hex:3", "unknown graph kind"), ("ring", "expected one of"), ("ring:x", "integers"),
    ("ring:2", "at least 3"), ("er:10", "er:N,P"), ("grid:3", "grid:WxH"),
    ("file:/nonexistent/edges.txt", "no such file"), ("powerlaw:100", "powerlaw:N,D"),
    ("powerlaw:100,x", "D must be a number"), ("powerlaw:100,200", "0 < D < N - 1"),
])
def test_bad_graph_specs(spec, message):
    with pytest.raises(graphs.GraphSpecError, match=message):
        graphs.from_spec(spec)


def test_edge_list_file_round_trip(tmp_path):
    g = graphs.from_spec("er:40,0.1,3")
    graphs.write_edge_list(g, tmp_path / "g.txt")
    assert graphs.from_spec(f"file:{tmp_path / 'g.txt'}") == g
    (tmp_path / "bad.txt").write_text("0 1\n1 two\n")
    with pytest.raises(graphs.GraphSpecError, match="bad.txt:2"):
        graphs.read_edge_list(tmp_path / "bad.txt")


def test_state_views_are_zero_copy_and_typed():
    rule = rulec.compile("node x\nedge w\nshared edge c\nupdate { x = 1 }")
    g = rulec.Graph.from_edges(3, [(0, 1), (1, 2)])
    s = rule.state(g)
    x = s.node["x"]
    assert x.dtype == np.float32 and x.flags.c_contiguous and x.flags.writeable
    assert s.edge["w"].shape == (4,) and s.edge["c"].shape == (2,)
    s.node["x"] = [1, 2, 3]  # copies into the same array
    assert x.tolist() == [1, 2, 3] and s.node["x"] is x
    with pytest.raises(rulec.StateError, match="shape"):
        s.node["x"] = [1, 2]
    with pytest.raises(KeyError, match="no node slot 'y'"):
        s.node["y"]


def test_save_and_load_round_trip(tmp_path):
    rule = rulec.compile("node x\nedge w\nshared edge c\ninit { x = gauss(); w = uniform();"
                         " c = uniform() }\nupdate { x += 1 }")
    g = graphs.from_spec("ring:6")
    s = rule.state(g)
    rule.init(s, seed=12)
    rule.step(s, steps=3)
    s.save(tmp_path / "s.npz")
    t = rulec.State.load(tmp_path / "s.npz", g)
    assert (t.time, t.seed) == (3, 12)
    for (_kind, _name, a), (_, _, b) in zip(s.slots(), t.slots(), strict=True):
        np.testing.assert_array_equal(a, b)
    rule.step(t)  # a loaded state runs
    with pytest.raises(rulec.StateError, match="another graph"):
        rulec.State.load(tmp_path / "s.npz", graphs.from_spec("ring:7"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(rulec.StateError, match="not a readable rulec state file"):
        rulec.State.load(tmp_path / "junk.npz", g)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_state_of_another_rule_is_rejected():
    a = rulec.compile("node x\nupdate { x = 1 }")
    b = rulec.compile("node y\nupdate { y = 1 }")
    with pytest.raises(rulec.StateError, match="do not match"):
        b.step(a.state(graphs.ring(3)))


def test_runtime_argument_errors_name_the_fix():
    rule = rulec.compile("param lr = 1\nnode x\nupdate { x = lr }\nupdate relax { x = 0 }")
    s = rule.state(graphs.ring(3))
    with pytest.raises(KeyError, match="did you mean 'lr'"):
        rule.step(s, params={"lrr": 2})
    with pytest.raises(KeyError, match="did you mean 'relax'"):
        rule.step(s, block="relx")
    with pytest.raises(ValueError, match="steps"):
        rule.step(s, steps=-1)
    with pytest.raises(ValueError, match="seed"):
        rule.init(s, seed=-1)


@pytest.mark.parametrize("n", [2, 3, 17, 1500])
def test_erdos_renyi_pair_numbering_matches_triu_indices(n):
    from rulec.graphs import _pair_from_index

    u, v = np.triu_indices(n, k=1)
    index = np.arange(len(u), dtype=np.int64)
    i, j = _pair_from_index(index, n)
    np.testing.assert_array_equal(i, u)
    np.testing.assert_array_equal(j, v)


# --------------------------------------------- misuse cannot crash (regressions)


def test_a_state_cannot_be_moved_to_another_graph_under_the_kernel():
    """Regression: `st.graph = bigger` then rule.step() segfaulted (exit 139)."""
    rule = rulec.compile("node x\nupdate { x = mean(nbr.x) + 1 }")
    state = rule.state(rulec.Graph.from_edges(2, [(0, 1)]))
    bigger = rulec.Graph.from_edges(100000, [(0, 1), (5, 99999)])
    with pytest.raises(AttributeError, match="cannot be replaced"):
        state.graph = bigger
    for name, value in (("n_nodes", 100000), ("nbr", bigger.nbr), ("row_ptr", bigger.row_ptr)):
        with pytest.raises(AttributeError, match="read-only"):
            setattr(state.graph, name, value)
    rule.step(state, steps=3)
    assert state.node["x"].tolist() == [3.0, 3.0]


@pytest.mark.parametrize("value, message", [
    (None, "must be a number"), ("0.1", "must be a number"), (True, "must be a number"),
    (1e39, "outside float32's range"), (-1e39, "outside float32's range"),
])
def test_params_must_be_float32_numbers(value, message):
    """Regression: params={'rate': None} silently became NaN, 1e39 became inf."""
    rule = rulec.compile("param rate = 0.1\nnode x\nupdate { x += rate }", backend="numpy")
    state = rule.state(rulec.Graph.from_edges(2, [(0, 1)]))
    with pytest.raises(ValueError, match=message):
        rule.step(state, params={"rate": value})
    rule.step(state, params={"rate": float("inf")})  # asked for by name: allowed
    assert np.isinf(state.node["x"]).all()


@pytest.mark.parametrize("kwargs", [{"steps": 10**20}, {"steps": -1}, {"threads": 10**11},
                                    {"threads": 0}])
def test_out_of_range_steps_and_threads_are_value_errors(kwargs):
    rule = rulec.compile("node x\nupdate { x += 1 }", backend="numpy")
    state = rule.state(rulec.Graph.from_edges(2, [(0, 1)]))
    with pytest.raises(ValueError, match="must be an integer in"):
        rule.step(state, **kwargs)


@pytest.mark.parametrize("field, value", [("time", -1), ("time", 2**64), ("seed", 1.5)])
def test_time_and_seed_are_checked_when_set(field, value):
    state = rulec.compile("node x\nupdate { x += 1 }", backend="numpy").state(
        rulec.Graph.from_edges(1, []))
    with pytest.raises(rulec.StateError, match=f"state.{field} must be"):
        setattr(state, field, value)


def test_a_graph_beyond_int32_ids_is_refused_not_wrapped():
    """Node ids and half-edge numbers are int32 in the C ABI: larger graphs
    are a clear error rather than silently wrapped numbers."""
    with pytest.raises(GraphError, match="below 2\\*\\*31"):
        rulec.Graph.from_edges(2**31, [(0, 1)])


class _DLPackArray:
    """A minimal DLPack producer (as a PyTorch tensor or a JAX array is one):
    only __dlpack__ and __dlpack_device__, no NumPy interface."""

    def __init__(self, array, device=(1, 0)):
        self._array, self._device = array, device

    def __dlpack__(self, **kwargs):
        return self._array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._device


def test_a_dlpack_array_is_used_as_a_slot_without_a_copy():
    """rule.state(graph, arrays=...) takes any array that speaks DLPack in main
    memory, as the caller's memory: a step writes into it. One on a device is
    refused with a message that says how to fix it."""
    import rulec

    rule = rulec.compile("node x\nupdate { x = x + 1 }", backend="vm")
    graph = graphs.ring(4)
    memory = np.zeros(4, dtype=np.float32)
    state = rule.state(graph, arrays={"x": _DLPackArray(memory)})
    rule.step(state, steps=3)
    np.testing.assert_array_equal(memory, np.full(4, 3.0, dtype=np.float32))
    with pytest.raises(rulec.StateError, match="lives on a device .*cpu"):
        rule.state(graph, arrays={"x": _DLPackArray(memory, device=(2, 0))})
    with pytest.raises(rulec.StateError, match="dtype float64, not float32"):
        rule.state(graph, arrays={"x": _DLPackArray(np.zeros(4))})


class _InterfaceArray:
    """An array known only through NumPy's array interface (no DLPack)."""

    def __init__(self, array):
        self._array = array
        self.__array_interface__ = array.__array_interface__


def test_an_array_interface_object_is_used_as_a_slot_without_a_copy():
    import rulec

    rule = rulec.compile("node x\nupdate { x = x + 1 }", backend="vm")
    memory = np.zeros(4, dtype=np.float32)
    state = rule.state(graphs.ring(4), arrays={"x": _InterfaceArray(memory)})
    rule.step(state, steps=2)
    np.testing.assert_array_equal(memory, np.full(4, 2.0, dtype=np.float32))
    with pytest.raises(rulec.StateError, match="expected a NumPy array"):
        rule.state(graphs.ring(4), arrays={"x": [0.0] * 4})  # a list would be a copy


def test_a_pytorch_tensor_is_a_slot_and_a_slot_is_a_pytorch_tensor():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    import rulec

    rule = rulec.compile("node x\nupdate { x = x + 1 }", backend="vm")
    tensor = torch.zeros(5, dtype=torch.float32)
    state = rule.state(graphs.ring(5), arrays={"x": tensor})
    rule.step(state, steps=2)
    assert tensor.tolist() == [2.0] * 5
    shared = torch.from_numpy(state.node["x"])
    rule.step(state)
    assert shared.tolist() == [3.0] * 5


def test_a_weighted_scipy_matrix_keeps_its_weights_in_half_edge_order():
    """from_scipy makes the graph; half_edge_values gives each half-edge u->v
    its A[u, v], so a weighted adjacency's weights are not lost."""
    import rulec

    scipy_sparse = pytest.importorskip("scipy.sparse")
    dense = np.array([[0, 2.5, 0, 0], [2.5, 0, -1, 0], [0, 4, 0, 0.5], [0, 0, 0.5, 0]])
    graph = rulec.Graph.from_scipy(scipy_sparse.csr_array(dense))
    values = graph.half_edge_values(scipy_sparse.csr_array(dense))
    assert values.dtype == np.float32 and values.shape == (2 * graph.n_edges,)
    for h in range(2 * graph.n_edges):
        assert values[h] == np.float32(dense[graph.owner[h], graph.nbr[h]])
    assert values.tolist().count(4.0) == 1 and values.tolist().count(-1.0) == 1  # asymmetric
    with pytest.raises(rulec.GraphError, match="shape"):
        graph.half_edge_values(np.zeros((3, 3)))


@pytest.mark.parametrize("backend", ["numpy", "vm", "c"])
def test_a_recording_holds_the_states_stepping_would_reach(backend, tmp_path):
    import rulec

    rule = rulec.compile("node x\nedge w\ninit { x = uniform()\n w = gauss() }\n"
                         "update { x = tanh(sum(w * nbr.x))\n w += 0.01 * x * nbr.x }",
                         backend=backend)
    graph = rulec.Graph.from_edges(5, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0)])
    state = rule.state(graph)
    rule.init(state, seed=3)
    twin = state.copy()
    rec = rule.record(state, steps=7, slots=["x", "w"], every=3)
    assert rec.times.tolist() == [0, 3, 6, 7] and rec["w"].shape == (4, 10)
    for sample, steps in zip(rec["x"][1:], (3, 3, 1), strict=True):
        rule.step(twin, steps)
        assert np.array_equal(sample, twin.node["x"])
    rec.save(tmp_path / "r.npz")
    assert np.load(tmp_path / "r.npz")["x"].shape == (4, 5)
    with pytest.raises(KeyError, match="no slot 'y' to record"):
        rule.record(state, steps=1, slots="y")


def test_restore_makes_a_state_equal_in_place():
    import rulec

    rule = rulec.compile("node x\nedge w\ninit { x = uniform()\n w = gauss() }\n"
                         "update { x = tanh(sum(w * nbr.x)) }", backend="vm")
    graph = rulec.Graph.from_edges(3, [(0, 1), (1, 2)])
    start = rule.state(graph)
    rule.init(start, seed=1)
    work = start.copy()
    address = work.node["x"].ctypes.data
    rule.step(work, 5)
    work.restore(start)
    assert work.time == start.time and np.array_equal(work.node["x"], start.node["x"])
    assert work.node["x"].ctypes.data == address  # in place: a backend's views stay valid
    rule.step(work, 5)
    again = start.copy()
    rule.step(again, 5)
    assert np.array_equal(work.node["x"], again.node["x"])
    with pytest.raises(rulec.StateError, match="same graph and slots"):
        work.restore(rule.state(rulec.Graph.from_edges(3, [(0, 1)])))
