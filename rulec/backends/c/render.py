"""Rendering: the C spelling of lowered rules, through templates/module.c.j2.

Rendering only spells: the pipeline (rulec.backends.c.pipeline) has run the
IR passes, lowering and loop passes, and hands each rule's blocks here as
Lowered (node bodies laid out in phases). Python spells them as C lines
(expressions through rulec.backends.c.spelling) and lists the slots and how
each is stored; the template only frames it. It is a pure function of its
inputs: the same lowered rules give the same text.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from ... import ir
from ..._version import __version__
from ...resources import templates
from .loops import (
    GATHERS,
    Accumulate,
    Comment,
    Expr,
    If,
    Let,
    Loop,
    Set,
    Store,
    Temp,
    is_heavy,
    loads_in,
)
from .module import Unit, gathers_mode
from .passes import Blocked
from .spelling import spell

INDENT = "    "
NODE_BLOCK = 64  # nodes per block: node-level math vectorizes across a block


@dataclass
class Lowered:
    """One block after the loop passes."""

    names: object  # lower.CNames: the C names of the program's slots and params
    modes: dict  # (kind, slot) -> 'inplace' | 'double' | 'proposal'
    prologue: list
    body: list
    epilogue: list
    blocked: Blocked


@dataclass
class RenderedRule:
    """A rule ready to spell: its unit, its program after the IR passes, and
    each block lowered (in the program's block order)."""

    unit: Unit
    program: ir.Program
    blocks: list[Lowered]


def vectorize_loop(loop: Loop) -> bool:
    """Whether a half-edge loop gets `omp simd`. A loop that only reduces what
    it gathers across edges (x[nbr[h]], w[rev[h]], c[eid[h]]), with no heavy
    math (libmvec, draws) and no stores, runs with scalar loads: measured on
    this machine (bench/gathers.py, docs/performance.md), it was 2-13% faster
    than with hardware or emulated gathers, while loops that also store were
    7-21% faster vectorized. RULEC_GATHERS=vector vectorizes every loop."""
    values = [stmt.value for stmt in loop.body if isinstance(stmt, (Let, Store, Accumulate))]
    if gathers_mode() == "vector" or any(is_heavy(value) for value in values):
        return True
    if any(isinstance(stmt, Store) for stmt in loop.body):
        return True
    return not any(load.index in GATHERS for value in values for load in loads_in(value))


class Speller:
    """Spells IR in C for one phase: `arrays` are the values that live in
    per-block arrays (read and written as `name_b[j]`)."""

    def __init__(self, arrays: set[Temp]) -> None:
        self.arrays = arrays

    def name(self, temp: Temp) -> str:
        return f"{temp.name}_b[j]" if temp in self.arrays else temp.name

    def expr(self, expr: Expr) -> str:
        return spell(expr, self.name)

    def store(self, stmt: Store) -> str:
        """A store, without its `;`."""
        return f"{stmt.array}[{stmt.index}] {stmt.op} {self.expr(stmt.value)}"

    def statements(self, statements: list, depth: int) -> list[str]:
        pad = INDENT * depth
        out: list[str] = []
        for stmt in statements:
            note = f"  /* {stmt.comment} */" if getattr(stmt, "comment", "") else ""
            if isinstance(stmt, Let):
                temp = stmt.temp
                if temp in self.arrays:
                    head = f"{self.name(temp)} = "
                else:
                    head = f"{'' if temp.mutable else 'const '}{temp.ctype} {temp.name} = "
                out.append(f"{pad}{head}{self.expr(stmt.value)};{note}")
            elif isinstance(stmt, Set):
                out.append(f"{pad}{self.name(stmt.var)} = {self.expr(stmt.value)};{note}")
            elif isinstance(stmt, Store):
                out.append(f"{pad}{self.store(stmt)};{note}")
            elif isinstance(stmt, Accumulate):
                acc, value = stmt.acc.name, self.expr(stmt.value)
                if stmt.op == "+":
                    out.append(f"{pad}{acc} += {value};")
                else:
                    better = ">" if stmt.op == "max" else "<"
                    out.append(f"{pad}{acc} = {value} {better} {acc} ? {value} : {acc};")
            elif isinstance(stmt, Comment):
                out.append(f"{pad}/* {stmt.text} */")
            elif isinstance(stmt, Loop):
                out += self.loop(stmt, pad, depth)
            elif isinstance(stmt, If):
                for index, (condition, body) in enumerate(stmt.branches):
                    if condition is None:
                        head = "} else {"
                    else:
                        head = f"{'} else ' if index else ''}if ({self.expr(condition)} > 0.0f) {{"
                    out.append(pad + head)
                    out += self.statements(body, depth + 1)
                out.append(pad + "}")
        return out

    def loop(self, loop: Loop, pad: str, depth: int) -> list[str]:
        out: list[str] = []
        clauses: dict[str, list[str]] = {}
        for acc in loop.accumulators:
            out.append(f"{pad}{acc.temp.ctype} {acc.temp.name} = {self.expr(acc.init)};")
            clauses.setdefault(acc.op, []).append(acc.temp.name)
        if vectorize_loop(loop):
            clause_text = " ".join(f"reduction({clause}:{','.join(names)})"
                                   for clause, names in clauses.items())
            out.append(f"{pad}RULEC_OMP_SIMD({clause_text})")
        else:
            out.append(f"{pad}/* scalar loads: a gather-only loop (docs/c-backend.md) */")
        out.append(f"{pad}for (int64_t h = h0; h < h1; ++h) {{")
        out += self.statements(loop.body, depth + 1)
        out.append(f"{pad}}}")
        out += [f"{pad}{acc.temp.name}_b[j] = {acc.temp.name};"
                for acc in loop.accumulators if acc.temp in self.arrays]
        return out


def blocked_lines(blocked: Blocked) -> tuple[list[str], list[str]]:
    """The C of a block's node body: each phase is a loop over the NODE_BLOCK
    nodes of a block (u = block_start + j); a 'lines' phase vectorizes across
    them. Returns (declarations, lines)."""
    arrays = set(blocked.arrays)
    speller = Speller(arrays)
    lines: list[str] = []
    for phase in blocked.phases:
        if phase.kind == "lines":
            lines.append("RULEC_OMP_SIMD()")
        lines += ["for (int64_t j = 0; j < block_n; ++j) {",
                  INDENT + "const int64_t u = block_start + j;"]
        if phase.kind == "nodes":
            lines.append(INDENT + "const int64_t h0 = row_ptr[u], h1 = row_ptr[u + 1];")
        lines += [INDENT + "const int32_t u32 = (int32_t)u;  /* node ids fit nbr[]'s int32 */",
                  INDENT + "const float degree_u = degree[u];",
                  INDENT + "(void)u32; (void)degree_u;"]
        lines += speller.statements(phase.body, 1)
        lines.append("}")
    declarations = [f"{temp.ctype} {temp.name}_b[RULEC_NODE_BLOCK];" for temp in
                    sorted(arrays, key=lambda t: (len(t.name), t.name))]
    return declarations, lines


def block_context(program: ir.Program, block: ir.Block, lowered: Lowered, fn: str) -> dict:
    names = lowered.names
    declarations, body = blocked_lines(lowered.blocked)
    modes = lowered.modes
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
            "params": params, "slots": slots, "declarations": declarations, "body": body}


