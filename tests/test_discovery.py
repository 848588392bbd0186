"""What lets a search reach learning rules: shaped generation (a forward and
a learning statement whose target reaches the output through a weight),
topologies whose inputs reach an output, and screening on several graphs."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from rulec import search as S
from rulec.generate import SeededSource, rule_tree
from rulec.graph import Graph
from rulec.learning import tasks, topologies
from rulec.printer import format_tree
from rulec.search.hurdles import score_rule, static_failure
from rulec.search.space import settings_to_toml

from .test_search import DELTA, FAST


def _static_rate(shaped: float, n: int = 200) -> float:
    space = dataclasses.replace(S.Space(), shaped=shaped)
    options, protocol = space.options(), space.make_protocol()
    passed = sum(static_failure(rule_tree(SeededSource(f"7:{i}"), options), protocol) is None
                 for i in range(n))
    return passed / n


def test_shaped_rules_carry_the_target_to_the_output_through_a_weight():
    # unshaped, a random rule rarely writes the output with the input and the
    # target both reaching it; shaped, almost every rule does (the rest lose
    # the input: a forward statement over the output's own neighbours)
    unshaped, shaped = _static_rate(0.0), _static_rate(1.0)
    assert unshaped < 0.2 and shaped > 0.6, (unshaped, shaped)


def test_a_shaped_rule_ends_with_a_forward_and_a_learning_statement():
    space = dataclasses.replace(S.Space(), shaped=1.0)
    for i in range(50):
        tree = rule_tree(SeededSource(i), space.options())
        update = [item for item in tree.items if getattr(item, "kind", None) == "update"][0]
        last = update.body.statements[-2:]
        written = {stmt.target.name for stmt in last}
        assert "a" in written and written & {"w", "v"}, S.canonical_text(tree)


def test_unshaped_generation_draws_the_same_rules_as_before():
    # shaped = 0 draws no extra number: fuzzing's and old runs' streams stay
    space = dataclasses.replace(S.Space(), shaped=0.0)
    options = dataclasses.replace(space.options(), roles=None)
    for i in range(30):
        assert rule_tree(SeededSource(i), options) == rule_tree(SeededSource(i),
                                                               space.options())


def test_every_waxman_input_reaches_an_output():
    # before the repair, 75 of 200 such graphs had an input with no way up
    for seed in range(100):
        top = topologies.waxman(2, 1, 6, seed)
        assert top.unreached() == [] and top.reach is not None
        assert 1 <= top.reach <= top.depth
    assert topologies.layered([2, 4, 1], bias=True).reach == 2
    assert topologies.layered([2, 4, 1], bias=True).depth == 2
    assert topologies.layered([2, 1], bias=True).depth == 1


def test_an_input_with_no_path_to_an_output_is_named():
    # inputs 0 and 1 both reach the output 3 through 2
    top = topologies.Topology(Graph.from_edges(4, [(0, 2), (2, 3), (1, 2)]),
                              np.array([0, 1]), np.array([3]))
    assert top.unreached() == [] and top.reach == 2
    dead_end = topologies.Topology(Graph.from_edges(5, [(0, 2), (2, 4), (1, 3)]),
                                   np.array([0, 1]), np.array([4]))
    assert dead_end.unreached() == [1] and dead_end.reach is None


def test_waxman_topologies_need_no_networkx():
    code = ("import sys; sys.modules['networkx'] = None\n"
            "from rulec.learning import topology_from_spec, task_named\n"
            "t = topology_from_spec('waxman:6,3', task_named('xor'))\n"
            "print(t.graph.n_nodes, t.reach)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "9"


def test_a_forward_phase_too_short_for_the_graph_is_refused_with_the_fix():
    settings = S.Settings(S.Space(forward=1), S.Screen(graph="layered:2,4,1,bias"))
    with pytest.raises(S.SpaceError, match=r"needs 2 steps .* raise \[protocol\] forward to "
                                           r"at least 2"):
        settings.check()
    S.Settings(S.Space(forward=2), S.Screen(graph="layered:2,4,1,bias")).check()


def test_several_graphs_each_learn_every_task(tmp_path):
    two = dataclasses.replace(FAST, screen=dataclasses.replace(
        FAST.screen, graph=("layered:2,1,bias", "layered:2,2,1,bias")))
    two = dataclasses.replace(two, space=dataclasses.replace(two.space, forward=2))
    record = score_rule(DELTA, two)
    tasks_seen = {(r["task"], r["seed"]) for r in record["results"]}
    # the second graph's rows are named or@1
    assert {("or", 0), ("or", 1), ("or@1", 0), ("or@1", 1)} <= tasks_seen
    # a graph the rule cannot learn on fails the task, naming the graphs
    bad = dataclasses.replace(two, screen=dataclasses.replace(
        two.screen, graph=("layered:2,1,bias", "layered:2,1")), space=FAST.space)
    record = score_rule(DELTA, dataclasses.replace(
        bad, screen=dataclasses.replace(bad.screen, tasks=("and",))))
    assert record["failed_hurdle"] == "and" and "on 2 graphs" in record["failure"]


def test_graphs_as_a_toml_list_and_a_repeated_flag(tmp_path):
    settings = S.settings_from_toml({"screen": {"graph": ["layered:2,1,bias", "waxman:6,1"]}})
    assert settings.screen.graphs == ("layered:2,1,bias", "waxman:6,1")
    again = S.Settings.from_dict(settings.to_dict())
    assert again == settings and again.key() == settings.key()
    path = tmp_path / "space.toml"
    path.write_text(settings_to_toml(settings))
    assert S.load_settings(path) == settings
    with pytest.raises(S.SpaceError, match="named twice"):
        S.settings_from_toml({"screen": {"graph": ["waxman:6,1", "waxman:6,1"]}})
    rule = tmp_path / "delta.rule"
    rule.write_text(DELTA)
    out = subprocess.run([sys.executable, "-m", "rulec", "search", "score", str(rule),
                          "--task", "and", "--graph", "layered:2,1,bias", "--graph",
                          "layered:2,1", "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "and: mean accuracy" in out.stdout and "on 2 graphs" in out.stdout


def test_parity_and_truth_tables_are_tasks():
    assert tasks.task_named("parity3").targets.ravel().tolist() == [0, 1, 1, 0, 1, 0, 0, 1]
    assert tasks.task_named("table:0111").targets.ravel().tolist() == [0, 1, 1, 1]


def _children(mutation: str, seeds: int, text: str = DELTA, space=None) -> list[str]:
    """The texts of the checked children one kind of mutation makes of a
    rule, one try per seed (None where the child did not check)."""
    import random

    from rulec.parser import parse_text
    from rulec.search.mutate import Mutator

    tree = parse_text(text, "parent.rule")
    mutator = Mutator(space or S.Space())
    children = (mutator._checked(tree, getattr(mutator, mutation)(tree, random.Random(seed)))
                for seed in range(seeds))
    return [None if child is None else format_tree(child) for child in children]


def test_leaf_swaps_trade_a_leaf_for_another_of_its_kind():
    children = set(_children("leaf_swap", 60)) - {None}
    # nbr.inp -> nbr.a, w -> peer.w, a node slot for another
    assert any("nbr.a" in text for text in children)
    assert any("peer.w" in text for text in children)
    assert len(children) >= 5


def test_message_turns_a_leaf_into_what_the_neighbours_send():
    from rulec.parser import parse_text

    # from the delta rule whose hidden error is 0 (rung b's start), one
    # message move reaches feedback alignment or backpropagation's error line
    with open("tests/calibration/delta_hidden0_fixed.rule") as f:
        start = f.read()
    errors, before = set(), format_tree(parse_text(start)).count("nbr.")
    for text in _children("message", 1500, start,
                          S.load_settings("examples/search/hidden.toml").space):
        if text is None:
            continue
        assert text.count("nbr.") == before + 1, text  # one leaf became one message
        line = next(x.strip() for x in text.splitlines() if "delta =" in x)
        if line.startswith("delta = train * select(count(outgoing), sum("):
            errors.add(line.split("sum(")[1].split(")")[0])
    assert {"w * nbr.delta", "peer.w * nbr.delta"} <= errors, errors


def test_assign_op_flips_which_way_a_statement_moves_its_slot():
    from rulec.parser import parse_text

    parent = format_tree(parse_text(DELTA))
    ops = Counter()
    for text in _children("assign_op", 60):
        if text is None:
            continue
        changed = [a for a, b in zip(text.splitlines(), parent.splitlines(), strict=True)
                   if a != b]
        assert len(changed) == 1, changed  # one statement's operator, nothing else
        ops[next(x.split()[1] for x in text.splitlines() if x.strip().startswith("w["))] += 1
    # the learning statement's -= became each of the others: toward or away
    # from the target, a plain write, a scaling
    assert {"+=", "=", "*="} <= set(ops), ops


def test_crossover_puts_a_part_of_another_rule_in_a_checked_child():
    import random

    from rulec.parser import parse_text
    from rulec.search.mutate import Mutator

    tree = parse_text(DELTA, "delta.rule")
    other = parse_text("node inp, target, train, a\nedge w\n"
                       "update { a = tanh(max(w * nbr.a)) }", "other.rule")
    mutator = Mutator(S.Space())
    borrowed = 0
    for seed in range(40):
        child = mutator.crossover(tree, other, random.Random(seed))
        assert child is not None and child[1] == "crossover"
        text = format_tree(child[0])
        borrowed += "tanh" in text or "max(" in text or "nbr.a" in text
    assert borrowed >= 20


def test_evolution_crosses_parents_when_asked(tmp_path):
    import sqlite3

    config = S.Config(strategy="evolve", seed=5, generation=16, population=16, tournament=4,
                      start=(DELTA,), crossover=0.5)
    S.search(FAST, config, str(tmp_path / "x.sqlite"), rules=96)
    kinds = Counter(row[0] for row in sqlite3.connect(tmp_path / "x.sqlite").execute(
        "SELECT mutation FROM rules WHERE parent IS NOT NULL"))
    assert kinds["crossover"] >= 10, kinds
    none = S.Config(strategy="evolve", seed=5, generation=16, population=16, tournament=4,
                    start=(DELTA,), crossover=0.0)
    S.search(FAST, none, str(tmp_path / "y.sqlite"), rules=96)
    assert not sqlite3.connect(tmp_path / "y.sqlite").execute(
        "SELECT count(*) FROM rules WHERE mutation = 'crossover'").fetchone()[0]


def test_a_target_blind_rule_ranks_below_an_honest_partial_learner():
    from rulec.search.strategy import fitness

    blind = {"passed": 6, "score": 0.0, "size": 20, "spread": 1.0,
             "failure": "target-blind: or: trained on the complement targets ..."}
    partial = {"passed": 5, "score": 0.75, "size": 20, "spread": 1.0,
               "failure": "or: mean accuracy 0.500 over 2 seeds < 1.0"}
    assert fitness(partial) > fitness(blind)
    assert fitness({**blind, "failure": None, "score": 1.0}) > fitness(partial)


def test_the_hidden_hurdle_is_asked_for_by_the_space_and_round_trips(tmp_path):
    settings = S.settings_from_toml({"screen": {"hidden": True, "tasks": ["xor"],
                                                "graph": "layered:2,4,1,bias"}})
    assert settings.screen.hidden and "hidden" in S.hurdle_names(settings)
    assert S.hurdle_names(settings).index("hidden") == S.hurdle_names(settings).index(
        "targets") + 1
    path = tmp_path / "space.toml"
    path.write_text(settings_to_toml(settings))
    assert S.load_settings(path) == settings
    with pytest.raises(S.SpaceError, match="hidden is true or false"):
        S.settings_from_toml({"screen": {"hidden": 1}})
    assert "hidden" not in S.hurdle_names(S.Settings())
