"""Lowering: one block of the typed IR to the node body of its C kernel.

A step of a block is a loop over nodes. For each node `u` the block becomes
a node body in the loop-nest IR (rulec.backends.c.loops): node-level `Let`s
for float values, a `Loop` over u's half-edges for each reduction and each
edge write, `If`s for branches, in the order the statements need them.

While lowering, common subexpressions are computed once (a structurally
equal expression in a scope, or in a loop, reuses its temporary), and every
float subexpression of a vector expression is lowered at node level, before
the loop that needs it (loop-invariant code is hoisted by construction).
Vector `let`s are inlined where they are used (draws are pure functions of
their element, so recomputing is exact).

    update { x = tanh(sum((w * nbr.x)[incoming])); w += lr * x * nbr.x }

lowers (before the loop passes; x is node slot 0, w edge slot 0) to

    loop h in half-edges(u) [+ a1: float = 0.0f]
        v2: float = edge_0[h]
        v3: float = node_0[nbr[h]]
        v4: float = (v2 * v3)
        m5: int = (nbr[h] < u32)
        a1 += rulec_keepf(m5, v4)
    s6: float = rulec_tanhf(a1)
    nx_0 := s6
    s7: float = node_0[u]
    s8: float = (param_0 * s7)
    loop h in half-edges(u)
        v9: float = edge_0[h]
        ...
        edge_0[h] = (v9 + v12)  (in place)

and the loop passes then fuse the loops, remove repeated and dead values,
and lay the body out over blocks of nodes (rulec.backends.c.passes).

How each written slot is stored is decided per block by `slot_modes`:
a node slot is written in place unless the block reads it across an edge
(`nbr.x`); a private edge slot is written in place unless the block reads
it through `peer.` or reads it after writing it; otherwise the write goes
to a second buffer and the two swap after each step. A shared slot
collects each end's proposal and a pass over edges averages them.
"""

from __future__ import annotations

import itertools
import math

from ... import ir
from ...ops import COMPARISONS, OPS
from ...rng import block_key
from .loops import (
    Accumulate,
    Accumulator,
    Call,
    Comment,
    Const,
    Draw,
    Expr,
    If,
    Let,
    Load,
    Loop,
    Name,
    Set,
    Store,
    Temp,
)

# ------------------------------------------------------------ slot modes


def _expr_reads(expr: ir.Expr, vector_locals: dict[str, set]) -> set[tuple[str, str]]:
    """(kind, name) of every slot `expr` reads, vector locals expanded."""
    found: set[tuple[str, str]] = set()

    def walk(e: ir.Expr) -> None:
        if isinstance(e, ir.Slot):
            found.add((e.kind, e.name))
        elif isinstance(e, ir.Local):
            found.update(vector_locals.get(e.name, ()))
        elif isinstance(e, ir.Apply):
            for arg in e.args:
                walk(arg)
        elif isinstance(e, ir.Reduce):
            walk(e.arg)
        elif isinstance(e, ir.Restrict):
            walk(e.value)
            walk(e.predicate)

    walk(expr)
    return found


def _flatten(statements, vector_locals) -> list[tuple[set, set]]:
    """(reads, writes) of each leaf statement in execution order; an if's
    conditions come before its bodies (they are evaluated first)."""
    out: list[tuple[set, set]] = []
    for stmt in statements:
        if isinstance(stmt, ir.LetStmt):
            reads = _expr_reads(stmt.value, vector_locals)
            if stmt.value.type.is_vector:
                vector_locals = {**vector_locals, stmt.name: reads}
                continue
            out.append((reads, set()))
        elif isinstance(stmt, ir.Write):
            reads = _expr_reads(stmt.value, vector_locals)
            if stmt.predicate is not None:
                reads |= _expr_reads(stmt.predicate, vector_locals)
            out.append((reads, {(stmt.kind, stmt.name)}))
        else:
            for condition, _ in stmt.branches:
                out.append((_expr_reads(condition, vector_locals), set()))
            for _, body in stmt.branches:
                out.extend(_flatten(body, vector_locals))
            out.extend(_flatten(stmt.orelse, vector_locals))
    return out


