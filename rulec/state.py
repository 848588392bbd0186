"""The state of a rule on a graph: one float32 array per slot, plus time and seed.

    state.node["x"]   float32[N]    one value per node
    state.edge["w"]   float32[2M]   a private slot: one value per half-edge, CSR order
    state.edge["c"]   float32[M]    a shared slot: one value per undirected edge, edge order

The arrays are the state itself (zero-copy, C-contiguous, writable); the
slot mappings refuse to swap them for other arrays but copy into them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

import numpy as np

from .atomic import write_atomic
from .errors import RulecError, RulecKeyError
from .graph import Graph

FORMAT_VERSION = 1


class StateError(RulecError, ValueError):
    """A state that does not fit its graph or rule, or a bad state file."""


class SlotArrays(Mapping):
    """Slot name -> float32 array. `slots[name] = values` copies into the array."""

    def __init__(self, arrays: dict[str, np.ndarray], what: str) -> None:
        self._arrays = arrays
        self._what = what

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._arrays[name]
        except KeyError:
            known = ", ".join(self._arrays) or "none"
            raise RulecKeyError(f"no {self._what} slot {name!r} (slots: {known})") from None

    def __setitem__(self, name: str, values) -> None:
        target = self[name]
        if not isinstance(target, np.ndarray):  # a state on a GPU: CuPy arrays
            values = _cupy().asarray(values, dtype=np.float32)
        else:
            values = np.asarray(values, dtype=np.float32)
        if values.shape not in ((), target.shape):
            raise StateError(
                f"{self._what} slot {name!r} has shape {target.shape}, got {values.shape}"
            )
        target[...] = values

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def __repr__(self) -> str:
        return f"{{{', '.join(self._arrays)}}}"


#: DLPack's device type of main memory (kDLCPU, and kDLCUDAHost: pinned host memory)
_DLPACK_HOST = (1, 3)


def _shared_array(name: str, array):
    """A NumPy view of a caller's array: a NumPy array itself, any array that
    speaks DLPack (a PyTorch tensor, a CuPy host array, JAX, ...) on the CPU,
    or one with NumPy's array interface, without a copy: steps then write
    into the caller's memory."""
    if isinstance(array, np.ndarray):
        return array
    if not hasattr(array, "__dlpack__"):
        # NumPy's array interface (a memoryview-backed or Numba array, ...):
        # a view of the same memory, no copy
        if hasattr(array, "__array_interface__"):
            return np.asarray(array)
        return array
    try:
        device = array.__dlpack_device__()[0]
    except (AttributeError, TypeError):
        device = None
    if device is not None and device not in _DLPACK_HOST:
        raise StateError(f"slot {name!r}: the {type(array).__name__} lives on a device "
                         f"(DLPack device type {device}), not in main memory; pass a CPU "
                         "array (for a PyTorch tensor: tensor.cpu(), then use that tensor), "
                         "or for the cuda backend make the state on the CPU and move it "
                         "with state.to('cuda') (docs/cuda.md)")
    try:
        return np.from_dlpack(array)
    except (BufferError, TypeError, ValueError, RuntimeError) as exc:
        raise StateError(f"slot {name!r}: NumPy cannot share this {type(array).__name__}'s "
                         f"memory through DLPack ({exc}); pass a NumPy array") from None


def _check_owned(name: str, array, length: int, kind: str, symbol: str) -> None:
    """A caller's array can be a slot only as it is: float32, 1-d, of the slot's
    length, C-contiguous and writable (a copy would not be the caller's array)."""
    if not isinstance(array, np.ndarray):
        raise StateError(f"slot {name!r}: expected a NumPy array, an array that speaks "
                         f"DLPack (a PyTorch tensor on the CPU) or one with NumPy's array "
                         f"interface, got {type(array).__name__} (whose memory a step "
                         f"could not write into)")
    problems = []
    if array.dtype != np.float32:
        problems.append(f"dtype {array.dtype}, not float32 (use .astype(np.float32) once, "
                        "and keep that array)")
    if array.shape != (length,):
        problems.append(f"shape {array.shape}, not ({length},): a {kind} slot has {symbol} "
                        "values")
    if not array.flags.c_contiguous:
        problems.append("not contiguous (a strided view; pass np.ascontiguousarray once)")
    if not array.flags.writeable:
        problems.append("read-only")
    if problems:
        raise StateError(f"slot {name!r} cannot use this array: " + "; ".join(problems))


def _counter(what: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) \
            or not 0 <= int(value) < 2**64:
        raise StateError(f"state.{what} must be an integer in 0..2**64-1, got {value!r}")
    return int(value)


