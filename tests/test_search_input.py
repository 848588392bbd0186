"""Bad input to `rulec search` is refused before anything is written, with
the file, line and column of the value; database failures are one-line
errors that say nothing is lost; readers open databases read-only; values
copied into exported headers are quoted."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import stat

import pytest

from rulec import search as S
from rulec.cli import main
from rulec.search.store import Store, StoreError

from .conftest import EXAMPLES
from .test_search import DELTA, FAST

# (space file text, words of the error, line:col of the error)
BAD_SPACES = [
    ("[limits]\nstatements = 1000000000\n", "[limits] statements must be a whole number in",
     "2:1"),
    ("[slots]\nnode = [0, 5000000]\n", "at most 32 slots", "2:1"),
    ("[protocol]\nforward = 1000000000000\n", "[protocol] forward must be a whole number in",
     "2:1"),
    ('[screen]\ngraph = "layered:2,100000000,1"\n', "layer 2's size must be in", "2:1"),
    ('[screen]\ngraph = "layered:2,5000,5000,1"\n', "a learning topology has at most", "2:1"),
    ('[screen]\ngraph = "layered:2,0,1"\n', "layer 2's size must be in", "2:1"),
    ('[screen]\ngraph = "layered:2,x,1"\n', "layer 2's size must be a whole number", "2:1"),
    ('[screen]\ngraph = "layered:2,-4,1"\n', "layer 2's size must be a whole number", "2:1"),
    ('[screen]\ngraph = "waxman:6,0,x\\nrule evil"\n', "expected waxman:HIDDEN[,SEED]", "2:1"),
    ('[screen]\ngraph = "waxman:6,x"\n', "SEED must be a whole number", "2:1"),
    ("[params]\nlr = [0, nan]\n", "two finite numbers", "2:1"),
    ("[params]\nlr = [-inf, 1]\n", "two finite numbers", "2:1"),
    ("[odds]\nfilter = nan\n", "[odds] filter must be in", "2:1"),
    ("[odds]\nvector_ratio = inf\n", "[odds] vector_ratio must be in", "2:1"),
    ('[params]\n"lr = 1.0; }\\nupdate { a = 1 }" = [0, 1]\n', "must be a name", "1:1"),
    ("[params]\nif = [0, 1]\n", "keyword or built-in", "2:1"),
    ("[params]\nw = [0, 1]\n", "the generator gives to its own slots", "2:1"),
    ('[protocol.slots]\noutput = "inp"\n', "both name slot 'inp'", "2:1"),
    ('[protocol.slots]\noutput = "not"\n', "keyword or built-in", "2:1"),
    ('[protocol.slots]\noutput = "a b"\n', "must be a name", "2:1"),
    ('[protocol.slots]\nwhatever = "x"\n', "unknown role for the fixed protocol", "2:1"),
    ('[protocol]\nslots = { wat = "x" }\n', "unknown role", "2:1"),
    ('[protocol]\nname = "handshake"\nlearn = 3\n', "learn is not read by the handshake", "3:1"),
    ("[screen]\nepochs = 10\nhold = 20\n", "hold (20) must be at most epochs (10)", "3:1"),
    ("[screen]\nseeds = 9223372036854775807\n", "[screen] seeds must be a whole number in",
     "2:1"),
    ("[screen]\nprobe_seed = 9223372036854775807\n", "[screen] probe_seed must be", "2:1"),
    ("[screen]\ntasks = []\n", "at least one", "2:1"),
]


@pytest.mark.parametrize("text,words,place", BAD_SPACES, ids=[b[1][:40] for b in BAD_SPACES])
def test_bad_space_values_are_refused_at_their_place_before_the_database(tmp_path, capsys,
                                                                          text, words, place):
    space = tmp_path / "space.toml"
    space.write_text(text)
    db = tmp_path / "runs.sqlite"
    assert main(["search", "--space", str(space), "--db", str(db), "--rules", "1",
                 "-q"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert words in err and f"{space}:{place}:" in err, err
    assert not db.exists(), "the database was written before the space was checked"


@pytest.mark.parametrize("argv,words", [
    (["--minutes", "nan"], "--minutes must be a number of minutes above 0"),
    (["--minutes", "inf"], "--minutes must be a number of minutes above 0"),
    (["--minutes", "-1"], "--minutes must be a number of minutes above 0"),
    (["--batch", "0"], "--batch must be at least 1"),
    (["--batch", "-4"], "--batch must be at least 1"),
    (["--task", ""], "names no task"),
    (["--task", ","], "names no task"),
    (["--graph", "layered:2,0,1"], "layer 2's size must be in"),
    (["--graph", "layered:2,x,1"], "layer 2's size must be a whole number"),
    (["--graph", "layered:2,-4,1"], "layer 2's size must be a whole number"),
    (["--seeds", "9223372036854775807"], "[screen] seeds must be a whole number in"),
    (["--scheduler", "tcp://127.0.0.1:9"], "scheduler"),
])
def test_bad_search_options_are_one_line_errors_and_leave_no_run(tmp_path, capsys, argv, words):
    db = tmp_path / "runs.sqlite"
    code = main(["search", "--db", str(db), "--rules", "1", "-q", *argv])
    err = capsys.readouterr().err
    assert code == 1 and words in err and err.count("\n") == 1, err
    if db.exists():  # the scheduler is reached only after the settings are checked
        connection = sqlite3.connect(db)
        assert connection.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
        connection.close()


@pytest.mark.parametrize("variable", ["CC", "RULEC_CFLAGS"])
def test_an_unbalanced_quote_in_a_compiler_variable_names_the_variable(variable, monkeypatch):
    from rulec.backends.toolchain import BuildError, cflags, compiler

    monkeypatch.setenv(variable, "gcc -DX='1" if variable == "CC" else "-O2 '-DX=1")
    with pytest.raises(BuildError, match=rf"^\${variable} cannot be split into words"):
        compiler() if variable == "CC" else cflags()


def test_a_second_coordinator_on_a_running_run_is_refused_and_another_run_is_allowed(tmp_path):
    db = str(tmp_path / "two.sqlite")
    config = S.Config(seed=1, generation=8)
    first = S.Search(FAST, config, db)
    first.open()
    try:
        second = S.Search(FAST, config, db)
        with pytest.raises(StoreError, match="being searched by another coordinator"):
            second.open()
        other = S.Search(FAST, S.Config(seed=2, generation=8), db)  # another run: fine
        assert other.run(rules=4).rules == 4
    finally:
        first.store.close()
    # the first one gone, the run is free again
    assert S.Search(FAST, config, db).run(rules=4).rules == 4


def test_a_lease_left_by_a_killed_coordinator_is_taken_over(tmp_path):
    db = str(tmp_path / "dead.sqlite")
    config = S.Config(seed=1, generation=8)
    search = S.Search(FAST, config, db)
    search.open()
    run_id = search.run_id
    search.store.leased = None  # as after kill -9: the lease row stays behind
    search.store.engine.dispose()
    connection = sqlite3.connect(db)
    connection.execute("UPDATE leases SET holder = ? WHERE run = ?",
                       (f"{socket.gethostname()}:999999999:dead", run_id))
    connection.commit()
    connection.close()
    assert S.Search(FAST, config, db).run(rules=4).rules == 4


def test_store_failures_are_one_line_errors_that_say_nothing_is_lost(tmp_path, capsys):
    db = tmp_path / "broken.sqlite"
    argv = ["search", "--task", "or", "--graph", "layered:2,1,bias", "--seeds", "1",
            "--epochs", "5", "--fresh-seeds", "0", "--jobs", "1", "-q", "--db", str(db)]
    assert main([*argv, "--rules", "8"]) == 0
    capsys.readouterr()
    # every write fails from now on, as on a full disk
    connection = sqlite3.connect(db)
    connection.execute("CREATE TRIGGER full BEFORE INSERT ON rules BEGIN "
                       "SELECT RAISE(ABORT, 'database or disk is full'); END")
    connection.commit()
    connection.close()
    assert main([*argv, "--rules", "40"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error" not in err, err
    assert f"the database {db} failed to write: database or disk is full" in err, err
    assert "run the same command to resume" in err
    connection = sqlite3.connect(db)
    assert connection.execute("SELECT count(*) FROM rules").fetchone()[0] == 8  # kept
    connection.close()


def test_report_and_export_read_a_database_on_read_only_storage(tmp_path, capsys):
    db = tmp_path / "ro.sqlite"
    start = tmp_path / "delta.rule"
    start.write_text(DELTA)
    assert main(["search", "--task", "or", "--graph", "layered:2,1,bias", "--seeds", "1",
                 "--epochs", "60", "--fresh-seeds", "0", "--rules", "4", "--jobs", "1",
                 "--start", str(start), "-q", "--db", str(db)]) == 0
    capsys.readouterr()
    os.chmod(db, stat.S_IRUSR)
    os.chmod(tmp_path, stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.access(db, os.W_OK):
            pytest.skip("running as a user who can write read-only files (root)")
        assert main(["search", "report", str(db)]) == 0
        assert main(["search", "report", f"sqlite:///{db}?mode=ro"]) == 0
    finally:
        os.chmod(tmp_path, stat.S_IRWXU)
        os.chmod(db, stat.S_IRUSR | stat.S_IWUSR)


def test_readers_open_read_only_and_write_nothing(tmp_path):
    db = tmp_path / "r.sqlite"
    S.search(FAST, S.Config(seed=1, generation=4, start=(DELTA,)), str(db), rules=4)
    mtime = db.stat().st_mtime_ns
    for url in (str(db), f"sqlite:///{db}?mode=ro"):
        store = Store(url, readonly=True)
        assert len(store.list_runs()) == 1
        with pytest.raises(StoreError, match="failed to write"):
            store.write(1, [{"idx": 99, "generation": 0, "text": "", "canon_hash": "",
                             "passed": 0, "size": 1}])
        store.close()
    assert db.stat().st_mtime_ns == mtime


def test_export_headers_quote_what_they_copy_and_name_the_file_they_write(tmp_path, capsys,
                                                                         monkeypatch):
    """A graph spec read strictly cannot carry lines into the header, and the
    reproduce command names the exported file and runs as printed."""
    import shlex

    space = tmp_path / "space.toml"
    space.write_text('[protocol]\nforward = 1\nlearn = 1\n[screen]\ngraph = "layered:2,1,bias"\n'
                     'seeds = 1\nepochs = 60\nfresh_seeds = 0\n')
    db = tmp_path / "e.sqlite"
    start = tmp_path / "delta.rule"
    start.write_text(DELTA)
    assert main(["search", "--task", "or", "--space", str(space), "--rules", "2", "--jobs",
                 "1", "--start", str(start), "-q", "--db", str(db)]) == 0
    found = tmp_path / "found"
    assert main(["search", "export", str(db), "-o", str(found), "--top", "1"]) == 0
    capsys.readouterr()
    (path,) = found.glob("*.rule")
    assert (found / "space.toml").exists()
    header = [line for line in path.read_text().splitlines() if line.startswith("#")]
    command = next(line for line in header if "rulec train" in line).split("rulec ", 1)[1]
    argv = shlex.split(command)
    assert argv[1] == path.name
    monkeypatch.chdir(found)
    assert main(argv) == 0
    assert "accuracy: 100.0%" in capsys.readouterr().out
    # and the search's own scoring, with the run's settings written beside it
    score = next(line for line in header if "rulec search score" in line).split("rulec ", 1)[1]
    assert main(shlex.split(score)) == 0
    assert f"{path.name}: passed every hurdle" in capsys.readouterr().out


@pytest.mark.parametrize("settings", [
    S.Settings(), S.load_settings(EXAMPLES / "search" / "logic.toml"),
    S.Settings(S.Space(protocol="handshake", slots=(("done", None), ("output", "y")),
                       params=(("eta", 0.5, 2.0),), ops=("add", "mul", "sum")),
               S.Screen(tasks=("parity3",), graph="layered:3,6,1", retain=0, hold=2))])
def test_settings_written_as_a_space_file_read_back_the_same(tmp_path, settings):
    from rulec.search.space import settings_to_toml

    path = tmp_path / "space.toml"
    path.write_text(settings_to_toml(settings))
    assert S.load_settings(path) == settings


def test_export_header_words_are_quoted_and_on_one_line():
    from rulec.search.report import _word

    assert _word("layered:2,4,1") == "layered:2,4,1"
    assert _word("a b") == "'a b'"
    assert _word("x\nrule evil\u2028$(touch y)") == "'x?rule evil?$(touch y)'"


def test_a_report_of_a_tiny_run_says_it_cannot_time_it_instead_of_nan(tmp_path):
    from rulec.search.report import report

    db = tmp_path / "one.sqlite"
    S.search(FAST, S.Config(seed=1, generation=1, start=(DELTA,)), str(db), rules=1)
    text = report(str(db)).text()
    assert "nan" not in text and "too few rules to time wall clock" in text


def test_learn_refuses_a_rule_that_did_not_pass_screening():
    evaluator = S.Evaluator(FAST)
    record = evaluator.screen("rule r\nnode inp, target, train, a\nupdate { a = target }\n")
    assert record["failure"]
    with pytest.raises(ValueError, match="passed screening"):
        evaluator.learn("rule r\nnode inp, target, train, a\nupdate { a = target }\n", record)
    assert record["failure"].startswith("the input slot")  # the reason is kept


def test_best_is_one_rule_everywhere_and_top_k_shows_k(tmp_path, capsys):
    """The summary's best, the report's first and export's first are the same
    rule (never a duplicate), and --top K lists K rules when there are K."""
    db = tmp_path / "best.sqlite"
    config = S.Config(strategy="evolve", seed=2, generation=16, population=16, tournament=4,
                      start=(DELTA,), start_mutants=8)
    progress = S.search(FAST, config, str(db), rules=64)
    from rulec.search.report import export, report

    rep = report(str(db), top=5)
    assert len(rep.hall) == 5 and progress.best.get("duplicate") is None
    assert rep.hall[0]["idx"] == progress.best["idx"]
    (first, *_) = export(str(db), tmp_path / "found", top=5)
    assert first.name == f"01_found_{progress.best['idx']}.rule"
    assert main(["search", "report", str(db), "--top", "3"]) == 0
    out = capsys.readouterr().out
    import re

    assert len(re.findall(r"^[* ] rule \d+: score", out, re.MULTILINE)) == 3


def test_a_check_of_a_new_screen_key_is_placed_at_that_key(tmp_path):
    """A check of several keys (or of one the key-by-key pass cannot judge)
    names the place of the key its message names first."""
    from rulec.search.space import load_settings

    space = tmp_path / "s.toml"
    space.write_text('[screen]\ntasks = ["xor"]\ngraph = "layered:2,4,1,bias"\n'
                     "seeds = 2\nrobust_seeds = 6\nmargin = 0.7\n")
    with pytest.raises(S.SpaceError, match=rf"^{re.escape(str(space))}:6:1: \[screen\] margin"):
        load_settings(space)
    space.write_text('[screen]\ngraph = "layered:2,4,1,bias"\nseeds = 500\nrobust_seeds = 600\n')
    with pytest.raises(S.SpaceError, match=rf"^{re.escape(str(space))}:3:1: \[screen\] seeds"):
        load_settings(space)
