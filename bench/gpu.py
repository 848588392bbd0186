"""rulec's CUDA kernels beside the alternatives on the same GPU, in one run.

    python bench/gpu.py                       # 2^20 .. 2^26 half-edges (needs a GPU)
    python bench/gpu.py --powers 20,22        # fewer sizes
    python bench/gpu.py --dry-run             # the whole script, tiny, on backend cuda-cpu

On locality graphs (bench/kernels.py's local_graph), two steps:

    fused   x = tanh(sum(w * nbr.x)); w += lr * (x * nbr.x - decay * w)
    reduce  x = tanh(sum(w * nbr.x))

run by:
- rulec cuda: the time per step on the device, measured as the difference
  between K2 and K1 steps in one call, so the upload and download of the state
  (once per call) cancel; and the time per call of K2 steps with them;
- rulec C, with 1 thread and with every core;
- PyTorch on the GPU, eager and torch.compile (index_add_ over the CSR owner
  of each half-edge), where PyTorch is installed;
- the device's copy bandwidth (a 1 GiB device-to-device copy, CuPy).

Then XOR-sized networks: B copies of layered:2,4,1 as one graph, a step of
examples/backprop.rule's update block, in node-steps per second.

Before timing a graph, 3 steps of the CUDA kernels are checked against the
C kernels on the same state; a disagreement stops the run. Prints a table
for docs/performance.md with the device's name. Nothing here has been run
on a GPU yet (docs/cuda.md); numbers go in the docs only when this has run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from kernels import DECAY, FUSED, LR, REDUCE, local_graph  # noqa: E402

import rulec  # noqa: E402
from rulec import graphs  # noqa: E402


def median_time(run, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def synchronize(backend: str) -> None:
    if backend == "cuda":
        import cupy

        cupy.cuda.runtime.deviceSynchronize()


def rulec_rows(source: str, graph, backend: str, k1: int, k2: int) -> list[tuple[str, float]]:
    """(label, seconds per step) for rulec on `backend`."""
    rule = rulec.compile(source, backend=backend)
    state = rule.state(graph)
    rng = np.random.default_rng(0)
    state.node["x"] = rng.normal(size=graph.n_nodes).astype(np.float32)
    state.edge["w"] = rng.normal(scale=0.1, size=graph.n_half_edges).astype(np.float32)
    rows = []
    if backend in ("cuda", "cuda-cpu"):
        def steps(k):
            def run():
                rule.step(state, steps=k)
                synchronize(backend)
            return run

        steps(1)()  # compile, upload the graph
        one, two = median_time(steps(k1)), median_time(steps(k2))
        rows.append((f"rulec {backend} (on device)", (two - one) / (k2 - k1)))
        rows.append((f"rulec {backend} (per call, {k2} steps, with copies)", two / k2))
    else:
        for threads in sorted({1, os.cpu_count() or 1}):
            rule.step(state, steps=1, threads=threads)
            seconds = median_time(lambda t=threads: rule.step(state, steps=k1, threads=t), 3)
            rows.append((f"rulec c ({threads} thread{'s' if threads > 1 else ''})",
                         seconds / k1))
    return rows


def agrees(source: str, graph, backend: str) -> str:
    """Before timing anything: 3 steps of `backend` against the C kernels on
    the same state (a benchmark of wrong results is no benchmark). Returns
    'ok' or what differs."""
    rules = {name: rulec.compile(source, backend=name) for name in (backend, "c")}
    rng = np.random.default_rng(1)
    x = rng.normal(size=graph.n_nodes).astype(np.float32)
    w = rng.normal(scale=0.1, size=graph.n_half_edges).astype(np.float32)
    states = {}
    for name, rule in rules.items():
        state = rule.state(graph)
        state.node["x"], state.edge["w"] = x, w
        rule.step(state, steps=3)
        states[name] = state
    for slot in ("x", "w"):
        got = states[backend].node[slot] if slot == "x" else states[backend].edge[slot]
        want = states["c"].node[slot] if slot == "x" else states["c"].edge[slot]
        if not np.allclose(got, want, rtol=1e-4, atol=1e-5):
            worst = int(np.argmax(np.abs(got - want)))
            return f"{slot}[{worst}]: {backend} {got[worst]!r}, c {want[worst]!r}"
    return "ok"


def torch_rows(graph, fused: bool, steps: int) -> list[tuple[str, float]]:
    try:
        import torch
    except ImportError:
        return [("PyTorch (not installed)", float("nan"))]
    if not torch.cuda.is_available():
        return [("PyTorch (no CUDA device)", float("nan"))]
    device = "cuda"
    nbr = torch.as_tensor(graph.nbr.astype(np.int64), device=device)
    owner = torch.as_tensor(np.repeat(np.arange(graph.n_nodes), np.diff(graph.row_ptr)),
                            device=device)
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.normal(size=graph.n_nodes).astype(np.float32), device=device)
    w = torch.as_tensor(rng.normal(scale=0.1, size=graph.n_half_edges).astype(np.float32),
                        device=device)

    def step(x, w):
        gathered = x[nbr]
        acc = torch.zeros_like(x).index_add_(0, owner, w * gathered)
        if fused:
            w = w + float(LR) * (x[owner] * gathered - float(DECAY) * w)
        return torch.tanh(acc), w

    rows = []
    for label, function in (("PyTorch eager", step), ("torch.compile", torch.compile(step))):
        state = [x.clone(), w.clone()]

        def run(function=function, state=state):
            for _ in range(steps):
                state[0], state[1] = function(state[0], state[1])
            torch.cuda.synchronize()

        run()  # warm up (and compile)
        rows.append((label, median_time(run) / steps))
    return rows


def copy_bandwidth() -> float:
    """Device-to-device copy, bytes moved (read + write) per second."""
    import cupy

    a = cupy.empty(2**28, dtype=cupy.float32)
    b = cupy.ones_like(a)

    def run():
        for _ in range(10):
            a[...] = b
        cupy.cuda.runtime.deviceSynchronize()

    run()
    return 10 * 2 * a.nbytes / median_time(run)


def batched_xor(backend: str, copies: int, steps: int) -> tuple[int, float]:
    """(nodes, node-steps per second) for `copies` disjoint layered:2,4,1."""
    one = graphs.layered([2, 4, 1])
    edges = np.concatenate([one.edges.astype(np.int64) + k * one.n_nodes
                            for k in range(copies)])
    graph = rulec.Graph.from_edges(copies * one.n_nodes, edges)
    rule = rulec.compile_file(str(HERE.parent / "examples" / "backprop.rule"), backend=backend)
    state = rule.state(graph)
    rule.init(state, seed=1)
    rule.step(state, steps=1)
    synchronize(backend)

    def run():
        rule.step(state, steps=steps)
        synchronize(backend)

    return graph.n_nodes, graph.n_nodes * steps / median_time(run, 3)


def device_name(backend: str) -> str:
    if backend == "cuda":
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        return props["name"].decode()
    return f"no GPU: backend cuda-cpu on {platform.processor() or platform.machine()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--powers", default="20,22,24,26",
                        help="graph sizes as powers of two of half-edges (20,22,24,26)")
    parser.add_argument("--dry-run", action="store_true",
                        help="run everything tiny on backend cuda-cpu (checks the script)")
    args = parser.parse_args()
    backend = "cuda-cpu" if args.dry_run else "cuda"
    powers = [12] if args.dry_run else [int(p) for p in args.powers.split(",")]
    k1, k2 = (2, 4) if args.dry_run else (20, 120)
    print(f"device: {device_name(backend)}")
    if backend == "cuda":
        print(f"copy bandwidth (device to device, read + write): {copy_bandwidth() / 1e9:.0f} GB/s")
    print()
    print(f"{'graph':<12} {'step':<7} {'implementation':<50} {'ms/step':>9} {'G he/s':>8}")
    for power in powers:
        graph = local_graph(2**power, seed=1)
        for kind, source in (("fused", FUSED), ("reduce", REDUCE)):
            check = agrees(source, graph, backend)
            if check != "ok":
                sys.exit(f"2^{power} {kind}: rulec {backend} disagrees with the C kernels "
                         f"({check}); not timing it")
            rows = rulec_rows(source, graph, backend, k1, k2)
            if not args.dry_run:
                rows += rulec_rows(source, graph, "c", 3, 3)
                rows += torch_rows(graph, kind == "fused", k2)
            for label, seconds in rows:
                rate = graph.n_half_edges / seconds / 1e9 if seconds == seconds else float("nan")
                print(f"2^{power:<10} {kind:<7} {label:<50} {seconds * 1e3:>9.3f} {rate:>8.2f}",
                      flush=True)
    print()
    for copies in ([4] if args.dry_run else [1024, 65536, 1048576]):
        nodes, rate = batched_xor(backend, copies, 2 if args.dry_run else 100)
        print(f"batched XOR networks: {copies} copies ({nodes} nodes): "
              f"{rate / 1e9:.3f} G node-steps/s", flush=True)


if __name__ == "__main__":
    main()
