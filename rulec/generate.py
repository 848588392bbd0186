"""Random well-typed rules and small graphs, from any source of integers.

One generator serves two masters:

- `rulec.strategies` (hypothesis) passes a source that asks hypothesis for
  each integer, so failing rules shrink toward small, readable ones;
- `rulec fuzz` (and search) pass a `SeededSource`, a plain seeded RNG: fast,
  no hypothesis import, and the same rules for the same seed and knobs
  whatever else the process has imported.

    from rulec.generate import Options, SeededSource, rule
    generated = rule(SeededSource(7), Options(max_depth=4))
    print(generated.text)

The generator follows the language's types and what makes random rules
meaningful: reducers take vectors; vector operands are preferred over floats
(`vector_ratio`, default 2:1); a filter, once chosen on a vector subtree,
covers that subtree (no other filter inside it); filters come from the
built-ins (`incoming`, `outgoing`) and from random comparisons; `if`
conditions are float expressions (tested > 0); edge slots get vectors in
`update` (a float is allowed in `init`); a per-rule base expression is
reused at leaves with probability `reuse`; random draws appear mostly in
`init`. Every choice's first option is the simplest, so a shrinking source
moves toward small rules. Every rule is checked before it is returned.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from . import ir
from . import syntax as ast
from .checker import RESERVED
from .frontend import load_program
from .graph import Graph
from .ops import CALLS, REDUCERS, named
from .printer import format_tree

NODE_NAMES = ("x", "y", "z", "m")
EDGE_NAMES = ("w", "v", "q")
SHARED_NAMES = ("g", "k")
PARAM_NAMES = ("lr", "alpha", "beta")
BLOCK_NAMES = ("relax", "decay")

#: Names chosen to collide with what code generators make: buffer suffixes,
#: temporaries and loop variables, C keywords, libm names, long names. With
#: `adversarial_names` they are drawn for slots and params (docs/fuzzing.md).
ADVERSARIAL_NAMES = tuple(n for n in """
    x_cur x_next x_spare x_user x_proposal x_proposed x_b nx_0 node_0 edge_0 shared_0 param_0
    s1 a1 c1 k1 m1 v1 u h j h0 h1 e u32 block_n block_start n_nodes seed failed done total
    int float double for while restrict static const void char return goto inline
    expf logf tanhf sqrtf sinf cosf fmaxf memcpy malloc free errno NAN INFINITY
    main printf abs_ a_slot_name_long_enough_to_wrap_any_line_that_a_printer_might_want_xyz
""".split() if n not in RESERVED)

# The generator's op lists come from the op table (rulec.ops), in its order.
UNARY_CALLS = named("call", 1)
BINARY_CALLS = named("call", 2)
TERNARY_CALLS = named("call", 3)
INFIX = named("infix")
PREFIX = named("prefix")
#: Every op name the generator can use (the `ops` knob takes a subset).
ALL_OPS = frozenset(INFIX + PREFIX + UNARY_CALLS + BINARY_CALLS + TERNARY_CALLS + REDUCERS)


#: The numbers a leaf can be, as float32 values (simplest first).
_NUMBERS = tuple(float(np.float32(v)) for v in (1.0, 0.5, 2.0, 0.0, 0.1, 3.0, 1e-3, 10.0))


class Source(Protocol):
    """Where the generator's choices come from."""

    def integer(self, low: int, high: int) -> int:
        """An integer in [low, high]; low is the simplest choice."""
        ...


