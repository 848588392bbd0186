"""The hurdles a rule clears, cheapest first; a rule stops at the first it fails.

screening (every rule):
  static     an update block reads the input slot, writes the output slot and
             (to learn) reads the target slot: read from the syntax tree, no
             compile (the coordinator checks it before a rule is sent)
  compile    the text parses, type-checks and translates to VM bytecode
  run        from one freshly initialized state, one forward example of each
             input pattern of the first task: no NaN or inf, no wait that
             exhausts its budget
  sensitive  those outputs differ between input patterns; then one epoch of
             the first task (the probe) must not fail, and its outputs,
             rounded, are the rule's functional hash (rules that behave
             alike share it)
learning (the rules that pass screening and behave unlike any rule before):
  TASK       for each task in order: `seeds` seeds of `epochs` epochs (each
             stops once 100% accurate for `hold` epochs in a row, then is
             scored `hold` more times without training); a seed's accuracy
             is the lower of the means of those two, and the mean over
             seeds must reach `pass_accuracy`
  fresh      every task again on `fresh_seeds` held-out seeds (1000, 1001,
             ...): how many seeds learn every task

The evaluation runs in whatever process holds the texts (a worker); the
record it returns is plain data (see rulec.search.store).
"""

from __future__ import annotations

import hashlib
import time

import numpy as np

from .. import syntax as ast
from .. import tasks
from ..edit import statement_lists, subexpressions
from ..errors import RuleErrors
from ..runtime import NonFiniteError, Rule
from .space import Settings

SCREEN_HURDLES = ("static", "compile", "run", "sensitive")
FRESH_SEED0 = 1000
COMPILED_KEPT = 512  # rules an Evaluator keeps compiled (a generation's survivors)


def hurdle_names(settings: Settings) -> tuple[str, ...]:
    """Every hurdle of a run, in order."""
    fresh = ("fresh",) if settings.screen.fresh_seeds else ()
    return SCREEN_HURDLES + tuple(settings.screen.tasks) + fresh


def _names_read(tree: ast.File) -> set[str]:
    """The names an update block reads in an expression (`x`, `nbr.x`, `peer.w`)."""
    found: set[str] = set()
    for item in tree.items:
        if isinstance(item, ast.Block) and item.kind == "update":
            for _, expr in subexpressions(item.body):
                if isinstance(expr, ast.Name | ast.NbrRef | ast.PeerRef):
                    found.add(expr.name)
    return found


def _names_written(tree: ast.File) -> set[str]:
    found: set[str] = set()
    for item in tree.items:
        if isinstance(item, ast.Block) and item.kind == "update":
            for _, statements in statement_lists(item.body):
                for stmt in statements:
                    if isinstance(stmt, ast.Assign):
                        found.add(stmt.target.name)
    return found


def static_failure(tree: ast.File, protocol) -> str | None:
    """Why a rule cannot learn through `protocol`, read from its syntax tree
    alone (None if it can): an update block must read the input slot and
    write the output slot, and read the target slot if the protocol has one.
    An augmented assignment (`t += 1`) does not count as reading `t`."""
    read, written = _names_read(tree), _names_written(tree)
    if protocol.input not in read:
        return f"never reads the input slot {protocol.input!r}"
    if protocol.output not in written:
        return f"never writes the output slot {protocol.output!r}"
    if getattr(protocol, "target", None) and protocol.target not in read:
        return f"never reads the target slot {protocol.target!r}"
    return None


