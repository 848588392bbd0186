"""What a search found: the funnel, throughput, hall of fame, plots, exports.

    rep = report("runs.sqlite")          # the last run in the database
    print(rep.text())
    rep.plots("plots/")                  # PNGs (needs matplotlib)
    export("runs.sqlite", "found/", top=5)
"""

from __future__ import annotations

import json
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import write_atomic
from .hurdles import SCREEN_HURDLES, hurdle_names, rank_key
from .space import Settings, SpaceError, settings_to_toml
from .store import Store


@dataclass
class Report:
    run: dict
    settings: Settings
    hurdles: tuple[str, ...]
    rules: list[dict]  # every rule, in index order (no text)
    passed: list[int] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # total time per hurdle
    hall: list[dict] = field(default_factory=list)  # the best rules (rank_key), `pareto` marked

    @property
    def exact(self) -> int:
        return sum(r["duplicate"] == "exact" for r in self.rules)

    @property
    def behaviour(self) -> int:
        return sum(r["duplicate"] == "behaviour" for r in self.rules)

    def throughput(self) -> float:
        """Rules stored per second of worker time, over every session."""
        work = sum(self.seconds.values())
        return len(self.rules) / work if work > 0 else float("nan")

    def wall_rate(self) -> float:
        """Rules per wall-clock second from the first to the last rule stored."""
        if len(self.rules) < 2:
            return float("nan")
        times = [r["created"] for r in self.rules]
        span = max(times) - min(times)
        return len(self.rules) / span if span > 0 else float("nan")

    def text(self) -> str:
        config = json.loads(self.run["config"])
        s = self.settings
        lines = [f"run {self.run['id']} ({config['strategy']}, seed {config['seed']}): "
                 f"tasks {', '.join(s.screen.tasks)} on {', '.join(s.screen.graphs)}, protocol "
                 f"{s.space.protocol}; {len(self.rules)} rules",
                 f"duplicates skipped: {self.exact} exact (same canonical text), "
                 f"{self.behaviour} behaviour (same probe outputs)",
                 _throughput_line(self.wall_rate(), self.throughput()),
                 "", f"{'hurdle':<12} {'passed':>9} {'of all':>8} {'time/rule':>10}"]
        total = max(len(self.rules), 1)
        reached = [total] + self.passed[:-1]
        for name, count, entered in zip(self.hurdles, self.passed, reached, strict=True):
            per = self.seconds.get(name, 0.0) / max(entered, 1)
            lines.append(f"{name:<12} {count:>9} {100 * count / total:>7.2f}% "
                         f"{per * 1e3:>8.3f}ms")
        lines += ["", "hall of fame (best first: hurdles, score, untouched seeds, size; "
                      "* on the Pareto front of score and size):"]
        if not self.hall:
            lines.append("  (no rule passed screening yet)")
        for r in self.hall:
            fresh = f", {r['fresh']}/{s.screen.fresh_seeds} fresh seeds" \
                if r.get("fresh") is not None else ""
            lines.append(f"{'*' if r.get('pareto') else ' '} rule {r['idx']}: score "
                         f"{r['score']:.3f}, size {r['size']}, "
                         f"{r['passed']}/{len(self.hurdles)} hurdles{fresh}"
                         + (f" ({r['mutation']} of {r['parent']})" if r["parent"] is not None
                            else ""))
            if r.get("text"):
                lines += ["    " + line for line in r["text"].strip().splitlines()]
        return "\n".join(lines)

    def plots(self, directory: str | Path) -> list[Path]:
        """Funnel, score histogram and best-so-far curve as PNGs in `directory`."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise SpaceError("--plot needs matplotlib: pip install '.[plot]' (from a clone)") \
                from None
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        written = []

        def save(figure, name):
            path = directory / name
            figure.tight_layout()
            write_atomic(path, lambda handle: figure.savefig(handle, format="png", dpi=100))
            plt.close(figure)
            written.append(path)

        figure, axes = plt.subplots(figsize=(7, 3.5))
        axes.bar(range(len(self.hurdles)), self.passed, color="tab:blue")
        # linear from 0 with counts on the bars: on a log axis that starts near
        # the smallest bar, a 65% hurdle looked like a sliver and 0 vanished
        axes.set_ylim(0, max(len(self.rules), 1) * 1.12)
        axes.set_xticks(range(len(self.hurdles)), self.hurdles, rotation=30)
        axes.set_ylabel("rules passing")
        axes.set_title(f"pass funnel, {len(self.rules)} rules")
        for x, count in enumerate(self.passed):
            axes.annotate(str(count), (x, max(count, 1)), ha="center", va="bottom", fontsize=8)
        save(figure, "funnel.png")

        screened = [r["score"] for r in self.rules if r["passed"] >= len(SCREEN_HURDLES)]
        figure, axes = plt.subplots(figsize=(6, 3.5))
        axes.hist(screened or [0.0], bins=20, range=(0, 1), color="tab:green")
        axes.set_xlabel("score (mean accuracy over the task hurdles reached)")
        axes.set_ylabel("rules")
        axes.set_title(f"scores of the {len(screened)} rules that passed screening")
        save(figure, "scores.png")

        # best so far against wall time since the run's first rule (and the
        # rules evaluated on a second axis); the y ticks name the hurdles
        figure, axes = plt.subplots(figsize=(7, 3.8))
        rules = sorted(self.rules, key=lambda r: (r["created"], r["idx"]))
        start = rules[0]["created"] if rules else 0.0
        best, curve, times = -1.0, [], []
        for r in rules:
            best = max(best, r["passed"] + r["score"])
            curve.append(best)
            times.append((r["created"] - start) / 60)
        axes.step(times, curve, where="post", color="tab:red")
        axes.set_xlabel("minutes since the run's first rule")
        axes.set_ylabel("best: hurdles passed + score")
        axes.set_yticks(range(len(self.hurdles) + 1),
                        ["none"] + [f"{k + 1}: {h}" for k, h in enumerate(self.hurdles)],
                        fontsize=7)
        axes.grid(alpha=0.3)
        axes.set_title(f"best so far ({len(rules)} rules)")
        save(figure, "best.png")

        figure, axes = plt.subplots(figsize=(6, 3.5))
        screened = [r["size"] for r in self.rules if r["passed"] >= len(SCREEN_HURDLES)]
        stopped = [r["size"] for r in self.rules if r["passed"] < len(SCREEN_HURDLES)]
        axes.hist([stopped or [0], screened or [0]], bins=30, stacked=True,
                  color=["tab:gray", "tab:green"],
                  label=[f"stopped in screening ({len(stopped)})",
                         f"passed screening ({len(screened)})"])
        axes.set_xlabel("rule size (statements + expression nodes)")
        axes.set_ylabel("rules")
        axes.legend(fontsize="small")
        save(figure, "sizes.png")
        return written


def _pick_run(store: Store, run: int | str | None) -> dict:
    """A run by id, by name (`rulec search --name`; the last run of that
    name), or the last run."""
    runs = store.list_runs()
    if not runs:
        raise SpaceError(f"{store.url}: the database holds no search run yet")
    if run is None:
        return runs[-1]
    if isinstance(run, str) and run.strip().isdigit():
        run = int(run)
    for row in reversed(runs):
        if row["id"] == run or (isinstance(run, str) and _name(row) == run):
            return row
    listed = ", ".join(str(r["id"]) + (f" ({_name(r)})" if _name(r) else "") for r in runs)
    raise SpaceError(f"no run {run!r} in the database; runs: {listed}")


def pick_run(db: str, run: int | str | None) -> dict:
    """The run row `run` names in `db` (an id, a name, or None: the last)."""
    store = Store(db, readonly=True)
    try:
        return _pick_run(store, run)
    finally:
        store.close()


def _name(row: dict) -> str | None:
    return json.loads(row["config"]).get("name")


def _throughput_line(wall: float, per_worker: float) -> str:
    """The report's throughput line; a rate that cannot be measured (one
    rule, or all stored in the same instant) is said so, not printed as nan."""
    def rate(value: float, what: str) -> str:
        return f"{value:.1f} rules/s {what}" if math.isfinite(value) else \
            f"too few rules to time {what}"

    return (f"throughput: {rate(wall, 'wall clock')}; "
            f"{rate(per_worker, 'per worker-second of evaluation')}")


def pareto(rules: list[dict]) -> list[dict]:
    """The rules no other rule beats on both score (higher) and size (smaller)."""
    front, best = [], -1.0
    for r in sorted(rules, key=lambda r: (r["size"], -r["score"], r["idx"])):
        if r["score"] > best:
            front.append(r)
            best = r["score"]
    return sorted(front, key=lambda r: (-r["score"], r["size"]))


def _printable(text: str) -> str:
    """`text` on one line: a character that is not printable (a newline, a
    line separator) becomes `?`, so a stored value cannot end a comment."""
    return "".join(c if c.isprintable() else "?" for c in str(text))


def _word(text: str) -> str:
    """`text` as one shell word, quoted where needed, on one line."""
    return shlex.quote(_printable(text))


def report(db: str, run: int | None = None, top: int = 10) -> Report:
    store = Store(db, readonly=True)
    try:
        row = _pick_run(store, run)
        settings = Settings.from_dict(json.loads(row["settings"]))
        hurdles = hurdle_names(settings)
        rules = store.rules_of(row["id"], ("idx", "passed", "score", "fresh", "size", "duplicate",
                                           "timings", "created", "parent", "mutation"))
        rep = Report(row, settings, hurdles, rules)
        rep.passed = [sum(r["passed"] > k for r in rules) for k in range(len(hurdles))]
        for r in rules:
            for name, seconds in json.loads(r.pop("timings")).items():
                rep.seconds[name] = rep.seconds.get(name, 0.0) + seconds
        candidates = [r for r in rules
                      if r["duplicate"] is None and r["passed"] >= len(SCREEN_HURDLES)]
        front = pareto(candidates)
        on_front = {r["idx"] for r in front}
        for r in candidates:
            r["pareto"] = r["idx"] in on_front
        # best first by one key (the summary's best and export's first are this
        # list's first); those on the Pareto front of score and size are marked
        rep.hall = sorted(candidates, key=rank_key)[:top]
        texts = {r["idx"]: r["text"] for r in store.rules_of(
            row["id"], ("idx", "text"),
            where=lambda c: c.idx.in_([h["idx"] for h in rep.hall]))} if rep.hall else {}
        for r in rep.hall:
            r["text"] = texts.get(r["idx"])
        return rep
    finally:
        store.close()


def runs(db: str) -> list[dict]:
    """The runs a database holds, oldest first: `id`, `name` (None if it
    was not named), `strategy`, `seed`,
    `tasks`, `graphs`, `protocol`, `rules` (stored), `created` (seconds
    since the epoch), `version` (the rulec that made it)."""
    store = Store(db, readonly=True)
    try:
        out = []
        for row in store.list_runs():
            settings = Settings.from_dict(json.loads(row["settings"]))
            config = json.loads(row["config"])
            count = store.count(row["id"])
            out.append({"id": row["id"], "name": config.get("name"),
                        "strategy": config["strategy"],
                        "seed": config["seed"], "tasks": list(settings.screen.tasks),
                        "graphs": list(settings.screen.graphs),
                        "protocol": settings.space.protocol, "rules": count,
                        "created": row["created"], "version": row["version"]})
        return out
    finally:
        store.close()


#: The columns of results() and `rulec search report --format csv|json`.
RESULT_COLUMNS = ("idx", "generation", "passed", "failed_hurdle", "failure", "score", "fresh",
                  "size", "duplicate", "duplicate_of", "parent", "mutation", "seconds", "text")


def result_rows(db: str, run: int | None = None, top: int | None = None) -> list[dict]:
    """Every rule of a run as a plain dict (RESULT_COLUMNS), in index order;
    with `top`, the `top` best instead, best first, ranked as the report's
    hall of fame and export rank them (duplicates are never among them: a
    duplicate's results are its original's). `failed_hurdle` names the
    hurdle a rule stopped at (None if it cleared all)."""
    store = Store(db, readonly=True)
    try:
        row = _pick_run(store, run)
        settings = Settings.from_dict(json.loads(row["settings"]))
        columns = tuple(c for c in RESULT_COLUMNS if c != "failed_hurdle")
        rules = store.rules_of(row["id"], columns)
    finally:
        store.close()
    hurdles = hurdle_names(settings)
    for r in rules:
        r["failed_hurdle"] = None if r["failure"] is None else \
            hurdles[min(r["passed"], len(hurdles) - 1)]
    if top is not None:
        rules = sorted((r for r in rules if r["duplicate"] is None
                        and r["passed"] >= len(SCREEN_HURDLES)), key=rank_key)[:top]
    return [{c: r[c] for c in RESULT_COLUMNS} for r in rules]


def results(db: str, run: int | None = None, top: int | None = None):
    """A run's rules as a table: a pandas DataFrame (indexed by `idx`) when
    pandas is installed, else the list of result_rows() dicts."""
    rows = result_rows(db, run, top)
    try:
        import pandas
    except ImportError:
        return rows
    return pandas.DataFrame(rows, columns=list(RESULT_COLUMNS)).set_index("idx")


def format_rows(rows: list[dict], kind: str) -> str:
    """Result rows as `table` (aligned text, one line per rule, no rule
    text), `csv` (every column) or `json` (a list of objects)."""
    if kind == "json":
        return json.dumps(rows, indent=2)
    if kind == "csv":
        import csv
        import io

        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(RESULT_COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue().rstrip("\n")
    shown = ("idx", "passed", "failed_hurdle", "score", "fresh", "size", "duplicate",
             "parent", "mutation")

    def cell(value) -> str:
        if value is None:
            return "-"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    table = [list(shown)] + [[cell(r[c]) for c in shown] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(shown))]
    return "\n".join("  ".join(v.rjust(w) if i not in (2, 6, 8) else v.ljust(w)
                               for i, (v, w) in enumerate(zip(line, widths, strict=True)))
                     .rstrip() for line in table)


def export(db: str, directory: str | Path, top: int = 5, run: int | None = None) -> list[Path]:
    """The `top` best rules (score, then fresh seeds, then size) as .rule files,
    each with the `rulec train` command that reproduces its evaluation."""
    from .. import syntax as ast
    from ..parser import parse_text
    from ..printer import format_tree

    store = Store(db, readonly=True)
    try:
        row = _pick_run(store, run)
        settings = Settings.from_dict(json.loads(row["settings"]))
        rules = store.rules_of(row["id"], ("idx", "text", "score", "fresh", "size", "passed"),
                               where=lambda c: c.duplicate.is_(None))
    finally:
        store.close()
    rules.sort(key=rank_key)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    space, screen = settings.space, settings.screen
    protocol_options = f"--protocol {space.protocol}"
    if space.protocol == "fixed":
        protocol_options += f" --forward {space.forward} --learn {space.learn}"
    elif space.protocol == "simultaneous":
        protocol_options += f" --forward {space.forward}"
    else:
        protocol_options += f" --budget {space.budget}"
    protocol_options += "".join(" --map " + _word(role + "=" + (slot or ""))
                                for role, slot in space.slots)
    written = []
    space_file = directory / "space.toml"
    write_atomic(space_file, settings_to_toml(settings).encode())
    for rank, r in enumerate(rules[:top], 1):
        tree = parse_text(r["text"], "found.rule")
        name = f"found_{r['idx']}"
        tree = ast.File(tuple(ast.RuleDecl(name) if isinstance(item, ast.RuleDecl) else item
                              for item in tree.items))
        fresh = f"; learned every task on {r['fresh']} of {screen.fresh_seeds} fresh seeds " \
                f"(seeds 1000..{999 + screen.fresh_seeds})" if r["fresh"] is not None else ""
        path = directory / f"{rank:02d}_{name}.rule"
        tasks = ", ".join(_printable(t) for t in screen.tasks)
        header = [f"# Found by rulec search (run {row['id']}, rule {r['idx']}): score "
                  f"{r['score']:.3f} over tasks {tasks}{fresh}.",
                  "# Score it as the search did (every hurdle, the run's settings):",
                  f"#   rulec search score {_word(path.name)} --space space.toml --ablate",
                  f"# Train it on the search's {screen.seeds} seed(s) per task, scored as "
                  "the task hurdles score them:"]
        for task in screen.tasks:
            for graph in screen.graphs:
                header.append(f"#   rulec train {_word(path.name)} --task {_word(task)} "
                              f"--graph {_word(graph)} {protocol_options} "
                              f"--epochs {screen.epochs} --seeds {screen.seeds} "
                              f"--hold {screen.hold} --confirm {screen.hold} "
                              f"--retain {screen.retain}"
                              + (f" --margin {screen.margin}" if screen.margin else ""))
        text = "\n".join(header) + "\n" + format_tree(tree)
        write_atomic(path, text.encode())
        written.append(path)
    return written
