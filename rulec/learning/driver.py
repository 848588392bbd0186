"""The protocol driver: the epochs of an evaluation in C.

`rulec.learning.evaluate` is the definition (it interprets a protocol's
schedule in Python, one foreign call per phase); for a backend that
`drives_protocol` (the VM and the C kernels) it hands the epochs to
`run_epochs`, which runs the same schedule in C (runtime/rulec_driver.c,
`rulec_evaluate`): all epochs, the shuffled orders (training and scoring,
drawn in Python as numpy draws them, passed as data), early exit on a
non-finite state, an exhausted budget or a reached goal, in one call per
chunk of epochs. The backend hands over its blocks through
`Backend.driver_blocks`; the phase and failure codes are rulec_driver.h's,
read from the library.
"""

from __future__ import annotations

import functools
import math
import threading
import time

import numpy as np

from ..api import NonFiniteError, Rule, non_finite_error
from ..backends.views import ParamArray, graph_view, state_view, taken_for_graph
from ..errors import RulecValueError
from .native import library
from .results import Result, confirm_orders, orders, score_orders

__all__ = ["Lanes", "StateLanes", "fresh_state", "lanes_for", "library", "run_epochs"]

EPOCH_SECONDS = 0.1  # a chunk of epochs per call grows until a call takes this long
CHUNK_GROWTH = 64  # the most a chunk grows by from one call to the next
LANE_CHUNK = 64  # the epochs of the lanes' first call (then as next_chunk says)


def next_chunk(chunk: int, seconds: float) -> int:
    """The epochs of the next call after a call of `chunk` epochs took
    `seconds`: as many as fill half of EPOCH_SECONDS at that pace, at least
    twice `chunk` and at most CHUNK_GROWTH times it; `chunk` again once a
    call takes EPOCH_SECONDS. A fast rule's evaluation then takes two or
    three calls, not one per doubling, and a slow one still returns to
    Python (Ctrl-C) after about EPOCH_SECONDS."""
    if seconds >= EPOCH_SECONDS:
        return chunk
    fill = int(chunk * EPOCH_SECONDS / 2 / seconds) if seconds > 0 else chunk * CHUNK_GROWTH
    return min(chunk * CHUNK_GROWTH, max(2 * chunk, fill))


def fresh_state(rule: Rule, topology, protocol, seed: int,
                params: dict | None = None, into=None):
    """A state of `rule` on the topology's graph as an evaluation starts it:
    the protocol's input flag raised on the input nodes and its output flag
    on the output nodes, then `init` run with `seed`. With `into` (a state
    of the rule on that graph), that state is reset to it in place: what a
    backend made for it (the VM's registers) is kept."""
    if into is None:
        state = rule.state(topology.graph)
    else:
        state = into
        for _, _, array in state.slots():
            array[...] = 0.0
        state.time = 0
    raise_flags(state.node, topology, protocol)
    rule.init(state, seed=seed, params=params)
    return state


def raise_flags(node, topology, protocol) -> None:
    """The protocol's input flag raised on the topology's input nodes and its
    output flag on the output nodes, in `node` (node slot name -> array
    indexed by node first: a State's, or every lane's)."""
    if protocol.input_flag:
        node[protocol.input_flag][topology.inputs] = 1.0
    if getattr(protocol, "output_flag", None):
        node[protocol.output_flag][topology.outputs] = 1.0


def _codes(lib) -> dict[str, dict]:
    """The phase codes of rulec_driver.h, by the names protocols use."""
    return {
        "op": {"write": lib.RULEC_PHASE_WRITE, "run": lib.RULEC_PHASE_RUN,
               "read": lib.RULEC_PHASE_READ},
        "when": {"always": lib.RULEC_WHEN_ALWAYS, "train": lib.RULEC_WHEN_TRAIN,
                 "test": lib.RULEC_WHEN_TEST},
        "nodes": {"inputs": lib.RULEC_NODES_INPUTS, "outputs": lib.RULEC_NODES_OUTPUTS,
                  "all": lib.RULEC_NODES_ALL},
        "source": {"input": lib.RULEC_SOURCE_INPUT, "target": lib.RULEC_SOURCE_TARGET,
                   "error": lib.RULEC_SOURCE_ERROR},
    }