class _Stop(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


class Evaluator:
    """Runs the hurdles of one run's settings (build once per worker)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.protocol = settings.space.make_protocol()
        screen = settings.screen
        self.tasks = [tasks.TASKS[name] for name in screen.tasks]
        self.topologies = [tasks.topology_from_spec(screen.graph, t) for t in self.tasks]
        self.budget = settings.space.budget
        self._compiled: dict[str, tuple[ast.File, Rule]] = {}

    def _rule(self, text: str) -> tuple[ast.File, Rule]:
        """The rule's tree and VM translation; the last rules screened here
        are kept, so one that goes on to learn in this process compiles once."""
        from ..frontend import load

        if text in self._compiled:
            return self._compiled[text]
        try:
            _, tree, program = load(text, "candidate.rule")
        except RuleErrors as errors:
            first = errors.errors[0]
            raise _Stop(f"does not check: {first.code} {first.message}") from None
        if len(self._compiled) >= COMPILED_KEPT:
            del self._compiled[next(iter(self._compiled))]  # the oldest
        self._compiled[text] = tree, Rule(program, "vm")
        return self._compiled[text]

    # ------------------------------------------------------------ screening

    def screen(self, text: str) -> dict:
        """The screening hurdles of one rule: a record with `passed` (how many
        hurdles it cleared), `failure`, `timings` and `func_hash`."""
        record: dict = {"passed": 0, "failure": None, "timings": {}, "func_hash": None,
                        "results": []}
        timings = record["timings"]
        began = time.perf_counter()
        try:
            tree, rule = self._rule(text)
            timings["compile"] = time.perf_counter() - began
            began = time.perf_counter()
            self._static(tree, rule)
            timings["static"] = time.perf_counter() - began
            record["passed"] = 2  # static, and compile before it
            began = time.perf_counter()
            outputs, record["spread"] = self._run(rule)
            timings["run"] = time.perf_counter() - began
            record["passed"] = 3
            began = time.perf_counter()
            record["func_hash"] = self._probe(rule, outputs)
            timings["sensitive"] = time.perf_counter() - began
            record["passed"] = 4
        except _Stop as stop:
            hurdle = "compile" if "compile" not in timings else \
                "static" if "static" not in timings else SCREEN_HURDLES[record["passed"]]
            timings[hurdle] = time.perf_counter() - began
            record["failure"] = stop.reason
            if hurdle == "compile":  # a rule that does not compile cannot be read
                record["passed"] = 0
        return record

    def _static(self, tree: ast.File, rule: Rule) -> None:
        missing = [name for _, name in self.protocol.roles()
                   if name not in rule.program.node_slots]
        if missing:
            raise _Stop(f"lacks the protocol's node slot{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(missing)}")
        failure = static_failure(tree, self.protocol)
        if failure:
            raise _Stop(failure)

    def _fresh_state(self, rule: Rule, topology, seed: int):
        state = rule.state(topology.graph)
        if self.protocol.input_flag:
            state.node[self.protocol.input_flag][topology.inputs] = 1.0
        rule.init(state, seed=seed)
        return state

    def _run(self, rule: Rule) -> tuple[list[np.ndarray], float]:
        """One forward example per input pattern of the first task, each from
        the same freshly initialized state: their outputs, and the spread:
        the fraction of the nodes other than the inputs whose node slots
        differ between patterns (how far the inputs reach; evolution's
        gradient toward the sensitivity hurdle)."""
        task, topology = self.tasks[0], self.topologies[0]
        episode = tasks._Episode(rule, task, topology, self.protocol, self.budget, None)
        outputs, states = [], []
        try:
            fresh = self._fresh_state(rule, topology, self.settings.screen.probe_seed)
            if not np.isfinite(fresh.node[self.protocol.output]).all():
                raise _Stop("init leaves a non-finite output")
            for k in range(len(task.inputs)):
                state = fresh.copy()
                out = episode.example(state, k, train=False)
                if out is None or not np.isfinite(out).all():
                    raise _Stop("outputs are not finite")
                outputs.append(out)
                states.append(np.array([state.node[n] for n in rule.program.node_slots
                                        if n != self.protocol.input]))
        except NonFiniteError as exc:
            raise _Stop(f"non-finite state: {exc}") from None
        except tasks._Failed as exc:
            raise _Stop(str(exc)) from None
        others = np.setdiff1d(np.arange(topology.graph.n_nodes), topology.inputs)
        with np.errstate(invalid="ignore"):
            moved = (np.ptp(np.array(states), axis=0) > 1e-6).any(axis=0)
        spread = float(moved[others].mean()) if len(others) else 0.0
        return outputs, spread

    def _probe(self, rule: Rule, outputs: list[np.ndarray]) -> str:
        """The outputs of the run hurdle must differ between input patterns;
        then one epoch of the first task at the probe seed: its outputs,
        rounded, are the functional hash."""
        if float(np.ptp(np.array(outputs), axis=0).max()) <= 1e-6:
            raise _Stop("outputs do not depend on the inputs")
        result = tasks.evaluate(rule, self.tasks[0], self.topologies[0], self.protocol,
                                epochs=1, seed=self.settings.screen.probe_seed,
                                budget=self.budget, stop_at=None, engine="c")
        if result.failure:
            raise _Stop(result.failure)
        rounded = np.round(result.outputs.astype(np.float64), 4) + 0.0  # no -0.0
        return hashlib.sha256(rounded.tobytes()).hexdigest()[:32]

    # -------------------------------------------------------------- learning

    def learn(self, text: str, record: dict) -> dict:
        """The task hurdles (and fresh seeds) of a rule that passed screening;
        adds to `record` its results, `passed`, `failure` and `score`."""
        _, rule = self._rule(text)
        screen = self.settings.screen
        scores = []
        for task, topology in zip(self.tasks, self.topologies, strict=True):
            began = time.perf_counter()
            accuracies = []
            for seed in range(screen.seeds):
                result = self._evaluate(rule, task, topology, seed)
                record["results"].append(self._row(task.name, seed, result))
                accuracies.append(self._held(result))
            record["timings"][task.name] = time.perf_counter() - began
            mean = float(np.mean(accuracies))
            scores.append(mean)
            if mean < screen.pass_accuracy:
                record["failure"] = (f"{task.name}: mean accuracy {mean:.3f} over "
                                     f"{screen.seeds} seeds < {screen.pass_accuracy}")
                break
            record["passed"] += 1
        record["score"] = float(sum(scores)) / len(self.tasks)
        losses = [r["loss"] for r in record["results"]]
        record["loss"] = float(np.mean(losses)) if losses and None not in losses else None
        if record["failure"] is None and screen.fresh_seeds:
            began = time.perf_counter()
            learned = 0
            for seed in range(FRESH_SEED0, FRESH_SEED0 + screen.fresh_seeds):
                ok = True
                for task, topology in zip(self.tasks, self.topologies, strict=True):
                    result = self._evaluate(rule, task, topology, seed)
                    record["results"].append(self._row(task.name, seed, result))
                    ok = ok and self._held(result) >= 1.0
                learned += ok
            record["fresh"] = learned
            record["timings"]["fresh"] = time.perf_counter() - began
            record["passed"] += 1
        return record

    def _held(self, result: tasks.Result) -> float:
        """A seed's accuracy: the mean of its last `hold` epochs, or of `hold`
        more scoring passes without training if that is lower (a rule whose
        outputs are right by luck in some epochs does not pass)."""
        if result.failure or not result.accuracy:
            return 0.0
        hold = self.settings.screen.hold
        held = float(np.mean(result.accuracy[-hold:])) if len(result.accuracy) >= hold else \
            float(np.sum(result.accuracy)) / hold
        return min(held, float(np.mean(result.confirm))) if result.confirm else held

    def _evaluate(self, rule, task, topology, seed) -> tasks.Result:
        return tasks.evaluate(rule, task, topology, self.protocol,
                              epochs=self.settings.screen.epochs, seed=seed,
                              budget=self.budget, stop_at=1.0, engine="c",
                              hold=self.settings.screen.hold,
                              confirm=self.settings.screen.hold)

    @staticmethod
    def _row(task: str, seed: int, result: tasks.Result) -> dict:
        return {"task": task, "seed": seed, "accuracy": result.final_accuracy,
                "loss": result.loss[-1] if result.loss else None,
                "epochs": len(result.accuracy), "steps": result.steps,
                "failure": result.failure}


_EVALUATORS: dict[str, Evaluator] = {}


def evaluator(settings: Settings) -> Evaluator:
    """This process's Evaluator for `settings` (built once)."""
    key = settings.key()
    if key not in _EVALUATORS:
        _EVALUATORS[key] = Evaluator(settings)
    return _EVALUATORS[key]
