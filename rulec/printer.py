"""The canonical pretty-printer, used by `rulec fmt`.

    >>> format_tree(parse_text("node x\\nupdate{x=tanh( sum(w*nbr.x) )}"))
    'node x\\n\\nupdate {\\n    x = tanh(sum(w * nbr.x))\\n}\\n'

Parentheses are the fewest the precedence ladder needs; numbers are the
shortest text that rounds to the same float32; statements are indented by
four spaces, one per line. `format_source` also keeps the comments of the
source and its blank lines (collapsed to one). Printing then parsing gives
back the same tree, and canonical text prints as itself.
"""

from __future__ import annotations

import math

import numpy as np

from . import syntax as ast
from .ops import NEG, NOT, OPS

INDENT = "    "
_ATOM = 100


#: format_number's texts by value (a search prints the same few numbers in
#: every rule it draws); a zero by its sign, as -0.0 == 0.0 (a NaN is never
#: found again: it is not equal to itself, and is formatted each time)
_NUMBER_TEXTS: dict = {}


def format_number(value: float) -> str:
    """The shortest decimal text that parses back to the same float32
    (`-0` keeps its sign)."""
    key = value if value else ("zero", math.copysign(1.0, value))
    text = _NUMBER_TEXTS.get(key)
    if text is None:
        if len(_NUMBER_TEXTS) >= 4096:
            _NUMBER_TEXTS.clear()
        text = _NUMBER_TEXTS[key] = _format_number(value)
    return text


def _format_number(value: float) -> str:
    v = np.float32(value)
    if v == 0:
        return "-0" if np.signbit(v) else "0"
    if 1e-4 <= abs(v) < 1e16:
        return np.format_float_positional(v, unique=True, trim="-")
    return np.format_float_scientific(v, unique=True, trim="-")


def _precedence(expr: ast.Expr) -> int:
    kind = type(expr)
    if kind is ast.Binary:
        return OPS[expr.op].precedence
    if kind is ast.Unary:
        return NEG if expr.op == "neg" else NOT
    if kind is ast.Number and math.copysign(1.0, expr.value) < 0:
        return NEG  # printed as `-` and its magnitude, as ast.number builds it
    return _ATOM


def format_expr(expr: ast.Expr, names: Names | None = None) -> str:
    """An expression as canonical text (with `names`: its names renamed)."""
    return _FORMAT[type(expr)](expr, names)


def _binary(expr: ast.Binary, names: Names | None) -> str:
    op = OPS[expr.op]
    left, right = _precedence(expr.left), _precedence(expr.right)
    non_associative = op.precedence == _COMPARISON
    left_parens = left < op.precedence or (non_associative and left == op.precedence)
    left_text = _wrap(expr.left, left_parens, names)
    right_text = _wrap(expr.right, right <= op.precedence, names)
    return f"{left_text} {op.symbol} {right_text}"


def _unary(expr: ast.Unary, names: Names | None) -> str:
    inner = _precedence(expr.operand)
    if expr.op == "neg":
        return "-" + _wrap(expr.operand, inner <= NEG, names)
    return "not " + _wrap(expr.operand, inner < NOT, names)


def _filter(expr: ast.Filter, names: Names | None) -> str:
    value = _wrap(expr.value, _precedence(expr.value) < _ATOM, names)
    return f"{value}[{format_expr(expr.predicate, names)}]"


_COMPARISON = OPS["lt"].precedence  # the non-associative level

#: format_expr's printer of each kind of expression
_FORMAT = {
    ast.Name: lambda e, names: e.name if names is None else names.read(e.name),
    ast.Number: lambda e, names: format_number(e.value),
    ast.NbrRef: lambda e, names: f"nbr.{e.name if names is None else names.slot(e.name)}",
    ast.PeerRef: lambda e, names: f"peer.{e.name if names is None else names.slot(e.name)}",
    ast.Call: lambda e, names: f"{e.func}({', '.join([format_expr(a, names) for a in e.args])})",
    ast.Filter: _filter,
    ast.Unary: _unary,
    ast.Binary: _binary,
}


def _wrap(expr: ast.Expr, parens: bool, names: Names | None = None) -> str:
    text = _FORMAT[type(expr)](expr, names)
    return f"({text})" if parens else text


