"""The op table: one row per operation, shared by every part of the compiler.

The checker reads arity and surface syntax, the printer reads spelling and
precedence, the reference interpreter reads the NumPy function, and the C
renderer reads the C spelling. A new op is one row here; tests check that
every row is complete.

All NumPy functions take and return float32 arrays; IEEE-754 float32
semantics throughout (callers silence floating-point warnings).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

F32 = np.float32


def _bool(mask: np.ndarray) -> np.ndarray:
    return mask.astype(F32)


def _sign(a: np.ndarray) -> np.ndarray:
    # +1, -1, and the argument itself for ±0 and NaN.
    return np.where(a > 0, F32(1), np.where(a < 0, F32(-1), a)).astype(F32)


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return (F32(1) / (F32(1) + np.exp(-a))).astype(F32)


def _relu(a: np.ndarray) -> np.ndarray:
    # max(a, 0) that keeps NaN (so non-finite state stays visible) and -0.
    return np.where(a < 0, F32(0), a).astype(F32)


def _clip(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.minimum(np.maximum(x, lo), hi)


def _select(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(c > 0, a, b).astype(F32)


@dataclass(frozen=True, slots=True)
class Op:
    """An elementwise operation.

    `syntax` is how it is written: 'infix' (`a + b`), 'prefix' (`-a`,
    `not a`) or 'call' (`tanh(a)`); `symbol` is the operator or function
    name; `precedence` orders infix/prefix ops for printing (higher binds
    tighter). `c` is a C expression with {0}, {1}, ... for the arguments.
    """

    name: str
    arity: int
    syntax: str
    symbol: str
    numpy: Callable[..., np.ndarray]
    c: str
    precedence: int = 100
    commutative: bool = False
    # ulps the C backend may differ from NumPy (vector libm: exp, log, tanh,
    # sin, cos and what is built on them); 0 for correctly rounded ops
    ulps: int = 0
    # much faster in vector form (a libmvec call, see runtime/rulec_math.h):
    # a half-edge loop with one is always vectorized, even if it only gathers
    heavy: bool = False


# Precedence levels, loosest first (the grammar's ladder).
OR, AND, NOT, COMPARE, ADD, MUL, NEG = 1, 2, 3, 4, 5, 6, 7

_ROWS = [
    Op("add", 2, "infix", "+", np.add, "({0} + {1})", ADD, True),
    Op("sub", 2, "infix", "-", np.subtract, "({0} - {1})", ADD),
    Op("mul", 2, "infix", "*", np.multiply, "({0} * {1})", MUL, True),
    Op("div", 2, "infix", "/", np.divide, "({0} / {1})", MUL),
    Op("lt", 2, "infix", "<", lambda a, b: _bool(a < b), "(({0}) < ({1}) ? 1.0f : 0.0f)", COMPARE),
    Op("le", 2, "infix", "<=", lambda a, b: _bool(a <= b),
       "(({0}) <= ({1}) ? 1.0f : 0.0f)", COMPARE),
    Op("gt", 2, "infix", ">", lambda a, b: _bool(a > b), "(({0}) > ({1}) ? 1.0f : 0.0f)", COMPARE),
    Op("ge", 2, "infix", ">=", lambda a, b: _bool(a >= b),
       "(({0}) >= ({1}) ? 1.0f : 0.0f)", COMPARE),
    Op("eq", 2, "infix", "==", lambda a, b: _bool(a == b),
       "(({0}) == ({1}) ? 1.0f : 0.0f)", COMPARE, True),
    Op("ne", 2, "infix", "!=", lambda a, b: _bool(a != b),
       "(({0}) != ({1}) ? 1.0f : 0.0f)", COMPARE, True),
    Op("and", 2, "infix", "and", lambda a, b: _bool((a > 0) & (b > 0)),
       "((float)((({0}) > 0.0f) & (({1}) > 0.0f)))", AND, True),
    Op("or", 2, "infix", "or", lambda a, b: _bool((a > 0) | (b > 0)),
       "((float)((({0}) > 0.0f) | (({1}) > 0.0f)))", OR, True),
    Op("neg", 1, "prefix", "-", np.negative, "(-{0})", NEG),
    Op("not", 1, "prefix", "not", lambda a: _bool(~(a > 0)),
       "(({0}) > 0.0f ? 0.0f : 1.0f)", NOT),
    Op("abs", 1, "call", "abs", np.abs, "rulec_fabsf({0})"),
    Op("sign", 1, "call", "sign", _sign, "rulec_signf({0})"),
    Op("exp", 1, "call", "exp", np.exp, "rulec_expf({0})", ulps=4, heavy=True),
    Op("log", 1, "call", "log", np.log, "rulec_logf({0})", ulps=4, heavy=True),
    Op("sqrt", 1, "call", "sqrt", np.sqrt, "rulec_sqrtf({0})", heavy=True),
    Op("tanh", 1, "call", "tanh", np.tanh, "rulec_tanhf({0})", ulps=4, heavy=True),
    Op("sigmoid", 1, "call", "sigmoid", _sigmoid, "rulec_sigmoidf({0})", ulps=5, heavy=True),
    Op("relu", 1, "call", "relu", _relu, "rulec_reluf({0})"),
    Op("sin", 1, "call", "sin", np.sin, "rulec_sinf({0})", ulps=4, heavy=True),
    Op("cos", 1, "call", "cos", np.cos, "rulec_cosf({0})", ulps=4, heavy=True),
    Op("square", 1, "call", "square", lambda a: a * a, "({0} * {0})"),
    Op("floor", 1, "call", "floor", np.floor, "rulec_floorf({0})"),
    Op("atan", 1, "call", "atan", np.arctan, "rulec_atanf({0})", ulps=4, heavy=True),
    Op("min", 2, "call", "min", np.fmin, "rulec_fminf({0}, {1})", commutative=True),
    Op("max", 2, "call", "max", np.fmax, "rulec_fmaxf({0}, {1})", commutative=True),
    Op("pow", 2, "call", "pow", np.power, "rulec_powf({0}, {1})", ulps=4, heavy=True),
    Op("atan2", 2, "call", "atan2", np.arctan2, "rulec_atan2f({0}, {1})", ulps=4, heavy=True),
    Op("clip", 3, "call", "clip", _clip, "rulec_clipf({0}, {1}, {2})"),
    Op("select", 3, "call", "select", _select, "(({0}) > 0.0f ? ({1}) : ({2}))"),
]

#: Elementwise ops by name.
OPS: dict[str, Op] = {op.name: op for op in _ROWS}

#: Functions written as calls, by the name users write, and their arities.
CALLS: dict[str, Op] = {op.symbol: op for op in _ROWS if op.syntax == "call"}

#: Comparisons by name, with the C operator that tests them on floats.
COMPARISONS: dict[str, str] = {op.name: op.symbol for op in _ROWS if op.precedence == COMPARE}

#: Ops whose value is always 1.0 or 0.0 (a backend may keep them as masks).
BOOLEAN = frozenset(COMPARISONS) | {"and", "or", "not"}


def named(syntax: str, arity: int | None = None) -> tuple[str, ...]:
    """Names of the ops written with `syntax` (and `arity`), in table order:
    the generator draws from these lists."""
    return tuple(op.name for op in _ROWS
                 if op.syntax == syntax and (arity is None or op.arity == arity))


#: Reducers: vector -> float. 'max'/'min' with one argument are reducers.
REDUCERS = ("sum", "mean", "max", "min", "count")

#: Random draws: name -> distribution.
DRAWS = ("gauss", "uniform")

#: Every name that can be called.
FUNCTIONS = sorted(set(CALLS) | set(REDUCERS) | set(DRAWS))
