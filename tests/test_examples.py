"""Every example rule checked against an independent computation (closed forms,
networkx, scipy, dense NumPy), and run once from the CLI."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import scipy.signal

import rulec
from rulec import graphs

from .conftest import EXAMPLES

F32 = np.float32


def example(name: str) -> rulec.Rule:
    return rulec.compile_file(EXAMPLES / f"{name}.rule")


def test_hebbian_step_matches_a_hand_computation():
    rule = example("hebbian")
    graph = graphs.layered([3, 4, 2])
    state = rule.state(graph)
    rule.init(state, seed=5)
    rng = np.random.default_rng(0)
    state.node["x"] = rng.random(graph.n_nodes)
    x0, w0 = state.node["x"].copy(), state.edge["w"].copy()
    weight = {(int(u), int(v)): w0[e] for e, (u, v) in enumerate(zip(graph.owner, graph.nbr,
                                                                        strict=True))}
    rule.step(state, params={"lr": 0.1, "decay": 0.01})

    G = graph.to_networkx()
    for node in G:
        inputs = [v for v in G[node] if v < node]
        if inputs:
            drive = sum(F32(weight[node, v]) * x0[v] for v in inputs)
            assert state.node["x"][node] == pytest.approx(np.tanh(drive), rel=1e-5)
        else:  # inputs draw uniform() each step
            assert 0 <= state.node["x"][node] < 1
    for (u, v), w in weight.items():
        e = int(np.flatnonzero((graph.owner == u) & (graph.nbr == v))[0])
        expected = w + 0.1 * (x0[u] * x0[v] - 0.01 * w)
        assert state.edge["w"][e] == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_oja_learns_the_principal_eigenvector_of_the_input_covariance():
    rule = example("oja")
    sources, inputs = [0, 1, 2], [3, 4, 5]
    output = 6
    edges = [(s, i) for s in sources for i in inputs] + [(i, output) for i in inputs]
    graph = rulec.Graph.from_edges(7, edges)
    state = rule.state(graph)
    mixing = np.array([[1.0, 0.2, 0.0], [0.5, 1.0, 0.3], [0.0, 0.4, 0.6]])  # x = A s
    w = state.edge["w"]
    for e, (u, v) in enumerate(zip(graph.owner, graph.nbr, strict=True)):
        if u in inputs and v in sources:
            w[e] = mixing[u - 3, v]
        elif u == output:
            w[e] = 0.3
    state.node["source"][sources] = 1
    state.node["plastic"][output] = 1
    rule.init(state, seed=11)
    rule.step(state, steps=6000, params={"lr": 0.005})

    learned = np.array([w[(graph.owner == output) & (graph.nbr == i)][0] for i in inputs])
    eigenvalues, eigenvectors = np.linalg.eigh(mixing @ mixing.T)
    principal = eigenvectors[:, np.argmax(eigenvalues)]
    assert np.linalg.norm(learned) == pytest.approx(1, abs=0.05)
    assert abs(learned @ principal) / np.linalg.norm(learned) > 0.99


def test_diffusion_is_the_laplacian_step_and_conserves_the_total():
    rule = example("diffusion")
    graph = graphs.erdos_renyi(60, 0.1, seed=3)
    state = rule.state(graph)
    rule.init(state, seed=1)
    x0 = state.node["x"].astype(np.float64)
    rule.step(state, steps=25, params={"rate": 0.05})

    laplacian = nx.laplacian_matrix(graph.to_networkx(), nodelist=range(60)).toarray()
    expected = np.linalg.matrix_power(np.eye(60) - 0.05 * laplacian, 25) @ x0
    np.testing.assert_allclose(state.node["x"], expected, rtol=1e-4, atol=1e-5)
    assert state.node["x"].sum() == pytest.approx(x0.sum(), rel=1e-5)


def test_diffusion_consensus_block_reaches_the_fixed_point_on_a_ring():
    rule = example("diffusion")
    graph = graphs.ring(10)
    state = rule.state(graph)
    state.node["x"][0] = 10  # one hot node
    rule.step(state, steps=400, block="consensus")
    # closed-neighbourhood averaging on a regular graph preserves the mean
    np.testing.assert_allclose(state.node["x"], np.full(10, 1.0), rtol=1e-4)


def test_life_matches_a_convolution_implementation():
    rule = example("life")
    width, height = 24, 16
    graph = graphs.moore(width, height)
    state = rule.state(graph)
    rule.init(state, seed=9)
    board = state.node["alive"].reshape(height, width).astype(int)
    assert 0.2 < board.mean() < 0.4  # density 0.3
    kernel = np.ones((3, 3), dtype=int)
    kernel[1, 1] = 0
    for _ in range(20):
        neighbours = scipy.signal.convolve2d(board, kernel, mode="same", boundary="fill")
        board = ((neighbours == 3) | ((board == 1) & (neighbours == 2))).astype(int)
        rule.step(state)
        np.testing.assert_array_equal(state.node["alive"].reshape(height, width), board)


def test_hopfield_recalls_a_stored_pattern_like_dense_numpy():
    rule = example("hopfield")
    n = 64
    graph = graphs.complete(n)
    rng = np.random.default_rng(4)
    p1, p2 = (rng.choice([-1.0, 1.0], size=n) for _ in range(2))
    state = rule.state(graph)
    state.node["p1"], state.node["p2"] = p1, p2
    rule.init(state)
    weights = (np.outer(p1, p1) + np.outer(p2, p2)) / n
    np.fill_diagonal(weights, 0)
    corrupted = p1.copy()
    corrupted[rng.choice(n, size=10, replace=False)] *= -1
    state.node["x"] = corrupted
    dense = corrupted
    for _ in range(5):
        field = weights @ dense
        dense = np.where(field >= 0, 1.0, -1.0)
        rule.step(state)
        clear = np.abs(field) > 1e-4  # ties at 0 may round either way in float32
        np.testing.assert_array_equal(state.node["x"][clear], dense[clear])
    np.testing.assert_array_equal(state.node["x"], p1)


def test_flow_step_matches_weighted_laplacian_and_flows_are_antisymmetric():
    rule = example("flow")
    graph = graphs.waxman(40, seed=2)
    state = rule.state(graph)
    rule.init(state, seed=3)
    state.edge["c"] = np.random.default_rng(1).random(graph.n_edges) + 0.5
    p0, c0 = state.node["p"].astype(np.float64), state.edge["c"].astype(np.float64)
    rule.step(state, params={"rate": 0.05, "adapt": 0.1})

    import scipy.sparse as sp

    u, v = graph.edges[:, 0], graph.edges[:, 1]
    conductance = sp.coo_array((np.r_[c0, c0], (np.r_[u, v], np.r_[v, u])), shape=(40, 40))
    weighted_laplacian = sp.diags(conductance.sum(axis=1)) - conductance
    np.testing.assert_allclose(state.node["p"], p0 - 0.05 * (weighted_laplacian @ p0),
                               rtol=1e-5, atol=1e-6)
    flow = c0 * (p0[u] - p0[v])
    np.testing.assert_allclose(state.edge["c"], c0 + 0.1 * (np.abs(flow) - c0),
                               rtol=1e-5, atol=1e-6)
    q = state.edge["q"]
    np.testing.assert_array_equal(q, -q[graph.rev])
    total = state.node["p"].sum()
    rule.step(state, steps=50)
    assert state.node["p"].sum() == pytest.approx(total, rel=1e-5)
    assert (state.node["imbalance"] == 0).all()


@pytest.mark.parametrize("name, spec", [
    ("hebbian", "layered:4,8,2"), ("oja", "layered:3,3,1"), ("diffusion", "ring:50"),
    ("life", "moore:16x16"), ("hopfield", "complete:20"), ("flow", "waxman:30,1"),
])
def test_every_example_runs_from_the_cli(run_cli, name, spec):
    result = run_cli("run", EXAMPLES / f"{name}.rule", "--graph", spec, "--steps", "20")
    assert result.returncode == 0, result.stderr
    assert f"rule {name} on {spec}" in result.stdout
    assert "non-finite" in result.stdout
