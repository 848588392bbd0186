"""Graph generators and the `--graph SPEC` mini-language of the CLI.

    ring:N            cycle 0-1-...-(N-1)-0 (N >= 3)
    grid:WxH          4-neighbour lattice, node id = y * W + x
    moore:WxH         8-neighbour lattice (a cellular automaton's neighbourhood)
    layered:A,B,C     consecutive layers fully connected, ids in layer order
    er:N,P[,SEED]     Erdos-Renyi G(N, P)
    waxman:N[,SEED]   Waxman random geometric graph (alpha 0.1, beta 0.4, as networkx)
    complete:N        every pair connected
    file:PATH         edge list, one `u v` per line, `#` comments

All generators are vectorized NumPy.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .errors import RulecError
from .graph import Graph, GraphError
from .graph_specs import SPECS  # noqa: E402  (the names, shared with the CLI's help)


class GraphSpecError(RulecError, ValueError):
    """A --graph SPEC that cannot be read."""


def ring(n: int) -> Graph:
    if n < 3:
        raise GraphError(f"a ring needs at least 3 nodes, got {n}")
    ids = np.arange(n)
    return Graph.from_edges(n, np.stack([ids, (ids + 1) % n], axis=1))


def _lattice(width: int, height: int, moore: bool) -> Graph:
    if width < 1 or height < 1:
        raise GraphError(f"a grid needs positive sizes, got {width}x{height}")
    ids = np.arange(width * height).reshape(height, width)
    pairs = [np.stack([ids[:, :-1].ravel(), ids[:, 1:].ravel()], axis=1),
             np.stack([ids[:-1, :].ravel(), ids[1:, :].ravel()], axis=1)]
    if moore:
        pairs.append(np.stack([ids[:-1, :-1].ravel(), ids[1:, 1:].ravel()], axis=1))
        pairs.append(np.stack([ids[:-1, 1:].ravel(), ids[1:, :-1].ravel()], axis=1))
    return Graph.from_edges(width * height, np.concatenate(pairs))


def grid(width: int, height: int) -> Graph:
    return _lattice(width, height, moore=False)


def moore(width: int, height: int) -> Graph:
    return _lattice(width, height, moore=True)


def layered(sizes: list[int]) -> Graph:
    if not sizes or any(s < 1 for s in sizes):
        raise GraphError(f"layer sizes must be positive, got {sizes}")
    starts = np.concatenate([[0], np.cumsum(sizes)])
    pairs = []
    for a, b in zip(range(len(sizes) - 1), range(1, len(sizes)), strict=True):
        left = np.arange(starts[a], starts[a + 1])
        right = np.arange(starts[b], starts[b + 1])
        u, v = np.meshgrid(left, right, indexing="ij")
        pairs.append(np.stack([u.ravel(), v.ravel()], axis=1))
    edges = np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=np.int64)
    return Graph.from_edges(int(starts[-1]), edges)


def complete(n: int) -> Graph:
    u, v = np.triu_indices(n, k=1)
    return Graph.from_edges(n, np.stack([u, v], axis=1))


def _pair_from_index(index: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of the upper-triangle pairs (i < j) numbered row by row."""

    def row_start(i):
        return i * (2 * n - i - 1) // 2

    b = 2 * n - 1
    i = np.floor((b - np.sqrt(b * b - 8.0 * index)) / 2).astype(np.int64)
    i -= row_start(i) > index  # the float estimate may be one row off either way
    i += row_start(i + 1) <= index
    return i, index - row_start(i) + i + 1


def erdos_renyi(n: int, p: float, seed: int = 0) -> Graph:
    """G(n, p): the edge count is Binomial(n(n-1)/2, p), the edges a uniform sample."""
    if not 0 <= p <= 1:
        raise GraphError(f"edge probability must be in [0, 1], got {p}")
    rng = np.random.default_rng(seed)
    pairs = n * (n - 1) // 2
    m = int(rng.binomial(pairs, p)) if pairs else 0
    index = np.sort(rng.choice(pairs, size=m, replace=False)) if m else np.zeros(0, np.int64)
    u, v = _pair_from_index(index.astype(np.int64), n)
    return Graph.from_edges(n, np.stack([u, v], axis=1))


