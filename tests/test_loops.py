"""The C backend's loop-nest IR and its passes (rulec.backends.c).

Per-pass golden files (tests/golden/*.loops.txt) show each block of two
examples after lowering and after every loop pass, printed by `spelling.show`:
a change to lowering or a pass shows up as a readable diff. Regenerate after
a change you mean with RULEC_UPDATE_GOLDEN=1 python -m pytest tests/test_loops.py
"""

from __future__ import annotations

import pytest

from rulec import ir
from rulec.backends.c import loops
from rulec.backends.c.loops import (
    Accumulate,
    Accumulator,
    Call,
    Const,
    If,
    Let,
    Load,
    Loop,
    LoopIRError,
    Set,
    Store,
    Temp,
    verify,
)
from rulec.backends.c.passes import block, cse, dce, fuse
from rulec.backends.c.pipeline import LOOP_PASSES, compile_c, lower_block
from rulec.backends.c.spelling import show
from rulec.frontend import load_program
from rulec.passes import pipeline

from .conftest import EXAMPLES, TESTS
from .test_golden import GOLDEN, _compare

SOURCES = sorted((TESTS / "valid").glob("*.rule")) + sorted(EXAMPLES.glob("*.rule"))


def _lowered(text: str, name: str = "t.rule"):
    program = pipeline(load_program(text, name))
    return program, [lower_block(program, b, text.splitlines(), verify_ir=True)
                     for b in program.blocks]


def _trace_text(path) -> str:
    text = path.read_text()
    program = pipeline(load_program(text, path.name))
    out: list[str] = [f"== after IR passes ==\n{ir.show(program)}"]
    for block_ir in program.blocks:
        def trace(stage, value, label=block_ir.label):
            shown = value.show() if stage == "block" else show(value)
            out.append(f"== {label}: after {stage} ==\n{shown}\n")
        lower_block(program, block_ir, text.splitlines(), trace, verify_ir=True)
    return "\n".join(out)


@pytest.mark.parametrize("name", ["hebbian", "flow"])
def test_every_loop_pass_matches_golden_files(name):
    _compare(GOLDEN / f"{name}.loops.txt", _trace_text(EXAMPLES / f"{name}.rule"))


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_the_ir_verifies_after_every_loop_pass(source):
    stages = []
    program = pipeline(load_program(source.read_text(), source.name))
    for block_ir in program.blocks:
        lower_block(program, block_ir, None, lambda stage, _: stages.append(stage),
                    verify_ir=True)
    names = ["lower", *(name for name, _ in LOOP_PASSES), "block"]
    assert stages == names * len(program.blocks)


def test_the_pipeline_runs_every_stage_in_order():
    stages = []
    kernels = compile_c((EXAMPLES / "hebbian.rule").read_text(), "hebbian.rule",
                        trace=lambda stage, _: stages.append(stage))
    per_block = ["lower", "fuse", "cse", "dce", "block"]
    assert stages == ["parse", "check", "IR passes", *per_block, *per_block, "render", "build"]
    assert kernels.program.name == "hebbian"


# ---------------------------------------------------------------- verifier


def _fails(body, match, known=()):
    with pytest.raises(LoopIRError, match=match):
        verify(body, known)


def test_the_verifier_rejects_broken_bodies():
    s1, s2, v3, a4, nx = Temp("s1"), Temp("s2"), Temp("v3"), Temp("a4"), Temp("nx_0",
                                                                              mutable=True)
    x_u = Load("node_0", "u", "node:x")
    w_h = Load("edge_0", "h", "edge:w")
    _fails([Let(s2, Call("add", (s1, Const(1.0))))], "s1 is read where it is not defined")
    _fails([Let(s1, x_u), Let(s1, x_u)], "s1 is defined twice")
    _fails([Let(s1, w_h)], "half-edge load edge_0\\[h\\] outside a loop")
    _fails([Store("edge_0", "h", Const(0.0), "edge:w")], "store at \\[h\\] outside a loop")
    _fails([Loop([Store("node_0", "u", Const(0.0), "node:x")])], "store at \\[u\\] inside")
    _fails([Loop([Let(v3, w_h)]), Let(s1, Call("abs", (v3,)))], "v3 is read where")
    _fails([Loop([Accumulate(a4, "+", w_h)])], "a4 is accumulated outside its loop")
    _fails([Set(s1, x_u, "node:x")], "not a visible next value", known=(s1,))
    _fails([If([(Const(1.0), [Let(s1, x_u)])]), Let(s2, Call("abs", (s1,)))],
           "s1 is read where")
    _fails([Loop([Loop([])])], "a loop inside a loop")
    _fails([Let(s1, Load("node_0", "k", "node:x"))], "unknown index")
    # and accepts a well-formed body
    verify([Let(s1, x_u), Loop([Let(v3, w_h), Accumulate(a4, "+", v3)],
                               [Accumulator(a4, "+", Const(0.0))]),
            Set(nx, Call("mul", (s1, a4)), "node:x")], (nx,))


