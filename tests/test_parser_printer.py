"""Parser robustness, the canonical printer and its round trip."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rulec
from rulec.frontend import load_program
from rulec.parser import parse_text
from rulec.printer import format_number, format_source, format_tree

from .conftest import EXAMPLES, TESTS

SOURCES = sorted(EXAMPLES.glob("*.rule")) + sorted((TESTS / "valid").glob("*.rule"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_print_then_parse_gives_the_same_tree_and_ir(path):
    text = path.read_text()
    tree = parse_text(text)
    printed = format_tree(tree)
    assert parse_text(printed) == tree
    assert load_program(printed) == load_program(text, name=load_program(printed).name)
    assert format_tree(parse_text(printed)) == printed  # canonical text is a fixed point


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.rule")), ids=lambda p: p.stem)
def test_examples_are_formatted_and_keep_their_comments(path):
    text = path.read_text()
    assert format_source(text, parse_text(text)) == text


def test_formatter_keeps_every_comment_and_normalises_layout():
    source = ("# head\nnode   x # slot\nupdate{x=(1+2)*x  # sum\n"
              "  # alone\n  let h=(x+\n 1)  # continued\n}\n# tail\n")
    out = format_source(source, parse_text(source))
    assert out == ("# head\nnode x  # slot\n\nupdate {\n    x = (1 + 2) * x  # sum\n"
                   "    # alone\n    let h = x + 1  # continued\n}\n# tail\n")


def test_precedence_and_parentheses():
    cases = {
        "x = a - (b - c)": "x = a - (b - c)",
        "x = (a - b) - c": "x = a - b - c",
        "x = -(a * b)": "x = -(a * b)",
        "x = (-a) * b": "x = -a * b",
        "x = not (a and b)": "x = not (a and b)",
        "x = (not a) and b": "x = not a and b",
        "x = (a < b) == c": "x = (a < b) == c",
        "x = sum((w * nbr.x)[incoming])": "x = sum((w * nbr.x)[incoming])",
        "x = - - a": "x = -(-a)",
        "x = (a or b) and c": "x = (a or b) and c",
    }
    for source, expected in cases.items():
        tree = parse_text(f"update {{ {source} }}")
        assert format_tree(tree).splitlines()[1].strip() == expected


@given(st.floats(allow_nan=False, allow_infinity=False, width=32, min_value=0))
def test_numbers_print_shortest_and_round_trip_to_the_same_float32(value):
    text = format_number(value)
    tree = parse_text(f"update {{ x = {text} }}")
    assert tree.items[0].body.statements[0].value.value == value


_names = st.sampled_from(["x", "y", "w", "lr", "degree", "parity", "nbr.x", "peer.w"])
_leaf = st.one_of(_names, st.integers(0, 100).map(str), st.sampled_from(["0.5", "1e-3"]))


def _expr(children):
    binary = st.tuples(children, st.sampled_from(["+", "-", "*", "/", "<", "==", "and", "or"]),
                       children).map(lambda t: f"({t[0]} {t[1]} {t[2]})")
    unary = st.tuples(st.sampled_from(["-", "not "]), children).map(lambda t: f"{t[0]}({t[1]})")
    call = st.tuples(st.sampled_from(["tanh", "sum", "max", "abs"]), children).map(
        lambda t: f"{t[0]}({t[1]})")
    two = st.tuples(st.sampled_from(["min", "max"]), children, children).map(
        lambda t: f"{t[0]}({t[1]}, {t[2]})")
    filt = st.tuples(children, children).map(lambda t: f"({t[0]})[{t[1]}]")
    return st.one_of(binary, unary, call, two, filt)


@settings(max_examples=200, deadline=None)
@given(st.recursive(_leaf, _expr, max_leaves=12))
def test_random_expressions_round_trip_through_the_printer(expression):
    tree = parse_text(f"update {{\n    z = {expression}\n}}\n")
    printed = format_tree(tree)
    assert parse_text(printed) == tree
    assert format_tree(parse_text(printed)) == printed


MALFORMED = {
    "empty": b"",
    "binary": bytes(range(256)),
    "nul bytes": b"node x\x00\nupdate { x = 1 }",
    "deep unclosed": b"node x\nupdate { x = " + b"(" * 10000,
    "deep unary": b"node x\nupdate { x = " + b"-" * 10000 + b"1 }",
    "deep not": b"node x\nupdate { x = " + b"not " * 5000 + b"1 }",
    "long chain": b"node x\nupdate { x = " + b"x + " * 10000 + b"1 }",
    "deep ifs": b"node x\nupdate {\n" + b"if x > 0 {\n" * 5000 + b"}\n" * 5000 + b"}",
    "deep filters": b"edge w\nupdate { w = w" + b"[incoming]" * 5000 + b" }",
    "unterminated block": b"node x\nupdate {\n  x = 1\n",
    "stray brace": b"}",
    "only comment": b"# nothing here",
    "bad utf8": b"node \xc3\x28",
    "unicode name": "node \u00e9t\u00e9\nupdate { x = 1 }".encode(),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_input_gets_a_positioned_error_never_an_exception(data):
    with pytest.raises(rulec.RuleErrors) as info:
        load_program(data, "bad.rule")
    errors = info.value.errors
    assert errors and all(e.span.line >= 1 and e.span.column >= 1 for e in errors)
    assert "bad.rule:" in str(info.value)


def test_redundant_parentheses_of_any_depth_are_fine():
    program = load_program("node x\nupdate { x = " + "(" * 10000 + "1" + ")" * 10000 + " }")
    assert program.blocks[0].statements[0].value.value == 1


def test_checker_reports_all_errors_sorted():
    text = "node x\nedge w\nupdate {\n    x = w\n    y = 1\n    x = sum(x)\n}\n"
    with pytest.raises(rulec.RuleErrors) as info:
        load_program(text)
    assert info.value.codes == ["E301", "E201", "E302"]
    assert [e.span.line for e in info.value.errors] == [4, 5, 6]


def test_line_continuation_and_semicolons():
    tree = parse_text("node x\nupdate { x = max(1,\n  2); x = (3\n + 4) }\n")
    assert len(tree.items[1].body.statements) == 2


def test_else_may_start_a_new_line():
    tree = parse_text("node x\nupdate {\n  if x > 0 { x = 1 }\n  else { x = 2 }\n}\n")
    assert tree.items[1].body.statements[0].orelse is not None


def test_rule_name_defaults_to_the_file_stem(tmp_path):
    path = tmp_path / "my_rule.rule"
    path.write_text("node x\nupdate { x = 1 }\n")
    assert rulec.compile_file(path).name == "my_rule"


@pytest.mark.parametrize("chain", ["0 < x < 1", "0 <= x <= 1", "1 == x == 1", "x != 1 >= 0"])
def test_chained_comparisons_get_the_chaining_hint(chain):
    with pytest.raises(rulec.RuleErrors) as info:
        load_program(f"node x\nupdate {{ x = {chain} }}")
    (error,) = info.value.errors
    assert error.code == "E003" and "comparisons do not chain" in error.hint


def test_a_missing_brace_is_blamed_on_the_block_it_leaves_open():
    """Regression: a missing `}` was reported as `unexpected 'relax'` with a hint
    about assignment operators, never naming the unclosed block."""
    from rulec.errors import RuleErrors
    from rulec.frontend import load_program

    for text, line in (("node x\nupdate {\n    x = 1\n\nupdate relax {\n    x = 2\n}\n", 6),
                       ("node x\nupdate {\n    x = 1\n\ninit {\n    x = 2\n}\n", 6)):
        try:
            load_program(text, "unclosed.rule")
        except RuleErrors as errors:
            message = str(errors)
        else:
            raise AssertionError("no error")
        assert f"the block opened on line 2 (update {{) is not closed: add '}}' before line " \
               f"{line - 1}" in message


@pytest.mark.parametrize("text, hint", [
    ("node x\nupdate {\n  if x > 0 {\n    x = 1\n}\n",
     "the block opened on line 2 (update {) is not closed: add '}'"),
    ("node x\nupdate {\n  if x > 0 {\n    x = 1\n", "the block opened on line 3 (if x > 0 {)"),
    ("node x\nupdate ", "hint: expected '{', a name\n"),  # no block open: none blamed
])
def test_a_file_that_ends_inside_a_block_names_the_block(text, hint):
    from rulec.errors import RuleErrors
    from rulec.frontend import load_program

    with pytest.raises(RuleErrors) as caught:
        load_program(text, "eof.rule")
    assert caught.value.codes == ["E004"] and hint in str(caught.value) + "\n"


def test_rulec_format_is_the_formatter_as_a_function():
    text = "node x # the slot\nupdate{x=mean(nbr.x)}\n"
    assert rulec.format(text) == "node x  # the slot\n\nupdate {\n    x = mean(nbr.x)\n}\n"
    assert rulec.format(rulec.format(text)) == rulec.format(text)
    with pytest.raises(rulec.RuleErrors):
        rulec.format("node x\nupdate { x = nbr.x }")


# --------------------------------------------------- the nodes' dataclass


def test_a_node_class_builds_frozen_values_with_the_dataclass_signature():
    """rulec.frozen.node writes a faster __init__ than dataclasses' for a
    frozen class: the same parameters and defaults, every field set, the
    object as frozen, equal and hashable as a plain frozen dataclass's."""
    import dataclasses
    import inspect

    from rulec.frozen import node

    @node
    class Pair:
        left: object
        right: object = 2
        note: str = dataclasses.field(default="n", compare=False)

    @dataclasses.dataclass(frozen=True, slots=True)
    class Plain:
        left: object
        right: object = 2
        note: str = dataclasses.field(default="n", compare=False)

    def parameters(cls):
        return [(p.name, p.default, p.kind) for p in inspect.signature(cls).parameters.values()]

    assert parameters(Pair) == parameters(Plain)
    for args, kwargs in (((1,), {}), ((1, 3), {}), ((), {"left": 1, "note": "x"})):
        made, plain = Pair(*args, **kwargs), Plain(*args, **kwargs)
        assert [getattr(made, f.name) for f in dataclasses.fields(Pair)] == \
            [getattr(plain, f.name) for f in dataclasses.fields(Plain)]
    assert Pair(1, 3, "a") == Pair(1, 3, "b") and hash(Pair(1, 3, "a")) == hash(Pair(1, 3, "b"))
    assert Pair(1) != Pair(2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Pair(1).left = 5
    with pytest.raises(TypeError):
        Pair()
    # the tree's nodes are such classes, and still compare by value, not by span
    from rulec import syntax as ast
    from rulec.errors import Span

    assert ast.Binary("add", ast.Name("x"), ast.Number(1.0)) == \
        ast.Binary("add", ast.Name("x"), ast.Number(1.0), Span(1, 1, 1, 2))
    assert ast.Binary("add", ast.Name("x"), ast.Number(1.0)).span == Span(0, 0, 0, 0)


def test_a_node_class_that_needs_the_dataclass_init_is_refused():
    import dataclasses

    from rulec.frozen import node

    with pytest.raises(TypeError, match="needs the __init__"):
        @node
        class Listed:
            items: list = dataclasses.field(default_factory=list)

    with pytest.raises(TypeError, match="needs the __init__"):
        @node
        class Checked:
            value: int

            def __post_init__(self):
                pass
