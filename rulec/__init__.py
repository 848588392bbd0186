"""rulec: a compiler and runtime for local rules on graphs.

    import rulec
    rule = rulec.compile_file("examples/hebbian.rule")
    graph = rulec.Graph.from_edges(3, [(0, 2), (1, 2)])
    state = rule.state(graph)
    rule.init(state, seed=0)
    rule.step(state, steps=100)

The names below are imported on first use, so `import rulec` (and the CLI's
start) costs little until a rule is compiled.
"""

from ._version import __version__
from .errors import RulecError, RuleError, RuleErrors, RuleWarning, Span

_LAZY = {
    "BuildError": "backends.toolchain",
    "Graph": "graph",
    "GraphError": "graph",
    "NonFiniteError": "api",
    "Recording": "api",
    "Rule": "api",
    "compile": "api",
    "compile_file": "api",
    "compile_many": "api",
    "State": "state",
    "StateError": "state",
    "format": "frontend",
}

__all__ = [
    "__version__",
    "BuildError",
    "Graph",
    "GraphError",
    "NonFiniteError",
    "Recording",
    "Rule",
    "RuleError",
    "RulecError",
    "RuleErrors",
    "RuleWarning",
    "Span",
    "State",
    "StateError",
    "compile",
    "compile_file",
    "compile_many",
    "format",
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rulec' has no attribute {name!r}")
    import importlib

    attribute = {"format": "format_rule"}.get(name, name)
    value = getattr(importlib.import_module(f".{module}", __name__), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
