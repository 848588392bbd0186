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


def _mergeable(target: Item, item: Item) -> bool:
    """Whether `item`'s loop body can join `target`'s: neither uses a value the
    other computes (an accumulator is final only after its loop). Reads and
    writes of the same half-edge stay in statement order within an iteration."""
    return not (target.defines & item.uses or item.defines & target.uses)


def _merge(target: Item, item: Item) -> None:
    if item.accumulators:
        target.kind = "reduce"
    target.lines.extend(item.lines)
    target.defines |= item.defines
    target.reads |= item.reads
    target.writes |= item.writes
    target.inplace |= item.inplace
    target.accumulators.extend(item.accumulators)


def _place_line(out: list[Item], item: Item) -> None:
    """Move a line up, past everything it does not depend on, into the earliest
    run of lines after its last dependency (or to the front): node-level
    values gather in few runs, which vectorize across a block of nodes."""
    last = _last_conflict(out, item)
    if last < 0:
        out.insert(0, item)
        return
    for index in range(last + 1, len(out)):
        if out[index].kind == "line":
            out.insert(index + _run_length(out, index), item)
            return
    out.append(item)


def _last_conflict(out: list[Item], item: Item) -> int:
    """Index of the last item `item` must stay after, or -1."""
    for index in range(len(out) - 1, -1, -1):
        if _conflicts(out[index], item):
            return index
    return -1


def _run_length(out: list[Item], start: int) -> int:
    """How many line items follow one another from `start`."""
    end = start
    while end < len(out) and out[end].kind == "line":
        end += 1
    return end - start


def fuse(items: list[Item]) -> list[Item]:
    """The items with passes merged where dependencies allow (see module docstring)."""
    out: list[Item] = []
    for item in items:
        if item.kind == "if":
            item.branches = [(cond, fuse(body)) for cond, body in item.branches]
        if item.kind == "line":
            _place_line(out, item)
            continue
        if item.is_loop:
            target = None
            for candidate in reversed(out):
                if candidate.is_loop and _mergeable(candidate, item):
                    target = candidate
                if _conflicts(candidate, item):
                    break  # the earliest pass reachable wins
            if target is not None:
                _merge(target, item)
                continue
            # no pass to merge with: still move up, next to the passes before
            out.insert(_last_conflict(out, item) + 1, item)
            continue
        out.append(item)
    return out
