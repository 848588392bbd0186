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
from rulec.graph import Graph

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


def test_a_cached_vm_loads_without_rendering_and_its_identity_is_its_inputs(monkeypatch):
    """A process that finds the VM in the cache neither renders its source
    nor imports Jinja (that was 40-60 ms of every worker's start): the
    cache key is made from what the source is rendered from, the template,
    its context (the op table, the pairs, the layout constants) and the
    runtime headers, so a change to any of them is a new key."""
    from rulec.backends import toolchain
    from rulec.backends.vm import native

    native.library()  # in this session's cache
    native._library_unlocked.cache_clear()

    def no_render():
        raise AssertionError("a cached VM was rendered")

    monkeypatch.setattr(native, "source", no_render)
    native.library()
    identities = []
    monkeypatch.setattr(toolchain, "cached_library",
                        lambda identity, *args, **kwargs: identities.append(identity))
    context = native._context()
    for changed in (context, {**context, "small_half_edges": 2048},
                    {**context, "elementwise": context["elementwise"][:-1]}):
        monkeypatch.setattr(native, "_context", lambda changed=changed: changed)
        native._library_unlocked.cache_clear()
        native.library()
    native._library_unlocked.cache_clear()
    keys = {toolchain.cache_key(identity, [], "vm-", False) for identity in identities}
    assert len(identities) == 3 and len(keys) == 3


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


@pytest.fixture
def unpaired(monkeypatch):
    """The VM's code without paired instructions: a pair may give a NaN of
    the other sign where two NaNs meet in + or * (docs/vm.md, "Paired
    instructions"), so the tests that compare the other passes with the
    quick translation bit for bit, NaN signs included, run without them
    (test_paired_instructions_give_the_same_values_alone_and_in_lanes
    checks the pairs)."""
    import importlib

    monkeypatch.setattr(importlib.import_module("rulec.backends.vm.translate"), "_paired",
                        lambda step, registers: step)


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


@pytest.mark.parametrize("graph", [graphs.layered([2, 4, 1]),
                                   graphs.erdos_renyi(300, 0.03, seed=4)],
                         ids=["7 nodes", "300 nodes"])
def test_fused_operands_hoisting_and_dead_stores_give_the_same_bits(graph, unpaired):
    """Operands read through an index, invariants computed in the prologue,
    dead code and overwritten stores left out, stores straight into slots,
    draws made only where taken and sums that compute the values they add
    change no bit of any slot after init and three steps of every block, on
    the examples and random rules; and they do apply (fewer instructions,
    fused operands of every kind, fused sums). Without them all is the
    quick translation (optimize=False) a search screens with, so this is
    also what makes its screening verdicts those of the optimized code."""
    from rulec.backends.vm.backend import VMBackend
    from rulec.backends.vm.translate import MODE_NAMES, OPCODES, OPERAND_BITS, OPERAND_SHIFT

    cases = _share_cases()
    programs = [source if not isinstance(source, str) else
                rulec.compile(source, backend="numpy").program for _, source in cases]
    passes = [rulec.Rule(program, "vm") for program in programs]
    plain = [rulec.Rule(program, "vm", native=VMBackend(program, optimize=False))
             for program in programs]
    modes, fewer, reduced = set(), 0, 0
    for (name, _), a, b in zip(cases, passes, plain, strict=True):
        for x, y in zip(_states_after_every_block(a, graph, seed=7),
                        _states_after_every_block(b, graph, seed=7), strict=True):
            assert np.array_equal(x.view(np.uint32), y.view(np.uint32)), name
        vm = a.runner.blocks.vm
        fewer += vm.instructions < b.runner.blocks.vm.instructions
        reduced += any(ins[0] & 255 == OPCODES["red_sum_of"]
                       for code in vm.blocks.values() for ins in code.step)
        for code in vm.blocks.values():
            for word, *_ in (*code.prologue, *code.step):
                modes.update(MODE_NAMES[(word >> (OPERAND_SHIFT + OPERAND_BITS * k)) & 7]
                             for k in range(3))
    assert modes == set(MODE_NAMES)
    assert fewer >= len(cases) // 2
    assert reduced >= 2  # sums that compute what they add (diffusion's, flow's)


def _code(*names_and_operands):
    from rulec.backends.vm.translate import OPCODES

    return [(OPCODES[op], *operands, *[-1] * (4 - len(operands)))
            for op, *operands in names_and_operands]


def _registers(*spec):
    from rulec.backends.vm.translate import Registers

    return Registers([domain for domain, _ in spec], [source for _, source in spec])


