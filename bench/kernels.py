"""rulec's C kernels beside what a user would otherwise write, in one run.

    python bench/kernels.py                  # 2^16 .. 2^24 half-edges (a few minutes)
    python bench/kernels.py --quick          # 2^16 and 2^20 only

Two steps, single thread, on the same graph in two node orders (random, and
reverse Cuthill-McKee):

    fused   x = tanh(sum(w * nbr.x)); w += lr * (x * nbr.x - decay * w)
    reduce  x = tanh(sum(w * nbr.x))

each run by: rulec's C kernel; the same step hand-written in C
(bench/handwritten.c, built with rulec's compiler and flags); the best NumPy
formulation (np.add.reduceat; scipy's CSR matvec for reduce); Numba @njit
over the CSR (plain, and fastmath=True); and the reference interpreter. The
STREAM triad (a = b + s*c over 3 x 128 MB, built the same way) measured in
the same process gives the bandwidth that bounds a memory-bound step.

Reported: ms per step (median of runs), half-edges per second, the modeled
bytes a step must move and the fraction of triad bandwidth that gives, and
each alternative's time over rulec's. Then thread scaling on the largest
graph (1, 2, 4, ... all cores, each beside the triad on as many threads),
compile latency (cold, cache hit, per rule in a batch of 100), Python
overhead per step() call, and a kernel's own cost per call from C with
threads=1 beyond the step itself.
Needs numba and scipy (pip install -e '.[bench]').
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import cffi
import numpy as np

HERE = Path(__file__).resolve().parent

FUSED = """
rule fused
param lr = 0.001
param decay = 0.01
node x
edge w
update {
    x = tanh(sum(w * nbr.x))
    w += lr * (x * nbr.x - decay * w)
}
"""

REDUCE = """
rule reduce
node x
edge w
update {
    x = tanh(sum(w * nbr.x))
}
"""

LR, DECAY = np.float32(0.001), np.float32(0.01)


# ---------------------------------------------------------------- graphs


def local_graph(half_edges: int, seed: int):
    """A graph with locality: node u links to 8 nodes u+1..u+64 (mod N); mean
    degree 16. Returned with its nodes in random order (the locality hidden)."""
    import rulec

    return rulec.Graph.from_edges(*local_pairs(half_edges, seed))


def local_pairs(half_edges: int, seed: int) -> tuple[int, np.ndarray]:
    """local_graph's node count and edges, as an (M, 2) int64 array."""
    rng = np.random.default_rng(seed)
    n = max(half_edges // 16, 128)
    u = np.repeat(np.arange(n, dtype=np.int64), 8)
    v = (u + rng.integers(1, 65, size=u.size)) % n
    perm = rng.permutation(n)
    pairs = np.stack([perm[u], perm[v]], axis=1)
    pairs.sort(axis=1)
    pairs = np.unique(pairs[pairs[:, 0] != pairs[:, 1]], axis=0)
    return n, pairs


def rcm_order(graph):
    """The same graph relabelled in reverse Cuthill-McKee order."""
    import scipy.sparse.csgraph

    import rulec

    order = scipy.sparse.csgraph.reverse_cuthill_mckee(graph.to_scipy().tocsr(),
                                                       symmetric_mode=True)
    new_id = np.empty(graph.n_nodes, dtype=np.int64)
    new_id[order] = np.arange(graph.n_nodes)
    pairs = new_id[graph.edges.astype(np.int64)]
    pairs.sort(axis=1)
    return rulec.Graph.from_edges(graph.n_nodes, pairs)


# ------------------------------------------------------------- baselines


def build_handwritten():
    """bench/handwritten.c through rulec's compiler and flags, loaded by cffi."""
    from rulec.backends import toolchain

    ffi = cffi.FFI()
    ffi.cdef("""
        void hand_fused(int64_t n, const int64_t *row_ptr, const int32_t *nbr, float *x,
                        float *w, float lr, float decay, int64_t steps);
        void hand_reduce(int64_t n, const int64_t *row_ptr, const int32_t *nbr, float *x,
                         const float *w, int64_t steps);
        void hand_fused_long(int64_t n, const int64_t *row_ptr, const int32_t *nbr, float *x,
                             float *w, float lr, float decay, int64_t steps);
        void hand_reduce_long(int64_t n, const int64_t *row_ptr, const int32_t *nbr, float *x,
                              const float *w, int64_t steps);
        void triad(int64_t n, float *a, const float *b, const float *c, float s,
                   int64_t times);
        void triad_threads(int64_t n, float *a, const float *b, const float *c, float s,
                           int64_t times, int threads);
        void call_kernel(void *kernel, const void *graph, void *state, const float *params,
                         int64_t calls, int64_t steps, int threads);
    """)
    work = Path(tempfile.mkdtemp(prefix="rulec-bench-"))
    output = work / "handwritten.so"
    argv = [*toolchain.compiler(), *toolchain.cflags(), str(HERE / "handwritten.c"), "-o",
            str(output), "-lm"]
    subprocess.run(argv, check=True)
    return ffi, ffi.dlopen(str(output)), argv


def pointer(ffi, ctype, array):
    return ffi.cast(ctype, array.ctypes.data)


def numba_kernels(fastmath: bool):
    import numba

    @numba.njit(fastmath=fastmath, cache=False)
    def fused(row_ptr, nbr, x, w, lr, decay):
        n = x.size
        nxt = np.empty_like(x)
        for u in range(n):
            acc = np.float32(0)
            for h in range(row_ptr[u], row_ptr[u + 1]):
                acc += w[h] * x[nbr[h]]
            xu = x[u]
            for h in range(row_ptr[u], row_ptr[u + 1]):
                w[h] += lr * (xu * x[nbr[h]] - decay * w[h])
            nxt[u] = np.tanh(acc)
        x[:] = nxt

    @numba.njit(fastmath=fastmath, cache=False)
    def reduce(row_ptr, nbr, x, w):
        n = x.size
        nxt = np.empty_like(x)
        for u in range(n):
            acc = np.float32(0)
            for h in range(row_ptr[u], row_ptr[u + 1]):
                acc += w[h] * x[nbr[h]]
            nxt[u] = np.tanh(acc)
        x[:] = nxt

    return fused, reduce


def numpy_fused(g, x, w):
    gathered = x[g["nbr"]]
    acc = np.add.reduceat(w * gathered, g["starts"])
    w += LR * (x[g["owner"]] * gathered - DECAY * w)
    x[:] = np.tanh(acc)


def numpy_reduce(g, x, w):
    x[:] = np.tanh(np.add.reduceat(w * x[g["nbr"]], g["starts"]))


# ---------------------------------------------------------------- timing


def per_step(run, steps: int, runs: int) -> float:
    """Median over `runs` of the time per step of run(steps)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(steps)
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def steps_for(half_edges: int, fast: bool) -> int:
    """Steps per timed run: about 50 ms of work for the fast kernels."""
    rate = 1e9 if fast else 1e8
    return max(1, int(0.05 * rate / half_edges))


def triad_bandwidth(ffi, lib, runs: int) -> float:
    n = 1 << 25  # 128 MB per array
    a, b, c = (np.full(n, v, dtype=np.float32) for v in (0.0, 1.0, 2.0))
    pa, pb, pc = (pointer(ffi, "float *", arr) for arr in (a, b, c))
    lib.triad(n, pa, pb, pc, 3.0, 1)
    seconds = per_step(lambda k: lib.triad(n, pa, pb, pc, 3.0, k), 5, runs)
    return 12 * n / seconds  # STREAM convention: 3 arrays, write-allocate not counted


# --------------------------------------------------------------- a size


def bench_graph(graph, label, rules, hand, numba_sets, bandwidth, args):
    n, h = graph.n_nodes, graph.n_half_edges
    g = {
        "row_ptr": np.ascontiguousarray(graph.row_ptr, dtype=np.int64),
        "nbr": np.ascontiguousarray(graph.nbr, dtype=np.int32),
        "owner": np.ascontiguousarray(graph.owner, dtype=np.int32),
        "starts": np.ascontiguousarray(graph.row_ptr[:-1], dtype=np.intp),
    }
    assert (graph.degree > 0).all()
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-1, 1, n).astype(np.float32)
    w0 = rng.normal(0, 0.1, h).astype(np.float32)
    rows = []
    for kind in ("fused", "reduce"):
        results = time_step(kind, graph, g, rules[kind], hand, numba_sets, x0, w0, args)
        # modeled bytes: per half-edge w (read, and written if fused), nbr, the
        # x[nbr] gather; per node row_ptr, x read and written.
        model = h * (16 if kind == "fused" else 12) + n * 16
        base = results["rulec C"]
        for name, seconds in results.items():
            rows.append((label, kind, name, seconds, h / seconds, model / seconds,
                         model / seconds / bandwidth, seconds / base))
    return rows


def time_step(kind, graph, g, rule, hand, numba_sets, x0, w0, args) -> dict[str, float]:
    """Seconds per step of `kind` for each implementation."""
    import scipy.sparse

    from rulec.backends.reference import Interpreter

    ffi, lib = hand
    n, h = graph.n_nodes, graph.n_half_edges
    results = {}
    state = rule.state(graph)
    state.node["x"], state.edge["w"] = x0, w0
    steps = steps_for(h, fast=True)
    rule.step(state, steps=1)
    results["rulec C"] = per_step(lambda k: rule.step(state, steps=k), steps, args.runs)
    x, w = x0.copy(), w0.copy()
    px, pw = pointer(ffi, "float *", x), pointer(ffi, "float *", w)
    prow, pnbr = pointer(ffi, "int64_t *", g["row_ptr"]), pointer(ffi, "int32_t *", g["nbr"])
    if kind == "fused":
        def call(k):
            lib.hand_fused(n, prow, pnbr, px, pw, LR, DECAY, k)
    else:
        def call(k):
            lib.hand_reduce(n, prow, pnbr, px, pw, k)
    call(1)
    results["hand C"] = per_step(call, steps, args.runs)
    slow = steps_for(h, fast=False)
    x, w = x0.copy(), w0.copy()
    step_numpy = numpy_fused if kind == "fused" else numpy_reduce
    results["numpy"] = per_step(lambda k: [step_numpy(g, x, w) for _ in range(k)], slow,
                                args.runs)
    if kind == "reduce":
        matrix = scipy.sparse.csr_matrix((w0, g["nbr"], g["row_ptr"]), shape=(n, n))
        results["scipy matvec+tanh"] = per_step(
            lambda k: [np.tanh(matrix @ x) for _ in range(k)], slow, args.runs)
        results["scipy matvec"] = per_step(lambda k: [matrix @ x for _ in range(k)], slow,
                                           args.runs)
    for name, (fused_fn, reduce_fn) in numba_sets.items():
        x, w = x0.copy(), w0.copy()
        if kind == "fused":
            def run(k, f=fused_fn, x=x, w=w):
                for _ in range(k):
                    f(g["row_ptr"], g["nbr"], x, w, LR, DECAY)
        else:
            def run(k, f=reduce_fn, x=x, w=w):
                for _ in range(k):
                    f(g["row_ptr"], g["nbr"], x, w)
        run(1)
        results[name] = per_step(run, steps, args.runs)
    if not args.no_reference:
        interpreter = Interpreter(rule.program, graph)
        ref_state = rule.state(graph)
        ref_state.node["x"], ref_state.edge["w"] = x0, w0
        params = {"lr": 0.001, "decay": 0.01} if kind == "fused" else {}
        results["reference"] = per_step(
            lambda k: interpreter.run("update", ref_state, params, k),
            max(1, slow // 4), max(1, args.runs // 2))
    return results


def compile_latency(args) -> list[str]:
    import rulec
    from rulec.backends.c import pipeline as c_pipeline

    lines = []
    with tempfile.TemporaryDirectory() as cache:
        os.environ["RULEC_CACHE_DIR"] = cache
        cold = []
        for i in range(args.runs):
            c_pipeline._loaded.clear()
            text = FUSED.replace("0.01 * w", f"0.0{i + 1} * w").replace("decay * w",
                                                                         f"{i + 2} * w")
            start = time.perf_counter()
            rulec.compile(text)
            cold.append(time.perf_counter() - start)
        hits = []
        for _ in range(args.runs):
            c_pipeline._loaded.clear()  # a hit on disk, as in a new process
            start = time.perf_counter()
            rulec.compile(FUSED.replace("decay * w", "2 * w"))
            hits.append(time.perf_counter() - start)
        texts = [FUSED.replace("decay * w", f"{k + 100} * w") for k in range(100)]
        c_pipeline._loaded.clear()
        start = time.perf_counter()
        rulec.compile_many(texts)
        batch = time.perf_counter() - start
    lines.append(f"cold compile, one rule:      {statistics.median(cold) * 1e3:7.1f} ms "
                 f"(median of {len(cold)})")
    lines.append(f"cache hit (load from disk):  {statistics.median(hits) * 1e3:7.1f} ms")
    lines.append(f"batch of 100 rules:          {batch * 1e3 / 100:7.1f} ms per rule "
                 f"({batch:.1f} s in all)")
    return lines


def call_overhead(args) -> str:
    import rulec
    from rulec import graphs

    rule = rulec.compile(REDUCE)
    state = rule.state(graphs.ring(4))
    for _ in range(1000):
        rule.step(state)
    calls = 20000
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        for _ in range(calls):
            rule.step(state)
        times.append((time.perf_counter() - start) / calls)
    return (f"Python overhead per step() call (ring:4, steps=1): "
            f"{statistics.median(times) * 1e6:.1f} us")


def kernel_call_overhead(hand, args) -> list[str]:
    """A kernel's own per-call cost with threads=1: `calls` calls with steps=1
    made from C, against one call running `calls` steps, on a 7-node ring (the
    step itself is a few dozen nanoseconds). Python's share is call_overhead's."""
    import rulec
    from rulec import graphs
    from rulec.backends import toolchain
    from rulec.backends.views import graph_view, state_view

    ffi, lib = hand
    lines = []
    calls = 200000
    for name, text in (("reduce", REDUCE), ("fused", FUSED)):
        rule = rulec.compile(text)
        native = rule.runner.native
        state = rule.state(graphs.ring(7))
        state.node["x"] = np.linspace(-1, 1, 7)
        view = state_view(state, rule.program)
        values = native._params(dict(rule.params))
        rffi = toolchain.ffi()
        kernel = ffi.cast("void *", int(rffi.cast("intptr_t", native.kernels["update"])))
        graph = ffi.cast("void *", int(rffi.cast("intptr_t", graph_view(state.graph).struct)))
        struct = ffi.cast("void *", int(rffi.cast("intptr_t", view.struct)))
        params = ffi.cast("float *", int(rffi.cast("intptr_t", values)))
        per_call, per_step = [], []
        for _ in range(args.runs):
            start = time.perf_counter()
            lib.call_kernel(kernel, graph, struct, params, calls, 1, 1)
            per_call.append((time.perf_counter() - start) / calls)
            start = time.perf_counter()
            lib.call_kernel(kernel, graph, struct, params, 1, calls, 1)
            per_step.append((time.perf_counter() - start) / calls)
        call, step = statistics.median(per_call), statistics.median(per_step)
        lines.append(f"kernel call from C, {name}, ring:7, threads=1: {call * 1e9:6.1f} ns per "
                     f"call with steps=1, {step * 1e9:6.1f} ns per step in one call: "
                     f"{(call - step) * 1e9:6.1f} ns per call beyond the step")
    return lines


def thread_scaling(graph, label, rules, hand, args) -> list[str]:
    """Each step on 1, 2, ... all cores, beside the triad on as many threads."""
    ffi, lib = hand
    from rulec.backends.toolchain import available_cores

    cores = available_cores()
    n = 1 << 25
    a, b, c = (np.full(n, v, dtype=np.float32) for v in (0.0, 1.0, 2.0))
    pa, pb, pc = (pointer(ffi, "float *", arr) for arr in (a, b, c))
    h, nodes = graph.n_half_edges, graph.n_nodes
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-1, 1, nodes).astype(np.float32)
    w0 = rng.normal(0, 0.1, h).astype(np.float32)
    lines = [f"{'graph':<16} {'step':<7} {'threads':>7} {'ms/step':>9} {'Mhalf-edges/s':>13} "
             f"{'GB/s':>6} {'triad GB/s':>10} {'%triad':>7} {'speedup':>8}"]
    ones = {}
    counts = sorted({1, cores, *[t for t in (2, 4, 8, 16, 32, 64) if t < cores]})
    for threads in counts:
        lib.triad_threads(n, pa, pb, pc, 3.0, 1, threads)
        triad = 12 * n / per_step(lambda k, t=threads: lib.triad_threads(n, pa, pb, pc, 3.0, k, t),
                                  5, args.runs)
        for kind in ("fused", "reduce"):
            rule = rules[kind]
            state = rule.state(graph)
            state.node["x"], state.edge["w"] = x0, w0
            steps = max(1, steps_for(h, fast=True) * threads)
            rule.step(state, steps=1, threads=threads)
            seconds = per_step(lambda k, s=state, r=rule, t=threads: r.step(s, steps=k, threads=t),
                               steps, args.runs)
            model = h * (16 if kind == "fused" else 12) + nodes * 16
            ones.setdefault(kind, seconds)
            lines.append(f"{label:<16} {kind:<7} {threads:>7} {seconds * 1e3:>9.3f} "
                         f"{h / seconds / 1e6:>13.1f} {model / seconds / 1e9:>6.1f} "
                         f"{triad / 1e9:>10.1f} {model / seconds / triad * 100:>6.1f}% "
                         f"{ones[kind] / seconds:>7.2f}x")
    return lines


def memory_report(half_edges: int, rule) -> list[str]:
    """Bytes per half-edge, counted by tracemalloc (NumPy reports its arrays to
    it): Graph.from_edges at its peak beyond the edge list it is given, and
    the graph, its C view and a state of `rule` held after one step (steady),
    beside the least they could be: the rule's slots and the CSR."""
    import tracemalloc

    import rulec

    n, pairs = local_pairs(half_edges, seed=1)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        graph = rulec.Graph.from_edges(n, pairs)
        built, peak = tracemalloc.get_traced_memory()
        del pairs
        tracemalloc.reset_peak()
        base_after = tracemalloc.get_traced_memory()[0]
        state = rule.state(graph)
        rule.step(state, steps=1, threads=1)
        held, step_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    h = graph.n_half_edges
    slots = (len(rule.program.node_slots) * n + len(rule.program.edge_slots) * h) * 4
    minimum = slots + graph.row_ptr.nbytes + graph.nbr.nbytes
    steady = built - base + held - base_after
    return [
        f"memory, fused rule, {h} half-edges ({n} nodes), counted by tracemalloc:",
        f"  Graph.from_edges: peak {(peak - base) / h:.1f} bytes per half-edge beyond its "
        f"(M, 2) int64 input, {(built - base) / h:.1f} kept",
        f"  graph, C view and state after a step: {steady / h:.1f} bytes per half-edge "
        f"(the slots and the CSR alone: {minimum / h:.1f}); peak during the state and "
        f"step {(built - base + step_peak - base_after) / h:.1f}",
    ]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from rulec.backends import toolchain

    cc = subprocess.run([*toolchain.compiler(), "--version"], capture_output=True,
                        text=True).stdout.splitlines()[0]
    return (f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, "
            f"NumPy {np.__version__}; {cc}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2^16 and 2^20 half-edges only")
    parser.add_argument("--runs", type=int, default=5, help="runs per timing (median)")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the reference interpreter")
    args = parser.parse_args()

    import rulec
    from rulec.backends import toolchain

    print(f"machine: {machine()}")
    hand = build_handwritten()
    print(f"flags (rulec and hand C): {' '.join(toolchain.cflags())}")
    ffi, lib, _ = hand
    bandwidth = triad_bandwidth(ffi, lib, args.runs)
    print(f"STREAM triad, same process and build path: {bandwidth / 1e9:.1f} GB/s")
    rules = {"fused": rulec.compile(FUSED), "reduce": rulec.compile(REDUCE)}
    numba_sets = {}
    try:
        numba_sets["numba"] = numba_kernels(False)
        numba_sets["numba fastmath"] = numba_kernels(True)
    except ImportError:
        print("numba is not installed: skipping it (pip install numba)")
    powers = [16, 20] if args.quick else [16, 18, 20, 22, 24]
    print()
    header = (f"{'graph':<16} {'step':<7} {'implementation':<18} {'ms/step':>9} "
              f"{'Mhalf-edges/s':>13} {'GB/s':>6} {'%triad':>7} {'time/rulec':>10}")
    print(header)
    print("-" * len(header))
    for power in powers:
        graph = local_graph(1 << power, seed=power)
        for label, ordered in (("random", graph), ("rcm", rcm_order(graph))):
            name = f"2^{power} {label}"
            for row in bench_graph(ordered, name, rules, (ffi, lib), numba_sets, bandwidth,
                                   args):
                graph_name, kind, impl, seconds, rate, bytes_rate, fraction, ratio = row
                print(f"{graph_name:<16} {kind:<7} {impl:<18} {seconds * 1e3:>9.3f} "
                      f"{rate / 1e6:>13.1f} {bytes_rate / 1e9:>6.1f} {fraction * 100:>6.1f}% "
                      f"{ratio:>9.2f}x", flush=True)
    print()
    power = powers[-1]
    print(f"Thread scaling (2^{power} half-edges, rcm order; the triad on as many threads):")
    for line in thread_scaling(rcm_order(local_graph(1 << power, seed=power)), f"2^{power} rcm",
                               rules, (ffi, lib), args):
        print(line, flush=True)
    print()
    for line in memory_report(1 << power, rules["fused"]):
        print(line, flush=True)
    print()
    for line in compile_latency(args):
        print(line)
    print(call_overhead(args))
    for line in kernel_call_overhead((ffi, lib), args):
        print(line)


if __name__ == "__main__":
    main()
