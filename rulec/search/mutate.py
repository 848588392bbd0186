"""Mutations of rule syntax trees, for evolution.

    child, how = mutate(tree, random.Random(7), space)

picks one of MUTATIONS at random and applies it at a random place; the
child is re-checked, and a child the checker refuses is drawn again (up to
`tries` times). New subtrees come from the same generator as random rules
(rulec.generate), so they follow the space's ops and odds.

- op_swap: an operator or function becomes another of the same arity
- shrink: a subtree becomes one of its children or a leaf (less complex)
- grow: a leaf becomes a random subtree
- filter_add / filter_remove / filter_change: wrap a vector in a filter,
  drop a filter, or draw a filter's predicate again
- if_add / if_remove: wrap a statement in an `if`, or splice an `if`'s
  first branch in its place
- constant: scale a number or a param's value (params stay in their range)
- insert / delete / duplicate: a new random statement, a statement less,
  a statement repeated
- leaf_swap: a leaf becomes another of its kind (`nbr.a` <-> `nbr.inp`,
  `w` <-> `peer.w` <-> `v`, one node slot for another)
- subtree_copy: a subexpression is copied over another one of the rule
  (the checker refuses a copy of the wrong type)
- assign_op: an assignment's operator becomes another (`=`, `+=`, `-=`,
  `*=`): a rule that moves its weights away from its targets is one `-=`
  away from one that moves them toward them
- message: a float leaf becomes what the neighbours send,
  `R(nbr.s)` or `R(E * nbr.s)`, maybe filtered to `incoming` or `outgoing`
  edges, where R is a reducer of the space, s a node slot (one the rule
  writes, 3 times in 4) and E an edge slot, its peer's, or none

and `crossover(tree, other, rng)` puts a subexpression or a statement of
another rule of the space in place of one of the tree's (evolution does
that for a share of its children; docs/search.md).
"""

from __future__ import annotations

import dataclasses
import math
import random

import numpy as np

from .. import syntax as ast
from ..checker import check
from ..dataflow import without_dead_writes
from ..edit import replace, statement_lists, subexpressions
from ..errors import RuleErrors
from ..generate import BINARY_CALLS, INFIX, REDUCERS, UNARY_CALLS, _Generator
from .canon import size
from .space import Space

MUTATIONS = ("op_swap", "shrink", "grow", "filter_add", "filter_remove", "filter_change",
             "if_add", "if_remove", "constant", "insert", "delete", "duplicate", "leaf_swap",
             "subtree_copy", "message", "assign_op")

_LEAVES = (ast.Number, ast.Name, ast.NbrRef, ast.PeerRef)


def depth(expr) -> int:
    """An expression's depth: 1 for a leaf."""
    if isinstance(expr, ast.Binary):
        return 1 + max(depth(expr.left), depth(expr.right))
    if isinstance(expr, ast.Unary):
        return 1 + depth(expr.operand)
    if isinstance(expr, ast.Call):
        return 1 + max((depth(a) for a in expr.args), default=0)
    if isinstance(expr, ast.Filter):
        return 1 + max(depth(expr.value), depth(expr.predicate))
    return 1


#: A child's `if`s nest at most this deep, and it has at most MAX_SIZE
#: statements and expression nodes (or as many as its parent): nested ifs
#: and copies grew rules past 1,000 nodes within minutes.
MAX_NESTING = 2
MAX_SIZE = 200


def extent(tree: ast.File) -> tuple[int, int, int]:
    """(the deepest expression, the longest statement list, the deepest
    nesting of `if`s) of a rule; an expression is a value, a condition or a
    filter."""
    deepest = longest = nested = 0
    for path, statements in statement_lists(tree.items):
        longest = max(longest, len(statements))
        nested = max(nested, sum(1 for part in path if part == "branches" or part == "orelse"))
        for stmt in statements:
            if isinstance(stmt, ast.If):
                exprs = [condition for condition, _ in stmt.branches]
            else:
                exprs = [stmt.value]
                if isinstance(stmt, ast.Assign) and stmt.target.predicate is not None:
                    exprs.append(stmt.target.predicate)
            deepest = max([deepest, *(depth(e) for e in exprs)])
    return deepest, longest, nested


