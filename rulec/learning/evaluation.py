"""Evaluation: train a rule on a task over epochs and score it after each
one, with the Python reference of a protocol's schedule (one foreign call
per phase) or the C driver (rulec.learning.driver, whole epochs per call).

Bad rules fail fast: a non-finite state, an output that never becomes ready
and an exhausted budget each end the evaluation with a reason.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..api import NonFiniteError, Rule, non_finite_error
from ..errors import RulecValueError
from .driver import fresh_state, lanes_for, run_epochs, schedule_of
from .protocols import Phase, Protocol
from .results import Result, confirm_orders, orders, score, score_orders
from .tasks import Task
from .topologies import Topology, check_topology


class EpisodeFailed(Exception):
    """A phase of an example failed (the message says how)."""


class Episode:
    """The Python reference interpreter of a protocol's schedule."""

    def __init__(self, rule: Rule, task: Task, topology: Topology, protocol,
                 budget: int, params: dict | None) -> None:
        self.rule, self.task, self.top = rule, task, topology
        self.params = params
        self.phases = schedule_of(protocol, budget)  # made once per protocol and budget
        self.steps = 0

    def nodes(self, which: str):
        return {"inputs": self.top.inputs, "outputs": self.top.outputs,
                "all": np.arange(self.top.graph.n_nodes)}[which]

    def example(self, state, k: int, train: bool) -> np.ndarray:
        outputs = None
        for phase in self.phases:
            if (phase.when == "train" and not train) or (phase.when == "test" and train):
                continue
            if phase.op == "write":
                values = state.node[phase.slot]
                if phase.value == "input":
                    n_in = self.task.n_inputs
                    values[self.top.inputs[:n_in]] = self.task.inputs[k]
                    values[self.top.inputs[n_in:]] = 1.0  # bias inputs
                elif phase.value == "target":
                    values[self.top.outputs] = self.task.targets[k]
                elif phase.value == "error":  # on every node: the outputs' mean error
                    error = np.float32(0.0)
                    for want, got in zip(self.task.targets[k], outputs, strict=True):
                        error = np.float32(error + np.float32(np.float32(want) - got))
                    values[:] = np.float32(error / np.float32(len(outputs)))
                else:
                    values[self.nodes(phase.nodes)] = phase.value
            elif phase.op == "read":
                outputs = state.node[phase.slot][self.top.outputs].copy()
            else:
                self.run(state, phase)
        return outputs

    def run(self, state, phase: Phase) -> None:
        if phase.optional and phase.block not in self.rule.blocks:
            return
        try:
            if phase.settle:
                self.settle(state, phase)
                return
            if phase.until is None:
                self.rule.step(state, steps=phase.steps, block=phase.block, params=self.params,
                               check_finite=True)
                self.steps += phase.steps
                return
            done, reached = self.rule.step_until(state, phase.until, self.nodes(phase.nodes),
                                                 phase.steps, block=phase.block,
                                                 params=self.params, check_finite=True)
        except NonFiniteError as exc:
            self.steps += exc.step  # the steps of this phase, the failing one included
            raise
        self.steps += done
        if not reached:
            raise EpisodeFailed(f"budget of {phase.steps} steps exhausted waiting for "
                                f"{phase.waits_for()}")

    def settle(self, state, phase: Phase) -> None:
        """Step until a step moves node slot `phase.slot` on the phase's nodes
        by at most phase.settle (at most phase.steps steps)."""
        values = state.node[phase.slot]
        nodes = self.nodes(phase.nodes)
        for done in range(1, phase.steps + 1):
            before = values[nodes].copy()
            try:
                self.rule.step(state, steps=1, block=phase.block, params=self.params,
                               check_finite=True)
            except NonFiniteError:  # named by the steps of this phase, as the C driver does
                raise non_finite_error(state, done) from None
            if float(np.max(np.abs(values[nodes] - before), initial=0.0)) <= phase.settle:
                self.steps += done
                return
        self.steps += phase.steps
        raise EpisodeFailed(f"budget of {phase.steps} steps exhausted waiting for "
                            f"{phase.waits_for()}")