def test_an_operand_is_fused_only_where_its_gather_still_holds():
    """A gathered operand is read through the gather's index only where
    nothing wrote the gather's source in between, and where the gather ran
    whenever the reader runs (not in a branch the reader is outside of)."""
    from rulec.backends.vm.translate import NBR, OPCODES, OPERAND_SHIFT, _fused

    N, H = 0, 1
    regs = _registers((N, ("slot", "node", 0)), (H, ("temp",)), (H, ("temp",)),
                      (H, ("slot", "edge", 0)), (N, ("temp",)), (N, ("temp",)))
    add = OPCODES["add"]
    fused = (add | NBR << OPERAND_SHIFT, 2, 0, 3, -1)
    _, step = _fused([], _code(("gather_nbr", 1, 0), ("add", 2, 1, 3)), regs, None)
    assert step[1] == fused
    # the source written between the gather and the reader: the gathered register
    _, step = _fused([], _code(("gather_nbr", 1, 0), ("copy", 0, 4), ("add", 2, 1, 3)), regs,
                     None)
    assert step[2] == (add, 2, 1, 3, -1)
    # the gather in a branch, the reader after it
    _, step = _fused([], _code(("skip_if_none", -1, 5, 1), ("gather_nbr", 1, 0),
                               ("add", 2, 1, 3)), regs, None)
    assert step[2] == (add, 2, 1, 3, -1)
    # both in the branch
    _, step = _fused([], _code(("skip_if_none", -1, 5, 2), ("gather_nbr", 1, 0),
                               ("add", 2, 1, 3)), regs, None)
    assert step[2] == fused
    # a gather in the prologue of a source the step writes
    prologue, step = _fused(_code(("gather_nbr", 1, 0)), _code(("add", 2, 1, 3), ("copy", 0, 4)),
                            regs, None)
    assert step[0] == (add, 2, 1, 3, -1)


def _hub_graph() -> Graph:
    """A hub of 600 neighbours (more half-edges than two of the VM's chunks
    of fused operands, vm.c.j2's RULEC_VM_CHUNK), nodes of no edge, and a
    random graph around them: chunks that end inside a node, a node of
    several chunks, groups of many small nodes."""
    rng = np.random.default_rng(5)
    hub = np.stack([np.zeros(600, dtype=np.int64), np.arange(1, 601)], axis=1)
    pairs = np.sort(rng.integers(1, 900, size=(2500, 2)), axis=1)
    pairs = np.unique(pairs[pairs[:, 0] != pairs[:, 1]], axis=0)
    return Graph.from_edges(905, np.concatenate([hub, pairs]))


SUMMED = ["nbr.y - w", "w / nbr.y", "-nbr.y", "abs(nbr.y - w)", "square(nbr.y)",
          "(nbr.y - w)[incoming]", "(y - nbr.y)[w > 0]", "y - nbr.y"]


def _special_states(rules, graph, mixed: bool = False):
    """A state of each rule on `graph` holding the same values: normal ones,
    NaNs of both signs, infinities, signed zeros and a subnormal (on a graph
    with a hub, normal values only: the hub's sums would otherwise be NaN,
    whatever they added). `mixed`: each element chosen gets a special value
    of its own (so that two NaNs of other signs meet), on every graph; else
    each slot one special value."""
    special = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, -3.0],
                       dtype=np.float32)
    fraction = 0.3 if mixed or graph.degree.max() < 100 else 0.0
    states = []
    for rule in rules:
        rng = np.random.default_rng(11 if mixed else 3)  # the same values for each
        state = rule.state(graph)
        for _, _, array in state.slots():
            array[...] = rng.normal(size=array.size).astype(np.float32)
            if mixed:
                chosen = rng.random(array.size) < fraction
                array[chosen] = special[rng.integers(0, 8, size=int(chosen.sum()))]
            else:  # (the value drawn before the elements it goes to)
                value = special[rng.integers(0, 8)]
                array[rng.random(array.size) < fraction] = value
        states.append(state)
    return states


@pytest.mark.parametrize("graph", [graphs.erdos_renyi(60, 0.15, seed=2), _hub_graph()],
                         ids=["random", "hub"])
@pytest.mark.parametrize("expr", SUMMED)
def test_a_sum_that_computes_what_it_adds_gives_the_same_bits(expr, graph, unpaired):
    """Each op a sum computes where it adds it (translate.SUMMED_OPS), masked
    and not, on states holding NaNs of both signs, infinities and signed
    zeros: the slot is bit for bit what the op's own loop and red_sum give
    (the quick translation), and what the lanes' red_sum_of gives each lane.
    tests/test_lanes.py checks the lanes' evaluations seed by seed."""
    from rulec.backends.vm.backend import VMBackend
    from rulec.backends.vm.translate import OPCODES

    # y changes every step, so the sum is not computed once per call (the prologue)
    program = rulec.compile(f"node x, y\nedge w\nupdate {{\n x = sum({expr})\n y += x\n}}",
                            backend="numpy").program
    fused, plain = rulec.Rule(program, "vm"), \
        rulec.Rule(program, "vm", native=VMBackend(program, optimize=False))
    assert any(ins[0] & 255 == OPCODES["red_sum_of"]
               for ins in fused.runner.blocks.vm.blocks["update"].step)
    got = []
    for rule, state in zip((fused, plain), _special_states((fused, plain), graph), strict=True):
        rule.step(state, steps=1)
        got.append(state.node["x"].copy())
    assert np.array_equal(got[0].view(np.uint32), got[1].view(np.uint32))
    lanes = _lane_steps(fused, graph, _special_states([fused] * 3, graph), steps=1)
    for state in lanes:
        assert np.array_equal(state.node["x"].view(np.uint32), got[1].view(np.uint32))


