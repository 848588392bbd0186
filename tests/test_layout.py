"""The package's floor plan, checked from its imports (function-level and
TYPE_CHECKING imports included): no cycles, and no import against the
pipeline's direction (front end -> IR -> passes -> backends -> api ->
learning -> search/fuzz -> cli); only backends spell C; backends know
nothing of learning. docs/architecture.md explains each level."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "rulec"

#: Each module's level; a module may import its own level or lower ones.
LEVELS = [
    # 0: foundations and the model (graphs and states)
    ("rulec", "rulec._version", "rulec.frozen", "rulec.errors", "rulec.atomic", "rulec.resources",
     "rulec.pool", "rulec.rng", "rulec.ops", "rulec.graph_specs", "rulec.graph",
     "rulec.graphs", "rulec.state"),
    # 1: front end: text <-> syntax trees, and analyses of trees
    ("rulec.syntax", "rulec.parser", "rulec.printer", "rulec.dataflow"),
    # 2: the typed IR, and the checker and loader that make it
    ("rulec.ir", "rulec.checker", "rulec.frontend"),
    # 3: IR passes
    ("rulec.passes", "rulec.passes.fold"),
    # 4: backends
    ("rulec.backends*",),
    # 5: the public API
    ("rulec.api",),
    # 6: learning
    ("rulec.learning*",),
    # 7: search, fuzzing and the rule generator they share
    ("rulec.generate", "rulec.edit", "rulec.fuzz", "rulec.strategies", "rulec.search*"),
    # 8: the command line
    ("rulec.cli", "rulec.__main__"),
]


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the rulec modules it imports, anywhere in its text."""
    edges = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    targets.add(sub if sub in modules else target)
        edges[name] = {t for t in targets if t in modules and t != name}
    return edges


def _level(name: str) -> int:
    for level, members in enumerate(LEVELS):
        for member in members:
            if name == member or (member.endswith("*") and
                                  (name == member[:-1] or name.startswith(member[:-1] + "."))):
                return level
    raise AssertionError(f"{name} has no level in tests/test_layout.py: give it one, and say "
                         "why in docs/architecture.md")


MODULES = _modules()
EDGES = _imports(MODULES)


def test_every_module_has_a_level_and_no_import_runs_against_the_pipeline():
    against = [f"{source} (level {_level(source)}) imports {target} (level {_level(target)})"
               for source, targets in sorted(EDGES.items()) for target in sorted(targets)
               if _level(target) > _level(source)]
    assert not against, "\n".join(against)


def test_the_package_has_no_import_cycles():
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for target in sorted(EDGES[name]):
            if state.get(target) == 1:
                cycle = stack[stack.index(target):] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[name] = 2

    for name in sorted(EDGES):
        if name not in state:
            visit(name)


def test_only_backends_import_a_renderer_and_backends_know_no_learning():
    renderers = {"rulec.backends.c.render", "rulec.backends.c.spelling"}
    outside = [f"{source} imports {target}" for source, targets in EDGES.items()
               for target in targets & renderers if not source.startswith("rulec.backends")]
    assert not outside, outside
    learning = [f"{source} imports {target}" for source, targets in EDGES.items()
                if source.startswith("rulec.backends") for target in targets
                if target.startswith("rulec.learning")]
    assert not learning, learning
    assert (PACKAGE / "learning" / "__init__.py").is_file()


def test_the_checker_catches_an_import_against_the_pipeline(tmp_path):
    """The checks above read real imports: a backend that imported the search
    (as tasks once imported the VM's driver and the driver tasks) is seen."""
    fake = {"rulec.backends.fake": tmp_path / "fake.py", "rulec.search.run": tmp_path / "r.py"}
    fake["rulec.backends.fake"].write_text("def f():\n    from ..search import run\n")
    fake["rulec.search.run"].write_text("")
    edges = _imports(fake)
    assert edges["rulec.backends.fake"] == {"rulec.search.run"}
    assert _level("rulec.search.run") > _level("rulec.backends.fake")


def test_every_template_header_lists_exactly_the_variables_it_is_given(tmp_path, monkeypatch):
    """A template's header comment ("Given: ...") names the top-level values
    its renderer passes, no more and no fewer, and the template uses no
    other (rendered for real: a module, the VM, an export, CUDA)."""
    import re

    import jinja2.meta

    from rulec import resources
    from rulec.backends.c import export, pipeline
    from rulec.backends.c.module import Unit
    from rulec.backends.cuda.render import cuda_source
    from rulec.backends.vm import native
    from rulec.frontend import load_program

    given: dict[str, set[str]] = {}
    environment = resources.templates()
    real = environment.get_template

    class Recording:
        def __init__(self, name):
            self.name, self.template = name, real(name)

        def render(self, **values):
            given.setdefault(self.name, set()).update(values)
            return self.template.render(**values)

    monkeypatch.setattr(environment, "get_template", Recording)
    examples = PACKAGE.parent / "examples"
    text = (examples / "hebbian.rule").read_text()
    program = load_program(text, "hebbian.rule")
    pipeline.c_source([Unit(program, "hebbian", text)])
    native.source()
    export.render(program, "hebbian", text)
    cuda_source([Unit(program, "hebbian", text)])
    assert set(given) == {p.name for p in (PACKAGE.parent / "templates").glob("*.j2")}
    for name, names in given.items():
        source = (PACKAGE.parent / "templates" / name).read_text()
        header = source[source.index("{#-"):source.index("-#}")]
        listed = re.search(r"Given \([^)]*\):\s*\n((?:\s+[\w, ]+\n)+)", header)
        assert listed, f"{name}: no 'Given (...):' list in its header"
        names_text = re.split(r"\n\s*where\b", listed.group(1))[0]
        declared = {word for word in re.split(r"[,\s]+", names_text) if word}
        assert declared == names, f"{name}: header lists {sorted(declared)}, given {sorted(names)}"
        used = jinja2.meta.find_undeclared_variables(environment.parse(source))
        assert used <= names, f"{name} uses {sorted(used - names)}, which it is not given"


def test_a_search_worker_imports_no_coordinator_module_and_the_package_names_stay():
    """rulec.search loads its public names on first use: a worker (which
    imports rulec.search.execute) starts without the coordinator, the store
    and the reports; every name of rulec.search.__all__ is still there."""
    import subprocess
    import sys

    probe = ("import sys, rulec.search.execute\n"
             "print(sorted(m for m in ('rulec.search.run', 'rulec.search.store', "
             "'rulec.search.report', 'rulec.search.mutate', 'rulec.search.strategy', "
             "'sqlite3') if m in sys.modules))\n"
             "import rulec.search as s\n"
             "missing = [n for n in s.__all__ if not hasattr(s, n)]\n"
             "assert sorted(s._WHERE) == sorted(s.__all__), 'a public name has no module'\n"
             "print(missing, s.search.__module__, s.Store.__module__)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "[] rulec.search.run rulec.search.store"
    import rulec.search

    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        rulec.search.nothing  # noqa: B018
