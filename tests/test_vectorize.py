"""The hot loops vectorize: proven from GCC's vectorization report and the
object code, for SSE2 (the x86-64 baseline), AVX2 and AVX-512. Compiling
for an ISA needs no CPU that has it, so every target is checked here."""

from __future__ import annotations

import platform
import re
import subprocess

import pytest

from rulec.backends import toolchain
from rulec.backends.c.module import Unit
from rulec.backends.c.pipeline import c_source as c_text
from rulec.frontend import load_program
from rulec.resources import resource_dir

from .conftest import EXAMPLES, TESTS

pytestmark = pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                                reason="the ISA flags below are x86-64's")

TARGETS = {  # -march -> vector width in bytes
    "x86-64": 16,      # SSE2
    "x86-64-v3": 32,   # AVX2
    "x86-64-v4": 64,   # AVX-512
}

MATH = """
node x, y
edge w
update {
    x = sum(exp(w) + log(w) + sin(w) + cos(w) + tanh(w * nbr.x) + sigmoid(w) + gauss())
    w = tanh(w * nbr.x) + exp(-w) + log(abs(w)) + sin(w) * cos(w) + sigmoid(w + x)
}
"""


def _is_gcc() -> bool:
    try:
        command = toolchain.compiler()
    except toolchain.BuildError:
        return False
    version = subprocess.run([*command, "--version"], capture_output=True, text=True).stdout
    return "gcc" in version.lower() or "free software foundation" in version.lower()


needs_gcc = pytest.mark.skipif(not _is_gcc(), reason="reads GCC's -fopt-info report")


def compile_with_report(tmp_path, source_text: str, march: str):
    """Compile a rule's module for `march`; return (C lines, report, shared object)."""
    program = load_program(source_text, "t.rule")
    c_source = c_text([Unit(program, "t")])
    c_file = tmp_path / f"t-{march}.c"
    c_file.write_text(c_source)
    output = tmp_path / f"t-{march}.so"
    report = tmp_path / f"t-{march}.txt"
    level = [f for f in toolchain.DEFAULT_CFLAGS.split() if f.startswith("-O")]
    flags = [*level, f"-march={march}", "-fvect-cost-model=very-cheap", "-fopenmp",
             *toolchain.REQUIRED_CFLAGS]
    argv = [*toolchain.compiler(), *flags, f"-I{resource_dir('runtime')}", str(c_file),
            "-o", str(output), "-lm", f"-fopt-info-vec-optimized={report}"]
    subprocess.run(argv, check=True, capture_output=True)
    return c_source.splitlines(), report.read_text(), output


def simd_loops(lines: list[str]) -> list[tuple[int, int, bool]]:
    """(first, last, over half-edges) 1-based lines of each loop marked to
    vectorize (over a block's nodes, or over a node's half-edges), from its
    pragma to its closing brace."""
    loops = []
    for index, line in enumerate(lines):
        if line.lstrip().startswith("for (") and "RULEC_OMP_SIMD(" in lines[index - 1]:
            indent = line[: len(line) - len(line.lstrip())]
            end = next(j for j in range(index + 1, len(lines)) if lines[j] == indent + "}")
            loops.append((index, end + 1, "int64_t h = h0" in line))
    return loops


def unvectorized(lines: list[str], report: str, march: str) -> list[tuple[int, int, bool]]:
    """The half-edge loops marked `omp simd` that GCC's report does not show
    vectorized. A report is placed in the innermost marked loop holding its
    line; GCC sometimes places a loop at an inlined statement of the runtime
    (a draw), so each report from rulec_rng.h may stand for one loop not
    placed. (Loops over a block's nodes are not checked: GCC turns those that
    only copy into memcpy, which it does not report as vectorized.)"""
    width = TARGETS[march]
    pattern = rf"([^\s:]+):(\d+):\d+: optimized: loop vectorized using {width} byte vectors"
    loops = simd_loops(lines)
    placed, unplaced = set(), 0
    for path, line in re.findall(pattern, report):
        line = int(line)
        inside = [loop for loop in loops if loop[0] <= line <= loop[1]]
        if path.endswith(f"t-{march}.c") and inside:
            placed.add(max(inside))  # the innermost: it starts last
        elif path.endswith("rulec_rng.h"):
            unplaced += 1
    missing = [loop for loop in loops if loop not in placed and loop[2]]
    return missing if len(missing) > unplaced else []