class SeededSource:
    """Choices from a plain seeded RNG: the same seed gives the same choices."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)

    def integer(self, low: int, high: int) -> int:
        # random() is one C call; randint's rejection sampling costs ~10x more
        return low + int(self.random.random() * (high - low + 1))


@dataclass(frozen=True)
class Options:
    """The generator's knobs; ranges are (min, max)."""

    max_depth: int = 3
    max_statements: int = 5
    node_slots: tuple[int, int] = (1, 3)
    edge_slots: tuple[int, int] = (1, 2)
    shared_slots: tuple[int, int] = (0, 1)
    params: tuple[int, int] = (0, 2)
    named_blocks: tuple[int, int] = (0, 1)
    init: bool | float | None = None  # None: a coin decides; a float: the chance of an init
    ops: frozenset = ALL_OPS
    vector_ratio: float = 2.0
    reuse: float = 0.2
    draws_in_update: float = 0.05
    adversarial_names: float = 0.0  # chance that a rule's names come from ADVERSARIAL_NAMES
    node_names: tuple[str, ...] = NODE_NAMES  # the node slots' names, in order (e.g. a protocol's)
    # None: a filter is one of the five kinds of vector node, an `if` one of
    # the five kinds of statement; a number sets that chance instead
    filter: float | None = None
    conditional: float | None = None
    neighbour: float | None = None  # a vector leaf is `nbr.SLOT` (None: one kind of seven)
    # (name, low, high) of every param to declare, its value drawn in the range
    # (log-uniform when both bounds are > 0); None: `params` plain ones
    param_ranges: tuple[tuple[str, float, float], ...] | None = None
    # no dead writes (a write a later one replaces; rulec.dataflow): a search
    # wants rules whose every statement acts; a fuzzer keeps them, to test
    # that backends let the last write win
    live_only: bool = False
    # a learning rule's shape, for a search: `roles` are the protocol's
    # (input, output, target, train flag) slot names; with chance `shaped`,
    # `update` ends with a forward statement (the output from a reduction
    # over an edge slot and a neighbour's input or output) and a learning
    # statement (that edge slot moved by an expression of the target): the
    # target reaches the output through a weight (docs/search.md)
    roles: tuple[str, str, str | None, str | None] | None = None
    shaped: float = 0.0


@dataclass(frozen=True)
class GeneratedRule:
    """A generated rule: its syntax tree, canonical text and checked IR."""

    tree: ast.File
    text: str
    program: ir.Program

    def compile(self, backend: str = "c"):
        from .api import Rule

        return Rule(self.program, backend, self.text)

    def __str__(self) -> str:
        return self.text


def generated(tree: ast.File) -> GeneratedRule:
    """Print and check a tree (raises RuleErrors if it is not well-typed)."""
    text = format_tree(tree)
    return GeneratedRule(tree, text, load_program(text, "fuzz.rule"))


@functools.lru_cache(maxsize=256)
def _allowed(names: tuple[str, ...], ops: frozenset) -> list[str]:
    """The names among `ops`, in order (the same list object each time: do
    not change it)."""
    return [n for n in names if n in ops]


