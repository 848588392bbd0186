"""The CUDA backend, verified without a GPU (docs/cuda.md, "How it is tested"):

1. the generated CUDA source of every example and valid test rule compiles
   with nvcc for sm_90 and with NVRTC (the compiler the backend uses);
2. the same kernel text, compiled for the CPU (backend 'cuda-cpu'), agrees
   with the reference interpreter: every example and valid rule on graphs
   with hubs, isolated nodes and no edges, with every group size from 1 lane
   to a warp, random rules from the fuzzer, check_finite and double buffers
   (tests/test_differential.py also runs all its cases on 'cuda-cpu');
3. on a machine with a GPU and CuPy, the same comparisons on the device
   (skipped elsewhere, with the reason).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

import rulec
from rulec import graphs
from rulec.backends.c.module import units_of
from rulec.backends.cuda import nvrtc
from rulec.backends.cuda.host import lane_bins, lanes_for
from rulec.backends.cuda.render import cuda_module
from rulec.frontend import load_program
from rulec.resources import resource_dir

from .conftest import EXAMPLES
from .test_differential import GRAPHS, RULES, assert_same, check_block, random_state


@pytest.fixture(scope="module")
def module():
    programs = [load_program(path.read_bytes(), str(path)) for path in RULES]
    units, _ = units_of(programs, [path.read_text() for path in RULES])
    return cuda_module(units)


def test_emit_prints_one_kernel_per_block(run_cli):
    result = run_cli("emit", "--backend", "cuda", EXAMPLES / "diffusion.rule")
    assert result.returncode == 0, result.stderr
    kernels = re.findall(r"RULEC_KERNEL (\w+)\(", result.stdout)
    assert kernels == ["diffusion_block0", "diffusion_block1", "diffusion_block2"]
    assert '#include "rulec_cuda.h"' in result.stdout
    assert "rulec_group_sumf(" in result.stdout  # the sum over neighbours, across lanes


def test_nvcc_compiles_every_rule_for_hopper(module, tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed (CI has it: the CUDA toolkit without a GPU)")
    source = tmp_path / "rules.cu"
    source.write_text(module.source)
    result = subprocess.run(
        [nvcc, "-arch=sm_90", "-cubin", "--fmad=false", "-Werror", "all-warnings",
         f"-I{resource_dir('runtime')}", str(source), "-o", str(tmp_path / "rules.cubin")],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    symbols = (tmp_path / "rules.cubin").read_bytes()
    for kernel in module.kernels.values():
        assert kernel.name.encode() in symbols


def test_nvrtc_compiles_every_rule(module):
    if not nvrtc.available():
        pytest.skip("NVRTC is not installed (pip install nvidia-cuda-nvrtc; the test "
                    "extra does)")
    ptx = nvrtc.compile_ptx(module.source).decode()
    entries = set(re.findall(r"\.entry (\w+)\(", ptx))
    assert {k.name for k in module.kernels.values()} | {"rulec_cuda_settle",
                                                        "rulec_cuda_finite"} <= entries
    cubin = nvrtc.compile_cubin(module.source)  # what the backend loads
    assert cubin[:4] == b"\x7fELF" and all(k.name.encode() in cubin
                                            for k in module.kernels.values())


def test_nvrtc_reports_a_broken_module_with_its_log():
    if not nvrtc.available():
        pytest.skip("NVRTC is not installed")
    with pytest.raises(nvrtc.NvrtcError, match="a bug in rulec.*\n.*undefined"):
        nvrtc.compile_ptx('#include "rulec_cuda.h"\nRULEC_KERNEL k(int *x) { *x = nope; }')


def test_the_cubin_is_cached_by_content(monkeypatch, tmp_path):
    if not nvrtc.available():
        pytest.skip("NVRTC is not installed")
    monkeypatch.setenv("RULEC_CACHE_DIR", str(tmp_path))
    text = '#include "rulec_cuda.h"\nRULEC_KERNEL k(float *x) { x[0] = rulec_tanhf(x[0]); }'
    first = nvrtc.cached_cubin(text)
    assert first.parent == tmp_path / "cuda" and first.read_bytes()[:4] == b"\x7fELF"
    first.write_bytes(b"kept")  # a hit reads nothing new
    assert nvrtc.cached_cubin(text).read_bytes() == b"kept"
    assert nvrtc.cached_cubin(text + "\n") != first
    assert nvrtc.cached_cubin(text, arch="sm_80") != first


# ---------------------------------------------------------- lane groups


def test_lanes_grow_with_degree_up_to_a_warp():
    assert [lanes_for(d) for d in (0, 1, 2, 3, 5, 8, 9, 31, 32, 33, 1000)] == \
        [1, 1, 2, 4, 8, 8, 16, 32, 32, 32, 32]
    graph = GRAPHS["hub"]
    bins = dict(lane_bins(graph))
    assert list(bins[32]) == [0]  # the degree-1000 hub gets a warp
    assert sorted(np.concatenate(list(bins.values()))) == list(range(graph.n_nodes))


def test_a_bad_lane_count_is_refused_with_the_choices(monkeypatch):
    monkeypatch.setenv("RULEC_CUDA_LANES", "3")
    rule = rulec.compile("node x\nupdate { x = sum(nbr.x) }", backend="cuda-cpu")
    with pytest.raises(rulec.RulecError, match="one of 1, 2, 4, 8, 16, 32"):
        rule.step(rule.state(graphs.ring(4)))


@pytest.fixture(scope="module")
def on_cpu():
    programs = [load_program(path.read_bytes(), str(path)) for path in RULES]
    return {path.stem: (rule, rulec.Rule(rule.program, "numpy"))
            for path, rule in zip(RULES, rulec.compile_many(programs, backend="cuda-cpu"),
                                  strict=True)}


@pytest.mark.parametrize("lanes", ["1", "2", "8", "32"])
def test_every_group_size_matches_the_reference(on_cpu, monkeypatch, lanes):
    """Every rule, every block, with every node given `lanes` lanes: a lane
    with no half-edge, partial sums over strided half-edges, the butterfly
    over a warp."""
    monkeypatch.setenv("RULEC_CUDA_LANES", lanes)
    for name, (rule, reference) in on_cpu.items():
        for graph_name in ("hub", "isolated", "layered"):
            graph = GRAPHS[graph_name]
            for label in rule.blocks:
                check_block(rule, reference, graph, label,
                            f"{name} on {graph_name}, {lanes} lanes", init_seed=5)


def test_many_steps_with_double_buffers_and_shared_slots(on_cpu):
    """flow writes a shared slot (proposals, settled after each step); odd and
    even step counts leave each double buffer in the user's array."""
    for name, steps in (("flow", 7), ("diffusion", 8), ("diffusion", 9)):
        rule, reference = on_cpu[name]
        graph = graphs.erdos_renyi(60, 0.1, seed=4)
        state = rule.state(graph)
        rule.init(state, seed=3)
        expected = state.copy()
        arrays = [array for _, _, array in state.slots()]
        rule.step(state, steps=steps)
        reference.step(expected, steps=steps)
        assert all(a is b for a, (_, _, b) in zip(arrays, state.slots(), strict=True))
        assert_same(state, expected, f"{name} after {steps} steps")


