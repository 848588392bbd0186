"""The `rulec` command line: check, fmt, run, train, emit, export, fuzz, cache.

Every failure a user can cause ends in a message on stderr and exit code 1
(2 for a bad command line), never a traceback. Set RULEC_DEBUG=1 to see the
traceback of an internal error.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

# Only light modules here: `rulec --version` and `--help` must answer at once.
# Each command imports what it needs (numpy, the compiler, cffi, jinja2).
from ._version import __version__
from .backends import BACKENDS, DEFAULT_BACKEND
from .errors import RulecError, RuleErrors, RuleWarning
from .graph_specs import SPECS
from .learning.protocols import PROTOCOLS

if TYPE_CHECKING:
    import numpy as np

    from .state import State


class UserError(RulecError):
    """A problem to report in one line, without a traceback."""


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not a .rule file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None


# ------------------------------------------------------------------ commands


def _loaded(path: str) -> tuple:
    """(text, tree, program) of a rule file; its lint warnings (W101) are
    issued as a RuleWarning, which the CLI prints as rendered (not with -q).
    Raises RuleErrors for a rule with errors."""
    from .dataflow import warn_lint
    from .frontend import load

    text, tree, program = load(_read(path), path)
    warn_lint(tree, path, text)
    return text, tree, program


def _checked(path: str) -> tuple | None:
    """(text, tree, program) of a rule file, or None after printing its errors."""
    try:
        return _loaded(path)
    except RuleErrors as errors:
        print(errors, file=sys.stderr)
    except UserError as exc:
        print(f"rulec: error: {exc}", file=sys.stderr)
    return None


def cmd_check(args: argparse.Namespace) -> int:
    failed = 0
    for path in args.files:
        loaded = _checked(path)
        if loaded is None:
            failed += 1
        elif not args.quiet:
            program = loaded[2]
            blocks = ", ".join(program.block_labels)
            print(f"{path}: ok (rule {program.name}; blocks: {blocks})")
    return 1 if failed else 0


def cmd_fmt(args: argparse.Namespace) -> int:
    from .atomic import write_atomic
    from .printer import format_source

    failed = 0
    for path in args.files:
        loaded = _checked(path)  # a file with errors is never formatted
        if loaded is None:
            failed += 1
            continue
        text, tree, _ = loaded
        formatted = format_source(text, tree)
        if args.check:
            if formatted != text:
                print(f"{path}: would reformat")
                failed += 1
        elif args.in_place:
            if formatted != text:
                write_atomic(path, formatted.encode("utf-8"))
                print(f"{path}: formatted", file=sys.stderr)
        else:
            sys.stdout.write(formatted)
    return 1 if failed else 0


def _parse_params(pairs: list[str]) -> dict[str, float]:
    params = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq or not name:
            raise UserError(f"--param {pair!r}: expected NAME=VALUE")
        try:
            params[name.strip()] = float(value)
        except ValueError:
            raise UserError(f"--param {pair!r}: {value!r} is not a number") from None
    return params


def _summary(state: State) -> str:
    header = f"{'slot':<16} {'kind':<7} {'mean':>11} {'std':>11} {'min':>11} {'max':>11} " \
             f"{'non-finite':>10}"
    rows = [header, "-" * len(header)]
    for kind, name, array in state.slots():
        stats = _stats(array)
        cells = " ".join(f"{'-':>11}" if stats[key] is None else f"{stats[key]:>11.4g}"
                         for key in ("mean", "std", "min", "max"))
        rows.append(f"{name:<16} {kind:<7} {cells} {stats['non_finite']:>10}")
    return "\n".join(rows)


def _slot_values(state: State, assignment: str, seed: int) -> None:
    """Apply `--set SLOT=SPEC` to the state: a number (every element), INDEX:VALUE
    pairs, `uniform` or `gauss` (seeded draws), or @FILE (.npy, or text)."""
    import numpy as np

    name, eq, spec = assignment.partition("=")
    name, spec = name.strip(), spec.strip()
    if not eq or not name or not spec:
        raise UserError(f"--set {assignment!r}: expected SLOT=VALUE, SLOT=I:V,J:W, "
                        "SLOT=uniform|gauss or SLOT=@FILE")
    arrays = {n: a for _, n, a in state.slots()}
    if name not in arrays:
        raise UserError(f"--set {assignment!r}: no slot {name!r} (slots: "
                        f"{', '.join(arrays) or 'none'})")
    target = arrays[name]
    rng = np.random.default_rng(seed)
    if spec in ("uniform", "gauss"):
        draw = rng.random if spec == "uniform" else rng.standard_normal
        target[...] = draw(target.size).astype(np.float32)
        return
    if spec.startswith("@"):
        path = spec[1:]
        try:
            values = np.load(path) if path.endswith(".npy") else np.loadtxt(path, ndmin=1)
        except FileNotFoundError:
            raise UserError(f"--set {name}: {path}: no such file") from None
        except Exception as exc:
            raise UserError(f"--set {name}: {path}: not a .npy array or a text column of "
                            f"numbers ({type(exc).__name__})") from None
        values = np.asarray(values, dtype=np.float32).reshape(-1)
        if values.shape != target.shape:
            raise UserError(f"--set {name}: {path} holds {values.size} values; slot {name!r} "
                            f"has {target.size} on this graph")
        target[...] = values
        return
    try:
        if ":" in spec:
            for pair in spec.split(","):
                index, _, value = pair.partition(":")
                i = int(index)
                if not -target.size <= i < target.size:
                    raise UserError(f"--set {name}: index {i} is outside 0..{target.size - 1}")
                target[i] = np.float32(float(value))
        else:
            target[...] = np.float32(float(spec))
    except ValueError:
        raise UserError(f"--set {assignment!r}: {spec!r} is not a number, I:V pairs, "
                        "uniform, gauss or @FILE") from None


def _shown(state: State, names: list[str]) -> dict[str, np.ndarray]:
    arrays = {n: a for _, n, a in state.slots()}
    for name in names:
        if name not in arrays:
            raise UserError(f"--show {name}: no slot {name!r} (slots: "
                            f"{', '.join(arrays) or 'none'})")
    return {name: arrays[name] for name in names}


def cmd_run(args: argparse.Namespace) -> int:
    from .api import Rule
    from .graphs import from_spec
    from .state import State

    text, _, program = _loaded(args.file)
    rule = Rule(program, args.backend, text)
    graph = from_spec(args.graph)
    params = _parse_params(args.param)
    if args.load:
        state = State.load(args.load, graph)  # rule.step checks it fits the rule
    else:
        state = rule.state(graph)
        rule.init(state, seed=args.seed, params=params, threads=args.threads)
    for assignment in args.set:
        _slot_values(state, assignment, args.seed)
    shown = _shown(state, args.show)
    recorded = _recorded(state, args.record)
    if (args.every != 1 or args.record_out or args.record_plot) and not recorded:
        raise UserError("--every, --record-out and --record-plot go with --record SLOT[,SLOT]")
    if args.record_plot:
        _matplotlib()  # fail before running, not after
    start_time = state.time
    recording = None
    try:
        if recorded:
            recording = rule.record(state, args.steps, recorded, every=args.every,
                                    block=args.block, params=params,
                                    check_finite=args.check_finite, threads=args.threads)
        else:
            rule.step(state, steps=args.steps, block=args.block, params=params,
                      check_finite=args.check_finite, threads=args.threads)
    except KeyboardInterrupt:
        done = state.time - start_time
        print(f"rulec: interrupted after {done} of {args.steps} steps (time {state.time})",
              file=sys.stderr)
        if args.save:
            state.save(args.save)
            print(f"rulec: the state at time {state.time} was saved to {args.save}",
                  file=sys.stderr)
        return 130
    if args.save:
        state.save(args.save)
    if recording is not None:
        if args.record_out:
            recording.save(args.record_out)
        if args.record_plot:
            _plot_recording(recording, args.record_plot, f"{rule.name} on {args.graph}")
    if args.json:
        import json

        report = {"rule": rule.name, "graph": args.graph, "nodes": graph.n_nodes,
                  "edges": graph.n_edges, "block": args.block, "steps": args.steps,
                  "seed": state.seed, "time": state.time, "backend": rule.backend,
                  "slots": {name: {"kind": kind, **_stats(array)}
                            for kind, name, array in state.slots()},
                  "values": {name: [_json_float(v) for v in array.tolist()]
                             for name, array in shown.items()}}
        print(json.dumps(report, indent=1))
        return 0
    if not args.quiet:
        print(f"rule {rule.name} on {args.graph}: {graph.n_nodes} nodes, {graph.n_edges} "
              f"edges; block {args.block}, {args.steps} steps; seed {state.seed}; time "
              f"{state.time}; backend {rule.backend}")
        print(_summary(state))
    for name, array in shown.items():
        print(f"{name}: " + " ".join(f"{label}{v:.6g}" for label, v in
                                     zip(_labels(state, name), array.tolist(), strict=True)))
    if args.save and not args.quiet:
        print(f"state saved to {args.save}")
    if recording is not None and not args.quiet:
        print(f"recorded {', '.join(recorded)}: {len(recording.times)} samples (time "
              f"{recording.times[0]} to {recording.times[-1]}, every {args.every} steps)"
              + (f"; written to {args.record_out}" if args.record_out else "")
              + (f"; plotted in {args.record_plot}" if args.record_plot else ""))
    return 0


def _labels(state: State, name: str) -> list[str]:
    """What each value of a slot is: nothing for a node slot (value i is node
    i), `u→v=` for an edge slot's half-edges (owner u's value on its edge to
    v, in CSR order), `u–v=` for a shared slot's edges."""
    kind = next(kind for kind, slot, _ in state.slots() if slot == name)
    graph = state.graph
    if kind == "node":
        return [""] * graph.n_nodes
    if kind == "edge":
        return [f"{u}→{v}=" for u, v in zip(graph.owner.tolist(), graph.nbr.tolist(),
                                             strict=True)]
    return [f"{u}–{v}=" for u, v in graph.edges.tolist()]