class _Generator:
    """Draws one rule from `source`."""

    def __init__(self, source: Source, options: Options, nodes, edges, shared, params) -> None:
        self.source = source
        self.o = options
        self.nodes, self.edges, self.shared, self.params = nodes, edges, shared, params
        self.locals: list[list[tuple[str, str]]] = []  # frames of (name, 'float'|'vector')
        self.next_local = 1
        self.in_init = False
        self.base_float: ast.Expr | None = None
        self.base_vector: ast.Expr | None = None
        # leaves a shaped statement must contain: the next leaf of the kind
        # drawn takes one with chance 1/2 (shaped_expr places what is left)
        self.wanted: dict[str, list[ast.Expr]] = {"float": [], "vector": []}
        # what the choices below choose from, made once per rule (a search
        # draws every rule: some 70 choices each, most from these)
        ops = options.ops
        self.reducers = _allowed(REDUCERS, ops)
        self.infix = _allowed(INFIX, ops)
        self.prefix = _allowed(PREFIX, ops)
        self.calls = _allowed(UNARY_CALLS + BINARY_CALLS + TERNARY_CALLS, ops)
        self.comparisons = _allowed(("gt", "lt", "ge", "le", "ne", "eq"), ops)
        floats = ["number", "node"] + (["param"] if params else []) + ["degree", "nodes", "time"]
        vectors = ["edge", "nbr", "incoming", "outgoing", "parity", "nbr_degree", "peer"] \
            + (["shared"] if shared else [])
        # the kinds of leaf, simplest first, without and with a local in reach
        self.leaf_kinds = {"float": (floats, floats + ["local"]),
                           "vector": (vectors, vectors + ["local"])}
        if type(source) is SeededSource:
            self._seeded(source.random.random)

    def _seeded(self, uniform) -> None:
        """integer, choice and chance drawn from `uniform` (a SeededSource's
        random()) in one call each, giving exactly the values the methods
        below give through source.integer: a search draws every rule, some
        150 choices each."""
        def integer(low: int, high: int) -> int:
            return low + int(uniform() * (high - low + 1))

        def choice(options):
            return options[int(uniform() * len(options))]

        def chance(p: float) -> bool:
            if p <= 0:
                return False
            if p >= 1:
                return True
            return int(uniform() * 1000) >= 1000 * (1 - p)

        self.integer, self.choice, self.chance = integer, choice, chance

    # ------------------------------------------------------------- helpers

    def integer(self, low: int, high: int) -> int:
        return self.source.integer(low, high)

    def choice(self, options):
        return options[self.integer(0, len(options) - 1)]

    def chance(self, p: float) -> bool:
        if p <= 0:
            return False
        if p >= 1:
            return True
        # small integers (the simplest choices) mean "no"
        return self.integer(0, 999) >= 1000 * (1 - p)

    def visible(self, kind: str) -> list[str]:
        return [name for frame in self.locals for name, k in frame if k == kind]

    def allowed(self, names):
        return _allowed(tuple(names), self.o.ops)

    def draw_ok(self) -> bool:
        return self.chance(0.5 if self.in_init else self.o.draws_in_update)

    # ---------------------------------------------------------- expressions

    def number(self) -> ast.Number:
        return ast.Number(self.choice(_NUMBERS))

    def float_leaf(self, ctx: str) -> ast.Expr:
        if self.wanted["float"] and self.chance(0.5):
            return self.wanted["float"].pop()
        if self.base_float is not None and self.chance(self.o.reuse):
            return self.base_float
        if ctx == "float" and self.draw_ok():
            return ast.Call(self.choice(["uniform", "gauss"]), ())
        # the kinds of leaf, simplest first; only the chosen one is drawn
        floats = self.visible("float")
        kind = self.choice(self.leaf_kinds["float"][1 if floats else 0])
        if kind == "number":
            return self.number()
        if kind == "node":
            return ast.Name(self.choice(self.nodes))
        if kind == "param":
            return ast.Name(self.choice(self.params))
        if kind == "local":
            return ast.Name(self.choice(floats))
        return ast.Name(kind)

    def vector_leaf(self, ctx: str) -> ast.Expr:
        if self.wanted["vector"] and ctx != "let" and self.chance(0.5):
            return self.wanted["vector"].pop()
        if self.base_vector is not None and self.chance(self.o.reuse):
            return self.base_vector
        if self.o.neighbour is not None and self.chance(self.o.neighbour):
            return ast.NbrRef(self.choice(self.nodes))
        if ctx == "vector" and self.draw_ok():
            return ast.Call(self.choice(["uniform", "gauss"]), ())
        vectors = self.visible("vector")
        kind = self.choice(self.leaf_kinds["vector"][1 if vectors else 0])
        if kind == "edge":
            return ast.Name(self.choice(self.edges))
        if kind == "nbr":
            return ast.NbrRef(self.choice(self.nodes))
        if kind == "nbr_degree":
            return ast.NbrRef("degree")
        if kind == "peer":
            return ast.PeerRef(self.choice(self.edges))
        if kind == "shared":
            return ast.Name(self.choice(self.shared))
        if kind == "local":
            return ast.Name(self.choice(vectors))
        return ast.Name(kind)

    def float_expr(self, depth: int, ctx: str = "float") -> ast.Expr:
        if depth <= 0 or self.integer(0, 5) == 0:
            return self.float_leaf(ctx)
        kind = self.choice(["leaf", "binary", "call", "reduce", "unary"])
        if kind == "leaf":
            return self.float_leaf(ctx)
        if kind == "reduce" and self.reducers:
            vector, _ = self.vector_expr(depth - 1, "vector")
            return ast.Call(self.choice(self.reducers), (vector,))
        if kind == "binary" and self.infix:
            op = self.choice(self.infix)
            return ast.Binary(op, self.float_expr(depth - 1, ctx), self.float_expr(depth - 1, ctx))
        if kind == "call":
            return self.call(depth, ctx, lambda d: (self.float_expr(d, ctx), False))[0]
        if kind == "unary" and self.prefix:
            return ast.Unary(self.choice(self.prefix),
                             self.float_expr(depth - 1, ctx))
        return self.float_leaf(ctx)

    def call(self, depth, ctx, child):
        """A function call whose arguments come from child(depth): (expr, filtered)."""
        names = self.calls
        if not names:
            return child(depth - 1)
        name = self.choice(names)
        arity = CALLS[name].arity
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
        kind = self.integer(0, 2)
        comparisons = self.comparisons
        if kind == 0 or depth <= 0 or not comparisons:
            return ast.Name(self.choice(["incoming", "outgoing"]))
        left, _ = self.vector_expr(depth - 1, "vector", allow_filter=False)
        op = self.choice(comparisons)
        return ast.Binary(op, left, self.float_expr(depth - 1, "vector"))

    def vector_expr(self, depth: int, ctx: str = "vector",
                    allow_filter: bool = True) -> tuple[ast.Expr, bool]:
        """A vector expression and whether it carries a filter. In ctx 'let' no
        draw appears anywhere (a draw at the root of a let is a float)."""
        if depth <= 0 or self.integer(0, 5) == 0:
            return self.vector_leaf(ctx), False
        if self.o.filter is None:
            kind = self.choice(["leaf", "binary", "call", "filter", "unary"])
        elif allow_filter and self.chance(self.o.filter):
            kind = "filter"
        else:
            kind = self.choice(["leaf", "binary", "call", "unary"])
        if kind == "filter" and allow_filter:
            value, _ = self.vector_expr(depth - 1, ctx, allow_filter=False)
            return ast.Filter(value, self.predicate(depth - 1)), True
        if kind == "binary" and self.infix:
            op = self.choice(self.infix)
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
        if kind == "unary" and self.prefix:
            operand, filtered = self.vector_expr(depth - 1, ctx, allow_filter)
            return ast.Unary(self.choice(self.prefix), operand), filtered
        return self.vector_leaf(ctx), False

    # ----------------------------------------------------------- statements

    def assign_op(self) -> str:
        return self.choice(["=", "+=", "-=", "*="])

    def statement(self, depth: int, nesting: int) -> ast.Stmt:
        if self.o.conditional is None:
            kind = self.choice(["node", "edge", "let", "if", "shared"])
        elif nesting < 2 and self.chance(self.o.conditional):
            kind = "if"
        else:
            kind = self.choice(["node", "edge", "let", "shared"])
        d = self.o.max_depth
        if kind == "edge":
            name = self.choice(self.edges)
            if self.in_init and self.chance(0.3):
                return ast.Assign(ast.Target("slot", name), "=", self.float_expr(d, "float"))
            if self.chance(0.25 if self.o.filter is None else self.o.filter):
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
                value, kind_ = self.vector_expr(d, "let", allow_filter=False)[0], "vector"
            self.locals[-1].append((name, kind_))
            return ast.Let(name, value)
        if kind == "if" and nesting < 2:
            branches = []
            for _ in range(1 + self.integer(0, 1)):
                condition = self.float_expr(max(1, d - 1), "float")
                branches.append((condition, self.body(max(1, depth - 1), nesting + 1)))
            orelse = self.body(max(1, depth - 1), nesting + 1) if self.chance(0.4) else None
            return ast.If(tuple(branches), orelse)
        return ast.Assign(ast.Target("slot", self.choice(self.nodes)), self.assign_op(),
                          self.float_expr(d, "float"))

    def shaped_expr(self, make, floats=(), vectors=()) -> ast.Expr:
        """make() with the leaves `floats` and `vectors` among its own (those
        its leaves did not take are multiplied in)."""
        self.wanted = {"float": list(floats), "vector": list(vectors)}
        expr = make()
        left = self.wanted["vector"] + self.wanted["float"]
        self.wanted = {"float": [], "vector": []}
        for leaf in left:
            expr = ast.Binary("mul", expr, leaf)
        return expr

    def shaped_statements(self, roles) -> list[ast.Stmt]:
        """The forward and the learning statement of a shaped rule, in random
        order: `out = F(reduce(... w ... nbr.s ...))` and
        `w[incoming] op= G(... target ... nbr.s' ...)`: the target reaches the
        output through the edge slot `w`, the input (or the output, for more
        than one layer) through the neighbours. Each is as deep as the space
        allows."""
        input_, output, target, train = roles
        reducers = self.reducers
        d = self.o.max_depth
        edge = self.choice(self.edges)
        source = ast.NbrRef(self.choice([input_, output]))
        reduced = ast.Call(self.choice(reducers), (self.shaped_expr(
            lambda: self.vector_expr(max(1, d - 2), "vector", allow_filter=False)[0],
            vectors=(ast.Name(edge), source)),))
        filtered = 0.5 if self.o.filter is None else self.o.filter
        if self.chance(filtered):
            reduced = ast.Call(reduced.func, (ast.Filter(reduced.args[0], ast.Name("incoming")),))
        forward = ast.Assign(ast.Target("slot", output), "=", self.shaped_expr(
            lambda: self.float_expr(1, "float"), floats=(reduced,)))
        wanted: tuple[ast.Expr, ...] = ()
        if target:  # the target, the target and the output, or the error between them
            kind = self.integer(0, 2 if self.allowed(["sub"]) else 1)
            if kind == 0:
                wanted = (ast.Name(target),)
            elif kind == 1:
                wanted = (ast.Name(target), ast.Name(output))
            else:  # target - output, or output - target
                pair = (ast.Name(target), ast.Name(output))
                if self.integer(0, 1):
                    pair = pair[::-1]
                wanted = (ast.Binary("sub", *pair),)
        if train and self.chance(0.75):  # learn only while the train flag is up
            wanted += (ast.Name(train),)
        learning = ast.Assign(
            ast.Target("slot", edge, ast.Name("incoming") if self.chance(filtered) else None),
            self.choice(["+=", "-="]),
            self.shaped_expr(lambda: self.vector_expr(d, "vector", allow_filter=False)[0],
                             floats=wanted,
                             vectors=(ast.NbrRef(self.choice([input_, output])),)))
        return [forward, learning] if self.chance(0.5) else [learning, forward]

    def body(self, count_max: int, nesting: int = 0) -> ast.Body:
        self.locals.append([])
        count = 1 + self.integer(0, max(0, count_max - 1))
        statements = tuple(self.statement(count_max, nesting) for _ in range(count))
        self.locals.pop()
        return ast.Body(statements)


