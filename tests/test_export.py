"""`rulec export` and bring-your-own-arrays: exported C driven by a plain C
program (examples/embed/driver.c) and by C++, compared with the Python
runtime; the manifest and the ABI checks; clear errors for bad exports."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

import rulec
from rulec import graphs
from rulec.backends import toolchain
from rulec.backends.c.export import ExportError, export, manifest

from .conftest import EXAMPLES, ROOT

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="needs cc")

STEPS, SEED = 20, 7


def write_graph(path, graph: rulec.Graph) -> None:
    """The graph's edges as the driver reads them, shuffled and half reversed,
    so the C graph builder has to find the spec's orders itself."""
    rng = np.random.default_rng(0)
    edges = graph.edges[rng.permutation(graph.n_edges)].copy()
    flip = rng.random(len(edges)) < 0.5
    edges[flip] = edges[flip][:, ::-1]
    lines = [f"{graph.n_nodes} {graph.n_edges}"] + [f"{u} {v}" for u, v in edges]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    """examples/embed/driver.c built with plain cc against two exports."""
    work = tmp_path_factory.mktemp("embed")
    for name in ("hebbian", "flow"):
        program = rulec.compile_file(EXAMPLES / f"{name}.rule", backend="numpy").program
        export(program, work / name)
    binary = work / "driver"
    subprocess.run(
        ["cc", "-std=c99", "-O2", "-fopenmp-simd", f"-I{work / 'hebbian'}", f"-I{work / 'flow'}",
         str(ROOT / "examples/embed/driver.c"), str(work / "hebbian/hebbian.c"),
         str(work / "flow/flow.c"), "-lm", "-o", str(binary)],
        check=True, capture_output=True)
    return work, binary