def _target(target: ast.Target, names: Names | None = None) -> str:
    prefix = {"slot": "", "nbr": "nbr.", "peer": "peer."}[target.kind]
    text = prefix + (target.name if names is None else names.slot(target.name))
    if target.predicate is not None:
        text += f"[{format_expr(target.predicate, names)}]"
    return text


class Names:
    """Renaming while printing (rulec.search.canon's canonical text): slots
    and params through `slots`, the rule to `rule`, and each `let`, in the
    order the printer meets them, to t1, t2, ... A read of a name goes to
    the innermost `let` of that name in scope, else through `slots`: what
    renaming the tree and then printing it gives, without the new tree."""

    def __init__(self, slots: dict[str, str], rule: str = "rule") -> None:
        self.slots, self.rule = slots, rule
        self.scopes: list[dict[str, str]] = [{}]
        self.count = 0

    def slot(self, name: str) -> str:
        return self.slots.get(name, name)

    def read(self, name: str) -> str:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        return self.slots.get(name, name)

    def let(self, name: str) -> str:
        """A new local from here to the end of its scope: its new name."""
        self.count += 1
        new = self.scopes[-1][name] = f"t{self.count}"
        return new

    def enter(self) -> None:
        self.scopes.append({})

    def leave(self) -> None:
        self.scopes.pop()


class _Comments:
    """The comments of a source, by line, handed out as the printer passes them."""

    def __init__(self, source: str) -> None:
        self.own_line: dict[int, str] = {}
        self.trailing: dict[int, str] = {}
        self.blank: set[int] = set()
        for number, line in enumerate(source.splitlines(), start=1):
            code, hashmark, comment = line.partition("#")
            if not line.strip():
                self.blank.add(number)
            if not hashmark:
                continue
            text = "#" + comment.rstrip()
            if code.strip():
                self.trailing[number] = text
            else:
                self.own_line[number] = text

    def before(self, line: int) -> list[tuple[int, str]]:
        """Own-line and skipped trailing comments above `line`, taken out in order."""
        taken = sorted((n, t) for n, t in {**self.own_line, **self.trailing}.items() if n < line)
        for n, _ in taken:
            self.own_line.pop(n, None)
            self.trailing.pop(n, None)
        return taken

    def after(self, line: int) -> str:
        text = self.trailing.pop(line, None)
        return f"  {text}" if text else ""

    def blank_between(self, first: int, last: int) -> bool:
        return any(first < n < last for n in self.blank)


