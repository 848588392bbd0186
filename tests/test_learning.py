"""Learning tasks: backprop as a local rule learns, the baseline is scored
beside it, bad rules fail fast, and `rulec train` works (docs/learning.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import rulec
from rulec import learning as tasks

from .conftest import EXAMPLES

XOR_EPOCHS = 3000  # the documented budget


@pytest.fixture(scope="module")
def backprop():
    return rulec.compile_file(EXAMPLES / "backprop.rule")


def solved(rule, task, sizes, seeds, epochs):
    return sum(tasks.evaluate(rule, tasks.TASKS[task], tasks.layered(sizes), epochs=epochs,
                              seed=seed).final_accuracy == 1.0 for seed in seeds)


def test_backprop_learns_xor_on_at_least_9_of_10_seeds(backprop):
    assert solved(backprop, "xor", [2, 4, 1], range(10), XOR_EPOCHS) >= 9


@pytest.mark.parametrize("task", ["and", "or"])
def test_backprop_learns_and_and_or_on_every_seed(backprop, task):
    assert solved(backprop, task, [2, 4, 1], range(10), 300) == 10


def test_backprop_learns_two_bit_addition(backprop):
    result = tasks.evaluate(backprop, tasks.TASKS["add2"], tasks.layered([4, 8, 3]),
                            epochs=500, seed=0)
    assert result.final_accuracy == 1.0 and result.failure is None


def test_the_baseline_learns_the_linear_tasks_but_not_addition():
    delta = rulec.compile_file(EXAMPLES / "delta.rule")
    assert solved(delta, "and", [2, 4, 1], range(5), 500) == 5
    result = tasks.evaluate(delta, tasks.TASKS["add2"], tasks.layered([4, 8, 3]), epochs=200,
                            seed=0)
    assert result.final_accuracy < 1.0


def test_tasks_are_the_truth_tables_they_claim():
    add = tasks.TASKS["add2"]
    for inputs, targets in zip(add.inputs, add.targets, strict=True):
        a, b = int(inputs[0]) * 2 + int(inputs[1]), int(inputs[2]) * 2 + int(inputs[3])
        assert int("".join(str(int(t)) for t in targets), 2) == a + b
    sub = tasks.TASKS["sub2"]
    for inputs, targets in zip(sub.inputs, sub.targets, strict=True):
        a, b = int(inputs[0]) * 2 + int(inputs[1]), int(inputs[2]) * 2 + int(inputs[3])
        borrow, value = int(targets[0]), int(targets[1]) * 2 + int(targets[2])
        assert value - 4 * borrow == a - b
    custom = tasks.Task.from_table("id", {(0,): (0,), (1,): (1,)})
    assert custom.n_inputs == custom.n_outputs == 1
    assert tasks.TASKS["xor"].targets.ravel().tolist() == [0, 1, 1, 0]


def test_topologies_put_inputs_lowest_and_outputs_highest():
    top = tasks.layered([2, 3, 1], bias=True)
    assert top.inputs.tolist() == [0, 1, 2] and top.outputs.tolist() == [6]
    assert top.graph.n_nodes == 7
    wax = tasks.waxman(2, 1, 6, seed=3)
    assert wax.inputs.tolist() == [0, 1] and wax.outputs.tolist() == [8]
    assert (np.diff(wax.graph.row_ptr) > 0).all()  # no isolated node
    with pytest.raises(ValueError, match="needs 2 inputs"):
        tasks.topology_from_spec("layered:3,4,1", tasks.TASKS["xor"])


NAN_RULE = """
node inp, is_in, target, train, a, ready, dready
update {
    a = log(-1)
    ready = 1
    dready = 1
}
"""

NEVER_READY = """
node inp, is_in, target, train, a, ready, dready
update { a = inp }
"""


def test_a_rule_that_makes_nan_fails_on_its_first_step():
    result = tasks.evaluate(rulec.compile(NAN_RULE), tasks.TASKS["xor"], tasks.layered([2, 2, 1]),
                            epochs=100)
    assert result.failure is not None and "non-finite" in result.failure
    assert result.steps <= 1 and result.accuracy == []
    assert result.seconds < 1.0  # measured: well under 10 ms (docs/learning.md)


NAN_LEFT_BY_INIT = """
node inp, is_in, target, train, a, ready, dready, q
init { q = log(-1) }
update {
    a = inp
    ready = 1
    dready = 1
}
"""


@pytest.mark.parametrize("backend,engine", [("c", "c"), ("c", "python"), ("vm", "c"),
                                            ("vm", "python"), ("numpy", "python")])
def test_a_nan_in_a_slot_no_step_writes_fails_the_first_step(backend, engine):
    # The C driver checks the slots a block writes after every step and the
    # others once per run of the block (they cannot change in between): a
    # NaN that init left in `q`, which update never touches, must fail the
    # first step as a check of the whole state after every step does.
    result = tasks.evaluate(rulec.compile(NAN_LEFT_BY_INIT, backend=backend), tasks.TASKS["xor"],
                            tasks.layered([2, 2, 1]), epochs=5, engine=engine)
    assert result.failure is not None and "node slot 'q'" in result.failure
    assert result.steps == 1 and result.accuracy == []


def test_the_epochs_per_driver_call_grow_to_fill_the_time_between_returns():
    from rulec.learning.driver import CHUNK_GROWTH, EPOCH_SECONDS, next_chunk

    assert next_chunk(1, EPOCH_SECONDS / 100) == 50  # half of EPOCH_SECONDS at that pace
    assert next_chunk(1, 0.0) == CHUNK_GROWTH  # at most CHUNK_GROWTH times
    assert next_chunk(4, EPOCH_SECONDS * 0.45) == 8  # at least twice
    assert next_chunk(4, EPOCH_SECONDS) == 4  # a call that long: no more


def test_a_rule_whose_outputs_never_become_ready_fails_at_the_budget():
    result = tasks.evaluate(rulec.compile(NEVER_READY), tasks.TASKS["xor"],
                            tasks.layered([2, 2, 1]), epochs=100, budget=25)
    assert result.failure == "budget of 25 steps exhausted waiting for 'ready'"
    assert result.steps == 25


def test_a_protocol_slot_the_rule_lacks_is_a_clear_error():
    with pytest.raises(ValueError, match=r"lacks node slots .target. \(target\), .train."):
        tasks.evaluate(rulec.compile("node inp, is_in, a\nupdate { a = inp }"),
                       tasks.TASKS["xor"], tasks.layered([2, 2, 1]))


def test_rulec_train_prints_the_table_and_writes_the_plot(run_cli, tmp_path):
    plot = tmp_path / "curve.png"
    result = run_cli("train", EXAMPLES / "backprop.rule", "--task", "xor", "--graph",
                     "layered:2,4,1", "--epochs", "3000", "--seed", "1", "--plot", plot)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert "accuracy: 100.0%" in lines and lines[-1].startswith("learning curve written to")
    assert any(line.startswith("01") and line.endswith("yes") for line in lines)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "epoch" in result.stderr  # the progress bar


def test_rulec_train_rejects_an_unknown_task(run_cli):
    result = run_cli("train", EXAMPLES / "backprop.rule", "--task", "xnor", "--graph",
                     "layered:2,4,1")
    assert result.returncode == 1 and "unknown task 'xnor'" in result.stderr


# Outputs that grow until the state overflows, after some complete epochs.
BLOWS_UP = """rule blow
node inp, target, train, a
edge w
update {
    a = sum(nbr.inp[incoming]) + a * 3 + 1
}
"""


@pytest.mark.parametrize("backend", ["vm", "c"])
def test_a_failed_evaluation_keeps_the_last_complete_epochs_outputs_as_the_reference(backend):
    """The C driver scores an epoch in working rows: a failure part-way through
    an epoch leaves the last complete epoch's outputs, as the reference does."""
    protocol = tasks.FixedTime(forward=3, learn=1)
    topology = tasks.layered([2, 1])
    got = tasks.evaluate(rulec.compile(BLOWS_UP, backend=backend), tasks.TASKS["and"], topology,
                         protocol, epochs=40, stop_at=None)
    with np.errstate(over="ignore"):
        want = tasks.evaluate(rulec.compile(BLOWS_UP, backend="numpy"), tasks.TASKS["and"],
                              topology, protocol, epochs=40, stop_at=None)
    assert got.failure is not None and got.failure == want.failure
    assert len(got.accuracy) == len(want.accuracy) > 1
    np.testing.assert_array_equal(got.outputs, want.outputs)


