"""Syntax tree to typed IR, collecting every error of the file.

The checker resolves names, computes types (float / vector / vector[p]),
numbers the random draws of each block in source order and expands
augmented assignments (`w += e` is `w = w + e`, reading the block-start w).
It never stops at the first error: each problem becomes a RuleError and the
offending expression gets the type `error`, which silences follow-on errors.

    >>> check(parse_text("node x\\nedge w\\nupdate { x = w }"))   # raises RuleErrors:
    <string>:3:14: error[E301]: node slot 'x' needs a float, got vector
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import ir
from . import syntax as ast
from .errors import RuleError, RuleErrors, Span, did_you_mean
from .ir import ERROR, FLOAT, VECTOR, Type
from .ops import CALLS, DRAWS, FUNCTIONS, OPS, REDUCERS

KEYWORDS = frozenset(
    "rule param node edge shared init update let if elif else and or not nbr peer".split()
)

#: Built-in names and their types.
BUILTINS: dict[str, Type] = {
    "degree": FLOAT,
    "nodes": FLOAT,
    "time": FLOAT,
    "parity": VECTOR,
    "incoming": VECTOR,
    "outgoing": VECTOR,
}

RESERVED = KEYWORDS | set(BUILTINS) | set(FUNCTIONS)

REDUCER_HINT = "reduce the vector first: sum(...), mean(...), max(...), min(...) or count(...)"


# ------------------------------------------------------------ filter identity


def _sort_key(expr: ir.Expr) -> str:
    return repr(expr)


def normalise(expr: ir.Expr) -> ir.Expr:
    """The canonical form of a filter predicate, for comparing filters.

    Operands of commutative ops are sorted, `a > b` becomes `b < a` and
    `a >= b` becomes `b <= a`; types and spans are dropped.
    """
    if isinstance(expr, ir.Apply):
        args = tuple(normalise(a) for a in expr.args)
        op = expr.op
        if op in ("gt", "ge"):
            op = "lt" if op == "gt" else "le"
            args = (args[1], args[0])
        elif OPS[op].commutative:
            args = tuple(sorted(args, key=_sort_key))
        return ir.Apply(op, args, VECTOR)
    if isinstance(expr, ir.Reduce):
        return ir.Reduce(expr.op, normalise(expr.arg), FLOAT)
    if isinstance(expr, ir.Restrict):
        return ir.Restrict(normalise(expr.value), normalise(expr.predicate), VECTOR)
    return expr


# ------------------------------------------------------------------- checker


@dataclass
class _Scope:
    """Locals visible in a block: a stack of frames, one per `{ }`."""

    frames: list[dict[str, Type]] = field(default_factory=lambda: [{}])

    def lookup(self, name: str) -> Type | None:
        for frame in reversed(self.frames):
            if name in frame:
                return frame[name]
        return None

    def names(self) -> set[str]:
        return {name for frame in self.frames for name in frame}


class Checker:
    """Checks one file. Use :func:`check`."""

    def __init__(self) -> None:
        self.errors: list[RuleError] = []
        self.node_slots: dict[str, Span] = {}
        self.edge_slots: dict[str, Span] = {}
        self.shared_slots: dict[str, Span] = {}
        self.params: dict[str, tuple[float, Span]] = {}
        self.names: dict[str, Span] = {}  # every slot and param: where it was declared
        self.scope = _Scope()
        self.draws = 0

    def error(self, code: str, span: Span, message: str, hint: str | None = None) -> Type:
        self.errors.append(RuleError(code, span, message, hint))
        return ERROR

    # ------------------------------------------------------------ declarations

    def declared(self) -> dict[str, Span]:
        """Every slot and param, with where it was declared (kept as they are
        declared: a look-up per name, not a rebuild, keeps checking linear)."""
        return self.names

    def declare(self, table: dict, name: str, span: Span, value=None) -> None:
        if name in RESERVED:
            what = "a keyword" if name in KEYWORDS else "a built-in name"
            self.error("E102", span, f"'{name}' is {what} and cannot be declared",
                       f"choose another name, e.g. '{name}_'")
            return
        first = self.declared().get(name)
        if first is not None:
            self.error("E101", span, f"'{name}' is already declared",
                       f"first declared on line {first.line}")
            return
        table[name] = span if value is None else (value, span)
        self.names[name] = span

    def check_file(self, tree: ast.File, default_name: str) -> ir.Program | None:
        rule_name: str | None = None
        blocks: list[ast.Block] = []
        for item in tree.items:
            if isinstance(item, ast.RuleDecl):
                if rule_name is not None:
                    self.error("E105", item.span, "the rule is named twice",
                               "keep one 'rule NAME' line")
                else:
                    rule_name = item.name
            elif isinstance(item, ast.ParamDecl):
                self.declare(self.params, item.name, item.span, item.value)
            elif isinstance(item, ast.SlotDecl):
                table = {"node": self.node_slots, "edge": self.edge_slots,
                         "shared": self.shared_slots}[item.kind]
                spans = item.name_spans or (item.span,) * len(item.names)
                for name, span in zip(item.names, spans, strict=True):
                    self.declare(table, name, span)
            else:
                blocks.append(item)

        seen: dict[str, ast.Block] = {}
        checked: list[ir.Block] = []
        for block in blocks:
            if block.label in seen:
                first = seen[block.label]
                what = "init" if block.kind == "init" else f"update {block.name or ''}".strip()
                head = Span(block.span.line, block.span.column, block.span.line,
                            block.span.column + len(what))
                self.error("E104", head, f"block '{what}' is defined twice",
                           f"first defined on line {first.span.line}")
                continue
            seen[block.label] = block
            checked.append(self.check_block(block))
        if "update" not in seen:
            end = tree.items[-1].span if tree.items else Span(1, 1, 1, 1)
            self.error("E103", Span.point(max(end.end_line, 1), max(end.end_column, 1)),
                       "the rule has no 'update { ... }' block",
                       "every rule needs one, e.g. update { x = mean(nbr.x) }")
        if self.errors:
            return None
        return ir.Program(
            name=rule_name or default_name,
            params=tuple((name, value) for name, (value, _) in self.params.items()),
            node_slots=tuple(self.node_slots),
            edge_slots=tuple(self.edge_slots),
            shared_slots=tuple(self.shared_slots),
            blocks=tuple(checked),
        )

    # ------------------------------------------------------------------ blocks

    def check_block(self, block: ast.Block) -> ir.Block:
        self.scope = _Scope()
        self.draws = 0
        statements = self.check_body(block.body.statements)
        return ir.Block(block.label, statements, self.draws, block.span)

    def check_body(self, statements: tuple[ast.Stmt, ...]) -> tuple[ir.Stmt, ...]:
        out = []
        for stmt in statements:
            checked = self.check_stmt(stmt)
            if checked is not None:
                out.append(checked)
        return tuple(out)

    def check_stmt(self, stmt: ast.Stmt) -> ir.Stmt | None:
        if isinstance(stmt, ast.Let):
            return self.check_let(stmt)
        if isinstance(stmt, ast.If):
            return self.check_if(stmt)
        return self.check_assign(stmt)

    def check_let(self, stmt: ast.Let) -> ir.LetStmt:
        value = self.expr(stmt.value, "float")
        name = stmt.name
        if name in RESERVED or name in self.declared():
            what = ("a keyword" if name in KEYWORDS else
                    "a built-in name" if name in RESERVED else "a declared slot or param")
            self.error("E207", stmt.name_span, f"local '{name}' would shadow {what}",
                       f"choose another name, e.g. '{name}_'")
        elif self.scope.lookup(name) is not None:
            self.error("E207", stmt.name_span, f"local '{name}' is already defined",
                       "locals are single assignment; use a new name")
        self.scope.frames[-1][name] = value.type
        return ir.LetStmt(name, value, stmt.span)

    def check_if(self, stmt: ast.If) -> ir.IfStmt:
        branches = []
        for condition, body in stmt.branches:
            cond = self.expr(condition, "float")
            if cond.type.is_vector:
                self.error("E301", condition.span, "an 'if' condition needs a float, got vector",
                           REDUCER_HINT)
            branches.append((cond, self.nested(body)))
        orelse = self.nested(stmt.orelse) if stmt.orelse is not None else ()
        return ir.IfStmt(tuple(branches), orelse, stmt.span)

    def nested(self, body: ast.Body) -> tuple[ir.Stmt, ...]:
        self.scope.frames.append({})
        try:
            return self.check_body(body.statements)
        finally:
            self.scope.frames.pop()

    def check_assign(self, stmt: ast.Assign) -> ir.Write | None:
        target = stmt.target
        name = target.name
        if target.kind == "nbr":
            self.expr(stmt.value, "float")
            self.error("E401", target.span, f"cannot write to a neighbour's slot 'nbr.{name}'",
                       "a rule writes only its own node's slots and half-edges")
            return None
        if target.kind == "peer":
            self.expr(stmt.value, "float")
            self.error("E402", target.span, f"cannot write to the other end's 'peer.{name}'",
                       f"write your own half-edge: {name} = ...")
            return None
        if name in self.node_slots:
            kind, slot_type = "node", FLOAT
        elif name in self.edge_slots:
            kind, slot_type = "edge", VECTOR
        elif name in self.shared_slots:
            kind, slot_type = "shared", VECTOR
        else:
            self.expr(stmt.value, "float")
            self.not_writable(name, target.span)
            return None

        predicate = None
        if target.predicate is not None:
            if kind == "node":
                self.expr(target.predicate, "vector")
                self.error("E307", target.span, f"node slot '{name}' cannot be filtered",
                           "filters select half-edges; they apply to edge slots")
                return None
            predicate = self.predicate(target.predicate)

        value = self.expr(stmt.value, "float" if kind == "node" else "vector")
        if stmt.op != "=":
            op = {"+=": "add", "-=": "sub", "*=": "mul"}[stmt.op]
            current = ir.Slot(kind, name, slot_type, target.span)
            value = self.combine(op, (current, value), stmt.span)
        if value.type.is_error:
            return None
        if kind == "node":
            if value.type.is_vector:
                self.error("E301", stmt.value.span,
                           f"node slot '{name}' needs a float, got {value.type}", REDUCER_HINT)
                return None
        elif predicate is not None and value.type.filter is not None:
            if predicate.type.is_error:
                return None
            if normalise(predicate) != value.type.filter:
                self.error("E303", stmt.value.span,
                           "the value's filter differs from the target's filter",
                           "use the same filter on both sides, or drop one")
                return None
        if predicate is not None and predicate.type.is_error:
            return None
        return ir.Write(kind, name, value, predicate, stmt.span)

    def not_writable(self, name: str, span: Span) -> None:
        if name in self.params:
            self.error("E403", span, f"param '{name}' is read-only",
                       "set params at run time: rule.step(..., params={...})")
        elif name in BUILTINS:
            self.error("E404", span, f"'{name}' is built in and read-only")
        elif self.scope.lookup(name) is not None:
            self.error("E404", span, f"local '{name}' cannot be assigned",
                       "locals are single assignment; use a new let")
        else:
            slots = set(self.node_slots) | set(self.edge_slots) | set(self.shared_slots)
            self.error("E201", span, f"unknown slot '{name}'",
                       did_you_mean(name, slots) or "declare it: node NAME or edge NAME")

    # ------------------------------------------------------------- expressions

    def predicate(self, node: ast.Expr) -> ir.Expr:
        pred = self.expr(node, "vector")
        if pred.type.is_float:
            self.error("E305", node.span, "a filter needs a vector predicate, got float",
                       "compare per half-edge, e.g. [nbr.x > 0] or [incoming]")
            return ir.Const(0.0, ERROR, node.span)
        if pred.type.is_vector and pred.type.filter is not None:
            self.error("E305", node.span, "a filter predicate must not itself be filtered",
                       "drop the inner [...]")
            return ir.Const(0.0, ERROR, node.span)
        return pred

    def expr(self, node: ast.Expr, expect: str) -> ir.Expr:
        """Check an expression; `expect` ('float'|'vector') types the random draws in it."""
        kind = type(node)  # the syntax's classes have no subclasses; the most common first
        if kind is ast.Binary:
            left = self.expr(node.left, expect)
            right = self.expr(node.right, expect)
            return self.combine(node.op, (left, right), node.span)
        if kind is ast.Name:
            return self.name(node)
        if kind is ast.Number:
            return ir.Const(node.value, FLOAT, node.span)
        if kind is ast.NbrRef:
            return self.nbr(node)
        if kind is ast.Unary:
            arg = self.expr(node.operand, expect)
            return self.combine(node.op, (arg,), node.span)
        if kind is ast.PeerRef:
            return self.peer(node)
        if kind is ast.Filter:
            return self.filter(node)
        return self.call(node, expect)

    def name(self, node: ast.Name) -> ir.Expr:
        name, span = node.name, node.span
        local = self.scope.lookup(name)
        if local is not None:
            return ir.Local(name, local, span)
        if name in self.node_slots:
            return ir.Slot("node", name, FLOAT, span)
        if name in self.edge_slots:
            return ir.Slot("edge", name, VECTOR, span)
        if name in self.shared_slots:
            return ir.Slot("shared", name, VECTOR, span)
        if name in self.params:
            return ir.Slot("param", name, FLOAT, span)
        if name in BUILTINS:
            return ir.Builtin(name, BUILTINS[name], span)
        if name in FUNCTIONS:
            return self.bad(node, "E201", f"'{name}' is a function; call it",
                            f"{name}(...)" if name not in DRAWS else f"{name}()")
        if name in KEYWORDS:
            return self.bad(node, "E201", f"'{name}' is a keyword, not a value")
        visible = set(self.declared()) | set(BUILTINS) | self.scope.names()
        return self.bad(node, "E201", f"unknown name '{name}'", did_you_mean(name, visible))

    def bad(self, node, code: str, message: str, hint: str | None = None) -> ir.Expr:
        self.error(code, node.span, message, hint)
        return ir.Const(0.0, ERROR, node.span)

    def nbr(self, node: ast.NbrRef) -> ir.Expr:
        name = node.name
        if name == "degree":
            return ir.Builtin("nbr_degree", VECTOR, node.span)
        if name in self.node_slots:
            return ir.Slot("nbr", name, VECTOR, node.span)
        if name in self.edge_slots or name in self.shared_slots:
            return self.bad(node, "E204", f"nbr. reads node slots; '{name}' is an edge slot",
                            f"read this half-edge's value as {name}"
                            + (f", the other end's as peer.{name}" if name in self.edge_slots
                               else ""))
        return self.bad(node, "E201", f"unknown node slot 'nbr.{name}'",
                        did_you_mean(name, set(self.node_slots) | {"degree"}))

    def peer(self, node: ast.PeerRef) -> ir.Expr:
        name = node.name
        if name in self.edge_slots:
            return ir.Slot("peer", name, VECTOR, node.span)
        if name in self.shared_slots:
            return self.bad(node, "E205", f"'{name}' is shared: both ends see one value",
                            f"write {name}, not peer.{name}")
        if name in self.node_slots:
            return self.bad(node, "E206",
                            f"peer. reads private edge slots; '{name}' is a node slot",
                            f"read the neighbour's node slot as nbr.{name}")
        return self.bad(node, "E201", f"unknown edge slot 'peer.{name}'",
                        did_you_mean(name, set(self.edge_slots)))

    def filter(self, node: ast.Filter) -> ir.Expr:
        value = self.expr(node.value, "vector")
        predicate = self.predicate(node.predicate)
        if value.type.is_error or predicate.type.is_error:
            return ir.Const(0.0, ERROR, node.span)
        if value.type.is_float:
            return self.bad(node, "E306",
                            "a filter selects half-edges of a vector; this is a float",
                            "filter a vector expression, e.g. (w * nbr.x)[incoming]")
        key = normalise(predicate)
        if value.type.filter is not None and value.type.filter != key:
            return self.bad(node, "E304", "a filter inside a different filter",
                            "combine the predicates in one filter: [p and q]")
        return ir.Restrict(value, predicate, Type("vector", key), node.span)

    def call(self, node: ast.Call, expect: str) -> ir.Expr:
        func, args = node.func, node.args
        if func in DRAWS:
            if args:
                return self.bad(node, "E203", f"{func}() takes no arguments",
                                "scale and shift the draw instead, e.g. 0.1 * gauss()")
            ordinal = self.draws
            self.draws += 1
            kind = VECTOR if expect == "vector" else FLOAT
            return ir.Random(func, ordinal, kind, node.span)
        if func in REDUCERS and (func not in ("min", "max") or len(args) == 1):
            if len(args) != 1:
                return self.arity(node, "1")
            arg = self.expr(args[0], "vector")
            if arg.type.is_error:
                return ir.Const(0.0, ERROR, node.span)
            if arg.type.is_float:
                return self.bad(node, "E302", f"{func}() reduces a vector; this is a float",
                                "a float is already one value for this node; drop the "
                                f"{func}(...)")
            return ir.Reduce(func, arg, FLOAT, node.span)
        op = CALLS.get(func)
        if op is None:
            name = ast.Name(func, node.func_span)
            if func in self.declared() or func in BUILTINS:
                return self.bad(name, "E202", f"'{func}' is not a function")
            return self.bad(name, "E202", f"unknown function '{func}'",
                            did_you_mean(func, set(FUNCTIONS)))
        if len(args) != op.arity:
            want = "1 or 2" if func in ("min", "max") else str(op.arity)
            return self.arity(node, want)
        checked = tuple(self.expr(a, expect) for a in args)
        return self.combine(op.name, checked, node.span)

    def arity(self, node: ast.Call, want: str) -> ir.Expr:
        got = len(node.args)
        return self.bad(node, "E203", f"{node.func}() takes {want} argument"
                        f"{'s' if want != '1' else ''}, got {got}")

    def combine(self, op: str, args: tuple[ir.Expr, ...], span: Span) -> ir.Expr:
        """Apply an elementwise op, broadcasting floats and joining filters."""
        vector, filters = False, set()
        for a in args:  # one pass: every rule a search draws is checked
            kind = a.type
            if kind.kind == "error":
                return ir.Const(0.0, ERROR, span)
            if kind.kind == "vector":
                vector = True
                if kind.filter is not None:
                    filters.add(kind.filter)
        if len(filters) > 1:
            self.error("E303", span, "operands have different filters",
                       "filter the whole expression once: (a * b)[p]")
            return ir.Const(0.0, ERROR, span)
        if vector:
            result = Type("vector", filters.pop()) if filters else VECTOR
        else:
            result = FLOAT
        return ir.Apply(op, args, result, span)


def check(tree: ast.File, filename: str = "<string>", source: str = "",
          default_name: str = "rule") -> ir.Program:
    """Check a syntax tree and return its IR; raises RuleErrors with every error found."""
    checker = Checker()
    program = checker.check_file(tree, default_name)
    if checker.errors or program is None:
        raise RuleErrors(filename, source, checker.errors)
    return program
