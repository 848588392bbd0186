"""Hypothesis strategies for rules, graphs and states (docs/fuzzing.md).

    from hypothesis import given
    from rulec.strategies import rules, graphs, states

    @given(rules())
    def test_my_property(rule):
        rule.text        # canonical source text
        rule.program     # the checked IR
        rule.compile()   # a rulec.Rule

Every generated rule type-checks. The rules come from rulec.generate (the
same generator `rulec fuzz` drives with a plain seeded RNG); here each of its
choices is an integer drawn from hypothesis, so failures shrink toward small,
readable rules. The knobs are rulec.generate.Options'.

Needs hypothesis (pip install 'rulec[fuzz]' or the test extra).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from hypothesis import strategies as st

from . import generate
from . import syntax as ast
from .edit import well_typed_edits
from .generate import (  # noqa: F401  (re-exported: the public names of this module)
    ADVERSARIAL_NAMES,
    ALL_OPS,
    GeneratedRule,
    generated,
)
from .graph import Graph
from .printer import format_tree
from .state import State


class _HypothesisSource:
    """rulec.generate's source of choices, drawn from hypothesis."""

    def __init__(self, draw) -> None:
        self.draw = draw

    def integer(self, low: int, high: int) -> int:
        return self.draw(st.integers(low, high))


@st.composite
def rules(draw, *, max_depth: int = 3, max_statements: int = 5, node_slots=(1, 3),
          edge_slots=(1, 2), shared_slots=(0, 1), params=(0, 2), named_blocks=(0, 1),
          init: bool | None = None, ops=None, vector_ratio: float = 2.0, reuse: float = 0.2,
          draws_in_update: float = 0.05, adversarial_names: float = 0.25) -> GeneratedRule:
    """Random well-typed rules (rulec.generate). Ranges are (min, max). With
    chance `adversarial_names` a rule's slots and params get names that look
    like what code generators make (`x_next`, `int`, `expf`, ...)."""
    options = generate.Options(
        max_depth=max_depth, max_statements=max_statements, node_slots=node_slots,
        edge_slots=edge_slots, shared_slots=shared_slots, params=params,
        named_blocks=named_blocks, init=init,
        ops=frozenset(ops) if ops is not None else ALL_OPS, vector_ratio=vector_ratio,
        reuse=reuse, draws_in_update=draws_in_update, adversarial_names=adversarial_names)
    return generate.rule(_HypothesisSource(draw), options)


@st.composite
def graphs(draw, max_nodes: int = 24) -> Graph:
    """Small random graphs: random (Erdos-Renyi), trees, layered, hubs, dense,
    with isolated nodes, and the empty graph."""
    return generate.graph(_HypothesisSource(draw), max_nodes)


@st.composite
def states(draw, rule, graph: Graph, specials: float = 0.1) -> State:
    """A random state of `rule` (a rulec.Rule or GeneratedRule) on `graph`:
    normal values, with a fraction `specials` of 0, ±inf, NaN, denormals and
    huge values, a random time and seed (rulec.fuzz.random_state)."""
    from .fuzz import random_state

    return random_state(rule.program, graph, draw(st.integers(0, 2**32 - 1)), specials)


# --------------------------------------------------------------- mutations


def mutations(rule: GeneratedRule):
    """A strategy: one small, well-typed edit of `rule` (or the rule itself if
    none applies)."""
    edits = list(well_typed_edits(rule))
    return st.sampled_from(edits) if edits else st.just(rule)


#: Edits that must be rejected, with the error code the checker gives.
_ILL_TYPED = [
    ("E301", "a vector assigned to a node slot",
     lambda g: ast.Assign(ast.Target("slot", g.nodes[0]), "=", ast.Name(g.edges[0]))),
    ("E302", "a reducer applied to a float",
     lambda g: ast.Assign(ast.Target("slot", g.nodes[0]), "=",
                          ast.Call("sum", (ast.Number(1.0),)))),
    ("E401", "a write to a neighbour's slot",
     lambda g: ast.Assign(ast.Target("nbr", g.nodes[0]), "=", ast.Number(1.0))),
    ("E201", "an unknown name",
     lambda g: ast.Assign(ast.Target("slot", g.nodes[0]), "=", ast.Name("nosuch"))),
    ("E303", "operands with different filters",
     lambda g: ast.Assign(ast.Target("slot", g.edges[0]), "=", ast.Binary(
         "add", ast.Filter(ast.Name(g.edges[0]), ast.Name("incoming")),
         ast.Filter(ast.Name(g.edges[0]), ast.Name("outgoing"))))),
]


@dataclass(frozen=True)
class IllTyped:
    tree: ast.File
    text: str
    code: str
    what: str


def ill_typed(rule: GeneratedRule):
    """A strategy: `rule` with one statement appended to its update block that
    the checker must reject; `.code` is the error code it must report."""

    class _Names:
        nodes = rule.program.node_slots
        edges = rule.program.edge_slots

    def build(choice):
        code, what, make = choice
        items = list(rule.tree.items)
        for index, item in enumerate(items):
            if isinstance(item, ast.Block) and item.label == "update":
                body = ast.Body(item.body.statements + (make(_Names),))
                items[index] = dataclasses.replace(item, body=body)
        tree = ast.File(tuple(items))
        return IllTyped(tree, format_tree(tree), code, what)

    return st.sampled_from(_ILL_TYPED).map(build)