DELTA_FIXED = (EXAMPLES.parent / "tests" / "calibration" / "delta_fixed.rule").read_text()


def test_retention_trains_on_after_the_goal_alike_in_c_and_python():
    """retain=R: after the goal at epoch E, max(E, R) more epochs with the
    epoch orders going on as in one run (so a split run equals a straight one)."""
    protocol = tasks.FixedTime(forward=1, learn=1)
    topology = tasks.topology_from_spec("layered:2,1,bias", tasks.TASKS["or"])
    runs = {}
    for engine, backend in (("c", "vm"), ("python", "numpy")):
        rule = rulec.compile(DELTA_FIXED, backend=backend)
        runs[engine] = tasks.evaluate(rule, tasks.TASKS["or"], topology, protocol, epochs=200,
                                      seed=3, hold=5, retain=40, engine=engine)
    c, ref = runs["c"], runs["python"]
    assert c.goal_epoch == ref.goal_epoch and c.goal_epoch is not None
    assert len(c.retained) == max(c.goal_epoch, 40) and c.retained == ref.retained
    assert c.steps == ref.steps
    straight = tasks.evaluate(rulec.compile(DELTA_FIXED, backend="vm"), tasks.TASKS["or"],
                              topology, protocol, epochs=c.goal_epoch + len(c.retained),
                              seed=3, stop_at=None)
    assert straight.accuracy == c.accuracy + c.retained
    np.testing.assert_array_equal(straight.outputs, c.outputs)


