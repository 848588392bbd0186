"""The VM backend beyond the differential tests (which run it on every example
and valid rule): no compiler per rule, the CLI, scoping of locals, its listing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rulec
from rulec import graphs
from rulec.backends.vm import disassemble, translate

from .conftest import EXAMPLES, TESTS


def test_the_vm_runs_rules_with_no_compiler_once_it_is_built(tmp_path):
    """The VM is built once (per rulec version, into the cache); after that,
    new rules run with no C compiler anywhere."""
    rulec.compile("node x\nupdate { x += 1 }", backend="vm")  # built into this session's cache
    rule = tmp_path / "fresh.rule"
    rule.write_text("node y\nedge w\nupdate { y = tanh(sum(w * nbr.y)) + 0.125 }\n")
    env = {**os.environ, "CC": "no-such-compiler-rulec", "PATH": str(Path(sys.executable).parent)}
    result = subprocess.run([sys.executable, "-m", "rulec", "run", str(rule), "--graph",
                             "ring:6", "--backend", "vm", "--steps", "3"], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "backend vm" in result.stdout
    c_only = subprocess.run([sys.executable, "-m", "rulec", "run", str(rule), "--graph",
                             "ring:6", "--steps", "3"], env=env, capture_output=True, text=True)
    assert c_only.returncode == 1 and "no C compiler found" in c_only.stderr


@pytest.mark.parametrize("example", sorted(p.stem for p in EXAMPLES.glob("*.rule")))
def test_every_example_runs_on_the_vm_from_the_cli(run_cli, example):
    spec = {"life": "moore:8x8", "hopfield": "complete:8"}.get(example, "layered:3,5,2")
    result = run_cli("run", EXAMPLES / f"{example}.rule", "--graph", spec, "--steps", "5",
                     "--backend", "vm")
    assert result.returncode == 0, result.stderr
    assert "backend vm" in result.stdout


def test_rulec_fuzz_checks_the_vm(run_cli):
    result = run_cli("fuzz", "--count", "25", "--seed", "11", "--backend", "vm")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rules: 25; mismatches: 0; crashes: 0; rejected: 0" in result.stdout


def test_locals_of_the_same_name_in_two_branches_are_two_values():
    """Common subexpressions are shared per scope: `t + 1` in one branch is
    not `t + 1` in the other."""
    text = ("node x, y, z\nupdate {\n    if x > 0 {\n        let t = y\n        z = t + 1\n"
            "    } else {\n        let t = 2 * y\n        z = t + 1\n    }\n}\n")
    vm, ref = rulec.compile(text, backend="vm"), rulec.compile(text, backend="numpy")
    a = vm.state(graphs.ring(4))
    a.node["x"][:] = [1, -1, 1, -1]
    a.node["y"][:] = [1, 2, 3, 4]
    b = a.copy()
    vm.step(a)
    ref.step(b)
    np.testing.assert_array_equal(a.node["z"], [2, 5, 4, 9])
    np.testing.assert_array_equal(a.node["z"], b.node["z"])


def test_the_vm_listing_matches_its_golden_file():
    path = TESTS / "golden" / "hebbian.vm.txt"
    listing = disassemble(translate(rulec.compile_file(EXAMPLES / "hebbian.rule",
                                                       backend="numpy").program)) + "\n"
    if os.environ.get("RULEC_UPDATE_GOLDEN"):
        path.write_text(listing)
    assert path.read_text() == listing


def test_a_rule_compiled_for_the_vm_runs_the_same_on_the_c_backend():
    """Tiering: screen with the VM, run the winners as SIMD kernels."""
    screened = rulec.compile_file(EXAMPLES / "oja.rule", backend="vm")
    promoted = rulec.Rule(screened.program, "c")
    graph = graphs.layered([3, 3, 1])
    a = screened.state(graph)
    a.node["x"][:3] = [0.5, -0.2, 0.9]
    screened.init(a, seed=4)
    b = a.copy()
    screened.step(a, steps=40)
    promoted.step(b, steps=40)
    for (_, name, x), (_, _, y) in zip(a.slots(), b.slots(), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("rule_file,task,shape", [("backprop", "xor", [2, 4, 1]),
                                                   ("backprop", "and", [2, 3, 1]),
                                                   ("delta", "or", [2, 1])])
def test_learning_on_the_vm_equals_the_c_backend_and_the_reference(rule_file, task, shape):
    """The VM runs a protocol's "step until ready" in C; accuracy per epoch,
    steps and failure must equal the other backends'."""
    from rulec import learning as tasks

    results = {}
    for backend in ("vm", "c", "numpy"):
        rule = rulec.compile_file(EXAMPLES / f"{rule_file}.rule", backend=backend)
        results[backend] = tasks.evaluate(rule, tasks.TASKS[task], tasks.layered(shape),
                                          epochs=15, seed=2, stop_at=None)
    for backend in ("c", "numpy"):
        assert results["vm"].accuracy == results[backend].accuracy, backend
        assert results["vm"].steps == results[backend].steps, backend
        assert results["vm"].failure == results[backend].failure, backend
        np.testing.assert_allclose(results["vm"].loss, results[backend].loss, rtol=1e-4)


