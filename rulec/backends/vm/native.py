"""The VM's C interpreter: rendered from templates/vm.c.j2 and the op table,
built once per rulec version into the build cache, loaded through cffi.

Once it is in the cache, running any rule on the VM calls no compiler.
"""

from __future__ import annotations

import functools
import itertools
import threading

import cffi
import numpy as np

from ..._version import __version__
from ...ops import OPS
from ...resources import resource_dir, templates
from ...state import State
from .. import toolchain
from ..reference import builtin_arrays
from ..views import ParamArray, graph_view, run_chunked, taken_for_graph
from .translate import (
    _SPECIAL,
    CONTROL,
    EDGE,
    EID,
    HALF,
    NODE,
    OPCODES,
    OPERAND_SHIFT,
    OWNER,
    PAIRS,
    REV,
    SCALAR,
    SUMMED_OPS,
    Program,
    _modes,
    _read_across,
    _reads,
    _writes,
)

_RED_SUM_OF = OPCODES["red_sum_of"]

ABI = 8  # the VM's own layout (rulec_vm_block); part of its cache identity

def header_cdef(name: str) -> str:
    """cffi's declarations from a header of runtime/ (one definition of a
    layout for C and Python), without its preprocessor lines."""
    header = (resource_dir("runtime") / name).read_text(encoding="utf-8")
    return "\n".join(line for line in header.splitlines() if not line.startswith("#"))


#: The C runtime's headers the VM's source includes (part of its cache identity).
HEADERS = ("rulec_abi.h", "rulec_graph.h", "rulec_math.h", "rulec_rng.h", "rulec_runtime.h",
           "rulec_vm.h")


@functools.cache
def vm_ffi() -> cffi.FFI:
    """The FFI that knows the VM's layouts (rulec_vm.h) besides the ABI's."""
    result = cffi.FFI()
    result.include(toolchain.ffi())
    result.cdef(header_cdef("rulec_vm.h"))
    return result


def _pair_c(name: str) -> str:
    """A paired op's C (translate.PAIRS): the outer op's, with the inner
    op's in the place of its operand, {0}, {1}, {2} the three operands."""
    outer, inner, side = PAIRS[name]
    if side == "l":
        return OPS[outer].c.format(OPS[inner].c.format("{0}", "{1}"), "{2}")
    return OPS[outer].c.format("{0}", OPS[inner].c.format("{1}", "{2}"))


def source() -> str:
    """The interpreter's C source: the op table's elementwise ops, then the
    paired ops made from them (translate.PAIRS)."""
    return templates().get_template(TEMPLATE).render(**_context())


TEMPLATE = "vm.c.j2"


def _context() -> dict:
    """What source() renders the template with."""
    elementwise = []
    table = [(name, op.arity, op.c, op.commutative) for name, op in OPS.items()]
    table += [(name, 3, _pair_c(name), False) for name in PAIRS]
    for name, arity, c, commutative in table:
        args = "ABC"[:arity]
        elementwise.append({
            "name": name, "code": OPCODES[name], "arity": arity,
            "commutative": commutative,
            "pair": name in PAIRS,
            # a pair's loops by which operands are read as their own element
            # (bit k for operand k: X[i]), the others through their index
            "variants": [c.format(*(f"{x}[i]" if own >> k & 1 else f"{x}[i{x.lower()}[i]]"
                                    for k, x in enumerate(args)))
                         for own in range(1 << arity)] if name in PAIRS else [],
            "summed": name in SUMMED_OPS,  # red_sum_of computes it where it adds it
            "c": c.format(*(f"{x}[i]" for x in args)),
            "fused": c.format(*(f"{x}[i{x.lower()}[i]]" for x in args)),
            # binary ops: only A, or only B, through its index
            "fused_a": c.format(*(f"{x}[i{x.lower()}[i]]" if x == "A" else f"{x}[i]"
                                  for x in args)),
            "fused_b": c.format(*(f"{x}[i{x.lower()}[i]]" if x == "B" else f"{x}[i]"
                                  for x in args)),
            # binary ops: a scalar a (or b) held in a register, the other operand
            # its own
            "scalar_a": c.format("a", "B[i]") if arity == 2 else None,
            "scalar_b": c.format("A[i]", "b") if arity == 2 else None,
            # and the other operand through its index
            "scalar_a_fused": c.format("a", "B[ib[i]]") if arity == 2 else None,
            "scalar_b_fused": c.format("A[ia[i]]", "b") if arity == 2 else None,
            # red_sum_of's values, by which operands are the owner's (bit k for
            # operand k): those read X[o], o the node the sum is for
            "summed_terms": [c.format(*(f"{x}[o]" if owners >> k & 1 else f"{x}[i{x.lower()}[i]]"
                                        for k, x in enumerate(args)))
                             for owners in range(1 << arity)],
            "lane_rows": " ".join(f"const float *{x}h = {x} + (int64_t)i{x.lower()}[h] * L;"
                                  for x in args),
            "lanes": c.format(*(f"{x}h[s]" for x in args))})
    return {"version": __version__, "control": CONTROL, "elementwise": elementwise, "abi": ABI,
            "small_half_edges": SMALL_HALF_EDGES, "first_pair": OPCODES[next(iter(PAIRS))]}