def test_tasks_by_name_include_parity_and_truth_tables():
    parity = tasks.task_named("parity3")
    assert parity.inputs.shape == (8, 3)
    assert parity.targets.ravel().tolist() == [0, 1, 1, 0, 1, 0, 0, 1]
    np.testing.assert_array_equal(tasks.task_named("table:0110").targets,
                                  tasks.TASKS["xor"].targets)
    np.testing.assert_array_equal(tasks.task_named("table:0001").targets,
                                  tasks.TASKS["and"].targets)
    for bad, words in [("table:011", r"2\^N input patterns"), ("table:01x0", r"2\^N input"),
                       ("parity1", "2 to 8 inputs"), ("parity12", "2 to 8 inputs"),
                       ("nope", "parityN")]:
        with pytest.raises(tasks.TaskError, match=words):
            tasks.task_named(bad)


def test_train_learns_three_bit_parity_from_the_command_line(run_cli):
    result = run_cli("train", EXAMPLES / "backprop.rule", "--task", "parity3", "--graph",
                     "layered:3,6,1", "--epochs", "3000", "--seed", "0", "-q")
    assert result.returncode == 0, result.stderr
    assert "accuracy: 100.0%" in result.stdout


def test_orders_are_numpy_permutation_draws_whatever_was_asked_before():
    # orders are cached by seed: a longer run's first rows are a shorter run's
    # rows, and asking in any order gives numpy's own draws
    from rulec.learning.results import orders, score_orders

    def drawn(stream, epochs):
        rng = np.random.default_rng(stream)
        return np.array([rng.permutation(4) for _ in range(epochs)], dtype=np.int32)

    xor = tasks.TASKS["xor"]
    for epochs in (3, 40, 7, 100, 1):
        assert (orders(xor, epochs, 21) == drawn(21, epochs)).all()
        assert (score_orders(xor, epochs, 21) == drawn([21, 1], epochs)).all()
    assert not orders(xor, 5, 21).flags.writeable


