"""The C and VM backends against the reference interpreter (the definition).

Every example and every valid test rule, on graphs chosen for their edge
cases (isolated nodes, a degree-1000 hub, no edges at all, layers), from the
same random state with NaN, ±inf, zeros and denormals in it: after one step
of each block, C and the reference agree

- exactly on where NaN, ±inf and -0 are, and on every `uniform()` draw;
- elsewhere within RTOL/ATOL (docs/performance.md, "Accuracy"): reductions
  may sum in another order, and libmvec's exp/log/tanh/sin/cos are within
  4 ulp of the reference's.
"""

from __future__ import annotations

import numpy as np
import pytest

import rulec
from rulec import graphs
from rulec.frontend import load_program

from .conftest import EXAMPLES, TESTS

RTOL = 1e-4
ATOL = 1e-5

RULES = sorted(EXAMPLES.glob("*.rule")) + sorted((TESTS / "valid").glob("*.rule"))


def _graphs() -> dict[str, rulec.Graph]:
    er = graphs.erdos_renyi(40, 0.15, seed=2)
    hub_edges = [(0, leaf) for leaf in range(1, 1001)] + [(1, 2), (2, 3), (500, 1000)]
    return {
        # nodes 40..44 have no edges
        "isolated": rulec.Graph.from_edges(45, er.edges),
        "hub": rulec.Graph.from_edges(1001, hub_edges),
        "no-edges": rulec.Graph.from_edges(4, []),
        "layered": graphs.layered([3, 5, 2]),
    }


GRAPHS = _graphs()


def random_state(rule: rulec.Rule, graph: rulec.Graph, seed: int, specials: bool) -> rulec.State:
    """A state of N(0, 1) values; with `specials`, some are ±0, ±inf, NaN or denormal."""
    rng = np.random.default_rng(seed)
    state = rule.state(graph)
    for _, _, array in state.slots():
        values = rng.normal(size=array.size).astype(np.float32)
        if specials and array.size:
            kinds = rng.integers(0, 12, size=array.size)
            values[kinds == 0] = 0
            values[kinds == 1] = np.inf
            values[kinds == 2] = -np.inf
            values[kinds == 3] = np.nan
            values[kinds == 4] = np.float32(1e-40) * np.sign(values[kinds == 4])
            values[kinds == 5] = -0.0
        array[...] = values
    state.time, state.seed = 7, 1234
    return state


def assert_same(c_state: rulec.State, ref_state: rulec.State, context: str) -> None:
    assert c_state.time == ref_state.time
    for (kind, name, got), (_, _, want) in zip(c_state.slots(), ref_state.slots(), strict=True):
        where = f"{context}: {kind} slot {name}"
        for test in (np.isnan, np.isposinf, np.isneginf, _negative_zero):
            np.testing.assert_array_equal(test(got), test(want),
                                          err_msg=f"{where} ({test.__name__})")
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, equal_nan=True, err_msg=where)


def check_block(rule: rulec.Rule, reference: rulec.Rule, graph: rulec.Graph, label: str,
                context: str, init_seed: int = 99, specials: bool = True) -> None:
    """One step of block `label` (init with `init_seed`) by `rule` and by the
    reference, from the same random state (with specials): they agree."""
    state = random_state(rule, graph, seed=len(label), specials=specials)
    expected = state.copy()
    if label == "init":
        rule.init(state, seed=init_seed)
        reference.init(expected, seed=init_seed)
    else:
        rule.step(state, block=label)
        reference.step(expected, block=label)
    assert_same(state, expected, f"{context}: block {label}")


def _negative_zero(values: np.ndarray) -> np.ndarray:
    return (values == 0) & np.signbit(values)


NATIVE = ("c", "vm", "cuda-cpu")


@pytest.fixture(scope="module")
def programs():
    return [load_program(path.read_bytes(), str(path)) for path in RULES]


@pytest.fixture(scope="module", params=NATIVE)
def compiled(request, programs):
    """Each test rule as a (backend under test, reference) pair; the C kernels
    are built in one batch."""
    natives = rulec.compile_many(programs, backend=request.param)
    return {path.stem: (c, rulec.Rule(c.program, "numpy"))
            for path, c in zip(RULES, natives, strict=True)}


@pytest.mark.parametrize("specials", [False, True], ids=["normal", "specials"])
@pytest.mark.parametrize("graph_name", list(GRAPHS))
@pytest.mark.parametrize("rule_name", [path.stem for path in RULES])
def test_one_step_of_every_block_matches_the_reference(compiled, rule_name, graph_name,
                                                        specials):
    c_rule, ref_rule = compiled[rule_name]
    for label in c_rule.blocks:
        check_block(c_rule, ref_rule, GRAPHS[graph_name], label, f"{rule_name} on {graph_name}",
                    specials=specials)


