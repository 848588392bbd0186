"""Constant folding: an elementwise op whose arguments are all constants
becomes the constant it computes, evaluated with the op table's NumPy
function in float32, so folding never changes a result.

    update { x = y * (2 * 0.5 + 1) }
    Write('node', 'x', Apply('mul', (Slot('node', 'y'),
          Apply('add', (Apply('mul', (Const(2.0), Const(0.5))), Const(1.0))))))

becomes

    Write('node', 'x', Apply('mul', (Slot('node', 'y'), Const(2.0))))

Division by zero folds to ±inf or NaN, as it would compute at run time.
Reductions, draws and reads are never folded.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import ir
from ..ops import OPS


def fold_constants(program: ir.Program) -> ir.Program:
    """The program with every all-constant elementwise op replaced by its value."""
    blocks = tuple(
        dataclasses.replace(block, statements=_statements(block.statements))
        for block in program.blocks
    )
    return dataclasses.replace(program, blocks=blocks)


def _statements(statements: tuple[ir.Stmt, ...]) -> tuple[ir.Stmt, ...]:
    return tuple(_statement(stmt) for stmt in statements)


def _statement(stmt: ir.Stmt) -> ir.Stmt:
    # what folds nothing stays the same object (no copy of an unchanged tree)
    if isinstance(stmt, ir.LetStmt):
        value = fold(stmt.value)
        return stmt if value is stmt.value else dataclasses.replace(stmt, value=value)
    if isinstance(stmt, ir.Write):
        value = fold(stmt.value)
        predicate = None if stmt.predicate is None else fold(stmt.predicate)
        if value is stmt.value and predicate is stmt.predicate:
            return stmt
        return dataclasses.replace(stmt, value=value, predicate=predicate)
    branches = tuple((fold(cond), _statements(body)) for cond, body in stmt.branches)
    return dataclasses.replace(stmt, branches=branches, orelse=_statements(stmt.orelse))


def _same(new: tuple, old: tuple) -> bool:
    return all(a is b for a, b in zip(new, old, strict=True))


def fold(expr: ir.Expr) -> ir.Expr:
    """`expr` with its all-constant subexpressions folded."""
    kind = type(expr)  # the IR's classes have no subclasses
    if kind is ir.Apply:
        args = tuple(fold(arg) for arg in expr.args)
        if expr.type.is_float and all(type(arg) is ir.Const for arg in args):
            values = [np.array([arg.value], dtype=np.float32) for arg in args]
            with np.errstate(all="ignore"):
                result = np.asarray(OPS[expr.op].numpy(*values), dtype=np.float32)
            return ir.Const(float(result[0]), expr.type, expr.span)
        return expr if _same(args, expr.args) else dataclasses.replace(expr, args=args)
    if kind is ir.Reduce:
        arg = fold(expr.arg)
        return expr if arg is expr.arg else dataclasses.replace(expr, arg=arg)
    if kind is ir.Restrict:
        value, predicate = fold(expr.value), fold(expr.predicate)
        if value is expr.value and predicate is expr.predicate:
            return expr
        return dataclasses.replace(expr, value=value, predicate=predicate)
    return expr
