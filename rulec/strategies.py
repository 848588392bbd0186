"""Hypothesis strategies for rules, graphs and states (docs/fuzzing.md).

    from hypothesis import given
    from rulec.strategies import rules, graphs, states

    @given(rules())
    def test_my_property(rule):
        rule.text        # canonical source text
        rule.program     # the checked IR
        rule.compile()   # a rulec.Rule

Every generated rule type-checks. The generator follows the language's
types and what makes random rules meaningful: reducers take vectors; vector
operands are preferred over floats (`vector_ratio`, default 2:1); a filter,
once chosen on a vector subtree, covers that subtree (no other filter inside
it); filters come from the built-ins (`incoming`, `outgoing`) and from random
comparisons; `if` conditions are float expressions (tested > 0); edge slots
get vectors in `update` (a float is allowed in `init`); a per-rule base
expression is reused at leaves with probability `reuse`; random draws appear
mostly in `init`. Every choice's first option is the simplest, so hypothesis
shrinks toward small, readable rules.

Needs hypothesis (pip install 'rulec[fuzz]' or the test extra).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from . import ir
from . import syntax as ast
from .frontend import load_program
from .graph import Graph
from .printer import format_tree
from .state import State

NODE_NAMES = ("x", "y", "z", "m")
EDGE_NAMES = ("w", "v", "q")
SHARED_NAMES = ("g", "k")
PARAM_NAMES = ("lr", "alpha", "beta")
BLOCK_NAMES = ("relax", "decay")

UNARY_CALLS = ("abs", "sign", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "sin", "cos",
               "square")
BINARY_CALLS = ("min", "max")
INFIX = ("add", "sub", "mul", "div", "lt", "le", "gt", "ge", "eq", "ne", "and", "or")
REDUCERS = ("sum", "mean", "max", "min", "count")
#: Every op name the generator can use (the `ops` knob takes a subset).
ALL_OPS = frozenset(INFIX + UNARY_CALLS + BINARY_CALLS + ("neg", "not", "clip", "select")
                    + REDUCERS)


@dataclass(frozen=True)
class GeneratedRule:
    """A generated rule: its syntax tree, canonical text and checked IR."""

    tree: ast.File
    text: str
    program: ir.Program

    def compile(self, backend: str = "c"):
        from .runtime import Rule

        return Rule(self.program, backend, self.text)

    def __str__(self) -> str:
        return self.text


def generated(tree: ast.File) -> GeneratedRule:
    """Print and check a tree (raises RuleErrors if it is not well-typed)."""
    text = format_tree(tree)
    return GeneratedRule(tree, text, load_program(text, "fuzz.rule"))


@dataclass
class _Options:
    max_depth: int
    vector_ratio: float
    reuse: float
    ops: frozenset
    draws_in_update: float


class _Generator:
    """Draws one rule; `draw` is hypothesis's."""

    def __init__(self, draw, options: _Options, nodes, edges, shared, params) -> None:
        self.draw = draw
        self.o = options
        self.nodes, self.edges, self.shared, self.params = nodes, edges, shared, params
        self.locals: list[list[tuple[str, str]]] = []  # frames of (name, 'float'|'vector')
        self.next_local = 1
        self.in_init = False
        self.base_float: ast.Expr | None = None
        self.base_vector: ast.Expr | None = None

    # ------------------------------------------------------------- helpers

    def choice(self, options):
        return options[self.draw(st.integers(0, len(options) - 1))]

    def chance(self, p: float) -> bool:
        if p <= 0:
            return False
        if p >= 1:
            return True
        # integers shrink toward 0, i.e. toward "no"
        return self.draw(st.integers(0, 999)) >= 1000 * (1 - p)

    def visible(self, kind: str) -> list[str]:
        return [name for frame in self.locals for name, k in frame if k == kind]

    def allowed(self, names):
        return [n for n in names if n in self.o.ops]

    def draw_ok(self) -> bool:
        return self.chance(0.5 if self.in_init else self.o.draws_in_update)

    # ---------------------------------------------------------- expressions

    def number(self) -> ast.Number:
        value = self.choice([1.0, 0.5, 2.0, 0.0, 0.1, 3.0, 1e-3, 10.0])
        return ast.Number(float(np.float32(value)))

    def float_leaf(self, ctx: str) -> ast.Expr:
        if self.base_float is not None and self.chance(self.o.reuse):
            return self.base_float
        options = [self.number(), ast.Name(self.choice(self.nodes))]
        if self.params:
            options.append(ast.Name(self.choice(self.params)))
        options += [ast.Name("degree"), ast.Name("nodes"), ast.Name("time")]
        floats = self.visible("float")
        if floats:
            options.append(ast.Name(self.choice(floats)))
        if ctx == "float" and self.draw_ok():
            return ast.Call(self.choice(["uniform", "gauss"]), ())
        return self.choice(options)

    def vector_leaf(self, ctx: str) -> ast.Expr:
        if self.base_vector is not None and self.chance(self.o.reuse):
            return self.base_vector
        options: list[ast.Expr] = [ast.Name(self.choice(self.edges)),
                                   ast.NbrRef(self.choice(self.nodes)),
                                   ast.Name("incoming"), ast.Name("outgoing"),
                                   ast.Name("parity"), ast.NbrRef("degree"),
                                   ast.PeerRef(self.choice(self.edges))]
        if self.shared:
            options.append(ast.Name(self.choice(self.shared)))
        vectors = self.visible("vector")
        if vectors:
            options.append(ast.Name(self.choice(vectors)))
        if ctx == "vector" and self.draw_ok():
            return ast.Call(self.choice(["uniform", "gauss"]), ())
        return self.choice(options)

    def float_expr(self, depth: int, ctx: str = "float") -> ast.Expr:
        if depth <= 0 or self.draw(st.integers(0, 5)) == 0:
            return self.float_leaf(ctx)
        kinds = ["leaf", "binary", "call", "reduce", "unary"]
        kind = self.choice(kinds)
        if kind == "leaf":
            return self.float_leaf(ctx)
        if kind == "reduce" and self.allowed(REDUCERS):
            vector, _ = self.vector_expr(depth - 1, "vector")
            return ast.Call(self.choice(self.allowed(REDUCERS)), (vector,))
        if kind == "binary" and self.allowed(INFIX):
            op = self.choice(self.allowed(INFIX))
            return ast.Binary(op, self.float_expr(depth - 1, ctx), self.float_expr(depth - 1, ctx))
        if kind == "call":
            return self.call(depth, ctx, lambda d: (self.float_expr(d, ctx), False))[0]
        if kind == "unary" and self.allowed(["neg", "not"]):
            return ast.Unary(self.choice(self.allowed(["neg", "not"])),
                             self.float_expr(depth - 1, ctx))
        return self.float_leaf(ctx)

    def call(self, depth, ctx, child):
        """A function call whose arguments come from child(depth): (expr, filtered)."""
        names = self.allowed(UNARY_CALLS + BINARY_CALLS + ("clip", "select"))
        if not names:
            return child(depth - 1)
        name = self.choice(names)
        arity = {"clip": 3, "select": 3, "min": 2, "max": 2}.get(name, 1)
        args, filtered = [], False
        for index in range(arity):
            if index == 0 or not filtered:
                expr, f = child(depth - 1)
            else:
                expr, f = self.float_expr(depth - 1, ctx), False
            args.append(expr)
            filtered = filtered or f
        return ast.Call(name, tuple(args)), filtered

    def predicate(self, depth: int) -> ast.Expr:
        """An unfiltered vector predicate for a filter."""
        kind = self.draw(st.integers(0, 2))
        if kind == 0 or depth <= 0:
            return ast.Name(self.choice(["incoming", "outgoing"]))
        left, _ = self.vector_expr(depth - 1, "vector", allow_filter=False)
        op = self.choice(self.allowed(["gt", "lt", "ge", "le", "ne", "eq"]) or ["gt"])
        return ast.Binary(op, left, self.float_expr(depth - 1, "vector"))

    def vector_expr(self, depth: int, ctx: str = "vector",
                    allow_filter: bool = True) -> tuple[ast.Expr, bool]:
        """A vector expression and whether it carries a filter."""
        if depth <= 0 or self.draw(st.integers(0, 5)) == 0:
            return self.vector_leaf(ctx), False
        kind = self.choice(["leaf", "binary", "call", "filter", "unary"])
        if kind == "filter" and allow_filter:
            value, _ = self.vector_expr(depth - 1, ctx, allow_filter=False)
            return ast.Filter(value, self.predicate(depth - 1)), True
        if kind == "binary" and self.allowed(INFIX):
            op = self.choice(self.allowed(INFIX))
            left, filtered = self.vector_expr(depth - 1, ctx, allow_filter)
            ratio = self.o.vector_ratio / (1 + self.o.vector_ratio)
            if self.chance(ratio):
                right, right_filtered = self.vector_expr(depth - 1, ctx,
                                                         allow_filter and not filtered)
            else:
                right, right_filtered = self.float_expr(depth - 1, ctx), False
            if self.chance(0.5):
                left, right = right, left
            return ast.Binary(op, left, right), filtered or right_filtered
        if kind == "call":
            return self.call(depth, ctx, lambda d: self.vector_expr(d, ctx, allow_filter))
        if kind == "unary" and self.allowed(["neg", "not"]):
            operand, filtered = self.vector_expr(depth - 1, ctx, allow_filter)
            return ast.Unary(self.choice(self.allowed(["neg", "not"])), operand), filtered
        return self.vector_leaf(ctx), False

    # ----------------------------------------------------------- statements

    def assign_op(self) -> str:
        return self.choice(["=", "+=", "-=", "*="])

    def statement(self, depth: int, nesting: int) -> ast.Stmt:
        kinds = ["node", "edge", "let", "if", "shared"]
        kind = self.choice(kinds)
        d = self.o.max_depth
        if kind == "edge":
            name = self.choice(self.edges)
            if self.in_init and self.chance(0.3):
                return ast.Assign(ast.Target("slot", name), "=", self.float_expr(d, "float"))
            if self.chance(0.25):
                value = self.float_expr(d, "vector") if self.chance(0.3) else \
                    self.vector_expr(d, "vector", allow_filter=False)[0]
                return ast.Assign(ast.Target("slot", name, self.predicate(1)), self.assign_op(),
                                  value)
            value, _ = self.vector_expr(d, "vector")
            return ast.Assign(ast.Target("slot", name), self.assign_op(), value)
        if kind == "shared" and self.shared:
            value, _ = self.vector_expr(d, "vector")
            return ast.Assign(ast.Target("slot", self.choice(self.shared)), self.assign_op(), value)
        if kind == "let":
            name = f"t{self.next_local}"
            self.next_local += 1
            if self.chance(0.5):
                value, kind_ = self.float_expr(d, "float"), "float"
            else:
                # no draws: a draw at the root of a let is a float (docs/language.md)
                value, kind_ = self.vector_expr(d, "let", allow_filter=False)[0], "vector"
            self.locals[-1].append((name, kind_))
            return ast.Let(name, value)
        if kind == "if" and nesting < 2:
            branches = []
            for _ in range(1 + self.draw(st.integers(0, 1))):
                condition = self.float_expr(max(1, d - 1), "float")
                branches.append((condition, self.body(max(1, depth - 1), nesting + 1)))
            orelse = self.body(max(1, depth - 1), nesting + 1) if self.chance(0.4) else None
            return ast.If(tuple(branches), orelse)
        return ast.Assign(ast.Target("slot", self.choice(self.nodes)), self.assign_op(),
                          self.float_expr(d, "float"))

    def body(self, count_max: int, nesting: int = 0) -> ast.Body:
        self.locals.append([])
        count = 1 + self.draw(st.integers(0, max(0, count_max - 1)))
        statements = tuple(self.statement(count_max, nesting) for _ in range(count))
        self.locals.pop()
        return ast.Body(statements)


