"""`rulec search dashboard DB`: a live, read-only web page of a search.

A small HTTP server from the standard library (http.server; nothing to
install, nothing fetched from a CDN: the page's HTML, script and style ship
in the wheel, rulec/search/static/) serves the page and a JSON API that
reads the store read-only:

    /                       the page (static/dashboard.html, .js, .css)
    /api/runs               the runs (report.runs)
    /api/run?run=ID         a run now: its funnel, best so far over time, hall
                            of fame with each rule's text (the last run without ID)
    /api/rule?run=ID&idx=I  a rule: text, results per task and seed, lineage
    /api/curves?run=ID&idx=I  its learning curves, trained now as the run's
                            task hurdles train it (cached; the store keeps no curves)

The page polls /api/run every few seconds, so a search running into the
same database shows live. The server listens on loopback (127.0.0.1) unless
told otherwise: it shows rule texts and results to whoever can connect.
"""

from __future__ import annotations

import json
import math
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlparse

from ..errors import RulecError
from .report import _pick_run, report, runs
from .space import Settings
from .store import Store

#: The page's files, served from the package (no network needed).
STATIC = {"/": ("dashboard.html", "text/html; charset=utf-8"),
          "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
          "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8")}
#: How many rules of the hall of fame the page lists.
HALL = 15
#: How far up a rule's lineage the page follows parents.
LINEAGE = 50


def _clean(value):
    """JSON has no NaN or infinity: they become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


class Dashboard:
    """The data behind the page, for one database (read-only)."""

    def __init__(self, db: str) -> None:
        self.db = db
        self._curves: dict[tuple[int, int], list] = {}
        self._lock = threading.Lock()

    def runs(self) -> list[dict]:
        return runs(self.db)

    def run(self, run: int | str | None) -> dict:
        rep = report(self.db, run, HALL)
        rules = sorted(rep.rules, key=lambda r: (r["created"], r["idx"]))
        start = rules[0]["created"] if rules else 0.0
        best, curve = -1.0, []
        for r in rules:
            value = r["passed"] + r["score"]
            if value > best:  # the steps of the best-so-far curve
                best = value
                curve.append({"minutes": (r["created"] - start) / 60, "value": value,
                              "passed": r["passed"], "score": r["score"], "idx": r["idx"]})
        last = (rules[-1]["created"] - start) / 60 if rules else 0.0
        config = json.loads(rep.run["config"])
        screen = rep.settings.screen
        return _clean({
            "run": {"id": rep.run["id"], "name": config.get("name"),
                    "strategy": config["strategy"], "seed": config["seed"],
                    "tasks": list(screen.tasks), "graphs": list(screen.graphs),
                    "protocol": rep.settings.space.protocol, "version": rep.run["version"],
                    "fresh_seeds": screen.fresh_seeds},
            "rules": len(rep.rules), "exact": rep.exact, "behaviour": rep.behaviour,
            "rate": rep.wall_rate(), "minutes": last,
            "funnel": [{"hurdle": name, "passed": count}
                       for name, count in zip(rep.hurdles, rep.passed, strict=True)],
            "best": curve,
            "hall": [{key: r.get(key) for key in ("idx", "passed", "score", "fresh", "size",
                                                  "parent", "mutation", "pareto", "text")}
                     for r in rep.hall],
            "hurdles": list(rep.hurdles),
        })

    def rule(self, run: int | str | None, idx: int) -> dict:
        store = Store(self.db, readonly=True)
        try:
            row = _pick_run(store, run)
            found = store.rules_of(row["id"], where=lambda c: c.idx == idx)
            if not found:
                raise RulecError(f"run {row['id']} has no rule {idx}")
            rule = found[0]
            lineage, parent, seen = [], rule["parent"], {idx}
            while parent is not None and parent not in seen and len(lineage) < LINEAGE:
                seen.add(parent)
                above = store.rules_of(row["id"], ("idx", "parent", "mutation", "passed",
                                                   "score", "size"),
                                       where=lambda c, p=parent: c.idx == p)
                if not above:
                    break
                lineage.append(above[0])
                parent = above[0]["parent"]
            original = rule["duplicate_of"] if rule["duplicate"] else idx
            results = store.results_of(row["id"], original)
        finally:
            store.close()
        keys = ("idx", "generation", "text", "parent", "mutation", "passed", "failure", "score",
                "fresh", "size", "duplicate", "duplicate_of", "seconds")
        return _clean({**{k: rule.get(k) for k in keys}, "run": row["id"],
                       "lineage": lineage, "results": results})

    def curves(self, run: int | str | None, idx: int) -> list[dict]:
        from .hurdles import evaluator

        store = Store(self.db, readonly=True)
        try:
            row = _pick_run(store, run)
            found = store.rules_of(row["id"], ("text",), where=lambda c: c.idx == idx)
        finally:
            store.close()
        if not found:
            raise RulecError(f"run {row['id']} has no rule {idx}")
        key = (row["id"], idx)
        with self._lock:
            if key not in self._curves:
                settings = Settings.from_dict(json.loads(row["settings"]))
                try:
                    self._curves[key] = _clean(evaluator(settings).curves(found[0]["text"]))
                except Exception as exc:  # noqa: BLE001 - a rule that cannot train
                    self._curves[key] = [{"failure": f"{type(exc).__name__}: {exc}"}]
            return self._curves[key]


def _handler(board: Dashboard):
    class Handler(BaseHTTPRequestHandler):
        server_version = "rulec-dashboard"

        def log_message(self, format, *args):  # noqa: A002 - quiet: no request log
            pass

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, value, status: int = HTTPStatus.OK) -> None:
            self._send(status, json.dumps(value).encode(), "application/json")

        def do_GET(self):  # noqa: N802 - http.server's name
            url = urlparse(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            try:
                if url.path in STATIC:
                    name, kind = STATIC[url.path]
                    body = resources.files("rulec.search").joinpath("static", name).read_bytes()
                    self._send(HTTPStatus.OK, body, kind)
                    return
                run = query.get("run") or None  # an id or a name (report._pick_run)
                if url.path == "/api/runs":
                    self._json(board.runs())
                elif url.path == "/api/run":
                    self._json(board.run(run))
                elif url.path == "/api/rule":
                    self._json(board.rule(run, int(query["idx"])))
                elif url.path == "/api/curves":
                    self._json(board.curves(run, int(query["idx"])))
                else:
                    self._json({"error": f"no page {url.path}"}, HTTPStatus.NOT_FOUND)
            except RulecError as exc:  # no such run or rule
                self._json({"error": str(exc)}, HTTPStatus.NOT_FOUND)
            except (KeyError, ValueError) as exc:  # a missing or malformed parameter
                self._json({"error": f"bad request: {exc}"}, HTTPStatus.BAD_REQUEST)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the browser went away

    return Handler


def server(db: str, host: str = "127.0.0.1", port: int = 8765) -> ThreadingHTTPServer:
    """A dashboard server for `db`, bound and ready (port 0: any free port;
    the bound one is server.server_address[1]); serve_forever() runs it."""
    # open the store once now, so a wrong path fails here, not in the page
    Store(db, readonly=True).close()
    httpd = ThreadingHTTPServer((host, port), _handler(Dashboard(db)))
    httpd.daemon_threads = True
    return httpd
