"""The NumPy reference interpreter: the definition every backend is tested against.

It executes the IR directly with the spec's semantics:

- floats are float32 arrays of length N (one per node), vectors float32
  arrays of length 2M (one per half-edge, CSR order); a filtered vector
  carries a boolean mask of the half-edges it selects;
- every read sees the state at block start; writes are collected in order
  (a later write to the same element wins) and land when the block ends;
- a shared slot's new value is the mean of the proposals of the ends that
  wrote it, and stays as it was where neither end did;
- reducers give 0 over an empty selection; `max`/`min` ignore NaN as
  fmaxf/fminf do (an all-NaN selection gives NaN);
- random draws come from rulec.rng, per node (float) or per half-edge (vector).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import ir, rng
from ..graph import Graph
from ..ops import OPS
from ..rng import block_key
from ..state import State
from .base import Backend

F32 = np.float32


@dataclass
class _Value:
    """An evaluated expression: its array and, for a filtered vector, its mask."""

    data: np.ndarray
    mask: np.ndarray | None = None


class _Writes:
    """Pending writes of one block, applied at its end."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.node: dict[str, np.ndarray] = {}
        self.edge: dict[str, np.ndarray] = {}
        self.proposal: dict[str, np.ndarray] = {}
        self.proposed: dict[str, np.ndarray] = {}

    def write(self, kind: str, name: str, values: np.ndarray, where: np.ndarray) -> None:
        if kind in ("node", "edge"):
            pending = self.node if kind == "node" else self.edge
            if name not in pending:  # copy the block-start value once per block
                start = self.state.node if kind == "node" else self.state.edge
                pending[name] = start[name].copy()
            np.copyto(pending[name], values, where=where)
        else:
            size = len(where)
            proposal = self.proposal.setdefault(name, np.zeros(size, dtype=F32))
            proposed = self.proposed.setdefault(name, np.zeros(size, dtype=bool))
            np.copyto(proposal, values, where=where)
            proposed |= where

    def apply(self, graph: Graph) -> None:
        for name, values in self.node.items():
            self.state.node[name][...] = values
        for name, values in self.edge.items():
            self.state.edge[name][...] = values
        halves = graph.edge_halves
        for name, proposal in self.proposal.items():
            flags = self.proposed[name][halves]  # (M, 2)
            values = np.where(flags, proposal[halves], F32(0))
            count = flags.sum(axis=1)
            total = (values[:, 0] + values[:, 1]).astype(F32)
            mean = total / np.maximum(count, 1).astype(F32)
            target = self.state.edge[name]
            np.copyto(target, mean, where=count > 0)


def _jittered(values: np.ndarray, ulps: int, rng: np.random.Generator) -> np.ndarray:
    """`values` with each finite element moved by up to `ulps` ulp at random."""
    steps = rng.integers(-ulps, ulps + 1, size=values.shape)
    moved = values.copy()
    finite = np.isfinite(values)
    towards = np.where(steps > 0, F32(np.inf), F32(-np.inf)).astype(F32)
    for _ in range(ulps):
        go = finite & (steps != 0)
        moved[go] = np.nextafter(moved[go], towards[go])
        steps = steps - np.sign(steps)
    return moved


def builtin_arrays(graph: Graph) -> dict[str, np.ndarray]:
    """The graph's built-in values as float32 arrays: degree (per node);
    parity, incoming, outgoing and nbr_degree (per half-edge)."""
    degree = graph.degree.astype(F32)
    parity = graph.parity
    return {
        "degree": degree,
        "parity": parity,
        "incoming": (parity < 0).astype(F32),
        "outgoing": (parity > 0).astype(F32),
        "nbr_degree": degree[graph.nbr],
    }


