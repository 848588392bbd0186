"""Golden files: the canonical text and the typed IR (printed by ir.show) of
tests/valid/ and examples/, and the generated C of two examples.

A change to the printer or the checker shows up as a diff here. After a change
you mean, regenerate with:  RULEC_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py
"""

from __future__ import annotations

import os

import pytest

from rulec import ir
from rulec.frontend import load
from rulec.printer import format_tree

from .conftest import EXAMPLES, TESTS

GOLDEN = TESTS / "golden"
SOURCES = sorted((TESTS / "valid").glob("*.rule")) + sorted(EXAMPLES.glob("*.rule"))


def _compare(path, actual: str) -> None:
    if os.environ.get("RULEC_UPDATE_GOLDEN"):
        path.write_text(actual)
    assert path.exists(), f"{path.name} is missing: run with RULEC_UPDATE_GOLDEN=1"
    assert actual == path.read_text(), f"{path.name} differs (RULEC_UPDATE_GOLDEN=1 to accept)"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_printer_and_ir_match_golden_files(source):
    _, tree, program = load(source.read_bytes(), source.name)
    _compare(GOLDEN / f"{source.stem}.printed.rule", format_tree(tree))
    _compare(GOLDEN / f"{source.stem}.ir.txt", ir.show(program))


@pytest.mark.parametrize("name", ["hebbian", "flow"])
def test_generated_c_matches_golden_files(name):
    """The C of two examples (a conditional, a shared slot, peer reads): a change
    to lowering, scheduling or the templates shows up as a readable diff."""
    from rulec.backends.c.module import Unit
    from rulec.backends.c.pipeline import c_source

    source = EXAMPLES / f"{name}.rule"
    text = source.read_text()
    _, _, program = load(text, source.name)
    _compare(GOLDEN / f"{name}.c", c_source([Unit(program, name, text)]))
