"""Differential fuzzing: random rules, C and the VM against the reference interpreter.

`check(rules, ref_rule, graph, state)` runs every block of a rule once from
the same state in the backends under test (C also with 2 threads) and in the
reference, and returns the mismatches. Float arithmetic makes some results
ill-conditioned (a sum that cancels, a comparison on the edge of its
threshold): an element counts only if the reference itself is stable there,
i.e. gives the same result when each input moves by its own few ulp and each
result of an approximate op (exp, log, tanh, sin, cos, sigmoid: C's vector
libm is within a few ulp of NumPy) moves within those ulp (three random
trials, and 24 more before a difference is reported). Everything else must
agree: NaN and ±inf positions exactly, finite values within RTOL/ATOL.

`rulec fuzz` (rulec.cli) drives it over many rules: rulec.generate makes
case i of a run from (seed, i) alone with a plain seeded RNG (so the same
seed gives the same cases whatever the job count or the imports),
compile_many builds them in batches, and a failure is shrunk to a minimal
rule and written out with the state that reproduces it. A rule the checker
refuses (a generator bug) or whose check raises (a rulec bug) is reported
with its text; the run goes on.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .graph import Graph
from .state import State

RTOL = 1e-3
ATOL = 1e-4
CONFIRM_TRIALS = 24  # extra stability trials before a difference is called a mismatch


#: The backends `rulec fuzz` checks against the reference, by default.
BACKENDS = ("c", "vm")


@dataclass
class Mismatch:
    block: str
    threads: int
    kind: str
    slot: str
    element: int
    c_value: float
    reference_value: float
    backend: str = "c"

    def __str__(self) -> str:
        name = {"c": "C", "vm": "VM"}.get(self.backend, self.backend)
        return (f"block {self.block!r} ({self.backend}, threads {self.threads}): {self.kind} "
                f"slot {self.slot!r} element {self.element}: {name} {self.c_value!r}, "
                f"reference {self.reference_value!r}")


def nudged(state: State, rng: np.random.Generator) -> State:
    """A copy of `state` with every finite nonzero value scaled by its own random
    factor within 1 ± 2^-21 (up to about 4 ulp). Independent factors matter: a
    sum of 1e30 and -1e30 nudged alike would still cancel and look stable."""
    other = state.copy()
    for _, _, array in other.slots():
        finite = np.isfinite(array) & (array != 0)
        factor = 1.0 + rng.uniform(-1.0, 1.0, size=array.size) * 2.0**-21
        array[finite] = (array[finite].astype(np.float64) * factor[finite]).astype(np.float32)
    return other


def _classes(a: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(a), 1, 0) + np.where(np.isposinf(a), 2, 0) + \
        np.where(np.isneginf(a), 4, 0)


def _close(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise: same NaN/inf class and, where finite, within tolerance."""
    same = _classes(a) == _classes(b)
    finite = np.isfinite(a) & np.isfinite(b)
    with np.errstate(all="ignore"):
        near = np.abs(a.astype(np.float64) - b) <= ATOL + RTOL * np.abs(b.astype(np.float64))
    return same & (~finite | near)


def run_block(rule, state: State, label: str, threads: int = 1) -> None:
    if label == "init":
        rule.init(state, seed=state.seed, threads=threads)
    else:
        rule.step(state, block=label, threads=threads)