def slot_modes(block: ir.Block) -> dict[tuple[str, str], str]:
    """How each slot the block writes is stored: 'inplace', 'double' (a second
    buffer, swapped after each step) or 'proposal' (shared slots)."""
    leaves = _flatten(block.statements, {})
    all_reads = set().union(*(reads for reads, _ in leaves)) if leaves else set()
    modes: dict[tuple[str, str], str] = {}
    for index, (_, writes) in enumerate(leaves):
        for kind, name in writes:
            if (kind, name) in modes:
                continue
            if kind == "shared":
                modes[kind, name] = "proposal"
            elif kind == "node":
                modes[kind, name] = "double" if ("nbr", name) in all_reads else "inplace"
            else:
                later = set().union(*(reads for reads, _ in leaves[index + 1:]))
                crossed = ("peer", name) in all_reads or ("edge", name) in later
                modes[kind, name] = "double" if crossed else "inplace"
    return modes


# -------------------------------------------------------------- lowering


def c_comment(text: str) -> str:
    """`text` safe inside a C block comment, whatever the rule's comment held:
    no `*/` to end it, no `/*` for -Wcomment, no line break or other
    unprintable character (U+2028 too)."""
    text = "".join(c if c.isprintable() else "?" for c in text)
    while "/*" in text or "*/" in text:
        text = text.replace("/*", "/ *").replace("*/", "* /")
    return text


class _Scope:
    """A list of statements with the values computed in it (a node body, or a branch)."""

    def __init__(self, parent: _Scope | None) -> None:
        self.parent = parent
        self.items: list = []
        self.memo: dict[ir.Expr, Expr] = {}
        self.locals: dict[str, tuple[str, object]] = {}

    def find_memo(self, expr: ir.Expr) -> Expr | None:
        scope: _Scope | None = self
        while scope is not None:
            if expr in scope.memo:
                return scope.memo[expr]
            scope = scope.parent
        return None

    def local(self, name: str) -> tuple[str, object]:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.locals:
                return scope.locals[name]
            scope = scope.parent
        raise KeyError(name)  # the checker guarantees every local is defined


class CNames:
    """The C identifiers of a program's slots and params.

    Hygiene by construction: an identifier made for a slot or param holds its
    kind and index, never the user's name (`node_0`, `edge_1`, `shared_0`,
    `param_2`, `nx_0` for a node slot's next value). Every other generated
    identifier (`node_0_next`, `s3`, `a2_b`, ...) is built from these or from
    a counter, so no slot name, however it is spelt (`p_cur`, `q_next`, `int`,
    `expf`), can collide with one. Comments in the C name the slots.
    """

    def __init__(self, program: ir.Program) -> None:
        self._index = {
            **{("node", n): i for i, n in enumerate(program.node_slots)},
            **{("edge", n): i for i, n in enumerate(program.edge_slots)},
            **{("shared", n): i for i, n in enumerate(program.shared_slots)},
        }
        self._params = {name: i for i, (name, _) in enumerate(program.params)}

    def slot(self, kind: str, name: str) -> str:
        """The C name of a slot's array; `kind` may be an access (nbr, peer)."""
        array = {"nbr": "node", "peer": "edge"}.get(kind, kind)
        return f"{array}_{self._index[array, name]}"

    def next_value(self, name: str) -> str:
        """The per-node temporary holding a written node slot's new value."""
        return f"nx_{self._index['node', name]}"

    def param(self, name: str) -> str:
        return f"param_{self._params[name]}"


