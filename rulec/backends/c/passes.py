"""The loop passes: node body in, node body out (rulec.backends.c.loops).

In the order the pipeline runs them (rulec.backends.c.pipeline):

    fuse    merge a node's half-edge loops into as few as dependencies allow
    cse     compute a value once per loop and per node (across fused loops)
    dce     remove values, accumulators and loops nothing uses
    block   lay the body out over a block of nodes (node-level math
            vectorizes across the block) and decide which values live in
            per-block arrays

Each takes and returns plain IR; tests run `loops.verify` between them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from .loops import (
    Accumulate,
    Expr,
    Facts,
    If,
    Let,
    Loop,
    Set,
    Store,
    Temp,
    bodies,
    expressions,
    facts,
    loads_in,
    rewrite,
    substitute,
    temps_in,
    walk,
)

# ----------------------------------------------------------------- fuse


class _Placed:
    """The scheduled statements and, for each name, the statements that
    define, use, write, read or write in place that name: the statements a
    new one conflicts with are found by its names, not by comparing it with
    every statement before it, so fusing a block takes time near-linear in
    its size."""

    def __init__(self) -> None:
        self.items: list = []
        self.facts: dict[int, Facts] = {}
        # each statement's kind as one byte (l: node-level line, p: loop, i: if),
        # so runs and the next loop are found by bytes.find, not a Python loop
        self.kinds = bytearray()
        self.index: dict[str, dict] = {
            key: defaultdict(list) for key in ("defines", "uses", "writes", "reads", "inplace")}

    def record(self, item, known: Facts, under=None) -> None:
        """Index `item`'s names, as names of `under` (the loop it merged into)."""
        for key in self.index:
            for name in getattr(known, key):
                self.index[key][name].append(under or item)

    def insert(self, position: int, item, known: Facts) -> None:
        self.items.insert(position, item)
        kind = b"p" if isinstance(item, Loop) else b"i" if isinstance(item, If) else b"l"
        self.kinds[position:position] = kind
        self.facts[id(item)] = known
        self.record(item, known)

    def find(self, kind: bytes, start: int) -> int:
        """Index of the first statement of `kind` at or after `start`, or -1."""
        return self.kinds.find(kind, start)

    def run_end(self, start: int) -> int:
        """The index just past the run of node-level lines that starts at `start`."""
        ends = [i for i in (self.kinds.find(b"p", start), self.kinds.find(b"i", start))
                if i >= 0]
        return min(ends) if ends else len(self.items)

    def last_conflict(self, known: Facts) -> int:
        """Index of the last statement a statement with `known` facts must
        stay after, or -1: one uses a value the other defines, both write a
        slot, or one writes in place a slot the other reads."""
        index = self.index
        witnesses = {id(other): other for key, against in (
            ("uses", "defines"), ("defines", "uses"), ("writes", "writes"),
            ("inplace", "reads"), ("reads", "inplace"))
            for name in getattr(known, key) for other in index[against].get(name, ())}
        if not witnesses:
            return -1
        if len(witnesses) > 8:
            return max(i for i, other in enumerate(self.items) if id(other) in witnesses)
        return max(self.items.index(other) for other in witnesses.values())


def _mergeable(target: Facts, item: Facts) -> bool:
    """Whether a loop can join another: neither uses a value the other
    computes (an accumulator is final only after its loop). Reads and writes
    of the same half-edge stay in statement order within an iteration."""
    return not (target.defines & item.uses or item.defines & target.uses)


def _merge(target: Loop, into: Facts, item: Loop, known: Facts) -> None:
    target.body.extend(item.body)
    target.accumulators.extend(item.accumulators)
    into.uses = (into.uses | known.uses) - (into.defines | known.defines)
    for key in ("defines", "writes", "reads", "inplace"):
        getattr(into, key).update(getattr(known, key))


def fuse(statements: list) -> list:
    """Merge loops where dependencies allow.

    A loop moves up and merges into the earliest loop after its last
    conflict (nothing between them computes a value it uses, writes a slot
    it writes, or crosses an in-place write with a read of the same slot).
    Reductions and edge writes fuse alike: one pass over a node's half-edges
    loads each slot once. Node-level lines move up the same way, into the
    earliest run of lines after what they depend on, so that a block has few
    runs of node-level work (each vectorizes across a block of nodes). Branch
    bodies are fused on their own; nothing moves into or out of a branch.

        loop [a1 += w*nbr.x] ; s2 = tanh(a1) ; loop [a3 max= nbr.x] ; loop [w = ...s4]
        s4 = ... ; loop [q = ...]
    becomes
        loop [a1, a3] ; s2 = tanh(a1) ; s4 = ... ; loop [w, q]
    """
    placed = _Placed()
    out = placed.items
    for item in statements:
        if isinstance(item, If):
            item.branches = [(condition, fuse(body)) for condition, body in item.branches]
        known = facts(item)
        last = placed.last_conflict(known)
        if isinstance(item, Loop):
            # the earliest loop reachable (at or after the last conflict) wins
            candidate = placed.find(b"p", max(last, 0))
            while candidate >= 0 and not _mergeable(placed.facts[id(out[candidate])], known):
                candidate = placed.find(b"p", candidate + 1)
            if candidate >= 0:
                target = out[candidate]
                _merge(target, placed.facts[id(target)], item, known)
                placed.record(item, known, under=target)
                continue
            # no loop to merge with: still move up, next to the loops before
            placed.insert(last + 1, item, known)
        elif isinstance(item, If):
            placed.insert(len(out), item, known)
        elif last < 0:
            placed.insert(0, item, known)
        else:
            run = placed.find(b"l", last + 1)
            placed.insert(placed.run_end(run) if run >= 0 else len(out), item, known)
    return out


