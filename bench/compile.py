"""Compile cost against kernel speed, in one run: batches of random rules and
single rules, at -O1, -O2 and -O3, with and without vectorized loops.

    python bench/compile.py                 # 100 random rules, ~3 minutes
    python bench/compile.py --rules 40      # quicker

For each set of flags (added with RULEC_CFLAGS, so -march=native, -fopenmp
and the vectorization flags stay; -DRULEC_NO_SIMD drops the `omp simd`
pragmas, so only what the level vectorizes by itself is), in a fresh kernel
cache:

1. A batch: `compile_many` of N random rules of the default generator (the
   rules search and fuzzing compile), ms per rule, with the busiest and the
   idlest compiler process's share of the wall time (how well the parts
   balance).
2. One rule, cold: the benchmark's fused rule and five random rules, each
   alone (median ms).
3. The speed of what was built: every batch rule stepped on an Erdos-Renyi
   graph of ~2^16 half-edges, single thread; the total of their step times
   and its ratio to -O3's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import rulec  # noqa: E402
from rulec import graphs  # noqa: E402
from rulec.backends import toolchain
from rulec.backends.c import pipeline as c_pipeline
from rulec.generate import Options, SeededSource, rule  # noqa: E402

LEVELS = ("-O3", "-O2", "-O1", "-O2 -DRULEC_NO_SIMD", "-O1 -DRULEC_NO_SIMD")


def random_texts(count: int, seed: int) -> list[str]:
    return [rule(SeededSource(seed * 100_003 + i), Options()).text for i in range(count)]


def step_total(compiled: list[rulec.Rule], graph: rulec.Graph, steps: int) -> float:
    """Seconds for `steps` steps of every rule (best of 3 per rule), from the
    same random start."""
    total = 0.0
    for r in compiled:
        state = r.state(graph)
        rng = np.random.default_rng(0)
        for _, _, array in state.slots():
            array[...] = rng.normal(size=array.size).astype(np.float32) * 0.1
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            r.step(state, steps=steps)
            best = min(best, time.perf_counter() - start)
        total += best
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=100, help="rules in the batch")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20,
                        help="steps per rule when timing kernels")
    args = parser.parse_args()
    from kernels import FUSED

    texts = random_texts(args.rules, args.seed)
    singles = random_texts(5, args.seed + 1)
    graph = graphs.erdos_renyi(4096, 16 / 4096, seed=1)
    saved = os.environ.get("RULEC_CFLAGS")
    print(f"{len(texts)} random rules (default generator, seed {args.seed}); "
          f"{toolchain.available_cores()} cores, RULEC_BUILD_JOBS={toolchain.build_jobs()}; "
          f"kernels timed on er:4096 ({graph.n_half_edges} half-edges), one thread")
    print(f"{'flags':<20} {'batch ms/rule':>13} {'parts':>6} {'busiest':>8} {'idlest':>7} "
          f"{'fused ms':>9} {'random ms':>10} {'kernels s':>10} {'vs -O3':>7}")
    rows = {}
    try:
        for level in LEVELS:
            os.environ["RULEC_CFLAGS"] = level
            with tempfile.TemporaryDirectory() as cache:
                os.environ["RULEC_CACHE_DIR"] = cache
                c_pipeline._loaded.clear()
                toolchain.last_build.clear()
                start = time.perf_counter()
                compiled = rulec.compile_many(texts)
                batch = time.perf_counter() - start
                parts = toolchain.last_build.get("parts", [])
                parts = parts[:-1] if len(parts) > 1 else parts  # not the loader's table
                busiest = max(parts, default=0.0) / batch
                idlest = min(parts, default=0.0) / batch
                fused = []
                for i in range(5):
                    start = time.perf_counter()
                    rulec.compile(FUSED.replace("decay * w", f"{i + 2} * w"))
                    fused.append(time.perf_counter() - start)
                one = []
                for text in singles:
                    start = time.perf_counter()
                    rulec.compile(text)
                    one.append(time.perf_counter() - start)
                kernels = step_total(compiled, graph, args.steps)
            rows[level] = (batch, len(parts), busiest, idlest, statistics.median(fused),
                           statistics.median(one), kernels)
    finally:
        if saved is None:
            os.environ.pop("RULEC_CFLAGS", None)
        else:
            os.environ["RULEC_CFLAGS"] = saved
    for level, (batch, parts, busiest, idlest, fused, one, kernels) in rows.items():
        print(f"{level:<20} {batch * 1e3 / len(texts):>13.1f} {parts:>6} {busiest:>7.0%} "
              f"{idlest:>6.0%} {fused * 1e3:>9.1f} {one * 1e3:>10.1f} {kernels:>10.3f} "
              f"{kernels / rows['-O3'][6]:>6.2f}x")


if __name__ == "__main__":
    main()
