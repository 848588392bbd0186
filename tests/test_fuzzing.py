"""Properties over random rules (rulec.strategies), bounded to stay fast in CI.
A long run is `rulec fuzz --count 2000 --seed 1` (docs/fuzzing.md)."""

from __future__ import annotations

import dataclasses
import faulthandler

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rulec
from rulec import fuzz, graphs, strategies
from rulec.backends import toolchain
from rulec.backends.c import pipeline as c_pipeline
from rulec.errors import RuleErrors
from rulec.frontend import load_program, parse_source
from rulec.ops import OPS
from rulec.printer import format_tree
from rulec.strategies import (
    GeneratedRule,
    ill_typed,
    mutations,
    rules,
    states,
)

FAST = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
COMPILING = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))


@FAST
@given(rules())
def test_print_then_parse_gives_the_same_ir(rule: GeneratedRule):
    again = load_program(rule.text, "again.rule")
    assert again == rule.program
    assert format_tree(parse_source(rule.text, "x.rule")[1]) == rule.text


@FAST
@given(rules(), st.data())
def test_ill_typed_edits_are_rejected_with_a_positioned_error(rule, data):
    bad = data.draw(ill_typed(rule))
    with pytest.raises(RuleErrors) as caught:
        load_program(bad.text, "bad.rule")
    assert bad.code in caught.value.codes, (bad.what, str(caught.value))
    for error in caught.value.errors:
        assert error.span.line >= 1 and error.span.column >= 1
    assert "bad.rule:" in str(caught.value) and "^" in str(caught.value)


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(rules(max_statements=3, max_depth=2), st.data())
def test_mutations_keep_rules_well_typed(rule, data):
    mutated = data.draw(mutations(rule))
    assert load_program(mutated.text, "m.rule") == mutated.program


def test_knobs_limit_what_is_generated():
    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(rules(ops={"add", "mul", "sum"}, shared_slots=(0, 0), named_blocks=(0, 0),
                 init=False, reuse=0.0, adversarial_names=0.0))
    def check(rule):
        assert rule.program.block_labels == ("update",)
        assert not rule.program.shared_slots
        for word in ("tanh", "exp", "max(", "mean(", "clip", "select", " - "):
            assert word not in rule.text.split("update {", 1)[1]

    check()


@COMPILING
@given(rules(), strategies.graphs(), st.data())
def test_c_and_the_reference_agree_after_one_step_of_every_block(rule, graph, data):
    state = data.draw(states(rule, graph))
    c_rule = rule.compile("c")
    ref_rule = rulec.Rule(rule.program, "numpy")
    mismatches = fuzz.check(c_rule, ref_rule, graph, state)
    assert not mismatches, "\n".join(map(str, mismatches)) + "\n" + rule.text


