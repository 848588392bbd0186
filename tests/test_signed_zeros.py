"""0 and -0 are two values (1 / -0 is -inf, atan2(0, -0) is pi): every place
that shares or keys a value keys constants by their bits. The backends'
agreement on them is checked by tests/valid/zeros.rule in
test_differential.py; these tests pin each keyed place on its own."""

from __future__ import annotations

import math

import numpy as np

import rulec
from rulec import ir
from rulec import syntax as ast
from rulec.backends.c.spelling import c_float
from rulec.frontend import load_program
from rulec.parser import parse_text
from rulec.passes.fold import fold_constants
from rulec.printer import format_number, format_tree
from rulec.search.canon import canonical_text, text_hash

ZEROS = """rule z
node x, a, e
update {
    a = atan2(x, -0)
    e = atan2(x, 0)
}
"""


def test_ir_constants_of_zero_and_minus_zero_are_different_values():
    assert ir.Const(0.0) != ir.Const(-0.0)
    assert len({ir.Const(0.0), ir.Const(-0.0)}) == 2
    assert ir.Const(-0.0) == ir.Const(-0.0)
    assert ir.Const(math.nan) == ir.Const(math.nan)  # one NaN is one value
    assert ir.Const(1.0) == ir.Const(1.0) and hash(ir.Const(1.0)) == hash(ir.Const(1.0))


def test_syntax_numbers_of_zero_and_minus_zero_are_different_trees():
    assert ast.Number(0.0) != ast.Number(-0.0)
    assert ast.number(-0.0) == ast.Unary("neg", ast.Number(0.0))
    assert ast.number(-1.5) == ast.Unary("neg", ast.Number(1.5))
    assert ast.number(2.0) == ast.Number(2.0)


def test_folding_keeps_the_sign_of_zero():
    program = fold_constants(load_program(ZEROS, "z.rule"))
    a, e = program.blocks[0].statements
    assert math.copysign(1, a.value.args[1].value) == -1
    assert math.copysign(1, e.value.args[1].value) == 1
    assert a.value != e.value


def test_printed_numbers_and_c_literals_keep_the_sign_of_zero():
    assert format_number(-0.0) == "-0" and format_number(0.0) == "0"
    assert c_float(-0.0) == "(-0.0f)" and c_float(0.0) == "0.0f"
    tree = parse_text("rule z\nparam p = -0\nnode x\nupdate { x = atan2(x, p) }\n", "z.rule")
    assert "param p = -0\n" in format_tree(tree)
    assert parse_text(format_tree(tree), "z.rule") == tree


def test_canonical_text_and_hash_tell_zero_from_minus_zero():
    plus = parse_text("rule z\nnode x\nupdate { x = 1 / (x * 0) }\n", "z.rule")
    minus = parse_text("rule z\nnode x\nupdate { x = 1 / (x * -0) }\n", "z.rule")
    assert text_hash(canonical_text(plus)) != text_hash(canonical_text(minus))


def test_every_backend_keeps_zero_and_minus_zero_apart_in_one_block():
    graph = rulec.Graph.from_edges(2, [(0, 1)])
    for backend in ("numpy", "vm", "c"):
        rule = rulec.compile(ZEROS, backend=backend)
        state = rule.state(graph)
        rule.step(state)
        np.testing.assert_array_equal(state.node["a"], np.float32(np.pi), err_msg=backend)
        np.testing.assert_array_equal(state.node["e"], np.float32(0), err_msg=backend)
