"""Passes over the typed IR, each a function from Program to Program.

`pipeline()` lists them in the order the C backend applies them.
"""

from __future__ import annotations

from .. import ir
from .fold import fold_constants

PASSES = (fold_constants,)


def pipeline(program: ir.Program) -> ir.Program:
    """The program after every IR pass, in order."""
    for run in PASSES:
        program = run(program)
    return program


__all__ = ["PASSES", "fold_constants", "pipeline"]