def _phases(ffi, lib, rule: Rule, phases: list, labels: list[str]):
    """The protocol's phases as a C array for `rule`: made once per rule,
    phases and driver library (read-only to C; an evaluation made them per
    call)."""
    cache = rule.__dict__.setdefault("_rulec_phase_arrays", {})
    key = (id(lib), tuple(phases), tuple(labels))
    try:
        found = cache.get(key)
    except TypeError:  # unhashable phases of a user's own protocol
        return _phase_array(ffi, lib, rule, phases, labels)
    if found is None:
        if len(cache) >= 8:
            cache.clear()
        found = cache[key] = _phase_array(ffi, lib, rule, phases, labels)
    return found


def _phase_array(ffi, lib, rule: Rule, phases: list, labels: list[str]):
    codes = _codes(lib)
    slots = rule.program.node_slots
    array = ffi.new("rulec_phase[]", max(len(phases), 1))
    for i, phase in enumerate(phases):
        row = array[i]
        row.op = codes["op"][phase.op]
        row.when = codes["when"][phase.when]
        slot = phase.until if phase.op == "run" else phase.slot
        row.slot = slots.index(slot) if slot is not None else -1
        row.nodes = codes["nodes"][phase.nodes]
        row.source = codes["source"].get(phase.value, lib.RULEC_SOURCE_VALUE) \
            if isinstance(phase.value, str) else lib.RULEC_SOURCE_VALUE
        row.value = 0.0 if isinstance(phase.value, str) else float(phase.value)
        row.block = labels.index(phase.block) if phase.block in labels else -1
        if phase.op == "run" and row.block < 0 and not phase.optional:
            raise RulecValueError(f"rule {rule.name!r} has no block {phase.block!r}, which "
                                  "the protocol runs")
        row.steps = phase.steps
        row.settle = phase.settle
        row.watch = slots.index(phase.slot) if phase.settle else -1
    return array


@functools.lru_cache(maxsize=64)
def _schedule(protocol, budget: int) -> tuple:
    return tuple(protocol.schedule(budget))


def schedule_of(protocol, budget: int) -> list:
    """protocol.schedule(budget), made once per protocol and budget (protocols
    and their phases are frozen; a search asks for it twice per rule)."""
    try:
        return list(_schedule(protocol, budget))
    except TypeError:  # an unhashable protocol of a user's own
        return protocol.schedule(budget)


def _pointer(ffi, ctype: str, array: np.ndarray):
    """`array`'s data as a C `ctype` (a pointer type, "float *"): an array
    cdata over its buffer, which C takes where it takes the pointer (and
    which holds the array). A quarter of the time of a cast of
    array.ctypes.data, which builds a ctypes helper on every call (a
    search makes a dozen per rule it screens)."""
    return ffi.from_buffer(ctype[:-1].rstrip() + "[]", array)


def _kept_pointer(ffi, keep: list, ctype: str, array: np.ndarray):
    """A C pointer of type `ctype` to `array`'s data, the array kept alive in
    `keep` for as long as C may read it."""
    keep.append(array)
    return _pointer(ffi, ctype, array)


