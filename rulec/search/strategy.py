"""Search strategies behind an ask/tell interface.

A strategy proposes the rules of a generation (`ask`) and learns from their
evaluation (`tell`); it never evaluates anything itself, so any strategy
runs on any executor, and a user can bring their own:

    class MyStrategy:
        def ask(self, generation: int, indices: range) -> list[Candidate]: ...
        def tell(self, generation: int, records: list[dict]) -> None: ...

A candidate is a tree and its text, or `drawn(seed, index)`: rule `index`
of a seed's random stream, which the worker that evaluates it draws (its
text comes back in the record told). `ask` must depend only on the seed and
on what earlier generations were told: that is what makes a run resumable
and independent of the number of workers. Each record told has the rule's
`idx`, `text`, `passed` (hurdles cleared), `score`, `size`, `spread`,
`fresh`, `failure`. On a resume,
stored generations are told again; `text` is then given only for the last
`memory` rules (a strategy's attribute, 0 if missing), None before them.
A strategy whose `ask` never depends on what it was told may say so with
`asks_ahead = True`: a search on several workers then asks for generations
g+1 and g+2 before telling it generation g, so that the workers screen
them while generation g's survivors learn and while the coordinator sorts
(tells still come in generation order).
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

from .. import syntax as ast
from ..printer import format_tree
from .hurdles import SCREEN_HURDLES
from .mutate import Mutator
from .space import Space, draw_tree


@dataclass
class Candidate:
    """A rule to evaluate: where it came from, and its tree and text; or,
    with `draw` (a seed) and no tree, rule `index` of that seed's random
    stream, which the worker evaluating it draws (drawn())."""

    index: int
    tree: ast.File | None
    text: str | None
    parent: int | None = None
    mutation: str | None = None  # None: drawn at random; 'start': a given rule
    draw: int | None = None

    @classmethod
    def of(cls, index: int, tree: ast.File, parent: int | None = None,
           mutation: str | None = None) -> Candidate:
        """A candidate for `tree`, its text printed (for your own strategy)."""
        return cls(index, tree, format_tree(tree), parent, mutation)


def random_candidate(space: Space, seed: int, index: int, options=None) -> Candidate:
    """Rule `index` of a random stream, drawn here (tree and text)."""
    tree = draw_tree(options or space.options(), seed, index)
    return Candidate(index, tree, format_tree(tree))


def drawn(seed: int, index: int) -> Candidate:
    """Rule `index` of a random stream, to be drawn by the worker that
    evaluates it (the coordinator never builds its tree)."""
    return Candidate(index, None, None, draw=seed)


def _parse(text: str) -> ast.File:
    from ..parser import parse_text

    return parse_text(text, "start.rule")


class RandomSearch:
    """Every rule drawn at random from the space (after the start rules)."""

    name = "random"
    #: ask() does not depend on what tell() said: with several workers a
    #: search screens generation g+1 while generation g's survivors learn
    asks_ahead = True

    def __init__(self, space: Space, seed: int, start: tuple[str, ...] = ()) -> None:
        self.space, self.seed, self.start = space, seed, start
        self.options = space.options()

    def candidate(self, index: int) -> Candidate:
        if index < len(self.start):
            text = self.start[index]
            return Candidate(index, _parse(text), text, mutation="start")
        return drawn(self.seed, index)

    def ask(self, generation: int, indices: range) -> list[Candidate]:
        return [self.candidate(i) for i in indices]

    def tell(self, generation: int, records: list[dict]) -> None:
        pass


def fitness(record: dict) -> tuple:
    """Higher is better: hurdles passed, plus how far the inputs reach (the
    spread, for rules that ran) and the score; then a lower loss on the
    tasks trained (accuracy on 4 patterns moves in steps of 0.25; the loss
    shows progress between them); then smaller rules. A target-blind rule
    (its answers are the same whatever it is taught) counts only the
    screening hurdles: its task passes are no evidence of learning, and
    ranked on them, wired rules crowded out honest partial learners (9,091
    of 70,208 rules of a logic.toml run). The fresh seeds are never part of
    it: they are held out to report, not to select on."""
    passed = record["passed"]
    if (record.get("failure") or "").startswith("target-blind"):
        passed = min(passed, len(SCREEN_HURDLES))
    return (passed + 0.9 * (record.get("spread") or 0.0) + record["score"],
            -(record.get("loss") or 0.0), -record["size"])


class RegularizedEvolution(RandomSearch):
    """Regularized evolution (Real et al., 2019): a population of the last
    `population` rules evaluated that are not duplicates of earlier ones;
    each child mutates the fittest of `tournament` rules sampled from it, or
    (a `crossover` share of them) crosses it with the fittest of another
    tournament (Mutator.crossover); an `immigrants` share of the children
    are random rules instead (a population that converged on a plateau
    still meets the rules a random search would);
    the oldest leave as children arrive, except the start rules, which stay
    (and can always be chosen as parents). Until the population is full, the
    rules are the start rules, `start_mutants` mutants of each, then random
    rules."""

    name = "evolve"
    asks_ahead = False  # its children come from what it was told

    def __init__(self, space: Space, seed: int, start: tuple[str, ...] = (),
                 population: int = 100, tournament: int = 10, start_mutants: int = 0,
                 crossover: float = 0.2, immigrants: float = 0.25) -> None:
        super().__init__(space, seed, start)
        if population < 2 or not 1 <= tournament <= population:
            from .space import SpaceError

            raise SpaceError("evolution needs population >= 2 and 1 <= tournament <= "
                             f"population; got {population}, {tournament}")
        self.population_size, self.tournament = population, tournament
        self.start_mutants = start_mutants
        self.crossover, self.immigrants = crossover, immigrants
        self.population: deque[dict] = deque()
        self.kept: list[dict] = []  # the start rules: never leave the population
        self.mutator = Mutator(space)
        self.trees: dict[int, ast.File] = {}

    #: duplicates (exact or behaviour) never join the population: a clone
    #: adds no new behaviour, and clones of one plateau crowd out the rest
    skips_duplicates = True

    @property
    def memory(self) -> int:
        """How many of the last rules told it keeps (their texts are needed):
        the last `memory` rules that are not duplicates, and the start rules."""
        return self.population_size

    def candidate(self, index: int) -> Candidate:
        """The start rules, then `start_mutants` mutants of each, then random rules."""
        first = len(self.start)
        if first <= index < first * (1 + self.start_mutants):
            which = (index - first) % first
            rng = random.Random(f"{self.seed}:start-mutant:{index}")
            child = self.mutator.mutate(_parse(self.start[which]), rng)
            if child is not None:
                tree, how = child
                return Candidate(index, tree, format_tree(tree), which, how)
        return super().candidate(index)

    def _tree(self, member: dict) -> ast.File:
        tree = self.trees.get(member["idx"])
        if tree is None:
            tree = _parse(member["text"])
            self.trees[member["idx"]] = tree
        return tree

    def ask(self, generation: int, indices: range) -> list[Candidate]:
        if len(self.population) < self.population_size:
            out = [self.candidate(i) for i in indices]
        else:
            rng = random.Random(f"{self.seed}:evolve:{generation}")
            members = list(self.population) + self.kept
            out = []
            for index in indices:
                if self.immigrants and rng.random() < self.immigrants:
                    out.append(drawn(self.seed, index))
                    continue
                contestants = rng.sample(members, self.tournament)
                parent = max(contestants, key=fitness)
                child = None
                if self.crossover and rng.random() < self.crossover:
                    other = max(rng.sample(members, self.tournament), key=fitness)
                    if other is not parent:
                        child = self.mutator.crossover(self._tree(parent), self._tree(other),
                                                       rng)
                if child is None:
                    child = self.mutator.mutate(self._tree(parent), rng)
                if child is None:
                    out.append(drawn(self.seed, index))
                    continue
                tree, how = child
                out.append(Candidate(index, tree, format_tree(tree), parent["idx"], how))
        for c in out:
            if c.tree is not None:  # a drawn rule's tree is parsed from its text if needed
                self.trees[c.index] = c.tree
        return out

    def tell(self, generation: int, records: list[dict]) -> None:
        for record in sorted(records, key=lambda r: r["idx"]):
            if record.get("duplicate"):
                self.trees.pop(record["idx"], None)
                continue
            self.population.append({k: record.get(k) for k in
                                    ("idx", "text", "passed", "score", "size", "fresh",
                                     "spread", "loss", "failure")})
            while len(self.population) > self.population_size:
                gone = self.population.popleft()
                if gone["idx"] < len(self.start):  # a start rule stays, out of the age queue
                    self.kept.append(gone)
                else:
                    self.trees.pop(gone["idx"], None)


STRATEGIES = {"random": RandomSearch, "evolve": RegularizedEvolution}
