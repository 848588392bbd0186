"""Lanes: the C driver evaluates many seeds of one rule side by side on the
VM (learning.evaluate_seeds), and each seed's Result must be exactly what
learning.evaluate gives for that seed alone: accuracies, losses, outputs,
steps, failures, retention, confirmation and the final state, bit for bit.

Lanes stay in lockstep through a protocol's phases; a lane that reached a
phase's `until` before the others, failed, or held its goal waits frozen.
The cases below make lanes part ways in each of those places."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import rulec
from rulec import learning as L
from rulec.errors import RulecValueError, RuleErrors
from rulec.printer import format_tree
from rulec.search import Screen, Settings, Space
from rulec.search.space import draw_tree, load_settings

ROOT = Path(__file__).resolve().parent.parent


def assert_same(alone: L.Result, lane: L.Result, what: str) -> None:
    """Every field evaluate() sets, bit for bit (NaN equal to NaN)."""
    for field in ("accuracy", "loss", "steps", "failure", "confirm", "retained", "goal_epoch"):
        assert getattr(lane, field) == getattr(alone, field), f"{what}: {field}"
    if alone.outputs is None:
        assert lane.outputs is None, f"{what}: outputs"
    else:
        assert lane.outputs is not None and np.array_equal(
            alone.outputs.view(np.uint32), lane.outputs.view(np.uint32)), f"{what}: outputs"
    if alone.state is not None:
        assert lane.state.time == alone.state.time and lane.state.seed == alone.state.seed
        for (kind, name, a), (_, _, b) in zip(alone.state.slots(), lane.state.slots(),
                                               strict=True):
            assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), \
                f"{what}: {kind} slot {name}"


def compare(rule, task, topology, protocol, seeds, what="", **options) -> list[L.Result]:
    lanes = L.evaluate_seeds(rule, task, topology, protocol, seeds=seeds, **options)
    assert len(lanes) == len(seeds)
    for seed, lane in zip(seeds, lanes, strict=True):
        alone = L.evaluate(rule, task, topology, protocol, seed=seed, **options)
        assert_same(alone, lane, f"{what} seed {seed}")
    return lanes


BACKPROP = (ROOT / "examples" / "backprop.rule").read_text()


# "c": the C kernels' lanes are states run one after another in one C call
# (learning.driver.StateLanes); "vm": lane registers side by side
BACKENDS = ["vm", "c"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("options", [
    dict(epochs=100, stop_at=None),
    dict(epochs=100, hold=3, confirm=3, retain=50, keep_state=True),
    dict(epochs=7, stop_at=0.5, hold=2, retain=3, keep_state=True),
])
def test_backprop_on_xor_gives_each_seed_what_it_gives_alone(options, backend):
    rule = rulec.compile(BACKPROP, backend=backend)
    results = compare(rule, L.TASKS["xor"], L.layered([2, 4, 1]), L.Protocol(), list(range(9)),
                      "backprop", **options)
    if options.get("retain") == 50:  # seeds reach the goal at different epochs
        assert len({r.goal_epoch for r in results}) > 1


# Readiness by chance: each seed's nodes become ready after a different
# number of steps, so the lanes of one `until` phase finish apart and wait.
DICE = """rule dice
param lr = 1
node inp, is_in, target, train, a, ready, dready
edge w
init { w = gauss() }
update {
    if ready <= 0 and uniform() > 0.6 {
        a = select(is_in, inp, tanh(sum((w * nbr.a)[incoming])))
        ready = 1
    }
    if train > 0 and ready > 0 and dready <= 0 and uniform() > 0.5 {
        w[incoming] -= lr * (a - target) * nbr.a
        dready = 1
    }
}
update reset {
    ready = 0
    dready = 0
    train = 0
}
"""

# Blows up on some seeds (a weight above 1 grows without bound), at
# different steps; the others go on.
BLOWUP = """rule blowup
node inp, is_in, target, train, a, ready, dready
edge w
init { w = 2 * uniform() }
update {
    let waiting = count((1 - nbr.ready)[incoming])
    if ready <= 0 and waiting <= 0 {
        a = select(is_in, inp, sum((w * nbr.a)[incoming]))
        ready = 1
    }
    if train > 0 and ready > 0 and dready <= 0 {
        w[incoming] *= w * w
        dready = 1
    }
}
update reset {
    ready = 0
    dready = 0
    train = 0
}
"""

# A node whose draw at init is low never becomes ready: on seeds where that
# is the output, the budget runs out.
STUCK = """rule stuck
node inp, is_in, target, train, a, ready, dready, b
edge w
init {
    w = uniform()
    b = uniform()
}
update {
    if ready <= 0 and (b > 0.3 or is_in > 0) {
        a = select(is_in, inp, sum((w * nbr.a)[incoming]))
        ready = 1
    }
    if train > 0 and ready > 0 {
        dready = 1
    }
}
update reset {
    ready = 0
    dready = 0
    train = 0
}
"""


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,text", [("dice", DICE), ("blowup", BLOWUP), ("stuck", STUCK)])
def test_lanes_that_part_ways_each_give_what_they_give_alone(name, text, backend):
    rule = rulec.compile(text, backend=backend)
    task, topology = L.TASKS["or"], L.layered([2, 3, 1])
    results = compare(rule, task, topology, L.Protocol(), list(range(12)), name, epochs=15,
                      budget=30, hold=2, confirm=2, retain=4, keep_state=True)
    failures = [r.failure for r in results]
    if name == "blowup":
        assert any(f and f.startswith("non-finite state") for f in failures)
    if name == "stuck":
        assert any(f and f.startswith("budget of 30 steps exhausted") for f in failures)
        assert None in failures


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,text", [("backprop", BACKPROP), ("dice", DICE),
                                       ("blowup", BLOWUP)])
def test_lanes_run_in_one_epoch_calls_give_what_each_seed_gives_alone(monkeypatch, name, text,
                                                                      backend):
    # The lanes' epochs go to C in chunks (bounded memory; Ctrl-C between
    # calls). With one epoch per call, a lane's streak toward `hold` has to
    # go on from call to call, and a lane that failed or held its goal in
    # one call must not run in the next.
    from rulec.learning import driver

    monkeypatch.setattr(driver, "LANE_CHUNK", 1)
    monkeypatch.setattr(driver, "EPOCH_SECONDS", 0.0)  # never grows: every epoch a call
    rule = rulec.compile(text, backend=backend)
    task, topology = (L.TASKS["xor"], L.layered([2, 4, 1])) if name == "backprop" \
        else (L.TASKS["or"], L.layered([2, 3, 1]))
    results = compare(rule, task, topology, L.Protocol(), list(range(10)), name, epochs=100,
                      budget=30, hold=3, confirm=2, retain=5, keep_state=True)
    if name == "backprop":  # some seeds held the goal and stopped, at different epochs
        assert len({r.goal_epoch for r in results} - {None}) > 1


@pytest.mark.parametrize("name,text", [("backprop", BACKPROP), ("dice", DICE),
                                       ("blowup", BLOWUP)])
def test_lanes_whose_temporaries_share_storage_give_the_same_bits(monkeypatch, name, text):
    # lane registers over SHARE_BYTES put temporaries never live at once in
    # one array (docs/vm.md); forced on here, every Result and final state
    # must equal the lanes' with an array per temporary
    from rulec.backends.vm import native

    program = rulec.compile(text, backend="vm").program
    task, topology = (L.TASKS["xor"], L.layered([2, 4, 1])) if name == "backprop" \
        else (L.TASKS["or"], L.layered([2, 3, 1]))
    got = []
    for share in (1 << 60, 0):
        monkeypatch.setattr(native, "SHARE_BYTES", share)
        rule = rulec.Rule(program, "vm")  # its own lane registers
        got.append(L.evaluate_seeds(rule, task, topology, L.Protocol(), seeds=list(range(12)),
                                    epochs=30, budget=30, hold=2, confirm=2, retain=4,
                                    keep_state=True))
    for seed, (plain, shared) in enumerate(zip(*got, strict=True)):
        assert_same(plain, shared, f"{name} seed {seed}")
    registers = next(iter(rule.runner.blocks._lanes.values()))  # the sharing ones
    vm = rule.runner.blocks.vm
    # the registers the lanes have (Program.tiled() may add some only tiled steps use)
    sources = vm.registers.source[:len(registers.addresses)]
    temps = [r for r, src in enumerate(sources) if src[0] == "temp"]
    assert len({int(registers.addresses[r]) for r in temps}) < len(temps)


@pytest.mark.parametrize("backend", BACKENDS)
def test_more_seeds_than_lanes_run_in_batches_with_the_same_results(backend):
    rule = rulec.compile(DICE, backend=backend)
    compare(rule, L.TASKS["and"], L.layered([2, 1], bias=True), L.Protocol(), list(range(70)),
            "dice", epochs=3, budget=20)


def test_one_seed_and_backends_without_lanes_run_each_seed_alone():
    delta = (ROOT / "tests" / "calibration" / "delta_fixed.rule").read_text()
    protocol = L.FixedTime(forward=1, learn=1)
    task, topology = L.TASKS["or"], L.layered([2, 1], bias=True)
    for backend in ("vm", "c", "numpy"):
        rule = rulec.compile(delta, backend=backend)
        compare(rule, task, topology, protocol, [3], backend, epochs=20)
        compare(rule, task, topology, protocol, [0, 1, 2], backend, epochs=20, hold=2,
                confirm=2, retain=5)


def test_bad_arguments_are_refused_as_evaluate_refuses_them():
    rule = rulec.compile(BACKPROP, backend="vm")
    with pytest.raises(RulecValueError, match="hold must be a whole number"):
        L.evaluate_seeds(rule, L.TASKS["xor"], L.layered([2, 4, 1]), seeds=[0, 1], hold=0)


def _space_rules(settings: Settings, count: int, draw: int):
    """Rules of a space's random stream that compile and fit its protocol."""
    options, protocol = settings.space.options(), settings.space.make_protocol()
    found, index = [], 0
    while len(found) < count:
        text = format_tree(draw_tree(options, draw, index))
        index += 1
        try:
            rule = rulec.compile(text, backend="vm")
            protocol.check(rule)
        except (RuleErrors, RulecValueError, L.ProtocolError):
            continue
        found.append((index - 1, rule))
    return found, protocol