def _evaluation(ffi, lib, rule: Rule, task, topology, protocol, phases, labels, keep: list):
    """A rulec_evaluation with the task, topology, protocol's phases and the
    rule's slot counts filled in (`keep` holds the arrays it points into)."""
    def pointer(ctype: str, array: np.ndarray):
        return _kept_pointer(ffi, keep, ctype, array)

    e = ffi.new("rulec_evaluation *")
    e.n_patterns, e.n_in, e.n_out = len(task.inputs), task.n_inputs, task.n_outputs
    e.inputs = pointer("float *", np.ascontiguousarray(task.inputs, dtype=np.float32))
    e.targets = pointer("float *", np.ascontiguousarray(task.targets, dtype=np.float32))
    e.input_nodes = pointer("int32_t *", np.ascontiguousarray(topology.inputs, dtype=np.int32))
    e.output_nodes = pointer("int32_t *",
                             np.ascontiguousarray(topology.outputs, dtype=np.int32))
    e.n_input_nodes = len(topology.inputs)
    e.threshold = protocol.threshold
    phase_array = _phases(ffi, lib, rule, phases, labels)
    keep.append(phase_array)
    e.phases, e.n_phases = phase_array, len(phases)
    p = rule.program
    e.n_node_slots, e.n_edge_slots = len(p.node_slots), len(p.edge_slots)
    e.n_shared_slots = len(p.shared_slots)
    return e


def _kernels(ffi, e, blocks, keep: list) -> None:
    """The C kernels of `blocks` (DriverBlocks) into the evaluation `e`,
    with the slots each block writes (`keep` holds what C reads)."""
    keep.append(kernels := ffi.new("rulec_kernel[]", blocks.kernels))
    e.vm, e.kernels = ffi.NULL, kernels
    if blocks.kernel_writes is not None:
        keep.append(writes := ffi.from_buffer("uint8_t[]", blocks.kernel_writes))
        e.kernel_writes = writes


def run_epochs(rule: Rule, state, task, topology, protocol, epochs: int, seed: int,
               budget: int, params: dict | None, stop_at: float | None,
               on_epoch=None, hold: int = 1, first_epoch: int = 0) -> Result:
    """The epochs of rulec.learning.evaluate, run in C on `state` (made,
    flagged and initialized by evaluate, which also checked the protocol and
    topology): epochs first_epoch .. first_epoch+epochs-1 of the seed's orders."""
    runner = rule.runner
    if not runner.drives_protocol:
        raise RulecValueError(f"the C driver cannot run the {rule.backend!r} backend's "
                              "blocks; use engine='python'")
    ffi, lib = library()
    result = Result()
    values = rule.param_values(params)
    labels = list(rule.program.block_labels)
    phases = schedule_of(protocol, budget)
    keep = []  # arrays the C structs point into

    def pointer(ctype: str, array: np.ndarray):
        return _kept_pointer(ffi, keep, ctype, array)

    e = _evaluation(ffi, lib, rule, task, topology, protocol, phases, labels, keep)
    P, n_out = len(task.inputs), task.n_outputs
    e.stop_at = 2.0 if stop_at is None else stop_at
    e.hold, e.streak = hold, 0
    p = rule.program
    blocks = runner.driver_blocks(state, labels)
    keep.append(blocks)
    if blocks.vm is not None:
        vm = ffi.new("rulec_vm_block *[]", blocks.vm)
        e.vm, e.vm_run = vm, ffi.cast("rulec_vm_run_fn", blocks.vm_run)
        e.kernels = ffi.NULL
    else:
        _kernels(ffi, e, blocks, keep)
    view = state_view(state, p)
    struct = view.struct
    struct.time, struct.seed = state.time, state.seed
    graph = graph_view(state.graph, blocks.graph_needs).struct
    param_array = ParamArray(ffi, p)(values)
    accuracy = np.zeros(max(epochs, 1), dtype=np.float64)
    loss = np.zeros(max(epochs, 1), dtype=np.float64)
    # the last complete epoch's outputs, then the C driver's working rows
    buffer = np.zeros((2, P, n_out), dtype=np.float32)
    outputs = buffer[0]
    e.outputs = pointer("float *", buffer)
    steps, epoch, chunk = 0, 0, 1
    try:
        while epoch < epochs:
            n = min(chunk, epochs - epoch)
            e.epochs = n
            # this chunk's orders only (held here while C reads them): a long
            # run's memory does not grow with its epochs
            at = first_epoch + epoch
            order = np.ascontiguousarray(orders(task, at + n, seed, at))
            score_order = np.ascontiguousarray(score_orders(task, at + n, seed, at))
            e.orders = _pointer(ffi, "int32_t *", order)
            e.score_orders = _pointer(ffi, "int32_t *", score_order)
            e.accuracy = _pointer(ffi, "double *", accuracy[epoch:])
            e.loss = _pointer(ffi, "double *", loss[epoch:])
            e.epochs_done, e.steps = 0, 0
            began = time.perf_counter()
            failure = lib.rulec_evaluate(graph, struct, param_array, e)
            steps += e.steps
            done = e.epochs_done
            if on_epoch:
                for i in range(done):
                    result.accuracy.append(float(accuracy[epoch + i]))
                    result.loss.append(float(loss[epoch + i]))
                    result.outputs = outputs.copy()
                    on_epoch(first_epoch + epoch + i, result)
            elif done:  # every epoch of a chunk leaves the same outputs: the chunk's last
                result.accuracy += accuracy[epoch:epoch + done].tolist()
                result.loss += loss[epoch:epoch + done].tolist()
                result.outputs = outputs.copy()
            epoch += done
            if failure:
                result.failure = _failure(lib, failure, e, phases, state, struct)
                break
            if e.streak >= e.hold:  # held stop_at for `hold` epochs (maybe at a chunk's end)
                break
            chunk = next_chunk(chunk, time.perf_counter() - began)
    finally:
        state.time = int(struct.time)
    result.steps = steps
    return result


