"""Protocols as data: the schedules, and the C driver against the Python
reference (rulec.learning.evaluate with engine='python'): the same accuracy per
epoch, steps and failure, on the VM and on the C backend."""

from __future__ import annotations

import numpy as np
import pytest

import rulec
from rulec import learning as tasks
from rulec.errors import RulecValueError
from rulec.generate import Options, SeededSource, rule
from rulec.learning import evaluate_many

from .conftest import EXAMPLES

HANDSHAKE_RULES = ["backprop", "delta"]


def assert_same(fast: tasks.Result, reference: tasks.Result, context: str) -> None:
    assert fast.accuracy == reference.accuracy, context
    assert fast.steps == reference.steps, context
    assert fast.failure == reference.failure, context
    np.testing.assert_allclose(fast.loss, reference.loss, rtol=1e-5, err_msg=context)
    if reference.outputs is not None:
        np.testing.assert_array_equal(fast.outputs, reference.outputs, err_msg=context)


def compare(rule_text_or_path, backend, task, shape, protocol, epochs, seed, budget=100):
    if isinstance(rule_text_or_path, str):
        compiled = rulec.compile(rule_text_or_path, backend=backend)
    else:
        compiled = rulec.compile_file(rule_text_or_path, backend=backend)
    args = (compiled, tasks.TASKS[task], tasks.layered(shape), protocol)
    fast = tasks.evaluate(*args, epochs=epochs, seed=seed, budget=budget, stop_at=None,
                          engine="c")
    reference = tasks.evaluate(*args, epochs=epochs, seed=seed, budget=budget, stop_at=None,
                               engine="python")
    return fast, reference


@pytest.mark.parametrize("backend", ["vm", "c"])
@pytest.mark.parametrize("name", HANDSHAKE_RULES)
@pytest.mark.parametrize("task,shape", [("xor", [2, 4, 1]), ("add2", [4, 8, 3])])
def test_the_c_driver_equals_the_reference_on_example_rules(backend, name, task, shape):
    fast, reference = compare(EXAMPLES / f"{name}.rule", backend, task, shape,
                              tasks.Protocol(), epochs=12, seed=3)
    assert_same(fast, reference, f"{name} on {task} ({backend})")
    assert reference.accuracy and reference.failure is None


FIXED = tasks.FixedTime(forward=3, learn=2)
NAMES = ("inp", "target", "train", "a", "h", "p")


@pytest.mark.parametrize("backend", ["vm", "c"])
@pytest.mark.parametrize("protocol", [FIXED, tasks.Simultaneous(steps=3), tasks.Protocol()],
                         ids=["fixed", "simultaneous", "handshake"])
def test_the_c_driver_equals_the_reference_on_random_rules(backend, protocol):
    names = NAMES + (("ready", "dready") if isinstance(protocol, tasks.Protocol) else ())
    options = Options(node_names=names, node_slots=(len(names), len(names)), max_depth=3)
    outcomes = set()
    for seed in range(12):
        text = rule(SeededSource(seed), options).text
        if isinstance(protocol, tasks.Protocol):
            text = text.replace("node ", "node is_in, ", 1)
        fast, reference = compare(text, backend, "xor", [2, 3, 1], protocol, epochs=4,
                                  seed=seed, budget=20)
        assert_same(fast, reference, f"seed {seed} ({backend})\n{text}")
        outcomes.add((reference.failure or "ok").split(":")[0][:20])
    if not isinstance(protocol, tasks.Protocol):  # random rules rarely raise `ready`
        assert len(outcomes) >= 2  # the rules do not all end the same way


def test_failures_are_the_same_in_c_and_python():
    nan_rule = "node inp, is_in, target, train, a, ready, dready\nupdate { a = log(0 - 1) }"
    never = "node inp, is_in, target, train, a, ready, dready\nupdate { a = inp }"
    for text, expected in ((nan_rule, "non-finite state"), (never, "budget of 7 steps")):
        for backend in ("vm", "c"):
            fast, reference = compare(text, backend, "xor", [2, 2, 1], tasks.Protocol(),
                                      epochs=5, seed=0, budget=7)
            assert_same(fast, reference, text)
            assert fast.failure.startswith(expected)


def test_outputs_that_are_not_finite_fail_the_epoch():
    text = "node inp, target, train, a\nupdate { a = 1 / (inp - inp) }"
    fast, reference = compare(text, "vm", "and", [2, 1], FIXED, epochs=3, seed=0)
    assert_same(fast, reference, text)