def _lane_steps(rule, graph, states, steps: int, label: str = "update"):
    """`steps` steps of `label` on each state, each on its own lane of one
    rulec_vm_run_lanes call (a lane that meets a non-finite value stops
    after that step, as a state alone would): the lanes' states after."""
    from rulec.backends.views import graph_view

    blocks = rule.runner.blocks
    ffi, lib, n = blocks.ffi, blocks.lib, len(states)
    registers = blocks.lane_registers(graph, n)
    try:
        registers.clear()
        for lane, state in enumerate(states):
            registers.load(lane, state)
        seeds = np.array([s.seed for s in states], dtype=np.uint64)
        times = np.array([s.time for s in states], dtype=np.uint64)
        active, done = np.ones(n, dtype=np.uint8), np.zeros(n, dtype=np.int64)
        status = np.zeros(n, dtype=np.int32)
        view = graph_view(graph, blocks.graph_needs)

        def cast(ctype, array):
            return ffi.cast(ctype, array.ctypes.data)

        lib.rulec_vm_run_lanes(view.struct, n, cast("uint64_t *", seeds),
                               cast("uint64_t *", times), blocks._params(rule.param_values(None)),
                               registers.blocks[label], steps, -1, ffi.NULL, 0,
                               cast("uint8_t *", active), cast("int64_t *", done),
                               cast("int32_t *", status))
        out = []
        for lane in range(n):
            state = rule.state(graph)
            registers.save(lane, state)
            out.append(state)
        return out
    finally:
        registers.lock.release()


@pytest.mark.parametrize("graph", [graphs.erdos_renyi(60, 0.15, seed=2), _hub_graph()],
                         ids=["random", "hub"])
def test_fused_operands_of_every_kind_give_the_same_bits_alone_and_in_lanes(graph, unpaired):
    """Elementwise ops whose operands are read through an index (a
    neighbour's, the owner's, the reverse half-edge's, a scalar, its own,
    a scalar and a neighbour's), commutative or not, on special values,
    with a param that is a number and one that is NaN (the VM holds a
    scalar in a register only when it is not NaN): every slot after a step
    is bit for bit the unfused code's (the quick translation), alone, and on
    each of three lanes but for which NaN a NaN is; on the hub graph the
    indexes span several of the VM's chunks, and one node's half-edges more
    than two."""
    from rulec.backends.vm.backend import VMBackend
    from rulec.backends.vm.translate import MODE_NAMES, OPERAND_BITS, OPERAND_SHIFT

    text = ("param lr = 0.5\nnode x, y\nedge w, v, u\nupdate {\n"
            "    w = nbr.y * w + x\n"          # commutative: nbr, owner
            "    u = (1 - nbr.y) * u - max(nbr.x, lr)\n"  # a scalar and an index
            "    v = (x - nbr.y) / (w - 2)\n"   # not commutative: owner, nbr, own, scalar
            "    v[incoming] += min(v, x) * 0.5\n"
            "    w -= max(nbr.x, y) - v * lr\n"  # a param: NaN in the second run
            "    y = sum(x * w - nbr.y)\n"
            "    x = mean(v) + max(w)\n}\n")
    program = rulec.compile(text, backend="numpy").program
    fused = rulec.Rule(program, "vm")
    plain = rulec.Rule(program, "vm", native=VMBackend(program, optimize=False))
    modes = set()
    for word, *_ in fused.runner.blocks.vm.blocks["update"].step:
        modes.update(MODE_NAMES[(word >> (OPERAND_SHIFT + OPERAND_BITS * k)) & 7]
                     for k in range(3) if word >> OPERAND_SHIFT)
    assert {"", "nbr", "owner", "0"} <= modes, modes  # "": its own, "0": a scalar
    for lr in (0.5, float("nan")):
        states = _special_states((fused, plain), graph)
        for rule, state in zip((fused, plain), states, strict=True):
            rule.step(state, steps=1, params={"lr": lr})
        for (_, name, a), (_, _, b) in zip(states[0].slots(), states[1].slots(), strict=True):
            assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), (name, lr)
        if lr != lr:
            continue
        expected = [_nan_as_one(array) for _, _, array in states[1].slots()]
        # the lanes run on the rule's own params (_lane_steps)
        for lane in _lane_steps(fused, graph, _special_states([fused] * 3, graph), steps=1):
            for (_, name, a), b in zip(lane.slots(), expected, strict=True):
                assert np.array_equal(_nan_as_one(a), b), name


def _nan_as_one(array: np.ndarray) -> np.ndarray:
    """The bits of `array`, every NaN as one NaN: which NaN an op on two NaNs
    gives is the one thing the VM's loops need not agree on (docs/vm.md,
    "Lanes": a commutative op's operand order is the compiler's, loop by
    loop; this test's lanes give a product of two NaNs the other sign on
    one lane of three)."""
    bits = array.view(np.uint32).copy()
    bits[np.isnan(array)] = 0x7FC00000
    return bits


