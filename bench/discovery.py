"""The discovery ladder: how long the search takes to find a rule that passes
the calibrated evaluator (every hurdle: data-flow static check, tasks with
retention, counterfactual targets) and learns every task on at least 9 of
10 untouched seeds.

    python bench/discovery.py [--rungs a,b,c,d] [--minutes 10] [--jobs 2] [--out DIR]
                              [--halving 60 --eta 3]   # successive halving's rungs

Rungs (docs/discoveries.md; in b, c and d the hidden layer must learn: on 2
of 3 untouched seeds, the rule's hidden nodes' incoming weights put back to
their initial values after training must lose the task, or the rule is a
random-feature learner, which passes every hurdle without that):
  a  AND and OR on layered:2,1,bias from scratch (examples/search/logic.toml)
  b  XOR and AND on layered:2,4,1,bias from a delta rule whose hidden error
     is 0 (examples/search/hidden.toml, --start
     tests/calibration/delta_hidden0_fixed.rule); XOR alone before
     2026-12-05's evening, when two finds turned out to learn XOR but not AND
  c  XOR and AND on layered:2,4,1,bias from scratch (hidden.toml)
  d  XOR and 3-bit parity at once on three Waxman graphs (waxman:6,1..3,
     every input reaching an output), from the same delta rule as b

For each rung: the rules evaluated and the seconds until the first such rule
(or "not within M minutes" and the best hurdle reached), the rule's text,
its lineage back to a start or random rule, and the ablation of its update
statements (which of them its learning needs). A rung stops at its first
discovery (the run goes in slices of --slice seconds, resumed on the same
database) or after --minutes. Each rung's database is kept in --out, so a
rung can be resumed or inspected (rulec search report).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rulec import search as S  # noqa: E402
from rulec.search.hurdles import ablations, hidden_layer_needed  # noqa: E402
from rulec.search.space import load_settings, rungs_from_text  # noqa: E402

RUNGS = {
    "a": dict(space="examples/search/logic.toml", start=()),
    "b": dict(space="examples/search/hidden.toml",
              start=("tests/calibration/delta_hidden0_fixed.rule",), mutants=20, hidden=True),
    "c": dict(space="examples/search/hidden.toml", start=(), hidden=True),
    "d": dict(space="examples/search/hidden.toml",
              start=("tests/calibration/delta_hidden0_fixed.rule",), mutants=20, hidden=True,
              tasks=("xor", "parity3"), graphs=("waxman:6,1", "waxman:6,2", "waxman:6,3")),
}
FRESH_NEEDED = 9  # of 10 untouched seeds


def hidden_learns(text: str, settings) -> bool:
    """What the rule's hidden layer learned is needed (hidden_layer_needed):
    on at least 2 of 3 untouched seeds it learns the task, and with its
    hidden nodes' incoming weights put back to their initial values it no
    longer solves it."""
    seeds = hidden_layer_needed(text, settings)
    return sum(s["reset"] is not None and s["reset"] < 1.0 for s in seeds) >= 2


def first_discovery(db: Path, fresh_needed: int, accept=None,
                    rejected: set | None = None) -> dict | None:
    """The first rule stored that passes every hurdle on >= fresh_needed
    untouched seeds (and that `accept(text)` accepts, if given; the indices
    it refused are kept in `rejected`, so a resumed rung asks once)."""
    rejected = set() if rejected is None else rejected
    connection = sqlite3.connect(db)
    try:
        began = connection.execute("SELECT min(created) FROM rules").fetchone()[0]
        rows = connection.execute(
            "SELECT idx, created, fresh, text FROM rules WHERE failure IS NULL AND "
            "duplicate IS NULL AND fresh >= ? ORDER BY created, idx",
            (fresh_needed,)).fetchall()
        row = None
        for candidate in rows:
            if candidate[0] in rejected:
                continue
            if accept is None or accept(candidate[3]):
                row = candidate
                break
            rejected.add(candidate[0])
        if row is None:
            return None
        idx, created, fresh, text = row
        evaluated = connection.execute("SELECT count(*) FROM rules WHERE created <= ?",
                                       (created,)).fetchone()[0]
        parents = dict(connection.execute("SELECT idx, parent FROM rules").fetchall())
        mutations = dict(connection.execute("SELECT idx, mutation FROM rules").fetchall())
    finally:
        connection.close()
    lineage, node = [], idx
    while node is not None:
        lineage.append(f"{node} ({mutations.get(node) or 'random'})")
        node = parents.get(node)
    return {"idx": idx, "seconds": created - began, "rules": evaluated, "fresh": fresh,
            "text": text, "lineage": " <- ".join(lineage), "refused": len(rejected)}


def best_reached(db: Path, hurdles: tuple[str, ...]) -> str:
    connection = sqlite3.connect(db)
    try:
        passed, count = connection.execute(
            "SELECT max(passed), count(*) FROM rules").fetchone()
    finally:
        connection.close()
    return f"{count} rules, the best cleared {passed} of {len(hurdles)} hurdles " \
           f"({', '.join(hurdles[:passed]) or 'none'})"


def with_graphs(settings, tasks: tuple[str, ...], graphs: tuple[str, ...]):
    """The settings on other tasks and graphs, the forward phase long enough
    for each graph's inputs to reach its outputs."""
    import dataclasses

    from rulec import learning

    reach = max(learning.topology_from_spec(g, learning.task_named(t)).reach
                for g in graphs for t in tasks)
    space = dataclasses.replace(settings.space, forward=max(settings.space.forward, reach))
    screen = dataclasses.replace(settings.screen, tasks=tasks, graph=graphs)
    return dataclasses.replace(settings, space=space, screen=screen)


