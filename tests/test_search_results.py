"""A search's results as data: `rulec search runs`, `report --format
table|csv|json`, rulec.search.results()."""

from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rulec import search as S
from rulec.cli import main

from .test_search import DELTA, FAST


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("results") / "r.sqlite")
    S.search(FAST, S.Config(seed=2, generation=32, start=(DELTA, DELTA.replace("lr", "eta"))),
             path, rules=64)
    return path


def test_csv_and_json_hold_every_rule_with_the_hurdle_it_stopped_at(db, capsys):
    assert main(["search", "report", db, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [int(r["idx"]) for r in rows] == list(range(64))
    assert rows[0]["failed_hurdle"] == "" and rows[0]["mutation"] == "start"
    # the renamed delta rule is an exact duplicate of rule 0, with its results
    assert rows[1]["duplicate"] == "exact" and rows[1]["duplicate_of"] == "0"
    assert rows[1]["score"] == rows[0]["score"] == "1.0"
    failed = [r for r in rows if r["failure"]]
    assert failed and all(r["failed_hurdle"] in S.hurdle_names(FAST) for r in failed)
    assert main(["search", "report", db, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == S.result_rows(db)


def test_top_k_shows_k_best_originals_and_the_table_is_aligned(db, capsys):
    best = S.result_rows(db, top=3)
    assert len(best) == min(3, sum(1 for r in S.result_rows(db)
                                   if r["duplicate"] is None and r["passed"] >= 4))
    assert best[0]["idx"] == 0 and all(r["duplicate"] is None for r in best)
    assert main(["search", "report", db, "--format", "table", "--top", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["idx", "passed", "failed_hurdle"]
    assert len(lines) == 1 + len(best) and lines[1].split()[0] == "0"


def test_results_is_a_table_or_its_rows(db):
    table = S.results(db)
    try:
        import pandas  # noqa: F401
    except ImportError:
        assert table == S.result_rows(db)
    else:
        assert list(table.index) == list(range(64)) and "failed_hurdle" in table.columns


def test_runs_lists_each_run_with_what_it_searched(db, capsys, tmp_path):
    assert main(["search", "runs", db, "--json"]) == 0
    (run,) = json.loads(capsys.readouterr().out)
    assert run["id"] == 1 and run["rules"] == 64 and run["strategy"] == "random"
    assert run["tasks"] == ["or"] and run["graphs"] == ["layered:2,1,bias"]
    assert main(["search", "runs", db]) == 0
    assert capsys.readouterr().out.startswith("run 1: random, seed 2, tasks or on ")
    assert main(["search", "runs", str(tmp_path / "none.sqlite")]) != 0


class _Delta:
    """A custom strategy: the delta rule, then random rules."""

    identity = "delta-then-random"

    def ask(self, generation, indices):
        from rulec.parser import parse_text

        return [S.Candidate.of(i, parse_text(DELTA, "d.rule")) if i == 0 else S.drawn(9, i)
                for i in indices]

    def tell(self, generation, records):
        self.told = [r["idx"] for r in records]


def test_a_custom_strategy_is_its_own_run_and_never_resumed_by_another(tmp_path, capsys):
    db = str(tmp_path / "c.sqlite")
    strategy = _Delta()
    progress = S.search(FAST, S.Config(seed=9, generation=16), db, rules=16,
                        strategy=strategy)
    assert progress.best["idx"] == 0 and strategy.told == list(range(16))
    # the same settings and seed through the CLI's random strategy: a new run
    S.search(FAST, S.Config(seed=9, generation=16), db, rules=16)
    listed = S.runs(db)
    assert [r["strategy"] for r in listed] == ["delta-then-random", "random"]
    with pytest.raises(S.SpaceError, match="ask.*tell"):
        S.Search(FAST, S.Config(), db, strategy=object())


def test_the_store_stamps_its_layout_migrates_old_ones_and_refuses_newer(tmp_path, db):
    import shutil
    import sqlite3

    from rulec.search.store import SCHEMA_VERSION, Store

    assert Store(db, readonly=True).version() == SCHEMA_VERSION
    # a database of the first layout (no schema table): read as it is, then
    # migrated when opened for writing, its runs and rules kept
    old = str(tmp_path / "old.sqlite")
    shutil.copy(db, old)
    connection = sqlite3.connect(old)
    connection.execute("DROP TABLE schema")
    connection.execute("DROP TABLE rungs")  # layout 3's
    connection.commit()
    connection.close()
    assert Store(old, readonly=True).version() == 1
    assert len(S.result_rows(old)) == 64
    Store(old).close()
    assert Store(old, readonly=True).version() == SCHEMA_VERSION
    assert S.result_rows(old) == S.result_rows(db)
    connection = sqlite3.connect(old)
    assert connection.execute("SELECT count(*) FROM rungs").fetchone() == (0,)
    connection.close()
    # a newer layout is refused, naming both versions
    connection = sqlite3.connect(old)
    connection.execute("UPDATE schema SET version = 99")
    connection.commit()
    connection.close()
    for readonly in (True, False):
        with pytest.raises(S.SpaceError, match=rf"newer rulec \(database layout 99; this "
                                               rf"rulec reads up to {SCHEMA_VERSION}\)"):
            Store(old, readonly=readonly)


def test_runs_are_named_and_picked_by_name(tmp_path, capsys):
    path = str(tmp_path / "named.sqlite")
    S.search(FAST, S.Config(seed=5), path, rules=16, name="baseline")
    S.search(FAST, S.Config(seed=6), path, rules=16, name="wider")
    S.search(FAST, S.Config(seed=6), path, rules=24, name="renamed")  # resumes run 2
    assert [(r["id"], r["name"], r["rules"]) for r in S.runs(path)] == \
        [(1, "baseline", 16), (2, "wider", 24)]
    assert main(["search", "runs", path]) == 0
    assert "run 1 (baseline): random, seed 5" in capsys.readouterr().out
    assert S.result_rows(path, "baseline") == S.result_rows(path, 1)
    assert main(["search", "report", path, "--run", "wider", "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 24
    assert main(["search", "report", path, "--run", "nope"]) == 1
    assert "no run 'nope' in the database; runs: 1 (baseline), 2 (wider)" in \
        capsys.readouterr().err
    with pytest.raises(S.SpaceError, match="not a number"):
        S.search(FAST, S.Config(seed=7), path, rules=1, name="12")


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=12),
                       st.floats(allow_nan=True, allow_infinity=True) | st.integers(), max_size=8))
def test_a_rules_timings_are_stored_as_json_dumps_writes_them(timings):
    """The store writes each rule's timings with its own encoder (one per
    rule drawn, on the coordinator): the same text as json.dumps for any
    dict, NaNs, infinities, integers, unicode and odd keys included."""
    from rulec.search.store import _timings_json

    assert _timings_json(timings) == json.dumps(timings)
    assert _timings_json({"prepare": 0.000125, "static": 3.1e-05}) == \
        '{"prepare": 0.000125, "static": 3.1e-05}'
