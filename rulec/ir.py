"""The typed IR: what the checker produces and every backend consumes.

Names are resolved (a `Slot` knows whether it is a node, edge, shared,
neighbour or peer slot), augmented assignments are expanded, every
expression carries its :class:`Type`, and random draws are numbered in
source order. Spans never take part in equality, so `repr` of a program
without spans is its canonical form.

    update { x = tanh(sum(w * nbr.x)) }

becomes

    Write('node', 'x', Apply('tanh', (Reduce('sum', Apply('mul', (Slot('edge', 'w'),
          Slot('nbr', 'x')))),)))
"""

from __future__ import annotations

from dataclasses import field

from .errors import NOWHERE, Span
from .frozen import node
from .syntax import float_key


def _span() -> Span:
    return field(default=NOWHERE, compare=False, repr=False)


@node
class Type:
    """`float`, `vector`, or `vector[p]` (filter holds the normalised predicate)."""

    kind: str  # 'float' | 'vector' | 'error'
    filter: Expr | None = None

    @property
    def is_vector(self) -> bool:
        return self.kind == "vector"

    @property
    def is_float(self) -> bool:
        return self.kind == "float"

    @property
    def is_error(self) -> bool:
        return self.kind == "error"

    def __str__(self) -> str:
        if self.kind == "vector" and self.filter is not None:
            return "filtered vector"
        return self.kind


FLOAT = Type("float")
VECTOR = Type("vector")
ERROR = Type("error")


@node(eq=False)
class Const:
    """A constant; equal to another only when the bits of the values are
    (`0` and `-0` are two values: value numbering must not merge them)."""

    value: float
    type: Type = FLOAT
    span: Span = _span()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Const):
            return NotImplemented
        return float_key(self.value) == float_key(other.value) and self.type == other.type

    def __hash__(self) -> int:
        return hash((float_key(self.value), self.type))


@node
class Slot:
    """A state read. kind: 'node' (float), 'edge' (private, vector), 'shared'
    (vector, the edge's value), 'nbr' (a neighbour's node slot, vector),
    'peer' (the reverse half-edge's private slot, vector), 'param' (float)."""

    kind: str
    name: str
    type: Type = FLOAT
    span: Span = _span()


@node
class Builtin:
    """degree, nodes, time (float); parity, incoming, outgoing, nbr_degree (vector)."""

    name: str
    type: Type = FLOAT
    span: Span = _span()


@node
class Local:
    name: str
    type: Type = FLOAT
    span: Span = _span()


@node
class Random:
    """A fresh draw per element; `ordinal` is its place among the block's draws."""

    dist: str  # 'gauss' | 'uniform'
    ordinal: int
    type: Type = FLOAT
    span: Span = _span()


@node
class Apply:
    """An elementwise op of rulec.ops applied to its arguments."""

    op: str
    args: tuple[Expr, ...]
    type: Type = FLOAT
    span: Span = _span()


@node
class Reduce:
    """A reducer (sum mean max min count) over a vector, giving a float."""

    op: str
    arg: Expr
    type: Type = FLOAT
    span: Span = _span()


@node
class Restrict:
    """`value[predicate]`: value's type becomes vector[predicate]."""

    value: Expr
    predicate: Expr
    type: Type = VECTOR
    span: Span = _span()


Expr = Const | Slot | Builtin | Local | Random | Apply | Reduce | Restrict


@node
class LetStmt:
    name: str
    value: Expr
    span: Span = _span()


@node
class Write:
    """Write `value` to a slot of this node ('node') or its half-edges ('edge',
    'shared'), only where `predicate` > 0 if it is given (or where the
    value's own filter selects)."""

    kind: str  # 'node' | 'edge' | 'shared'
    name: str
    value: Expr
    predicate: Expr | None = None
    span: Span = _span()


@node
class IfStmt:
    branches: tuple[tuple[Expr, tuple[Stmt, ...]], ...]
    orelse: tuple[Stmt, ...] = ()
    span: Span = _span()


Stmt = LetStmt | Write | IfStmt


@node
class Block:
    """A block: `label` is 'init', 'update' or a named update's name."""

    label: str
    statements: tuple[Stmt, ...]
    draws: int  # how many Random ordinals the block uses
    span: Span = _span()


@node
class Program:
    name: str
    params: tuple[tuple[str, float], ...]
    node_slots: tuple[str, ...]
    edge_slots: tuple[str, ...]
    shared_slots: tuple[str, ...]
    blocks: tuple[Block, ...]

    def block(self, label: str) -> Block | None:
        for block in self.blocks:
            if block.label == label:
                return block
        return None

    @property
    def block_labels(self) -> tuple[str, ...]:
        return tuple(b.label for b in self.blocks)

    @property
    def slot_kinds(self) -> tuple[tuple[str, str], ...]:
        """(kind, name) of every slot, in the state's order: node slots,
        edge slots, shared slots (the C state's and the VM's registers')."""
        return (*(("node", n) for n in self.node_slots), *(("edge", n) for n in self.edge_slots),
                *(("shared", n) for n in self.shared_slots))



def graph_arrays(program: Program) -> frozenset[str]:
    """The graph arrays beyond row_ptr, nbr and degree that running `program`
    reads: 'rev' for a peer read or a shared write (whose two ends' proposals
    meet), 'eid' for a shared read, 'edge_half' for a shared write. A graph
    makes these on first use, so a rule that needs none never pays for them."""
    needs = set()
    for block in program.blocks:
        for stmt in statements_in(block.statements):
            if isinstance(stmt, Write) and stmt.kind == "shared":
                needs |= {"rev", "edge_half"}
        for top in expressions_in(block.statements):
            for expr in walk(top):
                if isinstance(expr, Slot) and expr.kind == "peer":
                    needs.add("rev")
                elif isinstance(expr, Slot) and expr.kind == "shared":
                    needs.add("eid")
    return frozenset(needs)