def evaluate(rule: Rule, task: Task, topology: Topology, protocol=None,
             epochs: int = 100, seed: int = 0, budget: int = 100, params: dict | None = None,
             stop_at: float | None = 1.0, on_epoch: Callable | None = None,
             engine: str = "auto", hold: int = 1, confirm: int = 0,
             retain: int = 0, keep_state: bool = False, start=None) -> Result:
    """Train `rule` on `task` for up to `epochs` (patterns in a seeded shuffled
    order each epoch) and score it after each epoch with a forward-only pass.
    Stops early once accuracy has been at least `stop_at` for `hold` epochs
    in a row (a rule with random outputs is right by luck in some epoch;
    `hold` > 1 asks it to stay right), and at the first failure.

    `retain` > 0: once the goal is reached after E epochs, training goes on
    for max(E, retain) more epochs without stopping (the epoch orders go on
    as in one run); their accuracies are `result.retained` and E is
    `result.goal_epoch`. A rule that learned keeps what it learned; one that
    oscillates (right for some epochs, then wrong) does not.

    `confirm` > 0: after training, that many more scoring passes with no
    training between them (`result.confirm`, their accuracies): a rule that
    learned keeps its answers; one whose outputs drift (chaotic or
    clock-driven dynamics that were right by luck) does not.

    `keep_state`: `result.state` is the state as the evaluation left it.

    `start`: a state of the rule on the topology's graph to train from (a
    copy of it; its seed and time go on), instead of a fresh one: the state
    another task's training left, for tasks learned one after another on
    one state. `seed` still picks the epochs' orders.

    engine 'python' runs the protocol's schedule here, one foreign call per
    phase (the reference); 'c' runs whole epochs in one call of the C driver
    (rulec.learning.driver; the VM and the C backend); 'auto' takes 'c' for
    backends that drive protocols. Both give the same accuracies, steps and failures."""
    protocol = _checked(rule, task, topology, protocol, engine, hold, confirm, retain)
    _check_start(rule, topology, start)
    began = time.perf_counter()
    # a working state kept per rule and graph (unless the caller keeps the
    # state): its VM registers and C views are made once, not per evaluation
    work = None if keep_state else _working_state(rule, topology.graph)
    try:
        return _evaluate(rule, task, topology, protocol, epochs, seed, budget, params, stop_at,
                         on_epoch, engine, hold, confirm, retain, keep_state, began,
                         None if work is None else work[0], start)
    finally:
        if work is not None:
            work[1].release()


