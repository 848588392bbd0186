"""The protocol driver: a whole evaluation of a rule on a learning task in C.

`rulec.tasks.evaluate` is the definition (it interprets a protocol's schedule
in Python, one foreign call per phase); with engine='c' it hands the epochs
to `run_epochs`, which runs the same schedule in C
(templates/vm.c.j2, `rulec_evaluate`): all epochs, the shuffled orders (training
and scoring)
(drawn in Python as numpy draws them, passed as data), early exit on a
non-finite state, an exhausted budget or a reached goal, in one call per
chunk of epochs. Blocks run on the VM, or as the C backend's kernels.

    evaluate_many(rules, task, topology, protocol, epochs=50, seeds=[0, 1], threads=2)

evaluates many rules, each on its own state, in parallel across rules
(threads: the C calls release the GIL).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ... import tasks
from ...native import ParamArray, _StateView, graph_view
from ...runtime import NonFiniteError, Rule, _raise_if_non_finite
from .native import library

_OPS = {"write": 0, "run": 1, "read": 2}
_WHEN = {"always": 0, "train": 1, "test": 2}
_NODES = {"inputs": 0, "outputs": 1, "all": 2}
EPOCH_SECONDS = 0.1  # a chunk of epochs per call grows until a call takes this long


def _phases(ffi, rule: Rule, phases: list, labels: list[str]):
    slots = rule.program.node_slots
    array = ffi.new("rulec_phase[]", max(len(phases), 1))
    for i, phase in enumerate(phases):
        row = array[i]
        row.op = _OPS[phase.op]
        row.when = _WHEN[phase.when]
        slot = phase.until if phase.op == "run" else phase.slot
        row.slot = slots.index(slot) if slot is not None else -1
        row.nodes = _NODES[phase.nodes]
        row.source = {"input": 1, "target": 2}.get(phase.value, 0) \
            if isinstance(phase.value, str) else 0
        row.value = 0.0 if isinstance(phase.value, str) else float(phase.value)
        row.block = labels.index(phase.block) if phase.block in labels else -1
        if phase.op == "run" and row.block < 0 and not phase.optional:
            raise ValueError(f"rule {rule.name!r} has no block {phase.block!r}, which the "
                             "protocol runs")
        row.steps = phase.steps
    return array


def run_epochs(rule: Rule, state, task, topology, protocol, epochs: int, seed: int,
               budget: int, params: dict | None, stop_at: float | None,
               on_epoch=None, hold: int = 1, first_epoch: int = 0) -> tasks.Result:
    """The epochs of rulec.tasks.evaluate, run in C on `state` (made, flagged
    and initialized by evaluate, which also checked the protocol and topology):
    epochs first_epoch .. first_epoch+epochs-1 of the seed's orders."""
    if rule.backend not in ("vm", "c"):
        raise ValueError(f"the C driver runs the 'vm' and 'c' backends, not {rule.backend!r}")
    ffi, lib = library()
    result = tasks.Result()
    values = rule._params(params)
    labels = list(rule.program.block_labels)
    phases = protocol.schedule(budget)
    keep = []  # arrays the C structs point into

    def pointer(ctype: str, array: np.ndarray):
        keep.append(array)
        return ffi.cast(ctype, array.ctypes.data)

    e = ffi.new("rulec_evaluation *")
    P, n_in, n_out = len(task.inputs), task.n_inputs, task.n_outputs
    e.n_patterns, e.n_in, e.n_out = P, n_in, n_out
    e.inputs = pointer("float *", np.ascontiguousarray(task.inputs, dtype=np.float32))
    e.targets = pointer("float *", np.ascontiguousarray(task.targets, dtype=np.float32))
    e.input_nodes = pointer("int32_t *", np.ascontiguousarray(topology.inputs, dtype=np.int32))
    e.output_nodes = pointer("int32_t *",
                             np.ascontiguousarray(topology.outputs, dtype=np.int32))
    e.n_input_nodes = len(topology.inputs)
    e.threshold = protocol.threshold
    phase_array = _phases(ffi, rule, phases, labels)
    e.phases, e.n_phases = phase_array, len(phases)
    e.stop_at = 2.0 if stop_at is None else stop_at
    e.hold, e.streak = hold, 0
    p = rule.program
    e.n_node_slots, e.n_edge_slots = len(p.node_slots), len(p.edge_slots)
    e.n_shared_slots = len(p.shared_slots)
    runner = rule._runner
    if rule.backend == "vm":
        needs = runner.blocks.graph_needs
        registers = runner.blocks._registers(state)
        vm = ffi.new("rulec_vm_block *[]", [registers.blocks[label] for label in labels])
        e.vm = vm
        e.kernels = ffi.NULL
    else:
        needs = runner.native.graph_needs
        kernels = ffi.new("rulec_kernel[]", [runner.native.kernels[label] for label in labels])
        e.vm = ffi.NULL
        e.kernels = kernels
    view = _StateView(state, p)
    struct = view.struct
    struct.time, struct.seed = state.time, state.seed
    graph = graph_view(state.graph, needs).struct
    param_array = ParamArray(ffi, p)(values)
    order = tasks.orders(task, first_epoch + epochs, seed)[first_epoch:]
    score_order = tasks.score_orders(task, first_epoch + epochs, seed)[first_epoch:]
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
            e.orders = pointer("int32_t *", np.ascontiguousarray(order[epoch:epoch + n]))
            e.score_orders = pointer("int32_t *",
                                     np.ascontiguousarray(score_order[epoch:epoch + n]))
            e.accuracy = pointer("double *", accuracy[epoch:])
            e.loss = pointer("double *", loss[epoch:])
            e.epochs_done, e.steps = 0, 0
            began = time.perf_counter()
            failure = lib.rulec_evaluate(graph, struct, param_array, e)
            steps += e.steps
            for i in range(e.epochs_done):
                result.accuracy.append(float(accuracy[epoch + i]))
                result.loss.append(float(loss[epoch + i]))
                result.outputs = outputs.copy()
                if on_epoch:
                    on_epoch(first_epoch + epoch + i, result)
            epoch += e.epochs_done
            if failure:
                result.failure = _failure(failure, e, phases, state, struct)
                break
            if e.streak >= e.hold:  # held stop_at for `hold` epochs (maybe at a chunk's end)
                break
            if time.perf_counter() - began < EPOCH_SECONDS:
                chunk *= 2
    finally:
        state.time = int(struct.time)
    result.steps = steps
    return result


