"""The rulec command line, run as a user would (a subprocess)."""

from __future__ import annotations

from .conftest import EXAMPLES, TESTS

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
