"""The C backend's stages, in the order they run: one place that says what
runs when.

    .rule text
      │ parse          rulec.parser         syntax tree (grammar/rule.lark)
      │ check          rulec.checker        typed IR (rulec.ir)
      │ IR passes      rulec.passes         constant folding
      │ lower          .lower               loop-nest IR: one node body per block
      │ fuse           .passes              merge half-edge loops
      │ cse            .passes              each value once, across fused loops
      │ dce            .passes              drop what nothing reads
      │ block          .passes              phases over a block of nodes
      │ render         .render              C (templates/module.c.j2)
      ▼ build          rulec.build          cc -> content-addressed cache -> cffi

`compile_c` runs all of them for one rule. The kernels' own path is the
same: `rulec.build` looks the rule up in its cache after `check`, and on a
miss runs `render.render_module` (IR passes to render) and the compiler.

Every stage can be watched: `trace(stage, value)` is called after each with
what it produced (tests print the loop passes' output with `loops.show`
and compare it with golden files). With `verify` (default: the RULEC_VERIFY
environment variable, which the test suite sets), the loop-nest IR is
checked after every loop pass (`loops.verify`): a pass that breaks the IR's
rules fails there, with the pass named, not later as wrong C.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from ... import ir
from .loops import LoopIRError, verify
from .passes import Blocked, block, cse, dce, fuse

Trace = Callable[[str, object], None]

#: The loop passes, in order: name, function (node body -> node body).
LOOP_PASSES = (("fuse", fuse), ("cse", cse), ("dce", dce))


@dataclass
class Lowered:
    """One block after the loop passes."""

    names: object  # lower.CNames: the C names of the program's slots and params
    modes: dict  # (kind, slot) -> 'inplace' | 'double' | 'proposal'
    prologue: list
    body: list
    epilogue: list
    blocked: Blocked


def verifying() -> bool:
    return os.environ.get("RULEC_VERIFY", "") not in ("", "0")


def lower_block(program: ir.Program, block_ir: ir.Block, source_lines: list[str] | None = None,
                trace: Trace | None = None, verify_ir: bool | None = None) -> Lowered:
    """Lower one block and run the loop passes over it."""
    from .lower import BlockLowering, CNames

    check = verifying() if verify_ir is None else verify_ir
    names = CNames(program)
    lowering = BlockLowering(block_ir, names, source_lines)
    known = tuple(stmt.temp for stmt in lowering.prologue)
    body = lowering.body

    def stage(name: str, value) -> None:
        if check:
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
    if check:
        verify(lowering.prologue + body + lowering.epilogue)
    if trace is not None:
        trace("block", blocked)
    return Lowered(names, lowering.modes, lowering.prologue, body, lowering.epilogue, blocked)


def compile_c(source: str | bytes, filename: str = "<string>", trace: Trace | None = None):
    """Every stage from rule text to loaded kernels (native.NativeBlocks)."""
    from ...checker import check
    from ...frontend import parse_source
    from ...native import compile_native
    from .render import Unit, render_module

    text, tree = parse_source(source, filename)
    if trace is not None:
        trace("parse", tree)
    program = check(tree, filename, text)
    if trace is not None:
        trace("check", program)
        # what the cache builds on a miss, stage by stage (a hit runs none of it)
        render_module([Unit(program, "rule", text)], trace=trace)
    return compile_native([program], [text])[0]
