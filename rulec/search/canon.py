"""Canonical forms of rules: one text, and one hash, for rules that differ
only in the names of their locals, slots, params and the rule itself, and
in writes that never land (a later write replaces them).

    canonical_text(tree, keep={"inp", "target", "train", "a"})

keeps the names in `keep` (the protocol's slots, which the harness reads
by name) and renames the rest by kind and place: node slots h0, h1, ...;
edge slots w0, ...; shared slots g0, ...; params p0, ...; locals t1, t2,
... in the order they are defined; the rule is `rule`. Declarations keep
their order (a slot's place decides its random stream).
"""

from __future__ import annotations

import hashlib

from .. import syntax as ast
from ..dataflow import without_dead_writes
from ..printer import Names, format_tree


def _prefix_names(tree: ast.File, keep) -> dict[str, str]:
    mapping: dict[str, str] = {}
    counts = {"node": 0, "edge": 0, "shared": 0, "param": 0}
    prefix = {"node": "h", "edge": "w", "shared": "g", "param": "p"}
    for item in tree.items:
        if isinstance(item, ast.SlotDecl):
            names, kind = item.names, item.kind
        elif isinstance(item, ast.ParamDecl):
            names, kind = (item.name,), "param"
        else:
            continue
        for name in names:
            if name in keep:
                continue
            mapping[name] = f"{prefix[kind]}{counts[kind]}"
            counts[kind] += 1
    return mapping


def canonical_tree(tree: ast.File, keep=frozenset()) -> ast.File:
    """`tree` without its dead writes (rulec.dataflow: they do nothing), and
    with every name not in `keep` renamed by kind and place: the canonical
    text, parsed (printing then parsing gives back the tree printed)."""
    from ..parser import parse_text

    return parse_text(canonical_text(tree, keep), "canonical.rule")


def canonical_text(tree: ast.File, keep=frozenset()) -> str:
    """The canonical text of `tree` (see the module's docstring), renamed as
    it prints (printer.Names): no renamed tree is built, and a search makes
    the canonical text of every rule it draws."""
    tree = without_dead_writes(tree)
    return format_tree(tree, Names(_prefix_names(tree, keep)))


def text_hash(text: str) -> str:
    """A short, stable hash of a text (hex)."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def size(tree: ast.File) -> int:
    """A rule's size: its statements and expression nodes (the hall of fame's
    second objective; smaller is simpler): what edit.statement_lists and
    edit.subexpressions find, counted in one walk without their paths (a
    search sizes every rule it draws)."""
    return sum(_body_size(item.body) for item in tree.items if isinstance(item, ast.Block))


def _body_size(body: ast.Body) -> int:
    total = len(body.statements)
    for stmt in body.statements:
        kind = type(stmt)
        if kind is ast.If:
            for condition, branch in stmt.branches:
                total += _expr_size(condition) + _body_size(branch)
            if stmt.orelse is not None:
                total += _body_size(stmt.orelse)
            continue
        total += _expr_size(stmt.value)
        if kind is ast.Assign and stmt.target.predicate is not None:
            total += _expr_size(stmt.target.predicate)
    return total


def _expr_size(expr) -> int:
    kind = type(expr)
    if kind is ast.Binary:
        return 1 + _expr_size(expr.left) + _expr_size(expr.right)
    if kind is ast.Call:
        total = 1
        for arg in expr.args:
            total += _expr_size(arg)
        return total
    if kind is ast.Unary:
        return 1 + _expr_size(expr.operand)
    if kind is ast.Filter:
        return 1 + _expr_size(expr.value) + _expr_size(expr.predicate)
    return 1  # a leaf


def identity(tree: ast.File, keep: frozenset[str]) -> dict:
    """A rule's `canon_hash` (of its canonical text, `keep` the protocol's
    slots) and `size`: what a search stores to find duplicates and rank."""
    return {"canon_hash": text_hash(canonical_text(tree, keep)), "size": size(tree)}
