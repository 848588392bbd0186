"""`rulec search dashboard`: its JSON API against the report, the page in a
real headless browser (Debian's chromium, installed by .ci/run), and the
command stopped by a real SIGINT."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from importlib import resources

import pytest

from rulec import search as S
from rulec.search.dashboard import server
from rulec.search.report import report

from .test_search import DELTA, FAST


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """An evolution run (so rules have parents) started from the delta rule."""
    path = str(tmp_path_factory.mktemp("dashboard") / "d.sqlite")
    S.search(FAST, S.Config(strategy="evolve", seed=3, generation=16, population=16,
                            start=(DELTA,), start_mutants=6), path, rules=48)
    return path


@pytest.fixture(scope="module")
def url(db):
    httpd = server(db, port=0)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def get(url: str, path: str):
    with urllib.request.urlopen(url + path, timeout=60) as response:
        body = response.read()
        kind = response.headers["Content-Type"]
    return json.loads(body) if kind == "application/json" else (body.decode(), kind)


def test_the_run_api_is_the_report(db, url):
    data = get(url, "api/run")
    rep = report(db, top=15)
    assert data["rules"] == len(rep.rules) == 48
    assert [f["passed"] for f in data["funnel"]] == rep.passed
    assert [f["hurdle"] for f in data["funnel"]] == list(rep.hurdles)
    assert [r["idx"] for r in data["hall"]] == [r["idx"] for r in rep.hall]
    assert data["hall"][0]["text"].startswith("rule delta")
    values = [p["value"] for p in data["best"]]
    assert values == sorted(values) and len(set(values)) == len(values)  # improvements only
    best = max(rep.rules, key=lambda r: r["passed"] + r["score"])
    assert values[-1] == best["passed"] + best["score"]


def test_a_rule_has_its_results_and_its_lineage(db, url):
    rules = S.result_rows(db)
    child = next(r for r in rules if r["parent"] is not None and r["mutation"] != "start")
    data = get(url, f"api/rule?idx={child['idx']}")
    assert data["text"] == child["text"] and data["mutation"] == child["mutation"]
    assert data["lineage"][0]["idx"] == child["parent"]
    assert data["lineage"][-1]["parent"] is None  # followed up to a root
    start = get(url, "api/rule?idx=0")
    assert start["lineage"] == [] and {r["seed"] for r in start["results"]} >= {0, 1}


def test_learning_curves_are_trained_as_the_task_hurdles_train(url):
    curves = get(url, "api/curves?idx=0")
    assert [(c["task"], c["seed"]) for c in curves] == [("or", 0), ("or", 1)]
    for curve in curves:  # the delta rule learns OR, and keeps it
        assert curve["failure"] is None and curve["goal_epoch"] == len(curve["accuracy"])
        assert curve["accuracy"][-1] == 1.0 and min(curve["retained"]) == 1.0


def test_bad_requests_get_json_errors(url):
    for path, status in (("api/rule?idx=99999", 404), ("api/rule?idx=x", 400),
                         ("api/run?run=7", 404), ("nothing", 404)):
        with pytest.raises(urllib.error.HTTPError) as caught:
            get(url, path)
        assert caught.value.code == status
        assert "error" in json.loads(caught.value.read())


def test_the_page_ships_in_the_package_and_fetches_nothing_from_the_network(url):
    html, kind = get(url, "")
    assert kind.startswith("text/html") and 'src="dashboard.js"' in html
    for name in ("dashboard.html", "dashboard.js", "dashboard.css"):
        text = resources.files("rulec.search").joinpath("static", name).read_text()
        # the one absolute URL is SVG's namespace, which is a name, not a fetch
        assert re.findall(r"https?://[^\s\"'`)]+", text) in ([], ["http://www.w3.org/2000/svg"])


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no chromium: .ci/run installs Debian's package (apt-get install chromium)")


def render(url: str) -> str:
    """The page's DOM after its scripts ran, from a real headless browser."""
    result = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--virtual-time-budget=15000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'data-ready="1"' in result.stdout, result.stdout[-3000:]
    return result.stdout


def test_the_page_in_a_browser_shows_the_funnel_the_best_and_the_hall(db, url):
    dom = render(url)
    rep = report(db, top=15)
    counts = [int(c) for c in re.findall(r'class="bar"[^>]*data-count="(\d+)"', dom)]
    assert counts == rep.passed
    assert re.findall(r'<tr class="pick" data-idx="(\d+)"', dom) == \
        [str(r["idx"]) for r in rep.hall]
    assert 'class="step"' in dom  # the best-so-far line
    assert f"{len(rep.rules)} rules" in dom


def test_the_page_in_a_browser_shows_a_rules_text_lineage_and_curves(db, url):
    child = next(r for r in S.result_rows(db)
                 if r["parent"] is not None and r["mutation"] != "start")
    dom = render(url + f"#run=1&rule={child['idx']}")
    assert re.search(r'<section class="wide" id="rule">', dom)  # shown, not hidden
    assert child["text"].splitlines()[0] in dom
    assert f'data-idx="{child["parent"]}">rule {child["parent"]}</a>' in dom
    dom = render(url + "#run=1&rule=0")  # the delta rule: it trains
    for seed in (0, 1):
        assert re.search(rf'class="curve" stroke="[^"]+" d="M[^"]+" data-task="or" '
                         rf'data-seed="{seed}"', dom)
    assert "or seed 0: goal at epoch" in dom


def test_the_command_serves_until_a_real_sigint(db):
    process = subprocess.Popen([sys.executable, "-m", "rulec", "search", "dashboard", db,
                                "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        line = process.stdout.readline()
        address = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
        assert get(address, "api/run")["rules"] == 48
        began = time.monotonic()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 130
        assert time.monotonic() - began < 3
        assert "dashboard stopped" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()


def test_a_missing_database_is_an_error_before_serving(tmp_path, run_cli):
    result = run_cli("search", "dashboard", tmp_path / "none.sqlite", "--port", "0")
    assert result.returncode == 1 and "rulec: error:" in result.stderr
    assert os.path.exists(tmp_path / "none.sqlite") is False
