"""The syntax tree: what the parser builds and the formatter prints.

Each node is a frozen dataclass with the :class:`Span` of its source text;
spans never take part in equality, so two trees compare equal when they say
the same thing. Names are not resolved here (that is the checker's job), so
`x` is a :class:`Name` whether it is a slot, a param or a local.
"""

from __future__ import annotations

import math
import struct
from dataclasses import field

from .errors import NOWHERE, Span
from .frozen import node


def float_key(value: float) -> bytes:
    """The bits of a float: the key under which a constant is compared and
    hashed. `0.0 == -0.0` in Python, but `1 / -0` is -inf and
    `atan2(0, -0)` is pi, so constants are one value only when their bits
    are (NaNs compare equal to themselves by their bits, too)."""
    return struct.pack("<d", value)


def _span() -> Span:
    return field(default=NOWHERE, compare=False, repr=False)


# ---------------------------------------------------------------- expressions


@node(eq=False)
class Number:
    """A literal: never negative (its sign bit is clear); `-1.5` is
    `Unary('neg', Number(1.5))`, as the parser reads it. Build numbers of
    any sign with :func:`number`. Equal when the bits are (`0` is not `-0`)."""

    value: float  # already rounded to float32
    span: Span = _span()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Number):
            return NotImplemented
        return float_key(self.value) == float_key(other.value)

    def __hash__(self) -> int:
        return hash(float_key(self.value))


@node
class Name:
    name: str
    span: Span = _span()


@node
class NbrRef:
    """`nbr.NAME`: a neighbour's node slot (or `nbr.degree`)."""

    name: str
    span: Span = _span()


@node
class PeerRef:
    """`peer.NAME`: the other end's value of a private edge slot."""

    name: str
    span: Span = _span()


@node
class Call:
    func: str
    args: tuple[Expr, ...]
    span: Span = _span()
    func_span: Span = _span()


@node
class Unary:
    op: str  # 'neg' | 'not'
    operand: Expr
    span: Span = _span()


@node
class Binary:
    op: str  # an operator name of rulec.ops (add, lt, and, ...)
    left: Expr
    right: Expr
    span: Span = _span()


@node
class Filter:
    """`value[predicate]`."""

    value: Expr
    predicate: Expr
    span: Span = _span()


Expr = Number | Name | NbrRef | PeerRef | Call | Unary | Binary | Filter


def number(value: float) -> Expr:
    """The tree the parser builds for the value `value` (a float32): a
    :class:`Number`, or `neg` of one when the sign bit is set (`-0` too),
    so that printing and parsing it gives back the same tree."""
    value = float(value)
    if math.copysign(1.0, value) < 0:
        return Unary("neg", Number(-value))
    return Number(value)


# ----------------------------------------------------------------- statements


@node
class Target:
    """The left side of an assignment: `x`, `w[p]`, or (always an error) `nbr.x`, `peer.w`."""

    kind: str  # 'slot' | 'nbr' | 'peer'
    name: str
    predicate: Expr | None = None
    span: Span = _span()


@node
class Assign:
    target: Target
    op: str  # '=' | '+=' | '-=' | '*='
    value: Expr
    span: Span = _span()


@node
class Let:
    name: str
    value: Expr
    span: Span = _span()
    name_span: Span = _span()


@node
class Body:
    """A `{ ... }` block of statements; `span` runs from `{` to `}`."""

    statements: tuple[Stmt, ...]
    span: Span = _span()


@node
class If:
    """`if c {..} elif c {..} else {..}`: `branches` holds (condition, body) pairs."""

    branches: tuple[tuple[Expr, Body], ...]
    orelse: Body | None = None
    span: Span = _span()


Stmt = Assign | Let | If


# --------------------------------------------------------------- declarations


@node
class RuleDecl:
    name: str
    span: Span = _span()


@node
class ParamDecl:
    name: str
    value: float
    span: Span = _span()


@node
class SlotDecl:
    kind: str  # 'node' | 'edge' | 'shared'
    names: tuple[str, ...]
    span: Span = _span()
    name_spans: tuple[Span, ...] = field(default=(), compare=False, repr=False)


@node
class Block:
    kind: str  # 'init' | 'update'
    name: str | None  # the NAME of `update NAME { }`
    body: Body
    span: Span = _span()

    @property
    def label(self) -> str:
        """The block's public name: 'init', 'update' or the named update's NAME."""
        return self.name if self.name is not None else self.kind


Item = RuleDecl | ParamDecl | SlotDecl | Block


@node
class File:
    items: tuple[Item, ...]
