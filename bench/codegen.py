"""How code generation scales with the size of a rule, in one run.

    python bench/codegen.py            # 100 .. 3000 slots
    python bench/codegen.py --quick    # 100 .. 1000

A rule with N node slots and N statements (each `xi = tanh(sum(w *
nbr.x(i+1))) + x(i+2)`): the time to parse and check it, and to lower,
schedule and render it to C (no compiler call). Near-linear growth is the
target: the time per statement should stay about flat as N grows.
"""

from __future__ import annotations

import argparse
import time

from rulec.backends.c.module import Unit
from rulec.backends.c.pipeline import c_source
from rulec.frontend import load_program


def rule_text(n: int) -> str:
    names = [f"x{i}" for i in range(n)]
    lines = ["node " + ", ".join(names), "edge w", "update {"]
    for i, name in enumerate(names):
        lines.append(f"    {name} = tanh(sum(w * nbr.{names[(i + 1) % n]})) + "
                     f"{names[(i + 2) % n]}")
    return "\n".join([*lines, "}"]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = (100, 300, 1000) if args.quick else (100, 300, 1000, 3000)
    print(f"{'slots':>6} {'check s':>9} {'render s':>9} {'render us/stmt':>15} {'C lines':>8}")
    for n in sizes:
        text = rule_text(n)
        start = time.perf_counter()
        program = load_program(text, "big.rule")
        checked = time.perf_counter()
        source = c_source([Unit(program, "big", text)])
        rendered = time.perf_counter()
        print(f"{n:>6} {checked - start:>9.2f} {rendered - checked:>9.2f} "
              f"{(rendered - checked) / n * 1e6:>15.0f} {source.count(chr(10)):>8}")


if __name__ == "__main__":
    main()