def _paired_rule() -> str:
    """A rule with every paired op (translate.PAIRS), each side, on the nodes
    (operands of their own) and on the half-edges (operands a neighbour's,
    the owner's and their own), each into a slot of its own, its operands
    the outer op's own slots (no value is computed once for two). The last
    lines write every operand, so nothing moves to the prologue."""
    lines, written = [], []
    for o, outer in enumerate("+-*"):
        x, y, z, w, v = f"x{o}", f"y{o}", f"z{o}", f"w{o}", f"v{o}"
        for inner in "+-*":
            k = len(lines) // 2
            lines += [f"    n{k} = ({x} {inner} {y}) {outer} {z}",
                      f"    n{k + 1} = {x} {outer} ({y} {inner} {z})",
                      f"    e{k} = (nbr.{x} {inner} {w}) {outer} {y}",
                      f"    e{k + 1} = {v} {outer} (nbr.{y} {inner} {x})"]
        written += [f"    {x} += n{k} * 0.5", f"    {y} -= sum(e{k})", f"    {z} = {x}",
                    f"    {w} += e{k + 1}", f"    {v} -= {w}"]
    count = len(lines) // 2
    nodes = [f"{a}{o}" for o in range(3) for a in "xyz"] + [f"n{k}" for k in range(count)]
    edges = [f"{a}{o}" for o in range(3) for a in "wv"] + [f"e{k}" for k in range(count)]
    return (f"node {', '.join(nodes)}\nedge {', '.join(edges)}\nupdate {{\n"
            + "\n".join(lines + written) + "\n}\n")


@pytest.mark.parametrize("graph", [graphs.erdos_renyi(60, 0.15, seed=2), _hub_graph()],
                         ids=["random", "hub"])
def test_paired_instructions_give_the_same_values_alone_and_in_lanes(graph, monkeypatch):
    """Every paired op (an arithmetic op computing another's value in its
    own loop), each side, on the nodes and on the half-edges with operands
    read through an index, on values that mix NaNs of both signs,
    infinities, signed zeros and a subnormal: every slot after a step is
    what the same code without pairs gives, and the quick translation, bit
    for bit but for which NaN a NaN is (the compiler orders the operands of
    a + or * as it likes, loop by loop, and x86 gives the first one's NaN);
    and on three lanes the same. On the hub graph a node's half-edges span
    several of the VM's chunks."""
    import importlib

    from rulec.backends.vm.backend import VMBackend
    from rulec.backends.vm.translate import OPCODES, PAIRS

    def names(rule):
        codes = {ins[0] & 255 for ins in rule.runner.blocks.vm.blocks["update"].step}
        return {name for name, code in OPCODES.items() if code in codes}

    program = rulec.compile(_paired_rule(), backend="numpy").program
    paired = rulec.Rule(program, "vm")
    plain = rulec.Rule(program, "vm", native=VMBackend(program, optimize=False))
    with monkeypatch.context() as patch:
        patch.setattr(importlib.import_module("rulec.backends.vm.translate"), "_paired",
                      lambda step, registers: step)
        unpaired = rulec.Rule(program, "vm", native=VMBackend(program))
    assert set(PAIRS) <= names(paired), set(PAIRS) - names(paired)
    assert not set(PAIRS) & names(unpaired)
    states = _special_states((paired, unpaired, plain), graph, mixed=True)
    for rule, state in zip((paired, unpaired, plain), states, strict=True):
        rule.step(state, steps=1)
    expected = [_nan_as_one(array) for _, _, array in states[1].slots()]
    nans = 0
    for (_, name, a), (_, _, c), b in zip(states[0].slots(), states[2].slots(), expected,
                                          strict=True):
        assert np.array_equal(_nan_as_one(a), b), name
        assert np.array_equal(_nan_as_one(c), b), name
        nans += int(np.isnan(a).sum())
    assert nans > 100  # NaNs met NaNs
    lane_states = _special_states([paired] * 3, graph, mixed=True)
    for lane in _lane_steps(paired, graph, lane_states, steps=1):
        for (_, name, a), b in zip(lane.slots(), expected, strict=True):
            assert np.array_equal(_nan_as_one(a), b), name