def _recorded(state: State, specs: list[str]) -> list[str]:
    names = [n.strip() for spec in specs for n in spec.split(",") if n.strip()]
    arrays = {n for _, n, _ in state.slots()}
    for name in names:
        if name not in arrays:
            raise UserError(f"--record {name}: no slot {name!r} (slots: "
                            f"{', '.join(sorted(arrays)) or 'none'})")
    return list(dict.fromkeys(names))


def _plot_recording(recording, path: str, title: str) -> None:
    """One panel per recorded slot: every value's trace over time when there
    are at most 64 of them, else the mean with the min-max band."""
    plt = _matplotlib()
    names = list(recording.values)
    fig, axes = plt.subplots(len(names), 1, figsize=(7, 2.6 * len(names)), squeeze=False,
                             sharex=True)
    for ax, name in zip(axes[:, 0], names, strict=True):
        values = recording[name]
        if values.shape[1] <= 64:
            ax.plot(recording.times, values, linewidth=0.8)
        else:
            ax.plot(recording.times, values.mean(axis=1), label="mean")
            ax.fill_between(recording.times, values.min(axis=1), values.max(axis=1),
                            alpha=0.3, label="min-max")
            ax.legend(loc="best", fontsize="small")
        ax.set_ylabel(name)
    axes[-1, 0].set_xlabel("time (steps)")
    axes[0, 0].set_title(title)
    fig.tight_layout()
    from .atomic import write_atomic

    write_atomic(path, lambda handle: fig.savefig(handle, format="png", dpi=100))
    plt.close(fig)


def _stats(array: np.ndarray) -> dict:
    """Mean, std, min and max of a slot's finite values (None when it has
    none), and how many values are not finite: the summary table and --json."""
    import numpy as np

    finite = array[np.isfinite(array)]
    if not finite.size:
        return {"mean": None, "std": None, "min": None, "max": None,
                "non_finite": int(array.size)}
    return {"mean": float(finite.mean(dtype=np.float64)),
            "std": float(finite.std(dtype=np.float64)),
            "min": float(finite.min()), "max": float(finite.max()),
            "non_finite": int(array.size - finite.size)}


def _json_float(value: float):
    """JSON has no NaN or infinity: they are written as the strings 'nan', 'inf', '-inf'."""
    import numpy as np

    return value if np.isfinite(value) else str(value)


def cmd_emit(args: argparse.Namespace) -> int:
    from .backends.c import pipeline
    from .backends.c.export import check_prefix
    from .backends.c.module import Unit

    text, _, program = _loaded(args.file)
    prefix = check_prefix(args.prefix or program.name)
    unit = Unit(program, prefix, text)
    if args.backend == "cuda":
        from .backends.cuda.render import cuda_source

        sys.stdout.write(cuda_source([unit]))
    else:
        sys.stdout.write(pipeline.c_source([unit]))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .backends.c.export import export

    text, _, program = _loaded(args.file)
    written = export(program, args.output, args.prefix, text)
    for path in written:
        print(path)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import json

    from . import learning
    from .api import Rule
    from .search.hurdles import held

    if args.epochs < 1:
        raise UserError("--epochs must be at least 1")
    task = learning.task_named(args.task)
    text, _, program = _loaded(args.file)
    rule = Rule(program, args.backend, text)
    topology = learning.topology_from_spec(args.graph, task)
    params = _parse_params(args.param)
    if args.plot:
        _matplotlib()  # fail before training, not after
    width = 30
    shown = [0.0]

    def progress(epoch: int, result) -> None:
        now = time.monotonic()
        if now - shown[0] < 0.1 and epoch + 1 < args.epochs and result.accuracy[-1] < 1:
            return  # at most ten updates a second
        shown[0] = now
        done = (epoch + 1) / args.epochs
        bar = "#" * int(width * done) + "-" * (width - int(width * done))
        print(f"\r[{bar}] epoch {epoch + 1}/{args.epochs}  accuracy "
              f"{result.accuracy[-1] * 100:5.1f}%  loss {result.loss[-1]:.4f}", end="",
              file=sys.stderr, flush=True)

    protocol = _protocol(args.map, args.protocol, args.forward, args.learn, args.settle)
    for flag in ("seeds", "hold"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag} must be at least 1")
    if not 0.0 <= args.margin < 0.5:
        raise UserError(f"--margin is how far from the threshold a right answer must be, "
                        f"from 0 to below 0.5; got {args.margin}")
    if args.hold > args.epochs:
        raise UserError(f"--hold {args.hold} is more than --epochs {args.epochs}")
    quiet = args.quiet or args.json
    searchlike = args.hold > 1 or args.confirm or args.retain or args.margin
    runs = []
    seeds = range(args.seed, args.seed + args.seeds)
    options = dict(protocol=protocol, epochs=args.epochs, budget=args.budget, params=params,
                   stop_at=None if args.all_epochs else 1.0, hold=args.hold,
                   confirm=args.confirm, retain=args.retain)
    if quiet:  # no progress to show: the seeds in one C call (lanes)
        results = learning.evaluate_seeds(rule, task, topology, seeds=seeds, **options)
    else:
        results = []
        for seed in seeds:
            results.append(learning.evaluate(rule, task, topology, seed=seed,
                                             on_epoch=progress, **options))
            print(file=sys.stderr)
    for seed, result in zip(seeds, results, strict=True):
        # the seed as the search's task hurdles score it (hurdles.held)
        scored = held(result, args.hold, margin=args.margin, task=task,
                      threshold=protocol.threshold)
        runs.append((seed, result, scored))
    if args.json:
        print(json.dumps(_train_json(rule, task, topology, runs, args), indent=2))
        return 1 if any(r.failure for _, r, _ in runs) else 0
    for seed, result, scored in runs:
        _print_training(task, topology, rule, seed, result, scored, protocol.threshold,
                        searchlike, show_outputs=len(runs) == 1)
    if len(runs) > 1:
        learned = sum(scored >= 1.0 for _, _, scored in runs)
        print(f"learned on {learned} of {len(runs)} seeds "
              f"({args.seed}..{args.seed + len(runs) - 1})")
    if args.plot and runs[-1][1].accuracy:
        seed, result, _ = runs[-1]
        _plot(result, args.plot, f"{rule.name} on {task.name} ({topology.name}), seed {seed}")
        print(f"learning curve written to {args.plot}")
    return 1 if any(r.failure for _, r, _ in runs) else 0


