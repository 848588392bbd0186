"""Undirected graphs in the CSR-over-half-edges layout of the spec.

Nodes are 0..N-1. Each undirected edge {u, v} is two half-edges, u->v owned
by u and v->u owned by v. Half-edges are numbered by (owner, neighbour);
undirected edges by (min, max). All arrays are public, read-only, and built
with vectorized NumPy (no Python loop over edges):

    row_ptr[N+1]  int64  node u's half-edges are row_ptr[u]:row_ptr[u+1]
    nbr[2M]       int32  the neighbour across each half-edge
    owner[2M]     int32  the node that owns each half-edge
    rev[2M]       int32  the opposite half-edge (v->u for u->v)
    eid[2M]       int32  the undirected edge of each half-edge
    edges[M, 2]   int32  the undirected edges (min, max), in order
    edge_halves[M, 2] int32  each edge's half-edges (min->max, max->min)

A graph holds only row_ptr and nbr (about 4 bytes per half-edge); the other
arrays are made from them the first time they are read and kept from then
on, so a kernel that never reads across a reverse half-edge or a shared
slot never pays for rev, eid or edge_halves.
"""

from __future__ import annotations

import functools
import zlib

import numpy as np

from .errors import RulecError


class GraphError(RulecError, ValueError):
    """A graph that breaks the spec's rules (self-loop, duplicate, bad id, bad shape)."""


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


# Graph construction works through the edges this many at a time, so its
# temporaries stay small beside the arrays it builds.
_CHUNK = 1 << 16


def _exclusive_cumsum(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=out[1:])
    return out


