"""What a rule's statements do to the state, read from its syntax tree: the
writes that are overwritten before they land (dead writes), and which slots
can influence which across steps.

A block is synchronous (docs/language.md): every read sees the state at the
block's start, and writes land at its end in statement order, the last write
to an element winning. So in

    update {
        a -= target          # dead: the write below replaces it
        a *= mean(nbr.inp)
    }

the first statement does nothing: `a` ends as `a * mean(nbr.inp)` whatever
the target is. A write is **dead** when a later write to the same slot
replaces it wherever it applies: the later one has no filter (on its
target or its value) and sits in the same branch or one that encloses it.

The **influence graph** has an edge from slot `s` to slot `t` when a live
write to `t` reads `s` (in its value, its filters, the conditions of the
`if`s around it, or the `let`s those read). A slot can affect another, over
any number of steps, only along its paths: a rule whose target slot has no
path to its output slot cannot learn from the targets, whatever its text
says.

Everything here works on syntax trees with or without source positions
(generated trees have none), and is linear in the rule's size.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass

from . import syntax as ast
from .errors import RuleError, RuleWarning
from .ops import DRAWS, REDUCERS

#: Where a statement sits: the (if statement's id, branch index) pairs of the
#: branches around it, outermost first; an `else` is branch -1.
Path = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Write:
    """One assignment of a block, where it sits and whether it is full."""

    assign: ast.Assign
    block: str  # the block's label
    order: int  # its place among the block's statements, in source order
    path: Path
    full: bool  # no filter on its target or its value: it writes every element


def _restricted(expr: ast.Expr, scopes: list[dict[str, bool]]) -> bool:
    """Whether an expression's value may be a filtered vector (a write of it
    changes only some half-edges). Conservative: a filter anywhere outside a
    reducer counts. `scopes`: the locals in reach, innermost last."""
    kind = type(expr)  # the syntax's classes have no subclasses; the most common first
    if kind is ast.Binary:
        return _restricted(expr.left, scopes) or _restricted(expr.right, scopes)
    if kind is ast.Name:
        return next((scope[expr.name] for scope in reversed(scopes) if expr.name in scope),
                    False)
    if kind is ast.Call:
        if expr.func in REDUCERS:
            return False
        return any(_restricted(arg, scopes) for arg in expr.args)
    if kind is ast.Unary:
        return _restricted(expr.operand, scopes)
    return kind is ast.Filter


def writes(tree: ast.File) -> Iterator[Write]:
    """Every assignment of every block, in source order."""
    for item in tree.items:
        if isinstance(item, ast.Block):
            yield from _writes(item.body.statements, item.label, (), [0], [{}])


def _writes(statements, block: str, path: Path, counter: list[int],
            scopes: list[dict[str, bool]]) -> Iterator[Write]:
    scopes = [*scopes, {}]
    for stmt in statements:
        counter[0] += 1
        if isinstance(stmt, ast.Let):
            scopes[-1][stmt.name] = _restricted(stmt.value, scopes)
        elif isinstance(stmt, ast.Assign):
            full = stmt.target.predicate is None and not _restricted(stmt.value, scopes)
            yield Write(stmt, block, counter[0], path, full)
        else:  # a branch is known by its `if`'s place (two equal ifs are two places)
            place = counter[0]
            for index, (_, body) in enumerate(stmt.branches):
                yield from _writes(body.statements, block, (*path, (place, index)),
                                   counter, scopes)
            if stmt.orelse is not None:
                yield from _writes(stmt.orelse.statements, block, (*path, (place, -1)),
                                   counter, scopes)


def dead_writes(tree: ast.File) -> list[tuple[ast.Assign, ast.Assign]]:
    """(dead write, the later write that replaces it) for every write that
    never lands, in source order."""
    return [(dead.assign, killer.assign) for dead, killer in _dead(tree)]


#: the last tree _dead was asked about, and its answer: a search asks three
#: times of every rule it draws (the generator, the canonical text, the
#: static hurdle), and trees are immutable
_last_dead: tuple = (None, None)


def _dead(tree: ast.File) -> list[tuple[Write, Write]]:
    """(dead write, the later write that replaces it), in source order. A
    write is known by its block and place, not by its object: a tree may
    hold one statement object at two places (a mutation copied it)."""
    global _last_dead
    last, found = _last_dead
    if last is tree:
        return found
    found = _dead_writes_of(tree)
    _last_dead = (tree, found)
    return found


def _dead_writes_of(tree: ast.File) -> list[tuple[Write, Write]]:
    found = []
    by_block: dict[str, list[Write]] = {}
    for write in writes(tree):
        by_block.setdefault(write.block, []).append(write)
    for block_writes in by_block.values():
        # walking backward: the nearest later full write per (slot, branch
        # path); a write is dead if one sits on its path or a prefix of it
        later: dict[tuple[str, Path], Write] = {}
        for write in reversed(block_writes):
            name = write.assign.target.name
            killer = next((later[(name, write.path[:depth])]
                           for depth in range(len(write.path), -1, -1)
                           if (name, write.path[:depth]) in later), None)
            if killer is not None:
                found.append((write, killer))
            if write.full:
                later[(name, write.path)] = write
    return sorted(found, key=lambda f: (f[0].block, f[0].order))


def _draws(expr: ast.Expr | None) -> bool:
    """Whether an expression makes a random draw (its place numbers the
    block's later draws, so removing it would change their values)."""
    if expr is None:
        return False
    if isinstance(expr, ast.Call):
        return expr.func in DRAWS or any(_draws(arg) for arg in expr.args)
    if isinstance(expr, ast.Unary):
        return _draws(expr.operand)
    if isinstance(expr, ast.Binary):
        return _draws(expr.left) or _draws(expr.right)
    if isinstance(expr, ast.Filter):
        return _draws(expr.value) or _draws(expr.predicate)
    return False


def without_dead_writes(tree: ast.File, exact: bool = True) -> ast.File:
    """`tree` with its dead writes removed (and an `if` left with no
    statement at all removed too). With `exact` (canonical text), the rule
    behaves exactly the same: a dead write that makes a random draw stays,
    as each draw's place in its block decides the values of the draws after
    it. Without (the search's generator), every dead write goes."""
    dead = {(write.block, write.order) for write, _ in _dead(tree)
            if not (exact and (_draws(write.assign.value)
                               or _draws(write.assign.target.predicate)))}
    if not dead:
        return tree
    label, counter = "", [0]  # the places as _writes numbers them

    def body(b: ast.Body) -> ast.Body:
        return ast.Body(statements(b.statements), b.span)

    def statements(items) -> tuple:
        out = []
        for stmt in items:
            counter[0] += 1
            if isinstance(stmt, ast.Assign):
                if (label, counter[0]) not in dead:
                    out.append(stmt)
            elif isinstance(stmt, ast.If):
                branches = tuple((c, body(b)) for c, b in stmt.branches)
                orelse = None if stmt.orelse is None else body(stmt.orelse)
                if orelse is not None and not orelse.statements:
                    orelse = None  # an empty else does nothing
                if any(b.statements for _, b in branches) or orelse is not None:
                    out.append(ast.If(branches, orelse, stmt.span))
            else:
                out.append(stmt)
        return tuple(out)

    items = []
    for item in tree.items:
        if isinstance(item, ast.Block):
            label, counter[0] = item.label, 0
            item = ast.Block(item.kind, item.name, body(item.body), item.span)
        items.append(item)
    # an init block left empty does nothing (update blocks stay: one is required)
    out = ast.File(tuple(item for item in items if not (
        isinstance(item, ast.Block) and item.kind == "init" and not item.body.statements)))
    if not exact:
        # every dead write went, and taking writes away makes no other write
        # dead (a dead one has a later full write on its path): the search's
        # canonical text and static hurdle then ask about this tree at no cost
        global _last_dead
        _last_dead = (out, [])
    return out


# ------------------------------------------------------------ influence


def names_in(expr: ast.Expr, env: dict[str, frozenset[str]]) -> frozenset[str]:
    """The slot, param and built-in names `expr` reads, through the locals of
    `env` (a local stands for what its value reads)."""
    kind = type(expr)  # the syntax's classes have no subclasses; the most common first
    if kind is ast.Binary:
        return names_in(expr.left, env) | names_in(expr.right, env)
    if kind is ast.Name:
        found = env.get(expr.name)  # a local: what its value reads (maybe nothing)
        return found if found is not None else frozenset((expr.name,))
    if kind is ast.Number:
        return _NOTHING
    if kind is ast.Call:
        return _NOTHING.union(*(names_in(a, env) for a in expr.args))
    if kind is ast.NbrRef or kind is ast.PeerRef:
        return frozenset((expr.name,))
    if kind is ast.Unary:
        return names_in(expr.operand, env)
    assert kind is ast.Filter, expr
    return names_in(expr.value, env) | names_in(expr.predicate, env)


_NOTHING: frozenset[str] = frozenset()


def influence(tree: ast.File, blocks: tuple[str, ...] | None = None) -> dict[str, set[str]]:
    """slot -> the names a live write to it reads, over the blocks labelled in
    `blocks` (all by default). A write whose target is a slot `s` depends on
    what its value, its target filter and the conditions around it read."""
    live = without_dead_writes(tree, exact=False)
    graph: dict[str, set[str]] = {}
    for item in live.items:
        if isinstance(item, ast.Block) and (blocks is None or item.label in blocks):
            _influence(item.body.statements, {}, frozenset(), graph)
    return graph


def _influence(statements, env: dict[str, frozenset[str]], conditions: frozenset[str],
               graph: dict[str, set[str]]) -> None:
    env = dict(env)  # a block's locals end with it
    for stmt in statements:
        if isinstance(stmt, ast.Let):
            env[stmt.name] = names_in(stmt.value, env)
        elif isinstance(stmt, ast.Assign):
            read = names_in(stmt.value, env) | conditions
            if stmt.target.predicate is not None:
                read |= names_in(stmt.target.predicate, env)
            if stmt.op != "=":
                read |= {stmt.target.name}
            graph.setdefault(stmt.target.name, set()).update(read)
        else:
            seen = conditions
            for condition, body in stmt.branches:
                # a branch applies where its condition holds and no earlier one did
                seen = seen | names_in(condition, env)
                _influence(body.statements, env, seen, graph)
            if stmt.orelse is not None:
                _influence(stmt.orelse.statements, env, seen, graph)


def reaches(graph: dict[str, set[str]], source: str, target: str) -> bool:
    """Whether slot `source` can influence slot `target` over any number of
    steps (a path in the influence graph from `source` to `target`)."""
    readers: dict[str, set[str]] = {}
    for written, read in graph.items():
        for name in read:
            readers.setdefault(name, set()).add(written)
    seen, todo = {source}, [source]
    while todo:
        name = todo.pop()
        if name == target:
            return True
        for nxt in readers.get(name, ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


# -------------------------------------------------------------- warnings


def lint(tree: ast.File) -> list[RuleError]:
    """Warnings about a rule that checks: W101 for each dead write."""
    out = []
    for dead, killer in dead_writes(tree):
        name = dead.target.name
        where = f"line {killer.span.line}" if killer.span.line else "later"
        out.append(RuleError(
            "W101", dead.span,
            f"this write to '{name}' never lands: the write to '{name}' on {where} replaces it",
            "writes land when the block ends and the last one wins (reads see the block's "
            f"start): fold both into one statement, e.g. {name} = ..., or use let first",
            severity="warning"))
    return out


def warn_lint(tree: ast.File, filename: str, source: str, stacklevel: int = 2) -> None:
    """Issue the rule's lint warnings (lint) as one rulec.RuleWarning, each
    rendered with file:line:col and a caret (rulec.compile and the CLI)."""
    found = lint(tree)
    if found:
        warnings.warn(RuleWarning("\n".join(w.render(filename, source) for w in found)),
                      stacklevel=stacklevel + 1)
