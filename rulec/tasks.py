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
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .errors import RulecError
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

    def counterfactuals(self) -> list[Task]:
        """The same inputs with other targets: the complement of every bit,
        and the rows' targets moved one row on (left out when that changes
        nothing). A rule that learns from its targets answers them
        differently; one that ignores them cannot."""
        out = [Task(f"{self.name}~complement", self.inputs, 1.0 - self.targets)]
        shifted = np.roll(self.targets, 1, axis=0)
        if not np.array_equal(shifted, self.targets):
            out.append(Task(f"{self.name}~shifted", self.inputs, shifted))
        return out

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

#: The widest parityN and table: task (2^N patterns each).
TASK_MAX_INPUTS = 8


class TaskError(RulecError, KeyError):
    """A task name that names no task."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def task_named(name: str) -> Task:
    """A task by name: one of TASKS (and, or, nand, xor, add2, sub2);
    `parityN` (N-bit parity, N from 2 to 8: 1 when an odd number of inputs
    are on); or `table:BITS`, a truth table with one output: BITS holds the
    output for each input pattern in counting order (00, 01, 10, 11, ...),
    so `table:0110` is XOR and `table:0001` is AND."""
    if name in TASKS:
        return TASKS[name]
    found = re.fullmatch(r"parity([0-9]+)", name)
    if found:
        n = int(found[1])
        if not 2 <= n <= TASK_MAX_INPUTS:
            raise TaskError(f"parity{n}: parity takes 2 to {TASK_MAX_INPUTS} inputs")
        return Task.from_function(name, n, lambda bits: sum(bits) % 2)
    if name.startswith("table:"):
        bits = name[len("table:"):]
        n = len(bits).bit_length() - 1
        if not re.fullmatch(r"[01]+", bits) or len(bits) != 2 ** n or not \
                1 <= n <= TASK_MAX_INPUTS:
            raise TaskError(f"{name}: a table lists one output bit (0 or 1) for each of the "
                            f"2^N input patterns in counting order, N from 1 to "
                            f"{TASK_MAX_INPUTS}: e.g. table:0110 is XOR")
        rows = itertools.product((0, 1), repeat=n)
        return Task.from_table(name, {row: (int(bit),) for row, bit in zip(rows, bits,
                                                                           strict=True)})
    raise TaskError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}, parityN (N-bit "
                    f"parity, e.g. parity3) and table:BITS (a truth table, e.g. table:0110)")


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
    try:
        import networkx as nx
    except ImportError:
        raise GraphSpecError("waxman topologies are drawn with networkx: pip install networkx "
                             "(or rulec's extra: pip install '.[search]')") from None

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


# --------------------------------------------------------------- protocol


@dataclass(frozen=True)
class Phase:
    """One step of the conversation between a protocol and a rule, for one
    example. A protocol is a list of phases (its schedule): data that the
    Python reference and the C driver (rulec.backends.vm) both interpret.

    op 'write': set node slot `slot` on `nodes` to `value` ('input': the
        example's input bits on the input nodes, 1 on extra (bias) inputs;
        'target': its target bits on the output nodes; or a number)
    op 'run': step `block` `steps` times; with `until`, stop before a step
        once node slot `until` is > 0 on `nodes`, and fail if `steps` (the
        budget) run out first. `optional`: skip if the rule has no such block
    op 'read': the example's outputs are node slot `slot` on the output nodes
    when: 'always', 'train' (training examples only) or 'test' (scoring only)
    """

    op: str
    when: str = "always"
    slot: str | None = None
    nodes: str = "all"  # 'inputs' | 'outputs' | 'all'
    value: str | float = 0.0
    block: str = "update"
    steps: int = 1
    until: str | None = None
    optional: bool = False

    def __post_init__(self) -> None:
        if self.op not in ("write", "run", "read") or self.when not in ("always", "train",
                                                                        "test"):
            raise ValueError(f"a phase's op is write, run or read and its when always, train "
                             f"or test; got {self.op!r}, {self.when!r}")
        if self.until is not None and self.nodes not in ("inputs", "outputs"):
            raise ValueError("a run phase waits on the input or the output nodes "
                             f"(nodes='inputs' or 'outputs'), not {self.nodes!r}")


class _Schedule:
    """What every protocol shares: checking a rule's slots, the setup."""

    input_flag: str | None = None
    threshold: float = 0.5

    def schedule(self, budget: int) -> list[Phase]:
        raise NotImplementedError

    def roles(self) -> list[tuple[str, str]]:
        """(role, slot) of every slot the protocol reads or writes."""
        return [(role, getattr(self, role)) for role in self.ROLES
                if getattr(self, role, None) is not None]

    def check(self, rule: Rule) -> None:
        """Every slot the protocol needs exists; names every missing one at once."""
        slots = set(rule.program.node_slots)
        missing = [(role, name) for role, name in self.roles() if name not in slots]
        if missing:
            listed = ", ".join(f"{name!r} ({role})" for role, name in missing)
            raise ValueError(
                f"rule {rule.name!r} lacks node slot{'s' if len(missing) > 1 else ''} "
                f"{listed}, which the protocol needs (its node slots: "
                f"{', '.join(sorted(slots))}); map a role to another slot with "
                "--map ROLE=SLOT (tasks.Protocol(ROLE=...) in Python), or ROLE= to drop an "
                "optional one (input_flag, train_flag, done)"
                + ("; or use a protocol without ready flags (--protocol fixed, "
                   "tasks.FixedTime)" if {"ready", "done"} & {r for r, _ in missing} else ""))


