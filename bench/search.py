"""Search throughput: generation, screening through the hurdle stack, and
where the time goes.

    python bench/search.py [--rules 3000] [--jobs 2] [--space FILE] [--pairs K]

Measured in one run on this machine:
- generation: random rules of the space per second on one core (tree and
  canonical layout; with --check also type-checked from the tree);
- the full hurdle stack: a random search of --rules rules on one worker in
  this process (rules/s per core, and per CPU-second), and with --jobs
  worker processes (with --pairs K, both K times, alternated: the ratio of
  each pair and their median), and the machine's own ceiling for that
  ratio: --jobs processes of plain Python work against one (a shared or
  hyperthreaded machine gives less than --jobs);
- where the time goes: per hurdle (from the store's timings; `prepare` is
  drawing or parsing a rule, its canonical hash and size, in the worker),
  and the coordinator's share (asking, deduplicating, storing);
- the projection for 16 and 200 cores from the per-core rate, with the
  coordinator's own ceiling (it dedups and stores for every worker): its
  process's CPU per rule in the --jobs runs (the wall time the 1-worker
  run spends outside the hurdles' clocks, an upper bound, without --jobs);
- with --cluster N, the same search on a Dask LocalCluster of N worker
  processes (--cluster-batch rules a task): its rate, and how busy the
  coordinator's process was (its CPU seconds, scheduler thread included,
  over the wall time; saturated at 1), and the ceiling that puts on a
  cluster's rate.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rulec import search as S  # noqa: E402
from rulec.checker import check  # noqa: E402
from rulec.search.canon import canonical_text, text_hash  # noqa: E402
from rulec.search.report import report  # noqa: E402
from rulec.search.strategy import random_candidate  # noqa: E402


def generation(space: S.Space, count: int) -> dict:
    began = time.perf_counter()
    candidates = [random_candidate(space, 0, i) for i in range(count)]
    generate = time.perf_counter() - began
    keep = frozenset(space.protocol_slots())
    began = time.perf_counter()
    for c in candidates:
        text_hash(canonical_text(c.tree, keep))
    canonical = time.perf_counter() - began
    began = time.perf_counter()
    for c in candidates:
        check(c.tree)
    checking = time.perf_counter() - began
    return {"rules_per_s": count / generate, "canonical_per_s": count / canonical,
            "check_per_s": count / checking}


def _cpu_seconds() -> float:
    """This process's CPU time, every thread of it (a LocalCluster's
    scheduler runs in a thread here)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _children_cpu_seconds() -> float:
    """The CPU time of this process's finished children (a local pool's
    workers, once the search has shut them down)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _spin(units: int) -> float:
    """A fixed amount of pure-Python work (the kind a worker does); its
    seconds."""
    began = time.perf_counter()
    x = 0
    for _ in range(units):
        for i in range(10_000):
            x += i * i
    return time.perf_counter() - began


def machine_ceiling(jobs: int, units: int = 1500) -> float:
    """How much faster `jobs` processes do `jobs` times the work of one,
    on this machine now: the most --jobs can give (a shared or hyperthreaded
    machine gives less than `jobs`)."""
    import multiprocessing

    alone = _spin(units)
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        pool.map(_spin, [1] * jobs)  # started
        began = time.perf_counter()
        pool.map(_spin, [units] * jobs)
        together = time.perf_counter() - began
    return jobs * alone / together


def stack(settings: S.Settings, rules: int, jobs: int, db: str, scheduler=None,
          batch: int = 32) -> dict:
    began, cpu, children = time.perf_counter(), _cpu_seconds(), _children_cpu_seconds()
    progress = S.search(settings, S.Config(seed=11, generation=256), db, rules=rules, jobs=jobs,
                        batch=batch, scheduler=scheduler)
    wall = time.perf_counter() - began
    cpu = _cpu_seconds() - cpu
    children = _children_cpu_seconds() - children
    rep = report(db)
    worker = sum(rep.seconds.values())
    return {"jobs": jobs, "rules": progress.rules, "seconds": wall,
            "rules_per_s": progress.rules / wall,
            "per_core": progress.rules / wall / min(jobs, os.cpu_count() or 1),
            "passed": dict(zip(rep.hurdles, rep.passed, strict=True)),
            "hurdle_seconds": {k: round(v, 3) for k, v in rep.seconds.items()},
            "worker_seconds": worker, "coordinator_cpu_seconds": cpu,
            # every CPU second the search took, its local workers' included: a
            # rate per CPU second moves less than one per wall second when
            # others share the machine
            "per_cpu_second": progress.rules / max(cpu + children, 1e-9)}


def cluster(settings: S.Settings, rules: int, workers: int, db: str, batch: int) -> dict:
    """The search on a LocalCluster of `workers` single-threaded processes."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as lc, Client(lc) as client:
        out = stack(settings, rules, workers, db, scheduler=client, batch=batch)
    out["coordinator_busy"] = out["coordinator_cpu_seconds"] / out["seconds"]
    out["coordinator_ms_per_rule"] = 1e3 * out["coordinator_cpu_seconds"] / out["rules"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=3000)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--space", help="a space file (the default space otherwise)")
    parser.add_argument("--cluster", type=int, default=0, metavar="N",
                        help="also run on a Dask LocalCluster of N worker processes")
    parser.add_argument("--cluster-batch", type=int, default=32, metavar="B",
                        help="rules per Dask task with --cluster (32; at most a generation's "
                             "256 rules over the workers, or the workers wait)")
    parser.add_argument("--pairs", type=int, default=1, metavar="K",
                        help="run the 1-worker and the --jobs search K times, alternated, "
                             "and report every ratio and their median (the machine is shared: "
                             "one pair is noisy)")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()
    settings = S.load_settings(args.space) if args.space else S.Settings()
    out = {"cores": os.cpu_count(), "generation": generation(settings.space, 2000)}
    with tempfile.TemporaryDirectory() as tmp:
        ones, manys, ceilings = [], [], []
        for k in range(max(1, args.pairs)):
            if args.jobs > 1:  # what the machine gives now, just before each pair
                ceilings.append(machine_ceiling(args.jobs))
            ones.append(stack(settings, args.rules, 1, os.path.join(tmp, f"one{k}.sqlite")))
            if args.jobs > 1:
                manys.append(stack(settings, args.rules, args.jobs,
                                   os.path.join(tmp, f"many{k}.sqlite")))
        one = out["stack_1"] = ones[0]
        if manys:
            out["stack_n"] = manys[0]
            out["pairs"] = [{"one": a["rules_per_s"], "many": b["rules_per_s"],
                             "ratio": b["rules_per_s"] / a["rules_per_s"],
                             "one_per_cpu_second": a["per_cpu_second"],
                             "many_per_cpu_second": b["per_cpu_second"],
                             "machine_ceiling": c}
                            for a, b, c in zip(ones, manys, ceilings, strict=True)]
        if args.cluster:
            out["cluster"] = cluster(settings, args.rules, args.cluster,
                                     os.path.join(tmp, "cluster.sqlite"), args.cluster_batch)
    # with one job the workers' part runs in this process: the rest of the
    # wall time is the coordinator's (asking, deduplicating, storing)
    coordinator = one["seconds"] - one["worker_seconds"]
    out["coordinator_ms_per_rule"] = 1e3 * coordinator / one["rules"]
    out["worker_ms_per_rule"] = 1e3 * one["worker_seconds"] / one["rules"]
    per_worker = 1e3 / out["worker_ms_per_rule"]
    # That is an upper bound: it also holds what a worker spends on a rule
    # outside its hurdles' clocks (the batch loop, the records). With local
    # workers the coordinator's process does only its own work (asking,
    # deduplicating, storing, and the pool's hand-offs, in its threads):
    # its CPU per rule there is the cost the projection divides by.
    spent = [1e3 * b["coordinator_cpu_seconds"] / b["rules"] for b in manys]
    if spent:
        out["coordinator_cpu_ms_per_rule"] = statistics.median(spent)
    ceiling = 1e3 / max(out.get("coordinator_cpu_ms_per_rule", out["coordinator_ms_per_rule"]),
                        1e-9)
    out["projection_16_cores"] = min(15 * per_worker, ceiling)
    out["projection_200_cores"] = min(199 * per_worker, ceiling)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    g = out["generation"]
    print(f"machine: {out['cores']} cores")
    print(f"generation: {g['rules_per_s']:.0f} rules/s per core (tree + layout); canonical "
          f"hash {g['canonical_per_s']:.0f}/s; type-check from the tree {g['check_per_s']:.0f}/s")
    for key in ("stack_1", "stack_n"):
        if key not in out:
            continue
        s = out[key]
        print(f"full hurdle stack, {s['jobs']} worker(s): {s['rules']} rules in "
              f"{s['seconds']:.1f} s = {s['rules_per_s']:.0f} rules/s "
              f"({s['per_core']:.0f} per core; {s['per_cpu_second']:.0f} per CPU-second)")
    print("funnel (1 worker): " + ", ".join(f"{k} {v}" for k, v in one["passed"].items()))
    print("where the time goes (1 worker, s): "
          + ", ".join(f"{k} {v}" for k, v in one["hurdle_seconds"].items())
          + f"; coordinator {coordinator:.2f} ({out['coordinator_ms_per_rule']:.3f} "
          "ms/rule: asking the strategy, deduplicating, storing, and the worker's time "
          "outside its hurdles; the workers draw, hash and static-check)")
    if "coordinator_cpu_ms_per_rule" in out:
        print(f"coordinator's own CPU with {out['stack_n']['jobs']} local workers (median of "
              f"the runs): {out['coordinator_cpu_ms_per_rule']:.3f} ms/rule (its process, "
              "threads included: asking, deduplicating, storing, the pool's hand-offs)")
    if "stack_n" in out:
        ratios = [p["ratio"] for p in out["pairs"]]
        ceilings = [p["machine_ceiling"] for p in out["pairs"]]
        jobs = out["stack_n"]["jobs"]
        print(f"{jobs} workers / 1 worker"
              + (f", {len(ratios)} pairs alternated" if len(ratios) > 1 else "") + ": "
              + ", ".join(f"{p['one']:.0f} -> {p['many']:.0f} rules/s ({p['ratio']:.2f}x; "
                          f"the machine {p['machine_ceiling']:.2f}x)" for p in out["pairs"])
              + (f"; median {statistics.median(ratios):.2f}x" if len(ratios) > 1 else ""))
        print(f"  (the machine: {jobs} processes of plain Python work against one, just "
              f"before each pair: the most {jobs} workers can give; median "
              f"{statistics.median(ceilings):.2f}x, and the search gets "
              f"{statistics.median([r / c for r, c in zip(ratios, ceilings, strict=True)]):.0%}"
              " of it)")
    print(f"projection, 16 cores (15 workers + a coordinator): "
          f"{out['projection_16_cores']:.0f} rules/s = "
          f"{out['projection_16_cores'] * 3600 / 1e6:.1f} M rules/hour "
          f"(workers {15 * per_worker:.0f}/s, coordinator ceiling {ceiling:.0f}/s)")
    print(f"projection, 200 cores: {out['projection_200_cores']:.0f} rules/s "
          f"(workers {199 * per_worker:.0f}/s, coordinator ceiling {ceiling:.0f}/s)")
    if "cluster" in out:
        c = out["cluster"]
        print(f"Dask LocalCluster, {c['jobs']} worker processes, {args.cluster_batch} rules a "
              f"task: {c['rules']} rules in "
              f"{c['seconds']:.1f} s = {c['rules_per_s']:.0f} rules/s; the coordinator's "
              f"process (scheduler included) was busy {100 * c['coordinator_busy']:.0f}% of "
              f"the time ({c['coordinator_ms_per_rule']:.3f} CPU ms/rule: ceiling "
              f"{1e3 / max(c['coordinator_ms_per_rule'], 1e-9):.0f} rules/s)")


if __name__ == "__main__":
    main()