# ------------------------------------------------------------------ passes


FLOW_LIKE = """
node p
edge q
shared edge c
update {
    q = c * (p - nbr.p)
    p -= sum(c * (p - nbr.p))
    c += abs(c * (p - nbr.p)) - c
}
"""


def _lets(statements, op):
    return [s for s in loops.walk(statements) if isinstance(s, Let)
            and isinstance(s.value, Call) and s.value.op == op]


def test_cse_computes_a_value_once_across_fused_loops():
    """Three statements each compute c * (p - nbr.p) in their own loop; after
    fusion they share one loop, and cse leaves one product (the regression
    the architecture issue found in tests/golden/flow.c)."""
    program = pipeline(load_program(FLOW_LIKE, "t.rule"))
    block_ir = program.blocks[0]
    seen = {}
    lower_block(program, block_ir, None,
                lambda stage, value: stage == "block" or seen.setdefault(stage, show(value)),
                verify_ir=True)
    _, (lowered,) = _lowered(FLOW_LIKE)
    products = _lets(lowered.body, "mul")
    assert len(products) == 1, show(lowered.body)
    assert seen["fuse"].count("* ") >= 3 > seen["cse"].count("* ")
    assert sum(isinstance(s, Loop) for s in lowered.body) == 1


def test_cse_reads_an_array_again_after_a_store_to_it():
    v1, v2, v3 = Temp("v1"), Temp("v2"), Temp("v3")
    w = Load("edge_0_next", "h", "edge:w")
    loop = Loop([Let(v1, w), Store("edge_0_next", "h", Const(1.0), "edge:w"),
                 Let(v2, w), Let(v3, Load("edge_1", "h", "edge:q")),
                 Store("edge_1", "h", Call("add", (v1, v2)), "edge:q")])
    body = cse([loop])
    assert [s.temp for s in body[0].body if isinstance(s, Let)] == [v1, v2, v3]
    same = cse([Loop([Let(v1, w), Let(v2, w), Store("edge_1", "h", v2, "edge:q")])])
    assert [s.temp for s in same[0].body if isinstance(s, Let)] == [v1]
    assert same[0].body[-1].value is v1


def test_dce_drops_unread_values_accumulators_and_empty_loops():
    s1, v2, a3, a4 = Temp("s1"), Temp("v2"), Temp("a3"), Temp("a4")
    w = Load("edge_0", "h", "edge:w")
    body = [Let(s1, Load("node_0", "u", "node:x")),  # unread
            Loop([Let(v2, w), Accumulate(a3, "+", v2)],  # a3 unread: the loop goes
                 [Accumulator(a3, "+", Const(0.0))]),
            Loop([Accumulate(a4, "+", w)], [Accumulator(a4, "+", Const(0.0))]),
            Store("node_0", "u", a4, "node:x")]
    out = dce(body)
    assert show(out) == ("loop h in half-edges(u) [+ a4: float = 0.0f]\n"
                         "    a4 += edge_0[h]\n"
                         "node_0[u] = a4")


def test_fuse_merges_independent_loops_and_keeps_dependent_ones_apart():
    a1, a2, s3 = Temp("a1"), Temp("a2"), Temp("s3")
    w = Load("edge_0", "h", "edge:w")
    first = Loop([Accumulate(a1, "+", w)], [Accumulator(a1, "+", Const(0.0))])
    uses_first = Let(s3, Call("tanh", (a1,)))
    independent = Loop([Accumulate(a2, "+", w)], [Accumulator(a2, "+", Const(0.0))])
    dependent = Loop([Store("edge_1", "h", s3, "edge:q")])
    out = fuse([first, uses_first, independent, dependent])
    assert [type(s).__name__ for s in out] == ["Loop", "Let", "Loop"]
    assert [a.temp for a in out[0].accumulators] == [a1, a2]
    assert out[2] is dependent


