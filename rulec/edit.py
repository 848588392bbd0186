"""Pure edits of rule syntax trees, simplest first (no hypothesis).

Shared by shrinking (rulec.fuzz), mutation strategies (rulec.strategies)
and search: every edit returns a new tree; `well_typed_edits` keeps those
the checker accepts.

    for smaller in well_typed_edits(rule):   # op swaps, subtree -> leaf, ...
        ...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from . import syntax as ast
from .errors import RuleErrors
from .generate import BINARY_CALLS, INFIX, REDUCERS, UNARY_CALLS, GeneratedRule, generated
from .printer import format_tree

_WALKED: dict[type, tuple[str, ...]] = {}


def _walked(kind: type) -> tuple[str, ...]:
    """The fields of a syntax node class that hold children (no spans),
    looked up once per class: the tree walks below run for every rule a
    search draws, and dataclasses.fields() per node was their main cost."""
    names = _WALKED.get(kind)
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(kind)
                      if not f.name.endswith("span") and f.name != "name_spans")
        _WALKED[kind] = names
    return names


_EXPRESSIONS = ast.Expr.__args__  # type: ignore[attr-defined]


def subexpressions(node, path=()):
    """(path, expression) of every expression in a syntax tree."""
    if isinstance(node, tuple):
        for index, item in enumerate(node):
            yield from subexpressions(item, (*path, index))
        return
    if isinstance(node, _EXPRESSIONS):
        yield path, node
    if hasattr(node, "__dataclass_fields__"):
        for name in _walked(type(node)):
            yield from subexpressions(getattr(node, name), (*path, name))


def statement_lists(node, path=()):
    """(path, statements) of every statement list (block or branch body)."""
    if isinstance(node, tuple):
        for index, item in enumerate(node):
            yield from statement_lists(item, (*path, index))
        return
    if isinstance(node, ast.Body):
        yield (*path, "statements"), node.statements
    if hasattr(node, "__dataclass_fields__") and not isinstance(node, _EXPRESSIONS):
        for name in _walked(type(node)):
            yield from statement_lists(getattr(node, name), (*path, name))


def replace(node, path, new):
    """`node` with the part at `path` replaced by `new` (a new tree)."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(node, tuple):
        return node[:head] + (replace(node[head], rest, new),) + node[head + 1:]
    return dataclasses.replace(node, **{head: replace(getattr(node, head), rest, new)})


def expression_edits(expr: ast.Expr) -> list[ast.Expr]:
    """Small edits of one expression, simplest first."""
    out: list[ast.Expr] = []
    if not isinstance(expr, ast.Number):
        out.append(ast.Number(1.0))  # the "decrease complexity" move
    if isinstance(expr, ast.Binary):
        out += [expr.left, expr.right]
        out += [dataclasses.replace(expr, op=op) for op in INFIX if op != expr.op]
    if isinstance(expr, ast.Call):
        out += list(expr.args)
        same = [f for f in UNARY_CALLS + BINARY_CALLS + REDUCERS
                if f != expr.func and len(expr.args) == (2 if f in BINARY_CALLS else 1)
                and (f in REDUCERS) == (expr.func in REDUCERS and len(expr.args) == 1)]
        out += [dataclasses.replace(expr, func=f) for f in same]
    if isinstance(expr, ast.Unary):
        out.append(expr.operand)
    if isinstance(expr, ast.Filter):
        out.append(expr.value)
        for name in ("incoming", "outgoing"):
            if expr.predicate != ast.Name(name):
                out.append(dataclasses.replace(expr, predicate=ast.Name(name)))
    return out


def _if_edits(stmt: ast.If) -> Iterator[tuple[ast.Stmt, ...]]:
    """Smaller replacements of an `if`: a branch's statements in its place,
    then the `if` without one of its branches or its `else`."""
    bodies = [body for _, body in stmt.branches]
    if stmt.orelse is not None:
        bodies.append(stmt.orelse)
    for body in bodies:
        yield body.statements
    if len(stmt.branches) > 1:
        for index in range(len(stmt.branches)):
            yield (dataclasses.replace(
                stmt, branches=stmt.branches[:index] + stmt.branches[index + 1:]),)
    if stmt.orelse is not None:
        yield (dataclasses.replace(stmt, orelse=None),)


def tree_edits(tree: ast.File) -> Iterator[ast.File]:
    """Every single edit of `tree`, lazily: statement deletions (the biggest
    steps toward a small rule), `if`s unwrapped or pruned, then expression
    edits."""
    lists = list(statement_lists(tree.items))
    for path, statements in lists:
        if len(statements) > 1:
            for index in range(len(statements)):
                shorter = statements[:index] + statements[index + 1:]
                yield ast.File(replace(tree.items, path, shorter))
    for path, statements in lists:
        for index, stmt in enumerate(statements):
            if isinstance(stmt, ast.If):
                for new in _if_edits(stmt):
                    if new:
                        edited = statements[:index] + new + statements[index + 1:]
                        yield ast.File(replace(tree.items, path, edited))
    for path, expr in subexpressions(tree.items):
        for new in expression_edits(expr):
            yield ast.File(replace(tree.items, path, new))


def well_typed_edits(rule: GeneratedRule, shorter: bool = False) -> Iterator[GeneratedRule]:
    """Every single edit of `rule` (statement deletions, op swaps,
    subtree-to-leaf, filter changes) that still type-checks, lazily; with
    `shorter`, only edits whose text is shorter (checked only then)."""
    for tree in tree_edits(rule.tree):
        if shorter and len(format_tree(tree)) >= len(rule.text):
            continue
        try:
            yield generated(tree)
        except RuleErrors:
            continue