def test_an_instruction_is_paired_only_where_that_is_sound():
    """An arithmetic instruction computes another's value in its own loop
    only where that value is a temporary it alone reads, at its own
    element; both run in the same branch body; nothing writes the first's
    operands in between; the second does not write what the first reads;
    and no operand is a scalar (the unpaired loops hold it in a register,
    which the paired ones do not: measured slower)."""
    from rulec.backends.vm.translate import (
        NBR,
        OPCODES,
        OPERAND_BITS,
        OPERAND_SHIFT,
        SCALAR,
        _paired,
    )

    N = 0
    regs = _registers((N, ("slot", "node", 0)), (N, ("slot", "node", 1)), (N, ("temp",)),
                      (N, ("temp",)), (N, ("temp",)), (N, ("temp",)))
    sub_mul_l, add_sub_r = OPCODES["sub_mul_l"], OPCODES["add_sub_r"]
    # r3 = (r0 * r1) - r0: the product read once, by the next instruction
    assert _paired(_code(("mul", 2, 0, 1), ("sub", 3, 2, 0)), regs) == \
        [(sub_mul_l, 3, 0, 1, 0)]
    # the other side, with an instruction between that writes something else
    assert _paired(_code(("sub", 2, 0, 1), ("copy", 4, 0), ("add", 3, 1, 2)), regs) == \
        [*_code(("copy", 4, 0)), (add_sub_r, 3, 1, 0, 1)]
    # the value read twice
    code = _code(("mul", 2, 0, 1), ("sub", 3, 2, 0), ("add", 4, 2, 0))
    assert _paired(code, regs) == code
    # the first's operand written in between
    code = _code(("mul", 2, 0, 1), ("copy", 0, 4), ("sub", 3, 2, 0))
    assert _paired(code, regs) == code
    # the second writes what the first reads
    code = _code(("mul", 2, 4, 1), ("sub", 4, 2, 0))
    assert _paired(code, regs) == code
    # in a branch the second is not in
    code = _code(("skip_if_none", -1, 5, 1), ("mul", 2, 0, 1), ("sub", 3, 2, 0))
    assert _paired(code, regs) == code
    # both in it
    assert _paired(_code(("skip_if_none", -1, 5, 2), ("mul", 2, 0, 1), ("sub", 3, 2, 0)),
                   regs) == [*_code(("skip_if_none", -1, 5, 1)), (sub_mul_l, 3, 0, 1, 0)]
    # the value of the last step (written after it is read)
    code = _code(("sub", 3, 2, 0), ("mul", 2, 0, 1))
    assert _paired(code, regs) == code
    # not an arithmetic op
    code = _code(("max", 2, 0, 1), ("sub", 3, 2, 0))
    assert _paired(code, regs) == code
    # on the half-edges: the modes go with their operands; not with a scalar
    H = 1
    regs = _registers((N, ("slot", "node", 0)), (H, ("slot", "edge", 0)), (H, ("temp",)),
                      (H, ("temp",)), (N, ("const", 2.0)))
    nbr = NBR << OPERAND_SHIFT
    assert _paired([(OPCODES["mul"] | nbr, 2, 0, 1, -1), (OPCODES["sub"], 3, 1, 2, -1)],
                   regs) == [(OPCODES["sub_mul_r"] | nbr << OPERAND_BITS, 3, 1, 0, 1)]
    code = [(OPCODES["mul"] | SCALAR << OPERAND_SHIFT, 2, 4, 1, -1), (OPCODES["sub"], 3, 1, 2, -1)]
    assert _paired(code, regs) == code


MASKED = ("node x, y\nedge w\nshared edge s\nupdate {\n"
          "    w[incoming] = w * nbr.x - y\n"
          "    if x > 0 {\n        y = x * 2\n    } else {\n        s = nbr.x + w\n    }\n"
          "    s[w > 0] = w - nbr.y\n"
          "    x = y - max(s)\n}\n")


@pytest.mark.parametrize("nodes", [60, 700], ids=["small", "large"])
def test_masked_stores_and_shared_commits_give_the_kernels_bits(nodes):
    """Masked stores (a filter, a branch), and shared-slot proposals and
    their commit, on states holding NaNs, infinities and signed zeros: one
    step on the VM gives the C kernel's bits (every NaN as one) and the
    reference's values, on a small graph, where a masked store is a branch,
    and on one past SMALL_HALF_EDGES, where it is a blend; the proposals and
    the commit are blends on both."""
    from rulec.backends.vm.native import SMALL_HALF_EDGES

    graph = graphs.erdos_renyi(nodes, 14 / nodes, seed=5)
    assert (graph.n_half_edges > SMALL_HALF_EDGES) == (nodes == 700)
    rules = [rulec.compile(MASKED, backend=b) for b in ("vm", "c", "numpy")]
    states = _special_states(rules, graph)
    for rule, state in zip(rules, states, strict=True):
        rule.step(state, steps=1)
    fresh = _special_states(rules[:1], graph)[0]
    for (_, name, vm), (_, _, c), (_, _, ref), (_, _, before) in zip(
            *(s.slots() for s in (*states, fresh)), strict=True):
        assert np.array_equal(_nan_as_one(vm), _nan_as_one(c)), name
        np.testing.assert_allclose(vm, ref, rtol=1e-5, atol=1e-6, equal_nan=True, err_msg=name)
        if name != "x":  # the masks left some of each masked slot alone, changed some
            same = _nan_as_one(vm) == _nan_as_one(before)
            assert same.any() and not same.all(), name