class _RandomSource:
    """A generator source drawing from a random.Random."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def integer(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)


def _declared(tree: ast.File):
    nodes, edges, shared, params = [], [], [], []
    for item in tree.items:
        if isinstance(item, ast.SlotDecl):
            {"node": nodes, "edge": edges, "shared": shared}[item.kind].extend(item.names)
        elif isinstance(item, ast.ParamDecl):
            params.append(item.name)
    return nodes, edges, shared, params


class Mutator:
    """Applies random mutations to the trees of one space."""

    def __init__(self, space: Space, tries: int = 20) -> None:
        self.space = space
        self.options = space.options()
        self.tries = tries
        # a child may grow past the space's limits, not without bound (bloat):
        # 3 levels deeper (a 5-deep expression in a depth-3 space) and 2
        # statements longer per statement list
        self.max_depth = space.depth + 3
        self.max_statements = space.statements + 2

    def generator(self, tree: ast.File, rng: random.Random) -> _Generator:
        nodes, edges, shared, params = _declared(tree)
        gen = _Generator(_RandomSource(rng), self.options, nodes, edges, shared, params)
        gen.locals.append([])
        gen.next_local = 100 + rng.randrange(10_000)  # clear of the rule's own locals
        return gen

    def _is_vector(self, expr, edges, shared) -> bool:
        if isinstance(expr, ast.NbrRef | ast.PeerRef | ast.Filter):
            return True
        if isinstance(expr, ast.Name):
            return expr.name in edges or expr.name in shared or expr.name in (
                "incoming", "outgoing", "parity")
        return False

    # ------------------------------------------------------------ the moves

    def op_swap(self, tree, rng):
        sites = [(p, e) for p, e in subexpressions(tree.items)
                 if isinstance(e, ast.Binary | ast.Unary)
                 or (isinstance(e, ast.Call) and e.args)]
        path, e = rng.choice(sites)
        allowed = set(self.options.ops)
        if isinstance(e, ast.Binary):
            ops = [op for op in INFIX if op != e.op and op in allowed]
            return replace(tree.items, path, dataclasses.replace(e, op=rng.choice(ops)))
        if isinstance(e, ast.Unary):
            return replace(tree.items, path, e.operand if e.op == "not" else
                           dataclasses.replace(e, op="not" if e.op == "neg" else "neg"))
        if e.func in REDUCERS:
            names = [f for f in REDUCERS if f != e.func and f in allowed]
        elif len(e.args) == 1:
            names = [f for f in UNARY_CALLS if f != e.func and f in allowed]
        elif len(e.args) == 2:
            names = [f for f in BINARY_CALLS if f != e.func and f in allowed]
        else:
            names = []
        return replace(tree.items, path, dataclasses.replace(e, func=rng.choice(names)))

    def shrink(self, tree, rng):
        sites = [(p, e) for p, e in subexpressions(tree.items) if not isinstance(e, _LEAVES)]
        path, e = rng.choice(sites)
        kids = [k for k in (getattr(e, "args", ()) or ()) if k is not None]
        if isinstance(e, ast.Binary):
            kids = [e.left, e.right]
        elif isinstance(e, ast.Unary):
            kids = [e.operand]
        elif isinstance(e, ast.Filter):
            kids = [e.value]
        if kids and rng.random() < 0.7:
            return replace(tree.items, path, rng.choice(kids))
        _, edges, shared, _ = _declared(tree)
        gen = self.generator(tree, rng)
        vector = self._is_vector(e, edges, shared) or rng.random() < 0.3
        leaf = gen.vector_leaf("vector") if vector else gen.float_leaf("float")
        return replace(tree.items, path, leaf)

    def grow(self, tree, rng):
        sites = [(p, e) for p, e in subexpressions(tree.items) if isinstance(e, _LEAVES)]
        path, e = rng.choice(sites)
        _, edges, shared, _ = _declared(tree)
        gen = self.generator(tree, rng)
        if self._is_vector(e, edges, shared):
            new, _ = gen.vector_expr(2, "vector", allow_filter=False)
        else:
            new = gen.float_expr(2, "float")
        return replace(tree.items, path, new)

    def filter_add(self, tree, rng):
        _, edges, shared, _ = _declared(tree)
        sites = [(p, e) for p, e in subexpressions(tree.items)
                 if not isinstance(e, ast.Filter | ast.Number)]
        path, e = rng.choice(sites)
        gen = self.generator(tree, rng)
        return replace(tree.items, path, ast.Filter(e, gen.predicate(1)))

    def filter_remove(self, tree, rng):
        path, e = rng.choice([(p, e) for p, e in subexpressions(tree.items)
                              if isinstance(e, ast.Filter)])
        return replace(tree.items, path, e.value)

    def filter_change(self, tree, rng):
        path, e = rng.choice([(p, e) for p, e in subexpressions(tree.items)
                              if isinstance(e, ast.Filter)])
        gen = self.generator(tree, rng)
        return replace(tree.items, path, ast.Filter(e.value, gen.predicate(1)))

    def if_add(self, tree, rng):
        path, statements = rng.choice(list(statement_lists(tree.items)))
        index = rng.randrange(len(statements))
        gen = self.generator(tree, rng)
        condition = gen.float_expr(2, "float")
        wrapped = ast.If(((condition, ast.Body((statements[index],))),))
        new = statements[:index] + (wrapped,) + statements[index + 1:]
        return replace(tree.items, path, new)

    @staticmethod
    def _statement_of(tree, rng, kind):
        """A random statement of `kind` in the rule: (the path of its
        statement list, its index there, the list)."""
        sites = [(path, i) for path, statements in statement_lists(tree.items)
                 for i, s in enumerate(statements) if isinstance(s, kind)]
        path, index = rng.choice(sites)
        return path, index, dict(statement_lists(tree.items))[path]

    def if_remove(self, tree, rng):
        path, index, statements = self._statement_of(tree, rng, ast.If)
        chosen = statements[index]
        body = rng.choice([b for _, b in chosen.branches]
                          + ([chosen.orelse] if chosen.orelse else []))
        new = statements[:index] + body.statements + statements[index + 1:]
        return replace(tree.items, path, new)

    def constant(self, tree, rng):
        params = [i for i, item in enumerate(tree.items) if isinstance(item, ast.ParamDecl)]
        numbers = [(p, e) for p, e in subexpressions(tree.items) if isinstance(e, ast.Number)]
        factor = math.exp(rng.gauss(0.0, 0.7)) * (-1 if rng.random() < 0.1 else 1)
        if params and (not numbers or rng.random() < 0.5):
            index = rng.choice(params)
            item = tree.items[index]
            value = item.value * abs(factor)
            bounds = self.space.param_range(item.name)
            if bounds is not None:
                value = min(max(value, bounds[0]), bounds[1])
            new = dataclasses.replace(item, value=float(np.float32(value)))
            return tree.items[:index] + (new,) + tree.items[index + 1:]
        path, e = rng.choice(numbers)
        value = e.value * factor if e.value != 0 else rng.choice([0.1, 1.0, -1.0])
        # a negative value is `-` of a number, as the parser reads it back
        # (a Number(-1.5) would come back from its text as neg(1.5))
        return replace(tree.items, path, ast.number(float(np.float32(value))))

    def insert(self, tree, rng):
        path, statements = rng.choice(list(statement_lists(tree.items)))
        gen = self.generator(tree, rng)
        gen.in_init = any(isinstance(item, ast.Block) and item.kind == "init"
                          and path[0] == i for i, item in enumerate(tree.items))
        index = rng.randrange(len(statements) + 1)
        new = statements[:index] + (gen.statement(1, 1),) + statements[index:]
        return replace(tree.items, path, new)

    def delete(self, tree, rng):
        sites = [(p, s) for p, s in statement_lists(tree.items) if len(s) > 1]
        path, statements = rng.choice(sites)
        index = rng.randrange(len(statements))
        return replace(tree.items, path, statements[:index] + statements[index + 1:])

    def duplicate(self, tree, rng):
        path, statements = rng.choice(list(statement_lists(tree.items)))
        index = rng.randrange(len(statements))
        target = rng.randrange(index + 1, len(statements) + 1)
        new = statements[:target] + (statements[index],) + statements[target:]
        return replace(tree.items, path, new)

    def leaf_swap(self, tree, rng):
        nodes, edges, _, _ = _declared(tree)
        sites = []
        for path, e in subexpressions(tree.items):
            if isinstance(e, ast.NbrRef) and e.name in nodes:
                sites.append((path, [ast.NbrRef(n) for n in nodes if n != e.name]))
            elif isinstance(e, ast.PeerRef):
                sites.append((path, [ast.Name(e.name)]
                              + [ast.PeerRef(n) for n in edges if n != e.name]))
            elif isinstance(e, ast.Name) and e.name in edges:
                sites.append((path, [ast.PeerRef(e.name)]
                              + [ast.Name(n) for n in edges if n != e.name]))
            elif isinstance(e, ast.Name) and e.name in nodes:
                sites.append((path, [ast.Name(n) for n in nodes if n != e.name]))
        path, options = rng.choice([site for site in sites if site[1]])
        return replace(tree.items, path, rng.choice(options))

    def subtree_copy(self, tree, rng):
        sites = list(subexpressions(tree.items))
        (to, _), (_, source) = rng.sample(sites, 2)
        return replace(tree.items, to, source)

    def assign_op(self, tree, rng):
        path, index, statements = self._statement_of(tree, rng, ast.Assign)
        stmt = statements[index]
        op = rng.choice([op for op in ("=", "+=", "-=", "*=") if op != stmt.op])
        new = statements[:index] + (dataclasses.replace(stmt, op=op),) + statements[index + 1:]
        return replace(tree.items, path, new)

    def message(self, tree, rng):
        """A float leaf becomes an aggregate of a node slot over the
        neighbours, weighted by an edge slot or not: the shape every local
        rule's communication has (a hidden error `sum(peer.w * nbr.delta)`,
        an activation `sum(w * nbr.a)`, a vote `mean(nbr.s)`), which `grow`
        reaches about once in 10^5 children."""
        nodes, edges, shared, _ = _declared(tree)
        reducers = [r for r in ("sum", "mean", "max", "min") if r in self.options.ops]
        sites = [(p, e) for p, e in subexpressions(tree.items)
                 if isinstance(e, ast.Number | ast.Name) and not self._is_vector(e, edges, shared)]
        path, _ = rng.choice(sites)
        written = sorted({stmt.target.name for _, statements in statement_lists(tree.items)
                          for stmt in statements
                          if isinstance(stmt, ast.Assign) and stmt.target.name in nodes})
        slot = rng.choice(written if written and rng.random() < 0.75 else nodes)
        sent = ast.NbrRef(slot)
        weight = rng.choice([None] + [ast.Name(e) for e in edges] + [ast.PeerRef(e) for e in edges])
        if weight is not None:
            sent = ast.Binary("mul", weight, sent)
        side = rng.choice([None, "incoming", "outgoing"])
        if side is not None:
            sent = ast.Filter(sent, ast.Name(side))
        return replace(tree.items, path, ast.Call(rng.choice(reducers), (sent,)))

    def crossover(self, tree: ast.File, other: ast.File,
                  rng: random.Random) -> tuple[ast.File, str] | None:
        """A well-typed child of `tree` with one subexpression (or, one time in
        three, one statement) of `other` in place of one of its own; None
        when `tries` draws all failed to type-check (a slot `other` has and
        `tree` lacks, a float where a vector goes)."""
        for _ in range(self.tries):
            try:
                if rng.random() < 1 / 3:
                    path, statements = rng.choice(list(statement_lists(tree.items)))
                    _, theirs = rng.choice(list(statement_lists(other.items)))
                    index = rng.randrange(len(statements))
                    items = replace(tree.items, path, statements[:index]
                                    + (rng.choice(theirs),) + statements[index + 1:])
                else:
                    to, _ = rng.choice(list(subexpressions(tree.items)))
                    _, source = rng.choice(list(subexpressions(other.items)))
                    items = replace(tree.items, to, source)
            except (IndexError, ValueError):
                continue
            child = self._checked(tree, items)
            if child is not None:
                return child, "crossover"
        return None

    def _checked(self, tree: ast.File, items) -> ast.File | None:
        """The child of `items` (dead writes dropped), or None if it is its
        parent or does not type-check."""
        child = ast.File(items)
        if self.options.live_only:  # a write a later one replaces does nothing: drop it
            child = without_dead_writes(child, exact=False)
        if child == tree:
            return None
        limits = (self.max_depth, self.max_statements, MAX_NESTING)
        if any(mine > max(limit, parents) for mine, limit, parents
               in zip(extent(child), limits, extent(tree), strict=True)) \
                or size(child) > max(MAX_SIZE, size(tree)):
            return None  # bloat: past the limits, and past its parent
        try:
            check(child)
        except (RuleErrors, RecursionError):
            return None
        return child

    # ------------------------------------------------------------- driving

    def mutate(self, tree: ast.File, rng: random.Random) -> tuple[ast.File, str] | None:
        """A well-typed child of `tree` and the mutation's name, or None when
        `tries` draws all failed to type-check."""
        for _ in range(self.tries):
            how = rng.choice(MUTATIONS)
            try:
                items = getattr(self, how)(tree, rng)
            except (IndexError, ValueError):  # no place for this move in this rule
                continue
            child = self._checked(tree, items)
            if child is not None:
                return child, how
        return None