# ------------------------------------------------------------------ cse


def _key(temp: Temp, value: Expr) -> tuple:
    return (temp.ctype, value)


def cse(statements: list) -> list:
    """Compute each value once: a Let whose value (after earlier replacements)
    equals one visible before it is removed, and its uses read the first.
    Inside a loop a load is forgotten once its array is stored to, so a
    value read after a store is read again. Fused loops share one table, so
    `c*(p - nbr.p)` computed by three statements is computed once."""
    mapping: dict[Temp, Expr] = {}
    _cse(statements, {}, mapping)
    rewrite(statements, mapping)
    return statements


def _cse(statements: list, seen: dict, mapping: dict) -> None:
    seen = dict(seen)
    kept = []
    for stmt in statements:
        if isinstance(stmt, Let) and not stmt.temp.mutable:
            value = substitute(stmt.value, mapping)
            key = _key(stmt.temp, value)
            if key in seen:
                mapping[stmt.temp] = seen[key]
                continue
            stmt.value = value
            seen[key] = stmt.temp
        elif isinstance(stmt, Store):
            stored = stmt.array
            for key in [k for k in seen if any(load.array == stored for load in loads_in(k[1]))]:
                del seen[key]
        for body in bodies(stmt):
            _cse(body, seen, mapping)
        kept.append(stmt)
    statements[:] = kept


# ------------------------------------------------------------------ dce


def _uses(statements: list) -> Counter:
    """How many times each Temp is read (an accumulator's own updates do not count)."""
    counts: Counter = Counter()
    for stmt in walk(statements):
        for expr in expressions(stmt):
            counts.update(temps_in(expr))
    return counts


def dce(statements: list) -> list:
    """Remove what nothing reads, until nothing is left to remove: Lets of
    unread values (a value computed for a filter that only its mask needed),
    accumulators whose result is unread, and loops left with no work."""
    while True:
        counts = _uses(statements)
        if not _sweep(statements, counts):
            return statements


def _sweep(statements: list, counts: Counter) -> bool:
    changed = False
    kept = []
    for stmt in statements:
        if isinstance(stmt, Let) and not stmt.temp.mutable and counts[stmt.temp] == 0:
            changed = True
            continue
        if isinstance(stmt, Accumulate) and counts[stmt.acc] == 0:
            changed = True
            continue
        if isinstance(stmt, Loop):
            live = [a for a in stmt.accumulators if counts[a.temp]]
            changed |= len(live) != len(stmt.accumulators)
            stmt.accumulators = live
            changed |= _sweep(stmt.body, counts)
            if not stmt.accumulators and not any(isinstance(s, Store) for s in stmt.body):
                changed = True
                continue
        elif isinstance(stmt, If):
            for _, body in stmt.branches:
                changed |= _sweep(body, counts)
        kept.append(stmt)
    statements[:] = kept
    return changed


# ---------------------------------------------------------------- block


@dataclass
class Phase:
    """A run of the body done for every node of a block before the next run:
    'lines' (node-level values only: one loop over the block that vectorizes
    across nodes) or 'nodes' (loops over half-edges and branches, node by
    node)."""

    kind: str
    body: list = field(default_factory=list)


@dataclass
class Blocked:
    """A node body laid out over a block of nodes."""

    phases: list[Phase]
    #: values read in a phase other than the one that computes them: they live
    #: in per-block arrays (`s3_b[j]`), in order of first definition
    arrays: list[Temp]

    def show(self) -> str:
        from .spelling import show

        out = [f"arrays: {', '.join(t.name for t in self.arrays) or '-'}"]
        for phase in self.phases:
            out.append(f"phase {phase.kind}")
            out.append(show(phase.body, 1))
        return "\n".join(out)


def block(prologue: list, statements: list, epilogue: list) -> Blocked:
    """Split the body into phases: runs of node-level lines, and runs of loops
    and branches. A value crosses phases through a per-block array."""
    phases: list[Phase] = []
    for stmt in prologue + statements + epilogue:
        kind = "nodes" if isinstance(stmt, (Loop, If)) else "lines"
        if not phases or phases[-1].kind != kind:
            phases.append(Phase(kind))
        phases[-1].body.append(stmt)
    where: dict[Temp, set[int]] = defaultdict(set)
    order: list[Temp] = []
    for number, phase in enumerate(phases):
        for stmt in walk(phase.body):
            found = [stmt.temp] if isinstance(stmt, Let) else (
                [stmt.var] if isinstance(stmt, Set) else
                [a.temp for a in stmt.accumulators] if isinstance(stmt, Loop) else [])
            for expr in expressions(stmt):
                found += temps_in(expr)
            for temp in found:
                if temp not in where:
                    order.append(temp)
                where[temp].add(number)
    arrays = [temp for temp in order if len(where[temp]) > 1]
    return Blocked(phases, arrays)