@COMPILING
@given(rules(init=True), strategies.graphs())
def test_the_same_seed_gives_the_same_state(rule, graph):
    c_rule = rule.compile("c")
    one, two = c_rule.state(graph), c_rule.state(graph)
    c_rule.init(one, seed=5)
    c_rule.init(two, seed=5)
    for (_, name, a), (_, _, b) in zip(one.slots(), two.slots(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_different_seeds_give_different_draws():
    rule = rulec.compile("node x\nedge w\ninit { x = uniform(); w = gauss() }\nupdate { x = x }")
    graph = graphs.ring(50)
    one, two = rule.state(graph), rule.state(graph)
    rule.init(one, seed=1)
    rule.init(two, seed=2)
    assert (one.node["x"] != two.node["x"]).mean() > 0.9
    assert (one.edge["w"] != two.edge["w"]).mean() > 0.9


def test_check_finds_a_broken_op_and_shrinking_keeps_the_failure_small(tmp_path, monkeypatch):
    """A C backend with `a - b` compiled as `b - a` is caught, and the failing
    rule shrinks to a few lines that still show it."""
    monkeypatch.setenv("RULEC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(c_pipeline, "_loaded", {})
    monkeypatch.setitem(OPS, "sub", dataclasses.replace(OPS["sub"], c="({1} - {0})"))
    text = ("node x, y\nedge w\nupdate {\n    let t1 = sum(w * nbr.x)\n"
            "    y = exp(x) * 2\n    x = t1 - degree\n    w = w * 2\n}\n")
    start = strategies.generated(parse_source(text, "f.rule")[1])
    graph = graphs.ring(6)

    def fails(candidate):
        state = fuzz.random_state(candidate.program, graph, 3)
        return bool(fuzz.check(candidate.compile("c"), rulec.Rule(candidate.program, "numpy"),
                               graph, state))

    assert fails(start)
    small = fuzz.shrink(start, fails)
    assert fails(small)
    assert len(small.text) < len(start.text)
    assert " - " in small.text and "exp" not in small.text


def test_rulec_fuzz_runs_a_batch_with_no_mismatch(run_cli, tmp_path):
    result = run_cli("fuzz", "--count", "30", "--seed", "1", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rules: 30; mismatches: 0; crashes: 0; rejected: 0" in result.stdout
    assert "rules/s" in result.stderr  # progress


def test_rulec_fuzz_writes_replayable_failures(tmp_path, monkeypatch, capsys):
    from rulec.cli import main

    monkeypatch.setenv("RULEC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(c_pipeline, "_loaded", {})
    monkeypatch.setitem(OPS, "mul", dataclasses.replace(OPS["mul"], c="({0} + {1})"))
    out = tmp_path / "out"
    code = main(["fuzz", "--count", "2", "--seed", "1", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 1
    assert "mismatch 1 (case" in printed and "replay: rulec fuzz --replay" in printed
    rule_file = out / f"mismatch-{printed.split('(case ', 1)[1].split(')')[0]}.rule"
    assert rule_file.exists() and rule_file.with_suffix(".npz").exists()
    replay = printed.split("replay: rulec ", 1)[1].splitlines()[0].split()
    assert main(replay) == 1
    assert "element" in capsys.readouterr().out


def test_cancelling_huge_values_are_ill_conditioned_not_mismatches():
    """Regression (rulec fuzz --count 2000 --seed 1, with -O2): `y += sum(w)`
    over w = 1e30, -1e30 and small values sums to different small numbers in
    C's lanes and NumPy's pairwise order. The check must call that element
    ill-conditioned; it once nudged both huge values alike, so they still
    cancelled exactly and the element looked stable."""
    rule = rulec.compile("node y\nedge w\nupdate { y += sum(w) }", backend="numpy")
    graph = rulec.Graph.from_edges(5, [(0, 1), (0, 2), (0, 3), (0, 4)])
    state = rule.state(graph)
    state.edge["w"][:4] = [1e30, 0.59, -1e30, 0.03]
    reference = state.copy()
    fuzz.run_block(rule, reference, "update")
    for trial in range(20):
        stable = fuzz.stability(rule, state, reference, "update", 3,
                                np.random.default_rng(trial))
        assert not stable["y"][0], f"trial {trial}: node 0 judged stable"
        assert stable["y"][1:].all()


def test_a_branch_on_a_cancelling_sum_is_not_a_mismatch(tmp_path):
    """Regression (rulec fuzz --count 2000 --seed 1 --out, mismatch-1): `if sum(g)`
    where g holds ±1e30 takes either branch under a few-ulp nudge, so C and
    the reference may differ there; three stability trials could all miss
    that, 24 more must not."""
    text = ("node x\nedge w\nshared edge g\nupdate {\n    if sum(g) {\n        let t2 = 1\n"
            "    } elif 1 {\n        g += 1\n    }\n}\n")
    c_rule = rulec.compile(text)
    ref_rule = rulec.Rule(c_rule.program, "numpy")
    graph = rulec.Graph.from_edges(4, [(0, 1), (0, 2), (0, 3), (1, 2)])
    state = c_rule.state(graph)
    state.edge["g"][:] = [1e30, 0.25, -1e30, 0.5]
    for seed in range(10):
        assert not fuzz.check(c_rule, ref_rule, graph, state, seed=seed)


# ------------------------------------------------ the generator (regressions)


def test_seeded_rules_are_well_typed_even_when_the_base_expression_is_reused():
    """Regression (rulec fuzz --seed 424242001): a draw used as the base vector
    became the root of a vector `let` (a float by the language), then was
    filtered or reduced (E306, E302). The generator must never do that; reuse=1
    forces the base expression into every leaf it can take."""
    from rulec.generate import Options, SeededSource, rule_tree

    for reuse in (1.0, 0.5):
        options = Options(max_depth=5, max_statements=8, reuse=reuse, draws_in_update=0.5,
                          adversarial_names=0.5)
        for seed in range(150):
            tree = rule_tree(SeededSource(seed), options)
            text = format_tree(tree)
            load_program(text, f"seed{seed}.rule")  # raises RuleErrors if ill-typed


def test_the_same_seed_gives_the_same_rules_whatever_was_imported():
    """Regression: rules from `rulec fuzz`'s seed differed after `import rulec.cli`
    (hypothesis draws constants from the modules a process has loaded)."""
    import subprocess
    import sys

    script = ("import sys\nif sys.argv[1] == 'cli': import rulec.cli\n"
              "from rulec import fuzz\n"
              "for i in range(6): print(fuzz.make_case(5, i, fuzz.fuzz_options()).rule.text)\n")
    texts = [subprocess.run([sys.executable, "-c", script, which], capture_output=True,
                            text=True, check=True).stdout for which in ("plain", "cli")]
    assert texts[0] == texts[1] and texts[0].count("rule fuzz") == 6


def test_cases_do_not_depend_on_how_a_run_is_split_over_jobs():
    options = fuzz.fuzz_options()
    whole = [fuzz.make_case(9, i, options).rule.text for i in range(6)]
    odd = [fuzz.make_case(9, i, options).rule.text for i in (1, 3, 5)]
    assert odd == whole[1::2]


def test_adversarial_names_are_drawn_and_accepted():
    from rulec.generate import ADVERSARIAL_NAMES, Options, SeededSource, rule

    options = Options(adversarial_names=1.0, node_slots=(3, 3), edge_slots=(2, 2))
    names = set()
    for seed in range(20):
        program = rule(SeededSource(seed), options).program
        names |= set(program.node_slots) | set(program.edge_slots)
    assert names <= set(ADVERSARIAL_NAMES) and len(names) > 20


def test_rule_errors_cross_a_process_boundary():
    import pickle

    with pytest.raises(RuleErrors) as caught:
        load_program("node x\nupdate { x = nosuch }", "bad.rule")
    again = pickle.loads(pickle.dumps(caught.value))
    assert str(again) == str(caught.value) and again.codes == ["E201"]


def test_a_rejected_or_crashing_rule_is_reported_and_the_run_goes_on(monkeypatch):
    """Regression: one ill-typed rule rejected its whole batch, and an exception
    in a worker aborted `rulec fuzz --jobs 2` with BrokenProcessPool."""
    real_case, real_check = fuzz.make_case, fuzz.check

    def make_case(seed, index, options):
        case = real_case(seed, index, options)
        if index == 1:
            return fuzz.Case(index, None, case.graph, case.state_seed, "E302: bad\nrule x")
        return case

    def check(rules, ref_rule, *args, **kwargs):
        if "zzz" in ref_rule.program.node_slots:
            raise RuntimeError("boom")
        return real_check(rules, ref_rule, *args, **kwargs)

    original = fuzz.Case

    def patched(index, rule, graph, state_seed, error=""):
        if index == 2 and rule is not None:
            rule = strategies.generated(parse_source(
                "node zzz\nedge w\nupdate { zzz = sum(w) }", "z.rule")[1])
        return original(index, rule, graph, state_seed, error)

    monkeypatch.setattr(fuzz, "make_case", make_case)
    monkeypatch.setattr(fuzz, "check", check)
    monkeypatch.setattr(fuzz, "Case", patched)
    report = fuzz.fuzz(4, seed=2)
    assert (report.rules, report.rejected, report.crashes, report.mismatches) == (3, 1, 1, 0)
    kinds = {failure["kind"]: failure for failure in report.failures}
    assert "boom" in kinds["crash"]["mismatch"] and "zzz" in kinds["crash"]["rule"]
    assert "E302" in kinds["rejected"]["mismatch"]


def test_rulec_fuzz_with_two_jobs_checks_every_rule(run_cli):
    result = run_cli("fuzz", "--count", "6", "--seed", "424242", "--jobs", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rules: 6; mismatches: 0; crashes: 0; rejected: 0" in result.stdout


def test_two_workers_check_every_chunk_and_report_failures_in_case_order(monkeypatch):
    """Chunks go to whichever worker is free; the report is the same as one
    process's. Regression: workers were forked, and a fork of a process that
    had run a kernel on two threads hung in its first parallel kernel (libgomp
    is not fork-safe); they are spawned now."""
    monkeypatch.delenv("RULEC_BUILD_JOBS", raising=False)
    rule = rulec.compile("node x\nupdate { x = sum(nbr.x) }\n")
    rule.step(rule.state(graphs.ring(500)), threads=2)  # the OpenMP pool exists now
    reports = []
    faulthandler.dump_traceback_later(600, exit=True)  # a hang fails the run, loudly
    try:
        report = fuzz.fuzz_parallel(7, 11, 2, None, 2, statements=2, chunk=2,
                                    progress=lambda r, n: reports.append(r.rules))
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert (report.rules + report.rejected, report.mismatches, report.crashes) == (7, 0, 0)
    assert len(reports) >= 2 and reports[-1] == report.rules  # progress as chunks finish
    alone = fuzz.fuzz(7, 11, 2, statements=2)
    assert (alone.rules, alone.rejected) == (report.rules, report.rejected)


def test_a_fuzz_worker_builds_with_its_share_of_the_cores(monkeypatch):
    monkeypatch.setattr(toolchain, "available_cores", lambda: 16)
    monkeypatch.delenv("RULEC_BUILD_JOBS", raising=False)
    assert [fuzz.worker_build_jobs(jobs) for jobs in (2, 4, 16, 32)] == ["8", "4", "1", "1"]
    monkeypatch.setenv("RULEC_BUILD_JOBS", "3")  # the user's choice stands
    assert fuzz.worker_build_jobs(2) == "3"
    fuzz._worker_setup("5")
    assert toolchain.build_jobs() == 5


def test_a_huge_argument_to_sin_is_ill_conditioned_not_a_mismatch():
    """Regression (rulec fuzz --seed 20261123 --depth 6 --statements 8, case 128):
    sin(exp(sum(outgoing))) at a node with 17 larger neighbours is sin of
    ~2.4e7, where one ulp of exp (C's vector expf is within 4 of NumPy's)
    changes the sine completely. No state value feeds it, so nudging inputs
    could not show it; the conditioning check must also move approximate ops'
    results within their ulps."""
    text = "node x\nupdate { x = sin(exp(sum(outgoing))) }\n"
    c_rule = rulec.compile(text)
    ref_rule = rulec.Rule(c_rule.program, "numpy")
    graph = rulec.Graph.from_edges(20, [(0, v) for v in range(3, 20)] + [(1, 2)])
    state = c_rule.state(graph)
    for seed in range(5):
        assert not fuzz.check(c_rule, ref_rule, graph, state, seed=seed)
    stable = fuzz.stability(ref_rule, state, _after(ref_rule, state), "update", 3,
                            np.random.default_rng(0))
    assert not stable["x"][0]  # node 0 is judged ill-conditioned


def _after(rule, state):
    result = state.copy()
    fuzz.run_block(rule, result, "update")
    return result
