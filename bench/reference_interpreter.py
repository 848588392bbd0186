"""Time the NumPy reference interpreter on the examples (not part of the tests).

    python bench/reference_interpreter.py [--half-edges 1048576]

Prints, per rule, the time per step and half-edges per second, median of 5 runs.
The reference interpreter defines the semantics; the C backend is the fast path.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import rulec
from rulec import graphs

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--half-edges", type=int, default=1 << 20)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    n = max(args.half_edges // 16, 10)  # mean degree 16
    graph = graphs.erdos_renyi(n, 16 / (n - 1), seed=1)
    print(f"python {platform.python_version()}, {platform.machine()}, graph er:{n} with "
          f"{graph.n_half_edges} half-edges")
    print(f"{'rule':<10} {'ms/step':>9} {'Mhalf-edges/s':>14}")
    for name in ["hebbian", "diffusion", "flow"]:
        rule = rulec.compile_file(EXAMPLES / f"{name}.rule", backend="numpy")
        state = rule.state(graph)
        rule.init(state, seed=1)
        rule.step(state)  # warm-up: builds the interpreter's graph tables
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            rule.step(state)
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        print(f"{name:<10} {median * 1e3:>9.1f} {graph.n_half_edges / median / 1e6:>14.1f}")


if __name__ == "__main__":
    main()