def _print_training(task, topology, rule, seed, result, scored: float, threshold: float,
                    searchlike: bool, show_outputs: bool) -> None:
    import numpy as np

    print(f"rule {rule.name}, task {task.name}, {topology.name}, seed {seed}: "
          f"{len(result.accuracy)} epochs, {result.steps} steps, {result.seconds:.2f} s")
    if result.failure:
        print(f"failed: {result.failure}")
    if result.outputs is not None and show_outputs:
        if result.retained or result.confirm:
            print("outputs at the end (after the epochs trained past the goal and the "
                  "untrained passes):")
        print(f"{'input':<12} {'target':<10} {'output':<24} ok")
        for k in range(len(task.inputs)):
            bits = "".join(str(int(b)) for b in task.inputs[k])
            target = "".join(str(int(b)) for b in task.targets[k])
            out = result.outputs[k]
            predicted = (out > threshold).astype(int)
            ok = "yes" if (predicted == task.targets[k]).all() else "no"
            print(f"{bits:<12} {target:<10} {' '.join(f'{v:.3f}' for v in out):<24} {ok}")
    print(f"accuracy: {result.final_accuracy * 100:.1f}%"
          + (f" (epoch {len(result.accuracy)}, the goal)" if result.goal_epoch else ""))
    if searchlike:
        extra = []
        if result.goal_epoch is not None:
            extra.append(f"goal at epoch {result.goal_epoch}")
        if result.retained:
            extra.append(f"{float(np.mean(result.retained)) * 100:.1f}% over the "
                         f"{len(result.retained)} epochs trained after it")
        if result.confirm:
            extra.append(f"{float(np.mean(result.confirm)) * 100:.1f}% on "
                         f"{len(result.confirm)} untrained passes")
        print(f"scored as the search scores a seed: {scored * 100:.1f}%"
              + (f" ({'; '.join(extra)})" if extra else ""))


def _train_json(rule, task, topology, runs, args) -> dict:
    import numpy as np

    seeds = []
    for seed, r, scored in runs:
        seeds.append({"seed": seed, "epochs": len(r.accuracy), "steps": r.steps,
                      "accuracy": r.final_accuracy, "scored": scored,
                      "goal_epoch": r.goal_epoch,
                      "retained": float(np.mean(r.retained)) if r.retained else None,
                      "confirm": float(np.mean(r.confirm)) if r.confirm else None,
                      "failure": r.failure,
                      "outputs": None if r.outputs is None else r.outputs.tolist()})
    return {"rule": rule.name, "task": task.name, "graph": topology.name,
            "hold": args.hold, "confirm": args.confirm, "retain": args.retain,
            "margin": args.margin,
            "learned": sum(s["scored"] >= 1.0 for s in seeds), "seeds": seeds}


def _protocol(pairs: list[str], name: str = "handshake", forward: int | None = None,
              learn: int | None = None, settle: float = 0.0):
    """The protocol `name` with `--map ROLE=SLOT` applied (ROLE= drops an optional
    role) and, for the timed protocols, their step counts (and fixed's settle)."""
    from .learning import protocols

    roles = protocols.mappable_roles(name)
    slots = []
    for pair in pairs:
        role, eq, slot = pair.partition("=")
        role, slot = role.strip(), slot.strip()
        if not eq or role not in roles:
            raise UserError(f"--map {pair!r}: expected ROLE=SLOT with ROLE one of "
                            f"{', '.join(sorted(roles))}")
        slots.append((role, slot or None))
    try:
        return protocols.protocol_named(name, slots, settle=settle, forward=forward,
                                        learn=learn)
    except protocols.ProtocolError as exc:
        option = f"--{exc.setting}" if exc.setting in ("forward", "learn", "settle") \
            else f"--protocol {name}"
        raise UserError(f"{option}: {exc}") from None


def _matplotlib():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("plotting needs matplotlib: pip install '.[plot]' (from a clone)") \
            from None
    return plt


def _plot(result, path: str, title: str) -> None:
    from .atomic import write_atomic

    plt = _matplotlib()
    figure, left = plt.subplots(figsize=(6, 3.5))
    epochs = range(1, len(result.accuracy) + 1)
    left.plot(epochs, [a * 100 for a in result.accuracy], color="tab:blue")
    left.set_xlabel("epoch")
    left.set_ylabel("accuracy (%)", color="tab:blue")
    left.set_ylim(-5, 105)
    right = left.twinx()
    right.plot(epochs, result.loss, color="tab:red")
    right.set_ylabel("mean squared error", color="tab:red")
    left.set_title(title)
    figure.tight_layout()
    write_atomic(path, lambda handle: figure.savefig(handle, format="png", dpi=100))
    plt.close(figure)


