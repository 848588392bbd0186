"""Scheduling (rulec.schedule): the work it does grows near-linearly with a
block's size. Regression: code generation was quadratic in the slot count
(200 slots 5.6 s, 1,000 did not finish in 15 minutes), because every item
was compared with every item before it and re-read its C text each time.
The test counts work instead of timing it (bench/codegen.py times it)."""

from __future__ import annotations

import importlib.util

from rulec import lower
from rulec.frontend import load_program
from rulec.render_c import Unit, render_module

from .conftest import ROOT


def _rule_text(n: int) -> str:
    spec = importlib.util.spec_from_file_location("codegen", ROOT / "bench" / "codegen.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.rule_text(n)


def _text_scans(n: int, monkeypatch) -> int:
    """How many times scheduling reads an item's C text to find its names."""
    calls = [0]
    original = lower.Item._uses

    def counting(self):
        calls[0] += 1
        return original(self)

    monkeypatch.setattr(lower.Item, "_uses", counting)
    text = _rule_text(n)
    render_module([Unit(load_program(text, "big.rule"), "big", text)])
    return calls[0]


def test_scheduling_reads_each_item_once(monkeypatch):
    small, large = _text_scans(50, monkeypatch), _text_scans(400, monkeypatch)
    assert large <= 8 * small * 1.1, (small, large)  # linear: 8x the statements
    assert large <= 10 * 400, large


def test_a_thousand_slots_render(monkeypatch):
    text = _rule_text(1000)
    source = render_module([Unit(load_program(text, "big.rule"), "big", text)])
    assert source.count("tanh") >= 1000
