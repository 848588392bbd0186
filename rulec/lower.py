"""Lowering: one block of the typed IR to the loop nest of its C kernel.

A step of a block is a loop over nodes. For each node `u` the block becomes
a list of items, in the order the statements need them:

    line     C lines computing float values for u (`const float s3 = tanhf(a2);`)
    reduce   a pass over u's half-edges h0..h1 that computes reductions
    write    a pass over u's half-edges that writes edge slots
    if       node-level branches, each a list of items

While lowering, common subexpressions are computed once (a structurally
equal expression in a scope, or in a loop, reuses its temporary), and every
float subexpression of a vector expression is hoisted out of the half-edge
loop into a `line` item before it. Vector `let`s are inlined where they are
used (draws are pure functions of their element, so recomputing is exact).

    update { x = tanh(sum((w * nbr.x)[incoming])); w += lr * x * nbr.x }

lowers (before scheduling) to

    line    float nx_0 = node_0[u];                               (x is node slot 0)
    reduce  a1 += m1 ? (edge_0[h] * node_0[nbr[h]]) : 0    (m1: nbr[h] < u)
    line    s2 = tanhf(a1); nx_0 = s2;
    line    s3 = param_0 * node_0[u]
    write   edge_0[h] = edge_0[h] + s3 * node_0[nbr[h]]

and rulec.schedule then fuses passes that do not depend on each other.

How each written slot is stored is decided per block by `slot_modes`:
a node slot is written in place unless the block reads it across an edge
(`nbr.x`); a private edge slot is written in place unless the block reads
it through `peer.` or reads it after writing it; otherwise the write goes
to a second buffer and the two swap after each step. A shared slot
collects each end's proposal and a pass over edges averages them.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

import numpy as np

from . import ir
from .checker import block_key
from .ops import OPS
from .printer import format_number

# ----------------------------------------------------------------- items


@dataclass(eq=False)  # items are compared by identity (scheduling looks them up)
class Item:
    """One step of a node's work; see the module docstring."""

    kind: str  # 'line' | 'reduce' | 'write' | 'if'
    lines: list[str] = field(default_factory=list)
    defines: set[str] = field(default_factory=set)
    reads: set[str] = field(default_factory=set)  # edge slots read at half-edge h
    writes: set[str] = field(default_factory=set)  # slots written (kind:name)
    inplace: set[str] = field(default_factory=set)  # edge slots written in place
    # reduction accumulators: (clause, name, initial value, C type)
    accumulators: list[tuple[str, str, str, str]] = field(default_factory=list)
    branches: list[tuple[str | None, list[Item]]] = field(default_factory=list)
    memo: dict = field(default_factory=dict)  # loops: vector expr -> (value, mask)
    known_uses: set[str] | None = None  # `uses`, once computed (scheduling keeps it current)

    @property
    def is_loop(self) -> bool:
        return self.kind in ("reduce", "write")

    @property
    def uses(self) -> set[str]:
        """Names of scalars and accumulators this item reads (computed once:
        call it only when the item is complete)."""
        if self.known_uses is None:
            self.known_uses = self._uses()
        return self.known_uses

    def _uses(self) -> set[str]:
        text = "\n".join(self.lines)
        names = set(_SCALAR_NAME.findall(text))
        for condition, items in self.branches:
            if condition is not None:
                names.update(_SCALAR_NAME.findall(condition))
            for item in items:
                names |= item.uses
        return names - self.defines

    def _gathered(self, attribute: str) -> set[str]:
        """`attribute` of this item and of every item in its branches."""
        found = set(getattr(self, attribute))
        for _, items in self.branches:
            for item in items:
                found |= item._gathered(attribute)
        return found

    def all_writes(self) -> set[str]:
        return self._gathered("writes")

    def all_reads(self) -> set[str]:
        return self._gathered("reads")

    def all_inplace(self) -> set[str]:
        return self._gathered("inplace")


_SCALAR_NAME = re.compile(r"\b(?:s|a|c|k)\d+\b|\bnx_\w+")


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


def c_float(value: float) -> str:
    """A float32 constant as a C literal that reads back exactly."""
    v = np.float32(value)
    if np.isnan(v):
        return "RULEC_NAN"
    if np.isinf(v):
        return "RULEC_INFINITY" if v > 0 else "(-RULEC_INFINITY)"
    text = format_number(float(v))
    if not any(ch in text for ch in ".e"):
        text += ".0"
    literal = text + "f"
    return f"({literal})" if literal.startswith("-") else literal


