"""The wheel carries grammar/, templates/ and runtime/, and an installed rulec
finds them with no source tree present."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (path,) = out.glob("rulec-*.whl")
    return path


def test_wheel_contains_the_grammar_templates_and_the_c_runtime(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "rulec/grammar/rule.lark" in names
    assert "rulec/templates/module.c.j2" in names
    assert "rulec/include/rulec_rng.h" in names
    assert "rulec/include/rulec_runtime.h" in names
    assert "rulec/include/rulec_cuda.h" in names and "rulec/templates/cuda.cu.j2" in names
    for asset in ("dashboard.html", "dashboard.js", "dashboard.css"):  # served offline
        assert f"rulec/search/static/{asset}" in names
    assert "rulec/passes/fold.py" in names
    # every Python package of the source tree is in the wheel
    source = Path(__file__).resolve().parent.parent / "rulec"
    for init in source.rglob("__init__.py"):
        packaged = "rulec/" + init.relative_to(source).as_posix()
        assert packaged in names, f"{packaged} is not in the wheel: list it in pyproject.toml"


def test_installed_wheel_runs_without_the_source_tree(wheel, tmp_path):
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    rule = tmp_path / "r.rule"
    rule.write_text("node x\ninit { x = uniform() }\nupdate { x = mean(nbr.x) }\n")
    # the default (C) backend builds from the templates and runtime in the wheel
    env = {**os.environ, "PYTHONPATH": str(target), "RULEC_CACHE_DIR": str(tmp_path / "cache")}
    code = ("import rulec, sys; assert 'site' in rulec.__file__, rulec.__file__; "
            "sys.argv = ['rulec', 'run', 'r.rule', '--graph', 'ring:5', '--steps', '3']; "
            "from rulec.cli import main; sys.exit(main())")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "rule r on ring:5" in result.stdout
    assert list((tmp_path / "cache").glob("*.so")), "the C backend did not build"