def test_fuse_keeps_an_in_place_write_after_reads_of_the_slot():
    """A loop that writes w in place cannot move above a loop that reads w."""
    a1, s2 = Temp("a1"), Temp("s2")
    reads = Loop([Accumulate(a1, "+", Load("edge_0", "h", "edge:w"))],
                 [Accumulator(a1, "+", Const(0.0))])
    uses = Let(s2, Call("mul", (a1, Const(2.0))))
    writes = Loop([Store("edge_0", "h", s2, "edge:w", inplace=True)])
    assert fuse([reads, uses, writes]) == [reads, uses, writes]


def test_block_puts_values_that_cross_phases_in_arrays():
    s1, s2, a3, nx = Temp("s1"), Temp("s2"), Temp("a3"), Temp("nx_0", mutable=True)
    prologue = [Let(nx, Load("node_0", "u", "node:x"))]
    body = [Let(s1, Load("node_1", "u", "node:y")),
            Let(s2, Call("mul", (s1, Const(2.0)))),  # used in its own phase only
            Loop([Accumulate(a3, "+", Call("mul", (s2, Load("edge_0", "h", "edge:w"))))],
                 [Accumulator(a3, "+", Const(0.0))]),
            Set(nx, a3, "node:x")]
    epilogue = [Store("node_0", "u", nx, "node:x", inplace=True)]
    blocked = block(prologue, body, epilogue)
    assert [p.kind for p in blocked.phases] == ["lines", "nodes", "lines"]
    assert blocked.arrays == [nx, s2, a3]


def _expressions_of(expr):
    yield expr
    if isinstance(expr, Call):
        for arg in expr.args:
            yield from _expressions_of(arg)


@pytest.mark.parametrize("source", [*sorted(EXAMPLES.glob("*.rule")),
                                    *sorted((TESTS / "valid").glob("*.rule"))],
                         ids=lambda p: p.stem)
def test_the_loop_ir_holds_op_names_and_numbers_not_c_text(source):
    """The loop-nest IR is the C and CUDA renderers' shared input: every Call
    names an op of the language or an intrinsic, constants are numbers, and
    names are the kernel frame's or a param's, so no C spelling (`({0} *
    {1})`, `0.5f`, `rulec_tanhf`) is in it; only the renderer spells."""
    import re

    from rulec.ops import OPS

    program = pipeline(load_program(source.read_bytes(), str(source)))
    identifier = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
    for block_ir in program.blocks:
        lowered = lower_block(program, block_ir)
        statements = lowered.prologue + lowered.body + lowered.epilogue
        for stmt in loops.walk(statements):
            assert not isinstance(stmt, loops.Comment) or "{" not in stmt.text
            if isinstance(stmt, (Store, loops.Store)):
                assert identifier.match(stmt.array) and stmt.index in loops.INDEXES
                assert stmt.op in ("=", "|=")
            for temp in [getattr(stmt, "temp", None), getattr(stmt, "var", None)]:
                assert temp is None or temp.ctype in ("float", "int", "int32_t")
            for top in loops.expressions(stmt):
                for expr in _expressions_of(top):
                    if isinstance(expr, Call):
                        assert expr.op in OPS or expr.op in loops.INTRINSICS, expr.op
                    elif isinstance(expr, Const):
                        assert isinstance(expr.value, float) and expr.ctype in ("float", "int")
                    elif isinstance(expr, loops.Name):
                        assert expr.name in loops.FRAME_NAMES or \
                            re.fullmatch(r"param_\d+", expr.name), expr.name
                    elif isinstance(expr, Load):
                        assert identifier.match(expr.array) and expr.index in loops.INDEXES
                    elif isinstance(expr, loops.Draw):
                        assert expr.dist in ("uniform", "gauss") and expr.index in ("u", "h")
                    else:
                        assert isinstance(expr, Temp), expr