class _Scope:
    """A list of items with the values computed in it (a node body, or a branch)."""

    def __init__(self, parent: _Scope | None) -> None:
        self.parent = parent
        self.items: list[Item] = []
        self.memo: dict[ir.Expr, str] = {}
        self.locals: dict[str, tuple[str, object]] = {}

    def find_memo(self, expr: ir.Expr) -> str | None:
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
    """Lowers one block; `items` is the node body before scheduling."""

    def __init__(self, block: ir.Block, names: CNames,
                 source_lines: list[str] | None = None) -> None:
        self.block = block
        self.names = names
        self.key = block_key(block.label)
        self.modes = slot_modes(block)
        self.source_lines = source_lines or []
        self.counter = itertools.count(1)
        self.top = _Scope(None)
        # edge/shared slots whose buffer already holds this node's values
        self.initialized: set[str] = set()
        self.comment = ""
        self.statements(block.statements, self.top)
        self.items = self.top.items

    # ------------------------------------------------------------ helpers

    def fresh(self, prefix: str) -> str:
        return f"{prefix}{next(self.counter)}"

    def line(self, scope: _Scope, text: str, defines: str | None = None,
             writes: set[str] | None = None) -> None:
        if self.comment:
            text = f"{text}  /* {self.comment} */"
        item = Item("line", [text], writes=writes or set())
        if defines:
            item.defines.add(defines)
        scope.items.append(item)

    def set_comment(self, stmt) -> None:
        line = stmt.span.line if stmt.span is not None else 0
        if line and line <= len(self.source_lines):
            text = self.source_lines[line - 1].strip().replace("*/", "* /")
            self.comment = f"line {line}: {text}"
        elif line:
            self.comment = f"line {line}"
        else:
            self.comment = ""

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
        item = Item("if")
        for condition, (_, body) in zip(conditions, stmt.branches, strict=True):
            child = _Scope(scope)
            self.statements(body, child)
            item.branches.append((condition, child.items))
        if stmt.orelse:
            child = _Scope(scope)
            self.statements(stmt.orelse, child)
            item.branches.append((None, child.items))
        self.set_comment(stmt)
        scope.items.append(item)

    def write(self, stmt: ir.Write, scope: _Scope) -> None:
        slot = f"{stmt.kind}:{stmt.name}"
        if stmt.kind == "node":
            value = self.scalar(stmt.value, scope)
            self.line(scope, f"{self.names.next_value(stmt.name)} = {value};", writes={slot})
            return
        mode = self.modes[stmt.kind, stmt.name]
        nested = scope is not self.top
        if mode != "inplace" and slot not in self.initialized and nested:
            self.initialize(stmt.kind, stmt.name, mode)
        loop = Item("write", writes={slot})
        if mode == "inplace":
            loop.inplace.add(stmt.name)
        loop.lines.append(f"/* {self.comment} */")
        if stmt.value.type.is_vector:
            value, mask = self.vector(stmt.value, loop, scope)
        else:
            value, mask = self.scalar(stmt.value, scope), None
        masks = [mask] if mask else []
        if stmt.predicate is not None:
            masks.append(self.mask(stmt.predicate, loop, scope))
        select = " & ".join(masks) if masks else None
        array = self.names.slot(stmt.kind, stmt.name)
        first = slot not in self.initialized
        if mode == "inplace":
            target = f"{array}[h]"
            loop.lines.append(f"{target} = {value};" if select is None
                              else f"{target} = rulec_blendf({select}, {value}, {target});")
        elif mode == "double":
            target = f"{array}_next[h]"
            previous = f"{array}[h]" if first else target
            loop.lines.append(f"{target} = {value};" if select is None
                              else f"{target} = rulec_blendf({select}, {value}, {previous});")
        else:
            proposal, proposed = f"{array}_proposal[h]", f"{array}_proposed[h]"
            if select is None:
                loop.lines += [f"{proposal} = {value};", f"{proposed} = 1;"]
            elif first:
                loop.lines += [f"{proposal} = {value};", f"{proposed} = (uint8_t)({select});"]
            else:
                loop.lines += [f"{proposal} = rulec_blendf({select}, {value}, {proposal});",
                               f"{proposed} |= (uint8_t)({select});"]
        self.initialized.add(slot)
        scope.items.append(loop)

    def initialize(self, kind: str, name: str, mode: str) -> None:
        """Before the first write to a slot that sits inside an `if`, fill this
        node's part of the slot's buffer at node level, so that nodes which
        skip the branch keep their values."""
        array = self.names.slot(kind, name)
        loop = Item("write", writes={f"{kind}:{name}"})
        loop.lines.append(f"/* keep {kind} slot {name!r} where the branches below do not write */")
        if mode == "double":
            loop.lines.append(f"{array}_next[h] = {array}[h];")
            loop.reads.add(name)
        else:
            loop.lines.append(f"{array}_proposed[h] = 0;")
        self.top.items.append(loop)
        self.initialized.add(f"{kind}:{name}")

    # -------------------------------------------------------- expressions

    def scalar(self, expr: ir.Expr, scope: _Scope) -> str:
        """A C expression (a name or a literal) with `expr`'s value for node u."""
        if isinstance(expr, ir.Const):
            return c_float(expr.value)
        if isinstance(expr, ir.Slot) and expr.kind == "param":
            return self.names.param(expr.name)
        if isinstance(expr, ir.Builtin):
            return {"degree": "degree_u", "nodes": "nodes_f", "time": "time_f"}[expr.name]
        if isinstance(expr, ir.Local):
            kind, value = scope.local(expr.name)
            assert kind == "float", expr.name
            return str(value)
        known = scope.find_memo(expr)
        if known is not None:
            return known
        if isinstance(expr, ir.Reduce):
            name = self.reduce(expr, scope)
        else:
            name = self.fresh("s")
            self.line(scope, f"const float {name} = {self.scalar_text(expr, scope)};", name)
        scope.memo[expr] = name
        return name

    def scalar_text(self, expr: ir.Expr, scope: _Scope) -> str:
        if isinstance(expr, ir.Slot):  # a node slot; params are handled by scalar()
            return f"{self.names.slot('node', expr.name)}[u]"
        if isinstance(expr, ir.Random):
            return self.draw(expr, "u")
        assert isinstance(expr, ir.Apply), expr
        args = [self.scalar(arg, scope) for arg in expr.args]
        return OPS[expr.op].c.format(*args)

    def draw(self, expr: ir.Random, element: str) -> str:
        return (f"rulec_{expr.dist}(seed, {self.key}u, {expr.ordinal}u, time, "
                f"(uint32_t){element})")

    def vtemp(self, loop: Item, ctype: str, text: str, prefix: str = "v") -> str:
        name = self.fresh(prefix)
        loop.lines.append(f"const {ctype} {name} = {text};")
        return name

    def vector(self, expr: ir.Expr, loop: Item, scope: _Scope) -> tuple[str, str | None]:
        """(value, mask) of `expr` at half-edge h inside `loop`; mask is an int
        temporary for a filtered vector, else None. Float parts are hoisted."""
        if not expr.type.is_vector:
            return self.scalar(expr, scope), None
        if expr in loop.memo:
            return loop.memo[expr]
        result = self.vector_text(expr, loop, scope)
        loop.memo[expr] = result
        return result

    def vector_text(self, expr: ir.Expr, loop: Item, scope: _Scope) -> tuple[str, str | None]:
        if isinstance(expr, ir.Local):
            _, value = scope.local(expr.name)
            return self.vector(value, loop, scope)
        if isinstance(expr, ir.Slot):
            array = self.names.slot(expr.kind, expr.name)
            index = {"edge": "h", "shared": "eid[h]", "nbr": "nbr[h]", "peer": "rev[h]"}
            if expr.kind == "edge":
                loop.reads.add(expr.name)
            return self.vtemp(loop, "float", f"{array}[{index[expr.kind]}]"), None
        if isinstance(expr, ir.Builtin):
            text = {
                "parity": "(nbr[h] > u32 ? 1.0f : -1.0f)",
                "incoming": "(float)(nbr[h] < u32)",
                "outgoing": "(float)(nbr[h] > u32)",
                "nbr_degree": "degree[nbr[h]]",
            }[expr.name]
            return self.vtemp(loop, "float", text), None
        if isinstance(expr, ir.Random):
            return self.vtemp(loop, "float", self.draw(expr, "h")), None
        if isinstance(expr, ir.Restrict):
            value, mask = self.vector(expr.value, loop, scope)
            selected = self.mask(expr.predicate, loop, scope)
            if mask:
                selected = self.vtemp(loop, "int", f"{selected} & {mask}", "m")
            return value, selected
        assert isinstance(expr, ir.Apply), expr
        mask = None
        args = []
        for arg in expr.args:
            value, arg_mask = self.vector(arg, loop, scope)
            args.append(value)
            mask = mask or arg_mask
        return self.vtemp(loop, "float", OPS[expr.op].c.format(*args)), mask

    def mask(self, predicate: ir.Expr, loop: Item, scope: _Scope) -> str:
        """An int temporary, 1 where the vector `predicate` > 0. Comparisons and
        logic are tested directly, not through their 1.0/0.0 value (GCC
        vectorizes `(float)(a < b) > 0` into a branch on AVX2)."""
        key = ("mask", predicate)
        if key in loop.memo:
            return loop.memo[key]
        text = self.mask_text(predicate, loop, scope)
        name = self.vtemp(loop, "int", text, "m")
        loop.memo[key] = name
        return name

    _COMPARE = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}

    def mask_text(self, predicate: ir.Expr, loop: Item, scope: _Scope) -> str:
        if isinstance(predicate, ir.Builtin) and predicate.name in ("incoming", "outgoing",
                                                                    "parity"):
            return "(nbr[h] < u32)" if predicate.name == "incoming" else "(nbr[h] > u32)"
        if isinstance(predicate, ir.Apply) and predicate.type.is_vector:
            op = predicate.op
            if op in self._COMPARE:
                a, b = (self.vector(arg, loop, scope)[0] for arg in predicate.args)
                return f"({a} {self._COMPARE[op]} {b})"
            if op in ("and", "or") and all(arg.type.is_vector for arg in predicate.args):
                a, b = (self.mask(arg, loop, scope) for arg in predicate.args)
                return f"({a} {'&' if op == 'and' else '|'} {b})"
            if op == "not" and predicate.args[0].type.is_vector:
                return f"({self.mask(predicate.args[0], loop, scope)} ^ 1)"
        value, _ = self.vector(predicate, loop, scope)
        return f"({value} > 0.0f)"

    def reduce(self, expr: ir.Reduce, scope: _Scope) -> str:
        """Emit a reduction loop and the line that finishes it; return the result."""
        loop = Item("reduce")
        loop.lines.append(f"/* {self.comment} */")
        value, mask = self.vector(expr.arg, loop, scope)
        op = expr.op
        acc = self.fresh("a")
        loop.defines.add(acc)
        count = None
        if mask and op in ("mean", "max", "min"):
            count = self.fresh("c")
            loop.defines.add(count)
            loop.accumulators.append(("+", count, "0.0f", "float"))
            loop.lines.append(f"{count} += (float){mask};")
        if op == "sum":
            loop.accumulators.append(("+", acc, "0.0f", "float"))
            loop.lines.append(f"{acc} += {value};" if mask is None
                              else f"{acc} += rulec_keepf({mask}, {value});")
            result = acc
        elif op == "count":
            loop.accumulators.append(("+", acc, "0.0f", "float"))
            selected = self.mask(expr.arg, loop, scope) + (f" & {mask}" if mask else "")
            loop.lines.append(f"{acc} += (float)({selected});")
            result = acc
        elif op == "mean":
            loop.accumulators.append(("+", acc, "0.0f", "float"))
            loop.lines.append(f"{acc} += {value};" if mask is None
                              else f"{acc} += rulec_keepf({mask}, {value});")
            n = count or "degree_u"
            result = self.fresh("s")
            scope.items.append(loop)
            self.line(scope, f"const float {result} = {n} > 0.0f ? {acc} / {n} : 0.0f;", result)
            return result
        else:  # max / min, ignoring NaN like fmaxf/fminf: an all-NaN selection gives NaN
            # reduced as order-preserving int32 keys (rulec_orderf), NaN left out
            seen = self.fresh("k")
            loop.defines.add(seen)
            worst = "(-RULEC_INFINITY)" if op == "max" else "RULEC_INFINITY"
            loop.accumulators += [(op, acc, f"rulec_orderf({worst})", "int32_t"),
                                  ("+", seen, "0.0f", "float")]
            usable = f"({value} == {value})" + (f" & {mask}" if mask else "")
            key = self.vtemp(loop, "int32_t",
                             f"rulec_orderf(rulec_blendf({usable}, {value}, {worst}))", "v")
            better = ">" if op == "max" else "<"
            loop.lines.append(f"{acc} = {key} {better} {acc} ? {key} : {acc};")
            loop.lines.append(f"{seen} += (float)({usable});")
            n = count or "degree_u"
            result = self.fresh("s")
            scope.items.append(loop)
            self.line(scope, f"const float {result} = {seen} > 0.0f ? rulec_unorderf({acc})"
                             f" : ({n} > 0.0f ? RULEC_NAN : 0.0f);", result)
            return result
        scope.items.append(loop)
        return result