def test_a_sum_computes_the_values_it_adds_only_where_that_is_sound():
    """A sum over a node's half-edges of a temporary one unary or binary
    elementwise instruction wrote for it alone computes each value where it
    adds it (red_sum_of; the op and the operands' modes in the word) and
    the temporary goes; not where something else reads the temporary, an
    operand is written in between, the two are in different branch bodies,
    the op takes three operands or is commutative (the compiler may order
    its operands otherwise in the sum, and x86 returns the first of two
    NaNs); and not for counts."""
    from rulec.backends.vm.translate import (
        NBR,
        OPCODES,
        OPERAND_SHIFT,
        REDUCED_SHIFT,
        _fused_reductions,
    )

    N, H = 0, 1
    regs = _registers((N, ("slot", "node", 0)), (H, ("slot", "edge", 0)), (H, ("temp",)),
                      (N, ("temp",)), (H, ("builtin", "incoming")), (N, ("temp",)),
                      (H, ("temp",)))
    mul = OPCODES["sub"] | NBR << OPERAND_SHIFT + 3  # w - x[nbr]
    step = [(mul, 2, 1, 0, -1), *_code(("red_sum", 3, 2, 4))]
    got = _fused_reductions(step, regs)
    assert got == [(OPCODES["red_sum_of"] | NBR << OPERAND_SHIFT + 3
                    | OPCODES["sub"] << REDUCED_SHIFT, 3, 1, 0, 4)]
    unary = _fused_reductions(_code(("abs", 2, 1), ("red_sum", 3, 2, -1)), regs)
    assert unary == [(OPCODES["red_sum_of"] | OPCODES["abs"] << REDUCED_SHIFT, 3, 1, -1, -1)]
    for name, code in [
            ("read again", [(mul, 2, 1, 0, -1), *_code(("red_sum", 3, 2, 4), ("copy", 6, 2))]),
            ("operand written between", [(mul, 2, 1, 0, -1),
                                         *_code(("copy", 0, 5), ("red_sum", 3, 2, 4))]),
            ("op in a branch", [*_code(("skip_if_none", -1, 5, 1)), (mul, 2, 1, 0, -1),
                                *_code(("red_sum", 3, 2, 4))]),
            ("three operands", _code(("select", 2, 1, 1, 1), ("red_sum", 3, 2, 4))),
            ("a count", [(mul, 2, 1, 0, -1), *_code(("red_count", 3, 2, -1))]),
            ("a commutative op", _code(("mul", 2, 1, 0), ("red_sum", 3, 2, 4)))]:
        assert _fused_reductions(code, regs) == code, name
    both = [*_code(("skip_if_none", -1, 5, 2)), (mul, 2, 1, 0, -1), *_code(("red_sum", 3, 2, 4))]
    assert _fused_reductions(both, regs)[0] == _code(("skip_if_none", -1, 5, 1))[0]


def test_only_invariants_move_to_the_prologue():
    """A step's instruction moves to the prologue when everything it reads
    is the same at every step of a call: built-ins, constants, params, slots
    the block does not write, and what moved before it."""
    from rulec.backends.vm.translate import _hoisted

    N = 0
    regs = _registers((N, ("slot", "node", 0)), (N, ("slot", "node", 1)),
                      (N, ("builtin", "degree")), (N, ("const", 2.0)),
                      *[(N, ("temp",))] * 5)
    step = _code(("mul", 4, 2, 3),      # degree * 2: moves
                 ("add", 5, 4, 1),      # + a slot the block does not write: moves
                 ("add", 6, 5, 0),      # + the slot the block writes: stays
                 ("skip_if_none", -1, 6, 1),
                 ("neg", 7, 5),         # in a branch, invariant: moves
                 ("store", 0, 6))
    prologue, rest = _hoisted(_code(("fill_param", 8, 0)), step, regs)
    assert prologue == _code(("fill_param", 8, 0), ("mul", 4, 2, 3), ("add", 5, 4, 1),
                             ("neg", 7, 5))
    assert rest == _code(("add", 6, 5, 0), ("skip_if_none", -1, 6, 0), ("store", 0, 6))
    # a temporary read before its write holds the last step's value there: it stays
    step = _code(("neg", 6, 4), ("mul", 4, 2, 3), ("store", 0, 6))
    assert _hoisted([], step, regs) == ([], step)


def test_a_store_is_dropped_only_where_a_later_one_overwrites_it_whole():
    from rulec.backends.vm.translate import _without_dead_stores

    # x += ...; x = ...: the first store and the copy that filled x's pending register go
    step = _code(("copy", 1, 0), ("store", 1, 2), ("store", 1, 3), ("copy", 0, 1))
    assert _without_dead_stores(step) == _code(("store", 1, 3), ("copy", 0, 1))
    # a masked second store keeps what it does not overwrite
    step = _code(("store", 1, 2), ("store", 1, 3, 4))
    assert _without_dead_stores(step) == step
    # read in between
    step = _code(("store", 1, 2), ("add", 5, 1, 1), ("store", 1, 5))
    assert _without_dead_stores(step) == step
    # the second store in a branch
    step = _code(("store", 1, 2), ("skip_if_none", -1, 4, 1), ("store", 1, 3))
    assert _without_dead_stores(step) == step


def test_a_value_overwritten_before_the_step_ends_is_not_computed():
    text = "node x\nupdate {\n    x += sum(nbr.x)\n    x = degree\n}\n"
    listing = disassemble(translate(rulec.compile(text, backend="numpy").program))
    assert "red_sum" not in listing and "gather_nbr" not in listing
    vm, ref = rulec.compile(text, backend="vm"), rulec.compile(text, backend="numpy")
    graph = graphs.erdos_renyi(30, 0.2, seed=2)
    a, b = vm.state(graph), ref.state(graph)
    vm.step(a, steps=2)
    ref.step(b, steps=2)
    np.testing.assert_array_equal(a.node["x"], b.node["x"])