def cmd_fuzz(args: argparse.Namespace) -> int:
    from . import fuzz
    from .backends.toolchain import available_cores
    from .graphs import from_spec
    from .state import State

    if args.replay:
        if not (args.graph and args.state):
            raise UserError("--replay needs --graph and --state (printed with each failure)")
        graph = from_spec(args.graph)
        state = State.load(args.state, graph)
        found = fuzz.replay(args.replay, graph, state, _fuzz_backends(args.backend))
        for mismatch in found:
            print(mismatch)
        print(f"{len(found)} mismatch{'es' if len(found) != 1 else ''}")
        return 1 if found else 0
    if args.count < 1:
        raise UserError("--count must be at least 1")
    out = Path(args.out) if args.out else None

    def progress(report, total):
        print(f"fuzz: {report.rules}/{total} rules, {report.mismatches} mismatches, "
              f"{report.rate:.1f} rules/s", file=sys.stderr, flush=True)

    jobs = args.jobs if args.jobs is not None else available_cores()
    if jobs < 1:
        raise UserError("--jobs must be at least 1")
    if not 1 <= args.depth <= 12 or not 1 <= args.statements <= 50:
        raise UserError("--depth takes 1..12 and --statements 1..50")
    report = fuzz.fuzz_parallel(args.count, args.seed, args.depth, out, jobs,
                                None if args.quiet else progress,
                                statements=args.statements,
                                backends=_fuzz_backends(args.backend))
    print(f"rules: {report.rules}; mismatches: {report.mismatches}; crashes: {report.crashes}; "
          f"rejected: {report.rejected}; {report.rate:.1f} rules/s ({report.seconds:.1f} s)")
    for number, failure in enumerate(report.failures, 1):
        print(f"\n{failure['kind']} {number} (case {failure['case']}): {failure['mismatch']}\n"
              f"{failure['rule']}")
        if "replay" in failure:
            print(f"replay: {failure['replay']}")
    return 1 if report.mismatches or report.rejected or report.crashes else 0


def _fuzz_backends(name: str) -> tuple[str, ...]:
    return ("c", "vm") if name == "all" else (name,)


def _search_settings(args: argparse.Namespace):
    import dataclasses

    from .search.space import Settings, load_settings, rungs_from_text

    settings = load_settings(args.space) if args.space else Settings()
    screen = settings.screen
    changes: dict = {}
    if args.task is not None:
        changes["tasks"] = tuple(t.strip() for t in args.task.split(",") if t.strip())
        if not changes["tasks"]:
            raise UserError(f"--task {args.task!r} names no task; give one or more, "
                            "comma-separated (e.g. --task and,or)")
    for option in ("seeds", "epochs"):
        if getattr(args, option) is not None:
            changes[option] = getattr(args, option)
    if args.graph:  # repeatable: every task is learned on each graph
        changes["graph"] = args.graph[0] if len(args.graph) == 1 else tuple(args.graph)
    if args.fresh_seeds is not None:
        changes["fresh_seeds"] = args.fresh_seeds
    if args.sequence:
        changes["sequence"] = True
    if getattr(args, "rungs", None) is not None:
        changes["rungs"] = rungs_from_text(args.rungs)
    if getattr(args, "eta", None) is not None:
        changes["eta"] = args.eta
    settings = dataclasses.replace(settings, screen=dataclasses.replace(screen, **changes))
    settings.space.make_protocol()
    settings.check()
    return settings


def _search_progress(total: int | None, quiet: bool):
    """A live progress line on stderr (tqdm): rules/s, the funnel, the best."""
    if quiet:
        return None, lambda: None
    try:
        from tqdm import tqdm
    except ImportError:
        return None, lambda: None
    bar = tqdm(total=total, unit=" rules", dynamic_ncols=True, file=sys.stderr,
               mininterval=0.25, smoothing=0.1)
    seen = [None]

    def update(progress) -> None:
        if seen[0] is None:  # rules stored by an earlier session
            seen[0] = progress.rules - progress.new
            bar.update(seen[0])
        bar.update(progress.rules - bar.n)
        funnel = " ".join(f"{name}:{count}" for name, count in
                          zip(progress.hurdles[1:], progress.passed[1:], strict=True))
        best = progress.best
        bar.set_postfix_str(f"{progress.rate:.0f}/s {funnel} best "
                            f"{best['passed']}+{best['score']:.2f}" if best else funnel,
                            refresh=False)

    return update, bar.close


def cmd_search(args: argparse.Namespace) -> int:
    from .backends.toolchain import available_cores
    from .search.hurdles import SCREEN_HURDLES
    from .search.run import Config, Search

    settings = _search_settings(args)
    start = []
    for path in args.start:
        loaded = _checked(path)
        if loaded is None:
            return 1
        start.append(loaded[0])
    if args.rules is None and args.minutes is None:
        args.rules = 1000
    if args.rules is not None and args.rules < 1:
        raise UserError("--rules must be at least 1")
    if args.minutes is not None and not 0 < args.minutes < math.inf:
        raise UserError(f"--minutes must be a number of minutes above 0, got {args.minutes}; "
                        "for a run without a time limit give --rules N instead")
    jobs = args.jobs if args.jobs is not None else available_cores()
    if jobs < 1:
        raise UserError("--jobs must be at least 1")
    if args.batch < 1:
        raise UserError(f"--batch must be at least 1 (rules per batch sent to a worker), "
                        f"got {args.batch}")
    if args.start_mutants < 0 or (args.start_mutants and not start):
        raise UserError("--start-mutants needs --start rules and a count of 0 or more")
    for flag, what in (("crossover", "cross two parents"), ("immigrants", "are random rules")):
        if not 0 <= getattr(args, flag) <= 1:
            raise UserError(f"--{flag} is the share of children that {what}, from 0 to 1; "
                            f"got {getattr(args, flag)}")
    config = Config(strategy=args.strategy, seed=args.seed, generation=args.generation,
                    population=args.population, tournament=args.tournament,
                    start=tuple(start), start_mutants=args.start_mutants,
                    crossover=args.crossover, immigrants=args.immigrants)
    search = Search(settings, config, args.db, jobs=jobs, scheduler=args.scheduler,
                    batch=args.batch, name=args.name)
    update, close = _search_progress(args.rules, args.quiet)
    search.on_progress = update
    began = time.monotonic()
    try:
        progress = search.run(args.rules, args.minutes)
    except KeyboardInterrupt:
        close()
        print(f"rulec: interrupted; every finished batch is in {args.db}: run the same "
              "command to resume", file=sys.stderr)
        return 130
    close()
    seconds = time.monotonic() - began
    where = "resumed" if not search.fresh_run else "new"
    print(f"run {search.run_id} ({where}) in {args.db}: {progress.rules} rules stored, "
          f"{progress.new} evaluated now in {seconds:.1f} s ({progress.new / seconds:.0f} "
          f"rules/s with {search.workers} workers)")
    print("passed: " + ", ".join(f"{name} {count}" for name, count in
                                 zip(progress.hurdles, progress.passed, strict=True)))
    print(f"duplicates skipped: {progress.exact_duplicates} exact, "
          f"{progress.behaviour_duplicates} behaviour")
    best = progress.best
    if best is not None and best["passed"] >= len(SCREEN_HURDLES):
        print(f"best: rule {best['idx']}, score {best['score']:.3f}, "
              f"{best['passed']}/{len(progress.hurdles)} hurdles"
              + (f", fresh seeds {best.get('fresh')}/{settings.screen.fresh_seeds}"
                 if best.get("fresh") is not None else ""))
    print(f"details: rulec search report {args.db}; best rules: rulec search export "
          f"{args.db} -o DIR")
    return 0


