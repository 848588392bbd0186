"""Scheduling: fuse a node's half-edge passes into as few as dependencies allow.

The lowered node body (rulec.lower) has one pass over the node's half-edges
per reduction and per edge write. A pass moves up and merges into an earlier
pass of the same kind (reductions with reductions, writes with writes) when
nothing between them conflicts: no value it uses is computed in between, no
slot it writes is written in between, and no in-place write crosses a read
of the same slot. Reductions and writes are kept in separate passes: the
second pass over a node's half-edges reads them from L1, and GCC vectorizes
a reduction loop with stores in it on AVX-512 only.

    reduce a1 (sum w*nbr.x) ; line s2 = tanhf(a1) ; reduce a3 (max nbr.x) ;
    write w (uses s4) ; line s4 = ... ; write q

becomes

    reduce a1, a3 ; line s2 = tanhf(a1), s4 ; write w, q

Lines (node-level values) move up the same way, into the earliest run of
lines after what they depend on, so that a block has few runs of node-level
work (each vectorizes across nodes, see rulec.render_c). Branch bodies are
scheduled on their own; nothing moves into or out of a branch.
"""

from __future__ import annotations

from collections import defaultdict

from .lower import Item


class _Placed:
    """The scheduled items and, for each name, the items that define, use,
    write, read or write in place that name: the items a new item conflicts
    with are found by its names, not by comparing it with every item before
    it, so scheduling a block takes time near-linear in its size."""

    def __init__(self) -> None:
        self.items: list[Item] = []
        # each item's kind as one byte (l: line, p: pass over half-edges, i: if),
        # so runs and the next pass are found by bytes.find, not a Python loop
        self.kinds = bytearray()
        self.index: dict[str, dict[str, list[Item]]] = {
            key: defaultdict(list) for key in ("defines", "uses", "writes", "reads", "inplace")}

    @staticmethod
    def names(item: Item) -> dict[str, set[str]]:
        return {"defines": item.defines, "uses": item.uses, "writes": item.all_writes(),
                "reads": item.all_reads(), "inplace": item.all_inplace()}

    def record(self, item: Item, under: Item | None = None) -> None:
        """Index `item`'s names, as names of `under` (the pass it merged into)."""
        for key, names in self.names(item).items():
            for name in names:
                self.index[key][name].append(under or item)

    def insert(self, position: int, item: Item) -> None:
        self.items.insert(position, item)
        kind = b"l" if item.kind == "line" else b"p" if item.is_loop else b"i"
        self.kinds[position:position] = kind
        self.record(item)

    def find(self, kind: bytes, start: int) -> int:
        """Index of the first item of `kind` at or after `start`, or -1."""
        return self.kinds.find(kind, start)

    def run_end(self, start: int) -> int:
        """The index just past the run of lines that starts at `start`."""
        ends = [i for i in (self.kinds.find(b"p", start), self.kinds.find(b"i", start))
                if i >= 0]
        return min(ends) if ends else len(self.items)

    def last_conflict(self, item: Item) -> int:
        """Index of the last item `item` must stay after, or -1. An item must
        stay after another when one uses a value the other defines, both write
        a slot, or one writes in place a slot the other reads."""
        names = self.names(item)
        index = self.index
        witnesses = {id(other): other for key, against in (
            ("uses", "defines"), ("defines", "uses"), ("writes", "writes"),
            ("inplace", "reads"), ("reads", "inplace"))
            for name in names[key] for other in index[against].get(name, ())}
        if not witnesses:
            return -1
        if len(witnesses) > 8:
            return max(i for i, other in enumerate(self.items) if id(other) in witnesses)
        return max(self.items.index(other) for other in witnesses.values())


def _mergeable(target: Item, item: Item) -> bool:
    """Whether `item`'s loop body can join `target`'s: neither uses a value the
    other computes (an accumulator is final only after its loop). Reads and
    writes of the same half-edge stay in statement order within an iteration."""
    return not (target.defines & item.uses or item.defines & target.uses)


def _merge(target: Item, item: Item) -> None:
    uses = target.uses | item.uses
    if item.accumulators:
        target.kind = "reduce"
    target.lines.extend(item.lines)
    target.defines |= item.defines
    target.reads |= item.reads
    target.writes |= item.writes
    target.inplace |= item.inplace
    target.accumulators.extend(item.accumulators)
    target.known_uses = uses - target.defines  # what target.uses would compute again


def _place_line(placed: _Placed, item: Item) -> None:
    """Move a line up, past everything it does not depend on, into the earliest
    run of lines after its last dependency (or to the front): node-level
    values gather in few runs, which vectorize across a block of nodes."""
    last = placed.last_conflict(item)
    if last < 0:
        placed.insert(0, item)
        return
    run = placed.find(b"l", last + 1)
    placed.insert(placed.run_end(run) if run >= 0 else len(placed.items), item)


def fuse(items: list[Item]) -> list[Item]:
    """The items with passes merged where dependencies allow (see module docstring)."""
    placed = _Placed()
    out = placed.items
    for item in items:
        if item.kind == "if":
            item.branches = [(cond, fuse(body)) for cond, body in item.branches]
        if item.kind == "line":
            _place_line(placed, item)
            continue
        last = placed.last_conflict(item)
        if item.is_loop:
            # the earliest pass reachable (at or after the last conflict) wins
            candidate = placed.find(b"p", max(last, 0))
            while candidate >= 0 and not _mergeable(out[candidate], item):
                candidate = placed.find(b"p", candidate + 1)
            if candidate >= 0:
                _merge(out[candidate], item)
                placed.record(item, under=out[candidate])
                continue
            # no pass to merge with: still move up, next to the passes before
            placed.insert(last + 1, item)
            continue
        placed.insert(len(out), item)
    return out