_lock = threading.Lock()


@functools.cache
def _library_unlocked(fingerprint):
    # the library's identity is what its source is rendered from (the
    # template and its context), so a process that finds it in the cache
    # neither imports Jinja nor renders: that took 40-60 ms on the way to
    # every worker's and every command's first VM step. (Jinja's version is
    # left out: importing it to ask would cost the same, and another
    # version renders the same template to the same C.)
    runtime = resource_dir("runtime")
    identity = ["rulec-vm", str(ABI), __version__,
                (resource_dir("templates") / TEMPLATE).read_text(encoding="utf-8"),
                repr(_context()),
                *((runtime / name).read_text(encoding="utf-8") for name in HEADERS)]
    ffi_vm = vm_ffi()

    def load(path):
        try:
            return ffi_vm.dlopen(str(path))
        except OSError as exc:
            raise toolchain.BuildError(f"cannot load the VM ({path}): {exc}") from None

    return ffi_vm, toolchain.cached_library(identity, lambda: [source()], load, stem="vm-",
                                            by_compiler=False)


def library():
    """(ffi, lib) of the VM, built on first use and cached across processes
    (in this process, per op table and toolchain.environment_key)."""
    fingerprint = (tuple(op.c for op in OPS.values()), toolchain.environment_key())
    with _lock:
        return _library_unlocked(fingerprint)


def _code_table(vm: Program, ffi, tiled: bool = False) -> dict:
    """Each block's bytecode as a C array, with its counts, key, whether a
    step advances time, and which slot registers a step writes (the
    destination of a copy from a pending register, a commit, or a store
    straight into the slot; the finiteness checks read it), and whether an
    operand reads through each half-edge's owner; with `tiled`, a block that
    can runs its tiled step (BlockCode.tiled_step): label -> (code,
    n_prologue, n_code, key, advance, written, owned, n_epilogue),
    n_epilogue -1 for a block that runs whole."""
    p = vm.program
    n_slots = len(p.slot_kinds)
    table = {}
    for label, code in vm.blocks.items():
        step, epilogue = code.step, -1
        if tiled and code.tiled_epilogue >= 0:
            step, epilogue = code.tiled_step, code.tiled_epilogue
        every = (*code.prologue, *step)
        flat = list(itertools.chain.from_iterable(every))
        written = [0] * n_slots
        for ins in step:
            for r in (_writes(*ins) if ins[0] in _SPECIAL else (ins[1],)):
                if 0 <= r < n_slots:
                    written[r] = 1
        owned = any(_reads_owner(ins[0]) for ins in every)
        table[label] = (ffi.new("int32_t[]", flat or [0]), len(code.prologue),
                        len(code.prologue) + len(step), code.key,
                        1 if code.advance else 0, ffi.new("uint8_t[]", written or [0]),
                        owned, epilogue)
    return table


@functools.lru_cache(maxsize=4096)
def _reads_owner(word: int) -> bool:
    """Whether an instruction of op word `word` reads an operand through each
    half-edge's owner (a sum computing what it adds reads the owner's value
    by its node, not through the owner array). Per word, cached: a search's
    rules use a few hundred words."""
    return bool(word >> OPERAND_SHIFT) and word & 255 != _RED_SUM_OF and OWNER in _modes(word)


