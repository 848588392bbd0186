"""The host side of the CUDA kernels: what runs a block `steps` times, the
same code whichever device executes the kernels.

A device (rulec.backends.cuda.gpu.GpuDevice on a GPU, rulec.backends.cuda.
cpu.CpuDevice for the generated kernels compiled for the CPU) holds arrays
and launches kernels; `run_block` decides what is launched, with which
buffers, in which order:

    for each step:
        the block's kernel, once per lane group (nodes binned by degree)
        each shared slot's settle kernel        (proposals -> mean)
        swap each double-buffered slot's two buffers (pointers only)
        with check_finite: each slot's finite kernel (sets a copy's stop flag)

A batch of B states (copies of one graph) runs in the same launches, side
by side in each slot's array. No step waits for the host: a kernel skips
the copies whose stop flag is set, so `steps` launches go out back to back
and the host reads B ints at the end (the step each copy stopped at, or
0). Then it knows which buffer holds each copy's double-buffered slots and
copies them back into the states. A single state already on the device
(state.to('cuda'); every CPU state for the CPU device) is stepped in its
own arrays, with no copies.
"""

from __future__ import annotations

import numpy as np

from ...graph import Graph
from .render import KernelInfo

#: Threads per CUDA block: whole warps, so a group never spans two warps.
BLOCK_THREADS = 256
#: The most lanes a node gets (a warp), as in rulec_cuda.h.
MAX_LANES = 32


def lanes_for(degree: int) -> int:
    """A node's lanes: the smallest power of two at least its degree, at most
    a warp (so every lane has a half-edge, and a hub gets a whole warp)."""
    lanes = 1
    while lanes < degree and lanes < MAX_LANES:
        lanes *= 2
    return lanes


def lane_bins(graph: Graph, lanes: int | None = None) -> list[tuple[int, np.ndarray]]:
    """(lanes, nodes) for each group size the graph's degrees call for (one
    launch each), or every node with `lanes` lanes when it is given."""
    degrees = np.diff(graph.row_ptr)
    if lanes is not None:
        return [(lanes, np.arange(graph.n_nodes, dtype=np.int32))] if graph.n_nodes else []
    wanted = np.ones(graph.n_nodes, dtype=np.int64)
    while True:
        grow = (wanted < degrees) & (wanted < MAX_LANES)
        if not grow.any():
            break
        wanted[grow] *= 2
    return [(int(size), np.flatnonzero(wanted == size).astype(np.int32))
            for size in np.unique(wanted)]


class Device:
    """What run_block needs from a device. `upload` copies a NumPy array to
    the device, `empty` makes a zeroed array, `read` copies one back as a
    NumPy array (waiting for the launches before it), `launch` runs a kernel
    over `threads` threads with arguments made by `prepare`."""

    def upload(self, array: np.ndarray):
        raise NotImplementedError

    def empty(self, size: int, dtype):
        raise NotImplementedError

    def read(self, handle) -> np.ndarray:
        raise NotImplementedError

    def prepare(self, args: list[tuple[str, object]]) -> list:
        """A launch's arguments, given as (C type, value) pairs ('ptr' for a
        device array), in the form `launch` passes them."""
        raise NotImplementedError

    def scalar(self, ctype: str, value):
        """One scalar argument in the form `prepare` gives it."""
        raise NotImplementedError

    def launch(self, name: str, threads: int, prepared: list) -> None:
        raise NotImplementedError

    def owns(self, array) -> bool:
        """Whether `array` already lives on this device (a state there)."""
        raise NotImplementedError

    def concat(self, arrays: list):
        """Device arrays end to end, as one new device array."""
        raise NotImplementedError

    def copy_into(self, target, source) -> None:
        """Copy one device array into another of the same size."""
        raise NotImplementedError