@dataclass(frozen=True)
class Protocol(_Schedule):
    """The handshake protocol (backprop.rule's): present the inputs, step until
    every output is `ready`, read the outputs; to train, present the targets,
    raise the train flag and step until every input is `done`."""

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

    def schedule(self, budget: int) -> list[Phase]:
        phases = [Phase("write", slot=self.input, nodes="inputs", value="input")]
        if self.reset_block:
            phases.append(Phase("run", block=self.reset_block, optional=True))
        phases += [Phase("run", block=self.block, nodes="outputs", until=self.ready,
                         steps=budget),
                   Phase("read", slot=self.output),
                   Phase("write", "train", slot=self.target, nodes="outputs", value="target")]
        if self.train_flag:
            phases.append(Phase("write", "train", slot=self.train_flag, value=1.0))
        if self.done:
            phases.append(Phase("run", "train", block=self.block, nodes="inputs",
                                until=self.done, steps=budget))
        else:
            phases.append(Phase("run", "train", block=self.block))
        return phases


@dataclass(frozen=True)
class _Flagless(_Schedule):
    """The slots of the protocols that need no flags from the rule."""

    input: str = "inp"
    target: str = "target"
    train_flag: str | None = "train"
    output: str = "a"
    input_flag: str | None = None
    block: str = "update"
    threshold: float = 0.5

    ROLES = ("input", "input_flag", "target", "train_flag", "output")


@dataclass(frozen=True)
class FixedTime(_Flagless):
    """No flags to wait for, so any rule can satisfy it: clear the target and
    the train flag, present the inputs, run `forward` steps, read the outputs;
    to train, present the targets with the train flag up for `learn` steps."""

    forward: int = 10
    learn: int = 10

    def schedule(self, budget: int) -> list[Phase]:
        phases = [Phase("write", slot=self.target, nodes="outputs", value=0.0)]
        if self.train_flag:
            phases.append(Phase("write", slot=self.train_flag, value=0.0))
        phases += [Phase("write", slot=self.input, nodes="inputs", value="input"),
                   Phase("run", block=self.block, steps=self.forward),
                   Phase("read", slot=self.output),
                   Phase("write", "train", slot=self.target, nodes="outputs", value="target")]
        if self.train_flag:
            phases.append(Phase("write", "train", slot=self.train_flag, value=1.0))
        phases.append(Phase("run", "train", block=self.block, steps=self.learn))
        return phases


@dataclass(frozen=True)
class Simultaneous(_Flagless):
    """Inputs and targets presented together (targets only when training, the
    train flag up then), `steps` steps, then the outputs are read."""

    steps: int = 10

    def schedule(self, budget: int) -> list[Phase]:
        phases = [Phase("write", slot=self.input, nodes="inputs", value="input"),
                  Phase("write", "train", slot=self.target, nodes="outputs", value="target"),
                  Phase("write", "test", slot=self.target, nodes="outputs", value=0.0)]
        if self.train_flag:
            phases += [Phase("write", "train", slot=self.train_flag, value=1.0),
                       Phase("write", "test", slot=self.train_flag, value=0.0)]
        phases += [Phase("run", block=self.block, steps=self.steps),
                   Phase("read", slot=self.output)]
        return phases


#: Protocols by name, for the CLI (`rulec train --protocol NAME`).
PROTOCOLS = {"handshake": Protocol, "fixed": FixedTime, "simultaneous": Simultaneous}


# ------------------------------------------------------------- evaluation


@dataclass
class Result:
    accuracy: list[float] = field(default_factory=list)  # per epoch, forward-only pass
    loss: list[float] = field(default_factory=list)  # mean squared error per epoch
    steps: int = 0
    failure: str | None = None
    outputs: np.ndarray | None = None  # the last evaluation's outputs per pattern
    seconds: float = 0.0
    confirm: list[float] = field(default_factory=list)  # accuracy of each untrained pass
    goal_epoch: int | None = None  # with retain: the epochs it took to reach the goal
    retained: list[float] = field(default_factory=list)  # with retain: accuracy after the goal

    @property
    def final_accuracy(self) -> float:
        return self.accuracy[-1] if self.accuracy else 0.0


