"""Learning tasks: put inputs into a graph, read outputs, inject targets, score.

    from rulec import tasks
    result = tasks.evaluate(rulec.compile_file("examples/backprop.rule"),
                            tasks.TASKS["xor"], tasks.layered([2, 4, 1]), epochs=2000, seed=1)
    result.accuracy[-1], result.failure

A task is a table of input bits -> target bits. A topology is a graph whose
lowest ids are the inputs and highest ids the outputs. A protocol names the
node slots through which the harness talks to a rule (docs/learning.md):
one example presents the inputs, steps until every output is ready (or the
step budget runs out), reads the outputs, then, when training, writes the
targets, raises the train flag and steps until the rule says it is done.
Bad rules fail fast: a non-finite state, an output that never becomes ready
and an exhausted budget each end the evaluation with a reason.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .graph import Graph
from .graphs import GraphSpecError
from .runtime import NonFiniteError, Rule

# ------------------------------------------------------------------ tasks


@dataclass(frozen=True)
class Task:
    """A truth table: inputs[k] -> targets[k], bits as 0.0/1.0."""

    name: str
    inputs: np.ndarray  # (patterns, n_in)
    targets: np.ndarray  # (patterns, n_out)

    @property
    def n_inputs(self) -> int:
        return self.inputs.shape[1]

    @property
    def n_outputs(self) -> int:
        return self.targets.shape[1]

    @classmethod
    def from_table(cls, name: str, table: dict) -> Task:
        """From {input bits: output bits}, e.g. {(0, 1): (1,), ...}."""
        rows = sorted(table.items())
        inputs = np.array([list(k) for k, _ in rows], dtype=np.float32)
        targets = np.array([list(v) if isinstance(v, tuple | list) else [v] for _, v in rows],
                           dtype=np.float32)
        return cls(name, inputs, targets)

    @classmethod
    def from_function(cls, name: str, n_inputs: int, function: Callable) -> Task:
        """From a function of the input bits (a tuple of ints) to output bits."""
        table = {}
        for bits in itertools.product((0, 1), repeat=n_inputs):
            out = function(bits)
            table[bits] = tuple(out) if isinstance(out, tuple | list) else (out,)
        return cls.from_table(name, table)


def _bits(value: int, width: int) -> tuple[int, ...]:
    return tuple((value >> (width - 1 - i)) & 1 for i in range(width))


def _add2(bits):
    a, b = bits[0] * 2 + bits[1], bits[2] * 2 + bits[3]
    return _bits(a + b, 3)


def _sub2(bits):
    """a - b as (borrow, two result bits): borrow set when b > a, result mod 4."""
    a, b = bits[0] * 2 + bits[1], bits[2] * 2 + bits[3]
    return (int(b > a), *_bits((a - b) % 4, 2))


TASKS: dict[str, Task] = {
    "and": Task.from_function("and", 2, lambda b: b[0] & b[1]),
    "or": Task.from_function("or", 2, lambda b: b[0] | b[1]),
    "nand": Task.from_function("nand", 2, lambda b: 1 - (b[0] & b[1])),
    "xor": Task.from_function("xor", 2, lambda b: b[0] ^ b[1]),
    "add2": Task.from_function("add2", 4, _add2),
    "sub2": Task.from_function("sub2", 4, _sub2),
}

# ------------------------------------------------------------- topologies


@dataclass(frozen=True)
class Topology:
    """A graph with designated input and output nodes."""

    graph: Graph
    inputs: np.ndarray
    outputs: np.ndarray
    name: str = ""


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
    """A Waxman random graph (networkx) on n_inputs + n_hidden + n_outputs nodes,
    nodes numbered so that inputs are lowest and outputs highest; inputs link
    to no input and outputs to no output, and every node is connected."""
    import networkx as nx

    if n_hidden < 1:
        raise GraphSpecError(f"waxman:{n_hidden}: a Waxman topology needs at least one hidden "
                             "node (inputs connect only through hidden nodes); try waxman:6")
    n = n_inputs + n_hidden + n_outputs
    graph = nx.waxman_graph(n, alpha=alpha, beta=beta, seed=seed)
    edges = {(min(u, v), max(u, v)) for u, v in graph.edges()}
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
    return Topology(Graph.from_edges(n, sorted(edges)), inputs, outputs,
                    f"waxman:{n_inputs},{n_hidden},{n_outputs},{seed}")


def topology_from_spec(spec: str, task: Task) -> Topology:
    """`layered:2,4,1[,bias]` or `waxman:HIDDEN[,SEED]` (inputs and outputs from the task)."""
    kind, _, rest = spec.partition(":")
    parts = [p for p in rest.split(",") if p]
    if kind == "layered":
        bias = "bias" in parts
        sizes = [int(p) for p in parts if p != "bias"]
        if len(sizes) < 2 or sizes[0] != task.n_inputs or sizes[-1] != task.n_outputs:
            raise ValueError(f"{spec}: task {task.name!r} needs {task.n_inputs} inputs and "
                             f"{task.n_outputs} outputs (e.g. layered:{task.n_inputs},4,"
                             f"{task.n_outputs})")
        return layered(sizes, bias)
    if kind == "waxman":
        hidden = int(parts[0]) if parts else 6
        seed = int(parts[1]) if len(parts) > 1 else 0
        return waxman(task.n_inputs, task.n_outputs, hidden, seed)
    raise ValueError(f"unknown topology {spec!r}: use layered:A,B,C[,bias] or waxman:H[,SEED]")


# --------------------------------------------------------------- protocol


@dataclass(frozen=True)
class Protocol:
    """Which node slots and blocks carry the conversation with a rule."""

    input: str = "inp"  # written on input nodes
    input_flag: str | None = "is_in"  # 1 on input nodes, 0 elsewhere (set once)
    target: str = "target"  # written on output nodes when training
    train_flag: str | None = "train"  # set to 1 on every node when training
    output: str = "a"  # read on output nodes
    ready: str = "ready"  # outputs are read once it is > 0 on every output
    done: str | None = "dready"  # training ends once it is > 0 on every input
    reset_block: str | None = "reset"  # run before each example (if the rule has it)
    block: str = "update"
    threshold: float = 0.5  # an output bit is 1 above it

    ROLES = ("input", "input_flag", "target", "train_flag", "output", "ready", "done")

    def check(self, rule: Rule) -> None:
        """Every slot the protocol needs exists; names every missing one at once."""
        slots = set(rule.program.node_slots)
        missing = [(role, getattr(self, role)) for role in self.ROLES
                   if getattr(self, role) is not None and getattr(self, role) not in slots]
        if missing:
            listed = ", ".join(f"{name!r} ({role})" for role, name in missing)
            raise ValueError(
                f"rule {rule.name!r} lacks node slot{'s' if len(missing) > 1 else ''} "
                f"{listed}, which the protocol needs (its node slots: "
                f"{', '.join(sorted(slots))}); map a role to another slot with "
                "--map ROLE=SLOT (tasks.Protocol(ROLE=...) in Python), or ROLE= to drop an "
                "optional one (input_flag, train_flag, done)")


# ------------------------------------------------------------- evaluation


@dataclass
class Result:
    accuracy: list[float] = field(default_factory=list)  # per epoch, forward-only pass
    loss: list[float] = field(default_factory=list)  # mean squared error per epoch
    steps: int = 0
    failure: str | None = None
    outputs: np.ndarray | None = None  # the last evaluation's outputs per pattern
    seconds: float = 0.0

    @property
    def final_accuracy(self) -> float:
        return self.accuracy[-1] if self.accuracy else 0.0


class _Failed(Exception):
    pass


class _Episode:
    def __init__(self, rule: Rule, task: Task, topology: Topology, protocol: Protocol,
                 budget: int, params: dict | None) -> None:
        self.rule, self.task, self.top, self.p = rule, task, topology, protocol
        self.budget, self.params = budget, params
        self.steps = 0
        self.has_reset = protocol.reset_block in rule.blocks if protocol.reset_block else False

    def step_until(self, state, slot: str, nodes: np.ndarray) -> None:
        done, reached = self.rule.step_until(state, slot, nodes, self.budget, block=self.p.block,
                                             params=self.params, check_finite=True)
        self.steps += done
        if not reached:
            raise _Failed(f"budget of {self.budget} steps exhausted waiting for {slot!r}")

    def example(self, state, k: int, train: bool) -> np.ndarray:
        p, top = self.p, self.top
        inputs = state.node[p.input]
        inputs[top.inputs[: self.task.n_inputs]] = self.task.inputs[k]
        if len(top.inputs) > self.task.n_inputs:  # a bias input
            inputs[top.inputs[self.task.n_inputs:]] = 1.0
        if self.has_reset:
            self.rule.step(state, block=p.reset_block, params=self.params, check_finite=True)
        self.step_until(state, p.ready, top.outputs)
        outputs = state.node[p.output][top.outputs].copy()
        if train:
            state.node[p.target][top.outputs] = self.task.targets[k]
            if p.train_flag:
                state.node[p.train_flag][...] = 1.0
            if p.done:
                self.step_until(state, p.done, top.inputs)
            else:
                self.rule.step(state, block=p.block, params=self.params, check_finite=True)
                self.steps += 1
        return outputs


def evaluate(rule: Rule, task: Task, topology: Topology, protocol: Protocol | None = None,
             epochs: int = 100, seed: int = 0, budget: int = 100, params: dict | None = None,
             stop_at: float | None = 1.0, on_epoch: Callable | None = None) -> Result:
    """Train `rule` on `task` for up to `epochs` (patterns in a seeded shuffled
    order each epoch) and score it after each epoch with a forward-only pass.
    Stops early once accuracy reaches `stop_at`, and at the first failure."""
    protocol = protocol or Protocol()
    protocol.check(rule)
    if len(topology.outputs) != task.n_outputs or len(topology.inputs) < task.n_inputs:
        raise ValueError(f"topology {topology.name!r} has {len(topology.inputs)} inputs and "
                         f"{len(topology.outputs)} outputs; task {task.name!r} needs "
                         f"{task.n_inputs} and {task.n_outputs}")
    start = time.perf_counter()
    result = Result()
    episode = _Episode(rule, task, topology, protocol, budget, params)
    state = rule.state(topology.graph)
    if protocol.input_flag:
        state.node[protocol.input_flag][topology.inputs] = 1.0
    rng = np.random.default_rng(seed)
    try:
        rule.init(state, seed=seed, params=params)
        patterns = len(task.inputs)
        for epoch in range(epochs):
            for k in rng.permutation(patterns):
                episode.example(state, int(k), train=True)
            outputs = np.array([episode.example(state, k, train=False) for k in range(patterns)])
            if not np.isfinite(outputs).all():
                raise _Failed("outputs are not finite")
            predicted = outputs > protocol.threshold
            correct = (predicted == (task.targets > 0.5)).all(axis=1)
            result.accuracy.append(float(correct.mean()))
            result.loss.append(float(np.mean((outputs - task.targets) ** 2)))
            result.outputs = outputs
            if on_epoch:
                on_epoch(epoch, result)
            if stop_at is not None and result.accuracy[-1] >= stop_at:
                break
    except NonFiniteError as exc:
        result.failure = f"non-finite state: {exc}"
    except _Failed as exc:
        result.failure = str(exc)
    result.steps = episode.steps
    result.seconds = time.perf_counter() - start
    return result