def test_a_fixed_time_protocol_needs_no_flags_and_delta_learns_or_on_it():
    """The fixed-time protocol works with rules that never raise a ready flag."""
    text = ("param lr = 1\nnode inp, target, train, a\nedge w\ninit { w = 0.5 * gauss() }\n"
            "update {\n    a = sigmoid(sum((w * nbr.inp)[incoming]))\n"
            "    w[incoming] -= train * lr * (a - target) * nbr.inp\n}\n")
    compiled = rulec.compile(text, backend="vm")
    result = tasks.evaluate(compiled, tasks.TASKS["or"], tasks.layered([2, 1], bias=True),
                            tasks.FixedTime(forward=1, learn=1), epochs=200, seed=1)
    assert result.failure is None and result.final_accuracy == 1.0


def test_evaluate_many_equals_one_at_a_time_with_threads():
    texts = [(EXAMPLES / f"{n}.rule").read_text() for n in HANDSHAKE_RULES] * 2
    task, topology = tasks.TASKS["xor"], tasks.layered([2, 4, 1])
    serial = evaluate_many(texts, task, topology, epochs=8, seeds=(0, 1), stop_at=None)
    parallel = evaluate_many(texts, task, topology, epochs=8, seeds=(0, 1), stop_at=None,
                             threads=2)
    for i, (a, b) in enumerate(zip(serial, parallel, strict=True)):
        for seed, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"rule {i} seed {seed}")
    single = tasks.evaluate(rulec.compile(texts[0], backend="vm"), task, topology, epochs=8,
                            seed=1, stop_at=None)
    assert_same(serial[0][1], single, "rule 0 seed 1")


def test_a_schedule_is_data():
    phases = tasks.FixedTime(forward=4, learn=2).schedule(budget=100)
    assert [p.op for p in phases] == ["write", "write", "write", "run", "read", "write",
                                      "write", "run"]
    assert phases[3].steps == 4 and phases[-1].steps == 2 and phases[-1].when == "train"
    handshake = tasks.Protocol().schedule(budget=30)
    waits = [p for p in handshake if p.until]
    assert [(p.until, p.nodes, p.steps) for p in waits] == [("ready", "outputs", 30),
                                                             ("dready", "inputs", 30)]


@pytest.mark.parametrize("engine", ["python", "c"])
def test_an_output_flag_tells_outputs_from_hidden_nodes_that_feed_nothing(engine):
    # the output answers with its flag: 1 on outputs, 0 on every other node
    rule_ = rulec.compile("node inp, target, train, a, is_out\nedge w\n"
                          "update { a = is_out + 0 * sum(w * nbr.inp) }", backend="vm")
    protocol = tasks.protocol_named("fixed", (("output_flag", "is_out"),), forward=2, learn=1)
    topology = tasks.layered([2, 3, 1], bias=True)
    state = tasks.fresh_state(rule_, topology, protocol, seed=0)
    assert state.node["is_out"].tolist() == [0, 0, 0, 0, 0, 0, 1]
    result = tasks.evaluate(rule_, tasks.task_named("or"), topology, protocol, epochs=1,
                            stop_at=None, engine=engine)
    assert result.failure is None and (result.outputs == 1).all()
    # without the role, the slot is the rule's own (0 everywhere)
    plain = tasks.fresh_state(rule_, topology, tasks.protocol_named("fixed"), seed=0)
    assert not plain.node["is_out"].any()


ERROR_DELTA = """
rule delta_err
param lr = 1
node inp, target, train, a, err
edge w
init { w = 0.5 * gauss() }
update {
    a = sigmoid(sum((w * nbr.inp)[incoming]))
    w[incoming] += lr * err * nbr.inp
}
"""


@pytest.mark.parametrize("name", ["fixed", "handshake"])
def test_a_broadcast_error_reaches_every_node_while_training_and_c_agrees(name):
    # the rule never reads the target: the error the protocol broadcasts
    # (target - output, 0 outside training) is all it learns from
    # (handshake: ready after one step, one training step, no done flag)
    text = ERROR_DELTA if name == "fixed" else ERROR_DELTA.replace(
        "node inp,", "node is_in, ready, inp,").replace(
        "update {", "update reset { ready = 0 }\nupdate {\n    ready = 1")
    rule_ = rulec.compile(text, backend="vm")
    settings = {"forward": 3, "learn": 3} if name == "fixed" else {}
    roles = (("error", "err"),) if name == "fixed" else (("error", "err"), ("done", None))
    protocol = tasks.protocol_named(name, roles, **settings)
    assert ("error", "err") in protocol.roles()
    topology = tasks.layered([2, 1], bias=True)
    results = [tasks.evaluate(rule_, tasks.task_named("or"), topology, protocol, epochs=60,
                              seed=4, engine=engine) for engine in ("python", "c")]
    assert results[0].accuracy == results[1].accuracy and results[0].failure is None
    assert np.array_equal(results[0].outputs, results[1].outputs)
    assert results[0].final_accuracy == 1.0
    # outside training the slot holds 0: scoring does not leak the targets
    state = tasks.fresh_state(rule_, topology, protocol, seed=4)
    episode = tasks.evaluation.Episode(rule_, tasks.task_named("or"), topology, protocol, 100,
                                       None)
    episode.example(state, 3, train=False)
    assert not state.node["err"].any()
    episode.example(state, 0, train=True)  # target 0: the error is -output, everywhere
    assert (state.node["err"] == state.node["err"][0]).all() and state.node["err"][0] < 0