def _csr_from_sorted(n: int, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """row_ptr and nbr of the edges (lo[i], hi[i]): int32, lo < hi, sorted by
    (lo, hi) and unique. Node u's row holds first its smaller neighbours (the
    edges with hi == u, whose lo ascend in a stable order by hi), then its
    larger ones (the edges with lo == u, already in order); neither half
    needs a sort of all 2M half-edges."""
    m = len(lo)
    below = np.bincount(hi, minlength=n)[:n] if m else np.zeros(n, dtype=np.int64)
    above = np.bincount(lo, minlength=n)[:n] if m else np.zeros(n, dtype=np.int64)
    row_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(below + above, out=row_ptr[1:])
    starts = row_ptr[:-1]
    # edge i (lo = u) is u's half-edge starts[u] + below[u] + (i - first edge of u)
    forward_shift = starts + below - _exclusive_cumsum(above)
    # the j-th edge in stable order by hi (hi = v) is v's half-edge
    # starts[v] + (j - first such edge of v)
    backward_shift = starts - _exclusive_cumsum(below)
    del below, above, starts
    by_hi = np.argsort(hi, kind="stable")
    nbr = np.empty(2 * m, dtype=np.int32)
    for c0 in range(0, m, _CHUNK):
        c1 = min(m, c0 + _CHUNK)
        ids = np.arange(c0, c1, dtype=np.int64)
        nbr[forward_shift[lo[c0:c1]] + ids] = hi[c0:c1]
        edge = by_hi[c0:c1]
        nbr[backward_shift[hi[edge]] + ids] = lo[edge]
    return row_ptr, nbr


def _by_neighbour(nbr: np.ndarray) -> np.ndarray:
    """The half-edges sorted stably by neighbour, i.e. by (neighbour, owner):
    in a symmetric CSR, the order of their reverses."""
    return np.argsort(nbr, kind="stable")


def _inverse(order: np.ndarray) -> np.ndarray:
    """rev from _by_neighbour's order: the j-th half-edge in it is the reverse of half-edge j."""
    rev = np.empty(len(order), dtype=np.int32)
    rev[order] = np.arange(len(order), dtype=np.int32)
    return rev


def _check_size(n: int, m: int) -> None:
    if n >= 2**31 or 2 * m >= 2**31:
        raise GraphError(f"{n} nodes and {2 * m} half-edges: rulec graphs hold node ids "
                         "and half-edge numbers as int32, so both must be below 2**31")


def _duplicate_error(array: np.ndarray, n: int, key: int) -> GraphError:
    """The error for the edge {u, v} (key u * n + v) given twice in `array`."""
    u, v = divmod(key, max(n, 1))
    first, second = np.flatnonzero(((array[:, 0] == u) & (array[:, 1] == v))
                                   | ((array[:, 0] == v) & (array[:, 1] == u)))[:2]
    return GraphError(f"edges {first} and {second} are both {{{u}, {v}}};"
                      " duplicate edges are not allowed")


class Graph:
    """An undirected graph without self-loops or duplicate edges."""

    def __init__(self, n_nodes: int, edges: np.ndarray, labels: list | None = None) -> None:
        """Build from canonical edges: (M, 2) int, each row (min, max), rows sorted
        and unique. Use the from_* constructors; they validate and canonicalise."""
        n, m = int(n_nodes), len(edges)
        _check_size(n, m)
        lo = np.ascontiguousarray(edges[:, 0], dtype=np.int32)
        hi = np.ascontiguousarray(edges[:, 1], dtype=np.int32)
        self._set_csr(n, *_csr_from_sorted(n, lo, hi), labels)

    @classmethod
    def _from_parts(cls, n: int, row_ptr: np.ndarray, nbr: np.ndarray,
                    labels: list | None = None) -> Graph:
        """A graph of a valid CSR (row_ptr int64, nbr int32, owned by the graph)."""
        graph = cls.__new__(cls)
        graph._set_csr(n, row_ptr, nbr, labels)
        return graph

    def _set_csr(self, n: int, row_ptr: np.ndarray, nbr: np.ndarray, labels) -> None:
        self.n_nodes = n
        self.n_edges = len(nbr) // 2
        self.labels = labels
        self.row_ptr = _readonly(row_ptr)
        self.nbr = _readonly(nbr)
        self._frozen = True

    def __setattr__(self, name: str, value) -> None:
        # A graph is immutable once built (kernels hold views of its arrays);
        # only `labels`, which no kernel reads, may be set.
        if getattr(self, "_frozen", False) and name != "labels":
            raise AttributeError(f"Graph.{name} is read-only: a graph cannot change once "
                                 "built; make a new one (Graph.from_edges, from_csr, ...)")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Graph.{name} cannot be deleted: a graph is immutable")

    # ------------------------------------------------------------ properties

    @property
    def n_half_edges(self) -> int:
        return 2 * self.n_edges

    @functools.cached_property
    def degree(self) -> np.ndarray:
        """Degree of each node (int64)."""
        return _readonly(np.diff(self.row_ptr))

    def _owners(self) -> np.ndarray:
        """`owner` if it is kept, else made for the caller alone (not kept)."""
        owner = self.__dict__.get("owner")
        if owner is None:
            owner = np.repeat(np.arange(self.n_nodes, dtype=np.int32), self.degree)
        return owner

    @functools.cached_property
    def owner(self) -> np.ndarray:
        """The node that owns each half-edge (int32)."""
        return _readonly(self._owners())

    @functools.cached_property
    def rev(self) -> np.ndarray:
        """The opposite half-edge of each half-edge (int32)."""
        return _readonly(_inverse(_by_neighbour(self.nbr)))

    @functools.cached_property
    def edge_halves(self) -> np.ndarray:
        """The two half-edges of each undirected edge: (min->max, max->min), int32."""
        forward = np.flatnonzero(self.nbr > self._owners())
        halves = np.empty((self.n_edges, 2), dtype=np.int32)
        halves[:, 0] = forward
        halves[:, 1] = self.rev[forward]
        return _readonly(halves)

    @functools.cached_property
    def eid(self) -> np.ndarray:
        """The undirected edge of each half-edge (int32)."""
        eid = np.empty(self.n_half_edges, dtype=np.int32)
        ids = np.arange(self.n_edges, dtype=np.int32)
        eid[self.edge_halves[:, 0]] = ids
        eid[self.edge_halves[:, 1]] = ids
        return _readonly(eid)

    @functools.cached_property
    def edges(self) -> np.ndarray:
        """The undirected edges (min, max), sorted (M, 2 int32)."""
        return _readonly(np.concatenate(list(self._edge_chunks()))
                         if self.n_edges else np.zeros((0, 2), dtype=np.int32))

    def _edge_chunks(self):
        """`edges` in row order, from about _CHUNK half-edges at a time."""
        n, row_ptr = self.n_nodes, self.row_ptr
        if n == 0:
            return
        bounds = np.unique(np.searchsorted(row_ptr, np.arange(0, row_ptr[-1], _CHUNK),
                                           side="right") - 1)
        bounds = np.append(bounds[bounds < n], n)
        for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            nbr = self.nbr[row_ptr[a]:row_ptr[b]]
            owner = np.repeat(np.arange(a, b, dtype=np.int32), self.degree[a:b])
            upper = nbr > owner
            yield np.stack([owner[upper], nbr[upper]], axis=1)

    @functools.cached_property
    def parity(self) -> np.ndarray:
        """+1 for a half-edge whose neighbour has a larger id, else -1 (float32)."""
        return _readonly(np.where(self.nbr > self._owners(), 1.0, -1.0).astype(np.float32))

    @functools.cached_property
    def fingerprint(self) -> str:
        """A short identity of the graph, stored with saved states: a CRC of
        `edges` (computed a chunk at a time when they are not kept)."""
        crc = 0
        if "edges" in self.__dict__:
            crc = zlib.crc32(self.edges.tobytes())
        else:
            for chunk in self._edge_chunks():
                crc = zlib.crc32(chunk.tobytes(), crc)
        return f"{self.n_nodes}:{self.n_edges}:{crc:08x}"

    def __repr__(self) -> str:
        return f"Graph(n_nodes={self.n_nodes}, n_edges={self.n_edges})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Graph) and self.n_nodes == other.n_nodes
                and np.array_equal(self.row_ptr, other.row_ptr)
                and np.array_equal(self.nbr, other.nbr))

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    # ---------------------------------------------------------- constructors

    @classmethod
    def from_edges(cls, n_nodes: int, edges) -> Graph:
        """A graph on nodes 0..n_nodes-1 from a list of pairs or an (M, 2) integer array.

        Raises GraphError for ids out of range, self-loops and duplicate edges
        ({u, v} given twice, in either direction).
        """
        if isinstance(n_nodes, bool) or not isinstance(n_nodes, int | np.integer):
            raise GraphError(f"n_nodes must be an integer, got {type(n_nodes).__name__}")
        n = int(n_nodes)
        if n < 0:
            raise GraphError(f"n_nodes must be >= 0, got {n}")
        array = np.asarray(edges)
        if array.size == 0:
            array = np.zeros((0, 2), dtype=np.int64)
        if array.ndim != 2 or array.shape[1] != 2:
            raise GraphError(f"edges must be pairs, an (M, 2) array; got shape {array.shape}")
        if not np.issubdtype(array.dtype, np.integer):
            raise GraphError(f"edge ids must be integers, got dtype {array.dtype}")
        m = len(array)
        _check_size(n, m)
        if m:
            low, high = array.min(), array.max()
            if low < 0 or high >= n:
                bad = np.flatnonzero((array < 0).any(axis=1) | (array >= n).any(axis=1))
                u, v = array[bad[0]]
                raise GraphError(
                    f"edge {bad[0]} ({u}, {v}) has a node id outside 0..{n - 1}"
                    f" ({len(bad)} such edge{'s' if len(bad) > 1 else ''})"
                )
            loops = np.flatnonzero(array[:, 0] == array[:, 1])
            if len(loops):
                raise GraphError(
                    f"edge {loops[0]} ({array[loops[0], 0]}, {array[loops[0], 1]}) is a"
                    f" self-loop ({len(loops)} in all); rulec graphs have none"
                )
        if array.dtype == np.uint64:  # ids are in range, so int64 holds them
            array = array.astype(np.int64)
        # Each edge as one int64 key min * n + max, sorted in place: the
        # canonical order without an argsort or a copy of the pairs.
        key = np.minimum(array[:, 0], array[:, 1]).astype(np.int64, copy=False)
        key *= max(n, 1)
        key += np.maximum(array[:, 0], array[:, 1])
        key.sort()
        dup = np.flatnonzero(key[1:] == key[:-1])
        if len(dup):
            raise _duplicate_error(array, n, int(key[dup[0]]))
        hi = (key % max(n, 1)).astype(np.int32)
        key //= max(n, 1)
        lo = key.astype(np.int32)
        del key
        return cls._from_parts(n, *_csr_from_sorted(n, lo, hi))

    @classmethod
    def from_csr(cls, row_ptr, nbr) -> Graph:
        """The graph of a simulator's own CSR adjacency: node u's neighbours are
        nbr[row_ptr[u]:row_ptr[u+1]], each undirected edge listed from both ends.

        Validated: row_ptr starts at 0, never decreases and ends at len(nbr);
        each row is strictly increasing (sorted, no duplicates), has no self-loop
        and only ids in range; and the adjacency is symmetric. The result's
        row_ptr and nbr then equal the caller's (the spec's half-edge order is
        exactly sorted CSR). Raises GraphError naming the first problem.
        """
        row_ptr = np.asarray(row_ptr)
        nbr = np.asarray(nbr)
        for name, array in (("row_ptr", row_ptr), ("nbr", nbr)):
            if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
                raise GraphError(f"{name} must be a 1-d integer array, got "
                                 f"{array.dtype} with shape {array.shape}")
        if len(row_ptr) == 0 or row_ptr[0] != 0 or row_ptr[-1] != len(nbr):
            raise GraphError("row_ptr must start at 0 and end at len(nbr) "
                             f"({len(nbr)}), got {row_ptr[:1].tolist()}..{row_ptr[-1:].tolist()}")
        counts = np.diff(row_ptr.astype(np.int64))
        if (counts < 0).any():
            node = int(np.argmax(counts < 0))
            raise GraphError(f"row_ptr decreases at node {node}")
        n = len(row_ptr) - 1
        _check_size(n, len(nbr) // 2)
        owner = np.repeat(np.arange(n, dtype=np.int32), counts)
        bad = np.flatnonzero((nbr < 0) | (nbr >= n) | (nbr == owner))
        if len(bad):
            h = int(bad[0])
            what = "is a self-loop" if nbr[h] == owner[h] else "is outside 0..N-1"
            raise GraphError(f"nbr[{h}] = {nbr[h]} (a neighbour of node {owner[h]}) {what}")
        neighbour = nbr.astype(np.int32)
        unsorted = np.flatnonzero((owner[1:] == owner[:-1]) & (neighbour[1:] <= neighbour[:-1]))
        if len(unsorted):
            h = int(unsorted[0]) + 1
            raise GraphError(f"node {owner[h]}'s neighbours are not strictly increasing at "
                             f"nbr[{h}] = {neighbour[h]} (sort each row, without duplicates)")
        # Symmetric exactly when the half-edges sorted by (neighbour, owner),
        # read reversed, are the half-edges in order: (owner, neighbour).
        order = _by_neighbour(neighbour)
        wrong = np.flatnonzero((neighbour[order] != owner) | (owner[order] != neighbour))
        if len(wrong):
            j = int(wrong[0])  # the lists agree before j: the smaller pair has no partner
            h = int(order[j])
            u, v = int(owner[j]), int(neighbour[j])
            if (int(neighbour[h]), int(owner[h])) < (u, v):
                u, v = int(owner[h]), int(neighbour[h])
            raise GraphError(f"the adjacency is not symmetric: {v} is a neighbour of {u} "
                             f"but {u} is not a neighbour of {v}")
        # owner and rev are not kept: like any graph, this one holds its CSR
        # and makes the rest when something reads it
        return cls._from_parts(n, row_ptr.astype(np.int64), neighbour)

    @classmethod
    def from_networkx(cls, graph) -> Graph:
        """From a networkx.Graph. Integer nodes 0..N-1 keep their ids; otherwise nodes
        are numbered in G.nodes order and `graph.labels` maps ids back to nodes."""
        if graph.is_directed():
            raise GraphError("rulec graphs are undirected; pass G.to_undirected()")
        if graph.is_multigraph():
            raise GraphError("multigraphs have duplicate edges; pass nx.Graph(G)")
        nodes = list(graph.nodes)
        n = len(nodes)
        if set(nodes) == set(range(n)):
            labels = None
            edges = np.array(list(graph.edges), dtype=np.int64).reshape(-1, 2)
        else:
            labels = nodes
            index = {node: i for i, node in enumerate(nodes)}
            edges = np.array([(index[u], index[v]) for u, v in graph.edges],
                             dtype=np.int64).reshape(-1, 2)
        result = cls.from_edges(n, edges)
        result.labels = labels
        return result

    @classmethod
    def from_scipy(cls, matrix) -> Graph:
        """From a square scipy.sparse adjacency matrix: an edge wherever A[i, j] or
        A[j, i] is non-zero. A non-zero diagonal entry is a self-loop and an error.
        A graph holds no values: the matrix's weights go into a state with
        `graph.half_edge_values(A)` (an edge slot, e.g. state.edge["w"][:] = ...)."""
        import scipy.sparse as sp

        coo = sp.coo_array(matrix)
        if coo.ndim != 2 or coo.shape[0] != coo.shape[1]:
            raise GraphError(f"the adjacency matrix must be square, got shape {coo.shape}")
        nonzero = coo.data != 0
        rows, cols = coo.row[nonzero].astype(np.int64), coo.col[nonzero].astype(np.int64)
        loops = np.flatnonzero(rows == cols)
        if len(loops):
            raise GraphError(
                f"A[{rows[loops[0]]}, {cols[loops[0]]}] is non-zero: a self-loop;"
                " clear the diagonal first (A.setdiag(0))"
            )
        n = coo.shape[0]
        key = np.unique(np.minimum(rows, cols) * max(n, 1) + np.maximum(rows, cols))
        edges = np.stack([key // max(n, 1), key % max(n, 1)], axis=1)
        return cls(n, edges)

    def half_edge_values(self, matrix) -> np.ndarray:
        """A matrix's entries in half-edge order, float32, for an edge slot:
        half-edge u->v gets A[u, v] (0 where only A[v, u] is set), so a
        weighted adjacency's weights survive Graph.from_scipy:

            graph = Graph.from_scipy(A)
            state.edge["w"][:] = graph.half_edge_values(A)
        """
        import scipy.sparse as sp

        csr = sp.csr_array(matrix)
        if csr.shape != (self.n_nodes, self.n_nodes):
            raise GraphError(f"the matrix has shape {csr.shape}; this graph needs "
                             f"({self.n_nodes}, {self.n_nodes})")
        values = csr[self.owner, self.nbr]
        return np.asarray(values, dtype=np.float32).ravel()

    def to_networkx(self):
        """This graph as a networkx.Graph on nodes 0..N-1."""
        import networkx as nx

        result = nx.Graph()
        result.add_nodes_from(range(self.n_nodes))
        result.add_edges_from(self.edges.tolist())
        return result

    def to_scipy(self):
        """The symmetric 0/1 adjacency matrix as a scipy.sparse CSR array."""
        import scipy.sparse as sp

        data = np.ones(self.n_half_edges, dtype=np.float32)
        return sp.csr_array((data, self.nbr, self.row_ptr), shape=(self.n_nodes,) * 2)