def check(rules, ref_rule, graph: Graph, state: State, wobbles: int = 3,
          seed: int = 0) -> list[Mismatch]:
    """Mismatches between the rules under test (a Rule or a list: C with 1 and
    2 threads, the VM with 1) and the reference, one step of each block."""
    rules = rules if isinstance(rules, list | tuple) else [rules]
    runs = [(rule, threads) for rule in rules
            for threads in ((1, 2) if rule.runner.threaded else (1,))]
    rng = np.random.default_rng(seed)
    found: list[Mismatch] = []
    for label in ref_rule.blocks:
        reference = state.copy()
        run_block(ref_rule, reference, label)
        stable = stability(ref_rule, state, reference, label, wobbles, rng)
        confirmed = False
        for c_rule, threads in runs:
            result = state.copy()
            run_block(c_rule, result, label, threads)
            for (kind, name, got), (_, _, want) in zip(result.slots(), reference.slots(),
                                                       strict=True):
                bad = np.flatnonzero(stable[name] & ~_close(got, want))
                if len(bad) and not confirmed:
                    # a candidate: make sure the reference is stable there, with
                    # many more trials (a branch on a cancelling sum can look
                    # stable in a few), before calling it a mismatch
                    more = stability(ref_rule, state, reference, label, CONFIRM_TRIALS, rng)
                    stable = {k: stable[k] & more[k] for k in stable}
                    confirmed = True
                    bad = np.flatnonzero(stable[name] & ~_close(got, want))
                if len(bad):
                    e = int(bad[0])
                    found.append(Mismatch(label, threads, kind, name, e, float(got[e]),
                                          float(want[e]), c_rule.backend))
            if result.time != reference.time:
                found.append(Mismatch(label, threads, "time", "time", 0, result.time,
                                      reference.time, c_rule.backend))
    return found