def with_rungs(settings, rungs: str | None, eta: int | None):
    """The settings with other successive-halving rungs or eta, if given."""
    import dataclasses

    changes = {}
    if rungs is not None:
        changes["rungs"] = rungs_from_text(rungs)
    if eta is not None:
        changes["eta"] = eta
    if not changes:
        return settings
    settings = dataclasses.replace(settings, screen=dataclasses.replace(settings.screen,
                                                                        **changes))
    settings.check()
    return settings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rungs", default="a,b,c,d")
    parser.add_argument("--minutes", type=float, default=10.0, help="per rung")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="discovery-runs")
    parser.add_argument("--immigrants", type=float, default=0.25,
                        help="evolution's share of random children (0.25)")
    parser.add_argument("--crossover", type=float, default=0.2,
                        help="evolution's share of crossed children (0.2)")
    parser.add_argument("--slice", type=float, default=30.0,
                        help="seconds between checks for a discovery")
    parser.add_argument("--halving", default=None, metavar="E1,E2",
                        help="successive halving's cheaper rungs (epochs), instead of the "
                             "space's ([screen] rungs; 'none' for none)")
    parser.add_argument("--eta", type=int, default=None,
                        help="successive halving: the top 1/eta of a rung go up (the space's)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for rung in args.rungs.split(","):
        spec = RUNGS.get(rung)
        if spec is None:
            print(f"rung {rung}: unknown (rungs: {', '.join(RUNGS)})")
            continue
        settings = load_settings(ROOT / spec["space"])
        if "tasks" in spec:
            settings = with_graphs(settings, spec["tasks"], spec["graphs"])
        settings = with_rungs(settings, args.halving, args.eta)
        start = tuple((ROOT / path).read_text() for path in spec["start"])
        config = S.Config(strategy="evolve", seed=args.seed, start=start,
                          start_mutants=spec.get("mutants", 0), immigrants=args.immigrants,
                          crossover=args.crossover)
        db = out / f"rung-{rung}.sqlite"
        began = time.monotonic()
        found, rejected = None, set()
        accept = (lambda text, settings=settings: hidden_learns(text, settings)) \
            if spec.get("hidden") else None
        while found is None and time.monotonic() - began < 60 * args.minutes:
            left = 60 * args.minutes - (time.monotonic() - began)
            S.search(settings, config, str(db), minutes=min(args.slice, left) / 60,
                     jobs=args.jobs)
            found = first_discovery(db, FRESH_NEEDED, accept, rejected)
        wall = time.monotonic() - began
        hurdles = S.hurdle_names(settings)
        where = f"; {','.join(spec['tasks'])} on {' '.join(spec['graphs'])}" \
            if "tasks" in spec else ""
        print(f"rung {rung} ({spec['space']}{where}"
              f"{', from ' + spec['start'][0] if start else ''}; "
              f"{args.minutes:g} min on {args.jobs} workers, {wall:.0f} s):")
        if found is None:
            refused = f"; {len(rejected)} passed every hurdle on >= {FRESH_NEEDED}/10 " \
                "untouched seeds but their hidden layer's learning was not needed (fixed " \
                "random features)" if rejected else ""
            print(f"  none on >= {FRESH_NEEDED}/10 untouched seeds: {best_reached(db, hurdles)}"
                  f"{refused}")
            results[rung] = None
            continue
        print(f"  rule {found['idx']} after {found['seconds']:.0f} s and {found['rules']} rules "
              f"({found['fresh']}/10 untouched seeds"
              + (f"; its hidden layer's learning needed, after {found['refused']} that passed "
                 "every hurdle over fixed random features" if spec.get("hidden") else "")
              + f"); lineage {found['lineage']}")
        print("  " + found["text"].replace("\n", "\n  "))
        for cut in ablations(found["text"], settings):
            verdict = "still passes" if cut["passed"] else \
                f"fails at {cut['failed_hurdle']}: {cut['reason']}"
            print(f"  without line {cut['line']} ({cut['statement']}): {verdict}")
        results[rung] = {k: found[k] for k in ("idx", "seconds", "rules", "fresh", "lineage",
                                               "refused")}
    (out / "ladder.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
