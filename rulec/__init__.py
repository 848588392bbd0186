"""rulec: a compiler and runtime for local rules on graphs.

    import rulec
    rule = rulec.compile_file("examples/hebbian.rule")
    graph = rulec.Graph.from_edges(3, [(0, 2), (1, 2)])
    state = rule.state(graph)
    rule.init(state, seed=0)
    rule.step(state, steps=100)
"""

from ._version import __version__
from .build import BuildError
from .errors import RulecError, RuleError, RuleErrors, Span
from .graph import Graph, GraphError
from .runtime import NonFiniteError, Rule, compile, compile_file, compile_many
from .state import State, StateError

__all__ = [
    "__version__",
    "BuildError",
    "Graph",
    "GraphError",
    "NonFiniteError",
    "Rule",
    "RuleError",
    "RulecError",
    "RuleErrors",
    "Span",
    "State",
    "StateError",
    "compile",
    "compile_file",
    "compile_many",
]
