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


class Graph:
    """An undirected graph without self-loops or duplicate edges."""

    def __init__(self, n_nodes: int, edges: np.ndarray, labels: list | None = None) -> None:
        """Build from canonical edges: (M, 2) int, each row (min, max), rows sorted
        and unique. Use the from_* constructors; they validate and canonicalise."""
        n = int(n_nodes)
        m = len(edges)
        if n >= 2**31 or 2 * m >= 2**31:
            raise GraphError(f"{n} nodes and {2 * m} half-edges: rulec graphs hold node ids "
                             "and half-edge numbers as int32, so both must be below 2**31")
        lo = np.ascontiguousarray(edges[:, 0], dtype=np.int32)
        hi = np.ascontiguousarray(edges[:, 1], dtype=np.int32)
        # Half-edges without sorting all 2M of them: node u's row holds first
        # its smaller neighbours (edges with hi == u, whose lo ascend in a
        # stable order by hi, since edges are sorted by (lo, hi)), then its
        # larger ones (edges with lo == u, already in order).
        below = np.bincount(hi, minlength=n) if m else np.zeros(n, dtype=np.int64)
        above = np.bincount(lo, minlength=n) if m else np.zeros(n, dtype=np.int64)
        row_ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(below + above, out=row_ptr[1:])
        starts = row_ptr[:-1]
        ids = np.arange(m, dtype=np.int32)
        # u -> v (u = lo): after u's smaller neighbours, by rank among u's edges
        first_of_lo = np.zeros(n, dtype=np.int64)
        np.cumsum(above[:-1], out=first_of_lo[1:])
        forward = (starts[lo] + below[lo] + (ids - first_of_lo[lo])).astype(np.int32)
        # v -> u (v = hi): by rank among v's edges in order of lo
        by_hi = np.argsort(hi, kind="stable").astype(np.int32)
        first_of_hi = np.zeros(n, dtype=np.int64)
        np.cumsum(below[:-1], out=first_of_hi[1:])
        hi_sorted = hi[by_hi]
        backward = np.empty(m, dtype=np.int32)
        backward[by_hi] = starts[hi_sorted] + (ids - first_of_hi[hi_sorted])
        del by_hi, hi_sorted, first_of_lo, first_of_hi
        nbr = np.empty(2 * m, dtype=np.int32)
        nbr[forward], nbr[backward] = hi, lo
        owner = np.empty(2 * m, dtype=np.int32)
        owner[forward], owner[backward] = lo, hi
        rev = np.empty(2 * m, dtype=np.int32)
        rev[forward], rev[backward] = backward, forward
        eid = np.empty(2 * m, dtype=np.int32)
        eid[forward] = ids
        eid[backward] = ids

        self.n_nodes = n
        self.n_edges = m
        self.labels = labels
        self.edges = _readonly(np.ascontiguousarray(edges, dtype=np.int32))
        self.owner = _readonly(owner)
        self.nbr = _readonly(nbr)
        self.rev = _readonly(rev)
        self.eid = _readonly(eid)
        self.row_ptr = _readonly(row_ptr)
        # The two half-edges of each undirected edge: (min->max, max->min).
        self.edge_halves = _readonly(np.stack([forward, backward], axis=1))
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

    @functools.cached_property
    def parity(self) -> np.ndarray:
        """+1 for a half-edge whose neighbour has a larger id, else -1 (float32)."""
        return _readonly(np.where(self.nbr > self.owner, 1.0, -1.0).astype(np.float32))

    @functools.cached_property
    def fingerprint(self) -> str:
        """A short identity of the graph, stored with saved states."""
        crc = zlib.crc32(self.edges.tobytes())
        return f"{self.n_nodes}:{self.n_edges}:{crc:08x}"

    def __repr__(self) -> str:
        return f"Graph(n_nodes={self.n_nodes}, n_edges={self.n_edges})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Graph) and self.n_nodes == other.n_nodes
                and np.array_equal(self.edges, other.edges))

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
        array = array.astype(np.int64)
        if len(array):
            bad = np.flatnonzero((array < 0).any(axis=1) | (array >= n).any(axis=1))
            if len(bad):
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
        lo = array.min(axis=1) if len(array) else array[:, 0]
        hi = array.max(axis=1) if len(array) else array[:, 1]
        key = lo * max(n, 1) + hi
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        dup = np.flatnonzero(sorted_key[1:] == sorted_key[:-1])
        if len(dup):
            first, second = sorted(order[dup[0] : dup[0] + 2])
            raise GraphError(
                f"edges {first} and {second} are both {{{lo[first]}, {hi[first]}}};"
                " duplicate edges are not allowed"
            )
        canonical = np.stack([lo[order], hi[order]], axis=1)
        return cls(n, canonical)

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
        owner = np.repeat(np.arange(n, dtype=np.int64), counts)
        neighbour = nbr.astype(np.int64)
        bad = np.flatnonzero((neighbour < 0) | (neighbour >= n) | (neighbour == owner))
        if len(bad):
            h = int(bad[0])
            what = "is a self-loop" if neighbour[h] == owner[h] else "is outside 0..N-1"
            raise GraphError(f"nbr[{h}] = {neighbour[h]} (a neighbour of node {owner[h]}) {what}")
        same_row = owner[1:] == owner[:-1]
        unsorted = np.flatnonzero(same_row & (neighbour[1:] <= neighbour[:-1]))
        if len(unsorted):
            h = int(unsorted[0]) + 1
            raise GraphError(f"node {owner[h]}'s neighbours are not strictly increasing at "
                             f"nbr[{h}] = {neighbour[h]} (sort each row, without duplicates)")
        forward = owner * max(n, 1) + neighbour
        backward = np.sort(neighbour * max(n, 1) + owner)
        if not np.array_equal(forward, backward):
            missing = np.setdiff1d(forward, backward)
            u, v = divmod(int(missing[0]), max(n, 1)) if len(missing) else (0, 0)
            raise GraphError(f"the adjacency is not symmetric: {v} is a neighbour of {u} "
                             f"but {u} is not a neighbour of {v}")
        upper = neighbour > owner
        return cls(n, np.stack([owner[upper], neighbour[upper]], axis=1))

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
        A[j, i] is non-zero. A non-zero diagonal entry is a self-loop and an error."""
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