class BlockLowering:
    """Lowers one block: `body` is the node body (before the loop passes),
    `prologue`/`epilogue` load and store the node slots it writes."""

    def __init__(self, block: ir.Block, names: CNames,
                 source_lines: list[str] | None = None) -> None:
        self.block = block
        self.names = names
        self.key = block_key(block.label)
        self.modes = slot_modes(block)
        self.source_lines = source_lines or []
        self.counter = itertools.count(1)
        self.top = _Scope(None)
        self.loop_memo: dict[int, dict] = {}  # id(loop) -> vector expr -> (value, mask)
        # edge/shared slots whose buffer already holds this node's values
        self.initialized: set[str] = set()
        self.comment = ""
        self.next_values: dict[str, Temp] = {}
        self.prologue: list = []
        self.epilogue: list = []
        for (kind, name), mode in self.modes.items():
            if kind != "node":
                continue
            var = Temp(names.next_value(name), mutable=True)
            self.next_values[name] = var
            array = names.slot("node", name)
            self.prologue.append(Let(var, Load(array, "u", f"node:{name}")))
            target = f"{array}_next" if mode == "double" else array
            self.epilogue.append(Store(target, "u", var, f"node:{name}", inplace=True))
        self.statements(block.statements, self.top)
        self.body = self.top.items

    # ------------------------------------------------------------ helpers

    def fresh(self, prefix: str, ctype: str = "float") -> Temp:
        return Temp(f"{prefix}{next(self.counter)}", ctype)

    def let(self, scope: _Scope, temp: Temp, value: Expr) -> Temp:
        scope.items.append(Let(temp, value, self.comment))
        return temp

    def set_comment(self, stmt) -> None:
        line = stmt.span.line if stmt.span is not None else 0
        if line and line <= len(self.source_lines):
            self.comment = f"line {line}: {c_comment(self.source_lines[line - 1].strip())}"
        elif line:
            self.comment = f"line {line}"
        else:
            self.comment = ""

    def new_loop(self) -> Loop:
        loop = Loop()
        if self.comment:
            loop.body.append(Comment(self.comment))
        self.loop_memo[id(loop)] = {}
        return loop

    # --------------------------------------------------------- statements

    def statements(self, statements, scope: _Scope) -> None:
        for stmt in statements:
            self.set_comment(stmt)
            if isinstance(stmt, ir.LetStmt):
                if stmt.value.type.is_vector:
                    scope.locals[stmt.name] = ("vector", stmt.value)
                else:
                    scope.locals[stmt.name] = ("float", self.scalar(stmt.value, scope))
            elif isinstance(stmt, ir.Write):
                self.write(stmt, scope)
            else:
                self.if_stmt(stmt, scope)

    def if_stmt(self, stmt: ir.IfStmt, scope: _Scope) -> None:
        conditions = [self.scalar(condition, scope) for condition, _ in stmt.branches]
        branch = If()
        for condition, (_, body) in zip(conditions, stmt.branches, strict=True):
            child = _Scope(scope)
            self.statements(body, child)
            branch.branches.append((condition, child.items))
        if stmt.orelse:
            child = _Scope(scope)
            self.statements(stmt.orelse, child)
            branch.branches.append((None, child.items))
        self.set_comment(stmt)
        scope.items.append(branch)

    def write(self, stmt: ir.Write, scope: _Scope) -> None:
        slot = f"{stmt.kind}:{stmt.name}"
        if stmt.kind == "node":
            value = self.scalar(stmt.value, scope)
            scope.items.append(Set(self.next_values[stmt.name], value, slot, self.comment))
            return
        mode = self.modes[stmt.kind, stmt.name]
        nested = scope is not self.top
        if mode != "inplace" and slot not in self.initialized and nested:
            self.initialize(stmt.kind, stmt.name, mode)
        loop = self.new_loop()
        if stmt.value.type.is_vector:
            value, mask = self.vector(stmt.value, loop, scope)
        else:
            value, mask = self.scalar(stmt.value, scope), None
        masks = [mask] if mask else []
        if stmt.predicate is not None:
            masks.append(self.mask(stmt.predicate, loop, scope))
        select = None
        for part in masks:
            select = part if select is None else Call("mask_and", (select, part))
        array = self.names.slot(stmt.kind, stmt.name)
        first = slot not in self.initialized
        body = loop.body

        def blend(previous: Expr) -> Expr:
            return Call("blend", (select, value, previous))

        if mode == "inplace":
            target = Load(array, "h", slot)
            body.append(Store(array, "h", value if select is None else blend(target), slot,
                              inplace=True))
        elif mode == "double":
            previous = Load(array, "h", slot) if first else Load(f"{array}_next", "h", slot)
            body.append(Store(f"{array}_next", "h", value if select is None else blend(previous),
                              slot))
        else:
            proposal, proposed = f"{array}_proposal", f"{array}_proposed"
            if select is None:
                body += [Store(proposal, "h", value, slot),
                         Store(proposed, "h", Const(1, "int"), slot)]
            elif first:
                body += [Store(proposal, "h", value, slot),
                         Store(proposed, "h", Call("flag", (select,)), slot)]
            else:
                body += [Store(proposal, "h", blend(Load(proposal, "h", slot)), slot),
                         Store(proposed, "h", Call("flag", (select,)), slot, op="|=")]
        self.initialized.add(slot)
        scope.items.append(loop)

    def initialize(self, kind: str, name: str, mode: str) -> None:
        """Before the first write to a slot that sits inside an `if`, fill this
        node's part of the slot's buffer at node level, so that nodes which
        skip the branch keep their values."""
        array = self.names.slot(kind, name)
        slot = f"{kind}:{name}"
        loop = Loop([Comment(f"keep {kind} slot {name!r} where the branches below do not write")])
        if mode == "double":
            loop.body.append(Store(f"{array}_next", "h", Load(array, "h", slot), slot))
        else:
            loop.body.append(Store(f"{array}_proposed", "h", Const(0, "int"), slot))
        self.top.items.append(loop)
        self.initialized.add(slot)

    # -------------------------------------------------------- expressions

    def scalar(self, expr: ir.Expr, scope: _Scope) -> Expr:
        """The value of `expr` for node u: a Const, a Name or a node-level Temp."""
        if isinstance(expr, ir.Const):
            return Const(expr.value)
        if isinstance(expr, ir.Slot) and expr.kind == "param":
            return Name(self.names.param(expr.name))
        if isinstance(expr, ir.Builtin):
            return Name({"degree": "degree_u", "nodes": "nodes_f", "time": "time_f"}[expr.name])
        if isinstance(expr, ir.Local):
            kind, value = scope.local(expr.name)
            assert kind == "float", expr.name
            return value
        known = scope.find_memo(expr)
        if known is not None:
            return known
        if isinstance(expr, ir.Reduce):
            value = self.reduce(expr, scope)
        else:
            value = self.let(scope, self.fresh("s"), self.scalar_value(expr, scope))
        scope.memo[expr] = value
        return value

    def scalar_value(self, expr: ir.Expr, scope: _Scope) -> Expr:
        if isinstance(expr, ir.Slot):  # a node slot; params are handled by scalar()
            return Load(self.names.slot("node", expr.name), "u", f"node:{expr.name}")
        if isinstance(expr, ir.Random):
            return self.draw(expr, "u")
        assert isinstance(expr, ir.Apply), expr
        op = OPS[expr.op]
        return Call(op.name, tuple(self.scalar(arg, scope) for arg in expr.args), op.heavy)

    def draw(self, expr: ir.Random, element: str) -> Draw:
        return Draw(expr.dist, self.key, expr.ordinal, element)

    def vtemp(self, loop: Loop, value: Expr, ctype: str = "float", prefix: str = "v") -> Temp:
        """A half-edge level temporary in `loop` holding `value`."""
        temp = self.fresh(prefix, ctype)
        loop.body.append(Let(temp, value))
        return temp

    def vector(self, expr: ir.Expr, loop: Loop, scope: _Scope) -> tuple[Expr, Expr | None]:
        """(value, mask) of `expr` at half-edge h inside `loop`; mask is an int
        temporary for a filtered vector, else None. Float parts are lowered
        at node level."""
        if not expr.type.is_vector:
            return self.scalar(expr, scope), None
        memo = self.loop_memo[id(loop)]
        if expr not in memo:
            memo[expr] = self.vector_value(expr, loop, scope)
        return memo[expr]

    _INDEX = {"edge": "h", "shared": "eid[h]", "nbr": "nbr[h]", "peer": "rev[h]"}


    def vector_value(self, expr: ir.Expr, loop: Loop, scope: _Scope) -> tuple[Expr, Expr | None]:
        if isinstance(expr, ir.Local):
            _, value = scope.local(expr.name)
            return self.vector(value, loop, scope)
        if isinstance(expr, ir.Slot):
            array = self.names.slot(expr.kind, expr.name)
            kind = {"nbr": "node", "peer": "edge"}.get(expr.kind, expr.kind)
            load = Load(array, self._INDEX[expr.kind], f"{kind}:{expr.name}")
            return self.vtemp(loop, load), None
        if isinstance(expr, ir.Builtin):
            if expr.name == "nbr_degree":
                return self.vtemp(loop, Load("degree", "nbr[h]")), None
            return self.vtemp(loop, Call(expr.name, (_NBR, _U32))), None
        if isinstance(expr, ir.Random):
            return self.vtemp(loop, self.draw(expr, "h")), None
        if isinstance(expr, ir.Restrict):
            value, mask = self.vector(expr.value, loop, scope)
            selected = self.mask(expr.predicate, loop, scope)
            if mask:
                selected = self.vtemp(loop, Call("mask_and", (selected, mask)), "int", "m")
            return value, selected
        assert isinstance(expr, ir.Apply), expr
        mask = None
        args = []
        for arg in expr.args:
            value, arg_mask = self.vector(arg, loop, scope)
            args.append(value)
            mask = mask or arg_mask
        op = OPS[expr.op]
        return self.vtemp(loop, Call(op.name, tuple(args), op.heavy)), mask

    def mask(self, predicate: ir.Expr, loop: Loop, scope: _Scope) -> Temp:
        """An int temporary, 1 where the vector `predicate` > 0. Comparisons and
        logic are tested directly, not through their 1.0/0.0 value (GCC
        vectorizes `(float)(a < b) > 0` into a branch on AVX2)."""
        memo = self.loop_memo[id(loop)]
        key = ("mask", predicate)
        if key not in memo:
            op, args = self.mask_op(predicate, loop, scope)
            memo[key] = self.vtemp(loop, Call(op, args), "int", "m")
        return memo[key]

    def mask_op(self, predicate: ir.Expr, loop: Loop, scope: _Scope) -> tuple[str, tuple]:
        """The intrinsic (loops.INTRINSICS) and arguments of a predicate's mask."""
        if isinstance(predicate, ir.Builtin) and predicate.name in ("incoming", "outgoing",
                                                                    "parity"):
            return ("mask_below" if predicate.name == "incoming" else "mask_above"), (_NBR, _U32)
        if isinstance(predicate, ir.Apply) and predicate.type.is_vector:
            op = predicate.op
            if op in COMPARISONS:
                a, b = (self.vector(arg, loop, scope)[0] for arg in predicate.args)
                return f"mask_{op}", (a, b)
            if op in ("and", "or") and all(arg.type.is_vector for arg in predicate.args):
                a, b = (self.mask(arg, loop, scope) for arg in predicate.args)
                return ("mask_both" if op == "and" else "mask_or"), (a, b)
            if op == "not" and predicate.args[0].type.is_vector:
                return "mask_not", (self.mask(predicate.args[0], loop, scope),)
        value, _ = self.vector(predicate, loop, scope)
        return "mask_positive", (value,)

    def reduce(self, expr: ir.Reduce, scope: _Scope) -> Expr:
        """Add a reduction loop and what finishes it; return the result."""
        loop = self.new_loop()
        value, mask = self.vector(expr.arg, loop, scope)
        op = expr.op
        body = loop.body
        count = None
        if mask and op in ("mean", "max", "min"):
            count = self.fresh("c")
            loop.accumulators.append(Accumulator(count, "+", Const(0.0)))
            body.append(Accumulate(count, "+", Call("mask_to_float", (mask,))))
        if op in ("sum", "mean"):
            acc = self.fresh("a")
            loop.accumulators.append(Accumulator(acc, "+", Const(0.0)))
            body.append(Accumulate(acc, "+", value if mask is None
                                   else Call("keep", (mask, value))))
            scope.items.append(loop)
            if op == "sum":
                return acc
            n = count or Name("degree_u")
            return self.let(scope, self.fresh("s"),
                            Call("mean_of", (n, acc)))
        if op == "count":
            acc = self.fresh("a")
            loop.accumulators.append(Accumulator(acc, "+", Const(0.0)))
            selected = self.mask(expr.arg, loop, scope)
            if mask:
                selected = Call("mask_and", (selected, mask))
            body.append(Accumulate(acc, "+", Call("mask_value", (selected,))))
            scope.items.append(loop)
            return acc
        # max / min, ignoring NaN like fmaxf/fminf: an all-NaN selection gives NaN,
        # reduced as order-preserving int32 keys (rulec_orderf), NaN left out
        acc = self.fresh("a", "int32_t")
        seen = self.fresh("k")
        worst = Const(-math.inf if op == "max" else math.inf)
        loop.accumulators += [Accumulator(acc, op, Call("order_key", (worst,))),
                              Accumulator(seen, "+", Const(0.0))]
        usable = Call("is_number", (value,))
        if mask:
            usable = Call("mask_and", (usable, mask))
        key = self.vtemp(loop, Call("order_blend", (usable, value, worst)), "int32_t")
        body.append(Accumulate(acc, op, key))
        body.append(Accumulate(seen, "+", Call("mask_value", (usable,))))
        n = count or Name("degree_u")
        scope.items.append(loop)
        return self.let(scope, self.fresh("s"), Call("extreme", (seen, acc, n)))


#: the neighbour across half-edge h
_NBR = Load("nbr", "h")
#: node u's id as int32 (the kernel frame's u32)
_U32 = Name("u32")
