"""The rulec command line, run as a user would (a subprocess)."""

from __future__ import annotations

import pytest

from .conftest import EXAMPLES, ROOT, TESTS

HEBBIAN = EXAMPLES / "hebbian.rule"


def test_check_ok_and_errors(run_cli):
    ok = run_cli("check", HEBBIAN)
    assert ok.returncode == 0 and "ok (rule hebbian" in ok.stdout
    invalid = sorted((TESTS / "invalid").glob("*.rule"))
    bad = run_cli("check", *invalid)
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr
    for path in invalid:  # every file's first error is printed with its position
        header = path.read_bytes().split(b"\n", 1)[0].decode()
        code, position = header.split()[2:4]
        assert f"{path}:{position}: error[{code}]" in bad.stderr, path.name


def test_check_missing_file_and_directory(run_cli, tmp_path):
    result = run_cli("check", tmp_path / "nope.rule", tmp_path)
    assert result.returncode == 1
    assert "no such file" in result.stderr and "is a directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_fmt_prints_checks_and_rewrites_in_place(run_cli, tmp_path):
    path = tmp_path / "r.rule"
    path.write_text("node x # the slot\nupdate{x=mean(nbr.x)}\n")
    printed = run_cli("fmt", path)
    assert printed.stdout == "node x  # the slot\n\nupdate {\n    x = mean(nbr.x)\n}\n"
    assert run_cli("fmt", "--check", path).returncode == 1
    assert run_cli("fmt", "-i", path).returncode == 0
    assert path.read_text() == printed.stdout
    assert run_cli("fmt", "--check", path).returncode == 0
    assert [p.name for p in tmp_path.iterdir()] == ["r.rule"]  # no temp files left


def test_fmt_refuses_a_file_with_errors_and_leaves_it_alone(run_cli, tmp_path):
    path = tmp_path / "r.rule"
    path.write_text("node x\nupdate { x = nbr.x }\n")
    result = run_cli("fmt", "-i", path)
    assert result.returncode == 1 and "E301" in result.stderr
    assert path.read_text() == "node x\nupdate { x = nbr.x }\n"


def test_run_prints_a_summary_and_saves_and_loads(run_cli, tmp_path):
    first = run_cli("run", HEBBIAN, "--graph", "layered:3,5,2", "--steps", "10", "--seed", "4",
                    "--param", "lr=0.05", "--save", "a.npz")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert "seed 4; time 10" in lines[0]
    assert lines[1].split() == ["slot", "kind", "mean", "std", "min", "max", "non-finite"]
    assert lines[3].split()[:2] == ["x", "node"] and lines[4].split()[:2] == ["w", "edge"]
    assert (tmp_path / "a.npz").exists()
    second = run_cli("run", HEBBIAN, "--graph", "layered:3,5,2", "--steps", "5",
                     "--load", "a.npz")
    assert second.returncode == 0 and "time 15" in second.stdout


def test_run_errors_are_one_clear_line(run_cli, tmp_path):
    cases = [
        (["--graph", "hex:4"], "unknown graph kind 'hex'"),
        (["--graph", "ring:4", "--param", "lrr=1"], "did you mean 'lr'"),
        (["--graph", "ring:4", "--param", "lr"], "expected NAME=VALUE"),
        (["--graph", "ring:4", "--block", "nope"], "no update block 'nope'"),
        (["--graph", "ring:4", "--load", "missing.npz"], "no such state file"),
        (["--graph", "ring:5", "--load", "r4.npz"], "saved on another graph"),
    ]
    assert run_cli("run", HEBBIAN, "--graph", "ring:4", "--save", "r4.npz").returncode == 0
    for args, message in cases:
        result = run_cli("run", HEBBIAN, *args)
        assert result.returncode == 1, args
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_run_check_finite_reports_where(run_cli, tmp_path):
    path = tmp_path / "blowup.rule"
    path.write_text("node x\ninit { x = 1 }\nupdate { x = x * 1e30 }\n")
    result = run_cli("run", path, "--graph", "ring:3", "--steps", "5", "--check-finite")
    assert result.returncode == 1
    assert "after step 2" in result.stderr and "node slot 'x' at node 0" in result.stderr


def test_usage_errors_exit_2(run_cli):
    assert run_cli().returncode == 2
    assert run_cli("run", HEBBIAN).returncode == 2  # --graph is required
    assert run_cli("--version").stdout.startswith("rulec ")


# ------------------------------------------ exit codes and messages (regressions)

DIFFUSION = EXAMPLES / "diffusion.rule"


