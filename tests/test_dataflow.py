"""Dead writes (a write a later one replaces: writes land when the block ends)
and the influence graph (which slot can reach which over steps): the checker
warns about the first, canonical text and the search's generator drop them,
and the static hurdle reads the second (test_search.py)."""

from __future__ import annotations

import warnings

import pytest

import rulec
from rulec import dataflow
from rulec.generate import SeededSource, rule_tree
from rulec.parser import parse_text
from rulec.search import Settings
from rulec.search.canon import canonical_text

HEAD = "rule r\nparam lr = 1\nnode x, y\nedge w, v\nshared edge g\n"


def dead_lines(body: str) -> list[tuple[int, int]]:
    tree = parse_text(HEAD + "update {\n" + body + "\n}\n", "r.rule")
    return [(d.span.line - 6, k.span.line - 6) for d, k in dataflow.dead_writes(tree)]


@pytest.mark.parametrize("body,dead", [
    ("x = 1\nx = 2", [(1, 2)]),
    ("x -= y\nx *= y", [(1, 2)]),  # `x *= y` is `x = x * y` with x at block start
    ("if y { x = 1 }\nx = 2", [(1, 2)]),  # the later write applies wherever the first does
    ("x = 1\nif y { x = 2 }", []),  # only where y > 0
    ("if y { x = 1 } else { x = 2 }", []),  # different branches
    ("if y { x = 1\nx = 2 }", [(1, 2)]),
    ("w = 1\nw[nbr.y > 0] = 2", []),  # a filtered target writes some half-edges
    ("w = 1\nw = (2 * w)[nbr.y > 0]", []),  # so does a filtered value
    ("w = 1\nlet f = v[nbr.y > 0]\nw = f", []),  # through a local
    ("w = 1\nw = sum(v[nbr.y > 0])", [(1, 2)]),  # a reduced filter is a float: every half-edge
    ("g = 1\ng = 2", [(1, 2)]),  # shared slots: each end's last proposal counts
    ("x = 1\ny = 2", []),
])
def test_dead_writes_are_the_writes_a_later_one_replaces_everywhere(body, dead):
    assert dead_lines(body) == dead


def test_named_blocks_are_separate():
    tree = parse_text(HEAD + "update { x = 1 }\nupdate other { x = 2 }\n", "r.rule")
    assert dataflow.dead_writes(tree) == []


def test_the_checker_warns_with_place_and_hint_and_the_rule_still_runs(tmp_path, run_cli):
    path = tmp_path / "dead.rule"
    path.write_text(HEAD + "update {\n    x -= y\n    x *= y\n}\n")
    result = run_cli("check", path)
    assert result.returncode == 0, result.stderr
    assert f"{path}:7:5: warning[W101]: this write to 'x' never lands: the write to 'x' " \
           "on line 8 replaces it" in result.stderr
    assert " 7 |     x -= y" in result.stderr and "hint: writes land when the block ends" \
        in result.stderr
    assert "W101" not in run_cli("check", "-q", path).stderr
    ran = run_cli("run", path, "--graph", "ring:3", "--backend", "numpy")
    assert ran.returncode == 0 and f"{path}:7:5: warning[W101]" in ran.stderr
    with pytest.warns(rulec.RuleWarning, match=r"warning\[W101\]"):
        rulec.compile_file(path, backend="numpy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rulec.compile(HEAD + "update { x = y }\n", backend="numpy")


def test_canonical_text_drops_dead_writes():
    with_dead = parse_text(HEAD + "update {\n x = y\n if y { w = 1 }\n x = 2 * y\n}\n", "r.rule")
    without = parse_text(HEAD + "update {\n if y { w = 1 }\n x = 2 * y\n}\n", "r.rule")
    assert canonical_text(with_dead) == canonical_text(without)
    emptied = parse_text(HEAD + "update {\n if y { x = 1 }\n x = 2\n}\n", "r.rule")
    assert canonical_text(emptied) == canonical_text(parse_text(HEAD + "update { x = 2 }\n",
                                                                "r.rule"))


def test_the_search_generator_never_emits_dead_writes_and_the_fuzzer_still_does():
    # _dead_writes_of: found afresh, not the answer without_dead_writes leaves
    # cached for its own result
    options = Settings().space.options()
    assert options.live_only
    assert not any(dataflow._dead_writes_of(rule_tree(SeededSource(f"7:{i}"), options))
                   for i in range(300))
    fuzz = [rule_tree(SeededSource(f"7:{i}")) for i in range(300)]
    assert any(dataflow.dead_writes(tree) for tree in fuzz)  # last-write-wins stays tested


def test_a_tree_without_its_dead_writes_has_none_left():
    """Taking every dead write away (exact=False, the search's generator)
    leaves none: without_dead_writes caches that answer for its result, so
    the canonical text and the static hurdle do not look again."""
    trees = [rule_tree(SeededSource(f"8:{i}")) for i in range(300)]
    assert sum(bool(dataflow._dead_writes_of(tree)) for tree in trees) > 30
    for tree in trees:
        live = dataflow.without_dead_writes(tree, exact=False)
        assert dataflow._dead_writes_of(live) == []
        assert dataflow.without_dead_writes(live) is live


def test_the_influence_graph_follows_lets_conditions_and_filters():
    tree = parse_text(HEAD + "update {\n let t = nbr.y\n if lr > 0 { w[nbr.x > 0] = t }\n"
                             " x = sum(w)\n}\n", "r.rule")
    graph = dataflow.influence(tree)
    assert graph["w"] == {"y", "lr", "x"} and graph["x"] == {"w"}
    assert dataflow.reaches(graph, "y", "x") and not dataflow.reaches(graph, "x", "y")


def test_a_dead_write_that_draws_stays_so_later_draws_keep_their_values():
    tree = parse_text(HEAD + "update {\n x = gauss()\n y = uniform()\n x = 2 * y\n}\n", "r.rule")
    assert len(dataflow.dead_writes(tree)) == 1  # still warned about
    assert dataflow.without_dead_writes(tree) == tree  # but kept: y's draw is the second
    assert dataflow.dead_writes(dataflow.without_dead_writes(tree, exact=False)) == []


def test_the_cli_leaves_the_callers_warning_filters_as_they_were(tmp_path, capsys):
    from rulec.cli import main

    path = tmp_path / "dead.rule"
    path.write_text(HEAD + "update {\n    x -= y\n    x *= y\n}\n")
    before = list(warnings.filters)
    assert main(["check", "-q", str(path)]) == 0
    assert main(["check", str(path)]) == 0
    assert "warning[W101]" in capsys.readouterr().err
    assert warnings.filters == before


def test_one_statement_object_at_two_places_loses_only_its_dead_copy():
    # a mutation that repeats a statement puts one object at two places; the
    # first is dead, the second lands (found by place, not by object: a
    # search resumed from text, where the two are distinct objects, made a
    # different child than the run that was never stopped)
    from rulec import syntax as ast
    from rulec.dataflow import without_dead_writes
    from rulec.parser import parse_text
    from rulec.printer import format_tree

    tree = parse_text("node x, y\nupdate {\n    x = y + 1\n    y = x\n}\n", "r.rule")
    block = tree.items[-1]
    first = block.body.statements[0]
    shared = ast.File((*tree.items[:-1], ast.Block(block.kind, block.name, ast.Body(
        (first, block.body.statements[1], first)))))
    parsed = parse_text(format_tree(shared), "r.rule")
    expected = "update {\n    y = x\n    x = y + 1\n}"
    assert expected in format_tree(without_dead_writes(shared))
    assert expected in format_tree(without_dead_writes(parsed))
