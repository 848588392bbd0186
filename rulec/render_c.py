"""Rendering: programs to one C translation unit, through templates/module.c.j2.

Python prepares everything the template needs (the node body of each block
as C lines, the slots and how each is stored); the template only frames it.
Rendering is a pure function of its inputs: the same programs give the same
text, which is what the build cache keys on.
"""

from __future__ import annotations

import functools
import os
import re
from collections import Counter
from dataclasses import dataclass

import jinja2

from . import ir
from .lower import BlockLowering, CNames, Item
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
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


# Calls that are much faster in vector form (libmvec, Philox): a loop with one
# of them is always vectorized.
_VECTOR_WORK = ("rulec_expf", "rulec_logf", "rulec_sinf", "rulec_cosf", "rulec_tanhf",
                "rulec_sigmoidf", "rulec_uniform", "rulec_gauss", "rulec_sqrtf")
_GATHERS = ("[nbr[h]]", "[rev[h]]", "[eid[h]]")


def gathers_mode() -> str:
    """RULEC_GATHERS: 'scalar' (the default) or 'vector'; see vectorize_loop."""
    mode = os.environ.get("RULEC_GATHERS", "scalar")
    if mode not in ("scalar", "vector"):
        raise ValueError(f"RULEC_GATHERS must be 'scalar' or 'vector', got {mode!r}")
    return mode


def vectorize_loop(lines: list[str]) -> bool:
    """Whether a half-edge loop gets `omp simd`. A loop that only reduces what
    it gathers across edges (x[nbr[h]], w[rev[h]], c[eid[h]]), with no vector
    math and no stores, runs with scalar loads: measured on this machine
    (bench/gathers.py, docs/performance.md), it was 2-13% faster than with
    hardware or emulated gathers, while loops that also store were 7-21%
    faster vectorized. RULEC_GATHERS=vector vectorizes every loop."""
    text = "\n".join(lines)
    if gathers_mode() == "vector" or any(call in text for call in _VECTOR_WORK):
        return True
    stores = any(re.match(r"\s*\w+\[h\] (?:=|\|=) ", line) for line in lines)
    return stores or not any(gather in text for gather in _GATHERS)


def render_items(items: list[Item], depth: int = 0, store: bool = False) -> list[str]:
    """C lines of a scheduled node body, for one node u. With `store`, each
    reduction's accumulators are also stored to the node block's arrays."""
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
            if vectorize_loop(item.lines):
                clause_text = " ".join(
                    f"reduction({clause}:{','.join(names)})" for clause, names in clauses.items()
                )
                out.append(f"{pad}RULEC_OMP_SIMD({clause_text})")
            else:
                out.append(f"{pad}/* scalar loads: a gather-only loop (docs/c-backend.md) */")
            out.append(f"{pad}for (int64_t h = h0; h < h1; ++h) {{")
            out += [pad + INDENT + line for line in item.lines]
            out.append(f"{pad}}}")
            if store:
                out += [f"{pad}{name}_b[j] = {name};" for _, name, _, _ in item.accumulators]
        else:
            for index, (condition, body) in enumerate(item.branches):
                if condition is None:
                    head = "} else {"
                else:
                    head = f"{'} else ' if index else ''}if ({condition} > 0.0f) {{"
                out.append(pad + head)
                out += render_items(body, depth + 1, store)
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


NODE_BLOCK = 64  # nodes per block: node-level math vectorizes across a block
_PHASE = "/* phase */"
_NAME = re.compile(r"\b(?:[sack]\d+|nx_\w+)\b")


def _accumulators(items: list[Item]) -> dict[str, str]:
    """Every reduction accumulator in the items: name -> C type."""
    found: dict[str, str] = {}
    for item in items:
        for _, name, _, ctype in item.accumulators:
            found[name] = ctype
        for _, body in item.branches:
            found.update(_accumulators(body))
    return found


def _to_arrays(line: str, keep: set[str]) -> str:
    """`line` with every per-node value (but those in `keep`) read from and
    written to its node-block array: `s3` becomes `s3_b[j]`."""
    line = _NAME.sub(lambda m: m.group(0) if m.group(0) in keep else f"{m.group(0)}_b[j]",
                     line)
    return re.sub(r"^(\s*)const (?:float|int32_t) (\w+_b\[j\]) = ", r"\1\2 = ", line)