@needs_gcc
@pytest.mark.parametrize("march", list(TARGETS))
@pytest.mark.parametrize("gathers", ["vector", "scalar"])
@pytest.mark.parametrize("example", ["hebbian", "flow", "diffusion", "oja", "life", "hopfield",
                                     "draws", "everything", "branches", "ops"])
def test_every_marked_half_edge_loop_vectorizes(tmp_path, monkeypatch, example, march, gathers):
    """Every half-edge loop marked `omp simd` vectorizes; with RULEC_GATHERS=vector
    that is every half-edge loop, by default every one but the gather-only ones."""
    monkeypatch.setenv("RULEC_GATHERS", gathers)
    path = EXAMPLES / f"{example}.rule"
    text = (path if path.exists() else TESTS / "valid" / f"{example}.rule").read_text()
    lines, report, _ = compile_with_report(tmp_path, text, march)
    loops = simd_loops(lines)
    every = sum("for (int64_t h = h0; h < h1; ++h)" in line for line in lines)
    scalar = sum("scalar loads: a gather-only loop" in line for line in lines)
    assert every > 0 and loops, "the example has no loop to check"
    marked = sum(over_edges for _, _, over_edges in loops)
    assert marked + scalar == every, "a half-edge loop neither marked nor chosen scalar"
    if gathers == "vector":
        assert marked == every
    missing = unvectorized(lines, report, march)
    assert not missing, (
        f"loops at lines {missing} not vectorized with {TARGETS[march]}-byte vectors:\n"
        + "\n".join(lines[first - 1] for first, _, _ in missing) + "\n" + report)


def test_the_check_fails_when_a_loop_does_not_vectorize():
    """The report reader is not vacuous: a marked loop with no report is missing."""
    lines = ["RULEC_OMP_SIMD()", "for (int64_t j = 0; j < block_n; ++j) {", "}",
             "    RULEC_OMP_SIMD(reduction(+:a1))",
             "    for (int64_t h = h0; h < h1; ++h) {", "    }"]
    report = "t-x86-64.c:2:5: optimized: loop vectorized using 16 byte vectors\n"
    assert unvectorized(lines, report, "x86-64") == [(4, 6, True)]
    report += "t-x86-64.c:5:5: optimized: loop vectorized using 16 byte vectors\n"
    assert unvectorized(lines, report, "x86-64") == []


@needs_gcc
@pytest.mark.parametrize("march,prefix", [("x86-64", "_ZGVb"), ("x86-64-v3", "_ZGVd"),
                                          ("x86-64-v4", "_ZGVe")])
def test_transcendental_functions_call_vector_math_in_the_loops(tmp_path, march, prefix):
    """Loops with vector math vectorize even when they gather (nbr.x)."""
    _, _, shared_object = compile_with_report(tmp_path, MATH, march)
    symbols = subprocess.run(["nm", "-D", "--undefined-only", str(shared_object)],
                             capture_output=True, text=True, check=True).stdout
    for function in ("expf", "logf", "sinf", "cosf", "tanhf", "log", "cos"):
        assert re.search(rf"{prefix}N\d+v_{function}\b", symbols), \
            f"no {prefix} vector variant of {function}:\n{symbols}"


def test_gather_only_loops_run_with_scalar_loads_by_default(monkeypatch):
    from rulec.backends.c.loops import Accumulate, Call, Const, Let, Load, Loop, Store, Temp
    from rulec.backends.c.render import vectorize_loop

    def loop(*statements) -> Loop:
        return Loop(list(statements))

    a1, v2 = Temp("a1"), Temp("v2")
    w, x = Load("edge_0", "h", "edge:w"), Load("node_0", "nbr[h]", "node:x")
    product = Call("mul", (w, x))
    gather_sum = loop(Let(v2, product), Accumulate(a1, "+", v2))
    monkeypatch.delenv("RULEC_GATHERS", raising=False)
    assert not vectorize_loop(gather_sum)
    assert vectorize_loop(loop(Let(v2, Call("tanh", (product,), heavy=True)),
                               Accumulate(a1, "+", v2)))
    assert vectorize_loop(loop(Store("edge_0", "h", Call("mul", (w, Const(0.5))), "edge:w")))
    assert vectorize_loop(loop(Let(v2, product), Accumulate(a1, "+", v2),
                               Store("edge_0", "h", x, "edge:w")))
    assert vectorize_loop(loop(Accumulate(a1, "+", w)))  # no gather
    monkeypatch.setenv("RULEC_GATHERS", "vector")
    assert vectorize_loop(gather_sum)