def cmd_search_score(args: argparse.Namespace) -> int:
    """Rules through exactly the evaluator a search with these settings uses."""
    import dataclasses
    import json

    from .search.hurdles import FRESH_SEED0, ablations, hidden_layer_needed, score_rule

    settings = _search_settings(args)
    if args.protocol:
        settings = dataclasses.replace(
            settings, space=dataclasses.replace(settings.space, protocol=args.protocol))
        settings.space.make_protocol()
    loaded = []
    for path in args.rules:
        found = _checked(path)
        if found is None:
            return 1
        loaded.append((path, found[0]))
    out = []
    for path, text in loaded:
        record = score_rule(text, settings)
        fresh = record.get("fresh")
        entry = {"rule": path, "passed": record["failure"] is None,
                 "failed_hurdle": record["failed_hurdle"], "reason": record["failure"],
                 "hurdles_passed": record["passed"], "hurdles": list(record["hurdles"]),
                 "score": record.get("score", 0.0),
                 "fresh": None if fresh is None else f"{fresh}/{record['fresh_of']}"}
        if args.ablate:
            entry["ablations"] = ablations(text, settings)
        if args.hidden:
            entry["hidden"] = hidden_layer_needed(text, settings)
        out.append(entry)
        if args.json:
            continue
        if entry["passed"]:
            seeds = settings.screen.fresh_seeds
            untouched = (f"; learned every task on {entry['fresh']} untouched seeds "
                         f"({FRESH_SEED0}..{FRESH_SEED0 + seeds - 1})" if seeds else "")
            print(f"{path}: passed every hurdle ({', '.join(entry['hurdles'])}){untouched}")
        else:
            print(f"{path}: failed at {entry['failed_hurdle']} ({entry['hurdles_passed']} of "
                  f"{len(entry['hurdles'])} hurdles passed): {entry['reason']}")
        for cut in entry.get("ablations", ()):
            verdict = "still passes every hurdle" if cut["passed"] else \
                f"fails at {cut['failed_hurdle']}: {cut['reason']}"
            print(f"  without line {cut['line']} ({cut['statement']}): {verdict}")
        for seed in entry.get("hidden", ()):
            if seed["reset"] is None:
                verdict = f"did not learn {settings.screen.tasks[0]} (accuracy " \
                          f"{seed['trained']:.2f})"
            else:
                needed = "needed" if seed["reset"] < 1.0 else "NOT needed"
                verdict = (f"hidden weights {'moved' if seed['moved'] else 'never moved'} after "
                           "the first epoch; "
                           f"put back to those values, accuracy {seed['reset']:.2f}: "
                           f"the hidden layer's learning is {needed}")
            print(f"  hidden layer, seed {seed['seed']}: {verdict}")
    if args.json:
        print(json.dumps(out, indent=2))
    return 0


def cmd_search_report(args: argparse.Namespace) -> int:
    from .search.report import report

    args.top_given = args.top is not None
    if args.top is None:
        args.top = 10
    if args.top < 1:
        raise UserError("--top must be at least 1")
    if args.format != "text":
        from .search.report import format_rows, result_rows

        top = args.top if args.format == "table" or args.top_given else None
        print(format_rows(result_rows(args.db, args.run, top), args.format))
        return 0
    rep = report(args.db, args.run, args.top)
    print(rep.text())
    if args.plot:
        for path in rep.plots(args.plot):
            print(f"wrote {path}")
    return 0


def cmd_search_runs(args: argparse.Namespace) -> int:
    import datetime
    import json

    from .search.report import runs

    found = runs(args.db)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    for run in found:
        when = datetime.datetime.fromtimestamp(run["created"], datetime.UTC)
        label = f" ({run['name']})" if run["name"] else ""
        print(f"run {run['id']}{label}: {run['strategy']}, seed {run['seed']}, tasks "
              f"{','.join(run['tasks'])} on {', '.join(run['graphs'])} ({run['protocol']}); "
              f"{run['rules']} rules; started {when:%Y-%m-%d %H:%M} UTC with rulec "
              f"{run['version']}")
    return 0