def blocked_body(items: list[Item], prologue: list[str], epilogue: list[str]
                 ) -> tuple[list[str], list[str]]:
    """The node body as phases over a block of NODE_BLOCK nodes (u = block_start
    + j): runs of `line` items become one loop over the block that vectorizes
    (node-level tanh, exp, ... across nodes); passes over half-edges and
    branches stay per node. Values crossing phases live in per-block arrays.
    Returns (declarations, lines)."""
    everything = ([Item("line", prologue)] if prologue else []) + items + (
        [Item("line", epilogue)] if epilogue else [])
    phases: list[tuple[str, list[Item]]] = []
    for item in everything:
        kind = "lines" if item.kind == "line" else "nodes"
        if phases and phases[-1][0] == kind:
            phases[-1][1].append(item)
        else:
            phases.append((kind, [item]))
    rendered: list[str] = []
    for kind, phase in phases:
        rendered += render_items(phase, store=kind == "nodes") + [_PHASE]
    chunks: list[list[str]] = [[]]
    for line in drop_unused(rendered):
        if line == _PHASE:
            chunks.append([])
        else:
            chunks[-1].append(line)
    accumulators = _accumulators(items)
    lines: list[str] = []
    for (kind, phase), chunk in zip(phases, chunks, strict=False):
        if not chunk:
            continue
        local = set(_accumulators(phase)) if kind == "nodes" else set()
        if kind == "lines":
            lines.append("RULEC_OMP_SIMD()")
        lines += ["for (int64_t j = 0; j < block_n; ++j) {",
                  INDENT + "const int64_t u = block_start + j;"]
        if kind == "nodes":
            lines.append(INDENT + "const int64_t h0 = row_ptr[u], h1 = row_ptr[u + 1];")
        lines += [INDENT + "const int32_t u32 = (int32_t)u;  /* node ids fit nbr[]'s int32 */",
                  INDENT + "const float degree_u = degree[u];",
                  INDENT + "(void)u32; (void)degree_u;"]
        lines += [INDENT + _to_arrays(line, local) for line in chunk]
        lines.append("}")
    lines = _drop_unread_arrays(lines)
    names = sorted({m.group(0)[:-5] for line in lines for m in re.finditer(r"\w+_b\[j\]", line)},
                   key=lambda n: (len(n), n))
    declarations = [f"{accumulators.get(name, 'float')} {name}_b[RULEC_NODE_BLOCK];"
                    for name in names]
    return declarations, lines


_ARRAY_STORE = re.compile(r"^\s*(\w+)_b\[j\] = ")


def _drop_unread_arrays(lines: list[str]) -> list[str]:
    """Remove stores to block arrays that nothing reads (an accumulator used
    only in its own phase), until none is left. Every right-hand side is pure."""
    while True:
        reads = Counter(m.group(1) for line in lines
                        for m in re.finditer(r"\b(\w+)_b\[j\]", line))
        stores = Counter(m.group(1) for line in lines if (m := _ARRAY_STORE.match(line)))
        kept = [line for line in lines if not ((m := _ARRAY_STORE.match(line))
                                               and reads[m.group(1)] == stores[m.group(1)])]
        if len(kept) == len(lines):
            return lines
        lines = kept


def block_context(program: ir.Program, block: ir.Block, fn: str,
                  source_lines: list[str] | None) -> dict:
    names = CNames(program)
    lowering = BlockLowering(block, names, source_lines)
    modes = lowering.modes
    written_nodes = [name for (kind, name) in modes if kind == "node"]
    prologue = [f"const float {names.next_value(name)} = {names.slot('node', name)}[u];"
                for name in written_nodes]
    epilogue = []
    for name in written_nodes:
        array = names.slot("node", name)
        target = f"{array}_next" if modes["node", name] == "double" else array
        epilogue.append(f"{target}[u] = {names.next_value(name)};")
    declarations, body = blocked_body(fuse(lowering.items), prologue, epilogue)
    slots = []
    layout = (("node", program.node_slots, "n_nodes"),
              ("edge", program.edge_slots, "2 * n_edges"),
              ("shared", program.shared_slots, "n_edges"))
    for kind, declared, size in layout:
        for index, name in enumerate(declared):
            slots.append({
                "var": names.slot(kind, name), "kind": kind, "name": name,
                "array": kind, "index": index, "size": size,
                "mode": modes.get((kind, name), "read"),
            })
    params = [{"var": names.param(name), "index": index, "name": name}
              for index, (name, _) in enumerate(program.params)]
    return {"fn": fn, "label": block.label, "advance": block.label != "init",
            "params": params, "slots": slots, "declarations": declarations, "body": body,
            "node_block": NODE_BLOCK}


def kernel_name(prefix: str, index: int) -> str:
    return f"{prefix}_block{index}"


def render_module(units: list[Unit], with_table: bool = True, linkage: str = "") -> str:
    """The C source of a module holding every block of every unit (and, with
    `with_table`, the table the loader reads)."""
    rules, table = _contexts(units)
    return _render(rules, table, with_table, linkage=linkage)


def render_table(units: list[Unit]) -> str:
    """A translation unit with only the loader's table of the units' kernels,
    for a module compiled in several parts."""
    table = [{"key": f"{unit.prefix}:{block.label}", "fn": kernel_name(unit.prefix, index)}
             for unit in units for index, block in enumerate(unit.program.blocks)]
    return _render([], table, True, declare=True)


def _render(rules: list[dict], table: list[dict], with_table: bool, declare: bool = False,
            linkage: str = "") -> str:
    from ._version import __version__

    template = environment().get_template("module.c.j2")
    return template.render(rules=rules, table=table, with_table=with_table, declare=declare,
                           version=__version__, node_block=NODE_BLOCK, linkage=linkage)


def _contexts(units: list[Unit]) -> tuple[list[dict], list[dict]]:
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
    return rules, table
