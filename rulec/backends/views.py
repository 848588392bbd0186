"""C views of graphs, states and params, shared by every backend that runs C
(the C kernels, the VM, the protocol driver), and chunked calls.

A graph's C struct (rulec_graph, runtime/rulec_abi.h) points into its NumPy
arrays and is made once per graph; a state's struct points into its slot
arrays (which never move) and is made once per state and rule layout.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from .. import ir
from ..graph import Graph
from ..state import State
from .toolchain import ffi

_view_lock = threading.Lock()


class _GraphView:
    """A rulec_graph struct and the arrays it points into (kept alive here).
    row_ptr, nbr and degree are always set; rev, eid and edge_half only once
    a rule that reads them runs (`require`), and NULL until then."""

    # each array: how to read it from the graph, and its C type
    _ARRAYS = {
        "row_ptr": (lambda g: g.row_ptr, np.int64),
        "nbr": (lambda g: g.nbr, np.int32),
        "rev": (lambda g: g.rev, np.int32),
        "eid": (lambda g: g.eid, np.int32),
        "edge_half": (lambda g: g.edge_halves[:, 0], np.int32),
        "degree": (lambda g: g.degree, np.float32),
    }
    _CTYPE = {np.int64: "int64_t *", np.int32: "int32_t *", np.float32: "float *"}

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.ffi = ffi()
        self.arrays: dict[str, np.ndarray] = {}
        struct = self.ffi.new("rulec_graph *")
        struct.n_nodes = graph.n_nodes
        struct.n_edges = graph.n_edges
        self.struct = struct
        self.require(("row_ptr", "nbr", "degree"))

    def require(self, names) -> _GraphView:
        missing = [name for name in names if name not in self.arrays]
        if missing:
            # under a lock: an array set once is never replaced (a kernel
            # running in another thread may be reading it)
            with _view_lock:
                for name in missing:
                    if name not in self.arrays:
                        read, dtype = self._ARRAYS[name]
                        array = np.ascontiguousarray(read(self.graph), dtype=dtype)
                        setattr(self.struct, name,
                                self.ffi.cast(self._CTYPE[dtype], array.ctypes.data))
                        self.arrays[name] = array
        return self


class StateView:
    """A rulec_state struct pointing into a state's slot arrays, in the rule's order."""

    def __init__(self, state: State, program: ir.Program) -> None:
        f = ffi()
        self.state = state
        self.layout = (program.node_slots, program.edge_slots, program.shared_slots)

        def pointers(names, arrays):
            return f.new("float *[]", [f.cast("float *", arrays[n].ctypes.data) for n in names]
                         or [f.NULL])

        self.node = pointers(program.node_slots, state.node)
        self.edge = pointers(program.edge_slots, state.edge)
        self.shared = pointers(program.shared_slots, state.edge)
        struct = f.new("rulec_state *")
        struct.node, struct.edge, struct.shared = self.node, self.edge, self.shared
        self.struct = struct


def state_view(state: State, program: ir.Program) -> StateView:
    """The C view of `state` in `program`'s slot order, kept with the state
    (made again only for a rule whose layout differs)."""
    view = state.__dict__.get("_rulec_c_view")
    if view is None or view.layout != (program.node_slots, program.edge_slots,
                                       program.shared_slots):
        view = state.__dict__["_rulec_c_view"] = StateView(state, program)
    return view


def graph_view_bytes(graph: Graph, needs=()) -> int:
    """The bytes of the graph arrays a C view of `graph` holds for a rule
    that reads `needs` (ir.graph_arrays; row_ptr, nbr and degree always):
    a backend's graph memory (bench/vm.py's memory table)."""
    names = {"row_ptr", "nbr", "degree", *needs}
    return sum(np.asarray(read(graph)).nbytes for name, (read, _) in _GraphView._ARRAYS.items()
               if name in names)


def graph_view(graph: Graph, needs=()) -> _GraphView:
    """The C view of `graph`, made once per graph, with the arrays `needs`
    names set too (a rule's ir.graph_arrays)."""
    view = graph.__dict__.get("_rulec_c_view")
    if view is None:
        view = graph.__dict__["_rulec_c_view"] = _GraphView(graph)
    return view.require(needs)


def taken_for_graph(kept: dict, lock, graph: Graph, count: int, make):
    """kept[(graph, count)], made by make() if it is missing or was made for
    another graph of the same id, with its `lock` taken (release it when
    done): per-rule buffers for `count` seeds on a graph (the VM's lane
    registers, the kernels' lane states), kept for the last few graphs and
    counts. Made objects have `graph` and `lock`; `lock` guards `kept`. If
    another thread holds the kept one, the caller gets one of its own."""
    key = (id(graph), count)
    with lock:
        found = kept.get(key)
        if found is None or found.graph is not graph:
            if len(kept) >= 4:
                del kept[next(iter(kept))]
            found = kept[key] = make()
    if not found.lock.acquire(blocking=False):
        found = make()
        found.lock.acquire()
    return found


class ParamArray:
    """A rule's params as a C float array in declaration order, made again
    only when their values change (a step loop in Python pays no allocation)."""

    def __init__(self, ffi_instance, program: ir.Program) -> None:
        self.ffi = ffi_instance
        self.names = [name for name, _ in program.params]
        self.cached: tuple[tuple, object] | None = None

    def __call__(self, values: dict[str, float]):
        ordered = tuple(values[name] for name in self.names)
        if self.cached is None or self.cached[0] != ordered:
            self.cached = (ordered, self.ffi.new("float[]", list(ordered) or [0.0]))
        return self.cached[1]


FIRST_CHUNK = 64
CHUNK_SECONDS = 0.05


def run_chunked(call, steps: int, stopped=None) -> int:
    """Run `steps` steps as call(n) -> steps done, in chunks that grow until
    one takes CHUNK_SECONDS: Python gets control between chunks, so Ctrl-C
    (KeyboardInterrupt) stops a long run within about that long, with the
    state whole after the last finished step. Stops early when a chunk runs
    fewer steps than asked (check_finite found a non-finite value) or
    `stopped()` says so."""
    total, chunk = 0, min(steps, FIRST_CHUNK)
    while total < steps:
        n = min(chunk, steps - total)
        start = time.perf_counter()
        done = call(n)
        total += done
        if done < n or (stopped is not None and stopped()):
            break
        if time.perf_counter() - start < CHUNK_SECONDS:
            chunk *= 2
    return total