@pytest.mark.parametrize("space", ["default", "logic.toml", "hidden.toml"])
def test_random_rules_of_each_space_give_each_seed_what_it_gives_alone(space):
    """Random rules fail in the ways a rule can (non-finite states, budgets
    run out), on some seeds and not others, or run on with diverging
    accuracies."""
    if space == "default":
        settings = Settings(Space(), Screen())
    else:
        settings = load_settings(ROOT / "examples" / "search" / space)
    rules, protocol = _space_rules(settings, 25, draw=7)
    task = L.task_named(settings.screen.tasks[0])
    topology = L.topology_from_spec(settings.screen.graphs[0], task)
    outcomes = set()
    for index, rule in rules:
        results = compare(rule, task, topology, protocol, [0, 1, 2, 5, 8], f"rule {index}",
                          epochs=6, budget=settings.space.budget, hold=2, confirm=2, retain=3,
                          keep_state=True)
        outcomes |= {(r.failure or "ran").split(":")[0][:20] for r in results}
    if space == "default":  # its protocol waits for `until`: budgets and blow-ups happen
        assert len(outcomes) >= 2, outcomes


@pytest.mark.parametrize("backend", BACKENDS)
def test_seeds_that_start_from_given_states_give_what_they_give_alone(backend):
    """evaluate_seeds(starts=...) (a task learned on the states another task
    left) against evaluate(start=...) per seed: each lane starts as a copy of
    its state, its time and seed going on."""
    rule = rulec.compile(DICE, backend=backend)
    task, topology = L.TASKS["and"], L.layered([2, 3, 1])
    seeds = list(range(6))
    first = L.evaluate_seeds(rule, task, topology, L.Protocol(), epochs=8, seeds=seeds,
                             budget=30, keep_state=True)
    starts = [r.state for r in first]
    lanes = L.evaluate_seeds(rule, L.TASKS["or"], topology, L.Protocol(), epochs=8,
                             seeds=seeds, budget=30, hold=2, retain=3, confirm=2,
                             keep_state=True, starts=starts)
    for seed, start, lane in zip(seeds, starts, lanes, strict=True):
        alone = L.evaluate(rule, L.TASKS["or"], topology, L.Protocol(), epochs=8, seed=seed,
                           budget=30, hold=2, retain=3, confirm=2, keep_state=True,
                           start=start)
        assert_same(alone, lane, f"seed {seed}")
        assert lane.state.time > start.time
    with pytest.raises(RulecValueError, match="one state per seed"):
        L.evaluate_seeds(rule, task, topology, L.Protocol(), seeds=seeds, starts=starts[:2])


