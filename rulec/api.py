"""The public API: compile a rule, make states, run blocks (rulec.Rule,
rulec.compile, ...). The C runtime the kernels include is another thing:
the headers in runtime/.

    rule = rulec.compile_file("examples/hebbian.rule")
    state = rule.state(rulec.Graph.from_edges(3, [(0, 2), (1, 2)]))
    rule.init(state, seed=0)
    rule.step(state, steps=100, params={"lr": 0.02})
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import ir
from .backends import DEFAULT_BACKEND, backend_class
from .dataflow import warn_lint
from .errors import RulecError, RulecKeyError, RulecTypeError, RulecValueError, did_you_mean
from .frontend import load, load_program
from .graph import Graph
from .rng import check_seed
from .state import State, StateError


class NonFiniteError(RulecError, FloatingPointError):
    """A step produced NaN or ±inf in the state (raised with check_finite=True)."""

    def __init__(self, step: int, time: int, kind: str, slot: str, element: int,
                 where: str, count: int) -> None:
        self.step, self.time, self.kind, self.slot = step, time, kind, slot
        self.element, self.count = element, count
        super().__init__(
            f"non-finite value after step {step} of this call (time {time}): "
            f"{kind} slot {slot!r} at {where}; {count} non-finite element"
            f"{'s' if count != 1 else ''} in that slot"
        )


log = logging.getLogger("rulec")


class Rule:
    """A compiled rule: its IR, its params' defaults, and a backend that runs it."""

    def __init__(self, program: ir.Program, backend: str = DEFAULT_BACKEND,
                 source: str | None = None, native=None) -> None:
        """Wrap a checked program and prepare it for `backend` (rulec.backends):
        'c' builds kernels (or finds them in the cache), 'vm' translates to
        bytecode, 'numpy' interprets. `native` passes a backend object already
        prepared (compile_many). `source` only feeds comments in generated C."""
        self.program = program
        if native is None:
            backend = _backend_for(program, backend)
        self.backend = backend
        start = time.perf_counter()
        self._runner = native if native is not None else \
            backend_class(backend)(program, source)
        if native is None:
            log.info("rule %s: %s backend ready in %.1f ms", program.name, backend,
                     (time.perf_counter() - start) * 1e3)

    @property
    def name(self) -> str:
        return self.program.name

    @property
    def runner(self):
        """The backend object that runs this rule's blocks (a
        rulec.backends.base.Backend; the protocol driver asks it for them)."""
        return self._runner

    def param_values(self, params: dict | None = None) -> dict[str, float]:
        """Every param's value as a step uses it: the defaults, overridden by
        `params` (checked: a known name, a number within float32's range)."""
        return self._params(params)

    @property
    def params(self) -> dict[str, float]:
        """The params and their default values."""
        return dict(self.program.params)

    @property
    def blocks(self) -> tuple[str, ...]:
        return self.program.block_labels

    def __repr__(self) -> str:
        return f"Rule({self.name!r}, blocks={list(self.blocks)}, backend={self.backend!r})"

    # ------------------------------------------------------------ states

    def state(self, graph: Graph, arrays: dict | None = None) -> State:
        """A fresh state on `graph`: every slot zero, time 0, seed 0. `arrays`
        (slot name -> float32 array) uses the caller's arrays as those slots,
        without copying: steps write into them (see docs/embedding.md)."""
        if not isinstance(graph, Graph):
            raise RulecTypeError(f"rule.state() takes a rulec.Graph, got {type(graph).__name__}")
        p = self.program
        return State(graph, p.node_slots, p.edge_slots, p.shared_slots, arrays)

    def _check_state(self, state: State) -> None:
        if not isinstance(state, State):
            raise RulecTypeError(f"expected a rulec.State, got {type(state).__name__}")
        p = self.program
        want = (p.node_slots, p.edge_slots, p.shared_slots)
        if tuple(map(set, state.layout)) != tuple(map(set, want)):
            raise StateError(
                f"the state's slots {state.layout} do not match rule {self.name!r}'s {want}"
            )
        devices = self._runner.devices
        if state.device not in devices:
            raise StateError(
                f"the state is on {state.device} but rule {self.name!r} runs on the "
                f"{self.backend} backend, which runs states on {' and '.join(devices)}: move "
                f"the state with state.to({devices[0]!r}), or compile the rule for a "
                f"{state.device} backend" + (" (backend='cuda')" if state.device == "cuda"
                                              else ""))

    def _params(self, params: dict | None) -> dict[str, float]:
        values = self.params
        for name, value in (params or {}).items():
            if name not in values:
                hint = did_you_mean(name, set(values))
                known = ", ".join(values) or "none"
                raise RulecKeyError(f"rule {self.name!r} has no param {name!r}"
                                    f" ({hint or 'params: ' + known})")
            values[name] = _param_value(name, value)
        return values

    # ------------------------------------------------------------ running

    def init(self, state: State, seed: int = 0, params: dict | None = None,
             threads: int = 1) -> None:
        """Run the `init` block (if the rule has one) with `seed`, kept with the state.
        Time does not advance."""
        self._check_state(state)
        threads = _threads(threads)
        state.seed = check_seed(seed)
        if self.program.block("init") is None:
            return
        self._runner.run("init", state, self._params(params), 1, threads)

    def step(self, state: State, steps: int = 1, block: str = "update",
             params: dict | None = None, check_finite: bool = False,
             threads: int = 1) -> None:
        """Run `block` `steps` times; each step adds one to state.time.

        With check_finite=True, stop at the first step that leaves NaN or ±inf
        in the state and raise NonFiniteError naming the step, slot and element.
        With the C backend the whole loop is one call; `threads` > 1 splits each
        step's nodes over OpenMP threads (results are identical to one thread).
        """
        self._check_state(state)
        self._check_update_block(block)
        steps = _count("steps", steps)
        values = self._params(params)
        threads = _threads(threads)
        done = self._runner.run(block, state, values, steps, threads, check_finite)
        if check_finite and self._runner.left_non_finite(state):
            _raise_if_non_finite(state, done)

    def init_many(self, states, seeds, params=None) -> None:
        """init() each state with its seed (seeds: one per state) and params
        (None, one dict for all, or one dict per state). On a backend that
        batches states (cuda, cuda-cpu) all of them go in the same launches."""
        states = self._batch(states)
        seeds = [check_seed(seed) for seed in seeds]
        if len(seeds) != len(states):
            raise RulecValueError(f"init_many() got {len(states)} states and {len(seeds)} "
                                  f"seeds; give one seed per state")
        values = self._batch_params(params, len(states))
        for state, seed in zip(states, seeds, strict=True):
            state.seed = seed
        if self.program.block("init") is not None and states:
            self._runner.run_many("init", states, values, 1)

    def step_many(self, states, steps: int = 1, block: str = "update", params=None,
                  check_finite: bool = False) -> list[int]:
        """step() each of `states` (on one graph; params: None, one dict for
        all, or one dict per state); returns the steps each ran. On a backend
        that batches states (cuda, cuda-cpu) they run side by side in the
        same launches: how one rule is screened on many seeds at once.

        With check_finite, a state that a step leaves non-finite stops there
        (its entry is that step's number) and the others go on; nothing is
        raised. Other backends step the states one after another."""
        states = self._batch(states)
        self._check_update_block(block)
        steps = _count("steps", steps)
        values = self._batch_params(params, len(states))
        return [int(done) for done in self._runner.run_many(block, states, values, steps,
                                                            check_finite)]

    def _batch(self, states) -> list[State]:
        states = list(states)
        for state in states:
            self._check_state(state)
        return states

    def _batch_params(self, params, count: int) -> list[dict[str, float]]:
        if params is None or isinstance(params, dict):
            return [self._params(params)] * count
        params = list(params)
        if len(params) != count:
            raise RulecValueError(f"got {count} states and {len(params)} params; give one "
                                  f"dict for all of them or one per state")
        return [self._params(given) for given in params]

    def record(self, state: State, steps: int, slots, every: int = 1,
               block: str = "update", params: dict | None = None,
               check_finite: bool = False, threads: int = 1) -> Recording:
        """Step like step(), keeping a copy of each slot in `slots` (names)
        before the first step and after every `every` steps (and after the
        last): a Recording of arrays shaped (samples, slot length), like
        Brian2's StateMonitor. Each chunk of `every` steps is one step()
        call, so recording costs a copy per sample, not a call per step."""
        names = [slots] if isinstance(slots, str) else list(slots)
        arrays = {name: array for _, name, array in state.slots()}
        unknown = [name for name in names if name not in arrays]
        if unknown or not names:
            raise RulecKeyError(f"rule {self.name!r} has no slot {unknown[0]!r} to record "
                                f"(slots: {', '.join(arrays)})" if unknown else
                                "record() needs at least one slot name")
        steps, every = _count("steps", steps), _count("every", every)
        times, samples = [state.time], {name: [arrays[name].copy()] for name in names}
        done = 0
        while done < steps:
            chunk = min(every, steps - done)
            self.step(state, chunk, block, params, check_finite, threads)
            done += chunk
            times.append(state.time)
            for name in names:
                samples[name].append(arrays[name].copy())
        return Recording(np.array(times, dtype=np.int64),
                         {name: np.stack(values) for name, values in samples.items()})

    def _check_update_block(self, block: str) -> None:
        if block == "init" or self.program.block(block) is None:
            runnable = [b for b in self.blocks if b != "init"]
            hint = did_you_mean(block, set(runnable))
            raise RulecKeyError(f"rule {self.name!r} has no update block {block!r}"
                                f" ({hint or 'blocks: ' + ', '.join(runnable)})")

    def step_until(self, state: State, slot: str, nodes, budget: int, block: str = "update",
                   params: dict | None = None, check_finite: bool = False) -> tuple[int, bool]:
        """Step `block` until node slot `slot` is > 0 at every one of `nodes`,
        at most `budget` steps (the condition is tested before each step).
        Returns (steps run, whether the condition holds). The VM does the
        whole loop in C; other backends step once per call. With check_finite,
        raises NonFiniteError at the first non-finite step."""
        self._check_state(state)
        if slot not in self.program.node_slots:
            raise RulecKeyError(f"rule {self.name!r} has no node slot {slot!r}")
        nodes = np.asarray(nodes, dtype=np.int64)
        self._check_update_block(block)
        budget = _count("budget", budget)
        done, why = self._runner.run_until(block, state, self._params(params), budget, slot,
                                           nodes, check_finite)
        if why == "non-finite":
            _raise_if_non_finite(state, done)
        return done, why == "reached"


