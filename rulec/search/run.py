"""The coordinator of a search: ask the strategy, skip duplicates, send
batches to workers, store what comes back, tell the strategy.

A run is a sequence of generations of `generation` rules each (rule
indices g*G ... g*G+G-1). For each generation:

1. the strategy proposes its rules (`ask`);
2. exact duplicates (same canonical text as an earlier rule) are not sent;
3. the rest are screened in batches (parse, static, run, sensitive);
4. in index order, a rule that behaves like an earlier one (the same
   functional hash) copies that rule's results instead of learning again;
5. the remaining survivors run the task hurdles in batches (with [screen]
   rungs, first each cheaper rung of successive halving, after which only
   the rules whose score is in the top 1/eta of every score of that rung
   so far go on: ASHA's promotion rule, decided at the generation's end so
   that it does not depend on which worker finished first);
6. every finished rule is stored (one transaction per batch), and the
   strategy is told the whole generation.

With several workers and a strategy whose `ask` does not depend on what it
was told (`asks_ahead`: random search), steps 3 and 5 of consecutive
generations overlap: generation g's survivors learn in the same round of
tasks that screens generation g+1, so no worker waits for a generation's
last learner; and that round hands out generation g+2's screening after
its own tasks, for the next round to wait for, so no worker waits while
the coordinator sorts either. Generation g+1 is still sorted (steps 2 and
4) only once generation g is final, so what is stored is the same.

Everything a rule's record holds is a function of the settings, the
strategy, the seed and its index, so the same command gives the same rules
and results with any number of workers, and a run killed at any moment
resumes from its database: generations already stored are replayed into
the strategy without evaluating anything, and a generation stored in part
evaluates only the rules it lacks.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from .._version import __version__
from ..errors import RuleErrors
from ..parser import parse_text
from ..printer import format_tree
from .canon import identity, text_hash
from .execute import Ahead, evaluate_batch, fewer_collections, make_executor
from .hurdles import SCREEN_HURDLES, bar_of_ranked, hurdle_names, rank_key, rung_key
from .space import Settings, SpaceError, digest, draw_tree
from .store import Store
from .strategy import STRATEGIES, Candidate, RandomSearch, RegularizedEvolution


@dataclass(frozen=True)
class Config:
    """How rules are proposed (it decides the results, like Settings)."""

    strategy: str = "random"
    seed: int = 0
    generation: int = 64  # rules per generation
    population: int = 100  # evolution
    tournament: int = 10  # evolution
    start: tuple[str, ...] = ()  # rule texts to evaluate first (and evolve from)
    start_mutants: int = 0  # evolution: K mutants of each start rule join the first population
    crossover: float = 0.2  # evolution: the share of children that cross two parents
    immigrants: float = 0.25  # evolution: the share of children drawn at random

    def strategy_object(self, settings: Settings):
        if self.strategy not in STRATEGIES:
            raise SpaceError(f"unknown strategy {self.strategy!r}; strategies: "
                             f"{', '.join(STRATEGIES)}")
        if self.generation < 1:
            raise SpaceError("a generation needs at least one rule")
        if self.strategy == "evolve":
            return RegularizedEvolution(settings.space, self.seed, self.start,
                                        self.population, self.tournament, self.start_mutants,
                                        self.crossover, self.immigrants)
        return RandomSearch(settings.space, self.seed, self.start)


@dataclass
class Progress:
    """What a run has done so far (passed to the progress callback)."""

    hurdles: tuple[str, ...]
    rules: int = 0  # rules with a stored record, this run in all sessions
    new: int = 0  # rules evaluated by this session
    passed: list[int] = field(default_factory=list)  # rules clearing each hurdle
    exact_duplicates: int = 0
    behaviour_duplicates: int = 0
    best: dict | None = None
    started: float = field(default_factory=time.monotonic)
    generation: int = 0
    _best_key: tuple | None = field(default=None, repr=False, compare=False)  # best's rank_key

    def add(self, record: dict) -> None:
        self.rules += 1
        for k in range(min(record["passed"], len(self.passed))):
            self.passed[k] += 1
        if record.get("duplicate") == "exact":
            self.exact_duplicates += 1
        elif record.get("duplicate") == "behaviour":
            self.behaviour_duplicates += 1
        if record.get("duplicate") is None:  # a duplicate's results are its original's
            key = rank_key(record)
            if self.best is None or key < self._best_key:
                self.best, self._best_key = record, key

    @property
    def rate(self) -> float:
        return self.new / max(time.monotonic() - self.started, 1e-9)


def _loss(loss: float | None) -> str:
    """' (loss L)', or '' for a missing or infinite loss."""
    return f" (loss {loss:.4f})" if loss is not None and math.isfinite(loss) else ""


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _guides(executor) -> int:
    """The workers to shrink chunks for: a local pool's (a task costs it
    little); 1 for a Dask cluster, where each task costs the scheduler
    about a millisecond (more, smaller tasks raised its cost per rule)."""
    return executor.workers if getattr(executor, "small_tasks", False) else 1


def _guided(items: list, size: int, workers: int) -> list[list]:
    """Chunks of at most `size` items that get smaller toward the end (each
    at most what is left over twice the workers, at least 4), so that the
    workers finish a round together instead of one running its last full
    chunk while the others wait (guided scheduling). One worker: _chunks."""
    if workers <= 1:
        return _chunks(items, size)
    out, i = [], 0
    while i < len(items):
        n = min(size, max(4, -(-(len(items) - i) // (2 * workers))))
        out.append(items[i:i + n])
        i += n
    return out


@dataclass
class _Pending:
    """A generation between its screening and its learning: what it asked,
    what was stored of it before, its records, its learners and the
    duplicates waiting for their representatives."""

    generation: int
    indices: range
    stored: dict
    candidates: list
    records: dict = field(default_factory=dict)
    learners: list = field(default_factory=list)
    waiting: dict = field(default_factory=dict)
    unstored: list = field(default_factory=list)  # final records not yet stored
    ahead: Ahead | None = None  # its screening, handed out by the round before


def _settled(waiting: dict) -> None:
    if waiting:  # cannot happen: every representative is final by now
        raise RuntimeError(f"duplicates left waiting: {sorted(waiting)[:5]}")


#: Bumped whenever what a run stores for the same settings, config and seed
#: changes (the generator, the hurdles, the mutations): part of a run's key,
#: so a newer rulec starts a new run beside an old one instead of resuming
#: it with other rules.
RESULTS_VERSION = "2026-12-05.2"


def strategy_identity(strategy) -> str:
    """What names a strategy object in a run's key: its `identity`
    attribute if it has one (say, with its own settings), else its class."""
    return str(getattr(strategy, "identity", None)
               or f"{type(strategy).__module__}.{type(strategy).__qualname__}")


class Search:
    """One run of a search on a database; `run()` goes until a limit. With
    `strategy` (any object with ask and tell), that strategy proposes the
    rules instead of config.strategy's; it is part of the run's key
    (strategy_identity), so a run of it is never resumed by another. `name`
    labels a new run (reports pick runs by id or name); it is not part of
    the key, so resuming under another name resumes the same run."""

    def __init__(self, settings: Settings, config: Config, db: str, jobs: int = 1,
                 scheduler=None, batch: int = 16,
                 progress: Callable[[Progress], None] | None = None, strategy=None,
                 name: str | None = None) -> None:
        settings.space.make_protocol()
        settings.check()
        self.settings, self.config = settings, config
        self.keep = frozenset(settings.space.protocol_slots())
        self.protocol = settings.space.make_protocol()
        if strategy is not None and not (callable(getattr(strategy, "ask", None))
                                         and callable(getattr(strategy, "tell", None))):
            raise SpaceError(f"a strategy has ask(generation, indices) and tell(generation, "
                             f"records) methods; {type(strategy).__name__} lacks them")
        self.strategy = strategy if strategy is not None else config.strategy_object(settings)
        self.config_record = asdict(config)
        if strategy is not None:
            self.config_record["strategy"] = strategy_identity(strategy)
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise SpaceError(f"a batch holds at least one rule, got {batch!r}")
        if jobs < 1:
            raise SpaceError(f"a search needs at least one worker, got jobs={jobs}")
        self.batch = batch
        self.db = db
        self.key = digest({"settings": settings.to_dict(), "config": self.config_record,
                           "results": RESULTS_VERSION})
        if name is not None:  # a label, not part of the key: it names, it decides nothing
            if not name.strip() or name.strip().isdigit():
                raise SpaceError(f"a run's name is text that is not a number (numbers are "
                                 f"run ids), got {name!r}")
            self.config_record = {**self.config_record, "name": name.strip()}
        self.store: Store | None = None
        self.run_id: int | None = None
        self.fresh_run = True
        self.jobs, self.scheduler = jobs, scheduler
        self.workers = 1
        self.on_progress = progress
        hurdles = hurdle_names(settings)
        self.progress = Progress(hurdles, passed=[0] * len(hurdles))
        self.canon: dict[str, int] = {}  # canonical hash -> first rule with it
        self.func: dict[str, int] = {}  # functional hash -> first rule with it
        self.final: dict[int, dict] = {}  # rule -> its outcome (for duplicates to copy)
        self.stored: dict[int, dict[int, dict]] = {}  # generation -> idx -> stored record
        # per cheaper rung: idx -> (score, loss), every rule scored there in
        # this run, and their rung_keys in ascending order
        self.rung_scores: list[dict[int, tuple]] = [{} for _ in settings.screen.rungs]
        self.rung_ranked: list[list[tuple]] = [[] for _ in settings.screen.rungs]

    # --------------------------------------------------------------- resume

    def _load(self) -> None:
        """Read what earlier sessions stored: the hash maps, the outcomes, the
        records per generation (texts only for the rules a strategy may
        still need)."""
        columns = ("idx", "generation", "canon_hash", "func_hash", "passed", "score", "fresh",
                   "spread", "loss", "size", "duplicate", "duplicate_of", "failure")
        rows = self.store.rules_of(self.run_id, columns)
        # a strategy that keeps the last `memory` rules needs their texts again
        # (of the last `memory` that are not duplicates, if it skips those;
        # and of the start rules)
        memory = getattr(self.strategy, "memory", 0) or 0
        keep_text = memory + self.config.generation if memory else 0
        texts = {}
        if rows and keep_text:
            eligible = [row["idx"] for row in rows if row["duplicate"] is None] \
                if getattr(self.strategy, "skips_duplicates", False) \
                else [row["idx"] for row in rows]
            wanted = sorted(set(eligible[-keep_text:]) | set(range(len(self.config.start))))
            for chunk in range(0, len(wanted), 500):
                part = wanted[chunk:chunk + 500]
                for row in self.store.rules_of(self.run_id, ("idx", "text"),
                                               where=lambda c, part=part: c.idx.in_(part)):
                    texts[row["idx"]] = row["text"]
        for row in rows:
            row["text"] = texts.get(row["idx"])
            self.stored.setdefault(row["generation"], {})[row["idx"]] = row
            # as in _evaluate: every rule's canonical hash is known from the
            # moment it is drawn (a behaviour duplicate's too: a later rule
            # with its text is an exact duplicate of it)
            self.canon.setdefault(row["canon_hash"], row["idx"])
            if row["duplicate"] is None:
                if row["func_hash"] is not None and row["passed"] >= len(SCREEN_HURDLES):
                    self.func.setdefault(row["func_hash"], row["idx"])
            self.final[row["idx"]] = row
            self.progress.add(row)
        if self.rung_scores:
            for row in self.store.rung_scores_of(self.run_id):
                if row["rung"] < len(self.rung_scores):
                    self._scored(row["rung"], row["idx"], (row["score"], row["loss"]))

    # ------------------------------------------------------------- running

    def run(self, rules: int | None = None, minutes: float | None = None) -> Progress:
        """Evaluate until `rules` rules are stored in this run or `minutes` pass
        (one of them must be given); returns the progress."""
        if rules is None and minutes is None:
            raise SpaceError("say how long to search: a number of rules or minutes")
        if minutes is not None and not 0 < minutes < math.inf:
            raise SpaceError(f"minutes must be a number above 0, got {minutes}")
        if rules is not None and rules < 1:
            raise SpaceError(f"rules must be at least 1, got {rules}")
        deadline = None if minutes is None else time.monotonic() + 60 * minutes
        size_g = self.config.generation
        # the workers (or the cluster) first: a scheduler that cannot be
        # reached leaves no run behind in the database
        executor = make_executor(self.jobs, self.scheduler)
        self.workers = executor.workers
        if hasattr(executor, "warm"):  # local workers start while the store opens
            executor.warm(self.settings.to_dict())
        # a strategy whose ask does not depend on what it was told lets the
        # workers screen generation g+1 while generation g's survivors learn
        # (with several workers; successive halving keeps its barriers)
        ahead = getattr(self.strategy, "asks_ahead", False) and executor.workers > 1 \
            and not self.settings.screen.rungs
        try:
            with fewer_collections():  # the coordinator's own objects: the same kinds
                self._generations(rules, deadline, size_g, executor, ahead)
        except BaseException:  # Ctrl-C, a store failure: workers stop now
            executor.close(abort=True)
            raise
        else:
            executor.close()
        finally:
            if self.store is not None:
                self.store.close()
                self.store = None
        return self.progress

    def _generations(self, rules: int | None, deadline: float | None, size_g: int, executor,
                     ahead: bool) -> None:
        """run()'s loop: generation after generation until `rules` or the
        deadline, each asked, evaluated (or replayed from the store), told
        and stored. Screening `ahead`, each round of tasks also hands out
        the next generation's screening (asked now), which the next round
        waits for: no worker waits while a generation is sorted."""
        self.open()
        self._load()
        generation = 0
        pending: _Pending | None = None  # screened and sorted; its learners not yet run
        started: _Pending | None = None  # asked, its screening handed out (started.ahead)
        while True:
            asked = self._asked(generation, rules, deadline, size_g)
            if asked is None:
                break
            indices, stored = asked
            self.progress.generation = generation
            if all(i in stored for i in indices):  # done in an earlier session: replay
                if pending is not None:
                    self._complete(pending, executor)
                    pending = None
                self.strategy.tell(generation, [stored[i] for i in indices])
                self.stored.pop(generation, None)
            elif ahead:
                now = started if started is not None else self._pending(generation, indices,
                                                                        stored)
                following = self._asked(generation + 1, rules, deadline, size_g)
                started = None
                if following is not None and not all(i in following[1]
                                                     for i in following[0]):
                    started = self._pending(generation + 1, *following)
                pending = self._round(pending, now, executor, started)
            else:
                now = self._pending(generation, indices, stored)
                self._evaluate(now, executor)
                self._told(now)
            generation += 1
        if started is not None and started.ahead is not None:  # the deadline came: drop it
            started.ahead.cancel()
        if pending is not None:
            self._complete(pending, executor)

    def _asked(self, generation: int, rules: int | None, deadline: float | None,
               size_g: int) -> tuple[range, dict] | None:
        """Generation `generation`'s indices and the records of them already
        stored, or None once the run has its rules or its deadline passed."""
        start = generation * size_g
        if rules is not None and start >= rules:
            return None
        if deadline is not None and time.monotonic() >= deadline:
            return None
        end = start + size_g if rules is None else min(start + size_g, rules)
        return range(start, end), self.stored.get(generation, {})

    def _pending(self, generation: int, indices: range, stored: dict) -> _Pending:
        """A generation asked of the strategy (but for the rules stored)."""
        candidates = [c for c in self.strategy.ask(generation, indices)
                      if c.index not in stored]
        return _Pending(generation, indices, stored, candidates)

    def open(self) -> None:
        """Open the store and find (or make) this run in it."""
        if self.store is None:
            self.store = Store(self.db)
            self.run_id, self.fresh_run = self.store.run(
                self.key, self.settings.to_dict(), self.config_record, __version__)
            self.store.lease(self.run_id)  # one coordinator per run

    def _evaluate(self, now: _Pending, executor) -> None:
        """One generation: the workers draw (or parse), hash, size and screen
        every candidate; here the exact duplicates (by canonical hash, the
        first index wins) and behaviour duplicates (by functional hash) are
        set aside, the rest learn in the workers, and all is stored (then
        _told tells the strategy)."""
        settings = self.settings.to_dict()
        payloads = self._screen_payloads(now, executor, settings)  # (makes now.records)
        records = now.records
        for _, results in executor.run(evaluate_batch, payloads):
            for r in results:
                records[r["index"]].update(r)
        learners, now.waiting = self._sort(now.candidates, records)
        learners = self._rungs(learners, records, now.waiting, executor, settings)
        self._learn(learners, records, now.waiting, executor, settings)

    def _round(self, before: _Pending | None, now: _Pending, executor,
               following: _Pending | None = None) -> _Pending:
        """The learners of generation `before` and the screening of `now`
        in one round of tasks (in the workers' order: now's screening if the
        round before handed it out, `now.ahead`; the learners; now's
        screening if not); then `before` is
        complete (stored and told), and `now` is sorted. The screening of
        `following` is handed out after this round's tasks and not waited
        for (the next round's `now`), so the workers go on with it while
        this round ends. The records are what _evaluate would give:
        generation `now` is sorted after `before` is final, in index order.
        What sorting `before` left to store is stored while the workers run
        this round (every duplicate is still stored after its
        representative)."""
        settings = self.settings.to_dict()
        screen = []
        if now.ahead is None:  # not handed out by an earlier round
            screen = self._screen_payloads(now, executor, settings)
        started = now.ahead.payloads if now.ahead is not None else []
        learn = [] if before is None else \
            [(settings, "learn", chunk) for chunk in _chunks(before.learners, self.batch)]
        if following is not None:
            following.ahead = Ahead(self._screen_payloads(following, executor, settings))

        def idle() -> None:
            if before is not None:
                self._store(before.unstored)
                before.unstored = []

        for i, results in executor.run(evaluate_batch, learn + screen, idle=idle,
                                       started=now.ahead, ahead=following and following.ahead):
            if len(started) <= i < len(started) + len(learn):
                self._learned(results, before.records, before.waiting)
            else:
                for r in results:
                    now.records[r["index"]].update(r)
        if before is not None:
            self._told(before)
        now.learners, now.waiting = self._sort(now.candidates, now.records, now.unstored)
        return now

    def _screen_payloads(self, pending: _Pending, executor, settings: dict) -> list:
        """The screening tasks of a generation (its records made here)."""
        pending.records, items = self._screen_items(pending.generation, pending.candidates)
        return [(settings, "screen", chunk)
                for chunk in _guided(items, self.batch, _guides(executor))]

    def _complete(self, pending: _Pending, executor) -> None:
        """The learners of a sorted generation, then it is stored and told."""
        self._store(pending.unstored)
        pending.unstored = []
        self._learn(pending.learners, pending.records, pending.waiting, executor,
                    self.settings.to_dict())
        self._told(pending)

    def _learn(self, learners: list, records: dict[int, dict], waiting: dict, executor,
               settings: dict) -> None:
        """The task hurdles of `learners`, in the workers; each batch is
        stored as it comes back."""
        payloads = [(settings, "learn", chunk) for chunk in _chunks(learners, self.batch)]
        for _, results in executor.run(evaluate_batch, payloads):
            self._learned(results, records, waiting)

    def _told(self, pending: _Pending) -> None:
        _settled(pending.waiting)
        records = [pending.records[c.index] for c in pending.candidates]
        everything = {**pending.stored, **{r["idx"]: r for r in records}}
        self.strategy.tell(pending.generation, [everything[i] for i in pending.indices])
        self.stored.pop(pending.generation, None)

    def _screen_items(self, generation: int, candidates: list[Candidate]):
        """The records of a generation's candidates (index, parent, ...) and
        the items their screening sends to the workers."""
        records: dict[int, dict] = {}
        items = []
        for c in candidates:
            records[c.index] = {"idx": c.index, "generation": generation, "parent": c.parent,
                                "mutation": c.mutation, "score": 0.0}
            text = c.text if c.text is not None or c.tree is None else format_tree(c.tree)
            if text is None and c.draw is None:
                raise SpaceError(f"candidate {c.index} has no tree, text or draw seed (make "
                                 "one with Candidate.of(index, tree) or drawn(seed, index))")
            items.append((c.index, text, c.tree, c.draw))
        return records, items

    def _sort(self, candidates: list[Candidate], records: dict[int, dict],
              unstored: list | None = None):
        """In index order, after screening: exact duplicates wait for their
        representative, rules that failed screening are stored (or, given
        `unstored`, put there to store later), behaviour duplicates wait,
        and the rest are the learners: (learners, waiting)."""
        learners = []
        waiting: dict[int, tuple[str, int]] = {}  # duplicate -> (kind, representative)
        done = []
        for c in candidates:  # in index order: the first of equals is their representative
            record = records[c.index]
            if "canon_hash" not in record:  # its worker died: made here
                record.update(self._identity(c))
            first = self.canon.setdefault(record["canon_hash"], c.index)
            if first != c.index:
                waiting[c.index] = ("exact", first)
                continue
            if record["passed"] < len(SCREEN_HURDLES) or record.get("failure"):
                done.append(record)
                continue
            first = self.func.setdefault(record["func_hash"], c.index)
            if first != c.index:
                waiting[c.index] = ("behaviour", first)
            else:
                learners.append((c.index, record["text"], self._wire(record)))
        if unstored is None:
            self._finish(done, records, waiting)
        else:
            unstored.extend(self._settle(done, records, waiting))
        return learners, waiting

    def _learned(self, results: list[dict], records: dict[int, dict], waiting: dict) -> None:
        for r in results:
            records[r["index"]].update(r)
        self._finish([records[r["index"]] for r in results], records, waiting)

    def _rungs(self, learners: list, records: dict[int, dict], waiting: dict,
               executor, settings: dict) -> list:
        """Successive halving's cheaper rungs ([screen] rungs), one after
        another: every learner trains on rung k in the workers; then, in
        index order, those whose score is among the top 1/eta of every
        rung-k score of the run so far (this generation's included) go up,
        and the rest are stored as not promoted. The learners left go on to
        the task hurdles."""
        screen = self.settings.screen
        for k, epochs in enumerate(screen.rungs):
            if not learners:
                break
            items = [(index, text, wire, k) for index, text, wire in learners]
            payloads = [(settings, "rung", chunk) for chunk in _chunks(items, self.batch)]
            for _, results in executor.run(evaluate_batch, payloads):
                for r in results:
                    records[r["index"]].update(r)
            pool = self.rung_scores[k]
            for index, _, _ in learners:
                if not records[index].get("failure"):
                    self._scored(k, index, tuple(records[index]["rungs"][k]))
            bar = bar_of_ranked(self.rung_ranked[k], screen.eta) if pool else (0.0, -math.inf)
            up, stopped = [], []
            for index, text, _ in learners:
                record = records[index]
                if record.get("failure"):  # its worker died
                    stopped.append(record)
                    continue
                score, loss = record["rungs"][k]
                if rung_key(score, loss) >= bar:
                    record["passed"] += 1
                    up.append((index, text, self._wire(record)))
                    continue
                seeds = screen.rung_seeds(k)
                record["score"] = score
                record["failure"] = (
                    f"not-promoted: rung {k + 1} ({epochs} epochs on seed"
                    f"{'s' if len(seeds) > 1 else ''} {seeds.start}"
                    f"{f'..{seeds.stop - 1}' if len(seeds) > 1 else ''}) scored {score:.3f}"
                    f"{_loss(loss)}; the top 1/{screen.eta} of the {len(pool)} rules scored "
                    f"there so far needed {bar[0]:.3f}{_loss(-bar[1])}")
                stopped.append(record)
            self._finish(stopped, records, waiting)
            learners = up
        return learners

    def _scored(self, k: int, index: int, pair: tuple) -> None:
        """Rule `index` scored (score, loss) on rung k (once: a rule's rung
        scores are stored with its record, so a resumed run re-scores only
        rules it had not stored)."""
        if index not in self.rung_scores[k]:
            self.rung_scores[k][index] = pair
            bisect.insort(self.rung_ranked[k], rung_key(*pair))

    def _identity(self, c: Candidate) -> dict:
        """A candidate's text, canonical hash and size, made here (for a rule
        whose worker died before it could say)."""
        tree, text = c.tree, c.text
        if tree is None and text is None:
            tree = draw_tree(self.settings.space.options(), c.draw, c.index)
        if tree is None:
            try:
                tree = parse_text(text, "candidate.rule")
            except RuleErrors:  # a text that does not parse is its own identity
                return {"text": text, "canon_hash": text_hash(text), "size": 0}
        return {"text": text if text is not None else format_tree(tree),
                **identity(tree, self.keep)}

    @staticmethod
    def _wire(record: dict) -> dict:
        return {**{k: record[k] for k in ("passed", "failure", "timings", "func_hash",
                                          "results", "spread")},
                "rungs": list(record.get("rungs") or ())}

    def _finish(self, finished: list[dict], records: dict[int, dict],
                waiting: dict[int, tuple[str, int]]) -> None:
        """Store finished rules and the duplicates whose representative is final."""
        self._store(self._settle(finished, records, waiting))

    def _settle(self, finished: list[dict], records: dict[int, dict],
                waiting: dict[int, tuple[str, int]]) -> list[dict]:
        """Make finished rules final, and the duplicates whose representative
        now is: the records to store (a duplicate after its representative)."""
        for record in finished:
            record.pop("index", None)
            self.final[record["idx"]] = record
        resolved = []
        progress = True
        while progress:  # a duplicate of a duplicate resolves once that one has
            progress = False
            for index, (kind, first) in list(waiting.items()):
                if first not in self.final:
                    continue
                progress = True
                source = self.final[first]
                record = records[index]
                record.update(duplicate=kind, duplicate_of=first, timings={}, results=[],
                              worker=None)
                for key in ("passed", "failure", "score", "fresh", "spread", "loss",
                            "func_hash", "rungs"):
                    record[key] = source.get(key)
                record["score"] = record["score"] or 0.0
                self.final[index] = record
                resolved.append(record)
                del waiting[index]
        return finished + resolved

    def _store(self, batch: list[dict]) -> None:
        self.store.write(self.run_id, batch)
        for record in batch:
            self.progress.add(record)
            self.progress.new += 1
        if self.on_progress and batch:
            self.on_progress(self.progress)


def search(settings: Settings | None = None, config: Config | None = None,
           db: str = "search.sqlite", rules: int | None = None, minutes: float | None = None,
           jobs: int = 1, scheduler=None, batch: int = 16, progress=None,
           strategy=None, name: str | None = None) -> Progress:
    """Run (or resume) a search; see rulec.search and docs/search.md."""
    s = Search(settings or Settings(), config or Config(), db, jobs, scheduler, batch, progress,
               strategy, name)
    return s.run(rules, minutes)