def test_the_simultaneous_protocol_has_no_error_role():
    with pytest.raises(tasks.ProtocolError, match="error"):
        tasks.protocol_named("simultaneous", (("error", "err"),))


# ---------------------------------------------------------------- settling

# A recurrent relaxation: the output feeds back on itself, so a fixed count
# of forward steps reads it mid-flight; settling reads it at rest.
RELAX = """rule relax
param lr = 0.5
node inp, target, train, a
edge w
init { w = 0.5 * gauss() }
update {
    a = select(count(incoming), tanh(0.5 * a + sum((w * nbr.a)[incoming])), inp)
    w[incoming] -= train * lr * (a - target) * nbr.a
}
"""
# flips sign every step: never settles
FLIP = "node inp, target, train, a\nupdate { a = select(count(incoming), 1 - a, inp) }"
# grows tenfold every step: non-finite before the budget
GROW = "node inp, target, train, a\nupdate { a = select(count(incoming), 10 * a + 1, inp) }"
SETTLE = tasks.FixedTime(learn=1, settle=1e-4)


@pytest.mark.parametrize("backend", ["vm", "c"])
@pytest.mark.parametrize("name,text,failure", [
    ("relax", RELAX, None),
    ("flip", FLIP, "budget of 60 steps exhausted waiting for 'a' to settle"),
    ("grow", GROW, "non-finite state: non-finite value after step 40 of this call")],
    ids=["relax", "flip", "grow"])
def test_a_settle_phase_is_the_same_in_c_python_and_lanes(backend, name, text, failure):
    """Step until a step moves the outputs by at most `settle`: the Python
    reference, the C driver and the lanes agree on the outputs, the steps
    (each example's own) and how it fails."""
    compiled = rulec.compile(text, backend=backend)
    task, topology = tasks.TASKS["or"], tasks.layered([2, 1], bias=True)
    args = (compiled, task, topology, SETTLE)
    for seed in range(3):
        fast = tasks.evaluate(*args, epochs=6, seed=seed, budget=60, engine="c")
        reference = tasks.evaluate(*args, epochs=6, seed=seed, budget=60, engine="python")
        assert_same(fast, reference, f"{name} seed {seed} ({backend})")
        assert reference.failure == failure if failure is None else \
            reference.failure.startswith(failure)
    lanes = tasks.evaluate_seeds(*args, epochs=6, seeds=[0, 1, 2], budget=60)
    for seed, lane in enumerate(lanes):
        alone = tasks.evaluate(*args, epochs=6, seed=seed, budget=60)
        assert (lane.accuracy, lane.steps, lane.failure) == \
            (alone.accuracy, alone.steps, alone.failure)


def test_settling_stops_once_the_outputs_are_at_rest():
    """A settle phase runs fewer steps than its budget when the rule comes to
    rest, and as many as the rest takes: a looser tolerance settles sooner."""
    compiled = rulec.compile(RELAX, backend="vm")
    task, topology = tasks.TASKS["or"], tasks.layered([2, 1], bias=True)
    steps = {}
    for tolerance in (1e-2, 1e-5):
        protocol = tasks.FixedTime(learn=1, settle=tolerance)
        result = tasks.evaluate(compiled, task, topology, protocol, epochs=1, seed=0,
                                budget=500, stop_at=None)
        assert result.failure is None
        steps[tolerance] = result.steps
    # 4 training and 4 scoring examples, each 1 learn step when training
    assert 8 < steps[1e-2] < steps[1e-5] < 8 * 500


def test_a_settle_tolerance_is_checked_and_only_fixed_has_one():
    with pytest.raises(RulecValueError, match="settle is how little"):
        tasks.FixedTime(settle=-1.0).schedule(10)
    with pytest.raises(RulecValueError, match="a run phase with the slot it watches"):
        tasks.Phase("run", nodes="outputs", settle=0.1)
    with pytest.raises(tasks.ProtocolError, match="the handshake protocol has no settle"):
        tasks.protocol_named("handshake", settle=0.1)
    phases = tasks.FixedTime(settle=0.01).schedule(77)
    settles = [p for p in phases if p.settle]
    assert len(settles) == 1 and settles[0].steps == 77 and settles[0].slot == "a"
