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


class _Renamer:
    def __init__(self, globals_: dict[str, str]) -> None:
        self.globals = globals_
        self.next_local = 1

    def expr(self, e, env: dict[str, str]):
        """`e` renamed (the same object where nothing in it is)."""
        kind = type(e)
        if kind is ast.Name:
            new = env.get(e.name, e.name)
            return e if new == e.name else ast.Name(new)
        if kind is ast.Binary:
            left, right = self.expr(e.left, env), self.expr(e.right, env)
            if left is e.left and right is e.right:
                return e
            return ast.Binary(e.op, left, right)
        if kind is ast.NbrRef or kind is ast.PeerRef:
            new = self.globals.get(e.name, e.name)
            return e if new == e.name else kind(new)
        if kind is ast.Call:
            args = tuple([self.expr(a, env) for a in e.args])
            if all(a is b for a, b in zip(args, e.args, strict=True)):
                return e
            return ast.Call(e.func, args)
        if kind is ast.Unary:
            operand = self.expr(e.operand, env)
            return e if operand is e.operand else ast.Unary(e.op, operand)
        if kind is ast.Filter:
            value, predicate = self.expr(e.value, env), self.expr(e.predicate, env)
            if value is e.value and predicate is e.predicate:
                return e
            return ast.Filter(value, predicate)
        return e

    def body(self, body: ast.Body, env: dict[str, str]) -> ast.Body:
        env = dict(env)  # a block's locals end with it
        out = []
        for stmt in body.statements:
            if isinstance(stmt, ast.Let):
                value = self.expr(stmt.value, env)
                env[stmt.name] = f"t{self.next_local}"
                self.next_local += 1
                out.append(ast.Let(env[stmt.name], value))
            elif isinstance(stmt, ast.Assign):
                t = stmt.target
                predicate = None if t.predicate is None else self.expr(t.predicate, env)
                target = ast.Target(t.kind, self.globals.get(t.name, t.name), predicate)
                out.append(ast.Assign(target, stmt.op, self.expr(stmt.value, env)))
            else:
                branches = tuple((self.expr(c, env), self.body(b, env))
                                 for c, b in stmt.branches)
                orelse = None if stmt.orelse is None else self.body(stmt.orelse, env)
                out.append(ast.If(branches, orelse))
        return ast.Body(tuple(out))


def canonical_tree(tree: ast.File, keep=frozenset()) -> ast.File:
    """`tree` without its dead writes (rulec.dataflow: they do nothing), and
    with every name not in `keep` renamed by kind and place."""
    tree = without_dead_writes(tree)
    renamer = _Renamer(_prefix_names(tree, keep))
    items: list[ast.Item] = []
    for item in tree.items:
        if isinstance(item, ast.RuleDecl):
            items.append(ast.RuleDecl("rule"))
        elif isinstance(item, ast.ParamDecl):
            items.append(ast.ParamDecl(renamer.globals.get(item.name, item.name), item.value))
        elif isinstance(item, ast.SlotDecl):
            items.append(ast.SlotDecl(item.kind, tuple(renamer.globals.get(n, n)
                                                       for n in item.names)))
        else:
            items.append(ast.Block(item.kind, item.name, renamer.body(item.body,
                                                                      renamer.globals)))
    return ast.File(tuple(items))


def canonical_text(tree: ast.File, keep=frozenset()) -> str:
    """format_tree(canonical_tree(tree, keep)), renamed as it prints (no new
    tree: a search makes the canonical text of every rule it draws)."""
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
