"""The C spelling of the loop-nest IR's expressions: the one place that
knows how an op, a constant or a draw is written in C.

The language's ops are spelled by the op table (rulec.ops.OPS, `op.c`), the
loop IR's own operations (loops.INTRINSICS) here. A CUDA renderer spells
the same IR through this table where CUDA C and C agree.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ...ops import COMPARISONS, OPS
from ...printer import format_number
from .loops import (
    INTRINSICS,
    Accumulate,
    Call,
    Comment,
    Const,
    Draw,
    If,
    Let,
    Load,
    Loop,
    Name,
    Set,
    Store,
    Temp,
)

#: C forms of the intrinsics: `{0}`, `{1}`, ... are the arguments.
INTRINSIC_C = {
    "mask_and": "{0} & {1}",
    "mask_both": "({0} & {1})",
    "mask_or": "({0} | {1})",
    "mask_not": "({0} ^ 1)",
    "mask_positive": "({0} > 0.0f)",
    "mask_below": "({0} < {1})",
    "mask_above": "({0} > {1})",
    "mask_to_float": "(float){0}",
    "mask_value": "(float)({0})",
    "blend": "rulec_blendf({0}, {1}, {2})",
    "keep": "rulec_keepf({0}, {1})",
    "flag": "(uint8_t)({0})",
    "mean_of": "{0} > 0.0f ? {1} / {0} : 0.0f",
    "is_number": "({0} == {0})",
    "order_key": "rulec_orderf({0})",
    "order_blend": "rulec_orderf(rulec_blendf({0}, {1}, {2}))",
    "extreme": "{0} > 0.0f ? rulec_unorderf({1}) : ({2} > 0.0f ? RULEC_NAN : 0.0f)",
    "parity": "({0} > {1} ? 1.0f : -1.0f)",
    "incoming": "(float)({0} < {1})",
    "outgoing": "(float)({0} > {1})",
    **{f"mask_{name}": f"({{0}} {symbol} {{1}})" for name, symbol in COMPARISONS.items()},
}

assert set(INTRINSIC_C) == set(INTRINSICS), set(INTRINSIC_C) ^ set(INTRINSICS)
assert not set(INTRINSICS) & set(OPS), set(INTRINSICS) & set(OPS)


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


def form(op: str) -> str:
    """The C form of an op of the language or an intrinsic."""
    row = OPS.get(op)
    return row.c if row is not None else INTRINSIC_C[op]


def spell(expr, name: Callable[[Temp], str]) -> str:
    """`expr` in C; `name(temp)` spells a temporary (a renderer may keep some
    in per-block arrays)."""
    if isinstance(expr, Temp):
        return name(expr)
    if isinstance(expr, Const):
        return c_float(expr.value) if expr.ctype == "float" else str(int(expr.value))
    if isinstance(expr, Name):
        return expr.name
    if isinstance(expr, Load):
        return f"{expr.array}[{expr.index}]"
    if isinstance(expr, Draw):
        return (f"rulec_{expr.dist}(seed, {expr.stream}u, {expr.ordinal}u, time, "
                f"(uint32_t){expr.index})")
    assert isinstance(expr, Call), expr
    return form(expr.op).format(*(spell(arg, name) for arg in expr.args))


# ------------------------------------------------------------- printing


def show_expr(expr) -> str:
    """An expression in C's spelling (the easiest to read next to the C)."""
    return spell(expr, lambda temp: temp.name)


def show(statements: list, depth: int = 0) -> str:
    """A node body as readable text, one statement a line, for example:

        s1: float = rulec_uniform(seed, 3329549428u, 0u, time, (uint32_t)u)
        loop h in half-edges(u) [+ a2: float = 0.0f]
            v3: float = edge_0[h]
            a2 += v3
        if s1 > 0
            nx_0 := a2                       (':=' sets a node slot's next value)
    """
    pad = "    " * depth
    out: list[str] = []
    for stmt in statements:
        note = f"    # {stmt.comment}" if getattr(stmt, "comment", "") else ""
        if isinstance(stmt, Let):
            out.append(f"{pad}{stmt.temp.name}: {stmt.temp.ctype} = {show_expr(stmt.value)}{note}")
        elif isinstance(stmt, Set):
            out.append(f"{pad}{stmt.var.name} := {show_expr(stmt.value)}{note}")
        elif isinstance(stmt, Store):
            mode = "  (in place)" if stmt.inplace else ""
            out.append(f"{pad}{stmt.array}[{stmt.index}] {stmt.op} {show_expr(stmt.value)}"
                       f"{mode}{note}")
        elif isinstance(stmt, Accumulate):
            sign = "+=" if stmt.op == "+" else f"{stmt.op}="
            out.append(f"{pad}{stmt.acc.name} {sign} {show_expr(stmt.value)}")
        elif isinstance(stmt, Comment):
            out.append(f"{pad}-- {stmt.text}")
        elif isinstance(stmt, Loop):
            accs = ", ".join(f"{a.op} {a.temp.name}: {a.temp.ctype} = {show_expr(a.init)}"
                             for a in stmt.accumulators)
            out.append(f"{pad}loop h in half-edges(u){f' [{accs}]' if accs else ''}")
            out.append(show(stmt.body, depth + 1))
        elif isinstance(stmt, If):
            for index, (condition, body) in enumerate(stmt.branches):
                if condition is None:
                    out.append(f"{pad}else")
                else:
                    out.append(f"{pad}{'elif' if index else 'if'} {show_expr(condition)} > 0")
                out.append(show(body, depth + 1))
    return "\n".join(line for line in out if line)


# ------------------------------------------------------------ verifying