@pytest.mark.parametrize("rule_name,steps", [("diffusion", 200), ("hebbian", 50), ("oja", 100),
                                             ("life", 30), ("flow", 100), ("hopfield", 10)])
def test_many_steps_of_a_stable_rule_match_the_reference(compiled, rule_name, steps):
    c_rule, ref_rule = compiled[rule_name]
    graph = {"life": graphs.moore(12, 12), "hopfield": graphs.complete(16)}.get(
        rule_name, graphs.erdos_renyi(60, 0.1, seed=4))
    c_state = c_rule.state(graph)
    c_rule.init(c_state, seed=3)
    ref_state = c_state.copy()
    c_rule.step(c_state, steps=steps)
    ref_rule.step(ref_state, steps=steps)
    assert_same(c_state, ref_state, f"{rule_name} after {steps} steps")


def test_uniform_draws_are_bit_identical(compiled):
    c_rule, ref_rule = compiled["draws"]
    graph = GRAPHS["isolated"]
    c_state = c_rule.state(graph)
    ref_state = c_state.copy()
    c_rule.init(c_state, seed=2**63 + 5)
    ref_rule.init(ref_state, seed=2**63 + 5)
    np.testing.assert_array_equal(c_state.node["x"], ref_state.node["x"])
    np.testing.assert_array_equal(c_state.edge["w"], ref_state.edge["w"])
    assert len(np.unique(c_state.edge["w"])) == graph.n_half_edges
    np.testing.assert_allclose(c_state.edge["u"], ref_state.edge["u"], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("rule_name, graph_name, threads", [
    ("everything", "er", 2), ("branches", "er", 2), ("flow", "er", 2),
    ("everything", "powerlaw", 3), ("flow", "powerlaw", 7),
])
def test_threads_give_bit_identical_results(programs, rule_name, graph_name, threads):
    """Also where the shares (balanced by half-edges) split a power-law graph
    unevenly by node count, and with more threads than cores."""
    c_rule = rulec.Rule(programs[[p.stem for p in RULES].index(rule_name)], "c")
    graph = (graphs.erdos_renyi(3000, 0.003, seed=1) if graph_name == "er"
             else graphs.power_law(3000, 6, seed=1, exponent=2.2))
    one = random_state(c_rule, graph, seed=5, specials=True)
    two = one.copy()
    for label in c_rule.blocks:
        if label == "init":
            c_rule.init(one, seed=1, threads=1)
            c_rule.init(two, seed=1, threads=threads)
        else:
            c_rule.step(one, steps=3, block=label, threads=1)
            c_rule.step(two, steps=3, block=label, threads=threads)
    for (_, name, a), (_, _, b) in zip(one.slots(), two.slots(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_an_odd_number_of_steps_leaves_double_buffered_slots_in_the_users_arrays(compiled):
    c_rule, ref_rule = compiled["diffusion"]  # x is read across edges: double-buffered
    graph = graphs.ring(10)
    state = c_rule.state(graph)
    array = state.node["x"]
    array[...] = np.arange(10)
    ref = state.copy()
    c_rule.step(state, steps=3)
    ref_rule.step(ref, steps=3)
    assert state.node["x"] is array
    np.testing.assert_allclose(array, ref.node["x"], rtol=1e-6)


@pytest.mark.parametrize("backend", NATIVE)
def test_check_finite_sees_a_slot_the_block_never_writes(backend):
    """The VM checks the slots a step writes after every step, and the
    others once per call (they cannot change): a NaN in one of those still
    stops the first step, as a check of every slot after every step does."""
    rule = rulec.compile("node x, y\nedge w\nupdate { x = x + 1 }", backend=backend)
    for slot in ("y", "w"):
        state = rule.state(graphs.ring(3))
        (state.node if slot == "y" else state.edge)[slot][1] = np.nan
        with pytest.raises(rulec.NonFiniteError) as caught:
            rule.step(state, steps=5, check_finite=True)
        assert caught.value.step == 1 and state.time == 1, slot
        assert slot in str(caught.value)


@pytest.mark.parametrize("backend", NATIVE)
def test_check_finite_stops_at_the_first_non_finite_step(backend):
    rule = rulec.compile("node x\nupdate { x = x * 10 }", backend=backend)
    state = rule.state(graphs.ring(3))
    state.node["x"] = 1e30
    with pytest.raises(rulec.NonFiniteError) as caught:
        rule.step(state, steps=100, check_finite=True)
    assert caught.value.step == 9  # 1e30 * 10**9 is the first to pass float32's max
    assert state.time == 9
