"""Source text to checked IR: decode, parse, check, in one call."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from . import ir
from . import syntax as ast
from .checker import check
from .parser import decode, parse_text


def parse_source(source: str | bytes, filename: str = "<string>") -> tuple[str, ast.File]:
    """Decode (if bytes) and parse; returns the text and its syntax tree."""
    text = decode(source, filename) if isinstance(source, bytes) else source
    return text, parse_text(text, filename)


def load_program(source: str | bytes, filename: str = "<string>",
                 name: str | None = None) -> ir.Program:
    """Parse and check rule source; raises RuleErrors listing every error."""
    return load(source, filename, name)[2]


def load(source: str | bytes, filename: str = "<string>",
         name: str | None = None) -> tuple[str, ast.File, ir.Program]:
    """Parse and check rule source: its text, syntax tree and IR."""
    text, tree = parse_source(source, filename)
    default = name or (Path(filename).stem if not filename.startswith("<") else "rule")
    program = check(tree, filename, text, default_name=default)
    if name is not None and program.name != name:
        program = dataclasses.replace(program, name=name)
    return text, tree, program


def format_rule(source: str | bytes, filename: str = "<string>") -> str:
    """The canonical layout of rule source (what `rulec fmt` prints), comments
    kept. Raises RuleErrors if the rule has errors: only valid rules are
    formatted."""
    from .printer import format_source

    text, tree, _ = load(source, filename)
    return format_source(text, tree)