def children(expr: Expr) -> tuple[Expr, ...]:
    """The direct sub-expressions of `expr`."""
    if isinstance(expr, Apply):
        return expr.args
    if isinstance(expr, Reduce):
        return (expr.arg,)
    if isinstance(expr, Restrict):
        return (expr.value, expr.predicate)
    return ()


def walk(expr: Expr):
    """`expr` and every expression inside it, parents first, children left
    to right (with a stack: nested generators cost a frame per level for
    every item)."""
    stack = [expr]
    while stack:
        e = stack.pop()
        yield e
        kind = type(e)
        if kind is Apply:
            stack.extend(reversed(e.args))
        elif kind is Reduce:
            stack.append(e.arg)
        elif kind is Restrict:
            stack.append(e.predicate)
            stack.append(e.value)


def statements_in(statements):
    """Every statement, the bodies of ifs included, in source order."""
    for stmt in statements:
        yield stmt
        if isinstance(stmt, IfStmt):
            for _, body in stmt.branches:
                yield from statements_in(body)
            yield from statements_in(stmt.orelse)


def written_slots(statements) -> list[tuple[str, str]]:
    """(kind, name) of every slot the statements write, in first-write order."""
    return list(dict.fromkeys((stmt.kind, stmt.name) for stmt in statements_in(statements)
                              if isinstance(stmt, Write)))


def slot_write_mask(program: Program, labels) -> bytes:
    """Per block of `labels`, one byte per slot of the state (node, edge and
    shared slots in order): 1 where the block writes the slot."""
    order = program.slot_kinds
    mask = bytearray()
    for label in labels:
        written = set(written_slots(program.block(label).statements))
        mask += bytes(1 if slot in written else 0 for slot in order)
    return bytes(mask)


def expressions_in(statements):
    """Every top-level expression of the statements (values, filters,
    conditions), the bodies of ifs included."""
    for stmt in statements_in(statements):
        if isinstance(stmt, LetStmt):
            yield stmt.value
        elif isinstance(stmt, Write):
            yield stmt.value
            if stmt.predicate is not None:
                yield stmt.predicate
        else:
            for condition, _ in stmt.branches:
                yield condition


# ------------------------------------------------------------------ printing


def show_expr(expr: Expr) -> str:
    """An expression as a typed s-expression: `(tanh (sum (mul edge.w nbr.x)))`;
    leaves are `node.x`, `nbr.x`, `param.lr`, `$local`, builtins, numbers and
    draws (`uniform#0`: the draw's ordinal in its block)."""
    if isinstance(expr, Const):
        return _number(expr.value)
    if isinstance(expr, Slot):
        return f"{expr.kind}.{expr.name}"
    if isinstance(expr, Local):
        return f"${expr.name}"
    if isinstance(expr, Builtin):
        return expr.name
    if isinstance(expr, Random):
        return f"{expr.dist}#{expr.ordinal}{'[h]' if expr.type.is_vector else ''}"
    if isinstance(expr, Restrict):
        return f"(where {show_expr(expr.value)} {show_expr(expr.predicate)})"
    if isinstance(expr, Reduce):
        return f"({expr.op} {show_expr(expr.arg)})"
    assert isinstance(expr, Apply), expr
    return f"({expr.op} {' '.join(show_expr(arg) for arg in expr.args)})"


def _number(value: float) -> str:
    import numpy as np

    return str(np.float32(value))


def _show_statements(statements, depth: int) -> list[str]:
    pad = "    " * depth
    out: list[str] = []
    for stmt in statements:
        if isinstance(stmt, LetStmt):
            out.append(f"{pad}let ${stmt.name}: {stmt.value.type} = {show_expr(stmt.value)}")
        elif isinstance(stmt, Write):
            where = "" if stmt.predicate is None else f" where {show_expr(stmt.predicate)}"
            out.append(f"{pad}{stmt.kind}.{stmt.name} = {show_expr(stmt.value)}"
                       f"  : {stmt.value.type}{where}")
        else:
            for index, (condition, body) in enumerate(stmt.branches):
                out.append(f"{pad}{'elif' if index else 'if'} {show_expr(condition)}")
                out += _show_statements(body, depth + 1)
            if stmt.orelse:
                out.append(f"{pad}else")
                out += _show_statements(stmt.orelse, depth + 1)
    return out


def show(program: Program) -> str:
    """A checked program as readable text (what the IR passes see): slots in
    their storage order, each block's statements with the type of every
    written or bound value."""
    out = [f"rule {program.name}"]
    out += [f"param {name} = {_number(value)}" for name, value in program.params]
    for kind, names in (("node", program.node_slots), ("edge", program.edge_slots),
                        ("shared", program.shared_slots)):
        out += [f"{kind} {index}: {name}" for index, name in enumerate(names)]
    for block in program.blocks:
        out.append(f"block {block.label} ({block.draws} draw{'s' * (block.draws != 1)})")
        out += _show_statements(block.statements, 1)
    return "\n".join(out) + "\n"


def size(program: Program) -> int:
    """The statements and expression nodes of every block: what the work of
    code generation and the size of the generated C grow with."""
    total = 0
    for block in program.blocks:
        total += sum(1 for _ in statements_in(block.statements))
        total += sum(1 for expr in expressions_in(block.statements) for _ in walk(expr))
    return total