class _Printer:
    def __init__(self, source: str | None, names: Names | None = None) -> None:
        self.names = names
        self.comments = _Comments(source) if source is not None else None
        self.lines: list[str] = []
        self.last_line = 0  # the last source line printed

    def emit(self, depth: int, text: str) -> None:
        self.lines.append(f"{INDENT * depth}{text}" if text else "")

    def leading(self, depth: int, line: int, blank_allowed: bool) -> None:
        """Comments above a construct starting on `line`, and a blank line if the source had one."""
        comments = self.comments.before(line) if self.comments else []
        blank = self.comments is not None and self.comments.blank_between(
            self.last_line, comments[0][0] if comments else line)
        if blank and blank_allowed and self.lines and self.lines[-1] != "":
            self.emit(0, "")
        previous = None
        for number, text in comments:
            if previous is not None and self.comments.blank_between(previous, number):
                self.emit(0, "")
            self.emit(depth, text)
            previous = number
        if comments and self.comments.blank_between(comments[-1][0], line):
            self.emit(0, "")

    def trailing(self, line: int) -> str:
        return self.comments.after(line) if self.comments else ""

    def flush(self, depth: int, line: int) -> None:
        """Print, one per line, the comments not yet printed that stand above `line`."""
        if self.comments:
            for _, text in self.comments.before(line):
                self.emit(depth, text)

    def file(self, tree: ast.File) -> str:
        previous: ast.Item | None = None
        for item in tree.items:
            is_block = isinstance(item, ast.Block)
            if previous is not None and (is_block or isinstance(previous, ast.Block)
                                         or type(previous) is not type(item)):
                if self.lines and self.lines[-1] != "":
                    self.emit(0, "")
            if self.comments is not None:
                self.leading(0, item.span.line, blank_allowed=True)
            if is_block:
                head = "init" if item.kind == "init" else " ".join(
                    filter(None, ["update", item.name]))
                self.body(0, head, item.body)
            else:
                self.emit(0, self.declaration(item, self.names)
                          + self.trailing(item.span.end_line))
            self.last_line = item.span.end_line
            previous = item
        self.flush(0, 10**9)  # comments after the last item
        while self.lines and self.lines[-1] == "":
            self.lines.pop()
        return "\n".join(self.lines) + "\n" if self.lines else ""

    @staticmethod
    def declaration(item: ast.Item, names: Names | None = None) -> str:
        if isinstance(item, ast.RuleDecl):
            return f"rule {item.name if names is None else names.rule}"
        if isinstance(item, ast.ParamDecl):
            sign = "-" if math.copysign(1.0, item.value) < 0 else ""
            name = item.name if names is None else names.slot(item.name)
            return f"param {name} = {sign}{format_number(abs(item.value))}"
        keyword = {"node": "node", "edge": "edge", "shared": "shared edge"}[item.kind]
        slots = item.names if names is None else [names.slot(n) for n in item.names]
        return f"{keyword} {', '.join(slots)}"

    def body(self, depth: int, head: str, body: ast.Body, close: bool = True) -> None:
        """`head {`, the statements, and `}` (unless `close` is false: an elif/else follows).
        Without comments (a tree printed alone, as a search prints every rule
        it draws) the comment bookkeeping is skipped."""
        comments = self.comments is not None
        open_line, close_line = body.span.line, body.span.end_line
        trailing = ""
        if comments:
            first = body.statements[0].span.line if body.statements else close_line
            trailing = self.trailing(open_line) if open_line != first else ""
        self.emit(depth, f"{head} {{{trailing}")
        head_index = len(self.lines) - 1
        self.last_line = open_line
        if self.names is not None:  # a block's locals end with it
            self.names.enter()
        for stmt in body.statements:
            if comments:
                self.leading(depth + 1, stmt.span.line,
                             blank_allowed=len(self.lines) > head_index + 1)
            self.statement(depth + 1, stmt)
            self.last_line = stmt.span.end_line
        if self.names is not None:
            self.names.leave()
        if comments:
            self.flush(depth + 1, close_line)
        self.last_line = close_line
        if not close:
            return
        if len(self.lines) == head_index + 1 and not trailing:
            self.lines[-1] += "}"
        else:
            self.emit(depth, "}")
        self.lines[-1] += self.trailing(close_line)

    def statement(self, depth: int, stmt: ast.Stmt) -> None:
        names = self.names
        if isinstance(stmt, ast.Assign):
            text = f"{_target(stmt.target, names)} {stmt.op} {format_expr(stmt.value, names)}"
        elif isinstance(stmt, ast.Let):
            value = format_expr(stmt.value, names)  # before the name is the new local's
            text = f"let {stmt.name if names is None else names.let(stmt.name)} = {value}"
        else:
            self.if_statement(depth, stmt)
            return
        if self.comments is not None:
            self.flush(depth, stmt.span.end_line)  # comments inside a continued statement
            text += self.trailing(stmt.span.end_line)
        self.lines.append(f"{INDENT * depth}{text}")

    def if_statement(self, depth: int, stmt: ast.If) -> None:
        parts = [("if" if i == 0 else "} elif", c, b) for i, (c, b) in enumerate(stmt.branches)]
        for index, (keyword, condition, body) in enumerate(parts):
            last = index == len(parts) - 1 and stmt.orelse is None
            self.body(depth, f"{keyword} {format_expr(condition, self.names)}", body,
                      close=last)
        if stmt.orelse is not None:
            self.body(depth, "} else", stmt.orelse)


def format_tree(tree: ast.File, names: Names | None = None) -> str:
    """Canonical text of a syntax tree (comments are not part of the tree);
    with `names`, renamed as it prints (Names)."""
    return _Printer(None, names).file(tree)


def format_source(source: str, tree: ast.File) -> str:
    """Canonical text of a parsed source, keeping its comments and blank lines."""
    return _Printer(source).file(tree)