def _failure(code: int, e, phases, state, struct) -> str:
    if code == 3:
        return "outputs are not finite"
    phase = phases[e.failed_phase]
    if code == 2:
        return f"budget of {phase.steps} steps exhausted waiting for {phase.until!r}"
    state.time = int(struct.time)
    try:
        _raise_if_non_finite(state, int(e.phase_steps))
    except NonFiniteError as exc:
        return f"non-finite state: {exc}"
    return "non-finite state"


def evaluate_many(rules, task, topology, protocol=None, epochs: int = 50, seeds=(0,),
                  budget: int = 100, stop_at: float | None = 1.0, threads: int = 1,
                  backend: str = "vm") -> list[list[tasks.Result]]:
    """Evaluate every rule (texts, ir.Programs or Rules) on every seed, each on
    its own state; result[i][j] is rule i on seed j. With threads > 1 the
    rules run in parallel (the C driver releases the GIL); no rule is
    compiled unless backend='c'."""
    protocol = protocol or tasks.Protocol()
    prepared = []
    for item in rules:
        if isinstance(item, Rule):
            prepared.append(item)
        elif isinstance(item, str):
            from ...runtime import compile as compile_text

            prepared.append(compile_text(item, backend=backend))
        else:
            prepared.append(Rule(item, backend))

    def one(rule: Rule) -> list[tasks.Result]:
        out = []
        for seed in seeds:
            try:
                out.append(tasks.evaluate(rule, task, topology, protocol, epochs, seed,
                                          budget, stop_at=stop_at, engine="c"))
            except ValueError as exc:  # a rule the protocol cannot talk to
                out.append(tasks.Result(failure=str(exc)))
        return out

    if threads <= 1:
        return [one(rule) for rule in prepared]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, prepared))
