"""The op table: every op has every row, and each row agrees with the others."""

from __future__ import annotations

import numpy as np
import pytest

from rulec.ops import CALLS, OPS
from rulec.parser import parse_text
from rulec.printer import format_tree


@pytest.mark.parametrize("op", OPS.values(), ids=lambda op: op.name)
def test_every_op_has_syntax_numpy_and_c(op):
    assert op.syntax in ("infix", "prefix", "call")
    assert op.arity == {"infix": 2, "prefix": 1}.get(op.syntax, op.arity)
    args = [np.array([-1.5, 0.0, 2.0], dtype=np.float32) for _ in range(op.arity)]
    with np.errstate(all="ignore"):
        result = np.asarray(op.numpy(*args))
    assert result.dtype == np.float32 and result.shape == (3,)
    for index in range(op.arity):
        assert f"{{{index}}}" in op.c
    assert f"{{{op.arity}}}" not in op.c


@pytest.mark.parametrize("op", OPS.values(), ids=lambda op: op.name)
def test_every_op_parses_and_prints_to_itself(op):
    names = ["a", "b", "c"][: op.arity]
    if op.syntax == "call":
        text = f"{op.symbol}({', '.join(names)})"
    elif op.syntax == "prefix":
        text = f"{op.symbol}{' ' if op.symbol.isalpha() else ''}a"
    else:
        text = f"a {op.symbol} b"
    printed = format_tree(parse_text(f"update {{ x = {text} }}"))
    assert printed.splitlines()[1].strip() == f"x = {text}"
    if op.syntax == "call":
        assert CALLS[op.symbol] is op