def stability(ref_rule, state: State, reference: State, label: str, wobbles: int,
              rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per slot, where the reference's result after `label` stays within the
    tolerance of `reference` (its result from `state`) when the inputs are nudged."""
    stable = {name: np.ones(array.size, dtype=bool) for _, name, array in reference.slots()}
    interpreter = ref_rule.runner.interpreter(state.graph)
    for _ in range(wobbles):
        moved = nudged(state, rng)
        interpreter.jitter = rng  # and each approximate op's result, within its ulps
        try:
            run_block(ref_rule, moved, label)
        finally:
            interpreter.jitter = None
        for (_, name, a), (_, _, b) in zip(reference.slots(), moved.slots(), strict=True):
            stable[name] &= _close(b, a)
    return stable


def random_state(program, graph: Graph, seed: int, specials: float = 0.1) -> State:
    """The state rulec.strategies.states draws, from a plain seed (for replays)."""
    rng = np.random.default_rng(seed)
    state = State(graph, program.node_slots, program.edge_slots, program.shared_slots)
    specials_values = np.array([0.0, np.inf, -np.inf, np.nan, 1e-40, -1e-40, 1e30, -1e30],
                               dtype=np.float32)
    for _, _, array in state.slots():
        values = rng.normal(size=array.size).astype(np.float32)
        special = rng.random(array.size) < specials
        values[special] = rng.choice(specials_values, size=int(special.sum()))
        array[...] = values
    state.time = int(rng.integers(0, 100))
    state.seed = int(rng.integers(0, 2**63))
    return state


def shrink(generated_rule, fails, budget: int = 200, seconds: float = 120.0):
    """Greedy shrinking: take the first shorter well-typed edit that still
    fails, until none does, `budget` candidates were tried, or `seconds` passed
    (a large rule then stays partly shrunk)."""
    from .edit import well_typed_edits

    deadline = time.monotonic() + seconds
    current = generated_rule
    tries = 0
    improved = True
    while improved and tries < budget and time.monotonic() < deadline:
        improved = False
        for candidate in well_typed_edits(current, shorter=True):
            tries += 1
            if fails(candidate):
                current = candidate
                improved = True
                break
            if tries >= budget or time.monotonic() >= deadline:
                break
    return current


@dataclass
class Case:
    index: int
    rule: object  # GeneratedRule, or None if the generator made an ill-typed rule
    graph: Graph
    state_seed: int
    error: str = ""  # why the rule was rejected


def make_case(seed: int, index: int, options) -> Case:
    """Case `index` of a run with `seed`: a pure function of (seed, index,
    options), so a run's cases do not depend on how they are split over jobs,
    nor on what the process imported before."""
    from .errors import RuleErrors
    from .generate import SeededSource, generated, graph, rule_tree
    from .printer import format_tree

    source = SeededSource(f"rulec-fuzz:{seed}:{index}")
    tree = rule_tree(source, options)
    random_graph = graph(source)
    state_seed = source.integer(0, 2**32 - 1)
    try:
        return Case(index, generated(tree), random_graph, state_seed)
    except RuleErrors as errors:
        return Case(index, None, random_graph, state_seed,
                    f"{errors.errors[0].code}: {errors.errors[0].message}\n{format_tree(tree)}")


def fuzz_options(depth: int = 3, statements: int = 5):
    """The generator's options for `rulec fuzz --depth D --statements S`."""
    from .generate import Options

    return Options(max_depth=depth, max_statements=statements, adversarial_names=0.25)


@dataclass
class Report:
    rules: int = 0
    mismatches: int = 0
    rejected: int = 0  # rules the generator made that the checker refused (a generator bug)
    crashes: int = 0  # rules whose check raised (a bug in rulec)
    seconds: float = 0.0
    failures: list = dataclasses.field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.rules / self.seconds if self.seconds else 0.0

    def add(self, other: Report) -> None:
        self.rules += other.rules
        self.mismatches += other.mismatches
        self.rejected += other.rejected
        self.crashes += other.crashes
        self.failures += other.failures


def fuzz(count: int, seed: int, depth: int = 3, out: Path | None = None, batch: int = 50,
         progress=None, statements: int = 5, indices=None, backends=BACKENDS) -> Report:
    """Generate, build (in batches) and differentially check `count` rules (or
    the cases numbered `indices`) on `backends` against the reference. A rule
    the checker refuses is counted as rejected, one whose check raises as a
    crash, each with its text; the run goes on either way."""
    from .api import Rule, compile_many

    start = time.perf_counter()
    report = Report()
    options = fuzz_options(depth, statements)
    indices = list(range(count)) if indices is None else list(indices)
    for first in range(0, len(indices), batch):
        cases = [make_case(seed, index, options) for index in indices[first:first + batch]]
        for case in cases:
            if case.rule is None:
                report.rejected += 1
                report.failures.append({"kind": "rejected", "case": case.index,
                                        "mismatch": "the generator made an ill-typed rule: "
                                        + case.error.split("\n", 1)[0],
                                        "rule": case.error.split("\n", 1)[1]})
        chunk = [case for case in cases if case.rule is not None]
        under_test = [[] for _ in chunk]
        for backend in backends:
            try:
                built = compile_many([case.rule.program for case in chunk], backend=backend)
            except Exception:  # find the rule that breaks the batch, and go on
                built = [_compile_one(case, backend) for case in chunk]
            for rules, rule in zip(under_test, built, strict=True):
                rules.append(rule)
        for case, rules in zip(chunk, under_test, strict=True):
            report.rules += 1
            try:
                for rule in rules:
                    if isinstance(rule, BaseException):
                        raise rule
                ref_rule = Rule(case.rule.program, "numpy")
                state = random_state(case.rule.program, case.graph, case.state_seed)
                found = check(rules, ref_rule, case.graph, state, seed=case.state_seed)
            except Exception as exc:
                report.crashes += 1
                report.failures.append(_crash(case, exc))
                continue
            if found:
                report.mismatches += 1
                report.failures.append(_record(case, found, out))
        report.seconds = time.perf_counter() - start
        if progress:
            progress(report, len(indices))
    report.seconds = time.perf_counter() - start
    return report


def _compile_one(case: Case, backend: str):
    """The case's rule on `backend`, or the exception that stopped it (reported
    as the case's crash)."""
    try:
        return case.rule.compile(backend)
    except Exception as exc:
        return exc


def _crash(case: Case, exc: BaseException) -> dict:
    return {"kind": "crash", "case": case.index, "rule": case.rule.text,
            "mismatch": f"the check raised {type(exc).__name__}: {exc}"}


def fuzz_parallel(count: int, seed: int, depth: int, out: Path | None, jobs: int,
                  progress=None, statements: int = 5, backends=BACKENDS,
                  chunk: int = 25) -> Report:
    """fuzz() in `jobs` processes. The cases are dealt out in chunks, a chunk
    to whichever worker is free, and are the same whatever `jobs` is. Each
    worker's batch build runs cores/jobs compiler processes (RULEC_BUILD_JOBS),
    so while one worker compiles, another checks rules on the other cores
    instead of every worker's compilers competing for them. A worker that
    dies is reported with the cases it held, and the others' results are
    kept. A chunk of cases is one batch build and one progress report."""
    chunks = [range(first, min(first + chunk, count)) for first in range(0, count, chunk)]
    jobs = min(jobs, len(chunks))  # a worker without a chunk would only cost its start
    if jobs <= 1:
        return fuzz(count, seed, depth, out, progress=progress, statements=statements,
                    backends=backends)
    from concurrent.futures import FIRST_COMPLETED, wait

    from .pool import abort, process_pool

    start = time.perf_counter()
    total = Report()
    pool = process_pool(jobs, _worker_setup, (worker_build_jobs(jobs),))
    try:
        running = {pool.submit(fuzz, len(cases), seed, depth, out, statements=statements,
                               indices=cases, backends=backends): cases for cases in chunks}
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: running[f].start):
                cases = running.pop(future)
                try:
                    part = future.result()
                except Exception as exc:  # also BrokenProcessPool: the worker died
                    part = Report(crashes=len(cases), failures=[{
                        "kind": "crash", "case": cases.start, "rule": "",
                        "mismatch": f"a fuzz worker failed ({type(exc).__name__}: {exc}) on "
                                    f"cases {cases.start}..{cases.stop - 1}; rerun with "
                                    f"--jobs 1 to see which rule"}])
                total.add(part)
            total.seconds = time.perf_counter() - start
            if progress:
                progress(total, count)
    except BaseException:  # Ctrl-C: the workers stop now
        abort(pool)
        raise
    pool.shutdown(wait=True)
    total.failures.sort(key=lambda failure: failure["case"])
    total.seconds = time.perf_counter() - start
    return total