def waxman_pairs(n: int, seed: int = 0, alpha: float = 0.1,
                 beta: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    """The node pairs (u < v) of a Waxman graph: nodes uniform in the unit
    square, pair (u, v) with probability beta * exp(-d(u, v) / (alpha * L)),
    L the largest distance between nodes."""
    rng = np.random.default_rng(seed)
    points = rng.random((n, 2))
    u, v = np.triu_indices(n, k=1)
    distance = np.hypot(*(points[u] - points[v]).T)
    longest = distance.max() if len(distance) else 1.0
    keep = rng.random(len(distance)) < beta * np.exp(-distance / (alpha * longest))
    return u[keep], v[keep]


def waxman(n: int, seed: int = 0, alpha: float = 0.1, beta: float = 0.4) -> Graph:
    """Waxman graph (waxman_pairs) on n nodes."""
    u, v = waxman_pairs(n, seed, alpha, beta)
    return Graph.from_edges(n, np.stack([u, v], axis=1))


def read_edge_list(path: str | Path) -> Graph:
    """An edge-list file: one `u v` per line, `#` comments; N is the largest id + 1
    (or set with a `# nodes: N` line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GraphSpecError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GraphSpecError(f"{path}: cannot read edge list ({exc})") from None
    n_nodes = None
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        code, _, comment = line.partition("#")
        if comment.strip().lower().startswith("nodes:"):
            try:
                n_nodes = int(comment.split(":", 1)[1])
            except ValueError:
                raise GraphSpecError(f"{path}:{number}: bad '# nodes: N' line") from None
        fields = code.split()
        if not fields:
            continue
        if len(fields) != 2 or not all(f.lstrip("-").isdigit() for f in fields):
            raise GraphSpecError(f"{path}:{number}: expected two node ids 'u v', got {line!r}")
        pairs.append((int(fields[0]), int(fields[1])))
    edges = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    if n_nodes is None:
        n_nodes = int(edges.max()) + 1 if len(edges) else 0
    try:
        return Graph.from_edges(n_nodes, edges)
    except GraphError as exc:
        raise GraphSpecError(f"{path}: {exc}") from None


def write_edge_list(graph: Graph, path: str | Path) -> None:
    lines = [f"# nodes: {graph.n_nodes}"] + [f"{u} {v}" for u, v in graph.edges.tolist()]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def power_law(n: int, mean_degree: float, seed: int = 0, exponent: float = 2.5) -> Graph:
    """A random graph whose degrees follow a power law (Chung-Lu): node i has
    weight (i + 1) ** (-1 / (exponent - 1)), and n * mean_degree / 2 edges
    draw both ends in proportion to the weights; self-loops and repeated
    edges are dropped, so the mean degree comes out somewhat below
    `mean_degree`. Node 0 is the largest hub. Built in O(edges) time."""
    if n < 2 or not 0 < mean_degree < n - 1:
        raise GraphError(f"a power-law graph needs N >= 2 and 0 < D < N - 1, got N={n}, "
                         f"D={mean_degree}")
    if exponent <= 2:
        raise GraphError(f"the exponent must be above 2 (a finite mean degree), got {exponent}")
    rng = np.random.default_rng(seed)
    weights = np.arange(1, n + 1, dtype=np.float64) ** (-1.0 / (exponent - 1.0))
    cumulative = np.cumsum(weights)
    m = int(round(n * mean_degree / 2))
    ends = np.searchsorted(cumulative, rng.random(2 * m) * cumulative[-1], side="right")
    pairs = np.minimum(ends, n - 1).reshape(m, 2)
    pairs.sort(axis=1)
    pairs = np.unique(pairs[pairs[:, 0] != pairs[:, 1]], axis=0)
    return Graph.from_edges(n, pairs)


def _ints(text: str, spec: str) -> list[int]:
    """Comma-separated whole numbers, read strictly (no spaces, `+` or `_`)."""
    parts = text.split(",")
    bad = [part for part in parts if not re.fullmatch(r"-?[0-9]+", part)]
    if bad:
        raise GraphSpecError(f"bad graph spec {spec!r}: expected integers, got {bad[0]!r}")
    return [int(part) for part in parts]


def _n_number_seed(kind: str, args: str, spec: str) -> tuple[int, float, int]:
    """N, a number and an optional SEED: `er:N,P[,SEED]`, `powerlaw:N,D[,SEED]`."""
    letter = "P" if kind == "er" else "D"
    parts = args.split(",")
    if len(parts) not in (2, 3):
        raise GraphSpecError(f"bad graph spec {spec!r}: expected {kind}:N,{letter}[,SEED]")
    n = _ints(parts[0], spec)[0]
    try:
        number = float(parts[1])
    except ValueError:
        raise GraphSpecError(f"bad graph spec {spec!r}: {letter} must be a number") from None
    seed = _ints(parts[2], spec)[0] if len(parts) == 3 else 0
    return n, number, seed


def from_spec(spec: str) -> Graph:
    """A graph from a spec such as `ring:100` or `layered:2,4,1` (see SPECS)."""
    kind, colon, args = spec.partition(":")
    if not colon or not args:
        raise GraphSpecError(f"bad graph spec {spec!r}; expected one of: {', '.join(SPECS)}")
    try:
        if kind == "file":
            return read_edge_list(args)
        if kind == "ring":
            (n,) = _ints(args, spec)
            return ring(n)
        if kind in ("grid", "moore"):
            width, x, height = args.partition("x")
            if not x:
                raise GraphSpecError(f"bad graph spec {spec!r}: expected {kind}:WxH")
            sizes = _ints(f"{width},{height}", spec)
            return grid(*sizes) if kind == "grid" else moore(*sizes)
        if kind == "layered":
            return layered(_ints(args, spec))
        if kind == "complete":
            (n,) = _ints(args, spec)
            return complete(n)
        if kind in ("er", "powerlaw"):
            n, number, seed = _n_number_seed(kind, args, spec)
            return erdos_renyi(n, number, seed) if kind == "er" else power_law(n, number, seed)
        if kind == "waxman":
            values = _ints(args, spec)
            if len(values) not in (1, 2):
                raise GraphSpecError(f"bad graph spec {spec!r}: expected waxman:N[,SEED]")
            return waxman(*values)
    except ValueError as exc:  # GraphError and wrong tuple sizes
        if isinstance(exc, GraphSpecError):
            raise
        raise GraphSpecError(f"bad graph spec {spec!r}: {exc}") from None
    raise GraphSpecError(f"unknown graph kind {kind!r} in {spec!r}; expected one of: "
                         f"{', '.join(SPECS)}")