def _names(source: Source, options: Options) -> tuple[tuple[str, ...], ...]:
    """(nodes, edges, shared, params) names: the plain ones, or with chance
    `adversarial_names` distinct names drawn from ADVERSARIAL_NAMES."""
    counts = [source.integer(*options.node_slots), source.integer(*options.edge_slots),
              source.integer(*options.shared_slots),
              0 if options.param_ranges is not None else source.integer(*options.params)]
    plain = (options.node_names, EDGE_NAMES, SHARED_NAMES, PARAM_NAMES)
    p = options.adversarial_names
    if p <= 0 or (p < 1 and source.integer(0, 999) < 1000 * (1 - p)):
        return tuple(names[:count] for names, count in zip(plain, counts, strict=True))
    pool = list(ADVERSARIAL_NAMES)
    out = []
    for count in counts:
        chosen = []
        for _ in range(count):
            chosen.append(pool.pop(source.integer(0, len(pool) - 1)))
        out.append(tuple(chosen))
    return tuple(out)


def param_value(source: Source, low: float, high: float) -> float:
    """A param value in [low, high] (float32), log-uniform when both are > 0."""
    u = source.integer(0, 10_000) / 10_000
    if low > 0 and high > 0:
        value = low * (high / low) ** u
    else:
        value = low + (high - low) * u
    return float(np.float32(min(max(value, low), high)))