def _failure(lib, code: int, e, phases, state, struct) -> str:
    def failed_state():
        state.time = int(struct.time)
        return state

    return failure_message(lib, code, phases[e.failed_phase], int(e.phase_steps),
                           failed_state)


def failure_message(lib, code: int, phase, steps: int, failed_state) -> str:
    """Why an evaluation stopped, from the driver's failure code: its
    outputs, `phase` (a Phase) waiting in vain, or the state failed_state()
    returns being non-finite after `steps` steps of that phase."""
    if code == lib.RULEC_FAILED_OUTPUTS:
        return "outputs are not finite"
    if code == lib.RULEC_FAILED_BUDGET:
        return f"budget of {phase.steps} steps exhausted waiting for {phase.waits_for()}"
    error = non_finite_error(failed_state(), steps)
    return f"non-finite state: {error}" if isinstance(error, NonFiniteError) \
        else "non-finite state"


class Lanes:
    """Evaluations of one rule on up to `runner.lanes` seeds side by side:
    the C driver's rulec_evaluate_lanes on the VM's lane registers (one
    instruction serves every seed). Each lane is one seed's evaluation,
    exactly as run_epochs gives it on that seed's own state.

        lanes = Lanes(rule, task, topology, protocol, budget, params, seeds)
        try:
            lanes.start()                       # fresh_state on every lane
            raw = lanes.epochs([100] * n, [0] * n, stop_at=1.0, hold=1)
        finally:
            lanes.release()
    """

    STATES = False  # the backend's lanes: lane registers (its lane_states)

    def __init__(self, rule: Rule, task, topology, protocol, budget: int,
                 params: dict | None, seeds, rng_seeds=None) -> None:
        labels = self._fields(rule, task, topology, protocol, budget, params, seeds,
                              rng_seeds, "side by side")
        ffi = self.ffi
        self.registers, run, needs = rule.runner.lane_blocks(topology.graph, self.n)
        self._init = None  # start()'s arguments to the init block's run
        try:
            self.run = ffi.cast("rulec_vm_run_lanes_fn", run)
            self.keep.append(vm := ffi.new("rulec_vm_block *[]",
                                           [self.registers.blocks[label] for label in labels]))
            self.e.vm, self.e.kernels = vm, ffi.NULL
            self.graph = graph_view(topology.graph, needs).struct
        except BaseException:
            self.release()
            raise

    def _fields(self, rule: Rule, task, topology, protocol, budget: int, params: dict | None,
                seeds, rng_seeds, how: str) -> list[str]:
        """What every kind of lanes holds (the evaluation, params, each lane's
        seed and time); returns the rule's block labels."""
        runner = rule.runner
        if not runner.lanes or runner.lane_states != self.STATES \
                or not 1 <= len(seeds) <= runner.lanes:
            raise RulecValueError(f"the {rule.backend!r} backend runs 1 to {runner.lanes} "
                                  f"seeds {how}, not {len(seeds)}")
        ffi, lib = self.ffi, self.lib = library()
        self.rule, self.task, self.topology, self.protocol = rule, task, topology, protocol
        self.params = params
        self.n = n = len(seeds)
        self.seed_list = [int(s) for s in seeds]
        self.keep = []
        self._structs: dict[int, tuple] = {}
        p = rule.program
        labels = list(p.block_labels)
        self.phases = schedule_of(protocol, budget)
        self.e = _evaluation(ffi, lib, rule, task, topology, protocol, self.phases, labels,
                             self.keep)
        self.param_array = ParamArray(ffi, p)(rule.param_values(params))
        # each lane's state's seed (its random draws); `seeds` pick the orders
        self.seeds = np.array(self.seed_list if rng_seeds is None else
                              [int(seed) for seed in rng_seeds], dtype=np.uint64)
        self.times = np.zeros(n, dtype=np.uint64)
        return labels

    def release(self) -> None:
        """Give the lane registers back (for the next evaluation to reuse)."""
        registers, self.registers = getattr(self, "registers", None), None
        if registers is not None:
            registers.lock.release()

    def start(self, states=None) -> None:
        """Every lane as fresh_state leaves a state: slots zero,
        the protocol's flags raised, `init` run with the lane's seed; or,
        where states[s] is a State, lane s a copy of it (its time too)."""
        registers, topology, protocol = self.registers, self.topology, self.protocol
        registers.clear()
        self.times[...] = 0
        raise_flags({name: lanes for kind, name, lanes in registers.slots if kind == "node"},
                    topology, protocol)
        if "init" in registers.blocks:
            init = self._init
            if init is None:  # its arguments, made once
                n = self.n
                arrays = (np.ones(n, dtype=np.uint8), np.zeros(n, dtype=np.int64),
                          np.zeros(n, dtype=np.int32))
                init = self._init = (arrays, self._cast("uint64_t *", self.seeds),
                                     self._cast("uint64_t *", self.times),
                                     *(self._cast(t, a) for t, a in
                                       zip(("uint8_t *", "int64_t *", "int32_t *"), arrays,
                                           strict=True)))
            _, seeds, times, active, done, status = init
            self.run(self.graph, self.n, seeds, times, self.param_array,
                     registers.blocks["init"], 1, -1, self.ffi.NULL, 0, active, done, status)
        for lane, state in enumerate(states or ()):
            if state is not None:
                registers.load(lane, state)
                self.times[lane] = state.time

    def _cast(self, ctype: str, array: np.ndarray):
        return _pointer(self.ffi, ctype, array)

    def epochs(self, counts, firsts, stop_at: float | None, hold: int,
               confirm: bool = False) -> list[Result]:
        """Lane s runs counts[s] epochs (0: it waits) from epoch firsts[s] of
        its seed's orders, as run_epochs(first_epoch=firsts[s]) does; with
        `confirm`, scoring passes only, in the orders evaluation's confirm
        passes use. Returns one Result per lane (accuracy, loss, outputs,
        steps, failure).

        The epochs go to C in chunks: LANE_CHUNK epochs first, then more
        while a call takes under EPOCH_SECONDS (next_chunk). So memory is the
        chunk's orders and results, not every epoch's for every lane (a
        million epochs on 50 lanes asked for 2.4 GB at once), and Python gets
        control back (Ctrl-C) between calls. A lane's streak at stop_at goes
        on from one call to the next, so the chunks give what one call would."""
        n = self.n
        results = [Result() for _ in range(n)]
        remaining = [int(count) for count in counts]
        at = [int(first) for first in firsts]  # each lane's next epoch
        streak = np.zeros(n, dtype=np.int32)
        chunk = LANE_CHUNK
        while True:
            now = [min(left, chunk) for left in remaining]
            if not any(now):
                return results
            began = time.perf_counter()
            out = self._chunk(now, at, stop_at, hold, confirm, streak)
            done, failure = out["epochs_done"].tolist(), out["failure"].tolist()
            steps = out["steps"].tolist()
            for s in range(n):
                if not now[s]:
                    continue
                result, k = results[s], done[s]
                if k:
                    result.accuracy += out["accuracy"][s, :k].tolist()
                    result.loss += out["loss"][s, :k].tolist()
                    result.outputs = out["outputs"][s, 0].copy()
                result.steps += steps[s]
                at[s] += k
                remaining[s] -= k
                if failure[s]:
                    result.failure = self._failure(s, failure[s], int(out["failed_phase"][s]),
                                                   int(out["phase_steps"][s]))
                if failure[s] or out["streak"][s] >= hold:
                    remaining[s] = 0  # it stopped: failed, or held its goal
            streak[...] = out["streak"]
            chunk = next_chunk(chunk, time.perf_counter() - began)

    def _chunk(self, counts, firsts, stop_at: float | None, hold: int, confirm: bool,
               streak: np.ndarray) -> dict:
        """One rulec_evaluate_lanes call: lane s runs counts[s] epochs from
        its epoch firsts[s], its streak so far `streak[s]`; the arrays C
        wrote, by field."""
        lib, e, n, task = self.lib, self.e, self.n, self.task
        patterns = len(task.inputs)
        most = max(max(counts), 1)
        order = np.zeros((n, most, patterns), dtype=np.int32)
        score_order = np.zeros((n, most, patterns), dtype=np.int32)
        for s, (seed, count, first) in enumerate(zip(self.seed_list, counts, firsts,
                                                     strict=True)):
            if not count:
                continue
            if confirm:
                score_order[s, :count] = confirm_orders(task, first + count, seed, first)
            else:
                order[s, :count] = orders(task, first + count, seed, first)
                score_order[s, :count] = score_orders(task, first + count, seed, first)
        lanes, out = self._struct(counts, order, score_order, most, train=not confirm)
        out["streak"][...] = streak
        e.epochs = most
        e.stop_at = 2.0 if stop_at is None else stop_at
        e.hold = hold
        if lib.rulec_evaluate_lanes(self.graph, self.param_array, e, lanes) != 0:
            raise RulecValueError(f"the C driver refused {n} lanes")
        return out

    #: the arrays C writes a call's results into (zeroed before each call)
    _RESULTS = (("accuracy", "double *"), ("loss", "double *"), ("outputs", "float *"),
                ("epochs_done", "int32_t *"), ("failure", "int32_t *"),
                ("failed_phase", "int32_t *"), ("streak", "int32_t *"),
                ("steps", "int64_t *"), ("phase_steps", "int64_t *"))

    def _struct(self, counts, order, score_order, most: int, train: bool):
        """A rulec_lanes for a call, and the arrays it points into by field
        (keep them while it runs). The struct and its result arrays are made
        once per `most` (epochs) and reused, zeroed, by later calls: a
        search's run hurdle makes several calls on one Lanes. The results
        share one buffer (one fill zeroes them all)."""
        ffi, n, task = self.ffi, self.n, self.task
        cached = self._structs.get(most)
        if cached is None:
            if len(self._structs) >= 4:
                self._structs.clear()
            patterns, n_out = len(task.inputs), task.n_outputs
            lanes = ffi.new("rulec_lanes *")
            # widest first, so every view of the one buffer is aligned
            shapes = [("accuracy", np.float64, (n, most)), ("loss", np.float64, (n, most)),
                      ("steps", np.int64, (n,)), ("phase_steps", np.int64, (n,)),
                      ("outputs", np.float32, (n, 2, patterns, n_out)),
                      *((f, np.int32, (n,)) for f in ("epochs_done", "failure", "failed_phase",
                                                      "streak"))]
            sizes = [math.prod(shape) * np.dtype(dtype).itemsize for _, dtype, shape in shapes]
            buffer = np.zeros(sum(sizes), dtype=np.uint8)
            results, at = {}, 0
            for (field, dtype, shape), size in zip(shapes, sizes, strict=True):
                results[field] = buffer[at:at + size].view(dtype).reshape(shape)
                at += size
            lanes.n_lanes = n
            self._lane_fields(lanes)
            lanes.seeds = _pointer(ffi, "uint64_t *", self.seeds)
            lanes.times = _pointer(ffi, "uint64_t *", self.times)
            for field, ctype in self._RESULTS:
                setattr(lanes, field, _pointer(ffi, ctype, results[field]))
            cached = self._structs[most] = (lanes, results, buffer)
        lanes, results, buffer = cached
        buffer.fill(0)
        out = {"seeds": self.seeds, "times": self.times, **results}
        lanes.train = 1 if train else 0
        for field, values in (("epochs", counts), ("orders", order),
                              ("score_orders", score_order)):
            values = np.ascontiguousarray(values, dtype=np.int32)  # no copy if it is one
            setattr(lanes, field, _pointer(ffi, "int32_t *", values))
            out[field] = values
        return lanes, out

    def _lane_fields(self, lanes) -> None:
        """What rulec_lanes needs to run the lanes: the VM's run_lanes and
        the node slots' lane registers."""
        lanes.run, lanes.node = self.run, self.registers.node

    def examples(self, patterns: np.ndarray, train: bool) -> list[tuple[str | None, np.ndarray]]:
        """Lane s runs the examples patterns[s] (one row per lane), training
        ones or scoring ones, with no epochs and no scoring, as
        evaluation.Episode.example does one after another on that lane's
        state. Per lane: (why it failed or None, its working rows: each
        pattern's outputs from its last example of that pattern)."""
        patterns = np.ascontiguousarray(patterns, dtype=np.int32)
        if patterns.shape[0] != self.n or patterns.ndim != 2:
            raise RulecValueError(f"examples() takes one row of patterns per lane ({self.n}), "
                                  f"got shape {patterns.shape}")
        count = patterns.shape[1]
        lanes, out = self._struct([1] * self.n, patterns, patterns, 1, train=train)
        if self.lib.rulec_examples_lanes(self.graph, self.param_array, self.e, lanes,
                                         count) != 0:
            raise RulecValueError(f"the C driver refused {self.n} lanes")
        rows = out["outputs"][:, 1].copy()  # one copy: each lane's rows are a view of it
        failure = out["failure"].tolist()
        return [(self._failure(s, code, int(out["failed_phase"][s]),
                               int(out["phase_steps"][s])) if code else None, rows[s])
                for s, code in enumerate(failure)]

    def node_slot(self, name: str) -> np.ndarray:
        """Node slot `name` on every lane: a (nodes, lanes) view."""
        for kind, slot, lanes in self.registers.slots:
            if kind == "node" and slot == name:
                return lanes
        raise RulecValueError(f"rule {self.rule.name!r} has no node slot {name!r}")

    def _failure(self, lane: int, code: int, phase: int, steps: int) -> str:
        return failure_message(self.lib, code, self.phases[phase], steps,
                               lambda: self.state(lane))

    def state(self, lane: int):
        """A new State of the rule's graph holding lane `lane` as it is now."""
        state = self.rule.state(self.topology.graph)
        self.registers.save(lane, state)
        state.seed, state.time = int(self.seeds[lane]), int(self.times[lane])
        return state


