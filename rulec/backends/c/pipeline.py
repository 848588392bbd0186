"""The C backend's stages, in the order they run: the one place that drives
them, entered once per rule (or batch of rules).

    .rule text
      │ parse          rulec.frontend       syntax tree (grammar/rule.lark)
      │ check          rulec.checker        typed IR (rulec.ir)
      │   cache lookup .module, toolchain   a hit loads the kernels: nothing below runs
      │ IR passes      rulec.passes         constant folding
      │ lower          .lower               loop-nest IR: one node body per block
      │ fuse           .passes              merge half-edge loops
      │ cse            .passes              each value once, across fused loops
      │ dce            .passes              drop what nothing reads
      │ block          .passes              phases over a block of nodes
      │ render         .render              C (templates/module.c.j2), spelt by .spelling
      ▼ build          rulec.backends.toolchain   cc -> content-addressed cache -> cffi

`compile_c` runs all of them for one rule's text, `build` from checked IR
(the kernels' path: rulec.backends.c.backend), `c_source` the middle
(IR passes to render) for `rulec emit`, export and tests.

Every stage can be watched: `trace(stage, value)` is called after each with
what it produced (tests print the loop passes' output with `loops.show`
and compare it with golden files). With `verify` (default: the RULEC_VERIFY
environment variable, which the test suite sets), the loop-nest IR is
checked after every loop pass (`loops.verify`): a pass that breaks the IR's
rules fails there, with the pass named, not later as wrong C.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from ... import ir
from ... import passes as ir_passes
from ...checker import check
from ...frontend import parse_source
from .. import toolchain
from . import module as modules
from .kernels import NativeBlocks
from .loops import LoopIRError, verify
from .lower import BlockLowering, CNames
from .module import Module, Unit
from .passes import block, cse, dce, fuse
from .render import Lowered, RenderedRule, render_module, render_parts, render_table

Trace = Callable[[str, object], None]

#: The loop passes, in order: name, function (node body -> node body).
LOOP_PASSES = (("fuse", fuse), ("cse", cse), ("dce", dce))


def verifying() -> bool:
    return os.environ.get("RULEC_VERIFY", "") not in ("", "0")


def lower_block(program: ir.Program, block_ir: ir.Block, source_lines: list[str] | None = None,
                trace: Trace | None = None, verify_ir: bool | None = None) -> Lowered:
    """Lower one block and run the loop passes over it."""
    checking = verifying() if verify_ir is None else verify_ir
    names = CNames(program)
    lowering = BlockLowering(block_ir, names, source_lines)
    known = tuple(stmt.temp for stmt in lowering.prologue)
    body = lowering.body

    def stage(name: str, value) -> None:
        if checking:
            try:
                verify(value, known)
            except LoopIRError as error:
                raise LoopIRError(f"after {name} (block {block_ir.label}): {error}") from None
        if trace is not None:
            trace(name, value)

    stage("lower", body)
    for name, run in LOOP_PASSES:
        body = run(body)
        stage(name, body)
    blocked = block(lowering.prologue, body, lowering.epilogue)
    if checking:
        verify(lowering.prologue + body + lowering.epilogue)
    if trace is not None:
        trace("block", blocked)
    return Lowered(names, lowering.modes, lowering.prologue, body, lowering.epilogue, blocked)


def lower_rule(unit: Unit, trace: Trace | None = None) -> RenderedRule:
    """A rule's IR passes, lowering and loop passes: what render spells."""
    program = ir_passes.pipeline(unit.program)
    if trace is not None:
        trace("IR passes", program)
    # lines as the parser counts them (str.splitlines also splits at
    # U+2028, form feeds and others, which would shift every line after)
    lines = unit.source.split("\n") if unit.source else None
    return RenderedRule(unit, program, [lower_block(program, b, lines, trace)
                                        for b in program.blocks])


def c_source(units: list[Unit], trace: Trace | None = None, with_table: bool = True,
             linkage: str = "") -> str:
    """The C of a module holding every block of every unit (IR passes to
    render; with `with_table`, the table the loader reads)."""
    text = render_module([lower_rule(unit, trace) for unit in units], with_table, linkage)
    if trace is not None:
        trace("render", text)
    return text


def c_sources(units: list[Unit], parts: int) -> list[str]:
    """A module's C as `parts` translation units and the loader's table (one
    file when parts is 1)."""
    if parts <= 1:
        return [c_source(units)]
    lowered = [lower_rule(unit) for unit in units]
    return render_parts(lowered, parts) + [render_table(units)]


_loaded: dict[str, Module] = {}
_loaded_lock = threading.Lock()


def build(programs: list[ir.Program], sources: list[str | None] | None = None,
          trace: Trace | None = None) -> list[NativeBlocks]:
    """Kernels for checked programs, all in one module: loaded in this
    process, else from the build cache, else made (IR passes to render) and
    compiled now, in one compiler call (or build_jobs() parts)."""
    units, prefixes = modules.units_of(programs, sources)
    flags = toolchain.cflags() + modules.size_flags(programs)
    identity = modules.identity(units)
    key = toolchain.cache_key(identity, flags)
    if trace is not None:  # what a miss builds, stage by stage (a hit runs none of it)
        c_source(units, trace)
    with _loaded_lock:
        found = _loaded.get(key)
    if found is None:
        def sources_now() -> list[str]:
            return c_sources(units, modules.parts_for(units))

        found = toolchain.cached(key, sources_now, modules.load, flags)
        with _loaded_lock:
            _loaded[key] = found
    if trace is not None:
        trace("build", found)
    return [NativeBlocks(p, found, prefix) for p, prefix in zip(programs, prefixes, strict=True)]


def compile_c(source: str | bytes, filename: str = "<string>", trace: Trace | None = None
              ) -> NativeBlocks:
    """Every stage from rule text to loaded kernels."""
    text, tree = parse_source(source, filename)
    if trace is not None:
        trace("parse", tree)
    program = check(tree, filename, text)
    if trace is not None:
        trace("check", program)
    return build([program], [text], trace)[0]