def test_check_finite_stops_at_the_first_non_finite_step_on_the_device_flag():
    rule = rulec.compile("node x\nnode y\nupdate { x = x * 10\n y = sum(nbr.x) }",
                         backend="cuda-cpu")
    state = rule.state(graphs.ring(3))
    state.node["x"] = 1e30
    with pytest.raises(rulec.NonFiniteError) as caught:
        rule.step(state, steps=100, check_finite=True)
    assert caught.value.step == 9
    assert state.time == 9
    np.testing.assert_array_equal(state.node["x"], np.float32(np.inf))


def test_random_rules_match_the_reference():
    from rulec import fuzz

    report = fuzz.fuzz(40, seed=11, backends=("cuda-cpu",))
    assert report.rules == 40
    assert report.mismatches == report.crashes == report.rejected == 0, report.failures[:2]


# ------------------------------------------------------- batched copies


def test_batched_copies_match_separate_runs_of_the_reference(on_cpu):
    """B states of one graph in the same launches, each with its own seed,
    params and values, against each stepped alone by the reference: draws
    are the copy's own (uniform() bit-identical), and double buffers and
    shared slots stay per copy."""
    graph = graphs.erdos_renyi(30, 0.2, seed=8)
    for name in ("diffusion", "flow", "hebbian", "draws", "everything"):
        rule, reference = on_cpu[name]
        states = [random_state(rule, graph, seed=copy, specials=False) for copy in range(5)]
        for state in states:
            state.time = 3
        expected = [state.copy() for state in states]
        params = [{key: value * (1 + copy) for key, value in rule.params.items()}
                  for copy in range(5)]
        seeds = [11 * copy + 1 for copy in range(5)]
        rule.init_many(states, seeds, params)
        for state, seed, given in zip(expected, seeds, params, strict=True):
            reference.init(state, seed=seed, params=given)
        for state, given in zip(expected, params, strict=True):
            reference.step(state, steps=3, params=given)
        assert rule.step_many(states, steps=3, params=params) == [3] * 5
        for copy, (got, want) in enumerate(zip(states, expected, strict=True)):
            assert_same(got, want, f"{name}, copy {copy} of a batch of 5")


def test_check_finite_stops_each_copy_at_its_own_step():
    rule = rulec.compile("node x\nupdate { x = x * 10 }", backend="cuda-cpu")
    graph = graphs.ring(3)
    states = [rule.state(graph) for _ in range(3)]
    for state, start in zip(states, (1e30, 1.0, 1e35), strict=True):
        state.node["x"] = start
    assert rule.step_many(states, steps=20, check_finite=True) == [9, 20, 4]
    assert [state.time for state in states] == [9, 20, 4]
    np.testing.assert_array_equal(states[1].node["x"], np.float32(1e20))


