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

    reduce a1, a3 ; line s2 = tanhf(a1) ; write w ; line s4 ; write q

(`write q` cannot move above `line s4` if it uses s4.) Branch bodies are
scheduled on their own; passes do not move into or out of branches.
"""

from __future__ import annotations

from .lower import Item


def _conflicts(earlier: Item, later: Item) -> bool:
    """Whether `later` must stay after `earlier`."""
    if earlier.defines & later.uses or later.defines & earlier.uses:
        return True
    earlier_writes, later_writes = earlier.all_writes(), later.all_writes()
    if earlier_writes & later_writes:
        return True
    if later.all_inplace() & earlier.all_reads():
        return True
    return bool(earlier.all_inplace() & later.all_reads())


def _merge(target: Item, item: Item) -> None:
    target.lines.extend(item.lines)
    target.defines |= item.defines
    target.reads |= item.reads
    target.writes |= item.writes
    target.inplace |= item.inplace
    target.accumulators.extend(item.accumulators)


def fuse(items: list[Item]) -> list[Item]:
    """The items with passes merged where dependencies allow (see module docstring)."""
    out: list[Item] = []
    for item in items:
        if item.kind == "if":
            item.branches = [(cond, fuse(body)) for cond, body in item.branches]
        if item.is_loop:
            target = None
            for candidate in reversed(out):
                if _conflicts(candidate, item):
                    break
                if candidate.kind == item.kind:
                    target = candidate  # keep looking: the earliest pass wins
            if target is not None:
                _merge(target, item)
                continue
        out.append(item)
    return out