def test_the_c_kernels_evaluate_many_seeds_in_one_driver_call(monkeypatch):
    """On the C kernels, evaluate_seeds runs its seeds in one C driver call
    per stage and chunk of epochs (StateLanes), not one call per seed."""
    from rulec.learning import driver

    rule = rulec.compile(DICE, backend="c")
    calls = []
    ffi, lib = driver.library()

    class Counting:
        def __getattr__(self, name):
            found = getattr(lib, name)
            if name in ("rulec_evaluate", "rulec_evaluate_lanes"):
                def counted(*args):
                    calls.append(name)
                    return found(*args)
                return counted
            return found

    monkeypatch.setattr(driver, "library", lambda: (ffi, Counting()))
    results = L.evaluate_seeds(rule, L.TASKS["and"], L.layered([2, 3, 1]), L.Protocol(),
                               epochs=5, seeds=range(20), budget=30)
    assert len(results) == 20 and set(calls) == {"rulec_evaluate_lanes"}
    assert len(calls) <= 3  # 5 epochs: chunks of at most 64 (LANE_CHUNK) per call


def test_the_c_kernels_lanes_run_examples_as_each_state_runs_them_alone():
    """StateLanes.examples (the run hurdle's call) against Episode.example
    on each lane's own fresh state: the same outputs and states, bit for bit."""
    from rulec.learning.driver import StateLanes, lanes_for
    from rulec.learning.evaluation import Episode, fresh_state

    rule = rulec.compile(DICE, backend="c")
    task, topology, protocol = L.TASKS["xor"], L.layered([2, 3, 1]), L.Protocol()
    seeds = [3, 4, 5, 6]
    lanes = lanes_for(rule, task, topology, protocol, 30, None, seeds)
    assert isinstance(lanes, StateLanes)
    lanes.start()
    patterns = np.array([[0, 1, 2, 3], [3, 2, 1, 0], [1, 1, 1, 1], [2, 0, 3, 1]], dtype=np.int32)
    found = lanes.examples(patterns, train=True)
    episode = Episode(rule, task, topology, protocol, 30, None)
    for lane, seed in enumerate(seeds):
        state = fresh_state(rule, topology, protocol, seed)
        rows = np.zeros((len(task.inputs), task.n_outputs), dtype=np.float32)
        for k in patterns[lane]:
            rows[k] = episode.example(state, int(k), train=True)
        why, got = found[lane]
        assert why is None
        assert np.array_equal(got.view(np.uint32), rows.view(np.uint32)), f"lane {lane}"
        assert np.array_equal(lanes.node_slot("a")[:, lane].view(np.uint32),
                              state.node["a"].view(np.uint32))
        assert lanes.state(lane).time == state.time