@dataclass(frozen=True)
class Recording:
    """What Rule.record kept: `times` (state.time of each sample) and, per
    slot, an array of shape (samples, nodes) for a node slot, (samples,
    half-edges) for an edge slot, (samples, edges) for a shared one."""

    times: np.ndarray
    values: dict[str, np.ndarray]

    def __getitem__(self, slot: str) -> np.ndarray:
        return self.values[slot]

    def save(self, path) -> None:
        """An .npz file: `times` and one array per slot (written atomically)."""
        from .atomic import write_atomic

        write_atomic(path, lambda out: np.savez(out, times=self.times, **self.values))


FLOAT32_MAX = float(np.finfo(np.float32).max)
MAX_THREADS = 4096


def _param_value(name: str, value) -> float:
    """A param's value as float32: a real number within float32's range (NaN and
    ±inf are allowed only when asked for by name: float('nan'), float('inf'))."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise RulecValueError(f"param {name!r} must be a number, got {value!r}")
    value = float(value)
    if np.isfinite(value) and abs(value) > FLOAT32_MAX:
        raise RulecValueError(f"param {name!r} = {value!r} is outside float32's range "
                              f"(±{FLOAT32_MAX:.4g}); params are float32")
    return float(np.float32(value))


def _count(what: str, value) -> int:
    """A number of steps: a whole number in 0..2**63-1."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) \
            or not 0 <= value < 2**63:
        raise RulecValueError(f"{what} must be an integer in 0..2**63-1, got {value!r}")
    return int(value)