class _Failed(Exception):
    pass


class _Episode:
    """The Python reference interpreter of a protocol's schedule."""

    def __init__(self, rule: Rule, task: Task, topology: Topology, protocol,
                 budget: int, params: dict | None) -> None:
        self.rule, self.task, self.top = rule, task, topology
        self.params = params
        self.phases = protocol.schedule(budget)
        self.steps = 0

    def nodes(self, which: str):
        return {"inputs": self.top.inputs, "outputs": self.top.outputs,
                "all": np.arange(self.top.graph.n_nodes)}[which]

    def example(self, state, k: int, train: bool) -> np.ndarray:
        outputs = None
        for phase in self.phases:
            if (phase.when == "train" and not train) or (phase.when == "test" and train):
                continue
            if phase.op == "write":
                values = state.node[phase.slot]
                if phase.value == "input":
                    n_in = self.task.n_inputs
                    values[self.top.inputs[:n_in]] = self.task.inputs[k]
                    values[self.top.inputs[n_in:]] = 1.0  # bias inputs
                elif phase.value == "target":
                    values[self.top.outputs] = self.task.targets[k]
                else:
                    values[self.nodes(phase.nodes)] = phase.value
            elif phase.op == "read":
                outputs = state.node[phase.slot][self.top.outputs].copy()
            else:
                self.run(state, phase)
        return outputs

    def run(self, state, phase: Phase) -> None:
        if phase.optional and phase.block not in self.rule.blocks:
            return
        try:
            if phase.until is None:
                self.rule.step(state, steps=phase.steps, block=phase.block, params=self.params,
                               check_finite=True)
                self.steps += phase.steps
                return
            done, reached = self.rule.step_until(state, phase.until, self.nodes(phase.nodes),
                                                 phase.steps, block=phase.block,
                                                 params=self.params, check_finite=True)
        except NonFiniteError as exc:
            self.steps += exc.step  # the steps of this phase, the failing one included
            raise
        self.steps += done
        if not reached:
            raise _Failed(f"budget of {phase.steps} steps exhausted waiting for "
                          f"{phase.until!r}")


def check_topology(task: Task, topology: Topology) -> None:
    if len(topology.outputs) != task.n_outputs or len(topology.inputs) < task.n_inputs:
        raise ValueError(f"topology {topology.name!r} has {len(topology.inputs)} inputs and "
                         f"{len(topology.outputs)} outputs; task {task.name!r} needs "
                         f"{task.n_inputs} and {task.n_outputs}")


def orders(task: Task, epochs: int, seed: int) -> np.ndarray:
    """The training order of the patterns in each epoch (epochs x patterns), as
    numpy's default_rng(seed) draws it: the C driver gets it as data."""
    rng = np.random.default_rng(seed)
    patterns = len(task.inputs)
    return np.array([rng.permutation(patterns) for _ in range(epochs)],
                    dtype=np.int32).reshape(epochs, patterns)


def score_orders(task: Task, epochs: int, seed: int) -> np.ndarray:
    """The order the patterns are scored in after each epoch (epochs x
    patterns), from a stream of its own: shuffled, so that a rule cannot
    score by the clock or by replaying the training order."""
    rng = np.random.default_rng([seed, 1])
    patterns = len(task.inputs)
    return np.array([rng.permutation(patterns) for _ in range(epochs)],
                    dtype=np.int32).reshape(epochs, patterns)


def score(task: Task, outputs: np.ndarray, threshold: float) -> tuple[float, float]:
    """(accuracy, mean squared error) of one forward pass over every pattern."""
    predicted = outputs > threshold
    correct = (predicted == (task.targets > 0.5)).all(axis=1)
    error = outputs.astype(np.float64) - task.targets  # finite outputs: no overflow
    return float(correct.mean()), float(np.mean(error * error))