@pytest.mark.parametrize("expr", ["nbr.a - w", "w / (1 + square(nbr.a))", "-nbr.a", "abs(w)",
                                  "(nbr.a - w)[incoming]"])
def test_lanes_sums_that_compute_what_they_add_give_each_seed_what_it_gives_alone(expr):
    """The lanes' red_sum_of (a sum computing the values it adds: sub, div,
    neg, abs, square; masked or not) against one state's, seed by seed."""
    from rulec.backends.vm.translate import OPCODES

    text = ("node inp, is_in, target, train, a, ready, dready\nedge w\n"
            "init { w = gauss() }\n"
            f"update {{\n    a = select(is_in, inp, tanh(sum({expr})))\n"
            "    ready = 1\n    dready = 1\n"
            "    w[incoming] -= 0.5 * (a - target) * nbr.a * train\n}\n")
    rule = rulec.compile(text, backend="vm")
    assert any(ins[0] & 255 == OPCODES["red_sum_of"]
               for ins in rule.runner.blocks.vm.blocks["update"].step)
    compare(rule, L.TASKS["or"], L.layered([2, 3, 1]), L.Protocol(), list(range(8)), expr,
            epochs=12, hold=2, keep_state=True)


def test_the_c_kernels_run_as_many_seeds_per_call_as_their_states_fit():
    """64 states of a small graph in one call; on a large graph as many as
    fit LANE_BYTES (the states are the lanes' memory), at least one."""
    from rulec import graphs

    rule = rulec.compile(BACKPROP, backend="c")
    runner = rule.runner
    assert runner.lane_width(L.layered([2, 4, 1]).graph) == 64
    big = graphs.erdos_renyi(1 << 14, 16 / (1 << 14), seed=1)
    state = rule.state(big)
    per_state = sum(array.nbytes for _, _, array in state.slots())
    width = runner.lane_width(big)
    assert 1 <= width < 64 and width * per_state <= runner.LANE_BYTES < (width + 1) * per_state