def run_driver(work, binary, graph, steps):
    graph_file = work / "graph.txt"
    write_graph(graph_file, graph)
    out = work / f"out-{steps}"
    out.mkdir(exist_ok=True)
    result = subprocess.run([str(binary), str(graph_file), str(steps), str(SEED), str(out)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return out


def c_slot(out, rule, kind, name):
    return np.fromfile(out / f"{rule}.{kind}.{name}.f32", dtype=np.float32)


@pytest.mark.parametrize("rule_name", ["hebbian", "flow"])
def test_exported_rules_driven_from_c_match_the_python_runtime(driver, rule_name):
    work, binary = driver
    graph = graphs.erdos_renyi(60, 0.1, seed=3)
    out = run_driver(work, binary, graph, STEPS)
    rule = rulec.compile_file(EXAMPLES / f"{rule_name}.rule")
    state = rule.state(graph)
    rule.init(state, seed=SEED)
    rule.step(state, steps=STEPS)
    assert int((out / f"{rule_name}.time").read_text()) == state.time == STEPS
    for kind, name, array in state.slots():
        np.testing.assert_allclose(c_slot(out, rule_name, kind, name), array, rtol=1e-5,
                                   atol=1e-6, err_msg=f"{rule_name} {kind} {name}")


def test_uniform_draws_of_exported_c_are_bit_identical(driver):
    work, binary = driver
    graph = graphs.erdos_renyi(60, 0.1, seed=3)
    out = run_driver(work, binary, graph, 0)  # flow's init: p = uniform()
    rule = rulec.compile_file(EXAMPLES / "flow.rule")
    state = rule.state(graph)
    rule.init(state, seed=SEED)
    np.testing.assert_array_equal(c_slot(out, "flow", "node", "p"), state.node["p"])
    np.testing.assert_array_equal(c_slot(out, "flow", "shared", "c"), state.edge["c"])


def test_the_driver_refuses_a_library_whose_layout_differs_from_its_header(driver, tmp_path):
    work, _ = driver
    changed = (EXAMPLES / "hebbian.rule").read_text().replace("node x", "node x, extra")
    program = rulec.compile(changed, backend="numpy").program
    export(program, tmp_path / "changed", prefix="hebbian")
    old = json.loads((work / "hebbian/hebbian.json").read_text())
    new = json.loads((tmp_path / "changed/hebbian.json").read_text())
    assert old["layout_hash"] != new["layout_hash"]
    assert [s["name"] for s in new["slots"]] == ["x", "extra", "w"]
    binary = tmp_path / "driver"
    subprocess.run(  # the old header, the changed library
        ["cc", "-std=c99", "-O2", "-fopenmp-simd", f"-I{work / 'hebbian'}",
         f"-I{work / 'flow'}", str(ROOT / "examples/embed/driver.c"),
         str(tmp_path / "changed/hebbian.c"), str(work / "flow/flow.c"), "-lm", "-o",
         str(binary)], check=True, capture_output=True)
    graph_file = tmp_path / "graph.txt"
    write_graph(graph_file, graphs.ring(5))
    result = subprocess.run([str(binary), str(graph_file), "1", "1", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "does not match its header" in result.stderr


def test_the_c_graph_builder_reports_bad_edges(driver, tmp_path):
    _, binary = driver
    for text, message in [("3 2\n0 1\n1 0\n", "given twice"), ("3 1\n2 2\n", "self-loop"),
                          ("3 1\n0 5\n", "outside")]:
        path = tmp_path / "bad.txt"
        path.write_text(text)
        result = subprocess.run([str(binary), str(path), "1", "1", str(tmp_path)],
                                capture_output=True, text=True)
        assert result.returncode == 1 and message in result.stderr, result.stderr


@pytest.mark.skipif(shutil.which("c++") is None, reason="needs c++")
def test_a_cpp_program_includes_the_header_and_builds_with_cpp(driver, tmp_path):
    work, _ = driver
    objects = tmp_path / "hebbian.o"
    subprocess.run(["cc", "-std=c99", "-O2", "-fopenmp-simd", "-c",
                    str(work / "hebbian/hebbian.c"), "-o", str(objects)], check=True)
    binary = tmp_path / "check"
    subprocess.run(["c++", "-std=c++11", "-O2", "-Wall", "-Wextra", "-Werror",
                    f"-I{work / 'hebbian'}", str(ROOT / "examples/embed/check.cpp"),
                    str(objects), "-lm", "-o", str(binary)], check=True)
    result = subprocess.run([str(binary)], capture_output=True, text=True)
    assert result.returncode == 0 and "steps 1 time 1" in result.stdout


def test_the_makefile_builds_static_and_shared_libraries(driver, tmp_path):
    if shutil.which("make") is None:
        pytest.skip("needs make")
    work, _ = driver
    target = tmp_path / "lib"
    shutil.copytree(work / "hebbian", target)
    subprocess.run(["make", "-s"], cwd=target, check=True, capture_output=True)
    assert (target / "libhebbian.a").exists() and (target / "libhebbian.so").exists()


def test_an_export_has_no_python_and_no_path_of_this_machine(driver):
    work, _ = driver
    for path in (work / "hebbian").iterdir():
        text = path.read_text()
        assert "Python.h" not in text and "cffi" not in text
        assert str(ROOT) not in text and str(work) not in text


def test_manifest_describes_slots_params_and_blocks():
    program = rulec.compile_file(EXAMPLES / "flow.rule", backend="numpy").program
    data = manifest(program, "flow")
    assert data["abi_version"] == 1
    assert [(s["name"], s["kind"], s["length"]) for s in data["slots"]] == [
        ("p", "node", "N"), ("imbalance", "node", "N"), ("q", "edge", "2M"), ("c", "shared", "M")]
    assert data["params"] == [{"name": "rate", "default": pytest.approx(0.05), "index": 0},
                              {"name": "adapt", "default": pytest.approx(0.1), "index": 1}]
    assert [b["function"] for b in data["blocks"]] == ["flow_init", "flow_step_update"]


def test_bad_prefix_and_unwritable_directory_are_clear_errors(tmp_path, run_cli):
    program = rulec.compile_file(EXAMPLES / "flow.rule", backend="numpy").program
    with pytest.raises(ExportError, match="not a C identifier"):
        export(program, tmp_path, prefix="my-rule")
    with pytest.raises(ExportError, match="reserved"):
        export(program, tmp_path, prefix="int")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ExportError, match="cannot write"):
        export(program, blocker / "sub")
    result = run_cli("export", EXAMPLES / "flow.rule", "-o", tmp_path / "x", "--prefix", "9lives")
    assert result.returncode == 1 and "not a C identifier" in result.stderr
    assert "Traceback" not in result.stderr
    named = tmp_path / "n.rule"
    named.write_text("rule my_rule\nnode x\nupdate { x = 1 }\n")
    assert run_cli("export", named, "-o", tmp_path / "y").returncode == 0
    assert (tmp_path / "y/my_rule.h").exists()


def test_a_graph_from_the_callers_csr_equals_the_edge_list_graph():
    graph = graphs.erdos_renyi(40, 0.2, seed=5)
    again = rulec.Graph.from_csr(graph.row_ptr.copy(), graph.nbr.copy())
    for name in ("row_ptr", "nbr", "rev", "eid", "edges"):
        np.testing.assert_array_equal(getattr(again, name), getattr(graph, name))


@pytest.mark.parametrize("row_ptr,nbr,message", [
    ([0, 1, 1], [1], "not symmetric"),
    ([0, 2, 3, 4], [2, 1, 0, 0], "not strictly increasing"),
    ([0, 1, 2], [0, 0], "self-loop"),
    ([0, 1, 2], [5, 0], "outside"),
    ([1, 2], [0], "start at 0"),
    ([0.0, 1.0], [0], "integer"),
])
def test_bad_csr_arrays_are_rejected(row_ptr, nbr, message):
    with pytest.raises(rulec.GraphError, match=message):
        rulec.Graph.from_csr(np.array(row_ptr), np.array(nbr))


def test_a_state_on_the_callers_arrays_is_stepped_in_place():
    rule = rulec.compile_file(EXAMPLES / "diffusion.rule")
    graph = graphs.ring(8)
    x = np.zeros(8, dtype=np.float32)
    x[0] = 1
    state = rule.state(graph, arrays={"x": x})
    assert state.node["x"] is x
    reference = rulec.compile_file(EXAMPLES / "diffusion.rule", backend="numpy")
    expected = reference.state(graph)
    expected.node["x"] = x
    for steps in (1, 2, 3):  # odd and even counts (double-buffered slot)
        rule.step(state, steps=steps)
        reference.step(expected, steps=steps)
        np.testing.assert_allclose(x, expected.node["x"], rtol=1e-6)


@pytest.mark.parametrize("array,message", [
    (np.zeros(8), "float32"),
    (np.zeros(9, dtype=np.float32), "shape"),
    (np.zeros(16, dtype=np.float32)[::2], "contiguous"),
    ([0.0] * 8, "NumPy array"),
])
def test_a_callers_array_that_cannot_be_a_slot_is_refused(array, message):
    rule = rulec.compile_file(EXAMPLES / "diffusion.rule")
    with pytest.raises(rulec.StateError, match=message):
        rule.state(graphs.ring(8), arrays={"x": array})
    frozen = np.zeros(8, dtype=np.float32)
    frozen.flags.writeable = False
    with pytest.raises(rulec.StateError, match="read-only"):
        rule.state(graphs.ring(8), arrays={"x": frozen})
    with pytest.raises(rulec.StateError, match="no slot 'y'"):
        rule.state(graphs.ring(8), arrays={"y": np.zeros(8, dtype=np.float32)})


def test_export_uses_the_jit_c(tmp_path):
    """The exported kernels are the JIT's, renamed and made static."""
    program = rulec.compile_file(EXAMPLES / "hebbian.rule", backend="numpy").program
    export(program, tmp_path)
    text = (tmp_path / "hebbian.c").read_text()
    assert "static int64_t hebbian_block1(" in text
    assert toolchain.REQUIRED_CFLAGS  # the Makefile carries the same required flags:
    makefile = (tmp_path / "Makefile").read_text()
    assert "-fno-math-errno -ffp-contract=off" in makefile


# ----------------------------------------- strict builds and names (regressions)

STRICT = {
    "c99": ["cc", "-x", "c", "-std=c99", "-pedantic"],
    "c99-openmp": ["cc", "-x", "c", "-std=c99", "-pedantic", "-fopenmp"],
    "c++17": ["c++", "-x", "c++", "-std=c++17"],
    "c++17-openmp": ["c++", "-x", "c++", "-std=c++17", "-fopenmp"],
}


@pytest.mark.parametrize("rule_file", ["examples/flow.rule", "examples/backprop.rule",
                                       "tests/valid/ops.rule", "tests/valid/branches.rule",
                                       "tests/valid/hygiene.rule"])
def test_the_export_builds_warning_free_with_strict_flags(tmp_path, rule_file):
    """Regression: `#pragma omp simd` failed -Werror=unknown-pragmas without
    -fopenmp. The .c builds as C99 and as C++17, with and without OpenMP."""
    program = rulec.compile_file(ROOT / rule_file, backend="numpy").program
    export(program, tmp_path, "pkg")
    for name, command in STRICT.items():
        if shutil.which(command[0]) is None:
            continue
        argv = [*command, "-O2", "-Wall", "-Wextra", "-Werror", "-c", "pkg.c",
                "-o", f"pkg-{name}.o"]
        result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0, f"{name}: {' '.join(argv)}\n{result.stderr[:3000]}"


@pytest.mark.parametrize("prefix", ["RULEC_ABI", "RULEC_MATH", "Rulec", "rulec", "_x"])
def test_prefixes_in_rulecs_namespace_are_refused(tmp_path, prefix):
    """Regression: --prefix RULEC_ABI exported a package whose header guard
    collided with rulec_abi.h's."""
    program = rulec.compile("node x\nupdate { x += 1 }", backend="numpy").program
    with pytest.raises(ExportError, match="reserved"):
        export(program, tmp_path, prefix)


def test_exported_files_follow_the_umask(tmp_path):
    """Regression: every file rulec wrote was 0600 whatever the umask."""
    import os

    program = rulec.compile("node x\nupdate { x += 1 }", backend="numpy").program
    old = os.umask(0o022)
    try:
        written = export(program, tmp_path / "out", "pkg")
    finally:
        os.umask(old)
    assert {oct(path.stat().st_mode & 0o777) for path in written} == {oct(0o644)}


def test_rule_comments_of_any_text_keep_the_export_warning_free(tmp_path):
    """Rule lines are copied into C comments: `/*`, `*/`, U+2028 (a line
    break to Python) and control characters stay inside the comment."""
    source = ("rule odd\nnode x\nupdate {\n"
              "    x = x + 1  # a /* nested */ comment */ and /*\n"
              "    x *= 2  # a line\u2028separator, a tab\tand a \\ backslash\n"
              "}\n")
    program = rulec.compile(source, backend="numpy").program
    export(program, tmp_path, "pkg", source=source)
    text = (tmp_path / "pkg.c").read_text()
    assert "line 4: x = x + 1" in text and "line 5: x *= 2" in text
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler")
    argv = [compiler, "-x", "c", "-std=c99", "-pedantic", "-O1", "-Wall", "-Wextra", "-Werror",
            "-c", "pkg.c", "-o", "pkg.o"]
    result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[:3000]