def kernel_name(prefix: str, index: int) -> str:
    return f"{prefix}_block{index}"


def render_module(lowered: list[RenderedRule], with_table: bool = True,
                  linkage: str = "") -> str:
    """The C source of a module holding every block of every rule (and, with
    `with_table`, the table the loader reads)."""
    rules, table = _contexts(lowered)
    return _render(rules, table, with_table, linkage=linkage)


def render_parts(lowered: list[RenderedRule], parts: int) -> list[str]:
    """The kernels of `units` as `parts` translation units of about equal
    size, largest first (compile them at once and link them with
    render_table's unit). A unit's cost is its kernels' lines of C: each goes,
    largest first, to the part with the fewest lines so far, so no part holds
    many more than the others (rules in a batch differ in size by 10x and
    more); within a part the rules keep their batch order."""
    rules, _ = _contexts(lowered)
    weight = [sum(len(line) for block in rule["blocks"] for line in block["body"]) + 200
              for rule in rules]
    loads = [(0, part) for part in range(parts)]
    members: list[list[int]] = [[] for _ in range(parts)]
    for index in sorted(range(len(rules)), key=lambda i: -weight[i]):
        load, part = heapq.heappop(loads)
        members[part].append(index)
        heapq.heappush(loads, (load + weight[index], part))
    members.sort(key=lambda m: -sum(weight[i] for i in m))
    return [_render([rules[i] for i in sorted(m)], [], False) for m in members if m]


def render_table(units: list[Unit]) -> str:
    """A translation unit with only the loader's table of the units' kernels,
    for a module compiled in several parts."""
    table = [{"key": f"{unit.prefix}:{block.label}", "fn": kernel_name(unit.prefix, index)}
             for unit in units for index, block in enumerate(unit.program.blocks)]
    return _render([], table, True, declare=True)


def _render(rules: list[dict], table: list[dict], with_table: bool, declare: bool = False,
            linkage: str = "") -> str:
    template = templates().get_template("module.c.j2")
    return template.render(rules=rules, table=table, with_table=with_table, declare=declare,
                           version=__version__, node_block=NODE_BLOCK, linkage=linkage)


def _contexts(lowered: list[RenderedRule]) -> tuple[list[dict], list[dict]]:
    rules, table = [], []
    for rule in lowered:
        blocks = []
        for index, (block, lowered_block) in enumerate(zip(rule.program.blocks, rule.blocks,
                                                           strict=True)):
            fn = kernel_name(rule.unit.prefix, index)
            blocks.append(block_context(rule.program, block, lowered_block, fn))
            table.append({"key": f"{rule.unit.prefix}:{block.label}", "fn": fn})
        rules.append({"name": rule.program.name, "blocks": blocks})
    return rules, table
