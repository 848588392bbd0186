"""The loop-nest IR of the C backend: one node's work in one step.

Lowering (rulec.backends.c.lower) turns a block of the typed IR into a
*node body*: the statements that compute node `u`'s part of one step. The
loop passes (rulec.backends.c.passes) rewrite it, and the renderer
(rulec.backends.c.render) only spells it, through rulec.backends.c.spelling:
the IR holds op names, numbers and names, never C text, so another
renderer (CUDA) can spell the same IR.

Values are objects, not names in strings:

    Temp      a value: node level (`s3`, computed once per node), half-edge
              level (`v5`, `m6`: inside a loop), an accumulator (`a2`) or
              a node slot's next value (`nx_0`, mutable)

Expressions (immutable, compared by structure; a Temp by identity):

    Temp
    Const(value, ctype)        a number (float32, or an int flag); compared
                               by its bits, so 0 and -0 stay apart
    Name(name)                 a value the kernel frame defines (FRAME_NAMES:
                               `degree_u`, `u32`, `time_f`, ...) or a param's
                               variable (`param_0`)
    Load(array, index, slot)   `array[index]`; index is one of INDEXES
    Call(op, args, heavy)      op applied to args: an op of the language
                               (rulec.ops.OPS) or of the loop IR itself
                               (INTRINSICS); `heavy`: much faster in vector
                               form (libmvec math)
    Draw(dist, stream, ordinal, index)
                               a counter-based random draw (rulec.rng) for
                               the element `index` ('u' or 'h'); heavy

Statements:

    Let(temp, value)                        define a temporary
    Set(var, value, slot)                   a node slot's next value
    Store(array, index, value, slot, op)    `array[index] = value` (or `|=`)
    Accumulate(acc, op, value)              `acc += value`, or keep the max/min
    Comment(text)
    Loop(body, accumulators)                over node u's half-edges h0 .. h1
    If(branches)                            [(condition, body), ..., (None, else)]

A Loop's accumulators are defined by the loop and read after it. A Let in a
Loop or a branch is visible only there; Lets at node level are visible to
everything after them. `verify` checks these rules; rulec.backends.c.spelling.show prints a body.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

#: Where a load or store is: this node, this half-edge, or across it.
INDEXES = ("u", "h", "nbr[h]", "rev[h]", "eid[h]")
#: Indexes that gather (a different element for each half-edge of u).
GATHERS = ("nbr[h]", "rev[h]", "eid[h]")


class Temp:
    """A value of the node body; compared by identity. `name` is its C name
    (unique within a block); `ctype` its C type; `mutable` for a node slot's
    next value, set more than once."""

    __slots__ = ("name", "ctype", "mutable")

    def __init__(self, name: str, ctype: str = "float", mutable: bool = False) -> None:
        self.name, self.ctype, self.mutable = name, ctype, mutable

    def __repr__(self) -> str:
        return self.name


class Const:
    """A number. Compared and hashed by its bits (and type): -0.0 and 0.0 are
    two constants, as in the typed IR."""

    __slots__ = ("value", "ctype")

    def __init__(self, value: float, ctype: str = "float") -> None:
        self.value, self.ctype = float(value), ctype

    def _key(self) -> tuple:
        return (struct.pack("<d", self.value), self.ctype)

    def __eq__(self, other) -> bool:
        return isinstance(other, Const) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Const({self.value!r}{'' if self.ctype == 'float' else ', ' + repr(self.ctype)})"


#: The values a kernel frame defines for node u (besides param_N variables).
FRAME_NAMES = ("u32", "degree_u", "nodes_f", "time_f")


@dataclass(frozen=True, slots=True)
class Name:
    name: str


@dataclass(frozen=True, slots=True)
class Load:
    array: str
    index: str
    #: the rule slot whose buffer `array` is, as 'kind:name' (None: graph data)
    slot: str | None = None


@dataclass(frozen=True, slots=True)
class Call:
    op: str
    args: tuple = ()
    heavy: bool = False


@dataclass(frozen=True, slots=True)
class Draw:
    dist: str  # 'uniform' | 'gauss'
    stream: int  # the block's key (rulec.rng.block_key)
    ordinal: int  # which draw of the block
    index: str  # 'u' (node level) or 'h' (half-edge level)


#: The loop IR's own operations (beside the language's ops, rulec.ops.OPS):
#: name -> what it computes. Their C spelling is rulec.backends.c.spelling's.
INTRINSICS = {
    "mask_and": "int: a & b (masks are int 0/1): two selections at once",
    "mask_both": "int: a & b: the predicate `a and b`",
    "mask_or": "int: a | b",
    "mask_not": "int: a ^ 1",
    "mask_positive": "int: a > 0",
    "mask_below": "int: a < b (ids)",
    "mask_above": "int: a > b (ids)",
    "mask_to_float": "float: a mask as 1.0 / 0.0 (a Temp)",
    "mask_value": "float: a mask expression as 1.0 / 0.0",
    "blend": "float: a mask picks b (1) or c (0), NaN-safe",
    "keep": "float: b where the mask a is 1, else 0",
    "flag": "uint8: a mask as a proposal flag",
    "mean_of": "float: b / a where a > 0, else 0",
    "is_number": "int: a is not NaN",
    "order_key": "int32: a float as an order-preserving int",
    "order_blend": "int32: order_key(blend(a, b, c))",
    "extreme": "float: from_key(b) if a > 0 else (NaN if c > 0 else 0)",
    "parity": "float: 1 where a > b else -1",
    "incoming": "float: 1.0 where a < b (ids)",
    "outgoing": "float: 1.0 where a > b (ids)",
    **{f"mask_{name}": f"int: comparison {name}" for name in ("lt", "le", "gt", "ge", "eq", "ne")},
}


Expr = Temp | Const | Name | Load | Call | Draw


@dataclass(eq=False)
class Let:
    temp: Temp
    value: Expr
    comment: str = ""


@dataclass(eq=False)
class Set:
    var: Temp
    value: Expr
    slot: str
    comment: str = ""


@dataclass(eq=False)
class Store:
    array: str
    index: str
    value: Expr
    slot: str
    op: str = "="  # '=' or '|='
    inplace: bool = False  # an edge slot written in its own buffer
    comment: str = ""


@dataclass(eq=False)
class Accumulate:
    acc: Temp
    op: str  # '+', 'max', 'min'
    value: Expr


@dataclass(eq=False)
class Comment:
    text: str


@dataclass(eq=False)
class Accumulator:
    temp: Temp
    op: str  # the OpenMP reduction clause: '+', 'max', 'min'
    init: Expr


@dataclass(eq=False)
class Loop:
    body: list = field(default_factory=list)
    accumulators: list[Accumulator] = field(default_factory=list)


@dataclass(eq=False)
class If:
    branches: list = field(default_factory=list)  # [(Expr | None, [stmt])]


Stmt = Let | Set | Store | Accumulate | Comment | Loop | If


# ------------------------------------------------------------- walking


def temps_in(expr: Expr) -> Iterator[Temp]:
    """Every Temp `expr` reads."""
    if isinstance(expr, Temp):
        yield expr
    elif isinstance(expr, Call):
        for arg in expr.args:
            yield from temps_in(arg)


def loads_in(expr: Expr) -> Iterator[Load]:
    if isinstance(expr, Load):
        yield expr
    elif isinstance(expr, Call):
        for arg in expr.args:
            yield from loads_in(arg)


def is_heavy(expr: Expr) -> bool:
    return isinstance(expr, Draw) or (
        isinstance(expr, Call) and (expr.heavy or any(is_heavy(a) for a in expr.args)))


def substitute(expr: Expr, mapping: dict[Temp, Expr]) -> Expr:
    """`expr` with every Temp in `mapping` replaced."""
    if isinstance(expr, Temp):
        return mapping.get(expr, expr)
    if isinstance(expr, Call) and expr.args:
        args = tuple(substitute(a, mapping) for a in expr.args)
        return expr if args == expr.args else Call(expr.op, args, expr.heavy)
    return expr


def expressions(stmt: Stmt) -> list[Expr]:
    """The expressions a statement reads itself (not those of nested bodies)."""
    if isinstance(stmt, (Let, Set, Store, Accumulate)):
        return [stmt.value]
    if isinstance(stmt, If):
        return [c for c, _ in stmt.branches if c is not None]
    if isinstance(stmt, Loop):
        return [a.init for a in stmt.accumulators]
    return []


def bodies(stmt: Stmt) -> list[list]:
    if isinstance(stmt, Loop):
        return [stmt.body]
    if isinstance(stmt, If):
        return [body for _, body in stmt.branches]
    return []


def walk(statements: list) -> Iterator[Stmt]:
    """Every statement, nested ones after the statement holding them."""
    for stmt in statements:
        yield stmt
        for body in bodies(stmt):
            yield from walk(body)


def rewrite(statements: list, mapping: dict[Temp, Expr]) -> None:
    """Replace Temps in `mapping` in every expression, in place."""
    if not mapping:
        return
    for stmt in walk(statements):
        if isinstance(stmt, (Let, Set, Store, Accumulate)):
            stmt.value = substitute(stmt.value, mapping)
        elif isinstance(stmt, If):
            stmt.branches = [(None if c is None else substitute(c, mapping), b)
                             for c, b in stmt.branches]
        elif isinstance(stmt, Loop):
            for acc in stmt.accumulators:
                acc.init = substitute(acc.init, mapping)


@dataclass
class Facts:
    """What a statement does, as seen from outside it (nested bodies
    included): the scheduler orders statements by these."""

    defines: set = field(default_factory=set)  # Temps visible after it
    uses: set = field(default_factory=set)  # Temps it reads, defined elsewhere
    writes: set = field(default_factory=set)  # slots written ('kind:name')
    reads: set = field(default_factory=set)  # edge slots read at half-edge h
    inplace: set = field(default_factory=set)  # edge slots written in place


def facts(stmt: Stmt) -> Facts:
    out = Facts()
    inner: set = set()
    for node in walk([stmt]):
        for expr in expressions(node):
            out.uses.update(temps_in(expr))
            out.reads.update(load.slot for load in loads_in(expr)
                             if load.index == "h" and load.slot)
        if isinstance(node, Let):
            inner.add(node.temp)
        elif isinstance(node, (Set, Store)):
            out.writes.add(node.slot)
            if isinstance(node, Store) and node.inplace:
                out.inplace.add(node.slot)
        elif isinstance(node, Accumulate):
            out.uses.add(node.acc)
        elif isinstance(node, Loop):
            inner.update(a.temp for a in node.accumulators)
    if isinstance(stmt, Let):
        out.defines.add(stmt.temp)
    elif isinstance(stmt, Loop):
        out.defines.update(a.temp for a in stmt.accumulators)
    out.uses -= inner
    return out


class LoopIRError(AssertionError):
    """The loop-nest IR broke one of its rules: a bug in a pass."""


def verify(statements: list, known: tuple = ()) -> None:
    """Check a node body: every Temp is defined once, before it is read, and
    read only where it is visible; half-edge loads and stores only inside a
    loop; accumulators updated only inside their own loop; indexes known.
    `known` are Temps defined outside the body. Raises LoopIRError."""
    _verify(statements, set(known), set(), in_loop=None)


def _describe(stmt) -> str:
    """A statement in a few words, for the verifier's messages."""
    if isinstance(stmt, (Let, Set)):
        target = stmt.temp if isinstance(stmt, Let) else stmt.var
        return f"{type(stmt).__name__} {target.name} = {_brief(stmt.value)}"
    if isinstance(stmt, Store):
        return f"Store {stmt.array}[{stmt.index}] {stmt.op} {_brief(stmt.value)}"
    if isinstance(stmt, Accumulate):
        return f"Accumulate {stmt.acc.name} {stmt.op} {_brief(stmt.value)}"
    return type(stmt).__name__