class StateLanes(Lanes):
    """Lanes for the C kernels, which have no lane registers: each lane is a
    State of its own, and one rulec_evaluate_lanes call runs them one after
    another (rulec_lanes.states), each as rulec_evaluate runs it alone. So
    an evaluation of many seeds is one C call per stage and chunk of
    epochs, with no Python per seed in between, and every Result is bit for
    bit the one run_epochs gives. The interface is Lanes' (start, epochs,
    examples, state, release); node_slot reads every lane's state."""

    STATES = True  # the backend's lanes: states (its lane_states)

    def __init__(self, rule: Rule, task, topology, protocol, budget: int,
                 params: dict | None, seeds, rng_seeds=None) -> None:
        labels = self._fields(rule, task, topology, protocol, budget, params, seeds,
                              rng_seeds, "in one call")
        self.registers = None
        self._held = _lane_states(rule, topology.graph, self.n, self.ffi)
        try:
            self.lane_states, self.structs = self._held.states, self._held.structs
            blocks = rule.runner.driver_blocks(self.lane_states[0], labels)
            self.keep.append(blocks)
            _kernels(self.ffi, self.e, blocks, self.keep)
            self.graph = graph_view(topology.graph, blocks.graph_needs).struct
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Give the lanes' states back (for the next evaluation to reuse)."""
        held, self._held = getattr(self, "_held", None), None
        if held is not None:
            held.lock.release()

    def start(self, states=None) -> None:
        """Every lane as fresh_state leaves a state (`init` run
        with the lane's seed); or, where states[s] is a State, a copy of it
        (its time too)."""
        starts = list(states or ()) + [None] * (self.n - len(states or ()))
        for lane, (state, start) in enumerate(zip(self.lane_states, starts, strict=True)):
            if start is None:
                fresh_state(self.rule, self.topology, self.protocol, int(self.seeds[lane]),
                            self.params, into=state)
            else:
                state.restore(start)
            self.times[lane] = state.time

    def _lane_fields(self, lanes) -> None:
        lanes.run, lanes.node, lanes.states = self.ffi.NULL, self.ffi.NULL, self.structs

    def node_slot(self, name: str) -> np.ndarray:
        if name not in self.rule.program.node_slots:
            raise RulecValueError(f"rule {self.rule.name!r} has no node slot {name!r}")
        return np.stack([state.node[name] for state in self.lane_states], axis=1)

    def state(self, lane: int):
        state = self.lane_states[lane].copy()
        state.seed, state.time = int(self.seeds[lane]), int(self.times[lane])
        return state