class GraphOnDevice:
    """A graph's arrays on a device, with its lane bins, uploaded once."""

    def __init__(self, device: Device, graph: Graph, lanes: int | None = None) -> None:
        self.graph = graph
        self.row_ptr = device.upload(np.ascontiguousarray(graph.row_ptr, dtype=np.int64))
        self.nbr = device.upload(np.ascontiguousarray(graph.nbr, dtype=np.int32))
        self.rev = device.upload(np.ascontiguousarray(graph.rev, dtype=np.int32))
        self.eid = device.upload(np.ascontiguousarray(graph.eid, dtype=np.int32))
        self.edge_half = device.upload(np.ascontiguousarray(graph.edge_halves[:, 0],
                                                            dtype=np.int32))
        self.degree = device.upload(np.ascontiguousarray(graph.degree, dtype=np.float32))
        self.bins = [(size, device.upload(nodes), len(nodes))
                     for size, nodes in lane_bins(graph, lanes)]


def _plan(device: Device, graph: GraphOnDevice, kernel: KernelInfo, buffers: dict, extra: dict,
          frame: dict, copies: int, sizes: dict, stops, check_finite: bool,
          parity: int) -> list:
    """A step's launches, in order, when the double-buffered slots have been
    swapped `parity` times (mod 2): (kernel, threads, prepared arguments,
    {position: (C type, 'time' or 'step')} to fill in per step)."""
    g = graph.graph

    def view(swaps: int) -> dict:
        return {key: pair if swaps % 2 == 0 or len(pair) == 1 else pair[::-1]
                for key, pair in buffers.items()}

    now, after = view(parity), view(parity + 1)
    launches = []
    for lanes, nodes, count in graph.bins:
        given = {**frame, "n_groups": ("int64_t", copies * count),
                 "per_copy": ("int64_t", count), "nodes": ("ptr", nodes),
                 "lanes": ("int", lanes), "time": ("uint64_t", 0)}
        args = []
        for arg in kernel.args:
            if arg.role == "slot":
                kind, index, buffer, _ = arg.detail
                if buffer in ("cur", "next"):
                    args.append(("ptr", now[kind, index][0 if buffer == "cur" else 1]))
                else:
                    args.append(("ptr", extra[kind, index, buffer]))
            else:
                args.append(given[arg.role])
        time = next(i for i, arg in enumerate(kernel.args) if arg.role == "time")
        launches.append((kernel.name, copies * count * lanes, device.prepare(args),
                         {time: ("uint64_t", "time")}))
    for kind, index, mode, _ in kernel.slots:
        if mode == "proposal":
            launches.append(("rulec_cuda_settle", copies * g.n_edges, device.prepare([
                ("int64_t", copies * g.n_edges), ("int64_t", g.n_edges),
                ("ptr", now[kind, index][0]), ("ptr", extra[kind, index, "proposal"]),
                ("ptr", extra[kind, index, "proposed"]), ("ptr", graph.edge_half),
                ("ptr", graph.rev), ("ptr", stops)]), {}))
    if check_finite:  # after the step: its double-buffered slots swapped once more
        for kind, index, _, _ in kernel.slots:
            launches.append(("rulec_cuda_finite", copies * sizes[kind], device.prepare([
                ("int64_t", copies * sizes[kind]), ("int64_t", sizes[kind]),
                ("ptr", after[kind, index][0]), ("ptr", stops), ("int", 0)]),
                {4: ("int", "step")}))
    return launches