def _brief(expr) -> str:
    if isinstance(expr, Temp):
        return expr.name
    if isinstance(expr, Call):
        return f"{expr.op}({', '.join(_brief(arg) for arg in expr.args)})"
    if isinstance(expr, Load):
        return f"{expr.array}[{expr.index}]"
    if isinstance(expr, Const):
        return repr(expr.value)
    if isinstance(expr, Name):
        return expr.name
    return repr(expr)


def _fail(message: str, stmt) -> None:
    raise LoopIRError(f"{message}\n  at: {_describe(stmt)}")


def _verify(statements: list, visible: set, defined: set, in_loop: Loop | None) -> None:
    visible = set(visible)
    for stmt in statements:
        for expr in expressions(stmt):
            for temp in temps_in(expr):
                if temp not in visible:
                    _fail(f"{temp.name} is read where it is not defined", stmt)
            for load in loads_in(expr):
                if load.index not in INDEXES:
                    _fail(f"unknown index {load.index!r}", stmt)
                if load.index != "u" and in_loop is None:
                    _fail(f"a half-edge load {load.array}[{load.index}] outside a loop", stmt)
        if isinstance(stmt, Let):
            if stmt.temp in defined:
                _fail(f"{stmt.temp.name} is defined twice", stmt)
            defined.add(stmt.temp)
            visible.add(stmt.temp)
        elif isinstance(stmt, Set):
            if not stmt.var.mutable or stmt.var not in visible:
                _fail(f"{stmt.var.name} is set but is not a visible next value", stmt)
        elif isinstance(stmt, Store):
            if stmt.index not in INDEXES or (stmt.index != "u") != (in_loop is not None):
                _fail(f"a store at [{stmt.index}] {'inside' if in_loop else 'outside'} a loop",
                      stmt)
        elif isinstance(stmt, Accumulate):
            if in_loop is None or stmt.acc not in {a.temp for a in in_loop.accumulators}:
                _fail(f"{stmt.acc.name} is accumulated outside its loop", stmt)
        elif isinstance(stmt, Loop):
            if in_loop is not None:
                _fail("a loop inside a loop", stmt)
            temps = [a.temp for a in stmt.accumulators]
            for temp in temps:
                if temp in defined:
                    _fail(f"{temp.name} is defined twice", stmt)
                defined.add(temp)
            _verify(stmt.body, visible, defined, stmt)
            visible.update(temps)
        elif isinstance(stmt, If):
            if in_loop is not None:
                _fail("a branch inside a loop", stmt)
            for _, body in stmt.branches:
                _verify(body, visible, defined, None)