def _threads(threads: int) -> int:
    if isinstance(threads, bool) or not isinstance(threads, int | np.integer) \
            or not 1 <= threads <= MAX_THREADS:
        raise RulecValueError(f"threads must be an integer in 1..{MAX_THREADS}, got {threads!r}")
    return int(threads)


def _raise_if_non_finite(state: State, step: int) -> None:
    error = non_finite_error(state, step)
    if error is not None:
        raise error


def non_finite_error(state: State, step: int) -> NonFiniteError | None:
    """The NonFiniteError that names the first non-finite element of `state`
    (after `step` steps of a call), or None if every slot is finite."""
    for kind, name, array in state.slots():
        bad = ~np.isfinite(array)
        if bad.any():
            element = int(np.argmax(bad))
            graph = state.graph
            if kind == "node":
                where = f"node {element}"
            elif kind == "edge":
                where = (f"half-edge {element} ({graph.owner[element]}->"
                         f"{graph.nbr[element]})")
            else:
                u, v = graph.edges[element]
                where = f"edge {element} ({u}, {v})"
            return NonFiniteError(step, state.time, kind, name, element, where, int(bad.sum()))
    return None


def compile(text: str, name: str | None = None, backend: str = DEFAULT_BACKEND,  # noqa: A001
            filename: str = "<string>") -> Rule:
    """Compile rule source text. Raises RuleErrors (every error, positioned) if it is
    invalid, and rulec.BuildError if the C backend cannot build."""
    source, tree, program = load(text, filename, name)
    warn_lint(tree, filename, source, stacklevel=2)
    return Rule(program, backend, text if isinstance(text, str) else None)