def test_step_until_stops_when_the_slot_is_set_and_reports_the_budget():
    text = "node x, done\nupdate {\n    x += 1\n    if x >= 4 { done = 1 }\n}\n"
    for backend in ("vm", "numpy"):
        rule = rulec.compile(text, backend=backend)
        state = rule.state(graphs.ring(3))
        # x is 4 after step 4; `if x >= 4` sees it (block-start value) in step 5
        assert rule.step_until(state, "done", [0, 2], budget=10) == (5, True)
        assert state.time == 5
        fresh = rule.state(graphs.ring(3))
        assert rule.step_until(fresh, "done", [1], budget=2) == (2, False)


def test_a_vm_mismatch_is_shrunk_and_replayable(tmp_path, monkeypatch, capsys):
    """A VM with `a * b` computed as `a + b` is caught by `rulec fuzz --backend
    vm`, shrunk, written out and replayed, as a C mismatch is."""
    import dataclasses

    from rulec.cli import main
    from rulec.ops import OPS

    monkeypatch.setenv("RULEC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setitem(OPS, "mul", dataclasses.replace(OPS["mul"], c="({0} + {1})"))
    out = tmp_path / "out"
    code = main(["fuzz", "--count", "3", "--seed", "3", "--backend", "vm", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 1 and "(vm, threads 1)" in printed and "VM " in printed
    replay = printed.split("replay: rulec ", 1)[1].splitlines()[0].split()
    assert replay[-2:] == ["--backend", "vm"]
    assert main(replay) == 1
    shrunk = next(out.glob("mismatch-*.rule")).read_text()
    assert "*" in shrunk and shrunk.count("=") <= 4  # a few statements left


def test_the_vm_asks_the_graph_only_for_the_arrays_its_code_reads():
    """graph_needs is read off the VM code: a peer read needs `rev`, a
    shared read `eid`, a shared write `rev` and `edge_half`; a read the
    translator dropped as dead needs nothing; never more than the IR asks."""
    from rulec import ir
    from rulec.backends.vm.native import vm_graph_arrays
    from rulec.generate import Options, SeededSource, rule

    def needs(text):
        return rulec.compile(text, backend="vm").runner.blocks.graph_needs

    base = "node x\nedge w\nshared edge s\n"
    assert needs(base + "update { x = sum(peer.w) }") == {"rev"}
    assert needs(base + "update { x = sum(s) }") == {"eid"}
    assert needs(base + "update { s = nbr.x }") == {"rev", "edge_half"}
    assert needs(base + "update { let unused = sum(peer.w)\n x = 1 }") == set()
    for seed in range(150):
        generated = rule(SeededSource(seed), Options(shared_slots=(0, 2)))
        vm = translate(generated.program)
        assert vm_graph_arrays(vm) <= ir.graph_arrays(generated.program), seed


def _states_after_every_block(rule: rulec.Rule, graph, seed: int) -> list[np.ndarray]:
    state = rule.state(graph)
    state.seed = seed
    rule.init(state)
    for label in rule.program.block_labels:
        if label != "init":
            rule.step(state, steps=3, block=label)
    return [array.copy() for _, _, array in state.slots()]


def _share_cases():
    from rulec.generate import Options, SeededSource, rule

    cases = [(path.stem, path.read_text()) for path in sorted(EXAMPLES.glob("*.rule"))]
    drawn = (rule(SeededSource(s), Options(max_depth=3)) for s in range(40))
    return cases + [(f"random {i}", r.program) for i, r in enumerate(drawn)]


def test_temporaries_that_share_storage_give_the_same_bits(monkeypatch):
    """On a large graph, temporaries never live at once share one array
    (native.temp_storage): every slot after init and three steps of every
    block must be bit for bit what separate arrays give, on the examples
    and random rules; and sharing must happen (the memory it saves)."""
    from rulec.backends.vm import native

    graph = graphs.erdos_renyi(600, 8 / 600, seed=3)
    shared_some = 0
    for name, source in _share_cases():
        got = []
        for share in (1 << 60, 0):  # never, always
            monkeypatch.setattr(native, "SHARE_BYTES", share)
            rule = rulec.Rule(source if not isinstance(source, str) else
                              rulec.compile(source, backend="vm").program, "vm")
            got.append(_states_after_every_block(rule, graph, seed=5))
        for a, b in zip(*got, strict=True):
            assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), name
        vm = rule.runner.blocks.vm
        temps = [r for r, src in enumerate(vm.registers.source) if src[0] == "temp"]
        owner = native.temp_storage(vm)
        shared_some += len({owner[r] for r in temps}) < len(temps)
        assert all(vm.registers.domain[owner[r]] == vm.registers.domain[r] for r in temps)
    assert shared_some >= 20


def test_temporaries_that_share_storage_never_share_with_what_they_read(monkeypatch):
    """No instruction writes into the storage of a register it reads (the
    VM's destinations are `restrict`), and a temporary written in the
    prologue keeps its storage to itself through the block."""
    from rulec.backends.vm import native
    from rulec.backends.vm.translate import _SKIP, _reads

    for name, source in _share_cases():
        rule = rulec.Rule(source if not isinstance(source, str) else
                          rulec.compile(source, backend="vm").program, "vm")
        vm = rule.runner.blocks.vm
        owner = native.temp_storage(vm)
        for code in vm.blocks.values():
            for op, d, a, b, c in [*code.prologue, *code.step]:
                if op == _SKIP:
                    continue
                for r in _reads(op, d, a, b, c):
                    if r >= 0 and r != d:
                        assert owner[r] != owner[d], (name, op, d, r)
            temp = [src[0] == "temp" for src in vm.registers.source]
            used = {r for op, d, a, b, c in [*code.prologue, *code.step]
                    for r in (*_reads(op, d, a, b, c), -1 if op == _SKIP else d)
                    if r >= 0 and temp[r]}
            for r in {d for _, d, *_ in code.prologue if d >= 0 and temp[d]}:
                assert all(owner[x] != owner[r] for x in used - {r}), (name, r)


def test_lane_width_counts_the_temporaries_that_share_storage():
    """Where 64 lanes do not fit LANE_BYTES, the lane registers share their
    temporaries' storage, so more lanes fit than an array per temporary
    allows; the registers made for that width stay within LANE_BYTES."""
    rule = rulec.compile((EXAMPLES / "backprop.rule").read_text(), backend="vm")
    runner = rule.runner
    graph = graphs.erdos_renyi(20000, 8 / 20000, seed=1)
    lengths = (graph.n_nodes, graph.n_half_edges, graph.n_edges)
    unshared = runner.LANE_BYTES // (4 * sum(max(lengths[d], 1)
                                             for d in runner.blocks.vm.registers.domain))
    width = runner.lane_width(graph)
    assert 1 <= unshared < width < runner.lanes
    registers = runner.blocks.lane_registers(graph, width)
    registers.lock.release()
    assert registers.workspace.nbytes <= runner.LANE_BYTES
