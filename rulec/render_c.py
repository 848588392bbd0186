"""Rendering: programs to one C translation unit, through templates/module.c.j2.

Python prepares everything the template needs (the node body of each block
as C lines, the slots and how each is stored); the template only frames it.
Rendering is a pure function of its inputs: the same programs give the same
text, which is what the build cache keys on.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass

import jinja2

from . import ir
from .lower import BlockLowering, Item, slot_var
from .passes import pipeline
from .resources import resource_dir
from .schedule import fuse

INDENT = "    "


@dataclass(frozen=True)
class Unit:
    """One rule in a module: its IR, the prefix of its kernels' names, and
    (optionally) its source text, for comments in the generated C."""

    program: ir.Program
    prefix: str
    source: str | None = None


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render_items(items: list[Item], depth: int = 0) -> list[str]:
    """C lines of a scheduled node body."""
    pad = INDENT * depth
    out: list[str] = []
    for item in items:
        if item.kind == "line":
            out += [pad + line for line in item.lines]
        elif item.is_loop:
            clauses: dict[str, list[str]] = {}
            for clause, name, init, ctype in item.accumulators:
                out.append(f"{pad}{ctype} {name} = {init};")
                clauses.setdefault(clause, []).append(name)
            pragma = "#pragma omp simd" + "".join(
                f" reduction({clause}:{','.join(names)})" for clause, names in clauses.items()
            )
            out.append(pad + pragma)
            out.append(f"{pad}for (int64_t h = h0; h < h1; ++h) {{")
            out += [pad + INDENT + line for line in item.lines]
            out.append(f"{pad}}}")
        else:
            for index, (condition, body) in enumerate(item.branches):
                if condition is None:
                    head = "} else {"
                else:
                    head = f"{'} else ' if index else ''}if ({condition} > 0.0f) {{"
                out.append(pad + head)
                out += render_items(body, depth + 1)
            out.append(pad + "}")
    return out


_DEFINITION = re.compile(r"^\s*const (?:float|int|int32_t) ([svmk]\d+) = ")
_IDENTIFIER = re.compile(r"\b[svmk]\d+\b")


def drop_unused(lines: list[str]) -> list[str]:
    """Remove temporaries nothing reads (e.g. a value computed for a filter
    that only its mask needed), until none is left: dead-code elimination on
    the rendered body, so the C compiles warning-free."""
    while True:
        uses = Counter(name for line in lines for name in _IDENTIFIER.findall(line))
        kept = [line for line in lines
                if not ((m := _DEFINITION.match(line)) and uses[m.group(1)] == 1)]
        if len(kept) == len(lines):
            return lines
        lines = kept


def block_context(program: ir.Program, block: ir.Block, fn: str,
                  source_lines: list[str] | None) -> dict:
    lowering = BlockLowering(block, source_lines)
    modes = lowering.modes
    body: list[str] = []
    written_nodes = [name for (kind, name) in modes if kind == "node"]
    for name in written_nodes:
        body.append(f"float nx_{name} = {slot_var('node', name)}[u];")
    body += drop_unused(render_items(fuse(lowering.items)))
    for name in written_nodes:
        array = slot_var("node", name)
        target = f"{array}_next" if modes["node", name] == "double" else array
        body.append(f"{target}[u] = nx_{name};")
    slots = []
    layout = (("node", program.node_slots, "n_nodes"),
              ("edge", program.edge_slots, "2 * n_edges"),
              ("shared", program.shared_slots, "n_edges"))
    for kind, names, size in layout:
        for index, name in enumerate(names):
            slots.append({
                "var": slot_var(kind, name), "kind": kind, "name": name,
                "array": kind, "index": index, "size": size,
                "mode": modes.get((kind, name), "read"),
            })
    params = [{"var": f"param_{name}", "index": index, "name": name}
              for index, (name, _) in enumerate(program.params)]
    return {"fn": fn, "label": block.label, "advance": block.label != "init",
            "params": params, "slots": slots, "body": body}


def kernel_name(prefix: str, index: int) -> str:
    return f"{prefix}_block{index}"


def render_module(units: list[Unit], with_table: bool = True) -> str:
    """The C source of a module holding every block of every unit."""
    from . import __version__

    rules, table = [], []
    for unit in units:
        program = pipeline(unit.program)
        lines = unit.source.splitlines() if unit.source else None
        blocks = []
        for index, block in enumerate(program.blocks):
            fn = kernel_name(unit.prefix, index)
            blocks.append(block_context(program, block, fn, lines))
            table.append({"key": f"{unit.prefix}:{block.label}", "fn": fn})
        rules.append({"name": program.name, "blocks": blocks})
    template = _environment().get_template("module.c.j2")
    return template.render(rules=rules, table=table, with_table=with_table,
                           version=__version__)