def evaluate(rule: Rule, task: Task, topology: Topology, protocol=None,
             epochs: int = 100, seed: int = 0, budget: int = 100, params: dict | None = None,
             stop_at: float | None = 1.0, on_epoch: Callable | None = None,
             engine: str = "auto", hold: int = 1, confirm: int = 0,
             retain: int = 0) -> Result:
    """Train `rule` on `task` for up to `epochs` (patterns in a seeded shuffled
    order each epoch) and score it after each epoch with a forward-only pass.
    Stops early once accuracy has been at least `stop_at` for `hold` epochs
    in a row (a rule with random outputs is right by luck in some epoch;
    `hold` > 1 asks it to stay right), and at the first failure.

    `retain` > 0: once the goal is reached after E epochs, training goes on
    for max(E, retain) more epochs without stopping (the epoch orders go on
    as in one run); their accuracies are `result.retained` and E is
    `result.goal_epoch`. A rule that learned keeps what it learned; one that
    oscillates (right for some epochs, then wrong) does not.

    `confirm` > 0: after training, that many more scoring passes with no
    training between them (`result.confirm`, their accuracies): a rule that
    learned keeps its answers; one whose outputs drift (chaotic or
    clock-driven dynamics that were right by luck) does not.

    engine 'python' runs the protocol's schedule here, one foreign call per
    phase (the reference); 'c' runs whole epochs in one call of the C driver
    (rulec.backends.vm; the VM and the C backend); 'auto' takes 'c' for
    those backends. Both give the same accuracies, steps and failures."""
    protocol = protocol or Protocol()
    protocol.check(rule)
    check_topology(task, topology)
    for what, value, low in (("hold", hold, 1), ("retain", retain, 0), ("confirm", confirm, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{what} must be a whole number >= {low}, got {value!r}")
    if engine not in ("auto", "python", "c"):
        raise ValueError(f"engine must be 'auto', 'python' or 'c', got {engine!r}")
    start = time.perf_counter()
    state = rule.state(topology.graph)
    if protocol.input_flag:
        state.node[protocol.input_flag][topology.inputs] = 1.0
    rule.init(state, seed=seed, params=params)
    in_c = engine == "c" or (engine == "auto" and rule.backend in ("vm", "c"))
    episode = _Episode(rule, task, topology, protocol, budget, params)

    def train(first: int, count: int, stop: float | None, callback) -> Result:
        if in_c:
            from .backends.vm.driver import run_epochs

            return run_epochs(rule, state, task, topology, protocol, count, seed, budget,
                              params, stop, callback, hold, first_epoch=first)
        return _python_epochs(episode, state, task, protocol, seed, first, count, stop,
                              callback, hold)

    result = train(0, epochs, stop_at, on_epoch)
    if retain and result.failure is None and _reached(result.accuracy, stop_at, hold):
        goal = len(result.accuracy)
        after = train(goal, max(goal, retain), None, None)
        result.goal_epoch, result.retained = goal, after.accuracy
        result.steps += after.steps
        result.failure = after.failure
        if after.outputs is not None:
            result.outputs = after.outputs
    if confirm and result.failure is None:
        steps = episode.steps
        _confirm(episode, state, task, protocol, seed, confirm, result)
        result.steps += episode.steps - steps
    result.seconds = time.perf_counter() - start
    return result


def _reached(accuracy: list[float], stop_at: float | None, hold: int) -> bool:
    """Whether the last `hold` epochs are all at `stop_at` (the goal)."""
    return stop_at is not None and len(accuracy) >= hold and min(accuracy[-hold:]) >= stop_at


def _python_epochs(episode: _Episode, state, task: Task, protocol, seed: int, first: int,
                   count: int, stop_at: float | None, on_epoch, hold: int) -> Result:
    """Epochs first .. first+count-1 of an evaluation, by the reference."""
    result = Result()
    steps = episode.steps
    try:
        training = orders(task, first + count, seed)[first:]
        scoring = score_orders(task, first + count, seed)[first:]
        for epoch, order in enumerate(training):
            for k in order:
                episode.example(state, int(k), train=True)
            outputs = np.zeros((len(task.inputs), task.n_outputs), dtype=np.float32)
            for k in scoring[epoch]:
                outputs[k] = episode.example(state, int(k), train=False)
            if not np.isfinite(outputs).all():
                raise _Failed("outputs are not finite")
            accuracy, loss = score(task, outputs, protocol.threshold)
            result.accuracy.append(accuracy)
            result.loss.append(loss)
            result.outputs = outputs
            if on_epoch:
                on_epoch(first + epoch, result)
            if _reached(result.accuracy, stop_at, hold):
                break
    except NonFiniteError as exc:
        result.failure = f"non-finite state: {exc}"
    except _Failed as exc:
        result.failure = str(exc)
    result.steps = episode.steps - steps
    return result


def _confirm(episode: _Episode, state, task: Task, protocol, seed: int, passes: int,
             result: Result) -> None:
    """`passes` scoring passes with no training, in shuffled orders of their own."""
    rng = np.random.default_rng([seed, 2])
    try:
        for _ in range(passes):
            outputs = np.zeros((len(task.inputs), task.n_outputs), dtype=np.float32)
            for k in rng.permutation(len(task.inputs)):
                outputs[k] = episode.example(state, int(k), train=False)
            if not np.isfinite(outputs).all():
                raise _Failed("outputs are not finite")
            result.confirm.append(score(task, outputs, protocol.threshold)[0])
    except NonFiniteError as exc:
        result.failure = f"non-finite state: {exc}"
    except _Failed as exc:
        result.failure = str(exc)
