"""Calibration of the search's evaluator: rules we know learn must clear every
hurdle of each shipped space and protocol they fit, and rules we know do not
learn (wired answers, dead target writes, constants, clocks, luck,
oscillators, a delta rule asked for a hidden layer) must fail, each for its
reason. The rules are in tests/calibration/ with a header saying why;
docs/search.md ("Calibration") quotes these verdicts."""

from __future__ import annotations

import dataclasses

import pytest

from rulec import search as S
from rulec.search.hurdles import score_rule
from rulec.search.space import load_settings

from .conftest import EXAMPLES, TESTS

CALIBRATION = TESTS / "calibration"
SPACES = {"default": S.Settings(), "logic": load_settings(EXAMPLES / "search" / "logic.toml"),
          "hidden": load_settings(EXAMPLES / "search" / "hidden.toml")}


def settings(space: str, tasks: tuple[str, ...], graph: str, **screen) -> S.Settings:
    base = SPACES[space]
    return dataclasses.replace(base, screen=dataclasses.replace(
        base.screen, tasks=tasks, graph=graph, **screen))


def handshake(tasks: tuple[str, ...], graph: str, epochs: int) -> S.Settings:
    return S.Settings(S.Space(protocol="handshake"),
                      S.Screen(tasks=tasks, graph=graph, seeds=3, epochs=epochs))


def text(name: str) -> str:
    path = EXAMPLES / name if name in ("backprop.rule", "delta.rule") else CALIBRATION / name
    return path.read_text()


LEARNERS = [
    # (rule, settings): fixed-time protocol with the shipped spaces' budgets
    *[(rule, space, settings(space, ("and", "or"), "layered:2,1,bias"))
      for rule in ("delta_fixed.rule", "delta_zero_fixed.rule")
      for space in ("default", "logic")],
    *[(rule, space, settings(space, ("and", "or"), "layered:2,4,1,bias"))
      for rule in ("backprop_fixed.rule", "feedback_alignment_fixed.rule")
      for space in ("default", "logic")],
    ("backprop_fixed.rule", "logic", settings("logic", ("xor",), "layered:2,4,1,bias",
                                              epochs=3000)),
    *[(rule, "hidden", settings("hidden", ("xor",), "layered:2,4,1,bias"))
      for rule in ("backprop_fixed.rule", "feedback_alignment_fixed.rule")],
    # hidden.toml as shipped: XOR and AND
    *[(rule, "hidden", SPACES["hidden"])
      for rule in ("backprop_fixed.rule", "feedback_alignment_fixed.rule")],
    # learns again from what it learned: OR on the state that AND left
    ("delta_fixed.rule", "logic", settings("logic", ("and", "or"), "layered:2,1,bias",
                                           sequence=True)),
    # stops learning after time 400: it passes each task from a fresh state
    # (and fails the sequence below)
    ("early_stopper.rule", "logic", settings("logic", ("and", "or"), "layered:2,1,bias")),
    # the handshake protocol
    ("backprop.rule", "handshake", handshake(("and", "or", "xor"), "layered:2,4,1", 3000)),
    ("feedback_alignment.rule", "handshake", handshake(("xor",), "layered:2,4,1", 3000)),
    ("delta.rule", "handshake", handshake(("and", "or"), "layered:2,1", 300)),
]


@pytest.mark.parametrize("rule,space,config", LEARNERS,
                         ids=[f"{rule[:-5]}-{space}-{','.join(c.screen.tasks)}"
                              for rule, space, c in LEARNERS])
def test_known_learners_clear_every_hurdle(rule, space, config):
    record = score_rule(text(rule), config)
    assert record["failure"] is None, record["failure"]
    assert record["passed"] == len(record["hurdles"])
    # held-out seeds: reported, not selected on; a learner learns on most
    assert record["fresh"] >= 0.6 * config.screen.fresh_seeds, record["fresh"]