def _checked(rule, task, topology, protocol, engine, hold, confirm, retain):
    """The protocol to use, after checking evaluate's arguments."""
    protocol = protocol or Protocol()
    protocol.check(rule)
    check_topology(task, topology)
    for what, value, low in (("hold", hold, 1), ("retain", retain, 0), ("confirm", confirm, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise RulecValueError(f"{what} must be a whole number >= {low}, got {value!r}")
    if engine not in ("auto", "python", "c"):
        raise RulecValueError(f"engine must be 'auto', 'python' or 'c', got {engine!r}")
    return protocol


def evaluate_seeds(rule: Rule, task: Task, topology: Topology, protocol=None,
                   epochs: int = 100, seeds=(0,), budget: int = 100,
                   params: dict | None = None, stop_at: float | None = 1.0,
                   engine: str = "auto", hold: int = 1, confirm: int = 0, retain: int = 0,
                   keep_state: bool = False, starts=None) -> list[Result]:
    """evaluate() on each of `seeds`: the same Results, in the same order,
    bit for bit. On a backend with lanes (the VM), the C driver runs up to
    64 seeds side by side in one call, each seed a lane of the same VM
    instructions (docs/vm.md, "Lanes"); elsewhere, or with engine='python',
    the seeds run one after another. A Result's `seconds` is then its share
    of its batch's time. `starts`: None, or one state per seed to train
    from (evaluate's `start`)."""
    protocol = _checked(rule, task, topology, protocol, engine, hold, confirm, retain)
    seeds = [int(seed) for seed in seeds]
    starts = [None] * len(seeds) if starts is None else list(starts)
    if len(starts) != len(seeds):
        raise RulecValueError(f"evaluate_seeds() got {len(seeds)} seeds and {len(starts)} "
                              "start states; give one state per seed, or none")
    for start in starts:
        _check_start(rule, topology, start)
    width = rule.runner.lane_width(topology.graph) if engine != "python" else 0
    if width < 2 or len(seeds) < 2:
        return [evaluate(rule, task, topology, protocol, epochs, seed, budget, params,
                         stop_at, None, engine, hold, confirm, retain, keep_state, start)
                for seed, start in zip(seeds, starts, strict=True)]
    results = []
    for at in range(0, len(seeds), width):
        results += _evaluate_lanes(rule, task, topology, protocol, epochs, seeds[at:at + width],
                                   budget, params, stop_at, hold, confirm, retain, keep_state,
                                   starts[at:at + width])
    return results


def _evaluate_lanes(rule, task, topology, protocol, epochs, seeds, budget, params, stop_at,
                    hold, confirm, retain, keep_state, starts) -> list[Result]:
    """_evaluate on each seed, as lanes of one C driver call per stage:
    training, retention (lanes that reached the goal) and confirmation."""
    began = time.perf_counter()
    rng_seeds = [s.seed if s is not None else seed for s, seed in zip(starts, seeds, strict=True)]
    lanes = lanes_for(rule, task, topology, protocol, budget, params, seeds, rng_seeds)
    try:
        lanes.start(starts)
        n = len(seeds)
        results = lanes.epochs([epochs] * n, [0] * n, stop_at, hold)
        if retain:
            goals = [len(r.accuracy) if r.failure is None and _reached(r.accuracy, stop_at, hold)
                     else 0 for r in results]
            if any(goals):
                after = lanes.epochs([max(g, retain) if g else 0 for g in goals], goals, None, 1)
                for result, goal, later in zip(results, goals, after, strict=True):
                    if goal:
                        _add_retention(result, goal, later)
        if confirm:
            passes = [confirm if r.failure is None else 0 for r in results]
            if any(passes):
                checked = lanes.epochs(passes, [0] * n, None, 1, confirm=True)
                for result, count, later in zip(results, passes, checked, strict=True):
                    if count:
                        result.confirm = later.accuracy
                        result.steps += later.steps
                        result.failure = later.failure
        seconds = (time.perf_counter() - began) / n
        for lane, result in enumerate(results):
            result.seconds = seconds
            if keep_state:
                result.state = lanes.state(lane)
        return results
    finally:
        lanes.release()


def _working_state(rule: Rule, graph):
    """(state, lock) of `rule` on `graph`, the lock taken; None if another
    thread holds it (that evaluation makes a state of its own)."""
    with _WORK_LOCK:
        per_rule = rule.__dict__.setdefault("_rulec_work_states", {})
        found = per_rule.get(id(graph))
        if found is None or found[0] is not graph:
            if len(per_rule) >= 8:  # a few graphs per rule: drop the oldest
                del per_rule[next(iter(per_rule))]
            found = per_rule[id(graph)] = (graph, rule.state(graph), threading.Lock())
    if not found[2].acquire(blocking=False):
        return None
    return found[1], found[2]


_WORK_LOCK = threading.Lock()


def _check_start(rule, topology, start) -> None:
    if start is None:
        return
    from ..state import State

    if not isinstance(start, State) or start.graph is not topology.graph:
        raise RulecValueError("start must be a State of the rule on the topology's graph (the "
                              "state an evaluation on the same topology kept: keep_state=True)")
    rule._check_state(start)


def _evaluate(rule, task, topology, protocol, epochs, seed, budget, params, stop_at, on_epoch,
              engine, hold, confirm, retain, keep_state, began, into,
              start_state=None) -> Result:
    if start_state is None:
        state = fresh_state(rule, topology, protocol, seed, params, into)
    elif into is None:
        state = start_state.copy()
    else:
        state = into
        state.restore(start_state)
    in_c = engine == "c" or (engine == "auto" and rule.runner.drives_protocol)
    episode = Episode(rule, task, topology, protocol, budget, params)

    def train(first: int, count: int, stop: float | None, callback) -> Result:
        if in_c:
            return run_epochs(rule, state, task, topology, protocol, count, seed, budget,
                              params, stop, callback, hold, first_epoch=first)
        return _python_epochs(episode, state, task, protocol, seed, first, count, stop,
                              callback, hold)

    result = train(0, epochs, stop_at, on_epoch)
    if retain and result.failure is None and _reached(result.accuracy, stop_at, hold):
        goal = len(result.accuracy)
        _add_retention(result, goal, train(goal, max(goal, retain), None, None))
    if confirm and result.failure is None:
        steps = episode.steps
        _confirm(episode, state, task, protocol, seed, confirm, result)
        result.steps += episode.steps - steps
    result.seconds = time.perf_counter() - began
    if keep_state:
        result.state = state
    return result


def _add_retention(result: Result, goal: int, after: Result) -> None:
    """`result` (the goal reached after `goal` epochs) with the retention
    phase's epochs `after`: their accuracies, steps, failure and outputs."""
    result.goal_epoch, result.retained = goal, after.accuracy
    result.steps += after.steps
    result.failure = after.failure
    if after.outputs is not None:
        result.outputs = after.outputs


def _reached(accuracy: list[float], stop_at: float | None, hold: int) -> bool:
    """Whether the last `hold` epochs are all at `stop_at` (the goal)."""
    return stop_at is not None and len(accuracy) >= hold and min(accuracy[-hold:]) >= stop_at


def _python_epochs(episode: Episode, state, task: Task, protocol, seed: int, first: int,
                   count: int, stop_at: float | None, on_epoch, hold: int) -> Result:
    """Epochs first .. first+count-1 of an evaluation, by the reference."""
    result = Result()
    steps = episode.steps
    try:
        training = orders(task, first + count, seed, first)
        scoring = score_orders(task, first + count, seed, first)
        for epoch, order in enumerate(training):
            for k in order:
                episode.example(state, int(k), train=True)
            outputs = np.zeros((len(task.inputs), task.n_outputs), dtype=np.float32)
            for k in scoring[epoch]:
                outputs[k] = episode.example(state, int(k), train=False)
            if not np.isfinite(outputs).all():
                raise EpisodeFailed("outputs are not finite")
            accuracy, loss = score(task, outputs, protocol.threshold)
            result.accuracy.append(accuracy)
            result.loss.append(loss)
            result.outputs = outputs
            if on_epoch:
                on_epoch(first + epoch, result)
            if _reached(result.accuracy, stop_at, hold):
                break
    except NonFiniteError as exc:
        result.failure = f"non-finite state: {exc}"
    except EpisodeFailed as exc:
        result.failure = str(exc)
    result.steps = episode.steps - steps
    return result


def _confirm(episode: Episode, state, task: Task, protocol, seed: int, passes: int,
             result: Result) -> None:
    """`passes` scoring passes with no training, in shuffled orders of their own."""
    try:
        for order in confirm_orders(task, passes, seed):
            outputs = np.zeros((len(task.inputs), task.n_outputs), dtype=np.float32)
            for k in order:
                outputs[k] = episode.example(state, int(k), train=False)
            if not np.isfinite(outputs).all():
                raise EpisodeFailed("outputs are not finite")
            result.confirm.append(score(task, outputs, protocol.threshold)[0])
    except NonFiniteError as exc:
        result.failure = f"non-finite state: {exc}"
    except EpisodeFailed as exc:
        result.failure = str(exc)


def evaluate_many(rules, task: Task, topology: Topology, protocol=None, epochs: int = 50,
                  seeds=(0,), budget: int = 100, stop_at: float | None = 1.0,
                  threads: int = 1, backend: str = "vm") -> list[list[Result]]:
    """Evaluate every rule (texts, ir.Programs or Rules) on every seed, each on
    its own state; result[i][j] is rule i on seed j. With threads > 1 the
    rules run in parallel (the C driver releases the GIL); no rule is
    compiled unless backend='c'."""
    from ..api import compile as compile_text

    protocol = protocol or Protocol()
    prepared = [item if isinstance(item, Rule) else
                compile_text(item, backend=backend) if isinstance(item, str) else
                Rule(item, backend) for item in rules]

    def one(rule: Rule) -> list[Result]:
        out = []
        for seed in seeds:
            try:
                out.append(evaluate(rule, task, topology, protocol, epochs, seed, budget,
                                    stop_at=stop_at, engine="c"))
            except RulecValueError as exc:  # a rule the protocol cannot talk to
                out.append(Result(failure=str(exc)))
        return out

    if threads <= 1:
        return [one(rule) for rule in prepared]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, prepared))
