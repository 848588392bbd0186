"""The C build path: cache keys and hits, atomic and concurrent builds, the
size bound, compile_many, `rulec emit` and `rulec cache`, and the errors a
user gets when there is no working compiler."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import rulec
from rulec import graphs
from rulec.backends import toolchain
from rulec.backends.c import module as c_module
from rulec.backends.c import pipeline as c_pipeline

from .conftest import EXAMPLES, stepped

RULE = "node x\nedge w\nupdate { x = tanh(sum(w * nbr.x)) }\n"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache of this test's own, with nothing loaded in the process."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("RULEC_CACHE_DIR", str(directory))
    monkeypatch.setattr(c_pipeline, "_loaded", {})
    return directory


def test_a_build_is_cached_and_a_second_compile_hits_it(cache):
    rulec.compile(RULE)
    (entry,) = cache.glob("*.so")
    stamp = entry.stat().st_mtime_ns
    c_pipeline._loaded.clear()
    rule = rulec.compile(RULE)
    assert list(cache.glob("*.so")) == [entry]
    assert entry.stat().st_mtime_ns >= stamp
    state = rule.state(graphs.ring(3))
    rule.step(state)  # the loaded entry runs


def test_the_key_ignores_names_spans_and_param_defaults_but_not_code(cache):
    rulec.compile(RULE)
    rulec.compile("rule other\n\n# a comment\nnode x\nedge w\nupdate { x = tanh(sum(w * nbr.x)) }")
    assert len(list(cache.glob("*.so"))) == 1
    rulec.compile("param a = 1\nnode x\nupdate { x = a }")
    rulec.compile("param a = 2\nnode x\nupdate { x = a }")
    assert len(list(cache.glob("*.so"))) == 2
    rulec.compile(RULE.replace("tanh", "sigmoid"))
    assert len(list(cache.glob("*.so"))) == 3


def test_the_key_changes_with_the_flags(cache, monkeypatch):
    rulec.compile(RULE)
    monkeypatch.setenv("RULEC_CFLAGS", "-O1")
    c_pipeline._loaded.clear()
    rulec.compile(RULE)
    assert len(list(cache.glob("*.so"))) == 2


def test_rulec_cflags_adds_to_the_defaults_and_base_replaces_them(monkeypatch):
    """RULEC_CFLAGS=-O2 used to replace every default flag, silently dropping
    -march=native and -fopenmp (threads then ran on one core)."""
    monkeypatch.delenv("RULEC_CFLAGS_BASE", raising=False)
    monkeypatch.setenv("RULEC_CFLAGS", "-O2")
    flags = toolchain.cflags()
    assert "-fopenmp" in flags and flags.index("-O2") > flags.index("-O3")
    assert any(f.startswith("-march=") for f in flags) or os.uname().machine != "x86_64"
    monkeypatch.setenv("RULEC_CFLAGS_BASE", "-O1")
    with pytest.warns(RuntimeWarning, match="no -fopenmp"):
        flags = toolchain.cflags()
    assert flags[:2] == ["-O1", "-O2"] and "-O3" not in flags
    assert flags[2:] == list(toolchain.REQUIRED_CFLAGS)


def test_kernels_built_for_the_sse2_baseline_match_the_default_build(cache, monkeypatch):
    if os.uname().machine != "x86_64":
        pytest.skip("x86-64 flags")
    text = (EXAMPLES / "flow.rule").read_text()
    graph = graphs.erdos_renyi(80, 0.1, seed=3)
    native = rulec.compile(text)
    monkeypatch.setenv("RULEC_CFLAGS", "-O2 -march=x86-64")
    baseline = rulec.compile(text)
    assert native.runner.native.module.path != baseline.runner.native.module.path
    states = stepped((native, baseline), graph, seed=4, steps=20)
    for (_, name, a), (_, _, b) in zip(states[0].slots(), states[1].slots(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)


def test_compile_many_builds_one_shared_object_for_all_rules(cache):
    texts = [RULE.replace("tanh", f) for f in ("tanh", "sigmoid", "relu", "abs")]
    rules = rulec.compile_many(texts + [texts[0]])  # a duplicate is built once
    assert len(list(cache.glob("*.so"))) == 1
    assert len({id(r.runner.native.module) for r in rules}) == 1
    graph = graphs.ring(5)
    for rule, f in zip(rules, (np.tanh, lambda v: 1 / (1 + np.exp(-v)),
                               lambda v: np.maximum(v, 0), np.abs), strict=False):
        state = rule.state(graph)
        state.node["x"] = np.arange(5)
        state.edge["w"] = 0.5
        rule.step(state)
        ring_sum = 0.5 * (np.roll(np.arange(5), 1) + np.roll(np.arange(5), -1))
        np.testing.assert_allclose(state.node["x"], f(ring_sum), rtol=1e-6)



def len_sources(units) -> int:
    """How many C files a module of `units` is compiled from."""
    return len(c_pipeline.c_sources(units, c_module.parts_for(units)))


def test_a_large_batch_compiles_in_parts_linked_into_one_shared_object(cache, monkeypatch):
    monkeypatch.setenv("RULEC_BUILD_JOBS", "2")
    texts = [f"node x\nupdate {{ x = x * {k} + sum(nbr.x) }}\n" for k in range(20)]
    from rulec.backends.c.module import Unit
    from rulec.frontend import load_program

    units = [Unit(load_program(t, "t.rule"), f"p{i}") for i, t in enumerate(texts)]
    assert len_sources(units) == 3  # two parts and the table
    rules = rulec.compile_many(texts)
    assert len(list(cache.glob("*.so"))) == 1
    graph = graphs.ring(4)
    for k, rule in enumerate(rules):
        state = rule.state(graph)
        state.node["x"] = 1
        rule.step(state)
        np.testing.assert_array_equal(state.node["x"], np.full(4, k + 2.0, dtype=np.float32))


def test_rulec_build_jobs_bounds_the_compiler_processes_of_a_batch(monkeypatch):
    from rulec.backends.c.module import Unit
    from rulec.frontend import load_program

    program = load_program("node x\nupdate { x = sum(nbr.x) }\n", "t.rule")
    units = [Unit(program, f"p{i}") for i in range(40)]
    monkeypatch.setenv("RULEC_BUILD_JOBS", "1")
    assert len_sources(units) == 1  # one file, no table of its own
    monkeypatch.setenv("RULEC_BUILD_JOBS", "3")
    assert len_sources(units) == 4  # three parts and the table
    monkeypatch.delenv("RULEC_BUILD_JOBS")
    assert toolchain.build_jobs() == toolchain.available_cores() >= 1
    for bad in ("0", "two", "-1", "1.5"):
        monkeypatch.setenv("RULEC_BUILD_JOBS", bad)
        with pytest.raises(toolchain.BuildError, match=f"RULEC_BUILD_JOBS must be .*got '{bad}'"):
            toolchain.build_jobs()


def test_compile_many_takes_paths_and_programs_and_reports_bad_rules(cache):
    path = EXAMPLES / "hebbian.rule"
    program = rulec.compile(RULE, backend="numpy").program
    rules = rulec.compile_many([path, program])
    assert [r.name for r in rules] == ["hebbian", "rule"]
    with pytest.raises(rulec.RuleErrors):
        rulec.compile_many([RULE, "node x\nupdate { x = nope }"])
    with pytest.raises(TypeError):
        rulec.compile_many([42])


def test_many_processes_building_the_same_rules_at_once_build_each_once(cache, tmp_path):
    script = tmp_path / "build.py"
    script.write_text(textwrap.dedent(f"""
        import sys, rulec
        from rulec import graphs
        texts = [{RULE!r}.replace("tanh", f) for f in ("tanh", "exp", "sin", "cos")]
        rule = rulec.compile(texts[int(sys.argv[1]) % 2])
        state = rule.state(graphs.ring(4))
        rule.step(state)
        print("ok")
    """))
    env = {**os.environ, "RULEC_CACHE_DIR": str(cache)}
    procs = [subprocess.Popen([sys.executable, str(script), str(i)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(6)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.strip() == "ok"
    assert len(list(cache.glob("*.so"))) == 2
    assert not list(cache.glob(".build-*")), "a temporary build directory was left behind"


def test_the_cache_stays_within_its_size_limit(cache, monkeypatch):
    rulec.compile(RULE)
    size = next(cache.glob("*.so")).stat().st_size
    monkeypatch.setenv("RULEC_CACHE_SIZE_MB", str(2.5 * size / 2**20))
    for f in ("sigmoid", "relu", "abs", "exp"):
        rulec.compile(RULE.replace("tanh", f))
    entries = list(cache.glob("*.so"))
    assert 1 <= len(entries) <= 2
    assert sum(p.stat().st_size for p in entries) <= 2.5 * size


def test_a_missing_compiler_is_a_clear_error(cache, monkeypatch):
    monkeypatch.setenv("CC", "no-such-compiler-rulec")
    with pytest.raises(rulec.BuildError, match="no C compiler found.*backend='numpy'"):
        rulec.compile(RULE)
    rule = rulec.compile(RULE, backend="numpy")  # the reference backend needs none
    rule.step(rule.state(graphs.ring(3)))


def test_bad_flags_are_a_clear_error_with_a_log(cache, monkeypatch):
    monkeypatch.setenv("RULEC_CFLAGS", "-O2 --no-such-flag-rulec")
    with pytest.raises(rulec.BuildError) as caught:
        rulec.compile(RULE)
    message = str(caught.value)
    assert "RULEC_CFLAGS" in message and "no-such-flag-rulec" in message
    assert list(cache.glob("*.log"))
    assert not list(cache.glob("*.so"))


def test_cli_without_a_compiler_says_how_to_fix_it(run_cli, tmp_path):
    path = tmp_path / "r.rule"
    path.write_text(RULE)
    env_cc = os.environ.get("CC")
    os.environ["CC"] = "no-such-compiler-rulec"
    try:
        result = run_cli("run", path, "--graph", "ring:4")
    finally:
        if env_cc is None:
            del os.environ["CC"]
        else:
            os.environ["CC"] = env_cc
    assert result.returncode == 1
    assert "no C compiler found" in result.stderr and "--backend numpy" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_cache_info_and_clear(run_cli, tmp_path, monkeypatch):
    cache = tmp_path / "cli-cache"
    monkeypatch.setenv("RULEC_CACHE_DIR", str(cache))
    path = tmp_path / "r.rule"
    path.write_text(RULE)
    assert run_cli("run", path, "--graph", "ring:4").returncode == 0
    info = run_cli("cache", "info")
    assert info.returncode == 0
    assert str(cache) in info.stdout and "entries:   1" in info.stdout
    cleared = run_cli("cache", "clear")
    assert "removed 1 entry" in cleared.stdout
    assert not list(cache.glob("*.so"))


def test_cli_emit_prints_readable_c_naming_rule_lines(run_cli):
    result = run_cli("emit", EXAMPLES / "hebbian.rule")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "int64_t hebbian_block1(" in text
    assert "/* line 23: w += lr * (x * nbr.x - decay * w) */" in text
    assert "RULEC_OMP_SIMD(reduction(+:" in text
    bad = run_cli("emit", EXAMPLES / "hebbian.rule", "--prefix", "not valid")
    assert bad.returncode == 1 and "not a C identifier" in bad.stderr


def test_emitted_c_compiles_warning_free(tmp_path):
    from rulec.backends.c.module import Unit
    from rulec.backends.c.pipeline import c_source
    from rulec.frontend import load_program
    from rulec.resources import resource_dir

    units = [Unit(load_program(p.read_bytes(), str(p)), p.stem)
             for p in sorted(EXAMPLES.glob("*.rule"))]
    source = tmp_path / "all.c"
    source.write_text(c_source(units))
    result = subprocess.run(
        [*toolchain.compiler(), "-std=c99", "-Wall", "-Wextra", "-Werror", "-O1",
         "-fopenmp-simd", "-c",
         f"-I{resource_dir('runtime')}", str(source), "-o", str(tmp_path / "all.o")],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# --------------------------------------------------- the cache (regressions)


def test_many_processes_at_a_tiny_cache_limit_all_load_what_they_built(cache, tmp_path):
    """Regression: one process's eviction deleted another's fresh entry before
    it was loaded (2-11% of compiles failed with 'cannot load library')."""
    script = tmp_path / "churn.py"
    script.write_text(textwrap.dedent(f"""
        import sys, rulec
        from rulec import graphs
        funcs = ("tanh", "exp", "sin", "cos", "sigmoid", "relu", "abs", "sqrt")
        me = int(sys.argv[1])
        for k in range(3):
            rule = rulec.compile({RULE!r}.replace("tanh", funcs[(me + 3 * k) % len(funcs)]))
            rule.step(rule.state(graphs.ring(4)))
        print("ok")
    """))
    env = {**os.environ, "RULEC_CACHE_DIR": str(cache), "RULEC_CACHE_SIZE_MB": "0.001"}
    procs = [subprocess.Popen([sys.executable, str(script), str(i)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(4)]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0 and out.strip() == "ok", err


def test_eviction_skips_an_entry_another_process_is_loading(cache, monkeypatch):
    import fcntl

    rulec.compile(RULE)
    (entry,) = cache.glob("*.so")
    with open(toolchain._lock_path(cache, entry.stem), "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a process between build and load does
        monkeypatch.setenv("RULEC_CACHE_SIZE_MB", "0")
        rulec.compile(RULE.replace("tanh", "exp"))
        assert entry.exists(), "an entry whose lock is held was evicted"
    rulec.compile(RULE.replace("tanh", "sin"))
    assert not entry.exists()  # unlocked, least recently used: evicted


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "no-checksum"])
def test_a_damaged_entry_is_rebuilt_not_loaded(cache, damage, capfd):
    """Regression: a .so truncated to half gave SIGBUS, flipped bytes SIGILL,
    an empty file failed on every run with no rebuild. The entry is built in
    another process: this one must not have it mapped while it is damaged."""
    subprocess.run([sys.executable, "-c", f"import rulec; rulec.compile({RULE!r})"],
                   env={**os.environ, "RULEC_CACHE_DIR": str(cache)}, check=True)
    (entry,) = cache.glob("*.so")
    good = entry.read_bytes()
    if damage == "truncate":
        entry.write_bytes(good[: len(good) // 2])
    elif damage == "flip":
        data = bytearray(good)
        for i in range(len(data) // 3, len(data) // 3 + 64):
            data[i] ^= 0xFF
        entry.write_bytes(bytes(data))
    elif damage == "empty":
        entry.write_bytes(b"")
    else:
        entry.with_suffix(".sum").unlink()
    rule = rulec.compile(RULE)
    assert toolchain._verified(entry)
    assert "rebuilding damaged cache entry" in capfd.readouterr().err
    state = rule.state(graphs.ring(3))
    state.node["x"][:] = 1
    state.edge["w"][:] = 1
    rule.step(state)
    assert np.allclose(state.node["x"], np.tanh(2))


def test_cache_clear_removes_leftovers_of_killed_builds(cache):
    rulec.compile(RULE)
    leftover = cache / ".build-abc123"
    leftover.mkdir()
    (leftover / "x.c").write_text("int x;")
    assert toolchain.cache_clear() == 1
    assert not leftover.exists() and not list(cache.glob("*.so"))


def test_cache_clear_says_what_it_could_not_remove(cache, monkeypatch):
    """Regression: on a read-only cache `rulec cache clear` reported success."""
    import pathlib

    rulec.compile(RULE)

    def refuse(self, missing_ok=False):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(pathlib.Path, "unlink", refuse)
    with pytest.raises(rulec.BuildError, match="could not remove .* Permission denied"):
        toolchain.cache_clear()


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "lots"])
def test_a_bad_cache_size_is_a_clear_error(cache, monkeypatch, value):
    monkeypatch.setenv("RULEC_CACHE_SIZE_MB", value)
    with pytest.raises(rulec.BuildError, match="RULEC_CACHE_SIZE_MB must be a number"):
        toolchain.cache_limit_bytes()


def test_a_broken_compiler_is_blamed_not_rulec(cache, monkeypatch):
    """Regression: CC=false was reported as 'a bug in rulec'."""
    monkeypatch.setenv("CC", "false")
    with pytest.raises(rulec.BuildError) as caught:
        rulec.compile(RULE)
    message = str(caught.value)
    assert "check CC" in message and "bug in rulec" not in message


def test_the_cache_key_covers_the_code_generator_only():
    """Editing the CLI or the VM must not throw away every cached kernel;
    editing lowering, the op table or a template must. The files are named one
    by one (a glob would take in any file that lands beside them), so each
    must exist, and every header the module template includes must be one."""
    import re

    from rulec.resources import resource_dir

    paths = c_module.generator_sources()
    assert all(p.is_file() for p in paths), [str(p) for p in paths if not p.is_file()]
    names = {p.name for p in paths}
    for needed in ("lower.py", "ops.py", "render.py", "spelling.py", "passes.py", "loops.py",
                   "fold.py", "pipeline.py", "module.py", "toolchain.py", "module.c.j2",
                   "rulec_runtime.h"):
        assert needed in names, needed
    for unrelated in ("cli.py", "tasks.py", "fuzz.py", "translate.py", "generate.py",
                      "export.py", "rulec_vm.h", "vm.c.j2", "rulec_driver.c"):
        assert unrelated not in names, unrelated
    runtime = resource_dir("runtime")
    template = (resource_dir("templates") / "module.c.j2").read_text()
    included = set(re.findall(r'#include "([^"]+)"', template))
    while True:  # and what those headers include
        more = {name for header in included
                for name in re.findall(r'#include "([^"]+)"', (runtime / header).read_text())}
        if more <= included:
            break
        included |= more
    assert included <= names, included - names


def test_every_user_facing_error_has_one_root():
    from rulec.backends.c.export import ExportError
    from rulec.graphs import GraphSpecError

    for kind in (rulec.RuleErrors, rulec.BuildError, rulec.GraphError, GraphSpecError,
                 rulec.StateError, ExportError, rulec.NonFiniteError):
        assert issubclass(kind, rulec.RulecError), kind