def test_steps_run_in_tiles_give_the_same_bits(monkeypatch):
    """On a graph larger than a tile, a step runs tile by tile (nodes and
    their half-edges), its temporaries local to a tile; every slot after
    init and three steps of every block is bit for bit what whole-array
    steps give, on the examples and random rules, with the tiles' own
    workspace the smaller."""
    from rulec.backends.vm import native

    graph = graphs.erdos_renyi(300, 0.03, seed=4)
    cases = _share_cases()
    tiled, smaller = 0, 0
    for name, source in cases:
        program = source if not isinstance(source, str) else \
            rulec.compile(source, backend="numpy").program
        got, sizes = [], []
        for tile in (1 << 30, 16):  # one tile; tiles of 16 nodes or half-edges
            monkeypatch.setattr(native, "TILE_ELEMENTS", tile)
            rule = rulec.Rule(program, "vm")
            got.append(_states_after_every_block(rule, graph, seed=5))
            layout = rule.runner.blocks._layout(graph)
            sizes.append(layout.workspace_floats)
        for a, b in zip(*got, strict=True):
            assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), name
        tiled += layout.tiles is not None
        smaller += sizes[1] < sizes[0]
    assert tiled == len(cases)
    assert smaller >= len(cases) * 3 // 4


@pytest.mark.parametrize("tile", [1 << 30, 16], ids=["whole", "tiles of 16"])
def test_stores_straight_into_slots_give_the_same_bits(monkeypatch, tile):
    """A slot's stores go straight into it (no pending register, no copies
    around the step) where nothing reads the slot after the first of them,
    masked stores and stores in branches included (the elements they skip
    keep their block-start values, as the pending register's start copy
    held them): every slot after init and three steps of every block is bit
    for bit what pending registers give, on the examples and random rules,
    whole and in tiles (where a store into a slot another tile reads goes
    through a pending register again); and masked or branch stores do go
    straight in."""
    import importlib

    from rulec.backends.vm import native
    from rulec.backends.vm.translate import OPCODES, _covered

    module = importlib.import_module("rulec.backends.vm.translate")
    monkeypatch.setattr(native, "TILE_ELEMENTS", tile)
    graph = graphs.erdos_renyi(300, 0.03, seed=4)
    masked = 0
    for name, source in _share_cases():
        program = source if not isinstance(source, str) else \
            rulec.compile(source, backend="numpy").program
        direct = rulec.Rule(program, "vm")
        with monkeypatch.context() as patch:
            patch.setattr(module, "_direct_stores", lambda code, pending: code)
            plain = rulec.Rule(program, "vm")
        for a, b in zip(_states_after_every_block(direct, graph, seed=5),
                        _states_after_every_block(plain, graph, seed=5), strict=True):
            assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), name
        vm = direct.runner.blocks.vm
        slots = len(program.node_slots) + len(program.edge_slots) + len(program.shared_slots)
        for code in vm.blocks.values():
            covered = _covered(code.step)
            masked += any(ins[0] == OPCODES["store"] and ins[1] < slots
                          and (ins[3] >= 0 or covered[i]) for i, ins in enumerate(code.step))
    assert masked >= 5


def test_a_store_into_a_slot_another_tile_reads_waits_for_the_epilogue():
    """diffusion's `x += rate * sum(nbr.x - x)` stores x straight into its
    slot when run whole; in tiles, a later tile still gathers the old x of
    an earlier tile's nodes, so the store goes through a pending register
    copied once every tile has run."""
    rule = rulec.compile((EXAMPLES / "diffusion.rule").read_text(), backend="numpy")
    vm = translate(rule.program)
    assert vm.blocks["update"].tiled_step is None  # made on first use by a large graph
    code = vm.tiled().blocks["update"]
    from rulec.backends.vm.translate import OPCODES

    assert code.step[-1][:2] == (OPCODES["store"], 0)
    assert code.tiled_epilogue == 1
    assert code.tiled_step[-1][:2] == (OPCODES["copy"], 0)
    assert code.tiled_step[-2][0] == OPCODES["store"] and code.tiled_step[-2][1] != 0


def test_only_temporaries_a_tile_writes_before_it_reads_them_are_local_to_it():
    from types import SimpleNamespace

    from rulec.backends.vm.native import tile_local
    from rulec.backends.vm.translate import BlockCode

    N = 0
    regs = _registers((N, ("slot", "node", 0)), *[(N, ("temp",))] * 5)
    step = _code(("neg", 1, 0),          # r1: written, then read below: local
                 ("add", 4, 1, 2),       # r2 read before its write: last step's value
                 ("neg", 2, 0),
                 ("mul", 3, 5, 1),       # r5: the prologue's: every tile reads it
                 ("copy", 0, 4))         # the epilogue reads r4: every tile's
    code = BlockCode("update", 0, True, _code(("fill_param", 5, 0)), step, step, 1)
    vm = SimpleNamespace(registers=regs, blocks={"update": code})
    vm.tiled = lambda: vm  # its tiled step is made
    assert tile_local(vm) == [False, True, False, True, False, False]