def rule_tree(source: Source, options: Options = Options()) -> ast.File:  # noqa: B008
    """The syntax tree of one random rule (see the module docstring)."""
    nodes, edges, shared, param_names = _names(source, options)
    if options.param_ranges is not None:
        param_names = tuple(name for name, _, _ in options.param_ranges)
    gen = _Generator(source, options, nodes, edges, shared, param_names)
    items: list[ast.Item] = [ast.RuleDecl("fuzz")]
    if options.param_ranges is not None:
        for name, low, high in options.param_ranges:
            items.append(ast.ParamDecl(name, param_value(source, low, high)))
    else:
        for name in param_names:
            value = gen.choice([0.1, 0.5, 1.0, 0.01, 2.0])
            items.append(ast.ParamDecl(name, float(np.float32(value))))
    items.append(ast.SlotDecl("node", nodes))
    items.append(ast.SlotDecl("edge", edges))
    if shared:
        items.append(ast.SlotDecl("shared", shared))
    gen.locals.append([])
    if source.integer(0, 999) < 1000 * options.reuse:
        gen.base_float = gen.float_expr(1, "float")
        # no draws in the base vector: it may become the root of a vector let,
        # where a draw would be a float (and then could not be filtered or reduced)
        gen.base_vector, _ = gen.vector_expr(1, "let", allow_filter=False)
    gen.locals.pop()
    if options.init is None:
        has_init = bool(source.integer(0, 1))
    elif isinstance(options.init, bool):
        has_init = options.init
    else:  # a chance
        has_init = source.integer(0, 999) < 1000 * options.init
    if has_init:
        gen.in_init = True
        items.append(ast.Block("init", None, gen.body(options.max_statements)))
        gen.in_init = False
    update = gen.body(options.max_statements)
    if options.roles and options.shaped and gen.reducers and edges \
            and source.integer(0, 999) < 1000 * options.shaped:
        # a shaped rule: random statements, then the forward and learning ones
        # (last, so that no random write replaces them)
        kept = update.statements[:max(0, options.max_statements - 2)]
        gen.locals.append([])  # the random statements' lets are not read
        update = ast.Body(kept + tuple(gen.shaped_statements(options.roles)))
        gen.locals.pop()
    items.append(ast.Block("update", None, update))
    for name in BLOCK_NAMES[: source.integer(*options.named_blocks)]:
        items.append(ast.Block("update", name, gen.body(max(1, options.max_statements // 2))))
    tree = ast.File(tuple(items))
    if options.live_only:
        from .dataflow import without_dead_writes

        tree = without_dead_writes(tree, exact=False)
    return tree


def rule(source: Source, options: Options = Options()) -> GeneratedRule:  # noqa: B008
    """One random rule, printed and checked (RuleErrors if the generator erred)."""
    return generated(rule_tree(source, options))


GRAPH_KINDS = ("random", "tree", "layered", "hub", "dense", "empty")


def graph(source: Source, max_nodes: int = 24) -> Graph:
    """A small random graph: random (Erdos-Renyi), a tree, layered, a hub,
    dense, or empty; with up to two isolated nodes."""
    kind = GRAPH_KINDS[source.integer(0, len(GRAPH_KINDS) - 1)]
    n = source.integer(1, max_nodes)
    rng = np.random.default_rng(source.integer(0, 2**32 - 1))
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
    isolated = source.integer(0, 2)
    return Graph.from_edges(n + isolated, pairs)