def worker_build_jobs(jobs: int) -> str:
    """RULEC_BUILD_JOBS for each of `jobs` workers: the user's, else a share of
    the cores."""
    from .backends import toolchain

    return os.environ.get("RULEC_BUILD_JOBS") or str(max(1, toolchain.available_cores() // jobs))


def _worker_setup(build_jobs: str) -> None:
    os.environ["RULEC_BUILD_JOBS"] = build_jobs


def _record(case: Case, found: list[Mismatch], out: Path | None) -> dict:
    """Shrink a failing case and write the files that reproduce it."""
    from .api import Rule

    backend = found[0].backend  # shrink against the backend that failed

    def fails(candidate) -> bool:
        try:
            rule = candidate.compile(backend)
        except Exception:  # a candidate that cannot build is not the same failure
            return False
        state = random_state(candidate.program, case.graph, case.state_seed)
        return bool(check(rule, Rule(candidate.program, "numpy"), case.graph, state,
                          seed=case.state_seed))

    small = shrink(case.rule, fails)
    state = random_state(small.program, case.graph, case.state_seed)
    ref = Rule(small.program, "numpy")
    mismatches = check(small.compile(backend), ref, case.graph, state, seed=case.state_seed)
    record = {"kind": "mismatch", "case": case.index, "rule": small.text,
              "mismatch": str((mismatches or found)[0])}
    if out is not None:
        from .graphs import write_edge_list

        out.mkdir(parents=True, exist_ok=True)
        stem = out / f"mismatch-{case.index}"
        stem.with_suffix(".rule").write_text(small.text)
        write_edge_list(case.graph, stem.with_suffix(".edges"))
        state.save(stem.with_suffix(".npz"))
        block = (mismatches or found)[0].block
        record["replay"] = (f"rulec fuzz --replay {stem}.rule --graph file:{stem}.edges "
                            f"--state {stem}.npz --backend {backend}")
        record["block"] = block
    return record


def replay(rule_path: str, graph: Graph, state: State, backends=BACKENDS) -> list[Mismatch]:
    """The check of a written-out failure, again."""
    from .api import Rule
    from .frontend import load_program

    program = load_program(Path(rule_path).read_bytes(), rule_path)
    return check([Rule(program, b) for b in backends], Rule(program, "numpy"), graph, state)
