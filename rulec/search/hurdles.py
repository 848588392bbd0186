"""The hurdles a rule clears, cheapest first; a rule stops at the first it fails.

screening (every rule):
  static     by data flow on the syntax tree (no compile; the coordinator
             checks it before a rule is sent): the protocol's block writes
             the output slot with a write that lands, and the input and the
             target slots can reach it (dead writes and unused lets read
             nothing)
  compile    the text parses, type-checks and translates to VM bytecode
  run        from one freshly initialized state, one forward example of each
             input pattern of the first task: no NaN or inf, no wait that
             exhausts its budget
  sensitive  those outputs differ between input patterns (or, for weights
             that start at 0, they do after one training pass over the
             patterns from that state); then one epoch of
             the first task (the probe) must not fail, and its outputs,
             rounded, are the rule's functional hash (rules that behave
             alike share it)
learning (the rules that pass screening and behave unlike any rule before):
  rungK      (with [screen] rungs, successive halving) the task hurdles'
             training for rungs[K-1] epochs on the rung's own seeds
             (Screen.rung_seeds); the coordinator lets a rule go up only if
             it is among the top 1/eta of every rule scored on that rung in
             the run so far, by score and then lower loss (ASHA's rule:
             promotion_bar), and stores the others as `not-promoted`
  TASK       for each task in order: `seeds` seeds of `epochs` epochs on
             each graph of the run (each
             stops once 100% accurate for `hold` epochs in a row, then is
             scored `hold` more times without training); a seed's accuracy
             is the lower of the means of those two, and the mean over
             seeds must reach `pass_accuracy`
             (after reaching the goal a seed trains max(epochs taken,
             `retain`) more epochs: it must end at the goal and be right in
             90% of them, else their mean counts, and a task failed that
             way is `does-not-retain`)
  targets    trained on counterfactual targets (the complement; the targets
             moved one row on) for as long, on seed 0, the rule's answers
             must get more of them right than its answers after training on
             the task do (answers that only differ are noise), else it is
             `target-blind`
  hidden     (with [screen] hidden = true) what the hidden layer learned is
             needed: on the first seed of the first task that learned it,
             the hidden nodes' incoming weights put back to their values
             after the first epoch must lose the task, else the rule is a
             random-feature learner (its output layer alone learns, over
             fixed hidden features) and fails as `fixed-features`
  fresh      every task again on `fresh_seeds` held-out seeds (1000, 1001,
             ...): how many seeds learn every task; reported apart, never
             used to select rules (reports rank equals by it: rank_key)

The evaluation runs in whatever process holds the texts (a worker); the
record it returns is plain data (see rulec.search.store).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time

import numpy as np

from .. import learning
from .. import syntax as ast
from ..api import NonFiniteError, Rule
from ..dataflow import influence, reaches
from ..errors import RulecValueError, RuleErrors
from ..learning.driver import Lanes
from ..learning.evaluation import Episode, EpisodeFailed
from ..printer import format_tree
from .canon import identity, text_hash
from .space import Settings, draw_tree, graph_label

SCREEN_HURDLES = ("static", "compile", "run", "sensitive")
FRESH_SEED0 = 1000
#: A seed keeps what it learned if its mean accuracy over the epochs trained
#: after the goal is at least this fraction of pass_accuracy (and it ends at
#: the goal): feedback alignment on XOR averaged 0.995 (one wrong epoch in
#: 196), rules that oscillate 0.34-0.82 (docs/search.md, "Calibration").
RETAIN_FRACTION = 0.9
COMPILED_KEPT = 512  # rules an Evaluator keeps compiled (a generation's survivors)


def held(result: learning.Result, hold: int, pass_accuracy: float = 1.0, margin: float = 0.0,
         task=None, threshold: float = 0.5) -> float:
    """A seed's accuracy as the task hurdles score it: the mean of its last
    `hold` epochs, or of `hold` more scoring passes without training if
    that is lower (a rule whose outputs are right by luck in some epochs
    does not pass), or of the epochs it trained on after reaching the goal
    if it did not keep it (a rule that forgets, or oscillates, does not
    pass). With a `margin` (and the `task`), no more than the share of
    patterns the last pass answers clear of the threshold (`wrong_or_tied`).
    `rulec train --hold --confirm --retain --margin` prints it."""
    if result.failure or not result.accuracy:
        return 0.0
    value = float(np.mean(result.accuracy[-hold:])) if len(result.accuracy) >= hold else \
        float(np.sum(result.accuracy)) / hold
    if result.retained and not retained(result, hold, pass_accuracy):
        value = min(value, float(np.mean(result.retained)))
    if result.confirm:
        value = min(value, float(np.mean(result.confirm)))
    if margin and value > 0.0:
        value = min(value, 1.0 - float(wrong_or_tied(result, task, threshold, margin).mean()))
    return value


def wrong_or_tied(result: learning.Result, task, threshold: float, margin: float) -> np.ndarray:
    """Per pattern of the last scoring pass: whether some output is wrong or
    within `margin` of the threshold (a right answer clears it: above
    threshold + margin where the target bit is 1, below threshold - margin
    where it is 0). An output at the threshold itself is 'right' for a 0
    only because `>` breaks the tie (a rule of a rung (b) run answered XOR's
    00 with exactly 0.500 on every seed)."""
    if result.outputs is None:
        return np.ones(len(task.inputs), dtype=bool)
    outputs = np.asarray(result.outputs, dtype=np.float64)
    want = np.asarray(task.targets) > 0.5
    right = np.where(want, outputs > threshold + margin, outputs < threshold - margin)
    return ~right.all(axis=1)


def retained(result: learning.Result, hold: int, pass_accuracy: float = 1.0) -> bool:
    """Whether a seed kept what it learned while training went on after the
    goal: its last `hold` epochs are at the goal and it was right in at
    least RETAIN_FRACTION of the epochs since (one wrong epoch among
    hundreds is a learner's noise; an oscillator is wrong for many)."""
    window = result.retained
    return (min(window[-hold:]) >= 1.0
            and float(np.mean(window)) >= RETAIN_FRACTION * pass_accuracy)


def rank_key(record: dict) -> tuple:
    """How reports rank rules, best first when sorted (the summary's best,
    the report's list, export): hurdles passed, score, untouched seeds
    learned, then smaller and earlier. Reporting only: the untouched seeds
    never take part in selection (strategy.fitness)."""
    return (-record["passed"], -record["score"], -(record.get("fresh") or 0), record["size"],
            record["idx"])


def hurdle_names(settings: Settings) -> tuple[str, ...]:
    """Every hurdle of a run, in order."""
    fresh = ("fresh",) if settings.screen.fresh_seeds else ()
    hidden = ("hidden",) if settings.screen.hidden else ()
    robust = ("robust",) if settings.screen.robust_seeds else ()
    return (SCREEN_HURDLES + rung_names(settings) + tuple(settings.screen.tasks)
            + ("targets",) + hidden + robust + fresh)


def rung_names(settings: Settings) -> tuple[str, ...]:
    """The hurdles of successive halving's cheaper rungs: `rung1` .. (a rule
    passes one by going up from it)."""
    return tuple(f"rung{k + 1}" for k in range(len(settings.screen.rungs)))


def final_rung(settings: Settings) -> Settings:
    """The settings without the cheaper rungs: how a rule that went up every
    rung is judged (what `rulec search score` runs; rungs decide which rules
    of a search get there, from the scores of the others, not a verdict)."""
    if not settings.screen.rungs:
        return settings
    return dataclasses.replace(settings, screen=dataclasses.replace(settings.screen, rungs=()))


def rung_key(score: float, loss: float | None) -> tuple[float, float]:
    """How a rung ranks rules, larger first: the score, then the lower loss
    (most scores are a few accuracies, 0.5 or 0.75 for most rules on XOR,
    and ties went up together: a run with 60-epoch rungs promoted 94% of
    its rules). A loss that is missing or not finite ranks last."""
    if loss is None or not math.isfinite(loss):
        return (score, -math.inf)
    return (score, -loss)


def promotion_bar(keys, eta: int) -> tuple[float, float]:
    """ASHA's promotion rule: a rule goes up from a rung when its rung_key
    there is at least this, the ceil(n / eta)-th best of the n `keys`
    (every rule's of the rung so far, its own included): the top 1/eta;
    exact ties go up together."""
    return bar_of_ranked(sorted(keys), eta)


def bar_of_ranked(ranked: list, eta: int):
    """promotion_bar of keys already sorted in ascending order (a search
    keeps each rung's keys so, inserting as rules are scored, instead of
    sorting every rule of the run again each generation)."""
    return ranked[-math.ceil(len(ranked) / eta)]


def static_failure(tree: ast.File, protocol) -> str | None:
    """Why a rule cannot learn through `protocol`, read from its syntax tree
    alone (None if it can), by data flow (rulec.dataflow), not by text: the
    protocol's blocks must write the output slot with a write that lands,
    the input slot must be able to reach the output slot over some number
    of steps, and so must the target slot (if the protocol has one). A read
    only a dead write or an unused `let` makes does not count."""
    blocks = (protocol.block,)
    if getattr(protocol, "reset_block", None):
        blocks += (protocol.reset_block,)
    graph = influence(tree, blocks)
    output = protocol.output
    if output not in graph:
        return f"never writes the output slot {output!r} (with a write that lands)"
    if not reaches(graph, protocol.input, output):
        return f"the input slot {protocol.input!r} never reaches the output slot {output!r}"
    target = getattr(protocol, "target", None)
    if target and not reaches(graph, target, output):
        return (f"target-blind: the target slot {target!r} never reaches the output slot "
                f"{output!r} (no write that lands carries it there)")
    return None


def _hidden_owned(topology) -> np.ndarray:
    """The half-edges a topology's hidden nodes own (their view of each edge:
    what their incoming weights are, for the rule's forward pass)."""
    n = topology.graph.n_nodes
    hidden = np.setdiff1d(np.arange(n), np.concatenate([topology.inputs, topology.outputs]))
    return np.isin(topology.graph.owner, hidden)


def _after_first_epoch(rule, task, topology, protocol, budget, seed):
    """The state after the first epoch of an evaluation on `seed` (its
    training pass and scoring pass), or None if that epoch failed."""
    result = learning.evaluate(rule, task, topology, protocol, epochs=1, seed=seed,
                               budget=budget, stop_at=None, engine="c", keep_state=True)
    return None if result.failure else result.state


def _reset_hidden(rule, topology, state, before) -> None:
    """Put every edge slot of the half-edges the hidden nodes own back to
    its value in `before`."""
    owned = _hidden_owned(topology)
    for name in rule.program.edge_slots:
        state.edge[name][owned] = before.edge[name][owned]


def _accuracy(rule, task, topology, protocol, budget, state) -> float:
    """The share of patterns a state answers right, each pattern's forward
    example run from a copy of `state` (the state itself is not changed)."""
    episode = Episode(rule, task, topology, protocol, budget, None)
    work = state.copy()
    outputs = np.zeros((len(task.inputs), task.n_outputs), dtype=np.float32)
    try:
        for k in range(len(task.inputs)):
            work.restore(state)
            outputs[k] = episode.example(work, k, train=False)
    except (EpisodeFailed, NonFiniteError):
        return 0.0
    return learning.score(task, outputs, protocol.threshold)[0]


def _hidden_reset(rule, task, topology, protocol, budget, seed, state) -> dict:
    """What the hidden layer learned, on a trained state: `trained` (its
    accuracy), and if that is 100%, `moved` (whether a hidden node's incoming
    weight changed after the first epoch) and `reset` (the accuracy once
    those weights are put back to their values after the first epoch; the
    state is changed). `reset` is None when there is nothing to judge."""
    trained = _accuracy(rule, task, topology, protocol, budget, state)
    found = {"seed": seed, "trained": trained, "reset": None, "moved": None}
    if trained < 1.0:
        return found
    before = _after_first_epoch(rule, task, topology, protocol, budget, seed)
    if before is None:
        return found
    owned = _hidden_owned(topology)
    found["moved"] = any(not np.array_equal(state.edge[name][owned], before.edge[name][owned])
                         for name in rule.program.edge_slots)
    _reset_hidden(rule, topology, state, before)
    found["reset"] = _accuracy(rule, task, topology, protocol, budget, state)
    return found


class _Stop(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


class Evaluator:
    """Runs the hurdles of one run's settings (build once per worker)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.protocol = settings.space.make_protocol()
        screen = settings.screen
        self.tasks = [learning.task_named(name) for name in screen.tasks]
        # per task, one topology per graph of the run
        self.topologies = [[learning.topology_from_spec(spec, t) for spec in screen.graphs]
                           for t in self.tasks]
        if screen.sequence:  # one state per seed and graph: the tasks share the graphs
            self.topologies = [self.topologies[0]] * len(self.tasks)
        self.budget = settings.space.budget
        self.options = settings.space.options()
        self.keep = frozenset(settings.space.protocol_slots())
        self._compiled: dict[str, tuple[ast.File, Rule]] = {}
        self._others: dict[int, np.ndarray] = {}  # per topology: the nodes but the inputs

    def _rule(self, text: str, tree: ast.File | None = None,
              optimize: bool = True) -> tuple[ast.File, Rule]:
        """The rule's tree and VM translation (from `tree` if given: it is
        what parsing `text` gives); the last rules screened here are kept, so
        one that goes on to learn in this process is checked once.

        Screening asks for the quick translation (optimize=False: the same
        values bit for bit, less than half the time to make; a screened rule
        runs a few steps), and the hurdles after it for the optimized one (many
        epochs on many seeds), which then replaces it: a tiered compiler."""
        from ..backends.vm.backend import VMBackend
        from ..checker import check

        found = self._compiled.get(text)
        if found is not None:
            if optimize and not found[1].runner.optimize:
                program = found[1].program
                found = self._compiled[text] = found[0], Rule(program, "vm",
                                                              native=VMBackend(program))
            return found
        if tree is None:
            tree = self._parse(text)
        try:
            program = check(tree, "candidate.rule", text, default_name="candidate")
        except RuleErrors as errors:
            first = errors.errors[0]
            raise _Stop(f"does not check: {first.code} {first.message}") from None
        if len(self._compiled) >= COMPILED_KEPT:
            del self._compiled[next(iter(self._compiled))]  # the oldest
        found = self._compiled[text] = tree, Rule(program, "vm",
                                                  native=VMBackend(program, optimize=optimize))
        return found

    # ------------------------------------------------------------ screening

    def screen(self, text: str | None = None, tree: ast.File | None = None,
               draw: int | None = None, index: int = 0) -> dict:
        """The screening hurdles of one rule, given as its text, its tree (and
        text), or `draw`: the seed of the random stream whose rule `index`
        it is, drawn here. A record with `text`, `canon_hash`, `size`,
        `passed` (how many hurdles it cleared), `failure`, `timings` and
        `func_hash`. The static hurdle reads the tree before anything is
        compiled, and a tree is compiled as it is (no text round trip)."""
        record: dict = {"passed": 0, "failure": None, "timings": {}, "func_hash": None,
                        "results": [], "text": text}
        timings = record["timings"]
        began = time.perf_counter()
        try:
            if text is None:
                tree = draw_tree(self.options, draw, index)
                record["text"] = text = format_tree(tree)
            elif tree is None:
                tree = self._parse(text)
            record.update(identity(tree, self.keep))
            timings["prepare"] = time.perf_counter() - began
            began = time.perf_counter()
            self._static_tree(tree)
            timings["static"] = time.perf_counter() - began
            began = time.perf_counter()
            rule = self._rule(text, tree, optimize=False)[1]
            timings["compile"] = time.perf_counter() - began
            record["passed"] = 2  # static, and compile
            began = time.perf_counter()
            outputs, record["spread"] = self._run(rule)
            timings["run"] = time.perf_counter() - began
            record["passed"] = 3
            began = time.perf_counter()
            record["func_hash"] = self._probe(rule, outputs)
            timings["sensitive"] = time.perf_counter() - began
            record["passed"] = 4
        except _Stop as stop:
            hurdle = "compile" if "prepare" not in timings else \
                "static" if "static" not in timings else \
                "compile" if "compile" not in timings else SCREEN_HURDLES[record["passed"]]
            timings[hurdle] = time.perf_counter() - began
            record["failure"] = stop.reason
            record["failed_hurdle"] = hurdle
            if hurdle in ("run", "sensitive"):  # nothing asks for it again: let it go now
                self._compiled.pop(text, None)
            if hurdle == "compile" and "canon_hash" not in record:  # it does not parse
                record["canon_hash"] = text_hash(text)
                record["size"] = 0
        return record

    def _parse(self, text: str) -> ast.File:
        from ..parser import parse_text

        try:
            return parse_text(text, "candidate.rule")
        except RuleErrors as errors:
            first = errors.errors[0]
            raise _Stop(f"does not check: {first.code} {first.message}") from None

    def _static_tree(self, tree: ast.File) -> None:
        """The static hurdle, from the tree: the protocol's slots are declared,
        and the data flow of static_failure."""
        declared = {name for item in tree.items if isinstance(item, ast.SlotDecl)
                    and item.kind == "node" for name in item.names}
        missing = [name for _, name in self.protocol.roles() if name not in declared]
        if missing:
            raise _Stop(f"lacks the protocol's node slot{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(missing)}")
        failure = static_failure(tree, self.protocol)
        if failure:
            raise _Stop(failure)

    def _run(self, rule: Rule) -> tuple[list[np.ndarray], float]:
        """One forward example per input pattern of the first task, each from
        the same freshly initialized state: their outputs, and the spread:
        the fraction of the nodes other than the inputs whose node slots
        differ between patterns (how far the inputs reach; evolution's
        gradient toward the sensitivity hurdle). If the outputs do not yet
        depend on the inputs (weights that start at 0), the outputs are those
        of the same patterns after one training pass over them.

        The patterns run side by side, one per lane of the VM (what
        Episode.example does on a copy of the state per pattern, in one C
        call per group of lanes: _lane_patterns); a failure is reported for
        the first pattern, in order, that failed."""
        task, topology = self.tasks[0], self.topologies[0][0]
        groups: dict[int, Lanes] = {}  # one Lanes per group of patterns, for both passes
        try:
            outputs, states = self._lane_patterns(rule, task, topology, False, groups)
            if float(np.ptp(np.array(outputs), axis=0).max()) <= 1e-6:
                outputs = self._lane_patterns(rule, task, topology, True, groups)[0]
        finally:
            for lanes in groups.values():
                lanes.release()
        others = self._others.get(id(topology))
        if others is None:
            others = self._others[id(topology)] = np.setdiff1d(
                np.arange(topology.graph.n_nodes), topology.inputs)
        with np.errstate(invalid="ignore"):
            moved = (np.ptp(states, axis=0) > 1e-6).any(axis=0)
        spread = float(moved[others].mean()) if len(others) else 0.0
        return outputs, spread

    def _lane_patterns(self, rule: Rule, task, topology, trained: bool, groups: dict):
        """One forward example of each pattern, each on a lane that starts as
        the fresh state (after one training pass over the patterns in order,
        if `trained`): the outputs, and the node slots but the input's
        (patterns x slots x nodes); the first failure in pattern order stops
        it. The patterns go in groups of as many lanes as the graph allows;
        `groups` keeps each group's Lanes (by its first pattern) for the next
        call on the same rule (the caller releases them)."""
        count = len(task.inputs)
        width = min(count, rule.runner.lane_width(topology.graph))
        kept = [n for n in rule.program.node_slots if n != self.protocol.input]
        outputs, states = [], []
        for first in range(0, count, width):
            patterns = np.arange(first, min(count, first + width), dtype=np.int32)
            lanes = groups.get(first)
            if lanes is None:
                lanes = groups[first] = Lanes(rule, task, topology, self.protocol, self.budget,
                                              None,
                                              [self.settings.screen.probe_seed] * len(patterns))
            lanes.start()
            if not first and not trained and \
                    not np.isfinite(lanes.node_slot(self.protocol.output)[:, 0]).all():
                raise _Stop("init leaves a non-finite output")
            if trained:  # every lane the same pass
                every = np.tile(np.arange(count, dtype=np.int32), (len(patterns), 1))
                why = lanes.examples(every, train=True)[0][0]
                if why:
                    raise _Stop(why)
            found = lanes.examples(patterns.reshape(-1, 1), train=False)
            for k, (why, rows) in zip(patterns, found, strict=True):
                if why:
                    raise _Stop(why)
                if not np.isfinite(rows[k]).all():
                    raise _Stop("outputs are not finite")
                outputs.append(rows[k].copy())
            states.append(np.stack([lanes.node_slot(n) for n in kept]).transpose(2, 0, 1))
        return outputs, np.concatenate(states)

    def _probe(self, rule: Rule, outputs: list[np.ndarray]) -> str:
        """The outputs of the run hurdle must differ between input patterns
        (before training, or after one pass of it); then one epoch of the
        first task at the probe seed: its outputs, rounded, are the
        functional hash."""
        if float(np.ptp(np.array(outputs), axis=0).max()) <= 1e-6:
            raise _Stop("outputs do not depend on the inputs, before training or after one "
                        "pass over the patterns")
        result = learning.evaluate(rule, self.tasks[0], self.topologies[0][0], self.protocol,
                                epochs=1, seed=self.settings.screen.probe_seed,
                                budget=self.budget, stop_at=None, engine="c")
        if result.failure:
            raise _Stop(result.failure)
        rounded = np.round(result.outputs.astype(np.float64), 4) + 0.0  # no -0.0
        return hashlib.sha256(rounded.tobytes()).hexdigest()[:32]

    # -------------------------------------------------------------- learning

    def learn(self, text: str, record: dict) -> dict:
        """The task hurdles, the target hurdle (and fresh seeds) of a rule that
        passed screening; adds to `record` its results, `passed`, `failure`
        and `score`. A rule that did not pass screening is refused."""
        if record.get("passed", 0) < len(SCREEN_HURDLES) or record.get("failure"):
            raise RulecValueError(f"learn() takes a rule that passed screening; this one stopped "
                                  f"at {record.get('failure')!r}")
        _, rule = self._rule(text)
        screen = self.settings.screen
        scores, first_seed, trained, learned = [], {}, [], []
        seeds = range(screen.seeds)
        turns = self._tasks_in_turn(rule, seeds, keep_first=screen.hidden)
        for t, task in enumerate(self.tasks):
            began = time.perf_counter()
            accuracies, plain, forgot, tied = [], [], None, None
            for g, (results, starts) in enumerate(next(turns)):
                hidden = screen.hidden and t == 0 and g == 0
                if g == 0:
                    first_seed[task.name] = (results[0], starts[0] if starts else None)
                for seed, result in zip(seeds, results, strict=True):
                    if hidden:
                        trained.append((seed, result))
                    record["results"].append(self._row(graph_label(task.name, g), seed, result))
                    accuracies.append(self._held(result, task))
                    plain.append(self._held(result, task, margin=0.0))
                    if tied is None and accuracies[-1] < plain[-1]:
                        tied = (seed, g, result)
                    if forgot is None and result.retained and not self._retained(result):
                        forgot = (seed, g, result)
            record["timings"][task.name] = time.perf_counter() - began
            mean = float(np.mean(accuracies))
            scores.append(mean)
            learned.append(sum(a >= 1.0 for a in accuracies))
            if mean < screen.pass_accuracy:
                if tied is not None and forgot is None and \
                        float(np.mean(plain)) >= screen.pass_accuracy:  # the margin alone
                    seed, g, result = tied
                    record["failure"] = (
                        f"on-threshold: {task.name}: seed {seed}{self._on(g)} answers "
                        f"{self._tie(result, task)} within {screen.margin} of the threshold "
                        f"{self.protocol.threshold} (right only by how the threshold breaks "
                        f"ties); mean accuracy {mean:.3f} over {screen.seeds} seeds counting "
                        f"such answers wrong")
                elif forgot is not None:
                    seed, g, result = forgot
                    last = " ".join(f"{a:.2f}" for a in result.retained[-screen.hold:])
                    record["failure"] = (
                        f"does-not-retain: {task.name}: reached the goal at epoch "
                        f"{result.goal_epoch} (seed {seed}{self._on(g)}), then averaged "
                        f"{float(np.mean(result.retained)):.3f} over the next "
                        f"{len(result.retained)} epochs of training (at least "
                        f"{RETAIN_FRACTION * screen.pass_accuracy:.2f} needed) and ended at "
                        f"{last} (the last {screen.hold} all at the goal needed)")
                else:
                    graphs = f" on {len(screen.graphs)} graphs" if len(screen.graphs) > 1 else ""
                    record["failure"] = (f"{task.name}: mean accuracy {mean:.3f} over "
                                         f"{screen.seeds} seeds{graphs} < "
                                         f"{screen.pass_accuracy}")
                break
            record["passed"] += 1
        record["score"] = float(sum(scores)) / len(self.tasks)
        losses = [r["loss"] for r in record["results"]]
        record["loss"] = float(np.mean(losses)) if losses and None not in losses else None
        if record["failure"] is None:
            began = time.perf_counter()
            blind = self._target_blind(rule, first_seed)
            record["timings"]["targets"] = time.perf_counter() - began
            if blind:
                record["failure"] = blind
                record["score"] = 0.0  # its accuracy says nothing about learning
            else:
                record["passed"] += 1
        if record["failure"] is None and screen.hidden:
            began = time.perf_counter()
            fixed = self._fixed_features(rule, trained)
            record["timings"]["hidden"] = time.perf_counter() - began
            if fixed:
                record["failure"] = fixed
            else:
                record["passed"] += 1
        if record["failure"] is None and screen.robust_seeds:
            began = time.perf_counter()
            self._robust(rule, record, learned)
            record["timings"]["robust"] = time.perf_counter() - began
        if record["failure"] is None and screen.fresh_seeds:
            began = time.perf_counter()
            learned = 0
            fresh = range(FRESH_SEED0, FRESH_SEED0 + screen.fresh_seeds)
            runs = [(task, g, results) for task, per_graph in
                    zip(self.tasks, self._every_task(rule, fresh), strict=True)
                    for g, results in enumerate(per_graph)]
            for i, seed in enumerate(fresh):  # rows seed by seed, as they always were
                ok = True
                for task, g, results in runs:
                    result = results[i]
                    record["results"].append(self._row(graph_label(task.name, g), seed,
                                                       result))
                    ok = ok and self._held(result, task) >= 1.0
                learned += ok
            record["fresh"] = learned
            record["timings"]["fresh"] = time.perf_counter() - began
            record["passed"] += 1
        return record

    def rung(self, text: str, record: dict, k: int) -> dict:
        """Rung k of successive halving (0-based; [screen] rungs): the task
        hurdles' training for rungs[k] epochs on the rung's own seeds. Its
        score (the mean over the tasks of each seed's held accuracy, a task
        the rule failed ending the tries, the tasks after it counting 0) and
        loss (the mean last loss of the seeds of the tasks tried) are
        appended to record['rungs'] as a pair. Whether the rule goes up is
        the coordinator's decision (promotion_bar), from every rule's pair
        there."""
        _, rule = self._rule(text)
        screen = self.settings.screen
        began = time.perf_counter()
        scores, losses = [], []
        seeds = screen.rung_seeds(k)
        turns = self._tasks_in_turn(rule, seeds, epochs=screen.rungs[k])
        for task in self.tasks:
            results = [result for on_graph, _ in next(turns) for result in on_graph]
            scores.append(float(np.mean([self._held(result, task) for result in results])))
            losses += [result.loss[-1] if result.loss else math.nan for result in results]
            if scores[-1] < screen.pass_accuracy:
                break
        with np.errstate(invalid="ignore"):
            loss = float(np.mean(losses))
        record.setdefault("rungs", []).append(
            [float(sum(scores)) / len(self.tasks), loss if math.isfinite(loss) else None])
        record["timings"][f"rung{k + 1}"] = time.perf_counter() - began
        return record

    def _robust(self, rule: Rule, record: dict, learned: list[int]) -> None:
        """The robust hurdle: every task on `robust_seeds` more selection
        seeds (after the task hurdles' `seeds`), learned on at least
        `robust_share` of them (each graph's seeds counted). The score
        becomes the share of all its selection seeds (the task hurdles' and
        these) on which it learned, averaged over the tasks: a rule that
        fails here still ranks by how many seeds it learns on, and a seed
        left at 3 of 4 XOR patterns counts as not learned (the mean
        accuracy, 0.75 there, hardly told a rule that learns on 2 seeds in
        10 from one that learns on 8)."""
        screen = self.settings.screen
        extra = range(screen.seeds, screen.seeds + screen.robust_seeds)
        first = screen.seeds * len(self.topologies[0])
        shares, worst = [], None
        runs = self._every_task(rule, extra)
        for task, topologies, before, per_graph in zip(self.tasks, self.topologies, learned,
                                                       runs, strict=True):
            now = count = 0
            for g in range(len(topologies)):
                for seed, result in zip(extra, per_graph[g], strict=True):
                    record["results"].append(self._row(graph_label(task.name, g), seed,
                                                       result))
                    now += self._held(result, task) >= 1.0
                    count += 1
            shares.append((before + now) / (first + count))
            if worst is None or now / count < worst[1] / worst[2]:
                worst = (task.name, now, count)
        record["score"] = float(np.mean(shares))
        name, now, count = worst
        if now < screen.robust_share * count:
            record["failure"] = (f"not-robust: {name}: learned on {now} of {count} more "
                                 f"selection seeds (seeds {extra.start}..{extra.stop - 1}); "
                                 f"at least {screen.robust_share:.0%} needed")
        else:
            record["passed"] += 1

    def _fixed_features(self, rule: Rule, trained: list) -> str | None:
        """Why what the rule's hidden layer learned is not needed (None if it
        is): on the first seed whose training left it right on every
        pattern, the hidden nodes' incoming weights are put back to their
        values after the first epoch of training (not before it: a rule
        whose init leaves a value its first step turns into a one-time
        random kick to the hidden weights, and never again, must not pass),
        and it is still right on every pattern."""
        task, topology = self.tasks[0], self.topologies[0][0]
        for seed, result in trained:
            if result.state is None or result.failure:
                continue
            check = _hidden_reset(rule, task, topology, self.protocol, self.budget, seed,
                                  result.state)
            if check["reset"] is None:
                continue
            if check["reset"] >= 1.0:
                return (f"fixed-features: {task.name}: trained on seed {seed}, then its hidden "
                        "nodes' incoming weights put back to their values after the first "
                        "epoch, it still answers every pattern right: what its hidden layer "
                        "learned after that was not needed (its output layer alone learned, "
                        "over fixed or once-kicked hidden features)")
            return None
        return None  # no seed to judge it on (the task hurdle passed on the mean)

    def _on(self, graph: int) -> str:
        """' on SPEC' for the run's graph-th graph, when it has several."""
        graphs = self.settings.screen.graphs
        return f" on {graphs[graph]}" if len(graphs) > 1 else ""

    def _target_blind(self, rule: Rule, first_seed: dict[str, tuple]) -> str | None:
        """Why the rule's answers do not follow its targets (None if they
        do): trained on seed 0 for as many epochs as on the task, but on
        counterfactual targets (the complement; the targets moved one row
        on), its thresholded outputs must get more of those targets right
        than the outputs it gives after training on the task do. A rule
        whose outputs are right by construction, by the clock or by luck
        answers the same whatever it is taught; a noisy one answers
        otherwise, but no nearer to what it was taught (rule 39127 of a
        logic.toml run learned AND and OR, and trained on NAND it answered
        AND)."""
        threshold = self.protocol.threshold
        for task, topologies in zip(self.tasks, self.topologies, strict=True):
            topology = topologies[0]  # the first graph's: depending there is depending
            real, start = first_seed[task.name]  # start: with sequence, where it began
            if real.outputs is None:
                continue
            epochs = len(real.accuracy) + len(real.retained)
            answers = real.outputs > threshold
            for other in task.counterfactuals():
                result = learning.evaluate(rule, other, topology, self.protocol, epochs=epochs,
                                        seed=0, budget=self.budget, stop_at=None, engine="c",
                                        start=start)
                if result.failure or result.outputs is None:
                    continue  # it reacted to the targets (or cannot run on them)
                want = np.asarray(other.targets) > 0.5
                before = int((answers == want).sum())
                taught = np.asarray(result.outputs) > threshold
                after = int((taught == want).sum())
                if after <= before:
                    kind = other.name.split("~", 1)[1]
                    same = "exactly as" if np.array_equal(taught, answers) \
                        else "no nearer to them than"
                    return (f"target-blind: {task.name}: trained on the {kind} targets for "
                            f"{epochs} epochs it answers {same} when trained on {task.name} "
                            f"({after} of {want.size} of the {kind} targets right, against "
                            f"{before})")
        return None

    def _held(self, result: learning.Result, task, margin: float | None = None) -> float:
        """A seed's score (held), with the screen's margin unless given."""
        screen = self.settings.screen
        return held(result, screen.hold, screen.pass_accuracy,
                    screen.margin if margin is None else margin, task, self.protocol.threshold)

    def _tie(self, result: learning.Result, task) -> str:
        """The first pattern of the last pass answered wrong or within the
        margin, and its output."""
        bad = wrong_or_tied(result, task, self.protocol.threshold, self.settings.screen.margin)
        k = int(np.argmax(bad))
        pattern = "".join(str(int(b)) for b in task.inputs[k])
        values = " ".join(f"{float(v):.3f}" for v in result.outputs[k])
        return f"pattern {pattern} with {values}"

    def _retained(self, result: learning.Result) -> bool:
        screen = self.settings.screen
        return retained(result, screen.hold, screen.pass_accuracy)

    def curves(self, text: str, seeds: int | None = None) -> list[dict]:
        """The learning curves of a rule as the task hurdles train it: for
        every task, graph and seed (the run's `seeds` unless given), the
        accuracy after each epoch until the goal was held, then each epoch of
        the retention phase. Each: task (TASK or TASK@K), seed, accuracy,
        goal_epoch (None if not reached), retained, failure."""
        _, rule = self._rule(text)
        out = []
        chosen = range(self.settings.screen.seeds if seeds is None else seeds)
        for task, per_graph in zip(self.tasks, self._every_task(rule, chosen), strict=True):
            for g, results in enumerate(per_graph):
                for seed, result in zip(chosen, results, strict=True):
                    out.append({"task": graph_label(task.name, g), "seed": seed,
                                "accuracy": [float(a) for a in result.accuracy],
                                "goal_epoch": result.goal_epoch,
                                "retained": [float(a) for a in result.retained or ()],
                                "failure": result.failure})
        return out

    def _evaluate(self, rule, task, topology, seed, keep_state=False) -> learning.Result:
        return self._evaluate_seeds(rule, task, topology, [seed], keep_state)[0]

    def _evaluate_seeds(self, rule, task, topology, seeds, keep_state=False,
                        starts=None, epochs=None) -> list[learning.Result]:
        """The task hurdles' evaluation on each seed (side by side in one
        call of the C driver per stage: learning.evaluate_seeds), from
        `starts` (a state per seed) if given, for `epochs` (the screen's
        unless given: a cheaper rung's)."""
        return learning.evaluate_seeds(rule, task, topology, self.protocol,
                                       epochs=epochs or self.settings.screen.epochs,
                                       seeds=list(seeds),
                                       budget=self.budget, stop_at=1.0, engine="c",
                                       hold=self.settings.screen.hold,
                                       confirm=self.settings.screen.hold,
                                       retain=self.settings.screen.retain,
                                       keep_state=keep_state, starts=starts)

    def _carries(self, t: int) -> bool:
        """Whether task t's trained states start the next task (sequence)."""
        return self.settings.screen.sequence and t < len(self.tasks) - 1

    def _tasks_in_turn(self, rule, seeds, keep_first: bool = False, epochs=None):
        """Each task's evaluations as the task hurdles train them, one task at
        a time (a caller that stops early evaluates no more): per task, per
        graph, (results per seed, the states they started from or None).
        With sequence, each task starts from the states the one before left.
        keep_first: the first task's first graph keeps its states; epochs:
        a cheaper rung's (the screen's unless given)."""
        carried: dict[int, list] = {}
        for t, (task, topologies) in enumerate(zip(self.tasks, self.topologies, strict=True)):
            per_graph = []
            for g, topology in enumerate(topologies):
                starts = carried.get(g)
                keep = self._carries(t) or (keep_first and t == 0 and g == 0)
                results = self._evaluate_seeds(rule, task, topology, seeds, keep_state=keep,
                                               starts=starts, epochs=epochs)
                if self._carries(t):
                    carried[g] = [r.state for r in results]
                per_graph.append((results, starts))
            yield per_graph

    def _every_task(self, rule, seeds) -> list[list[list[learning.Result]]]:
        """Every task on every graph and seed: [task][graph][seed]."""
        return [[results for results, _ in per_graph]
                for per_graph in self._tasks_in_turn(rule, seeds)]

    @staticmethod
    def _row(task: str, seed: int, result: learning.Result) -> dict:
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


def score_rule(text: str, settings: Settings) -> dict:
    """One rule through every hurdle of a search with `settings`, exactly as
    a search evaluates it (what `rulec search score` prints): the record,
    plus `hurdles` (their names), `failed_hurdle` (None if it cleared all)
    and `fresh_of` (the untouched seeds it was tried on). With successive
    halving's rungs, it is judged as a rule that went up every rung is
    (final_rung)."""
    settings = final_rung(settings)
    ev = evaluator(settings)
    record = ev.screen(text)
    if record["passed"] >= len(SCREEN_HURDLES) and not record["failure"]:
        record = ev.learn(text, record)
    names = hurdle_names(settings)
    record["hurdles"] = names
    if not record["failure"]:
        record["failed_hurdle"] = None
    elif "failed_hurdle" not in record:  # screening names its own (compile comes first)
        record["failed_hurdle"] = names[record["passed"]]
    record["fresh_of"] = settings.screen.fresh_seeds
    return record


def ablations(text: str, settings: Settings) -> list[dict]:
    """Each statement of the rule's update blocks (in `if` bodies too)
    removed in turn, and the rule scored again (score_rule): which statements
    its learning needs. A rule that learns stops learning without the
    statement that learns. Each entry: `line`, `statement` (its source line),
    `block`, `passed` (the rule without it still clears every hurdle),
    `failed_hurdle`, `reason`."""
    from ..edit import replace, statement_lists
    from ..frontend import load
    from ..printer import format_tree

    _, tree, _ = load(text, "ablated.rule")
    lines = text.split("\n")
    out = []
    for path, statements in statement_lists(tree.items):
        block = tree.items[path[0]]
        if block.kind != "update":
            continue
        for position, stmt in enumerate(statements):
            kept = statements[:position] + statements[position + 1:]
            ablated = format_tree(ast.File(replace(tree.items, path, kept)))
            record = score_rule(ablated, settings)  # one that does not check fails `compile`
            line = stmt.span.line
            out.append({"line": line, "statement": lines[line - 1].strip() if line else "",
                        "block": block.label, "passed": record["failure"] is None,
                        "failed_hurdle": record["failed_hurdle"], "reason": record["failure"]})
    return sorted(out, key=lambda entry: entry["line"])


def hidden_layer_needed(text: str, settings: Settings, seeds=range(FRESH_SEED0, FRESH_SEED0 + 3),
                        ) -> list[dict]:
    """Whether what a rule's hidden layer learned is needed for the first
    task, on each of `seeds`: trained as the task hurdles train it, then
    every edge slot of the half-edges the hidden nodes own (their incoming
    weights, as the rule sees them) put back to its value after the first
    training epoch (a one-time kick at the first step is no learning), and
    scored again: the `hidden` hurdle's check (_hidden_reset), seed by
    seed. A rule whose output layer alone learns the task over fixed random
    hidden features still scores 100% then (it is a random-feature learner,
    not one whose hidden layer learns from an error it receives). Each
    entry: `seed`, `trained` (the accuracy after training), `reset` (after
    the reset; None if the seed did not learn), `moved` (whether any hidden
    weight changed after the first epoch)."""
    ev = evaluator(settings)
    _, rule = ev._rule(text)
    task, topology = ev.tasks[0], ev.topologies[0][0]
    out = []
    for seed in seeds:
        result = ev._evaluate(rule, task, topology, seed, keep_state=True)
        if result.failure or result.state is None:
            out.append({"seed": seed, "trained": 0.0, "reset": None, "moved": None})
            continue
        out.append(_hidden_reset(rule, task, topology, ev.protocol, ev.budget, seed,
                                 result.state))
    return out