def _lane_states(rule: Rule, graph, n: int, ffi) -> _LaneStates:
    """n states of `rule` on `graph` for StateLanes, their lock taken
    (release it when done); kept per rule for the last few graphs and lane
    counts, as the VM keeps its lane registers (a search evaluates every
    rule on the same seeds)."""
    with _LANE_STATES_LOCK:
        per_rule = rule.__dict__.setdefault("_rulec_lane_states", {})
    return taken_for_graph(per_rule, _LANE_STATES_LOCK, graph, n,
                           lambda: _LaneStates(rule, graph, n, ffi))


class _LaneStates:
    """n states of a rule on a graph, their rulec_state pointers, and the
    lock of the evaluation using them."""

    def __init__(self, rule: Rule, graph, n: int, ffi) -> None:
        self.graph = graph
        self.states = [rule.state(graph) for _ in range(n)]
        self.structs = ffi.new("rulec_state *[]", [state_view(state, rule.program).struct
                                                   for state in self.states])
        self.lock = threading.Lock()


_LANE_STATES_LOCK = threading.Lock()


def lanes_for(rule: Rule, *args, **kwargs) -> Lanes:
    """Lanes of `rule`'s backend: the VM's lane registers, or the C kernels'
    states one after another (StateLanes)."""
    kind = StateLanes if rule.runner.lane_states else Lanes
    return kind(rule, *args, **kwargs)

