"""A search resumed from its database stores exactly what one uninterrupted
run stores: the strategy's trees survive print -> parse, and a resume
rebuilds the coordinator's maps as they stood."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from rulec import search as S
from rulec.parser import parse_text
from rulec.printer import format_tree
from rulec.search.mutate import Mutator
from rulec.search.space import load_settings
from rulec.search.strategy import random_candidate

from .conftest import EXAMPLES
from .test_search import _count, rows

LOGIC = EXAMPLES / "search" / "logic.toml"
SPACES = {"default": S.Settings().space, "logic": load_settings(LOGIC).space}


@pytest.mark.parametrize("space_name", list(SPACES))
def test_generated_and_mutated_trees_survive_print_and_parse(space_name):
    """parse(format(t)) == t, structurally, for random rules and chains of
    mutations of them (negative constants, -0, grown subtrees, spliced ifs)."""
    space = SPACES[space_name]
    mutator = Mutator(space)
    seen: set[str] = set()
    for index in range(120):
        tree = random_candidate(space, 11, index).tree
        rng = random.Random(index)
        for _ in range(12):
            text = format_tree(tree)
            assert parse_text(text, "t.rule") == tree, text
            child = mutator.mutate(tree, rng)
            if child is None:
                break
            tree, how = child
            seen.add(how)
    assert {"constant", "grow", "insert", "if_remove", "shrink"} <= seen


def test_a_negative_constant_and_minus_zero_round_trip_as_the_parser_reads_them():
    from rulec import syntax as ast

    tree = parse_text("rule r\nnode x\nupdate { x = x * 2 }\n", "r.rule")
    for value in (-1.5, -0.0, 0.0, 3.0):
        update = tree.items[-1]
        assign = update.body.statements[0]
        value_expr = ast.Binary("mul", ast.Name("x"), ast.number(value))
        new = ast.File(tree.items[:-1] + (ast.Block("update", None, ast.Body(
            (ast.Assign(assign.target, "=", value_expr),))),))
        assert parse_text(format_tree(new), "r.rule") == new


LOGIC_SETTINGS = load_settings(LOGIC)
SETTINGS = S.Settings(LOGIC_SETTINGS.space,
                      S.Screen(tasks=("and", "or"), graph="layered:2,1,bias", seeds=1, epochs=20,
                               fresh_seeds=2))


@pytest.mark.parametrize("strategy", ["evolve", "random"])
def test_a_run_extended_in_steps_stores_what_one_run_stores(tmp_path, strategy):
    """Sessions that stop anywhere (not only at a generation's end), and a
    later session asked for fewer rules than are stored, change nothing."""
    config = S.Config(strategy=strategy, generation=64, population=100)
    db = str(tmp_path / "steps.sqlite")
    for rules in (100, 256, 256, 40, 301):
        progress = S.search(SETTINGS, config, db, rules=rules)
        assert progress.rules == max(rules, progress.rules)
    straight = str(tmp_path / "straight.sqlite")
    S.search(SETTINGS, config, straight, rules=301)
    assert rows(db) == rows(straight)


def test_an_evolution_killed_at_several_moments_resumes_to_the_uninterrupted_result(tmp_path):
    db = tmp_path / "killed.sqlite"
    command = [sys.executable, "-m", "rulec", "search", "--task", "and,or", "--graph",
               "layered:2,1,bias", "--space", str(LOGIC), "--strategy", "evolve", "--seed", "4",
               "--rules", "480", "--generation", "24", "--population", "30",
               "--tournament", "5", "--seeds", "1", "--epochs", "20", "--fresh-seeds", "2",
               "--jobs", "2", "--batch", "3", "-q", "--db", str(db)]
    kills = 0
    for threshold in (50, 130, 230, 330):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 90
        while _count(db) < threshold and time.monotonic() < deadline \
                and process.poll() is None:
            time.sleep(0.01)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
    assert kills >= 3, "the run finished before it could be killed"
    assert 0 < _count(db) < 480
    finish = subprocess.run(command, capture_output=True, text=True)
    assert finish.returncode == 0, finish.stderr
    straight = tmp_path / "straight.sqlite"
    command[command.index(str(db))] = str(straight)
    assert subprocess.run(command, capture_output=True).returncode == 0
    assert _count(db) == 480
    assert rows(str(db)) == rows(str(straight))


def test_start_rules_stay_in_the_population_and_have_offspring(tmp_path):
    """Regression: with population 100 and generation 64 the start rules were
    evicted before the first child was drawn (20,096 rules, no descendant)."""
    from .test_search import DELTA

    db = tmp_path / "start.sqlite"
    config = S.Config(strategy="evolve", seed=1, generation=64, population=100,
                      start=(DELTA,), start_mutants=5)
    S.search(SETTINGS, config, str(db), rules=640)
    connection = sqlite3.connect(db)
    first = connection.execute("SELECT idx, parent, mutation FROM rules WHERE idx <= 5 "
                               "ORDER BY idx").fetchall()
    parents = dict(connection.execute("SELECT idx, parent FROM rules").fetchall())
    connection.close()
    assert first[0] == (0, None, "start")
    assert all(parent == 0 and mutation for _, parent, mutation in first[1:])  # the mutants

    def descends_from_start(idx: int) -> bool:
        while idx is not None:
            if idx == 0:
                return True
            idx = parents[idx]
        return False

    late = [idx for idx in parents if idx >= 400 and descends_from_start(idx)]
    assert late, "no rule drawn after the population turned over descends from the start rule"


def test_duplicates_do_not_join_the_population():
    strategy = S.RegularizedEvolution(SETTINGS.space, 0, population=3, tournament=2)
    base = {"passed": 4, "score": 0.0, "size": 5, "text": "x"}
    strategy.tell(0, [{**base, "idx": 0}, {**base, "idx": 1, "duplicate": "behaviour"},
                      {**base, "idx": 2, "duplicate": "exact"}, {**base, "idx": 3}])
    assert [m["idx"] for m in strategy.population] == [0, 3]


def test_ctrl_c_stops_a_search_at_once_and_the_same_command_resumes(tmp_path):
    """A terminal's Ctrl-C reaches the whole process group: the coordinator
    stops its workers (they ignore SIGINT) and says how to resume, in one line."""
    import os

    db = tmp_path / "int.sqlite"
    command = [sys.executable, "-m", "rulec", "search", "--space", str(LOGIC), "--strategy",
               "evolve", "--rules", "4000", "--seeds", "1", "--epochs", "20", "--jobs", "2",
               "-q", "--db", str(db)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while _count(db) < 100 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, process.stderr.read()
    began = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130 and time.monotonic() - began < 10
    assert "Traceback" not in err and err.strip().count("\n") == 0, err
    assert "run the same command to resume" in err
    stored = _count(db)
    assert 0 < stored < 4000
    command[command.index("4000")] = str(stored + 64)
    finish = subprocess.run(command, capture_output=True, text=True)
    assert finish.returncode == 0, finish.stderr
    assert _count(db) == stored + 64