#: A graph of at most this many half-edges is small to the VM (vm.c.j2's
#: RULEC_VM_SMALL): it keeps each half-edge's owner (4 bytes a half-edge,
#: 16 KB at most) for operands read through it, where larger graphs fill a
#: buffer of owners per chunk of half-edges (which costs a tiny graph's step
#: a few percent but takes no memory that grows with the graph); and its
#: masked stores branch, where larger graphs' blend (the same mask every
#: step, which a small graph's branch predictor learns).
SMALL_HALF_EDGES = 4096


def _vm_blocks(ffi, table: dict, regs, domains, n_slots: int, graph, keep: list,
               tiles=None) -> dict:
    """label -> a rulec_vm_block of `table`'s code on the registers `regs`
    (with `graph`'s owner array where the code reads through it and the
    graph is small: SMALL_HALF_EDGES; `keep` gets it). `tiles`: (node
    boundaries, local flags) as C arrays, for the blocks `table` runs in
    tiles. Fused operands need no other arrays: the VM makes their indexes
    a chunk at a time (vm.c.j2)."""
    blocks = {}
    for label, (code, n_prologue, n_code, key, advance, written, owned,
                epilogue) in table.items():
        block = ffi.new("rulec_vm_block *")
        block.code, block.n_prologue, block.n_code = code, n_prologue, n_code
        block.key, block.advance, block.written = key, advance, written
        block.regs, block.domain, block.n_slots = regs, domains, n_slots
        if owned and 0 < graph.n_half_edges <= SMALL_HALF_EDGES:
            owner = graph.owner  # int32, kept by the graph
            keep.append(owner)
            block.owner = ffi.cast("int32_t *", owner.ctypes.data)
        if epilogue >= 0:
            block.tiles, block.n_tiles, block.local = tiles
            block.n_epilogue = epilogue
        blocks[label] = block
    return blocks


def vm_graph_arrays(vm: Program) -> frozenset[str]:
    """The graph arrays beyond row_ptr, nbr and degree that `vm`'s
    instructions read: 'rev' (gather_rev, commit), 'eid' (gather_eid),
    'edge_half' (commit), the first two also for operands fused through
    them. Read off the code (one pass over its
    instructions), not off the IR: a read the translator dropped as dead
    needs no array."""
    rev, eid, commit = OPCODES["gather_rev"], OPCODES["gather_eid"], OPCODES["commit"]
    needs = set()
    for code in vm.blocks.values():
        for op, *_ in (*code.prologue, *code.step):
            if op == rev:
                needs.add("rev")
            elif op == eid:
                needs.add("eid")
            elif op == commit:
                needs.update(("rev", "edge_half"))
            elif op >> OPERAND_SHIFT:  # fused operands read through rev or eid
                modes = _modes(op)
                needs.update(name for mode, name in ((REV, "rev"), (EID, "eid"))
                             if mode in modes)
    return frozenset(needs)


#: Temporaries share storage where they are never live at once when a
#: state's would take more than this many bytes apart (large graphs; on a
#: search's small graphs the analysis would cost more than the memory).
SHARE_BYTES = 1 << 20


