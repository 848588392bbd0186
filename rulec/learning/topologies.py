"""Topologies: a graph whose lowest ids are the inputs and highest ids the
outputs (layered nets with an optional bias node, Waxman random graphs),
and the specs that name them (`layered:2,4,1,bias`, `waxman:...`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..errors import RulecValueError
from ..graph import Graph
from ..graphs import GraphSpecError
from .tasks import Task


@dataclass(frozen=True)
class Topology:
    """A graph with designated input and output nodes. Its edges run from
    lower to higher ids (a layered net, a Waxman topology), so `reach` is
    the number of steps until every input can have reached an output (the
    longest of the shortest input-to-output paths, in edges) and `depth` the
    longest input-to-output path; None when some input reaches no output."""

    graph: Graph
    inputs: np.ndarray
    outputs: np.ndarray
    name: str = ""

    @property
    def reach(self) -> int | None:
        return _paths(self)[0]

    @property
    def depth(self) -> int | None:
        return _paths(self)[1]

    def unreached(self) -> list[int]:
        """The inputs with no path (lower to higher ids) to any output."""
        shortest = _distances(self)[0]
        return [int(i) for i in self.inputs if shortest[i] < 0]


def _distances(top: Topology) -> tuple[np.ndarray, np.ndarray]:
    """Per node, the shortest and the longest path (in edges, lower to higher
    ids) to an output; -1 where none."""
    g = top.graph
    n = g.n_nodes
    shortest = np.full(n, -1, dtype=np.int64)
    longest = np.full(n, -1, dtype=np.int64)
    shortest[top.outputs] = longest[top.outputs] = 0
    for node in range(n - 1, -1, -1):  # higher ids first: a node's successors are done
        nbrs = g.nbr[g.row_ptr[node]:g.row_ptr[node + 1]]
        ahead = nbrs[nbrs > node]
        ahead = ahead[shortest[ahead] >= 0]
        if len(ahead) and shortest[node] != 0:
            shortest[node] = 1 + int(shortest[ahead].min())
            longest[node] = 1 + int(longest[ahead].max())
    return shortest, longest


def _paths(top: Topology) -> tuple[int | None, int | None]:
    shortest, longest = _distances(top)
    if (shortest[top.inputs] < 0).any():
        return None, None
    return int(shortest[top.inputs].max()), int(longest[top.inputs].max())


def layered(sizes: list[int], bias: bool = False) -> Topology:
    """Fully connected consecutive layers; inputs are layer 0, outputs the last.
    With `bias`, node 0 is an extra input (always 1) linked to every non-input node."""
    offset = 1 if bias else 0
    starts = np.cumsum([0, *sizes]) + offset
    edges = []
    for layer in range(len(sizes) - 1):
        for u in range(starts[layer], starts[layer + 1]):
            for v in range(starts[layer + 1], starts[layer + 2]):
                edges.append((u, v))
    if bias:
        edges += [(0, v) for v in range(starts[1], starts[-1])]
    n = int(starts[-1])
    inputs = np.arange(0, starts[1]) if bias else np.arange(starts[0], starts[1])
    outputs = np.arange(starts[-2], starts[-1])
    return Topology(Graph.from_edges(n, edges), inputs, outputs,
                    "layered:" + ",".join(map(str, sizes)) + (",bias" if bias else ""))


def waxman(n_inputs: int, n_outputs: int, n_hidden: int, seed: int = 0,
           alpha: float = 0.6, beta: float = 0.4) -> Topology:
    """A Waxman random graph (rulec.graphs.waxman_pairs) on n_inputs +
    n_hidden + n_outputs nodes, numbered so that inputs are lowest and
    outputs highest; inputs link to no input and outputs to no output, and
    every node is connected. Repaired so that every input has a path (lower
    to higher ids) to an output: an input without one gets an edge to a
    hidden node that has one. Its `reach` and `depth` say how many steps a
    signal needs (docs/learning.md)."""
    from ..graphs import waxman_pairs

    if n_hidden < 1:
        raise GraphSpecError(f"waxman:{n_hidden}: a Waxman topology needs at least one hidden "
                             "node (inputs connect only through hidden nodes); try waxman:6")
    n = n_inputs + n_hidden + n_outputs
    us, vs = waxman_pairs(n, seed, alpha, beta)
    edges = {(int(u), int(v)) for u, v in zip(us, vs, strict=True)}
    rng = np.random.default_rng(seed)
    for node in range(n):  # keep every node reachable from the layers around it
        if not any(node in e for e in edges):
            other = int(rng.integers(0, n - 1))
            other += other >= node
            edges.add((min(node, other), max(node, other)))
    inputs = np.arange(n_inputs)
    outputs = np.arange(n - n_outputs, n)
    edges = {(u, v) for u, v in edges
             if not (u < n_inputs and v < n_inputs) and not (u >= n - n_outputs)}
    for i in inputs:  # every input feeds the hidden layer, every output is fed
        edges.add((int(i), int(n_inputs + rng.integers(0, max(n_hidden, 1)))))
    for o in outputs:
        edges.add((int(n_inputs + rng.integers(0, max(n_hidden, 1))), int(o)))
    name = f"waxman:{n_inputs},{n_hidden},{n_outputs},{seed}"
    top = Topology(Graph.from_edges(n, sorted(edges)), inputs, outputs, name)
    unreached = top.unreached()
    if unreached:  # an input whose hidden nodes lead nowhere: link it to one that leads on
        shortest = _distances(top)[0]
        leading = [h for h in range(n_inputs, n - n_outputs) if shortest[h] > 0]
        for i in unreached:
            edges.add((i, int(leading[int(rng.integers(0, len(leading)))])))
        top = Topology(Graph.from_edges(n, sorted(edges)), inputs, outputs, name)
    return top


#: The largest learning topology a spec may ask for: the protocol steps it
#: seeds x epochs x examples times, so a larger one would not finish anyway.
TOPOLOGY_MAX_NODES = 100_000
TOPOLOGY_MAX_EDGES = 1_000_000
#: Waxman topologies draw every pair of nodes (networkx): quadratic.
WAXMAN_MAX_HIDDEN = 2_000


def _spec_error(spec: str, message: str) -> GraphSpecError:
    return GraphSpecError(f"bad topology {spec!r}: {message}")


def _spec_int(part: str, spec: str, what: str, low: int, high: int) -> int:
    if not re.fullmatch(r"[0-9]+", part):
        raise _spec_error(spec, f"{what} must be a whole number, got {part!r}")
    value = int(part)
    if not low <= value <= high:
        raise _spec_error(spec, f"{what} must be in [{low}, {high:,}], got {value}")
    return value


def topology_from_spec(spec: str, task: Task) -> Topology:
    """`layered:2,4,1[,bias]` or `waxman:HIDDEN[,SEED]` (inputs and outputs
    from the task). Read strictly: every part is a whole number in range (a
    trailing `bias` aside), and nothing follows the last one."""
    if not isinstance(spec, str):
        raise _spec_error(str(spec), "expected text such as layered:2,4,1")
    kind, colon, rest = spec.partition(":")
    parts = rest.split(",") if rest else []
    if kind == "layered" and colon:
        bias = bool(parts) and parts[-1] == "bias"
        if bias:
            parts = parts[:-1]
        sizes = [_spec_int(p, spec, f"layer {i + 1}'s size", 1, TOPOLOGY_MAX_NODES)
                 for i, p in enumerate(parts)]
        if len(sizes) < 2 or sizes[0] != task.n_inputs or sizes[-1] != task.n_outputs:
            raise _spec_error(spec, f"task {task.name!r} needs {task.n_inputs} inputs and "
                              f"{task.n_outputs} outputs (e.g. layered:{task.n_inputs},4,"
                              f"{task.n_outputs})")
        edges = sum(a * b for a, b in zip(sizes, sizes[1:], strict=False))
        if bias:
            edges += sum(sizes[1:])
        if sum(sizes) + bias > TOPOLOGY_MAX_NODES or edges > TOPOLOGY_MAX_EDGES:
            raise _spec_error(spec, f"{sum(sizes) + bias:,} nodes and {edges:,} edges; a "
                              f"learning topology has at most {TOPOLOGY_MAX_NODES:,} nodes "
                              f"and {TOPOLOGY_MAX_EDGES:,} edges")
        return layered(sizes, bias)
    if kind == "waxman" and colon:
        if len(parts) not in (1, 2):
            raise _spec_error(spec, "expected waxman:HIDDEN[,SEED]")
        hidden = _spec_int(parts[0], spec, "HIDDEN", 0, WAXMAN_MAX_HIDDEN)  # 0: waxman() says why
        seed = _spec_int(parts[1], spec, "SEED", 0, 2**32 - 1) if len(parts) > 1 else 0
        return waxman(task.n_inputs, task.n_outputs, hidden, seed)
    raise GraphSpecError(f"unknown topology {spec!r}: use layered:A,B,C[,bias] or "
                         "waxman:HIDDEN[,SEED]")


def check_topology(task: Task, topology: Topology) -> None:
    if len(topology.outputs) != task.n_outputs or len(topology.inputs) < task.n_inputs:
        raise RulecValueError(f"topology {topology.name!r} has {len(topology.inputs)} inputs and "
                              f"{len(topology.outputs)} outputs; task {task.name!r} needs "
                              f"{task.n_inputs} and {task.n_outputs}")