class Interpreter:
    """Runs a program's blocks on states of one graph."""

    def __init__(self, program: ir.Program, graph: Graph) -> None:
        self.program = program
        self.graph = graph
        g = graph
        self.n = g.n_nodes
        self.h = g.n_half_edges
        self.owner = g.owner.astype(np.intp)
        self.nbr = g.nbr.astype(np.intp)
        self.rev = g.rev.astype(np.intp)
        self.eid = g.eid.astype(np.intp)
        self.has_edges = g.degree > 0
        self.starts = g.row_ptr[:-1][self.has_edges].astype(np.intp)
        self.builtins = builtin_arrays(g)

    # ----------------------------------------------------------------- blocks

    def run(self, label: str, state: State, params: dict[str, float], steps: int = 1,
            advance_time: bool = True) -> None:
        block = self.program.block(label)
        assert block is not None, label
        key = block_key(label)
        with np.errstate(all="ignore"):
            for _ in range(steps):
                self._run_once(block, key, state, params)
                if advance_time:
                    state.time += 1

    def _run_once(self, block: ir.Block, key: int, state: State, params) -> None:
        self.state = state
        self.params = params
        self.key = key
        self.locals: dict[str, _Value] = {}
        writes = _Writes(state)
        self.statements(block.statements, np.ones(self.n, dtype=bool), writes)
        writes.apply(self.graph)

    def statements(self, statements, active: np.ndarray, writes: _Writes) -> None:
        for stmt in statements:
            if isinstance(stmt, ir.LetStmt):
                self.locals[stmt.name] = self.eval(stmt.value)
            elif isinstance(stmt, ir.Write):
                self.write(stmt, active, writes)
            else:
                remaining = active.copy()
                for condition, body in stmt.branches:
                    taken = remaining & (self.eval(condition).data > 0)
                    remaining &= ~taken
                    self.statements(body, taken, writes)
                self.statements(stmt.orelse, remaining, writes)

    def write(self, stmt: ir.Write, active: np.ndarray, writes: _Writes) -> None:
        value = self.eval(stmt.value)
        if stmt.kind == "node":
            writes.write("node", stmt.name, value.data, active)
            return
        data = value.data if stmt.value.type.is_vector else value.data[self.owner]
        where = active[self.owner]
        if stmt.predicate is not None:
            where = where & (self.eval(stmt.predicate).data > 0)
        if value.mask is not None:
            where = where & value.mask
        writes.write(stmt.kind, stmt.name, data, where)

    # ------------------------------------------------------------ expressions

    def eval(self, expr: ir.Expr) -> _Value:
        method = getattr(self, "eval_" + type(expr).__name__)
        return method(expr)

    def eval_Const(self, expr: ir.Const) -> _Value:
        return _Value(np.full(self.n, expr.value, dtype=F32))

    def eval_Slot(self, expr: ir.Slot) -> _Value:
        state = self.state
        if expr.kind == "node":
            return _Value(state.node[expr.name])
        if expr.kind == "edge":
            return _Value(state.edge[expr.name])
        if expr.kind == "shared":
            return _Value(state.edge[expr.name][self.eid])
        if expr.kind == "nbr":
            return _Value(state.node[expr.name][self.nbr])
        if expr.kind == "peer":
            return _Value(state.edge[expr.name][self.rev])
        return _Value(np.full(self.n, self.params[expr.name], dtype=F32))

    def eval_Builtin(self, expr: ir.Builtin) -> _Value:
        if expr.name == "nodes":
            return _Value(np.full(self.n, self.n, dtype=F32))
        if expr.name == "time":
            return _Value(np.full(self.n, self.state.time, dtype=F32))
        return _Value(self.builtins[expr.name])

    def eval_Local(self, expr: ir.Local) -> _Value:
        return self.locals[expr.name]

    def eval_Random(self, expr: ir.Random) -> _Value:
        size = self.h if expr.type.is_vector else self.n
        draw = rng.DRAW[expr.dist]
        return _Value(draw(size, self.state.seed, self.key, expr.ordinal, self.state.time))

    def eval_Apply(self, expr: ir.Apply) -> _Value:
        vector = expr.type.is_vector
        mask = None
        args = []
        for arg in expr.args:
            value = self.eval(arg)
            data = value.data
            if vector and not arg.type.is_vector:
                data = data[self.owner]
            if value.mask is not None:
                mask = value.mask
            args.append(data)
        op = OPS[expr.op]
        result = np.asarray(op.numpy(*args), dtype=F32)
        if self.jitter is not None and op.ulps:
            result = _jittered(result, op.ulps, self.jitter)
        return _Value(result, mask)

    jitter: np.random.Generator | None = None
    """When set (by rulec.fuzz's conditioning check), each result of an op
    that another backend may compute a few ulp differently (Op.ulps) is moved
    by a random amount within those ulps: a rule whose outcome swings on such
    a difference (sin of a huge exp) shows itself ill-conditioned there."""

    def eval_Restrict(self, expr: ir.Restrict) -> _Value:
        value = self.eval(expr.value)
        mask = self.eval(expr.predicate).data > 0
        return _Value(value.data, mask)

    def eval_Reduce(self, expr: ir.Reduce) -> _Value:
        value = self.eval(expr.arg)
        data, mask = value.data, value.mask
        op = expr.op
        if op == "count":
            positive = data > 0 if mask is None else mask & (data > 0)
            return _Value(self.segment(np.add, positive.astype(F32), 0))
        if op in ("sum", "mean"):
            # a sum starts at +0, as C's `acc = 0.0f`: a sum of -0s is +0
            total = self.segment(np.add, self.select(data, mask, 0), 0) + F32(0)
            if op == "sum":
                return _Value(total)
        # How many half-edges each node selects: its degree when nothing is filtered.
        if mask is None:
            count = self.builtins["degree"]
        else:
            count = self.segment(np.add, mask.astype(F32), 0)
        if op == "mean":
            return _Value(np.where(count > 0, total / np.maximum(count, F32(1)), F32(0)))
        ufunc = np.fmax if op == "max" else np.fmin
        extreme = self.segment(ufunc, self.select(data, mask, np.nan), np.nan)
        return _Value(np.where(count > 0, extreme, F32(0)).astype(F32))

    @staticmethod
    def select(data: np.ndarray, mask: np.ndarray | None, fill: float) -> np.ndarray:
        """`data` where the mask selects, `fill` elsewhere (no copy without a mask)."""
        return data if mask is None else np.where(mask, data, F32(fill))

    def segment(self, ufunc, data: np.ndarray, empty: float) -> np.ndarray:
        """ufunc reduced over each node's half-edges; `empty` for nodes without any."""
        out = np.full(self.n, empty, dtype=F32)
        if self.h:
            out[self.has_edges] = ufunc.reduceat(data.astype(F32), self.starts)
        return out


class ReferenceBackend(Backend):
    """The NumPy reference interpreter as a backend, one Interpreter per graph
    (the last used is kept)."""

    name = "numpy"

    def __init__(self, program, source: str | None = None) -> None:
        super().__init__(program, source)
        self._for: tuple = (None, None)

    def interpreter(self, graph) -> Interpreter:
        """The interpreter of this rule on `graph` (kept for the last graph used)."""
        if self._for[0] is not graph:
            self._for = (graph, Interpreter(self.program, graph))
        return self._for[1]

    def run(self, label, state, params, steps, threads=1, check_finite=False) -> int:
        interpreter = self.interpreter(state.graph)
        advance = label != "init"
        if not check_finite:
            interpreter.run(label, state, params, steps, advance_time=advance)
            return steps
        for step in range(1, steps + 1):
            interpreter.run(label, state, params, 1, advance_time=advance)
            if self.left_non_finite(state):
                return step
        return steps