def temp_storage(vm: Program) -> list[int]:
    """For each register, the register whose storage it uses: itself, or,
    for a temporary, the first of a group of temporaries of one domain no
    two of which are live at once in any block. Made once per program.

    A temporary is live from its first write to its last read in a block
    (prologue and step as one list). One read before its first write in the
    step (a value carried from the last step), or written in the prologue
    (read by every step), is live through the whole block. Branch bodies
    are straight-line code whose values are read only inside them
    (_without_dead_code), so a skip shortens no interval. Intervals are
    closed: an instruction never writes into the storage of a register it
    reads (the VM's `restrict` destinations stay unaliased)."""
    found = vm.__dict__.get("_temp_storage")
    if found is not None:
        return found
    vm.tiled()  # its registers and intervals too: a layout may run it
    source, domain = vm.registers.source, vm.registers.domain
    temp = [src[0] == "temp" for src in source]
    spans: dict[int, list[tuple[int, int, int]]] = {}  # register -> (block, first, last)
    # each block's step as it runs whole and as it runs in tiles (a block's
    # code, for the intervals: no two may overlap in either)
    variants = [(code.prologue, step) for code in vm.blocks.values()
                for step in (code.step, code.tiled_step)]
    for index, (prologue_code, step_code) in enumerate(variants):
        instructions = [*prologue_code, *step_code]
        prologue, end = len(prologue_code), len(instructions) - 1
        first_write: dict[int, int] = {}
        first_read: dict[int, int] = {}
        last: dict[int, int] = {}
        for k, (op, d, a, b, c) in enumerate(instructions):
            for r in _reads(op, d, a, b, c):
                if r >= 0 and temp[r]:
                    first_read.setdefault(r, k)
                    last[r] = k
            for r in _writes(op, d, a, b, c):
                if r >= 0 and temp[r]:
                    first_write.setdefault(r, k)
                    last[r] = max(last.get(r, k), k)
        for r in last:
            written = first_write.get(r, end + 1)
            whole = written < prologue or first_read.get(r, end + 1) <= written
            spans.setdefault(r, []).append((index, 0, end) if whole else (index, written, last[r]))
    owner = list(range(len(source)))
    groups: list[tuple[int, int, list]] = []  # (domain, first register, spans of its members)
    for r in range(len(source)):
        if not temp[r]:
            continue
        mine = spans.get(r, [])
        for group_domain, first, taken in groups:
            if group_domain == domain[r] and not any(
                    b1 == b2 and s1 <= e2 and s2 <= e1
                    for b1, s1, e1 in mine for b2, s2, e2 in taken):
                owner[r] = first
                taken.extend(mine)
                break
        else:
            groups.append((domain[r], r, list(mine)))
    vm.__dict__["_temp_storage"] = owner
    return owner


#: A large graph's steps run in tiles of at most this many nodes and about
#: this many half-edges (a node with more has a tile of its own): the
#: temporaries local to a tile then stay in the core's cache (L2), and take
#: a tile's floats, not the graph's.
TILE_ELEMENTS = 4096


def graph_tiles(graph) -> np.ndarray | None:
    """The node boundaries of `graph`'s tiles (int64, first 0, last
    n_nodes), or None where one tile would hold it all."""
    if graph.n_nodes <= TILE_ELEMENTS and graph.n_half_edges <= TILE_ELEMENTS:
        return None
    return _per_graph(graph, ("tiles", TILE_ELEMENTS), _make_tiles)