@st.composite
def rules(draw, *, max_depth: int = 3, max_statements: int = 5, node_slots=(1, 3),
          edge_slots=(1, 2), shared_slots=(0, 1), params=(0, 2), named_blocks=(0, 1),
          init: bool | None = None, ops=None, vector_ratio: float = 2.0, reuse: float = 0.2,
          draws_in_update: float = 0.05) -> GeneratedRule:
    """Random well-typed rules (see the module docstring). Ranges are (min, max)."""
    options = _Options(max_depth, vector_ratio, reuse,
                       frozenset(ops) if ops is not None else ALL_OPS, draws_in_update)
    nodes = NODE_NAMES[: draw(st.integers(*node_slots))]
    edges = EDGE_NAMES[: draw(st.integers(*edge_slots))]
    shared = SHARED_NAMES[: draw(st.integers(*shared_slots))]
    param_names = PARAM_NAMES[: draw(st.integers(*params))]
    gen = _Generator(draw, options, nodes, edges, shared, param_names)
    items: list[ast.Item] = [ast.RuleDecl("fuzz")]
    for name in param_names:
        value = draw(st.sampled_from([0.1, 0.5, 1.0, 0.01, 2.0]))
        items.append(ast.ParamDecl(name, float(np.float32(value))))
    items.append(ast.SlotDecl("node", nodes))
    items.append(ast.SlotDecl("edge", edges))
    if shared:
        items.append(ast.SlotDecl("shared", shared))
    gen.locals.append([])
    if draw(st.integers(0, 999)) < 1000 * reuse:
        gen.base_float = gen.float_expr(1, "float")
        gen.base_vector, _ = gen.vector_expr(1, "vector", allow_filter=False)
    gen.locals.pop()
    has_init = init if init is not None else draw(st.booleans())
    if has_init:
        gen.in_init = True
        items.append(ast.Block("init", None, gen.body(max_statements)))
        gen.in_init = False
    items.append(ast.Block("update", None, gen.body(max_statements)))
    for name in BLOCK_NAMES[: draw(st.integers(*named_blocks))]:
        items.append(ast.Block("update", name, gen.body(max(1, max_statements // 2))))
    return generated(ast.File(tuple(items)))


# ------------------------------------------------------------------ graphs


@st.composite
def graphs(draw, max_nodes: int = 24) -> Graph:
    """Small random graphs: random (Erdos-Renyi), trees, layered, hubs, dense,
    with isolated nodes, and the empty graph."""
    kind = draw(st.sampled_from(["random", "tree", "layered", "hub", "dense", "empty"]))
    n = draw(st.integers(1, max_nodes))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "random":
        pairs = [(u, v) for u in range(n) for v in range(u + 1, n) if rng.random() < 0.2]
    elif kind == "tree":
        pairs = [(int(rng.integers(0, v)), v) for v in range(1, n)]
    elif kind == "layered":
        half = max(1, n // 2)
        pairs = [(u, v) for u in range(half) for v in range(half, n)]
    elif kind == "hub":
        pairs = [(0, v) for v in range(1, n)] + [(v, v + 1) for v in range(1, n - 1, 3)]
    elif kind == "dense":
        n = min(n, 10)
        pairs = [(u, v) for u in range(n) for v in range(u + 1, n)]
    else:
        pairs = []
    isolated = draw(st.integers(0, 2))
    return Graph.from_edges(n + isolated, pairs)


@st.composite
def states(draw, rule, graph: Graph, specials: float = 0.1) -> State:
    """A random state of `rule` (a rulec.Rule or GeneratedRule) on `graph`:
    normal values, with a fraction `specials` of 0, ±inf, NaN, denormals and
    huge values, a random time and seed (rulec.fuzz.random_state)."""
    from .fuzz import random_state

    return random_state(rule.program, graph, draw(st.integers(0, 2**32 - 1)), specials)


# --------------------------------------------------------------- mutations


def _subexpressions(node, path=()):
    """(path, expression) of every expression in a syntax tree."""
    if isinstance(node, ast.Expr.__args__):  # type: ignore[attr-defined]
        yield path, node
    if dataclasses.is_dataclass(node):
        for f in dataclasses.fields(node):
            if f.name.endswith("span") or f.name == "name_spans":
                continue
            yield from _subexpressions(getattr(node, f.name), (*path, f.name))
    elif isinstance(node, tuple):
        for index, item in enumerate(node):
            yield from _subexpressions(item, (*path, index))


def _replace(node, path, new):
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(node, tuple):
        return node[:head] + (_replace(node[head], rest, new),) + node[head + 1:]
    return dataclasses.replace(node, **{head: _replace(getattr(node, head), rest, new)})


def _edits(expr: ast.Expr) -> list[ast.Expr]:
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
                if f != expr.func and len(expr.args) == (2 if f in BINARY_CALLS else 1)]
        out += [dataclasses.replace(expr, func=f) for f in same]
    if isinstance(expr, ast.Unary):
        out.append(expr.operand)
    if isinstance(expr, ast.Filter):
        out.append(expr.value)
        for name in ("incoming", "outgoing"):
            if expr.predicate != ast.Name(name):
                out.append(dataclasses.replace(expr, predicate=ast.Name(name)))
    return out


def well_typed_edits(rule: GeneratedRule) -> list[GeneratedRule]:
    """Every single edit of `rule` (op swaps, subtree-to-leaf, filter changes,
    statement deletions) that still type-checks, simplest first."""
    from .errors import RuleErrors

    candidates = []
    for path, expr in _subexpressions(rule.tree.items):
        for new in _edits(expr):
            candidates.append(ast.File(_replace(rule.tree.items, path, new)))
    for path, node in _statement_lists(rule.tree.items):
        for index in range(len(node)):
            if len(node) > 1:
                candidates.append(ast.File(_replace(rule.tree.items, path,
                                                    node[:index] + node[index + 1:])))
    out = []
    for tree in candidates:
        try:
            out.append(generated(tree))
        except RuleErrors:
            continue
    return out


def _statement_lists(node, path=()):
    if isinstance(node, ast.Body):
        yield (*path, "statements"), node.statements
    if dataclasses.is_dataclass(node):
        for f in dataclasses.fields(node):
            if not f.name.endswith("span"):
                yield from _statement_lists(getattr(node, f.name), (*path, f.name))
    elif isinstance(node, tuple):
        for index, item in enumerate(node):
            yield from _statement_lists(item, (*path, index))


def mutations(rule: GeneratedRule):
    """A strategy: one small, well-typed edit of `rule` (or the rule itself if
    none applies)."""
    edits = well_typed_edits(rule)
    return st.sampled_from(edits) if edits else st.just(rule)


#: Edits that must be rejected, with the error code the checker gives.
_ILL_TYPED = [
    ("E301", "a vector assigned to a node slot",
     lambda g: ast.Assign(ast.Target("slot", g.nodes[0]), "=", ast.Name(g.edges[0]))),
    ("E302", "a reducer applied to a float",
     lambda g: ast.Assign(ast.Target("slot", g.nodes[0]), "=",
                          ast.Call("sum", (ast.Number(1.0),)))),
    ("E401", "a write to a neighbour's slot",
     lambda g: ast.Assign(ast.Target("nbr", g.nodes[0]), "=", ast.Number(1.0))),
    ("E201", "an unknown name",
     lambda g: ast.Assign(ast.Target("slot", g.nodes[0]), "=", ast.Name("nosuch"))),
    ("E303", "operands with different filters",
     lambda g: ast.Assign(ast.Target("slot", g.edges[0]), "=", ast.Binary(
         "add", ast.Filter(ast.Name(g.edges[0]), ast.Name("incoming")),
         ast.Filter(ast.Name(g.edges[0]), ast.Name("outgoing"))))),
]


@dataclass(frozen=True)
class IllTyped:
    tree: ast.File
    text: str
    code: str
    what: str


def ill_typed(rule: GeneratedRule):
    """A strategy: `rule` with one statement appended to its update block that
    the checker must reject; `.code` is the error code it must report."""

    class _Names:
        nodes = rule.program.node_slots
        edges = rule.program.edge_slots

    def build(choice):
        code, what, make = choice
        items = list(rule.tree.items)
        for index, item in enumerate(items):
            if isinstance(item, ast.Block) and item.label == "update":
                body = ast.Body(item.body.statements + (make(_Names),))
                items[index] = dataclasses.replace(item, body=body)
        tree = ast.File(tuple(items))
        return IllTyped(tree, format_tree(tree), code, what)

    return st.sampled_from(_ILL_TYPED).map(build)
