"""Kernel designs against mean degree, in one run: where do long loops win?

    python bench/degrees.py                  # 2^22 half-edges per graph
    python bench/degrees.py --power 20       # smaller, quicker

Graphs of mean degree 2, 4, 16 and 64 with locality (node u links to random
nodes among the next 4 * degree, in that order) and a power-law graph
(graphs.power_law, exponent 2.2, hubs first), all with about 2^power
half-edges. For the fused and the reduce step of bench/kernels.py, single
thread, ms per step (best of --runs, each timing a few steps):

- rulec C: rulec's kernel (one loop per node over its half-edges, in blocks
  of 64 nodes);
- hand C: bench/handwritten.c's per-node loops, the same design by hand;
- hand long: the long-loop design by hand (a block of 64 nodes at a time:
  one loop over the block's half-edges into a tile, then a segmented sum);

and the share of the STREAM triad bandwidth each reaches (the bytes a step
must move, as in bench/kernels.py). The implementations are timed in turn,
round after round, so the machine's drift hits all alike.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kernels import (  # noqa: E402
    DECAY,
    FUSED,
    LR,
    REDUCE,
    build_handwritten,
    pointer,
    triad_bandwidth,
)

import rulec  # noqa: E402
from rulec import graphs  # noqa: E402


def local(half_edges: int, degree: int, seed: int = 1) -> rulec.Graph:
    """Mean degree `degree`: node u links to degree/2 nodes among u+1..u+4*degree."""
    rng = np.random.default_rng(seed)
    n = max(half_edges // degree, 64)
    u = np.repeat(np.arange(n, dtype=np.int64), degree // 2)
    v = u + rng.integers(1, 4 * degree + 1, size=u.size)
    keep = v < n
    pairs = np.stack([u[keep], v[keep]], axis=1)
    pairs = np.unique(pairs, axis=0)
    return rulec.Graph.from_edges(n, pairs)


def modeled_bytes(graph: rulec.Graph, fused: bool) -> int:
    h, n = graph.n_half_edges, graph.n_nodes
    return h * (4 * (3 if fused else 2) + 4) + n * (8 + 8)


def hand_calls(lib, kind: str, n: int, pointers) -> dict:
    """The hand-written per-node and long-loop steps of `kind`, as call(k)."""
    row, nbr, x, w = pointers
    if kind == "fused":
        return {
            "hand C": lambda k: lib.hand_fused(n, row, nbr, x, w, LR, DECAY, k),
            "hand long": lambda k: lib.hand_fused_long(n, row, nbr, x, w, LR, DECAY, k),
        }
    return {
        "hand C": lambda k: lib.hand_reduce(n, row, nbr, x, w, k),
        "hand long": lambda k: lib.hand_reduce_long(n, row, nbr, x, w, k),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--power", type=int, default=22, help="about 2^power half-edges")
    parser.add_argument("--runs", type=int, default=5, help="rounds of timings (best)")
    args = parser.parse_args()
    ffi, lib, _ = build_handwritten()
    bandwidth = triad_bandwidth(ffi, lib, 3)
    h = 1 << args.power
    cases = {f"degree {d}": local(h, d) for d in (2, 4, 16, 64)}
    cases["power-law 16"] = graphs.power_law(max(h // 16, 64), 16, seed=1, exponent=2.2)
    rules = {"fused": rulec.compile(FUSED), "reduce": rulec.compile(REDUCE)}
    print(f"STREAM triad: {bandwidth / 1e9:.1f} GB/s; one thread; ms per step (best of "
          f"{args.runs} rounds)")
    print(f"{'graph':<14} {'half-edges':>10} {'step':<7} {'rulec C':>9} {'hand C':>9} "
          f"{'hand long':>9}   {'%triad: rulec':>13} {'hand':>6} {'long':>6}")
    for name, graph in cases.items():
        rng = np.random.default_rng(0)
        x0 = rng.normal(size=graph.n_nodes).astype(np.float32) * 0.1
        w0 = rng.normal(size=graph.n_half_edges).astype(np.float32) * 0.1
        steps = max(1, (1 << 23) // graph.n_half_edges)
        row = pointer(ffi, "int64_t *", np.ascontiguousarray(graph.row_ptr))
        nbr = pointer(ffi, "int32_t *", np.ascontiguousarray(graph.nbr))
        for kind, rule in rules.items():
            state = rule.state(graph)
            state.node["x"], state.edge["w"] = x0, w0
            x, w = x0.copy(), w0.copy()
            px, pw = pointer(ffi, "float *", x), pointer(ffi, "float *", w)
            calls = {"rulec C": lambda k, s=state, r=rule: r.step(s, steps=k),
                     **hand_calls(lib, kind, graph.n_nodes, (row, nbr, px, pw))}
            best = dict.fromkeys(calls, float("inf"))
            for call in calls.values():
                call(1)
            for _ in range(args.runs):
                for impl, call in calls.items():
                    start = time.perf_counter()
                    call(steps)
                    best[impl] = min(best[impl], (time.perf_counter() - start) / steps)
            moved = modeled_bytes(graph, kind == "fused")
            share = {impl: moved / seconds / bandwidth for impl, seconds in best.items()}
            print(f"{name:<14} {graph.n_half_edges:>10} {kind:<7} "
                  f"{best['rulec C'] * 1e3:>9.3f} {best['hand C'] * 1e3:>9.3f} "
                  f"{best['hand long'] * 1e3:>9.3f}   {share['rulec C']:>12.0%} "
                  f"{share['hand C']:>6.0%} {share['hand long']:>6.0%}", flush=True)


if __name__ == "__main__":
    main()
