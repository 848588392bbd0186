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
        with check_finite: each slot's finite kernel (sets `stop` once)

No step waits for the host: a kernel does nothing once `stop` is set, so
`steps` launches go out back to back and the host reads one int at the
end (the step that stopped, or 0). Then it knows which buffer holds each
double-buffered slot and copies it back into the state.
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
    the device (or wraps it), `empty` makes an array, `download` copies one
    back into a NumPy array, `launch` runs a kernel over `threads` threads
    with arguments as (C type, value) pairs, `read_stop` reads the stop flag."""

    def upload(self, array: np.ndarray):
        raise NotImplementedError

    def empty(self, size: int, dtype):
        raise NotImplementedError

    def download(self, handle, into: np.ndarray) -> None:
        raise NotImplementedError

    def launch(self, name: str, threads: int, args: list[tuple[str, object]]) -> None:
        raise NotImplementedError

    def read_stop(self, handle) -> int:
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


def run_block(device: Device, graph: GraphOnDevice, kernel: KernelInfo, state,
              params: list[float], steps: int, check_finite: bool = False) -> int:
    """Run `kernel` (one block) `steps` times on `state` (its arrays are
    uploaded, and the written ones downloaded after); returns the steps run,
    fewer when check_finite stopped at a step that left a non-finite value."""
    if steps <= 0:
        return 0
    g = graph.graph
    arrays = {}
    kinds = {"node": list(state.layout[0]), "edge": list(state.layout[1]),
             "shared": list(state.layout[2])}
    by_name = {(kind, name): array for kind, name, array in state.slots()}
    sizes = {"node": g.n_nodes, "edge": 2 * g.n_edges, "shared": g.n_edges}
    buffers: dict[tuple[str, int], list] = {}
    extra: dict[tuple[str, int, str], object] = {}
    for kind, index, mode in kernel.slots:
        host = by_name[kind, kinds[kind][index]]
        arrays[kind, index] = host
        buffers[kind, index] = [device.upload(host)]
        if mode == "double":
            buffers[kind, index].append(device.empty(sizes[kind], np.float32))
        if mode == "proposal":
            extra[kind, index, "proposal"] = device.empty(2 * g.n_edges, np.float32)
            extra[kind, index, "proposed"] = device.empty(2 * g.n_edges, np.uint8)
    stop = device.upload(np.zeros(1, dtype=np.int32))
    frame = {"n_nodes": ("int64_t", g.n_nodes), "row_ptr": ("ptr", graph.row_ptr),
             "nbr": ("ptr", graph.nbr), "rev": ("ptr", graph.rev), "eid": ("ptr", graph.eid),
             "degree": ("ptr", graph.degree), "seed": ("uint64_t", state.seed),
             "stop": ("ptr", stop)}
    for step in range(steps):
        time = state.time + step if kernel.advance else state.time
        for lanes, nodes, count in graph.bins:
            values = {**frame, "n_groups": ("int64_t", count), "nodes": ("ptr", nodes),
                      "lanes": ("int", lanes), "time": ("uint64_t", time)}
            args = []
            for arg in kernel.args:
                if arg.role == "param":
                    args.append(("float", params[arg.detail[0]]))
                elif arg.role == "slot":
                    kind, index, buffer = arg.detail
                    if buffer in ("cur", "next"):
                        pair = buffers[kind, index]
                        args.append(("ptr", pair[0 if buffer == "cur" else 1]))
                    else:
                        args.append(("ptr", extra[kind, index, buffer]))
                else:
                    args.append(values[arg.role])
            device.launch(kernel.name, count * lanes, args)
        for kind, index, mode in kernel.slots:
            if mode == "proposal":
                device.launch("rulec_cuda_settle", g.n_edges, [
                    ("int64_t", g.n_edges), ("ptr", buffers[kind, index][0]),
                    ("ptr", extra[kind, index, "proposal"]),
                    ("ptr", extra[kind, index, "proposed"]), ("ptr", graph.edge_half),
                    ("ptr", graph.rev), ("ptr", stop)])
            elif mode == "double":
                buffers[kind, index].reverse()  # the step wrote the next values
        if check_finite:
            for kind, index, _ in kernel.slots:
                device.launch("rulec_cuda_finite", sizes[kind], [
                    ("int64_t", sizes[kind]), ("ptr", buffers[kind, index][0]),
                    ("ptr", stop), ("int", step + 1)])
    stopped = device.read_stop(stop)
    done = stopped if stopped else steps
    for kind, index, mode in kernel.slots:
        if mode == "read":
            continue
        pair = buffers[kind, index]
        if mode == "double" and (steps - done) % 2:
            # steps after the stop swapped the pointers but wrote nothing
            pair.reverse()
        device.download(pair[0], arrays[kind, index])
    if kernel.advance:
        state.time = state.time + done
    return done