def run_block(device: Device, graph: GraphOnDevice, kernel: KernelInfo, states: list,
              params: list[list[float]], steps: int, check_finite: bool = False) -> list[int]:
    """Run `kernel` (one block) `steps` times on each of `states` (copies of
    one graph; params[c] are copy c's param values), all in the same launches.
    The states' arrays are uploaded, and the written ones downloaded after
    (a lone state on the device is stepped in place).
    Returns the steps each copy ran: fewer where check_finite stopped it at a
    step that left a non-finite value (that copy's state is the one after it,
    as on the CPU)."""
    copies = len(states)
    if steps <= 0 or not copies:
        return [0] * copies
    g = graph.graph
    sizes = {"node": g.n_nodes, "edge": 2 * g.n_edges, "shared": g.n_edges}
    hosts: dict[tuple[str, int], list[np.ndarray]] = {}
    buffers: dict[tuple[str, int], list] = {}
    extra: dict[tuple[str, int, str], object] = {}
    # one state whose arrays live on the device already: the kernels work in
    # them (no copies); otherwise the batch is uploaded side by side
    owned = all(device.owns(array) for state in states for _, _, array in state.slots())
    resident = owned and copies == 1
    for kind, index, mode, name in kernel.slots:
        # node slots in state.node; edge and shared slots in state.edge
        hosts[kind, index] = [(state.node if kind == "node" else state.edge)[name]
                              for state in states]
        arrays = hosts[kind, index]
        if resident:
            first = arrays[0]
        elif owned:
            first = device.concat(arrays)
        else:
            first = device.upload(np.concatenate(arrays) if copies > 1 else arrays[0])
        buffers[kind, index] = [first]
        if mode == "double":
            buffers[kind, index].append(device.empty(copies * sizes[kind], np.float32))
        if mode == "proposal":
            extra[kind, index, "proposal"] = device.empty(copies * 2 * g.n_edges, np.float32)
            extra[kind, index, "proposed"] = device.empty(copies * 2 * g.n_edges, np.uint8)
    stops = device.upload(np.zeros(copies, dtype=np.int32))
    seeds = device.upload(np.array([state.seed for state in states], dtype=np.uint64))
    values = np.zeros((copies, max(kernel.n_params, 1)), dtype=np.float32)
    for copy, row in enumerate(params):
        values[copy, :len(row)] = row
    frame = {"n_nodes": ("int64_t", g.n_nodes), "n_edges": ("int64_t", g.n_edges),
             "row_ptr": ("ptr", graph.row_ptr), "nbr": ("ptr", graph.nbr),
             "rev": ("ptr", graph.rev), "eid": ("ptr", graph.eid),
             "degree": ("ptr", graph.degree), "seeds": ("ptr", seeds),
             "stops": ("ptr", stops),
             "params": ("ptr", device.upload(values[:, :kernel.n_params].ravel()
                                             if kernel.n_params else values.ravel()))}
    # every launch of a step, prepared once for each parity of the buffer
    # swaps (the double-buffered slots swap together, so a step's arguments
    # are one of two lists); per step only the time (and the step number of
    # a finite check) is filled in
    plans = [_plan(device, graph, kernel, buffers, extra, frame, copies, sizes, stops,
                   check_finite, parity) for parity in (0, 1)]
    start = states[0].time
    for step in range(steps):
        time = start + step if kernel.advance else start
        for name, threads, prepared, fill in plans[step % 2]:
            for position, (ctype, what) in fill.items():
                prepared[position] = device.scalar(ctype, time if what == "time" else step + 1)
            device.launch(name, threads, prepared)
    for pair in buffers.values():  # the swaps the plans stood for
        if steps % 2 and len(pair) == 2:
            pair.reverse()
    stopped = device.read(stops)
    done = [int(s) if s else steps for s in stopped]
    for kind, index, mode, _ in kernel.slots:
        if mode == "read":
            continue
        pair = buffers[kind, index]
        if resident:
            if mode == "double" and (steps - done[0]) % 2:
                pair.reverse()  # steps after the stop swapped pointers, wrote nothing
            if pair[0] is not hosts[kind, index][0]:
                device.copy_into(hosts[kind, index][0], pair[0])
            continue
        size = sizes[kind]
        current = pair[0] if owned else device.read(pair[0])
        other = None if mode != "double" else pair[1] if owned else device.read(pair[1])
        for copy, host in enumerate(hosts[kind, index]):
            # steps after a copy stopped swapped the pointers but wrote nothing
            source = other if mode == "double" and (steps - done[copy]) % 2 else current
            part = source[copy * size:(copy + 1) * size]
            if owned:
                device.copy_into(host, part)
            else:
                host[...] = part
    if kernel.advance:
        for state, ran in zip(states, done, strict=True):
            state.time = state.time + ran
    return done