#: Where a state's arrays can live: main memory (NumPy) or an NVIDIA GPU (CuPy).
DEVICES = ("cpu", "cuda")


def _cupy():
    try:
        import cupy
    except ImportError:
        raise StateError("a state on the GPU needs CuPy: pip install 'rulec[cuda]' "
                         "(docs/cuda.md)") from None
    return cupy


class State:
    """Slots, time and seed of one rule on one graph. Make one with rule.state(graph).

    A state lives on a device (`state.device`): 'cpu', with NumPy arrays, or
    'cuda', with CuPy arrays on the GPU (state.to('cuda'); docs/cuda.md). The
    backends that run a state are the ones of its device."""

    def __init__(self, graph: Graph, node_slots=(), edge_slots=(), shared_slots=(),
                 arrays: dict | None = None) -> None:
        """A state of zeros; `arrays` (slot name -> the caller's float32 array)
        makes those slots the caller's arrays themselves, with no copy."""
        if not isinstance(graph, Graph):
            raise StateError(f"a state needs a rulec.Graph, got {type(graph).__name__}")
        self._graph = graph
        self.node_slots = tuple(node_slots)
        self.edge_slots = tuple(edge_slots)
        self.shared_slots = tuple(shared_slots)
        n, m = graph.n_nodes, graph.n_edges
        arrays = dict(arrays or {})
        lengths = {**{s: (n, "node", "N") for s in self.node_slots},
                   **{s: (2 * m, "edge", "2M") for s in self.edge_slots},
                   **{s: (m, "shared edge", "M") for s in self.shared_slots}}
        unknown = set(arrays) - set(lengths)
        if unknown:
            raise StateError(f"no slot {sorted(unknown)[0]!r} in this rule "
                             f"(slots: {', '.join(lengths) or 'none'})")
        for name, array in list(arrays.items()):
            arrays[name] = array = _shared_array(name, array)
            _check_owned(name, array, *lengths[name])

        def slot(name: str) -> np.ndarray:
            return arrays[name] if name in arrays else np.zeros(lengths[name][0], np.float32)

        self._node = {name: slot(name) for name in self.node_slots}
        edge = {name: slot(name) for name in self.edge_slots}
        edge.update({name: slot(name) for name in self.shared_slots})
        self._edge = edge
        self.node = SlotArrays(self._node, "node")
        self.edge = SlotArrays(self._edge, "edge")
        self.time = 0
        self.seed = 0
        self.device = "cpu"

    @property
    def graph(self) -> Graph:
        """The graph the state's arrays are sized for. Read-only: a state
        cannot be moved to another graph (make a new one with rule.state)."""
        return self._graph

    @graph.setter
    def graph(self, value) -> None:
        raise AttributeError("a state's graph cannot be replaced: its arrays are sized for "
                             "it; make a state on the new graph with rule.state(graph)")

    @property
    def time(self) -> int:
        """Steps run by update blocks (an integer in 0 .. 2**64-1)."""
        return self._time

    @time.setter
    def time(self, value) -> None:
        self._time = _counter("time", value)

    @property
    def seed(self) -> int:
        """The seed of random draws (an integer in 0 .. 2**64-1)."""
        return self._seed

    @seed.setter
    def seed(self, value) -> None:
        self._seed = _counter("seed", value)

    @property
    def layout(self) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        return self.node_slots, self.edge_slots, self.shared_slots

    def slots(self) -> Iterator[tuple[str, str, np.ndarray]]:
        """(kind, name, array) for every slot, in declaration order: node, edge, shared."""
        for name in self.node_slots:
            yield "node", name, self._node[name]
        for name in self.edge_slots:
            yield "edge", name, self._edge[name]
        for name in self.shared_slots:
            yield "shared", name, self._edge[name]

    def copy(self) -> State:
        """A copy on the same device."""
        if self.device != "cpu":
            return self._moved(self.device, lambda array: array.copy())
        other = State(self.graph, *self.layout)
        for kind, name, array in self.slots():
            (other._node if kind == "node" else other._edge)[name][...] = array
        other.time, other.seed = self.time, self.seed
        return other

    def to(self, device: str) -> State:
        """This state on `device` ('cpu' or 'cuda'): itself if it is there
        already, else a copy there (like PyTorch's tensor.to). On 'cuda' the
        slots are CuPy arrays, which PyTorch and others share without a copy
        through DLPack (torch.from_dlpack(state.node['x']))."""
        if device not in DEVICES:
            raise StateError(f"no device {device!r}; a state lives on one of: "
                             f"{', '.join(DEVICES)}")
        if device == self.device:
            return self
        if device == "cuda":
            cupy = _cupy()
            return self._moved("cuda", lambda array: cupy.asarray(array))
        return self._moved("cpu", lambda array: _cupy().asnumpy(array))

    def _moved(self, device: str, convert) -> State:
        other = State(self.graph, *self.layout)
        other._node.update({name: convert(array) for name, array in self._node.items()})
        other._edge.update({name: convert(array) for name, array in self._edge.items()})
        other.time, other.seed, other.device = self.time, self.seed, device
        return other

    def restore(self, other: State) -> None:
        """Make this state equal to `other` (the same graph and layout), in
        place: its arrays keep their addresses, so what a backend made for
        this state (the VM's registers) stays valid, where copy() would make
        a new state that needs its own."""
        if other.graph is not self.graph or other.layout != self.layout:
            raise StateError("restore() takes a state of the same graph and slots")
        if other.device != self.device:
            raise StateError(f"restore() takes a state on the same device: this one is on "
                             f"{self.device}, the other on {other.device} (use other.to("
                             f"{self.device!r}))")
        for kind, name, array in other.slots():
            (self._node if kind == "node" else self._edge)[name][...] = array
        self.time, self.seed = other.time, other.seed

    def __repr__(self) -> str:
        return (f"State({self.graph!r}, node={list(self.node_slots)}, "
                f"edge={list(self.edge_slots)}, shared={list(self.shared_slots)}, "
                f"time={self.time}, seed={self.seed}"
                f"{'' if self.device == 'cpu' else f', device={self.device!r}'})")

    # -------------------------------------------------------------- files

    def save(self, path: str | os.PathLike) -> None:
        """Write the state to an .npz file, atomically (a crash leaves the old file).
        A state on the GPU is copied to main memory to be written."""
        if self.device != "cpu":
            self.to("cpu").save(path)
            return
        arrays = {f"{kind}/{name}": array for kind, name, array in self.slots()}
        meta = np.array([FORMAT_VERSION, self.time, self.seed], dtype=np.uint64)
        graph = np.array(self.graph.fingerprint)
        write_atomic(path, lambda handle: np.savez(handle, __meta__=meta, __graph__=graph,
                                                   **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike, graph: Graph) -> State:
        """Read a state written by save(); the graph must be the one it was saved with."""
        damaged = (f"{path}: not a readable rulec state file (damaged, truncated, or not "
                   "written by State.save / rulec run --save); save the state again")
        try:
            with np.load(path, allow_pickle=False) as data:
                files = {key: data[key] for key in data.files}
        except FileNotFoundError:
            raise StateError(f"{path}: no such state file") from None
        except IsADirectoryError:
            raise StateError(f"{path}: is a directory, not a state file") from None
        except Exception:  # zip, npy and zlib errors of a damaged file, pickled objects
            raise StateError(damaged) from None
        if "__meta__" not in files or "__graph__" not in files:
            raise StateError(damaged)
        meta = files.pop("__meta__")
        if meta.shape != (3,) or meta.dtype.kind not in "ui":
            raise StateError(f"{path}: its header (__meta__) is not 3 integers: the file is "
                             "damaged or was not written by State.save; save the state again")
        version, time, seed = (int(v) for v in meta)
        if version != FORMAT_VERSION:
            raise StateError(f"{path}: state format {version}, this rulec reads {FORMAT_VERSION}")
        if files["__graph__"].shape != () or files["__graph__"].dtype.kind != "U":
            raise StateError(damaged)
        fingerprint = str(files.pop("__graph__"))
        if fingerprint != graph.fingerprint:
            raise StateError(
                f"{path}: saved on another graph ({fingerprint}), not this one"
                f" ({graph.fingerprint}: nodes:edges:crc)"
            )
        layout: dict[str, list[str]] = {"node": [], "edge": [], "shared": []}
        for key in files:
            kind, _, name = key.partition("/")
            if kind not in layout:
                raise StateError(f"{path}: unknown entry {key!r}")
            layout[kind].append(name)
        state = cls(graph, layout["node"], layout["edge"], layout["shared"])
        for kind, name, array in state.slots():
            saved = files[f"{kind}/{name}"]
            if saved.dtype.kind not in "fiu":
                raise StateError(f"{path}: slot {name!r} holds {saved.dtype}, not numbers")
            if saved.shape != array.shape:
                raise StateError(f"{path}: slot {name!r} has shape {saved.shape},"
                                 f" expected {array.shape} for this graph")
            array[...] = saved
        try:
            state.time, state.seed = time, seed
        except StateError:
            raise StateError(damaged) from None
        return state
