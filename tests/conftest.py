"""Shared fixtures and helpers for the rulec test suite."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TESTS = Path(__file__).resolve().parent

# Check the C backend's loop-nest IR after every loop pass in every compile
# the tests make (rulec.backends.c.pipeline); subprocesses inherit it.
os.environ.setdefault("RULEC_VERIFY", "1")


@pytest.fixture(scope="session", autouse=True)
def build_cache(tmp_path_factory):
    """Kernels built by the tests go to a cache of this session (subprocesses
    inherit it), unless RULEC_CACHE_DIR already names one to reuse."""
    if "RULEC_CACHE_DIR" not in os.environ:
        os.environ["RULEC_CACHE_DIR"] = str(tmp_path_factory.mktemp("rulec-cache"))
    return Path(os.environ["RULEC_CACHE_DIR"])


@pytest.fixture
def run_cli(tmp_path):
    """Run `python -m rulec ARGS` in a subprocess; returns CompletedProcess."""
    import subprocess

    def run(*args, cwd=None, input=None, preexec_fn=None):
        return subprocess.run(
            [sys.executable, "-m", "rulec", *map(str, args)],
            capture_output=True, text=True, cwd=cwd or tmp_path, input=input, timeout=120,
            preexec_fn=preexec_fn,
        )

    return run


def build_c_driver(tmp_path_factory, name: str, source: str) -> Path:
    """A test program including rulec's C runtime headers, built with the
    system compiler (the test is skipped without one)."""
    import shutil
    import subprocess

    from rulec.resources import resource_dir

    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler")
    directory = tmp_path_factory.mktemp(name)
    (directory / "driver.c").write_text(source)
    exe = directory / "driver"
    subprocess.run([compiler, "-std=c99", "-O2", "-I", str(resource_dir("runtime")),
                    str(directory / "driver.c"), "-o", str(exe), "-lm"], check=True)
    return exe


def stepped(rules, graph, seed: int, steps: int) -> list:
    """Each rule's state on `graph` after init with `seed` and `steps` steps."""
    states = []
    for rule in rules:
        state = rule.state(graph)
        rule.init(state, seed=seed)
        rule.step(state, steps=steps)
        states.append(state)
    return states
