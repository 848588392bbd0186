"""Loop fusion (rulec.backends.c.passes.fuse): the work it does grows
near-linearly with a block's size. Regression: code generation was quadratic
in the slot count (200 slots 5.6 s, 1,000 did not finish in 15 minutes),
because every item was compared with every item before it and re-read its C
text each time. The test counts work instead of timing it (bench/codegen.py
times it)."""

from __future__ import annotations

import importlib.util

from rulec.backends.c import passes
from rulec.backends.c.module import Unit
from rulec.backends.c.pipeline import c_source
from rulec.frontend import load_program

from .conftest import ROOT


def _rule_text(n: int) -> str:
    spec = importlib.util.spec_from_file_location("codegen", ROOT / "bench" / "codegen.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.rule_text(n)


def _statement_scans(n: int, monkeypatch) -> int:
    """How many times fusion walks a statement to find what it reads and writes."""
    calls = [0]
    original = passes.facts

    def counting(statement):
        calls[0] += 1
        return original(statement)

    monkeypatch.setattr(passes, "facts", counting)
    text = _rule_text(n)
    c_source([Unit(load_program(text, "big.rule"), "big", text)])
    return calls[0]


def test_fusion_reads_each_statement_once(monkeypatch):
    small, large = _statement_scans(50, monkeypatch), _statement_scans(400, monkeypatch)
    assert large <= 8 * small * 1.1, (small, large)  # linear: 8x the statements
    assert large <= 10 * 400, large


def test_a_thousand_slots_render(monkeypatch):
    text = _rule_text(1000)
    source = c_source([Unit(load_program(text, "big.rule"), "big", text)])
    assert source.count("tanh") >= 1000