def compile_file(path: str | os.PathLike, backend: str = DEFAULT_BACKEND) -> Rule:
    """Compile a .rule file; the rule is named by its `rule` line or the file's stem."""
    path = Path(path)
    source, tree, program = load(path.read_bytes(), str(path))
    warn_lint(tree, str(path), source, stacklevel=2)
    return Rule(program, backend, source)


def compile_many(rules, backend: str = DEFAULT_BACKEND) -> list[Rule]:
    """Compile many rules at once: with the C backend, one compiler call builds
    one shared object for all of them (much cheaper per rule, for search and
    fuzzing). `rules` holds source texts, paths (pathlib.Path) or checked
    ir.Programs. Raises RuleErrors for the first invalid rule."""
    programs, sources = [], []
    for index, item in enumerate(rules):
        if isinstance(item, ir.Program):
            programs.append(item)
            sources.append(None)
        elif isinstance(item, os.PathLike):
            data = Path(item).read_bytes()
            programs.append(load_program(data, str(item)))
            sources.append(data.decode("utf-8", "replace"))
        elif isinstance(item, str | bytes):
            programs.append(load_program(item, f"<rule {index}>", f"rule{index}"))
            sources.append(item if isinstance(item, str) else None)
        else:
            raise RulecTypeError("compile_many takes source texts, paths or ir.Programs, "
                                 f"got {type(item).__name__}")
    kind = backend_class(backend)
    chosen = [_backend_for(p, backend) for p in programs]
    batch = [i for i, name in enumerate(chosen) if name == backend]
    runners = dict(zip(batch, kind.many([programs[i] for i in batch],
                                        [sources[i] for i in batch]), strict=True))
    return [Rule(p, name, native=runners[i]) if i in runners else Rule(p, name, s)
            for i, (p, s, name) in enumerate(zip(programs, sources, chosen, strict=True))]


def _backend_for(program: ir.Program, backend: str) -> str:
    """The backend that runs `program`: `backend`, except that a rule past the
    C backend's compile bound (build.max_c_size: gcc's time grows faster than
    the rule) runs on the VM, with a warning that says so."""
    if backend != "c":
        return backend
    from .backends.c.module import max_c_size

    size, limit = ir.size(program), max_c_size()
    if size <= limit:
        return backend
    warnings.warn(f"rule {program.name!r} has size {size:,} (statements and expression "
                  f"nodes), past what the C backend compiles in bounded time ({limit:,}): "
                  "it runs on the VM, which needs no compile per rule. Set "
                  "RULEC_C_MAX_SIZE to compile it anyway (minutes of gcc time)",
                  RuntimeWarning, stacklevel=4)
    return "vm"
