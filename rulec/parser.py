"""Text to syntax tree, with every failure turned into a positioned RuleError.

    >>> parse_text("rule r\\nnode x\\nupdate { x = 1 }").items[0]
    RuleDecl(name='r')

The grammar is `grammar/rule.lark` (LALR, so parsing never recurses); a
post-lexer implements line continuation. Trees deeper than MAX_DEPTH are
rejected before anything walks them recursively, so no input, however
nested, reaches Python's recursion limit.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np
from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lark import PostLex

from . import resources
from . import syntax as ast
from .errors import RuleError, RuleErrors, Span

#: The deepest expression or statement nesting accepted (parentheses, operators, blocks).
MAX_DEPTH = 200

_OPENERS = {"LPAR", "LSQB"}
_CLOSERS = {"RPAR", "RSQB"}

#: How the grammar's pattern terminals are named in "expected ..." messages;
#: literal terminals ('{', 'update', ...) are shown as written in the grammar.
_TERMINAL_TEXT = {
    "_SEP": "end of statement",
    "NAME": "a name",
    "NUMBER": "a number",
    "$END": "end of file",
}

_COMPARISONS = {"<", "<=", ">", ">=", "==", "!="}


class _LineContinuation(PostLex):
    """Drop newline separators inside open parentheses and brackets.

    Separators are only dropped, never held back: the contextual lexer picks
    its terminals from the parser's current state, so the token stream must
    stay in step with the parser.
    """

    always_accept = ("_SEP",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        depth = 0
        for token in stream:
            if token.type == "_SEP":
                if depth > 0 and ";" not in token:
                    continue
            elif token.type in _OPENERS:
                depth += 1
            elif token.type in _CLOSERS and depth > 0:
                depth -= 1
            yield token


@functools.cache
def _parser() -> Lark:
    return Lark(
        resources.grammar_text(),
        parser="lalr",
        lexer="contextual",
        postlex=_LineContinuation(),
        propagate_positions=True,
        maybe_placeholders=True,
    )


def _span_of(meta_or_token) -> Span:
    return Span(
        meta_or_token.line,
        meta_or_token.column,
        meta_or_token.end_line,
        meta_or_token.end_column,
    )


def to_float32(text: str) -> float:
    """A literal's value rounded to float32 (raises OverflowError past float32's range)."""
    with np.errstate(over="ignore"):
        value = np.float32(float(text))
    if not np.isfinite(value):
        raise OverflowError(text)
    return float(value)


@v_args(meta=True)
class _ToSyntax(Transformer):
    """Lark tree to rulec.syntax, bottom-up (lark's tree is checked shallow first)."""

    def __init__(self) -> None:
        super().__init__(visit_tokens=False)
        self.errors: list[RuleError] = []

    # --- expressions
    def number(self, meta, children):
        token = children[0]
        try:
            value = to_float32(token)
        except OverflowError:
            self.errors.append(
                RuleError(
                    "E006",
                    _span_of(token),
                    f"number {token} is too large for float32",
                    "float32 holds magnitudes up to about 3.4e38",
                )
            )
            value = 0.0
        return ast.Number(value, _span_of(meta))

    def name(self, meta, children):
        return ast.Name(str(children[0]), _span_of(meta))

    def nbr_ref(self, meta, children):
        return ast.NbrRef(str(children[0]), _span_of(meta))

    def peer_ref(self, meta, children):
        return ast.PeerRef(str(children[0]), _span_of(meta))

    def call(self, meta, children):
        func, *args = children
        args = tuple(a for a in args if a is not None)
        return ast.Call(str(func), args, _span_of(meta), _span_of(func))

    def negate(self, meta, children):
        return ast.Unary("neg", children[0], _span_of(meta))

    def not_op(self, meta, children):
        return ast.Unary("not", children[0], _span_of(meta))

    def filter(self, meta, children):
        return ast.Filter(children[0], children[1], _span_of(meta))

    def _binary(op):  # noqa: N805 - a method factory, used in the class body only
        def build(self, meta, children):
            return ast.Binary(op, children[0], children[1], _span_of(meta))

        return build

    add, sub, mul, div = _binary("add"), _binary("sub"), _binary("mul"), _binary("div")
    lt, le, gt, ge = _binary("lt"), _binary("le"), _binary("gt"), _binary("ge")
    eq, ne = _binary("eq"), _binary("ne")
    and_op, or_op = _binary("and"), _binary("or")

    # --- statements
    def slot_target(self, meta, children):
        return ast.Target("slot", str(children[0]), None, _span_of(meta))

    def filtered_target(self, meta, children):
        return ast.Target("slot", str(children[0]), children[1], _span_of(meta))

    def nbr_target(self, meta, children):
        return ast.Target("nbr", str(children[0]), None, _span_of(meta))

    def peer_target(self, meta, children):
        return ast.Target("peer", str(children[0]), None, _span_of(meta))

    def _assign(op):  # noqa: N805
        def build(self, meta, children):
            return ast.Assign(children[0], op, children[1], _span_of(meta))

        return build

    assign, add_assign = _assign("="), _assign("+=")
    sub_assign, mul_assign = _assign("-="), _assign("*=")

    def let(self, meta, children):
        return ast.Let(str(children[0]), children[1], _span_of(meta), _span_of(children[0]))

    def body(self, meta, children):
        return ast.Body(tuple(children), _span_of(meta))

    def elif_clause(self, meta, children):
        return (children[0], children[1])

    def else_clause(self, meta, children):
        return children[0]

    def if_stmt(self, meta, children):
        condition, body, *rest = children
        branches = [(condition, body)]
        orelse = None
        for part in rest:
            if isinstance(part, tuple):
                branches.append(part)
            elif part is not None:
                orelse = part
        return ast.If(tuple(branches), orelse, _span_of(meta))

    # --- declarations
    def rule_decl(self, meta, children):
        return ast.RuleDecl(str(children[0]), _span_of(meta))

    def positive_number(self, meta, children):
        return self.number(meta, children).value

    def negative_number(self, meta, children):
        return -self.number(meta, children).value

    def param_decl(self, meta, children):
        return ast.ParamDecl(str(children[0]), children[1], _span_of(meta))

    def _slots(kind):  # noqa: N805
        def build(self, meta, children):
            names = tuple(str(c) for c in children)
            spans = tuple(_span_of(c) for c in children)
            return ast.SlotDecl(kind, names, _span_of(meta), spans)

        return build

    node_decl, edge_decl, shared_decl = _slots("node"), _slots("edge"), _slots("shared")

    def init_block(self, meta, children):
        return ast.Block("init", None, children[0], _span_of(meta))

    def update_block(self, meta, children):
        name, body = children
        return ast.Block("update", None if name is None else str(name), body, _span_of(meta))

    def start(self, meta, children):
        return ast.File(tuple(children))


def _too_deep(tree: Tree) -> Tree | None:
    """The first subtree nested deeper than MAX_DEPTH, found without recursion."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return node
        for child in node.children:
            if isinstance(child, Tree):
                stack.append((child, depth + 1))
    return None


def _terminal_text(name: str) -> str:
    if name in _TERMINAL_TEXT:
        return _TERMINAL_TEXT[name]
    for terminal in _parser().terminals:
        if terminal.name == name and terminal.pattern.type == "str":
            return f"'{terminal.pattern.value}'"
    return f"'{name.lower()}'"


def _expected_text(expected) -> str:
    names = sorted({_terminal_text(t) for t in expected})
    if len(names) > 8:
        names = names[:8] + ["..."]
    return ", ".join(names)


def _syntax_error(err: UnexpectedInput, source: str) -> RuleError:
    line, column = err.line, err.column
    if isinstance(err, UnexpectedCharacters):
        char = source[err.pos_in_stream] if err.pos_in_stream < len(source) else "?"
        shown = repr(char) if char.isprintable() else f"U+{ord(char):04X}"
        hint = None
        if char in "!&|":
            hint = "logical operators are spelled and, or, not"
        elif char == "^":
            hint = "there is no power operator; use square(x) or exp(y * log(x))"
        return RuleError("E002", Span.point(line, column), f"unexpected character {shown}", hint)
    if isinstance(err, UnexpectedEOF) or (
        isinstance(err, UnexpectedToken) and err.token.type == "$END"
    ):
        lines = source.splitlines() or [""]
        last = len(lines)
        span = Span.point(last, len(lines[-1]) + 1)
        opened = _unclosed_brace(source, len(source))
        hint = (f"the block opened on line {opened[0]} ({opened[1]}) is not closed: add '}}'"
                if opened is not None else
                f"expected {_expected_text(err.expected)}")
        return RuleError("E004", span, "unexpected end of file", hint)
    assert isinstance(err, UnexpectedToken)
    token = err.token
    if token.type == "_SEP":
        what = "';'" if ";" in token else "end of line"
        span = Span.point(token.line, token.column)
    else:
        what = f"'{token}'"
        span = _span_of(token)
    hint = f"expected {_expected_text(err.accepts or err.expected)}"
    if str(token) in _COMPARISONS:
        hint += "; comparisons do not chain: write (a < b) and (b < c)"
    opened = _unclosed_brace(source, token.start_pos or 0)
    lines = source.splitlines()
    words = lines[token.line - 1].split() if 0 < token.line <= len(lines) else []
    if opened is not None and opened[0] < token.line and (
            str(token) in _TOP_LEVEL or (words and words[0] in _TOP_LEVEL)):
        line_of, text_of = opened
        hint = (f"the block opened on line {line_of} ({text_of}) is not closed: add '}}' "
                f"before line {token.line}")
    return RuleError("E003", span, f"unexpected {what}", hint)


#: Words that start a top-level item: inside a block, they mean a '}' is missing.
_TOP_LEVEL = frozenset(("rule", "param", "node", "edge", "shared", "init", "update"))


def _unclosed_brace(source: str, end: int) -> tuple[int, str] | None:
    """(line, the line's text) of the innermost '{' still open at offset `end`."""
    stack: list[int] = []
    position = 0
    for line in source[:end].splitlines(keepends=True):
        code = line.split("#", 1)[0]
        for offset, char in enumerate(code):
            if char == "{":
                stack.append(position + offset)
            elif char == "}" and stack:
                stack.pop()
        position += len(line)
    if not stack:
        return None
    at = stack[-1]
    number = source.count("\n", 0, at) + 1
    text = source.splitlines()[number - 1].strip()
    return number, text if len(text) <= 40 else text[:37] + "..."


def decode(data: bytes, filename: str) -> str:
    """Source bytes to text; bytes that are not UTF-8 are a positioned E001."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8", errors="replace")
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        error = RuleError(
            "E001",
            Span.point(line, column),
            f"byte 0x{data[exc.start]:02x} is not UTF-8 text",
            "rule files are UTF-8 text; is this the right file?",
        )
        raise RuleErrors(filename, before, [error]) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text


def parse_text(source: str, filename: str = "<string>") -> ast.File:
    """Parse rule text to a syntax tree; raises RuleErrors on any syntax error."""
    try:
        tree = _parser().parse(source)
    except UnexpectedInput as err:
        raise RuleErrors(filename, source, [_syntax_error(err, source)]) from None
    deep = _too_deep(tree)
    if deep is not None:
        meta = deep.meta
        span = Span(meta.line, meta.column, meta.end_line, meta.end_column)
        error = RuleError(
            "E005",
            span,
            f"nesting deeper than {MAX_DEPTH} levels",
            "split the expression with let",
        )
        raise RuleErrors(filename, source, [error])
    builder = _ToSyntax()
    result = builder.transform(tree)
    if builder.errors:
        raise RuleErrors(filename, source, builder.errors)
    return result
