"""Very large rules: compile time stays bounded (-O1 past a size, the VM past
a larger one, with a message), killed builds leave nothing behind, and the
checker keeps one table of names instead of rebuilding it per look-up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import rulec
from rulec import graphs, ir
from rulec.backends import toolchain
from rulec.backends.c import module as c_module
from rulec.checker import Checker
from rulec.frontend import load_program
from rulec.parser import parse_text

from .conftest import stepped


def many_slots(n: int) -> str:
    names = ", ".join(f"x{i}" for i in range(n))
    body = "".join(f"    x{i} = tanh(sum(w * nbr.x{(i + 1) % n})) + x{i}\n" for i in range(n))
    return f"rule big\nnode {names}\nedge w\ninit {{ w = uniform() }}\nupdate {{\n{body}}}\n"


def test_size_counts_statements_and_expression_nodes():
    program = load_program("rule s\nnode x\nupdate { x = x + 1 }\n", "s.rule")
    assert ir.size(program) == 4  # the write, add, x, 1
    assert ir.size(load_program(many_slots(10), "b.rule")) == 10 * 8 + 2


def test_large_rules_are_built_at_o1():
    small, large = (load_program(many_slots(n), "b.rule") for n in (10, 300))
    assert ir.size(large) > c_module.C_O1_SIZE >= ir.size(small)
    assert c_module.size_flags([small]) == []
    assert c_module.size_flags([small, large]) == ["-O1"]


def test_a_rule_past_the_c_bound_runs_on_the_vm_with_a_warning(monkeypatch):
    monkeypatch.setenv("RULEC_C_MAX_SIZE", "100")
    text = many_slots(20)  # size 162
    with pytest.warns(RuntimeWarning, match=r"size 162 .* past what the C backend compiles"):
        rule = rulec.compile(text)
    assert rule.backend == "vm"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small = rulec.compile(many_slots(5))
    assert small.backend == "c"
    with pytest.warns(RuntimeWarning, match="past what the C backend compiles"):
        both = rulec.compile_many([text, many_slots(5)])
    assert [r.backend for r in both] == ["vm", "c"]
    reference = rulec.compile(text, backend="numpy")
    graph = graphs.ring(9)
    states = stepped((rule, reference), graph, seed=4, steps=3)
    for name in ("x0", "x19"):
        np.testing.assert_allclose(states[0].node[name], states[1].node[name], rtol=1e-5)


def test_a_bad_size_bound_names_the_variable(monkeypatch):
    monkeypatch.setenv("RULEC_C_MAX_SIZE", "lots")
    with pytest.raises(rulec.BuildError, match="RULEC_C_MAX_SIZE must be a whole number"):
        c_module.max_c_size()


def test_build_directories_of_gone_builders_are_swept(tmp_path):
    host = socket.gethostname()
    gone = tmp_path / f".build-999999999@{host}-abc123"
    mine = tmp_path / f".build-{os.getpid()}@{host}-def456"
    elsewhere = tmp_path / ".build-999999999@another-host-ghi789"
    for path in (gone, mine, elsewhere):
        path.mkdir()
        (path / "kernel.c").write_text("int x;\n")
    toolchain._stale_build_dirs(tmp_path)
    assert not gone.exists() and mine.exists() and elsewhere.exists()


def test_sigterm_during_a_build_removes_its_directory_and_stops_the_compiler(tmp_path):
    rule_file = tmp_path / "big.rule"
    rule_file.write_text(many_slots(150))  # a few seconds of gcc
    cache = tmp_path / "cache"
    env = {**os.environ, "RULEC_CACHE_DIR": str(cache)}
    process = subprocess.Popen([sys.executable, "-m", "rulec", "run", str(rule_file),
                                "--graph", "ring:5"], env=env, stderr=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if cache.exists() and any(cache.glob(".build-*/*.c")):
            break
        time.sleep(0.02)
    assert process.poll() is None, "the build ended before it could be stopped"
    time.sleep(0.3)  # the compiler is running now
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    assert not list(cache.glob(".build-*"))


def test_the_checker_keeps_one_table_of_declared_names():
    """Regression: every declaration and every `let` rebuilt the table of all
    slots and params, quadratic in a rule with thousands of them."""
    checker = Checker()
    tree = parse_text(many_slots(50), "b.rule")
    checker.check_file(tree, "b")
    names = checker.declared()
    assert names is checker.declared()
    assert {"x0", "x49", "w"} <= set(names)
