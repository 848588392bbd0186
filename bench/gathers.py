"""Hardware gathers against scalar loads for x[nbr[h]], on this CPU.

    python bench/gathers.py [--runs 7]

Builds the benchmark's fused and reduce steps three ways and times them on
the same graphs, interleaved, best of runs:

    scalar        rulec's default: the gather loops are not vectorized; one
                  scalar load per half-edge, sums in order
    hardware      RULEC_GATHERS=vector: the loops vectorize, with hardware
                  gathers where GCC's tuning for this CPU uses them
    emulated      RULEC_GATHERS=vector with gathers disabled in GCC's tuning:
                  vector loops that gather with scalar loads and inserts

rulec keeps what is faster by default (docs/performance.md has the output).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from kernels import FUSED, REDUCE, local_graph, rcm_order

VARIANTS = {  # name: (RULEC_GATHERS, extra flags)
    "scalar": ("scalar", ""),
    "hardware": ("vector", ""),
    "emulated": ("vector", "-mtune-ctrl=^use_gather,^use_gather_2parts,^use_gather_4parts"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    import rulec
    from rulec.backends import toolchain

    base = " ".join(toolchain.cflags()[: -len(toolchain.REQUIRED_CFLAGS)])
    rules = {}
    for variant, (gathers, extra) in VARIANTS.items():
        os.environ["RULEC_CFLAGS"] = extra  # added after the default flags
        os.environ["RULEC_GATHERS"] = gathers
        rules[variant] = {"fused": rulec.compile(FUSED), "reduce": rulec.compile(REDUCE)}
    os.environ.pop("RULEC_CFLAGS")
    os.environ.pop("RULEC_GATHERS")
    print(f"base flags: {base}")
    print(f"{'graph':<14} {'step':<7} " + " ".join(f"{v:>10}" for v in VARIANTS) + "   (ms/step)")
    for power in (20, 22):
        graph = local_graph(1 << power, seed=power)
        for label, ordered in (("random", graph), ("rcm", rcm_order(graph))):
            for kind in ("fused", "reduce"):
                states = {}
                for variant in VARIANTS:
                    state = rules[variant][kind].state(ordered)
                    state.edge["w"] = np.random.default_rng(0).normal(0, 0.1, ordered.n_half_edges)
                    states[variant] = state
                best = dict.fromkeys(VARIANTS, float("inf"))
                for _ in range(args.runs):
                    for variant in VARIANTS:  # interleaved: the machine's noise hits all alike
                        start = time.perf_counter()
                        rules[variant][kind].step(states[variant], steps=5)
                        best[variant] = min(best[variant], (time.perf_counter() - start) / 5)
                cells = " ".join(f"{best[v] * 1e3:>10.3f}" for v in VARIANTS)
                print(f"2^{power} {label:<9} {kind:<7} {cells}", flush=True)


if __name__ == "__main__":
    main()