@pytest.mark.parametrize("small", [False, True])
def test_orders_are_numpy_permutation_draws_in_any_order_of_asking(monkeypatch, small):
    # The orders are shuffled in C from the bit generator's raw outputs, and
    # only a stream's first rows are kept; they must be numpy's own
    # rng.permutation draws, for every stream kind a run uses (an int, a
    # tuple, a list), pattern counts around the rejection masks' edges, and
    # rows asked for in order, again, backwards and past the kept prefix.
    # small: a prefix of a few rows, and too few raw outputs drawn at first
    # (the C side runs out of words and the stream draws more).
    from rulec.learning import results

    if small:
        monkeypatch.setattr(results, "PREFIX_BYTES", 4 * 7)
        monkeypatch.setattr(results, "RAW_PER_ROW", 0.0)
    monkeypatch.setattr(results, "_STREAMS", {})
    asks = [(0, 3), (0, 7), (3, 15), (15, 40), (40, 41), (0, 90), (5, 12), (60, 90), (20, 30),
            (88, 90), (0, 0), (7, 7)]
    for stream in (0, 2**40 + 3, (21, 1), [21, 2]):
        for patterns in (0, 1, 2, 3, 4, 5, 8, 9, 16, 17, 100):
            want = results.numpy_shuffles(stream, patterns, 90)
            for first, end in asks:
                got = results._permutations(stream, patterns, end, first)
                assert got.shape == (end - first, patterns) and got.dtype == np.int32
                assert (got == want[first:end]).all(), (stream, patterns, first, end)
                assert not got.flags.writeable


def test_orders_asked_by_several_threads_at_once_are_numpy_draws(monkeypatch):
    # evaluate_many runs rules in threads on the same seeds, and the C
    # shuffle runs without the GIL: a stream's reader must not be shared
    # mid-draw (a tiny prefix, so most asks go through the reader)
    import threading

    from rulec.learning import results

    monkeypatch.setattr(results, "PREFIX_BYTES", 4 * 4 * 8)
    monkeypatch.setattr(results, "_STREAMS", {})
    want = results.numpy_shuffles(77, 4, 3000)
    wrong = []

    def ask(step: int) -> None:
        for first in range(0, 3000, step):
            end = min(first + 50, 3000)
            if not (results._permutations(77, 4, end, first) == want[first:end]).all():
                wrong.append((step, first))

    threads = [threading.Thread(target=ask, args=(step,)) for step in (7, 11, 13, 17)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not wrong


def test_train_reproduces_the_search_scoring_of_seeds_as_json(tmp_path, capsys):
    import json

    from rulec.cli import main

    calibration = Path(__file__).parent / "calibration"
    common = ["--graph", "layered:2,1,bias", "--protocol", "fixed", "--forward", "3",
              "--learn", "3", "--epochs", "100", "--hold", "5", "--confirm", "5",
              "--retain", "50", "--json", "-q"]
    assert main(["train", str(calibration / "delta_fixed.rule"), "--task", "or",
                 "--seeds", "3", *common]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["learned"] == 3 and [s["seed"] for s in out["seeds"]] == [0, 1, 2]
    assert all(s["scored"] == 1.0 and s["retained"] == 1.0 for s in out["seeds"])
    # the oscillator reaches 100% and is wrong on untrained passes: scored 75%
    assert main(["train", str(calibration / "oscillator.rule"), "--task", "and",
                 *common]) == 0
    (seed,) = json.loads(capsys.readouterr().out)["seeds"]
    assert seed["accuracy"] == 1.0 and seed["scored"] == 0.75 and seed["confirm"] == 0.75