def test_a_batch_with_two_times_is_refused():
    rule = rulec.compile("node x\nupdate { x = x + 1 }", backend="cuda-cpu")
    states = [rule.state(graphs.ring(3)) for _ in range(2)]
    states[1].time = 5
    with pytest.raises(rulec.RulecError, match="one graph and one time"):
        rule.step_many(states)


def test_step_many_on_a_backend_without_batches_steps_each_state():
    rule = rulec.compile("node x\nupdate { x = x + sum(nbr.x) }", backend="c")
    graph = graphs.ring(4)
    states = [rule.state(graph) for _ in range(3)]
    for value, state in enumerate(states):
        state.node["x"] = value
    assert rule.step_many(states, steps=2) == [2, 2, 2]
    assert [float(state.node["x"][0]) for state in states] == [0.0, 9.0, 18.0]


# ------------------------------------------------------------- devices


def test_a_state_moves_between_devices_by_name():
    rule = rulec.compile("node x\nupdate { x = x + 1 }", backend="numpy")
    state = rule.state(graphs.ring(3))
    assert state.device == "cpu" and state.to("cpu") is state
    with pytest.raises(rulec.RulecError, match="no device 'gpu'.*cpu, cuda"):
        state.to("gpu")
    try:
        import cupy  # noqa: F401
    except ImportError:
        with pytest.raises(rulec.RulecError, match=r"pip install 'rulec\[cuda\]'"):
            state.to("cuda")


def test_a_state_on_another_device_than_the_backend_is_refused_with_the_move():
    rule = rulec.compile("node x\nupdate { x = x + 1 }", backend="c")
    state = rule.state(graphs.ring(3))
    state.device = "cuda"  # as state.to('cuda') marks it
    with pytest.raises(rulec.RulecError, match=r"on cuda but .* c backend.*state.to\('cpu'\)"):
        rule.step(state)


# --------------------------------------------------------------- the GPU


def _gpu_or_skip():
    try:
        import cupy
    except ImportError:
        pytest.skip("no CuPy: the GPU tests need pip install '.[cuda]' and an NVIDIA GPU")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as exc:
        pytest.skip(f"no usable CUDA device ({exc})")
    if count < 1:
        pytest.skip("no CUDA device")


def test_without_cupy_the_cuda_backend_says_what_to_install():
    try:
        import cupy  # noqa: F401
    except ImportError:
        with pytest.raises(rulec.RulecError, match=r"pip install 'rulec\[cuda\]'"):
            rulec.compile("node x\nupdate { x = 1 }", backend="cuda")
    else:
        pytest.skip("CuPy is installed here")


@pytest.mark.parametrize("graph_name", list(GRAPHS))
def test_on_the_gpu_every_block_matches_the_reference(graph_name):
    _gpu_or_skip()
    programs = [load_program(path.read_bytes(), str(path)) for path in RULES]
    for path, rule in zip(RULES, rulec.compile_many(programs, backend="cuda"), strict=True):
        reference = rulec.Rule(rule.program, "numpy")
        for label in rule.blocks:
            check_block(rule, reference, GRAPHS[graph_name], label,
                        f"{path.stem} on {graph_name} (GPU)")


def test_on_the_gpu_random_rules_match_the_reference():
    _gpu_or_skip()
    from rulec import fuzz

    report = fuzz.fuzz(int(os.environ.get("RULEC_GPU_FUZZ", "40")), seed=11,
                       backends=("cuda",))
    assert report.mismatches == report.crashes == 0, report.failures[:2]


def test_on_the_gpu_a_state_stays_on_the_device_and_shares_through_dlpack():
    _gpu_or_skip()
    import cupy

    source = (EXAMPLES / "hebbian.rule").read_text()
    rule, reference = rulec.compile(source, backend="cuda"), rulec.compile(source, "numpy")
    graph = graphs.erdos_renyi(200, 0.05, seed=3)
    state = rule.state(graph)
    reference.init(state, seed=4)
    expected = state.copy()
    on_gpu = state.to("cuda")
    assert on_gpu.device == "cuda" and isinstance(on_gpu.node["x"], cupy.ndarray)
    array = on_gpu.edge["w"]
    rule.step(on_gpu, steps=25)
    reference.step(expected, steps=25)
    assert on_gpu.edge["w"] is array  # stepped in place on the device
    assert_same(on_gpu.to("cpu"), expected, "hebbian, 25 steps on the device")
    try:
        import torch
    except ImportError:
        return
    tensor = torch.from_dlpack(on_gpu.node["x"])  # no copy
    tensor += 1
    np.testing.assert_allclose(on_gpu.to("cpu").node["x"], expected.node["x"] + 1, rtol=1e-4,
                               atol=1e-5)