def test_a_draw_is_masked_only_where_its_one_reader_takes_it_nowhere_else():
    """A draw whose one reader is a select taking it where the condition is
    > 0, or a store masked by m, directly or through elementwise ops at
    their own element, is made only there (its mask in operand b); not
    where the draw is the select's other operand, where something writes
    the mask between the draw and the reader, where two read it or the
    chain's value, where the chain's register is written twice or read
    across, or where the mask is in another domain."""
    from rulec.backends.vm.translate import NBR, OPCODES, OPERAND_SHIFT, _masked_draws

    N, H = 0, 1
    regs = _registers((N, ("slot", "node", 0)), (N, ("temp",)), (N, ("temp",)),
                      (N, ("temp",)), (H, ("temp",)), (N, ("temp",)))
    gauss = OPCODES["gauss"]
    # select(r0, gauss, r2) -> the draw where r0 > 0
    step = _code(("gauss", 1, 0), ("select", 3, 0, 1, 2))
    assert _masked_draws(step, regs)[0] == (gauss, 1, 0, 0, -1)
    # store r5 <- gauss where r2 > 0
    step = _code(("uniform", 1, 4), ("store", 5, 1, 2))
    assert _masked_draws(step, regs)[0] == (OPCODES["uniform"], 1, 4, 2, -1)
    # through an elementwise op at its own element: store r5 <- gauss * r0 where r2 > 0
    step = _code(("gauss", 1, 0), ("mul", 3, 1, 0), ("store", 5, 3, 2))
    assert _masked_draws(step, regs)[0] == (gauss, 1, 0, 2, -1)
    for unchanged in (
            _code(("gauss", 1, 0), ("select", 3, 0, 2, 1)),  # the draw where r0 <= 0
            _code(("gauss", 1, 0), ("store", 5, 1)),  # a store of it everywhere
            _code(("gauss", 1, 0), ("copy", 0, 2), ("select", 3, 0, 1, 2)),  # mask rewritten
            _code(("gauss", 1, 0), ("select", 3, 0, 1, 2), ("neg", 5, 1)),  # two readers
            _code(("gauss", 1, 0), ("store", 5, 1, 4)),  # a half-edge mask for a node draw
            _code(("gauss", 1, 0), ("mul", 3, 1, 0), ("mul", 2, 3, 0),  # the chain's value
                  ("store", 5, 3, 2)),  # read twice
            _code(("gauss", 1, 0), ("mul", 3, 1, 0), ("neg", 3, 3),  # written twice
                  ("store", 5, 3, 2))):
        assert _masked_draws(unchanged, regs) == unchanged
    # a chain through an operand read across (a fused neighbour's) stops there
    fused = [(OPCODES["gauss"], 1, 0, -1, -1), (OPCODES["mul"] | NBR << OPERAND_SHIFT, 3, 1, 0, -1),
             (OPCODES["store"], 5, 3, 2, -1)]
    assert _masked_draws(fused, regs) == fused


@pytest.mark.parametrize("graph", [graphs.layered([2, 4, 1]), _hub_graph()],
                         ids=["7 nodes", "hub"])
def test_draws_made_only_where_they_are_taken_give_the_same_bits(monkeypatch, graph):
    """Draws masked by their reader (translate._masked_draws) leave every slot,
    after init and three steps, bit for bit what drawing everywhere leaves,
    alone and on each of three lanes (a select of a Gaussian, a uniform
    draw in a branch, one in the other operand of a select, which stays
    unmasked)."""
    import importlib

    from rulec.backends.vm.backend import VMBackend

    T = importlib.import_module("rulec.backends.vm.translate")
    text = ("node x, y, s\nedge w\ninit { s = uniform() - 0.5\n w = gauss() }\n"
            "update {\n    x = select(s, gauss(), y)\n"
            "    if x > 0.2 { y = 0.5 * uniform() + x } else { y = -y }\n"
            "    w += select(nbr.s, w, gauss()) * 0.1\n}\n")
    program = rulec.compile(text, backend="numpy").program
    masked = rulec.Rule(program, "vm")
    drawn = [ins for ins in masked.runner.blocks.vm.blocks["update"].step if ins[0] in T._DRAWS]
    assert sum(ins[3] >= 0 for ins in drawn) == 2 and len(drawn) == 3
    monkeypatch.setattr(T, "_masked_draws", lambda step, registers: step)
    everywhere = rulec.Rule(program, "vm", native=VMBackend(program))
    assert all(ins[3] < 0 for code in everywhere.runner.blocks.vm.blocks.values()
               for ins in code.step if ins[0] in T._DRAWS)
    for a, b in zip(_states_after_every_block(masked, graph, seed=5),
                    _states_after_every_block(everywhere, graph, seed=5), strict=True):
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
    states = []
    for seed in (1, 2, 3):
        state = everywhere.state(graph)
        state.seed = seed
        everywhere.init(state)
        states.append(state)
    starts = [s.copy() for s in states]
    for state in states:
        everywhere.step(state, steps=3)
    for lane, alone in zip(_lane_steps(masked, graph, starts, steps=3), states, strict=True):
        for (_, name, a), (_, _, b) in zip(lane.slots(), alone.slots(), strict=True):
            assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), name