NON_LEARNERS = [
    # (rule, space, tasks, graph, the failure's start[, screen overrides])
    ("wired_and.rule", "default", ("and",), "layered:2,1,bias", "target-blind: and:"),
    ("wired_and.rule", "logic", ("and",), "layered:2,1,bias", "target-blind: and:"),
    ("dead_target.rule", "logic", ("and", "or"), "layered:2,1,bias",
     "target-blind: the target slot 'target' never reaches"),
    ("constant.rule", "logic", ("and", "or"), "layered:2,1,bias",
     "outputs do not depend on the inputs"),
    ("oscillator.rule", "logic", ("and",), "layered:2,1,bias", "does-not-retain: and:"),
    ("oscillator.rule", "default", ("and",), "layered:2,1,bias", "does-not-retain: and:"),
    ("clock.rule", "logic", ("and",), "layered:2,1,bias", ""),
    # learns AND and OR on 9/10 untouched seeds, but taught NAND it answers
    # AND: its answers move with the targets, not toward them
    ("and_or_only.rule", "logic", ("and", "or"), "layered:2,1,bias",
     "target-blind: and: trained on the shifted targets"),
    ("luck.rule", "logic", ("and", "or"), "layered:2,1,bias", ""),
    # no error reaches the hidden layer: XOR cannot be learned
    ("delta_fixed.rule", "logic", ("xor",), "layered:2,4,1,bias", "xor: mean accuracy"),
    ("delta_hidden0_fixed.rule", "hidden", ("xor",), "layered:2,4,1,bias",
     "xor: mean accuracy"),
    # its output alone learns, over fixed random hidden features
    ("random_features.rule", "hidden", ("xor",), "layered:2,4,1,bias",
     "fixed-features: xor:"),
    # ... after a one-time random kick to its hidden weights at the first step
    # (it reaches XOR on 3 seeds in 8, so on its own it is also not-robust;
    # here seed 0, one it learns on, shows what the hidden hurdle sees)
    ("kicked_features.rule", "hidden", ("xor",), "layered:2,4,1,bias",
     "fixed-features: xor:", {"seeds": 1}),
    ("kicked_features.rule", "hidden", ("xor",), "layered:2,4,1,bias", ""),
    # learns only while time <= 400: OR, after AND on the same state, is not learned
    ("early_stopper.rule", "logic", ("and", "or"), "layered:2,1,bias", "or: mean accuracy",
     {"sequence": True}),
    # identical hidden units, a wired gate for 11, and 00 answered at 0.500
    ("threshold_tie.rule", "hidden", ("xor",), "layered:2,4,1,bias",
     "on-threshold: xor: seed 0 answers pattern 00 with 0.500"),
]


@pytest.mark.parametrize("rule,space,tasks,graph,reason,screen",
                         [(*n, {})[:6] for n in NON_LEARNERS],
                         ids=[f"{n[0][:-5]}-{n[1]}-{','.join(n[2])}"
                              + "".join(f"-{k}{v}" for k, v in (n[5] if len(n) > 5 else {}).items())
                              for n in NON_LEARNERS])
def test_known_non_learners_fail_for_their_reason(rule, space, tasks, graph, reason, screen):
    record = score_rule(text(rule), settings(space, tasks, graph, **screen))
    assert record["failure"] is not None, f"{rule} passed every hurdle"
    assert record["failure"].startswith(reason), record["failure"]
    assert record["failed_hurdle"] != "fresh"


def test_search_score_prints_verdicts_as_json_and_ablates(tmp_path, capsys):
    import json

    from rulec.cli import main

    learner, wired = CALIBRATION / "delta_fixed.rule", CALIBRATION / "wired_and.rule"
    argv = ["search", "score", str(learner), str(wired), "--space",
            str(EXAMPLES / "search" / "logic.toml"), "--graph", "layered:2,1,bias",
            "--task", "and", "--fresh-seeds", "4"]
    assert main([*argv, "--json", "--ablate"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [o["rule"] for o in out] == [str(learner), str(wired)]
    assert out[0]["passed"] is True and out[0]["failed_hurdle"] is None
    assert out[0]["fresh"] == "4/4" and out[0]["reason"] is None
    assert out[1]["passed"] is False and out[1]["failed_hurdle"] == "targets"
    assert out[1]["reason"].startswith("target-blind: and:")
    # the learning statement is needed: without it the target reaches nothing
    cuts = {cut["statement"].split()[0]: cut for cut in out[0]["ablations"]}
    assert not cuts["w[incoming]"]["passed"]
    assert cuts["w[incoming]"]["reason"].startswith("target-blind")
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert f"{learner}: passed every hurdle" in text and f"{wired}: failed at targets" in text
    bad = tmp_path / "bad.rule"
    bad.write_text("rule bad\nnode x\nupdate { x = y }\n")
    assert main(["search", "score", str(bad)]) == 1
    assert "unknown name 'y'" in capsys.readouterr().err


def test_a_hidden_layer_that_learns_is_told_from_fixed_random_features():
    # rung (b) asks for hidden nodes that learn from an error they receive:
    # a rule that trains only its output over random hidden features passes
    # every hurdle of hidden.toml, and --hidden tells it apart
    from rulec.search.hurdles import hidden_layer_needed

    hidden = settings("hidden", ("xor",), "layered:2,4,1,bias")
    features = hidden_layer_needed(text("random_features.rule"), hidden)
    learned = [s for s in features if s["reset"] is not None]
    assert learned and all(s["reset"] == 1.0 and not s["moved"] for s in learned)
    alignment = hidden_layer_needed(text("feedback_alignment_fixed.rule"), hidden)
    assert sum(s["reset"] is not None and s["reset"] < 1.0 for s in alignment) >= 2