def _make_tiles(graph) -> np.ndarray:
    row_ptr = graph.row_ptr[:-1]
    # a new tile where the half-edges pass a multiple of TILE_ELEMENTS, or
    # the nodes do
    by_edges = np.flatnonzero(np.diff(row_ptr // TILE_ELEMENTS, prepend=-1))
    by_nodes = np.arange(0, graph.n_nodes, TILE_ELEMENTS)
    return np.append(np.union1d(by_edges, by_nodes), graph.n_nodes).astype(np.int64)


def tile_local(vm: Program) -> list[bool]:
    """For each register, whether it can hold just one tile's elements when
    the blocks that can run in tiles do: a node or half-edge temporary used
    only by the tiled part of such blocks' steps (not their prologue or
    epilogue, nor by a block that runs whole), written there before it is
    read, and read only at elements of the tile (not through a gather's
    index: nbr, rev, eid; nor as a scalar). Made once per program."""
    found = vm.__dict__.get("_tile_local")
    if found is not None:
        return found
    vm.tiled()
    source, domain = vm.registers.source, vm.registers.domain
    local = [src[0] == "temp" and domain[r] != EDGE for r, src in enumerate(source)]

    def used(ins):
        return [r for r in (*_reads(*ins), *_writes(*ins)) if r >= 0]

    for code in vm.blocks.values():
        step = code.tiled_step if code.tiled_epilogue >= 0 else code.step
        split = len(step) - code.tiled_epilogue if code.tiled_epilogue >= 0 else 0
        for ins in (*code.prologue, *step[split:]):
            for r in used(ins):
                local[r] = False
        written: set[int] = set()
        for ins in step[:split]:
            reads = [r for r in _reads(*ins) if r >= 0]
            for r in _read_across(ins) + [r for r in reads if r not in written]:
                local[r] = False
            if ins[0] >> OPERAND_SHIFT:
                for r, mode in zip(ins[2:], _modes(ins[0]), strict=True):
                    if mode == SCALAR:
                        local[r] = False
            written.update(r for r in _writes(*ins) if r >= 0)
    vm.__dict__["_tile_local"] = local
    return local


def _storage_owners(vm: Program, temp_bytes: int):
    """Per register, the register whose storage it uses in a layout whose
    temporaries take `temp_bytes` apart: temp_storage's above SHARE_BYTES,
    each its own below (the one rule for a state's registers and lanes')."""
    if temp_bytes > SHARE_BYTES:
        return temp_storage(vm)
    return range(len(vm.registers.source))


class _Layout:
    """What the registers of a VM program on one graph share across states:
    the constants' and built-ins' arrays (never written), where each
    temporary sits in a state's workspace, and the blocks' code. A state's
    registers (_StateRegisters) then cost one workspace and one address
    array, not a cffi call per register."""

    def __init__(self, vm: Program, graph, ffi) -> None:
        lengths = {NODE: graph.n_nodes, HALF: graph.n_half_edges, EDGE: graph.n_edges}
        p = vm.program
        self.graph = graph
        builtins = _builtins(graph)
        # on a large graph, the blocks that can run in tiles do, and their
        # tile-local temporaries hold one tile's elements (the largest tile's)
        boundaries = graph_tiles(graph)
        tiled = boundaries is not None and any(
            code.tiled_epilogue >= 0 for code in vm.tiled().blocks.values())
        # the registers now (a later Program.tiled() adds registers only its
        # tiled steps use, after these)
        domains, sources = list(vm.registers.domain), list(vm.registers.source)
        count = len(sources)
        self.addresses = np.zeros(max(count, 1), dtype=np.uintp)
        self.keep: list = []
        temps, offsets, total = [], [], 0
        self.slots: list[tuple[int, str, str]] = []  # (register, kind, slot name)
        names = {"node": p.node_slots, "edge": p.edge_slots, "shared": p.shared_slots}
        local = tile_local(vm) if tiled else [False] * count
        if tiled:
            row_ptr = graph.row_ptr
            lengths_local = {NODE: int(np.diff(boundaries).max()),
                             HALF: int(np.diff(row_ptr[boundaries]).max())}
            self.tiles = (ffi.new("int64_t[]", boundaries.tolist()), len(boundaries) - 1,
                          ffi.new("uint8_t[]", [int(x) for x in local]))
        else:
            self.tiles = None
        temp_floats = sum(max(lengths[d], 1) for r, (d, src) in
                          enumerate(zip(domains, sources, strict=True))
                          if src[0] == "temp" and not local[r])
        # (a group's first member comes first: it is one of these registers)
        owner = list(_storage_owners(vm, 4 * temp_floats))[:count]
        # a group's storage is its first member that is not tile-local (no
        # two members are live at once, so neither are any of them)
        first_whole: dict[int, int] = {}
        for r in range(count):
            if sources[r][0] == "temp" and not local[r]:
                owner[r] = first_whole.setdefault(owner[r], r)
        placed: dict[int, int] = {}  # a storage's first register -> its offset
        for i, (domain, src) in enumerate(zip(domains, sources, strict=True)):
            size = max(lengths[domain], 1)
            if src[0] == "slot":
                self.slots.append((i, src[1], names[src[1]][src[2]]))
                continue
            if src[0] == "temp":
                temps.append(i)
                if local[i]:  # one tile's elements, its own array
                    offsets.append(total)
                    total += max(lengths_local[domain], 1)
                    continue
                if owner[i] not in placed:
                    placed[owner[i]] = total
                    total += size
                offsets.append(placed[owner[i]])
                continue
            array = np.full(size, src[1], dtype=np.float32) if src[0] == "const" \
                else builtins[src[1]]
            self.keep.append(array)
            self.addresses[i] = array.ctypes.data
        self.temps = np.array(temps, dtype=np.intp)
        self.temp_offsets = np.array(offsets, dtype=np.uintp) * np.uintp(4)
        self.workspace_floats = max(total, 1)
        self.domains = ffi.new("int32_t[]", domains or [0])
        self.n_slots = len(p.slot_kinds)
        self.code = _code_table(vm, ffi, tiled)


class _StateRegisters:
    """The register arrays of a VM program on one state: slots point into the
    state, constants and built-ins are the graph's (_Layout), temporaries
    live in one workspace of the state's own."""

    def __init__(self, layout: _Layout, state: State, ffi) -> None:
        self.workspace = np.zeros(layout.workspace_floats, dtype=np.float32)
        addresses = layout.addresses.copy()
        addresses[layout.temps] = np.uintp(self.workspace.ctypes.data) + layout.temp_offsets
        for register, kind, name in layout.slots:
            array = state.node[name] if kind == "node" else state.edge[name]
            addresses[register] = array.ctypes.data
        self.keep = [layout, self.workspace, addresses]
        self.regs = ffi.cast("float *const *", addresses.ctypes.data)
        self.blocks = _vm_blocks(ffi, layout.code, self.regs, layout.domains, layout.n_slots,
                                 layout.graph, self.keep, layout.tiles)


class LaneRegisters:
    """The register arrays of a VM program on L lanes (copies of a state of
    one graph side by side, for rulec_vm_run_lanes): every register holds L
    values per element, lane-minor (element i of lane s at i * L + s). The
    slots are the lanes' own arrays here, not a State's: `load` and `save`
    copy one lane from and to a State."""

    def __init__(self, vm: Program, graph, lanes: int, ffi) -> None:
        self.graph, self.lanes, self.program = graph, lanes, vm.program
        self.lock = threading.Lock()
        # every register's place in one workspace (a search makes these once
        # per rule screened, on a few dozen registers: plain Python, as each
        # small numpy call costs more than the loop it would replace)
        # (the registers now: a later Program.tiled() adds registers only its
        # tiled steps use, after these; lanes never run those)
        domains, sources = vm.registers.domain, vm.registers.source
        count = len(sources)
        length = [0, 0, 0]
        length[NODE], length[HALF], length[EDGE] = (
            max(n, 1) * lanes for n in (graph.n_nodes, graph.n_half_edges, graph.n_edges))
        sizes = [length[d] for d in domains[:count]]
        temp_floats = sum(size for size, src in zip(sizes, sources, strict=True)
                          if src[0] == "temp")
        owner = _storage_owners(vm, 4 * temp_floats)
        starts, total = [0] * count, 0
        for r in range(count):
            if owner[r] == r:  # one array per storage
                starts[r] = total
                total += sizes[r]
        self.workspace = np.zeros(max(total, 1), dtype=np.float32)
        base = self.workspace.ctypes.data
        self.addresses = np.array([base + 4 * starts[owner[r]] for r in range(count)] or [0],
                                  dtype=np.uintp)  # a register table needs an address
        workspace = self.workspace
        builtins = None
        for i, src in enumerate(sources):
            if src[0] == "const":
                workspace[starts[i]:starts[i] + sizes[i]] = src[1]
            elif src[0] == "builtin":
                builtins = builtins if builtins is not None else _builtins(graph)
                workspace[starts[i]:starts[i] + sizes[i]] = np.repeat(builtins[src[1]], lanes)
        p = vm.program
        kinds = p.slot_kinds  # the slots' registers come first, in this order
        self.slots = [(kind, name,
                       workspace[starts[i]:starts[i] + sizes[i]].reshape(-1, lanes))
                      for i, (kind, name) in enumerate(kinds)]
        # every slot, in one view (the slots' registers come first, each its own)
        self._slot_floats = workspace[:sum(sizes[:len(kinds)])]
        self.regs = ffi.cast("float **", self.addresses.ctypes.data)
        self.domains = ffi.new("int32_t[]", domains[:count] or [0])
        self.node = self.regs  # the node slots are the first registers
        self.code = _code_table(vm, ffi)
        self.keep: list = []
        self.blocks = _vm_blocks(ffi, self.code, self.regs, self.domains, len(kinds), graph,
                                 self.keep)

    def _lane_views(self, state: State):
        for kind, name, lanes in self.slots:
            array = state.node[name] if kind == "node" else state.edge[name]
            yield array, lanes[:array.size]

    def clear(self) -> None:
        """Every slot of every lane to zero."""
        self._slot_floats.fill(0.0)

    def load(self, lane: int, state: State) -> None:
        """Lane `lane`'s slots from `state`."""
        for array, lanes in self._lane_views(state):
            lanes[:, lane] = array

    def save(self, lane: int, state: State) -> None:
        """`state`'s slots from lane `lane`."""
        for array, lanes in self._lane_views(state):
            array[...] = lanes[:, lane]


def _per_graph(graph, what, make):
    """make(graph), made once per graph and kept with it (a graph is
    immutable; a search asks for its graph's once per rule), so it goes
    when the graph does."""
    kept = graph.__dict__.setdefault("_rulec_vm", {})
    found = kept.get(what)
    if found is None:  # two threads may both make it: the same arrays
        found = kept[what] = make(graph)
    return found


def _builtins(graph) -> dict[str, np.ndarray]:
    """The reference's built-in arrays, and `nodes`; a one-element array stands
    in for an empty one (a register needs an address). No instruction writes
    a built-in's register."""
    return _per_graph(graph, "builtins", _make_builtins)


def _make_builtins(graph) -> dict[str, np.ndarray]:
    out = {**builtin_arrays(graph),
           "nodes": np.full(graph.n_nodes, graph.n_nodes, dtype=np.float32)}
    pad = np.zeros(1, dtype=np.float32)
    return {k: (v if v.size else pad) for k, v in out.items()}


class VMBlocks:
    """A rule on the VM: run(label, state, params, steps) like the C kernels."""

    def __init__(self, vm: Program) -> None:
        self.vm = vm
        self.program = vm.program
        self.ffi, self.lib = library()  # built (or found) now, not at the first step
        self.last_status = "budget"
        self._params = ParamArray(self.ffi, self.program)
        self.graph_needs = vm_graph_arrays(vm)
        self._lanes: dict = {}
        self._layouts: dict = {}

    def registers(self, state: State) -> _StateRegisters:
        """The register arrays of this rule on `state` (made once per state)."""
        views = state.__dict__.setdefault("_rulec_vm_views", {})
        view = views.get(id(self))
        if view is None or view[0] is not self:
            view = views[id(self)] = (self, _StateRegisters(self._layout(state.graph), state,
                                                            self.ffi))
        return view[1]

    def _layout(self, graph) -> _Layout:
        """This rule's register layout on `graph` (kept for the last few graphs)."""
        found = self._layouts.get(id(graph))
        if found is None or found.graph is not graph:
            if len(self._layouts) >= 8:
                self._layouts.pop(next(iter(self._layouts)), None)
            found = self._layouts[id(graph)] = _Layout(self.vm, graph, self.ffi)
        return found

    def lane_registers(self, graph, lanes: int) -> LaneRegisters:
        """The lane registers of this rule on `graph` for `lanes` lanes, with
        their `lock` taken (release it when done); kept for the last few
        graphs and lane counts asked for."""
        return taken_for_graph(self._lanes, _lock, graph, lanes,
                               lambda: LaneRegisters(self.vm, graph, lanes, self.ffi))

    #: run() says whether check_finite found a non-finite value (in last_status)
    reports_finite = True

    def run(self, label: str, state: State, params: dict[str, float], steps: int,
            threads: int = 1, check_finite: bool = False) -> int:
        return self.run_until(label, state, params, steps, None, None, check_finite)[0]

    def run_until(self, label: str, state: State, params: dict[str, float], budget: int,
                  slot: str | None, nodes, check_finite: bool = False) -> tuple[int, str]:
        """Run up to `budget` steps, stopping before a step once node slot `slot`
        is > 0 at every one of `nodes` (one C call per chunk, not per step).
        Returns (steps run, why it stopped: 'budget', 'reached' or 'non-finite')."""
        ffi, lib = self.ffi, self.lib
        registers = self.registers(state)
        values = self._params(params)
        struct = ffi.new("rulec_state *")  # only time and seed are read by the VM
        struct.time = state.time
        struct.seed = state.seed
        graph = graph_view(state.graph, self.graph_needs).struct
        block = registers.blocks[label]
        finite = 1 if check_finite else 0
        if slot is None:
            until_reg, until, n_until = -1, ffi.NULL, 0
        else:
            until_reg = self.program.node_slots.index(slot)  # slot registers come first
            picked = np.ascontiguousarray(nodes, dtype=np.int32)
            until, n_until = ffi.cast("int32_t *", picked.ctypes.data), len(picked)
        status = ffi.new("int32_t *")

        def call(n: int) -> int:
            return lib.rulec_vm_run(graph, struct, values, block, n, finite, until_reg, until,
                                    n_until, status)

        try:
            total = run_chunked(call, budget, stopped=lambda: status[0] != 0)
        finally:
            state.time = int(struct.time)
        outcome = ("budget", "reached", "non-finite")[status[0]]
        self.last_status = outcome
        return total, outcome