def _damaged_states(tmp_path, run_cli):
    import numpy as np

    good = tmp_path / "good.npz"
    assert run_cli("run", DIFFUSION, "--graph", "ring:8", "--save", good).returncode == 0
    data = good.read_bytes()
    flipped = bytearray(data)
    for i in range(200, 260):
        flipped[i] ^= 0xFF
    files = {"truncated": data[: len(data) // 2], "empty": b"", "flipped": bytes(flipped)}
    for name, content in files.items():
        (tmp_path / f"{name}.npz").write_bytes(content)
    for name, meta in (("meta-float", np.array([1.5])), ("meta-2d", np.array([[1, 2], [3, 4]])),
                       ("meta-short", np.array([1], dtype=np.uint64))):
        arrays = dict(np.load(good))
        arrays["__meta__"] = meta
        np.savez(tmp_path / f"{name}.npz", **arrays)
    arrays = dict(np.load(good))
    arrays["node/x"] = np.array([object()] * 8, dtype=object)
    np.savez(tmp_path / "objects.npz", **arrays)
    return [*files, "meta-float", "meta-2d", "meta-short", "objects"]


def test_a_damaged_state_file_is_a_user_error_naming_the_file(run_cli, tmp_path):
    """Regression: --load of a truncated, empty or bit-flipped .npz, or one with
    a bad meta array, was an internal error (exit 3)."""
    for name in _damaged_states(tmp_path, run_cli):
        result = run_cli("run", DIFFUSION, "--graph", "ring:8", "--load", tmp_path / f"{name}.npz")
        assert result.returncode == 1, (name, result.stderr)
        assert f"{name}.npz" in result.stderr and "save the state again" in result.stderr, name
        assert "allow_pickle" not in result.stderr and "internal error" not in result.stderr


def test_values_out_of_range_are_user_errors(run_cli, tmp_path):
    """Regression: these were internal errors (exit 3) or a raw warning."""
    cases = [
        (("--steps", "99999999999999999999"), "steps must be an integer in"),
        (("--threads", "99999999999"), "threads must be an integer in"),
        (("--param", "rate=1e39"), "outside float32's range"),
        (("--steps", "-1"), "steps must be"),
        (("--save", tmp_path), "is a directory"),
        (("--save", tmp_path / "no" / "such" / "s.npz"), "directory does not exist"),
    ]
    for args, message in cases:
        result = run_cli("run", DIFFUSION, "--graph", "ring:8", *args)
        assert result.returncode == 1 and message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr and "Warning" not in result.stderr
        assert ".tmp" not in result.stderr  # never an internal temporary file's name


def test_integer_options_take_1e3_and_refuse_fractions_as_unparseable(run_cli):
    ok = run_cli("run", DIFFUSION, "--graph", "ring:8", "--steps", "1e3")
    assert ok.returncode == 0 and "1000 steps" in ok.stdout
    bad = run_cli("run", DIFFUSION, "--graph", "ring:8", "--steps", "2.5")
    assert bad.returncode == 2 and "not a whole number" in bad.stderr


def test_a_bad_cache_size_and_a_broken_compiler_are_user_errors(run_cli, tmp_path):
    import os

    path = tmp_path / "r.rule"
    path.write_text("node x\nupdate { x = sum(nbr.x) * 0.37 }\n")
    saved = {k: os.environ.get(k) for k in ("RULEC_CACHE_SIZE_MB", "CC")}
    try:
        os.environ["RULEC_CACHE_SIZE_MB"] = "inf"
        size = run_cli("run", path, "--graph", "ring:4")
        del os.environ["RULEC_CACHE_SIZE_MB"]
        os.environ["CC"] = "false"
        compiler = run_cli("run", path, "--graph", "ring:4")
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None)
            if value is not None:
                os.environ[key] = value
    assert size.returncode == 1 and "RULEC_CACHE_SIZE_MB must be a number" in size.stderr
    assert compiler.returncode == 1 and "check CC" in compiler.stderr
    assert "bug in rulec" not in compiler.stderr


def test_train_on_an_empty_waxman_topology_says_what_is_wrong(run_cli):
    result = run_cli("train", EXAMPLES / "backprop.rule", "--task", "xor", "--graph", "waxman:0")
    assert result.returncode == 1 and "at least one hidden node" in result.stderr
    assert "self-loop" not in result.stderr


def test_ctrl_c_stops_a_long_run_cleanly_with_exit_130(tmp_path):
    """Regression: SIGINT was ignored for the whole C step loop."""
    import signal
    import subprocess
    import sys
    import time

    import numpy as np

    import rulec
    from rulec import graphs

    saved = tmp_path / "s.npz"
    proc = subprocess.Popen([sys.executable, "-m", "rulec", "run", str(DIFFUSION), "--graph",
                             "ring:64", "--steps", "1e15", "--save", str(saved)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)  # start-up and the compile, then steps
    proc.send_signal(signal.SIGINT)
    start = time.monotonic()
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - start < 5, "the run did not stop promptly"
    assert proc.returncode == 130, err
    assert "interrupted after" in err and "Traceback" not in err
    state = rulec.State.load(saved, graphs.ring(64))
    assert state.time > 0 and np.isfinite(state.node["x"]).all()


# --------------------------------------------------- setting and showing values


def test_run_sets_slots_and_shows_values(run_cli, tmp_path):
    """The README's oja line: inputs set from the command line, weights shown."""
    result = run_cli("run", EXAMPLES / "oja.rule", "--graph", "layered:3,3,1", "--param",
                     "lr=0.005", "--steps", "2000", "--set", "source=0:1,1:1,2:1", "--set",
                     "plastic=6:1", "--set", "w=uniform", "--show", "w", "--seed", "2", "-q")
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    assert line.startswith("w: ")
    # each half-edge's value is labelled owner→neighbour, in CSR order
    labels, weights = zip(*(pair.split("=") for pair in line[3:].split()), strict=True)
    assert labels[:4] == ("0→3", "0→4", "0→5", "1→3") and labels[-1] == "6→5"
    weights = [float(w) for w in weights]
    assert len(weights) == 24 and any(w != 0 for w in weights)


def test_run_records_slots_every_k_steps_and_plots_them(run_cli, tmp_path):
    import numpy as np

    out, plot = tmp_path / "rec.npz", tmp_path / "rec.png"
    result = run_cli("run", EXAMPLES / "oja.rule", "--graph", "layered:3,3,1", "--param",
                     "lr=0.005", "--steps", "45", "--set", "source=0:1,1:1,2:1", "--set",
                     "plastic=6:1", "--set", "w=uniform", "--record", "w,x", "--every", "10",
                     "--record-out", str(out), "--record-plot", str(plot))
    assert result.returncode == 0, result.stderr
    assert "recorded w, x: 6 samples (time 0 to 45, every 10 steps)" in result.stdout
    data = np.load(out)
    assert data["times"].tolist() == [0, 10, 20, 30, 40, 45]
    assert data["w"].shape == (6, 24) and data["x"].shape == (6, 7)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the last sample is the state the run ends with
    final = run_cli("run", EXAMPLES / "oja.rule", "--graph", "layered:3,3,1", "--param",
                    "lr=0.005", "--steps", "45", "--set", "source=0:1,1:1,2:1", "--set",
                    "plastic=6:1", "--set", "w=uniform", "--show", "x", "-q")
    shown = [float(v) for v in final.stdout.split(":", 1)[1].split()]
    assert np.allclose(data["x"][-1], shown, rtol=1e-5)
    bad = run_cli("run", EXAMPLES / "oja.rule", "--graph", "layered:3,3,1", "--record", "y")
    assert bad.returncode == 1 and "--record y: no slot 'y'" in bad.stderr


def test_run_set_forms_and_json(run_cli, tmp_path):
    import json

    import numpy as np

    values = tmp_path / "x.npy"
    np.save(values, np.arange(5, dtype=np.float32))
    text = tmp_path / "x.txt"
    text.write_text("1\n2\n3\n4\n5\n")
    for spec, expected in ((f"@{values}", [0, 1, 2, 3, 4]), (f"@{text}", [1, 2, 3, 4, 5]),
                           ("2.5", [2.5] * 5), ("1:7,4:-1", None)):
        result = run_cli("run", DIFFUSION, "--graph", "ring:5", "--steps", "0", "--set",
                         f"x={spec}", "--show", "x", "--json")
        assert result.returncode == 0, (spec, result.stderr)
        report = json.loads(result.stdout)
        if expected is None:  # pairs change only their nodes (init drew the others)
            assert report["values"]["x"][1] == 7 and report["values"]["x"][4] == -1
        else:
            assert report["values"]["x"] == expected, spec
        assert report["slots"]["x"]["kind"] == "node" and report["time"] == 0
    drawn = json.loads(run_cli("run", DIFFUSION, "--graph", "ring:5", "--steps", "0", "--set",
                               "x=uniform", "--show", "x", "--json").stdout)["values"]["x"]
    assert len(set(drawn)) == 5 and all(0 <= v < 1 for v in drawn)


def test_run_set_and_show_errors_name_the_problem(run_cli, tmp_path):
    cases = [(("--set", "y=1"), "no slot 'y'"), (("--set", "x=0:abc"), "is not a number"),
             (("--set", "x=9:1"), "outside 0..4"), (("--set", "x"), "expected SLOT=VALUE"),
             (("--set", f"x=@{tmp_path / 'none.npy'}"), "no such file"),
             (("--show", "nope"), "no slot 'nope'")]
    for args, message in cases:
        result = run_cli("run", DIFFUSION, "--graph", "ring:5", *args)
        assert result.returncode == 1 and message in result.stderr, (args, result.stderr)


def test_train_lists_every_missing_slot_and_maps_roles(run_cli, tmp_path):
    renamed = tmp_path / "bp.rule"
    text = (EXAMPLES / "backprop.rule").read_text()
    renamed.write_text(text.replace("target", "goal").replace("ready", "rdy"))
    missing = run_cli("train", renamed, "--task", "and", "--graph", "layered:2,3,1")
    assert missing.returncode == 1
    for slot in ("'target' (target)", "'ready' (ready)", "'dready' (done)"):
        assert slot in missing.stderr
    mapped = run_cli("train", renamed, "--task", "and", "--graph", "layered:2,3,1",
                     "--epochs", "300", "--map", "target=goal", "--map", "ready=rdy",
                     "--map", "done=drdy", "--backend", "vm")
    assert mapped.returncode == 0, mapped.stderr
    assert "accuracy: 100.0%" in mapped.stdout
    bad = run_cli("train", renamed, "--task", "and", "--graph", "layered:2,3,1", "--map",
                  "output=")
    assert bad.returncode == 1 and "cannot be dropped" in bad.stderr


def test_the_cli_starts_without_numpy_the_compiler_or_templates():
    """`rulec --version` and `--help` answer at once (measured: 0.52 s -> 0.08 s):
    importing the CLI loads no numpy, cffi, jinja2 or lark; commands import
    what they need."""
    import subprocess
    import sys

    script = ("import sys, rulec, rulec.cli\n"
              "print(sorted(m for m in ('numpy', 'cffi', 'jinja2', 'lark') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_a_graph_too_large_for_memory_is_a_user_error(run_cli):
    """Regression: --graph ring:2000000000 was reported as a bug in rulec."""
    import resource

    result = run_cli("run", DIFFUSION, "--graph", "ring:400000000",
                     preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (2 << 30,) * 2))
    assert result.returncode == 1, result.stderr
    assert "not enough memory" in result.stderr and "bug in rulec" not in result.stderr


def test_the_cli_reference_lists_every_command_and_flag():
    """docs/cli.md is generated from the parser: regenerate it after changing a
    flag (RULEC_UPDATE_GOLDEN=1, or the command at the top of the file)."""
    import os

    from rulec.cli import build_parser, reference

    path = ROOT / "docs" / "cli.md"
    text = reference()
    if os.environ.get("RULEC_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.read_text() == text, "docs/cli.md is stale: RULEC_UPDATE_GOLDEN=1 to regenerate"
    parser = build_parser()
    for name, command in parser._subparsers._group_actions[0].choices.items():
        flags = [f for action in command._actions for f in action.option_strings]
        assert "-q" in flags and "-v" in flags, name
        for flag in set(flags) - {"-h", "--help"}:
            assert f"`{flag}`" in text, (name, flag)


def test_verbose_says_what_rulec_does_and_quiet_keeps_to_results(run_cli):
    rule = str(EXAMPLES / "diffusion.rule")
    loud = run_cli("run", rule, "--graph", "ring:5", "--steps", "2", "-v")
    assert loud.returncode == 0, loud.stderr
    assert "rule diffusion: c backend ready in" in loud.stderr
    assert "cache hit" in loud.stderr or "built " in loud.stderr
    quiet = run_cli("run", rule, "--graph", "ring:5", "--steps", "2", "-q")
    assert quiet.returncode == 0 and quiet.stderr == ""
    trained = run_cli("train", str(EXAMPLES / "delta.rule"), "--task", "and",
                      "--graph", "layered:2,1,bias", "--epochs", "3", "-q")
    assert "epoch" not in trained.stderr and "accuracy" in trained.stdout


def test_only_rulec_errors_are_user_errors_and_a_plain_one_is_reported_as_a_bug(
        monkeypatch, capsys):
    """The CLI catches RulecError (exit 1, one line); a plain ValueError or
    KeyError from inside rulec is a bug (exit 3, "internal error"), not a
    user error. The API's errors that were KeyError/ValueError still are."""
    import rulec
    from rulec import cli
    from rulec.errors import RulecKeyError, RulecValueError

    rule = rulec.compile("node x\nparam lr = 0.1\nupdate { x += lr }", backend="numpy")
    state = rule.state(rulec.Graph.from_edges(2, [(0, 1)]))
    with pytest.raises(KeyError) as caught:  # old callers keep catching KeyError
        rule.step(state, params={"lx": 1.0})
    assert isinstance(caught.value, RulecKeyError) and isinstance(caught.value, rulec.RulecError)
    assert str(caught.value) == "rule 'rule' has no param 'lx' (params: lr)"  # not quoted
    with pytest.raises(ValueError) as caught:
        rule.step(state, steps=-1)
    assert isinstance(caught.value, RulecValueError)

    for error, code in ((ValueError("internal"), 3), (KeyError("internal"), 3),
                        (RulecValueError("bad input"), 1)):
        def broken(args, error=error):
            raise error

        monkeypatch.setattr(cli, "cmd_check", broken)
        assert cli.main(["check", str(DIFFUSION)]) == code
        err = capsys.readouterr().err
        assert ("internal error" in err) == (code == 3), err


@pytest.mark.parametrize("command", [
    ["fuzz", "--count", "100000", "--seed", "3", "--jobs", "2"],
    ["train", "backprop.rule", "--task", "xor", "--graph", "layered:2,4,1", "--epochs",
     "1000000", "--all-epochs", "--seeds", "50", "--backend", "vm"],
], ids=["fuzz-2-jobs", "train"])
def test_ctrl_c_stops_fuzz_and_train_at_once_with_exit_130(command):
    """A terminal's Ctrl-C reaches the process group (workers included): the
    command stops within a second, says so in one line, exit 130."""
    import os
    import signal
    import subprocess
    import sys
    import time

    command = [str(EXAMPLES / word) if word.endswith(".rule") else word for word in command]
    process = subprocess.Popen([sys.executable, "-m", "rulec", *command],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    time.sleep(5)  # started, compiling or stepping
    assert process.poll() is None, process.communicate()
    began = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130 and time.monotonic() - began < 2
    assert err.rstrip().endswith("rulec: interrupted") and "Traceback" not in err


def test_train_scores_with_the_search_margin(run_cli):
    """--margin scores a seed as a search with [screen] margin does: answers
    that do not clear the threshold by the margin count as wrong."""
    import json

    base = ["train", EXAMPLES / "delta.rule", "--task", "or", "--graph", "layered:2,1",
            "--epochs", "300", "--hold", "3", "--json"]
    plain = json.loads(run_cli(*base).stdout)
    strict = json.loads(run_cli(*base, "--margin", "0.45").stdout)
    assert plain["seeds"][0]["scored"] == 1.0 and plain["margin"] == 0.0
    assert strict["seeds"][0]["accuracy"] == 1.0 and strict["seeds"][0]["scored"] < 1.0
    bad = run_cli(*base, "--margin", "0.7")
    assert bad.returncode == 1 and "--margin is how far from the threshold" in bad.stderr


def test_train_settles_a_recurrent_rule_and_refuses_settle_where_no_phase_has_it(run_cli,
                                                                                tmp_path):
    """--settle: the fixed protocol's forward phase steps until the outputs
    are at rest (fewer steps than --budget for a rule that comes to rest);
    a protocol without such a phase says so, naming --settle."""
    import json

    rule = tmp_path / "relax.rule"
    rule.write_text("node inp, target, train, a\nedge w\ninit { w = 0.5 * gauss() }\n"
                    "update {\n    a = select(count(incoming), tanh(0.5 * a + "
                    "sum((w * nbr.a)[incoming])), inp)\n"
                    "    w[incoming] -= train * (a - target) * nbr.a\n}\n")
    base = ["train", rule, "--task", "or", "--graph", "layered:2,1,bias", "--protocol", "fixed",
            "--learn", "1", "--epochs", "2", "--json"]
    settled = json.loads(run_cli(*base, "--settle", "1e-3", "--budget", "300").stdout)
    seed = settled["seeds"][0]
    assert seed["failure"] is None and 8 < seed["steps"] < 2 * 8 * 300
    bad = run_cli("train", rule, "--task", "or", "--graph", "layered:2,1,bias", "--settle",
                  "0.1")
    assert bad.returncode == 1 and "--settle" in bad.stderr and "no settle phase" in bad.stderr