def cmd_search_dashboard(args: argparse.Namespace) -> int:
    from .search.dashboard import server

    try:
        httpd = server(args.db, args.host, args.port)
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port} ({exc.strerror}); choose "
                        f"another --port (0 picks a free one)") from None
    host, port = httpd.server_address[:2]
    run = None
    if args.run is not None:  # by id or name: the page's address holds the id
        from .search.report import pick_run

        run = pick_run(args.db, args.run)["id"]
    url = f"http://{host}:{port}/" + (f"#run={run}" if run is not None else "")
    print(f"dashboard of {args.db}: {url}  (read-only; Ctrl-C stops it)", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print("rulec: warning: listening beyond this machine: anyone who can connect sees "
              "the rules and results", file=sys.stderr)
    if args.open:
        import webbrowser

        webbrowser.open(url)
    try:
        httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print("rulec: dashboard stopped", file=sys.stderr)
        return 130
    finally:
        httpd.server_close()
    return 0


def cmd_search_export(args: argparse.Namespace) -> int:
    from .search.report import export

    if args.top < 1:
        raise UserError("--top must be at least 1")
    paths = export(args.db, args.output, args.top, args.run)
    if not paths:
        print(f"{args.db}: no rule to export yet")
        return 1
    for path in paths:
        print(f"wrote {path}")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from .backends import toolchain

    if args.action == "clear":
        removed = toolchain.cache_clear()
        entries = f"entr{'y' if removed == 1 else 'ies'}"
        print(f"removed {removed} {entries} from {toolchain.cache_dir()}")
        return 0
    info = toolchain.cache_info()
    print(f"directory: {info['directory']}")
    print(f"entries:   {info['entries']}")
    print(f"size:      {info['bytes'] / 2**20:.1f} MB of {info['limit_bytes'] / 2**20:.0f} MB"
          " (RULEC_CACHE_SIZE_MB)")
    print(f"compiler:  {info['compiler']} (CC)")
    print(f"flags:     {info['cflags']}")
    print("           (RULEC_CFLAGS adds flags after these; RULEC_CFLAGS_BASE replaces them)")
    return 0


# ---------------------------------------------------------------------- main


def _integer(text: str) -> int:
    """An integer option: `1000`, `1_000` or `1e3`. A value that is not a whole
    number cannot be parsed (exit 2); one out of range is refused by the
    command (exit 1)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(value)


BACKEND_HELP = ("c (SIMD C kernels; the default), vm (bytecode VM, no compiler call), "
                "numpy (the reference interpreter), cuda (an NVIDIA GPU; needs rulec[cuda]) "
                "or cuda-cpu (the CUDA kernels compiled for the CPU, to verify them)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rulec", description="Compile and run local rules on graphs.")
    parser.add_argument("--version", action="version", version=f"rulec {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser("check", help="check rule files; print every error")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    check.set_defaults(func=cmd_check)

    fmt = commands.add_parser("fmt", help="print rule files in canonical form")
    fmt.add_argument("files", nargs="+", metavar="FILE")
    mode = fmt.add_mutually_exclusive_group()
    mode.add_argument("-i", "--in-place", action="store_true", help="rewrite the files")
    mode.add_argument("--check", action="store_true",
                      help="exit 1 if a file is not in canonical form")
    fmt.set_defaults(func=cmd_fmt)

    run = commands.add_parser("run", help="run a rule on a graph and summarise the state")
    run.add_argument("file", metavar="FILE")
    run.add_argument("--graph", required=True, metavar="SPEC",
                     help="one of: " + ", ".join(SPECS))
    run.add_argument("--steps", type=_integer, default=1, metavar="K", help="steps to run (1)")
    run.add_argument("--seed", type=_integer, default=0, metavar="S", help="seed for init (0)")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="set a param (repeatable)")
    run.add_argument("--block", default="update", metavar="NAME",
                     help="the update block to step (update)")
    run.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND, help=BACKEND_HELP)
    run.add_argument("--load", metavar="STATE.npz", help="start from a saved state (skips init)")
    run.add_argument("--save", metavar="STATE.npz", help="save the final state")
    run.add_argument("--check-finite", action="store_true",
                     help="stop at the first step that produces NaN or inf")
    run.add_argument("--threads", type=_integer, default=1, metavar="T",
                     help="threads for the C backend (1); results do not depend on it")
    run.add_argument("--set", action="append", default=[], metavar="SLOT=VALUE",
                     help="set a slot before stepping (after init or --load): a number, "
                          "I:V,J:W (by node or half-edge index), uniform, gauss (seeded by "
                          "--seed) or @FILE (.npy or text); repeatable")
    run.add_argument("--record", action="append", default=[], metavar="SLOT[,SLOT]",
                     help="keep each named slot before the first step and every --every "
                     "steps (repeatable); with --record-out and --record-plot")
    run.add_argument("--every", type=_integer, default=1, metavar="K",
                     help="record every K steps (1)")
    run.add_argument("--record-out", metavar="REC.npz",
                     help="write the recording: `times` and one array (samples x values) "
                     "per slot")
    run.add_argument("--record-plot", metavar="PLOT.png",
                     help="plot the recorded slots over time")
    run.add_argument("--show", action="append", default=[], metavar="SLOT",
                     help="print every value of a slot after the run; repeatable")
    run.add_argument("--json", action="store_true",
                     help="print the run, slot statistics and --show values as JSON")
    run.add_argument("-q", "--quiet", action="store_true",
                     help="print only --show values (and errors)")
    run.set_defaults(func=cmd_run)

    train = commands.add_parser("train", help="train a rule on a learning task and score it")
    train.add_argument("file", metavar="RULE")
    train.add_argument("--task", required=True,
                       help="and, or, nand, xor, add2, sub2, parityN (e.g. parity3) or "
                            "table:BITS (a truth table, e.g. table:0110)")
    train.add_argument("--graph", required=True, metavar="SPEC",
                       help="layered:A,B,C[,bias] or waxman:HIDDEN[,SEED]")
    train.add_argument("--epochs", type=_integer, default=1000, metavar="N",
                       help="at most N epochs (1000); stops at 100%% unless --all-epochs")
    train.add_argument("--all-epochs", action="store_true", help="run every epoch")
    train.add_argument("--seeds", type=_integer, default=1, metavar="K",
                       help="train seeds --seed .. --seed+K-1 (1): one after another, or, "
                            "with -q or --json, up to 64 in one C call per chunk of epochs "
                            "(side by side as lanes on the VM, one state after another on "
                            "the C kernels)")
    train.add_argument("--hold", type=_integer, default=1, metavar="H",
                       help="stop once 100%% accurate for H epochs in a row (1)")
    train.add_argument("--confirm", type=_integer, default=0, metavar="C",
                       help="then score C more passes without training (0)")
    train.add_argument("--retain", type=_integer, default=0, metavar="R",
                       help="after the goal at epoch E, train max(E, R) more epochs to see "
                       "that it holds (0: stop at the goal)")
    train.add_argument("--margin", type=float, default=0.0, metavar="M",
                       help="score an answer right only if it clears the threshold by M, as "
                       "a search with [screen] margin does (0)")
    train.add_argument("--json", action="store_true",
                       help="one JSON object: per seed its epochs, accuracy, the search's "
                       "score of the seed (docs/search.md), outputs")
    train.add_argument("--seed", type=_integer, default=0, metavar="S",
                       help="seed for init and the task's orders (0)")
    train.add_argument("--budget", type=_integer, default=100, metavar="STEPS",
                       help="steps allowed per forward or backward phase (100)")
    train.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                       help="set a param (repeatable)")
    train.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND, help=BACKEND_HELP)
    train.add_argument("--plot", metavar="CURVE.png", help="write the learning curve")
    train.add_argument("--protocol", choices=tuple(PROTOCOLS),
                       default="handshake",
                       help="how the harness talks to the rule: handshake (ready/done flags, "
                            "backprop.rule's), fixed (clamp inputs, --forward steps, read; "
                            "targets and train flag for --learn steps) or simultaneous "
                            "(inputs and targets together for --forward steps)")
    train.add_argument("--forward", type=_integer, metavar="K",
                       help="steps with the inputs presented (fixed: 10; simultaneous: 10)")
    train.add_argument("--learn", type=_integer, metavar="L",
                       help="steps with the targets presented (fixed: 10)")
    train.add_argument("--settle", type=float, default=0.0, metavar="TOL",
                       help="fixed: instead of --forward steps, step until a step moves the "
                            "outputs by at most TOL, at most --budget steps (a recurrent "
                            "rule's relaxation; 0: off)")
    train.add_argument("--map", action="append", default=[], metavar="ROLE=SLOT",
                       help="use the rule's slot SLOT for a protocol role (input, input_flag, "
                            "output_flag, target, train_flag, output, ready, done, error, "
                            "reset_block, block); "
                            "ROLE= drops an optional role; repeatable (docs/learning.md)")
    train.set_defaults(func=cmd_train)

    emit = commands.add_parser("emit", help="print the C (or CUDA) code generated for a rule")
    emit.add_argument("file", metavar="FILE")
    emit.add_argument("--prefix", metavar="NAME",
                      help="prefix of the kernel names (the rule's name)")
    emit.add_argument("--backend", choices=("c", "cuda"), default="c",
                      help="c (the C kernels; the default) or cuda (the CUDA kernels, "
                           "docs/cuda.md)")
    emit.set_defaults(func=cmd_emit)

    export = commands.add_parser("export", help="write a rule as a standalone C package")
    export.add_argument("file", metavar="FILE")
    export.add_argument("-o", "--output", required=True, metavar="DIR",
                        help="directory to write (created if missing)")
    export.add_argument("--prefix", metavar="NAME",
                        help="prefix of every exported symbol (the rule's name)")
    export.set_defaults(func=cmd_export)

    fuzz = commands.add_parser("fuzz", help="differentially test random rules: C and the VM "
                               "against the reference interpreter")
    fuzz.add_argument("--count", type=_integer, default=200, metavar="N", help="rules (200)")
    fuzz.add_argument("--seed", type=_integer, default=0, metavar="S", help="generator seed (0)")
    fuzz.add_argument("--depth", type=_integer, default=3, metavar="D",
                      help="maximum expression depth (3)")
    fuzz.add_argument("--statements", type=_integer, default=5, metavar="S",
                      help="most statements per block (5)")
    fuzz.add_argument("--jobs", type=_integer, metavar="J",
                      help="worker processes (default: one per core); each builds its "
                      "rules with cores/J compiler processes while the others check theirs")
    fuzz.add_argument("--out", metavar="DIR",
                      help="write each failure's shrunk rule, graph and state here")
    fuzz.add_argument("--backend", choices=("all", "c", "vm", "cuda-cpu", "cuda"),
                      default="all",
                      help="the backends checked against the reference (all: c and vm; "
                           "cuda-cpu: the CUDA kernels compiled for the CPU)")
    fuzz.add_argument("--replay", metavar="RULE", help="check one written-out failure again")
    fuzz.add_argument("--graph", metavar="SPEC", help="with --replay: the failure's graph")
    fuzz.add_argument("--state", metavar="STATE.npz", help="with --replay: the failure's state")
    fuzz.set_defaults(func=cmd_fuzz)

    search = commands.add_parser(
        "search", help="search for learning rules: generate, screen, evolve, store "
        "(also: search report DB, search export DB, search runs DB, search dashboard DB)",
        description="Search for local learning rules (docs/search.md). Running the same "
        "command on the same database resumes the run. See also `rulec search report DB` "
        "and `rulec search export DB -o DIR`.")
    search.add_argument("--task", metavar="T1,T2",
                        help="tasks in order of difficulty, comma-separated (and,or)")
    search.add_argument("--graph", metavar="SPEC", action="append",
                        help="the task topology (layered:2,1,bias); repeat it to screen every "
                        "rule on several graphs")
    search.add_argument("--rules", type=_integer, metavar="N",
                        help="stop once the run holds N rules (1000 if --minutes is not given)")
    search.add_argument("--minutes", type=float, metavar="M", help="stop after M minutes")
    search.add_argument("--db", default="search.sqlite", metavar="DB",
                        help="results: a SQLite file or postgresql://USER@HOST/DB "
                             "(search.sqlite)")
    search.add_argument("--space", metavar="FILE", help="a search space file (TOML)")
    search.add_argument("--strategy", choices=("random", "evolve"), default="random",
                        help="random search or regularized evolution (random)")
    search.add_argument("--start", action="append", default=[], metavar="RULE",
                        help="a .rule file to evaluate first and evolve from; repeatable")
    search.add_argument("--start-mutants", type=_integer, default=0, metavar="K",
                        help="evolution: K mutants of each --start rule join the first "
                             "population (0)")
    search.add_argument("--name", metavar="NAME",
                        help="a label for a new run, to pick it by in report, export and "
                             "dashboard (--run NAME); not part of the run's identity")
    search.add_argument("--seed", type=_integer, default=0, metavar="S",
                        help="the run's seed (0)")
    search.add_argument("--jobs", type=_integer, metavar="J",
                        help="local worker processes (all cores)")
    search.add_argument("--scheduler", metavar="ADDR",
                        help="a Dask scheduler (tcp://HOST:8786) instead of local processes")
    search.add_argument("--seeds", type=_integer, metavar="K", help="seeds per task hurdle (3)")
    search.add_argument("--epochs", type=_integer, metavar="E", help="epochs per seed (30)")
    search.add_argument("--sequence", action="store_true",
                        help="learn the tasks one after another on one state: each seed learns "
                             "the next task from the state the one before left (the space's "
                             "[screen] sequence)")
    search.add_argument("--fresh-seeds", type=_integer, metavar="K",
                        help="held-out seeds for the rules that pass every task (10)")
    search.add_argument("--rungs", metavar="E1,E2",
                        help="successive halving: train every rule that passed screening "
                             "E1 epochs first, and only the top 1/eta of those so far E2, "
                             "..., then the task hurdles (the space's [screen] rungs; none)")
    search.add_argument("--eta", type=_integer, metavar="N",
                        help="successive halving: the top 1/N of a rung go up (3)")
    search.add_argument("--generation", type=_integer, default=64, metavar="G",
                        help="rules per generation (64)")
    search.add_argument("--population", type=_integer, default=100, metavar="P",
                        help="evolution: population size (100)")
    search.add_argument("--tournament", type=_integer, default=10, metavar="T",
                        help="evolution: tournament size (10)")
    search.add_argument("--crossover", type=float, default=0.2, metavar="F",
                        help="evolution: the share of children that cross two parents (0.2)")
    search.add_argument("--immigrants", type=float, default=0.25, metavar="F",
                        help="evolution: the share of children drawn at random (0.25)")
    search.add_argument("--batch", type=_integer, default=16, metavar="B",
                        help="rules per batch sent to a worker (16)")
    search.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    search.set_defaults(func=cmd_search)

    score = commands.add_parser("search-score",
                                description="Score rules with exactly the evaluator a "
                                "search with these settings uses: which hurdles each "
                                "passes, why it fails, and on how many untouched seeds it "
                                "learns. Exit 0 once every rule is scored, whatever the "
                                "verdicts.")
    score.prog = "rulec search score"
    score.add_argument("rules", nargs="+", metavar="RULE", help=".rule files")
    score.add_argument("--space", metavar="FILE", help="a search space file (TOML)")
    score.add_argument("--task", metavar="T1,T2", help="tasks (the space's, else and,or)")
    score.add_argument("--graph", metavar="SPEC", action="append",
                       help="the task topology (the space's); repeatable")
    score.add_argument("--protocol", choices=tuple(PROTOCOLS),
                       help="the protocol (the space's, else fixed)")
    score.add_argument("--seeds", type=_integer, metavar="K", help="seeds per task hurdle")
    score.add_argument("--epochs", type=_integer, metavar="E", help="epochs per seed")
    score.add_argument("--fresh-seeds", type=_integer, metavar="K",
                       help="untouched seeds to report learning on")
    score.add_argument("--sequence", action="store_true",
                       help="learn the tasks one after another on one state: each seed learns "
                            "the next task from the state the one before left (the space's "
                            "[screen] sequence)")
    score.add_argument("--hidden", action="store_true",
                       help="also train each rule on 3 untouched seeds of the first task and "
                            "put its hidden nodes' incoming weights back to their initial "
                            "values: is what its hidden layer learned needed?")
    score.add_argument("--ablate", action="store_true",
                       help="also score each rule without each statement of its update "
                            "blocks in turn (in if bodies too): which statements its "
                            "learning needs")
    score.add_argument("--json", action="store_true",
                       help="a JSON list, one object per rule: rule, passed, failed_hurdle, "
                            "reason, fresh (k/n), hurdles_passed, hurdles, score")
    score.set_defaults(func=cmd_search_score)

    report = commands.add_parser("search-report",
                                 description="What a search found: funnel, throughput, hall "
                                 "of fame, plots.")
    report.prog = "rulec search report"
    report.add_argument("db", metavar="DB")
    report.add_argument("--run", metavar="ID|NAME",
                        help="the run, by id or --name (the last one)")
    report.add_argument("--top", type=_integer, metavar="K",
                        help="rules in the hall of fame (10); with csv or json, only the K "
                        "best rules (every rule otherwise)")
    report.add_argument("--format", choices=("text", "table", "csv", "json"), default="text",
                        help="text: the summary (the default); table: the best rules, one "
                        "line each; csv, json: every rule's results (columns: "
                        "docs/search.md)")
    report.add_argument("--plot", metavar="DIR", help="write funnel, score and best-so-far "
                        "plots (PNG) here")
    report.set_defaults(func=cmd_search_report)

    runs = commands.add_parser("search-runs", description="The runs a search database "
                               "holds: id, strategy, seed, tasks, graphs, rules stored.")
    runs.prog = "rulec search runs"
    runs.add_argument("db", metavar="DB")
    runs.add_argument("--json", action="store_true", help="a JSON list, one object per run")
    runs.set_defaults(func=cmd_search_runs)

    dashboard = commands.add_parser("search-dashboard",
                                    description="Serve a live, read-only web page of a search "
                                    "database: the pass funnel, the best so far over time, the "
                                    "hall of fame with each rule's text, lineage and learning "
                                    "curves (docs/search.md, \"The dashboard\").")
    dashboard.prog = "rulec search dashboard"
    dashboard.add_argument("db", metavar="DB")
    dashboard.add_argument("--run", metavar="ID|NAME",
                           help="the run to show first, by id or --name (the last one)")
    dashboard.add_argument("--host", default="127.0.0.1", metavar="ADDR",
                           help="the address to listen on (127.0.0.1: this machine only)")
    dashboard.add_argument("--port", type=_integer, default=8765, metavar="PORT",
                           help="the port (8765; 0 picks a free one)")
    dashboard.add_argument("--open", action="store_true", help="open it in a web browser")
    dashboard.set_defaults(func=cmd_search_dashboard)

    export_found = commands.add_parser("search-export",
                                       description="Write the best rules of a search as "
                                       ".rule files.")
    export_found.prog = "rulec search export"
    export_found.add_argument("db", metavar="DB")
    export_found.add_argument("-o", "--output", required=True, metavar="DIR",
                              help="the directory to write the .rule files to")
    export_found.add_argument("--top", type=_integer, default=5, metavar="K",
                              help="how many rules (5)")
    export_found.add_argument("--run", metavar="ID|NAME",
                              help="the run, by id or --name (the last one)")
    export_found.set_defaults(func=cmd_search_export)
    # `search report`, `export` and `score` are spelled as two words: keep their
    # internal names out of the command list
    commands._choices_actions = [action for action in commands._choices_actions
                                 if action.dest not in ("search-report", "search-export",
                                                        "search-score", "search-dashboard")]

    cache = commands.add_parser("cache", help="show or clear the build cache")
    cache.add_argument("action", choices=("info", "clear"))
    cache.set_defaults(func=cmd_cache)
    for command in commands.choices.values():
        _common_flags(command)
    return parser


def _common_flags(command: argparse.ArgumentParser) -> None:
    """-q and -v on every command (a command may define its own -q first)."""
    if not any(action.dest == "quiet" for action in command._actions):
        command.add_argument("-q", "--quiet", action="store_true",
                             help="print only results and errors: no progress, no warnings")
    command.add_argument("-v", "--verbose", action="store_true",
                         help="also say on stderr what rulec does: each rule's backend and "
                         "build time, kernel cache hits and compiler calls")


def reference() -> str:
    """docs/cli.md: every command and every flag, from the parser itself
    (tests/test_cli.py checks the file is current)."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {action.dest: action.help for action in commands._choices_actions}
    out = ["# Command-line reference", "",
           "Every command and flag of `rulec` (generated from the parser: "
           "`python -c 'import rulec.cli as c; print(c.reference(), end=\"\")' > docs/cli.md`).",
           "", "Exit codes: 0 success; 1 the inputs are wrong (a rule error, a bad value, a "
           "failed check); 2 the command line cannot be parsed; 3 an internal error (a bug); "
           "130 interrupted; 141 the reader of the output went away; 143 terminated (SIGTERM).",
           "",
           "Every command takes `-h` (help), `-q` (print only results and errors) and `-v` "
           "(say on stderr what rulec does: backends, build times, cache hits, compiler "
           "calls).", ""]
    for name, command in commands.choices.items():
        title = command.prog.replace("rulec ", "", 1)
        out += [f"## `rulec {title}`", ""]
        text = helps.get(name) or command.description or ""
        if text:
            out += [text[0].upper() + text[1:] + ("" if text.endswith(".") else "."), ""]
        usage = command.format_usage().replace("usage: ", "", 1).strip()
        out += ["```", " ".join(usage.split()), "```", ""]
        rows = []
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            flags = ", ".join(f"`{f}`" for f in action.option_strings) or \
                f"`{action.metavar or action.dest}`"
            value = "" if action.nargs == 0 or not action.option_strings else (
                action.metavar or action.dest.upper())
            if action.choices and not action.metavar:
                value = "{" + ",".join(map(str, action.choices)) + "}"
                if not action.option_strings:
                    flags, value = f"`{value}`", ""
            described = (action.help or ("the input" + (
                "s" if action.nargs in ("+", "*") else "") if not action.option_strings
                else "")).replace("|", "\\|")
            # argparse's own escapes: %(default)s, and %% for a percent sign
            described = described.replace("%(default)s", str(action.default)).replace("%%", "%")
            rows.append(f"| {flags} | {f'`{value}`' if value else ''} | {described} |")
        out += ["| flag | value | what it does |", "|---|---|---|", *rows, ""]
    return "\n".join(out)


def _log_to_stderr() -> None:
    """Send rulec's log (what -v shows) to stderr, once per process."""
    log = logging.getLogger("rulec")
    log.setLevel(logging.INFO)
    if not any(getattr(h, "rulec_cli", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("rulec: %(message)s"))
        handler.rulec_cli = True
        log.addHandler(handler)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as the CLI says everything: one line, no source path (a
    rule's warnings come rendered already: file:line:col, the line, a caret)."""
    text = str(message) if issubclass(category, RuleWarning) else f"rulec: warning: {message}"
    print(text, file=file or sys.stderr)


def _terminated(signum, frame) -> None:
    print("rulec: terminated", file=sys.stderr)
    sys.exit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 2 and argv[0] == "search" and argv[1] in ("report", "export", "score",
                                                              "runs", "dashboard"):
        argv = [f"search-{argv[1]}", *argv[2:]]  # `rulec search report DB`
    args = parser.parse_args(argv)
    if args.verbose:
        _log_to_stderr()
    on_term = None
    if threading.current_thread() is threading.main_thread():
        # SIGTERM unwinds like an exit: builds remove their directories and
        # kill their compilers, stores close (kill -9 cannot; the next build
        # sweeps what a killed one left)
        on_term = signal.signal(signal.SIGTERM, _terminated)
    try:
        with warnings.catch_warnings():  # the caller's filters come back after
            warnings.simplefilter("ignore" if args.quiet else "always", RuleWarning)
            if args.quiet:
                warnings.simplefilter("ignore")
            warnings.showwarning = _show_warning
            return _run(args)
    finally:
        if on_term is not None:
            signal.signal(signal.SIGTERM, on_term)


def _run(args: argparse.Namespace) -> int:
    """Run the command; every error a user causes becomes one line and an exit code."""
    try:
        return args.func(args)
    except RuleErrors as errors:
        print(errors, file=sys.stderr)
    except RulecError as exc:  # every other error rulec reports to users
        print(f"rulec: error: {exc}", file=sys.stderr)
    except BrokenPipeError:  # the reader went away (`rulec ... | head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"rulec: error: {where}{exc.strerror or exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("rulec: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("rulec: error: not enough memory: the graph or the state is too large for this "
              "machine; try a smaller --graph", file=sys.stderr)
    except Exception:  # an internal error: say so without a wall of traceback
        if os.environ.get("RULEC_DEBUG"):
            traceback.print_exc()
        exc = sys.exc_info()[1]
        print(f"rulec: internal error: {type(exc).__name__}: {exc}\n"
              "  this is a bug in rulec; please report it with the command and files "
              "(RULEC_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 3
    return 1


if __name__ == "__main__":
    sys.exit(main())
