"""Translation of a checked rule into the VM's bytecode (no C compiler).

The VM runs a block as a list of instructions, each one loop over a whole
array: a register of N floats (one per node), 2M (one per half-edge) or M
(one per undirected edge, shared slots only). Dispatch costs once per
instruction per step, not per element.

A block's program has two parts: the prologue, run once per call (params
into registers), and the step, run once per step:

    copy   pending registers <- the slots the block writes (block-start values)
    ...    the statements: every expression evaluated for every node, as the
           reference interpreter does; conditions and filters become 0/1
           masks, and writes are masked stores into the pending registers
           (shared slots: masked proposals per half-edge)
    copy   slots <- pending; shared slots <- the mean of the proposals made

Reads always see the slots themselves, which change only at the end of the
step: that is the language's synchronous semantics, with no analysis.

    update { x = tanh(sum(w * nbr.x)) }

becomes (r0 = node slot x, r1 = edge slot w, r2 = pending x)

    step:  copy r2 r0 ; gather_nbr r3 r0 ; mul r4 r1 r3 ; red_sum r5 r4 - ;
           tanh r6 r5 ; store r2 r6 - ; copy r0 r2

Constants and graph built-ins (degree, parity, ...) live in registers filled
once per graph; a structurally equal expression is computed once per scope.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass, field

from ... import ir
from ...ops import BOOLEAN, OPS
from ...passes import pipeline
from ...rng import block_key

# Register domains.
NODE, HALF, EDGE = 0, 1, 2

#: Elementwise ops, in opcode order after the VM's own (their C comes from the op table).
ELEMENTWISE = tuple(OPS)

#: Paired ops (docs/vm.md, "Paired instructions"): one instruction that
#: computes an arithmetic op of another's value, which nothing else reads,
#: in the same loop: (outer, inner, side), side "l" for
#: outer(inner(a, b), c) and "r" for outer(a, inner(b, c)). Named
#: outer_inner_side (`sub_mul_r`: a - b * c); opcodes after the op table's.
PAIR_OPS = ("add", "sub", "mul")
PAIRS: dict[str, tuple[str, str, str]] = {
    f"{outer}_{inner}_{side}": (outer, inner, side)
    for outer in PAIR_OPS for inner in PAIR_OPS for side in "lr"}

#: The VM's own instructions: (name, operands). Operands: d = destination
#: register, a/b/c = source registers (-1 where unused), k = an integer.
CONTROL = (
    "fill_param",  # d, a = param index
    "fill_time",   # d: d[i] = (float)time
    "copy",        # d, a (same domain)
    "gather_nbr",  # d[h] = a[nbr[h]]       (a: N)
    "gather_rev",  # d[h] = a[rev[h]]       (a: 2M)
    "gather_eid",  # d[h] = a[eid[h]]       (a: M)
    "bcast",       # d[h] = a[owner of h]   (a: N)
    "store",       # d[i] = b < 0 || m[i] > 0 ? a[i] : d[i]
    "propose",     # d: proposal, a: value, b: mask or -1, c: flags (1 where proposed)
    "commit",      # d: shared slot (M), a: proposals, b: flags
    "red_sum", "red_mean", "red_max", "red_min", "red_count",  # d (N), a (2M), b: mask or -1
    "uniform", "gauss",  # d, a = ordinal: one draw per element of d (where b > 0, if b >= 0)
    "positive",    # d[i] = a[i] > 0 ? 1 : 0
    "andnot",      # d[i] = a[i] > 0 && !(b[i] > 0) ? 1 : 0
    "skip_if_none",  # a: an N mask; if no node is selected, skip the next b instructions
    "red_sum_of",  # d (N): red_sum of elementwise op (word >> REDUCED_SHIFT) of a, b (their
                   # modes as a fused op's), masked by c or -1: no half-edge register between
    "zero",        # d[i] = 0 (a shared slot's proposals and flags at a step's start)
)

OPCODES: dict[str, int] = {name: i for i, name in enumerate((*CONTROL, *ELEMENTWISE, *PAIRS))}

#: Fused operands (docs/vm.md): an elementwise instruction on the half-edges
#: may read an operand through an index instead of a gathered register. Its
#: op word is then op | mode_a << 8 | mode_b << 11 | mode_c << 14, a mode
#: saying where element h of that operand comes from (vm.c.j2's
#: VM_OPERAND_*):
OWN, NBR, OWNER, SCALAR, REV, EID = range(6)
#: X[h], X[nbr[h]], X[owner of h], X[0], X[rev[h]], X[eid[h]]
OPERAND_SHIFT, OPERAND_BITS = 8, 3
MODE_NAMES = ("", "nbr", "owner", "0", "rev", "eid")
#: red_sum_of's word: its elementwise op from this bit on (after the modes)
REDUCED_SHIFT = OPERAND_SHIFT + 3 * OPERAND_BITS


@dataclass
class BlockCode:
    """One block as bytecode: instructions (op, d, a, b, c) and registers.

    tiled_step: the step as it runs tile by tile on a large graph (vm.c.j2):
    its first len - tiled_epilogue instructions once per tile of nodes, the
    last tiled_epilogue (the copies into the slots and the commits) once
    over everything. It is `step` with the stores straight into a slot that
    another tile reads (through nbr, rev or eid) going through a pending
    register again. tiled_epilogue is -1 where the step cannot run in tiles
    (it then runs whole). Made by Program.tiled(), on first use by a large
    graph (a search's small graphs never need it); None until then."""

    label: str
    key: int
    advance: bool
    prologue: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    step: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    tiled_step: list[tuple[int, int, int, int, int]] | None = None
    tiled_epilogue: int = -1


@dataclass
class Registers:
    """Every register of a program: its domain and what fills it.

    source: ('slot', kind, index) a state array; ('const', value) filled per
    graph; ('builtin', name) filled per graph from the graph; ('temp',) the
    workspace."""

    domain: list[int] = field(default_factory=list)
    source: list[tuple] = field(default_factory=list)

    def new(self, domain: int, source: tuple = ("temp",)) -> int:
        self.domain.append(domain)
        self.source.append(source)
        return len(self.domain) - 1


@dataclass
class Program:
    """A rule translated for the VM: shared registers and one BlockCode per block."""

    program: ir.Program
    registers: Registers
    blocks: dict[str, BlockCode]

    @property
    def instructions(self) -> int:
        return sum(len(b.prologue) + len(b.step) for b in self.blocks.values())

    def tiled(self) -> Program:
        """This program with every block's tiled step made (BlockCode.tiled_step;
        the pending registers they add go after the others). Made once; safe
        from several threads."""
        with _tiled_lock:
            for code in self.blocks.values():
                if code.tiled_step is None:
                    code.tiled_step, code.tiled_epilogue = _tiled(code.step, self.registers)
        return self


_tiled_lock = threading.Lock()


def _bits(value: float) -> int:
    return struct.unpack("<i", struct.pack("<f", value))[0]


class _Scope:
    def __init__(self, parent: _Scope | None) -> None:
        self.parent = parent
        self.memo: dict = {}
        self.locals: dict[str, tuple[int, int]] = {}

    def find(self, table: str, key):
        scope = self
        while scope is not None:
            found = getattr(scope, table).get(key)
            if found is not None:
                return found
            scope = scope.parent
        return None


class _Translator:
    def __init__(self, program: ir.Program, registers: Registers, shared: dict,
                 optimize: bool = True) -> None:
        self.program = program
        self.optimize = optimize
        self.r = registers
        self.shared = shared  # registers filled per graph, shared by every block
        self.masks: set[int] = set()  # registers known to hold only 1.0 and 0.0
        # expression -> number, equal numbers for equal expressions (hash
        # consing): a memo keyed by the expression itself hashes its whole
        # subtree at every lookup, which was a quarter of translation
        self.numbers: dict = {}
        self.numbered: dict[int, tuple[int, ir.Expr]] = {}  # by id; holds the expr

    def number(self, expr: ir.Expr) -> int:
        """A number for `expr`, the same for every expression equal to it."""
        found = self.numbered.get(id(expr))
        if found is not None:
            return found[0]
        if isinstance(expr, ir.Apply):
            key = ("apply", expr.op, expr.type, tuple(self.number(a) for a in expr.args))
        elif isinstance(expr, ir.Reduce):
            key = ("reduce", expr.op, expr.type, self.number(expr.arg))
        elif isinstance(expr, ir.Restrict):
            key = ("restrict", expr.type, self.number(expr.value),
                   self.number(expr.predicate))
        else:  # a leaf: its own hash is cheap
            key = expr
        number = self.numbers.setdefault(key, len(self.numbers))
        self.numbered[id(expr)] = (number, expr)
        return number

    def emit(self, code: list, op: str, d: int = -1, a: int = -1, b: int = -1, c: int = -1):
        code.append((OPCODES[op], d, a, b, c))

    def fixed(self, key, domain: int, source: tuple) -> int:
        """A register filled once per graph (a constant or a built-in)."""
        if key not in self.shared:
            self.shared[key] = self.r.new(domain, source)
        return self.shared[key]

    def slot(self, kind: str, name: str) -> int:
        p = self.program
        if kind in ("node", "nbr"):
            return self.fixed(("slot", "node", name), NODE,
                              ("slot", "node", p.node_slots.index(name)))
        if kind in ("edge", "peer"):
            return self.fixed(("slot", "edge", name), HALF,
                              ("slot", "edge", p.edge_slots.index(name)))
        return self.fixed(("slot", "shared", name), EDGE,
                          ("slot", "shared", p.shared_slots.index(name)))

    # -------------------------------------------------------------- blocks

    def block(self, block: ir.Block) -> BlockCode:
        code = BlockCode(block.label, block_key(block.label), block.label != "init")
        self.code = code.step
        self.prologue = code.prologue
        self.params: dict[str, int] = {}
        self.time: int | None = None
        # pending registers of the slots this block writes, filled at step start
        self.pending: dict[tuple[str, str], tuple[int, ...]] = {}
        for kind, name in ir.written_slots(block.statements):
            slot = self.slot(kind, name)
            if kind == "shared":
                proposal, flags = self.r.new(HALF), self.r.new(HALF)
                # zeroed, not copied from a constant on the half-edges (which
                # would take 4 bytes a half-edge and a read of them)
                self.emit(self.code, "zero", proposal)
                self.emit(self.code, "zero", flags)
                self.pending[kind, name] = (proposal, flags)
            else:
                pending = self.r.new(self.r.domain[slot])
                self.emit(self.code, "copy", pending, slot)
                self.pending[kind, name] = (pending,)
        if _uses_time(block.statements):  # at the top: a skipped branch must not hold it
            self.time = self.r.new(NODE)
            self.emit(self.code, "fill_time", self.time)
        self.statements(block.statements, None, _Scope(None))
        for (kind, name), registers in self.pending.items():
            slot = self.slot(kind, name)
            if kind == "shared":
                self.emit(self.code, "commit", slot, registers[0], registers[1])
            else:
                self.emit(self.code, "copy", slot, registers[0])
        if not self.optimize:  # the quick tier: the code as translated
            return code
        kept = {r for registers in self.pending.values() for r in registers}
        kept |= {i for i, src in enumerate(self.r.source) if src[0] == "slot"}
        _, code.step = _without_dead_code([], _without_dead_stores(code.step), kept)
        pending = {self.slot(kind, name): registers[0]
                   for (kind, name), registers in self.pending.items() if kind != "shared"}
        code.step = _direct_stores(code.step, pending)
        code.prologue, code.step = _hoisted(code.prologue, code.step, self.r)
        before = code.prologue, code.step
        code.prologue, code.step = _fused(code.prologue, code.step, self.r,
                                          lambda value: self.const(value, NODE))
        code.step = _fused_reductions(code.step, self.r)
        code.step = _paired(code.step, self.r)
        if code.step is not before[1] or code.prologue is not before[0]:  # dead gathers
            code.prologue, code.step = _without_dead_code(code.prologue, code.step, kept)
        code.step = _masked_draws(code.step, self.r)  # last: it reads the readers' final words
        return code

    def statements(self, statements, active: int | None, scope: _Scope) -> None:
        """`active`: an N mask register of the nodes the statements apply to
        (None: all nodes)."""
        for stmt in statements:
            if isinstance(stmt, ir.LetStmt):
                scope.locals[stmt.name] = self.expr(stmt.value, scope)
            elif isinstance(stmt, ir.Write):
                self.write(stmt, active, scope)
            else:
                remaining = active
                for condition, body in stmt.branches:
                    value, _ = self.expr(condition, scope)
                    taken = self.both(self.positive(value), remaining)
                    rest = self.r.new(NODE)
                    self.masks.add(rest)
                    if remaining is None:
                        self.emit(self.code, "andnot", rest, self.const(1.0, NODE), taken)
                    else:
                        self.emit(self.code, "andnot", rest, remaining, taken)
                    self.branch(body, taken, scope)
                    remaining = rest
                self.branch(stmt.orelse, remaining, scope)

    def branch(self, body, active: int | None, scope: _Scope) -> None:
        """A branch body, skipped at run time when no node takes it. What it
        computes stays in its own scope: a skipped body leaves stale registers."""
        if not body:
            return
        start = len(self.code)
        if active is not None:
            self.emit(self.code, "skip_if_none", -1, active, 0)
        self.statements(body, active, _Scope(scope))
        if active is not None:
            op, d, a, _, c = self.code[start]
            self.code[start] = (op, d, a, len(self.code) - start - 1, c)

    def write(self, stmt: ir.Write, active: int | None, scope: _Scope) -> None:
        value, mask = self.expr(stmt.value, scope)
        if stmt.kind == "node":
            self.emit(self.code, "store", self.pending["node", stmt.name][0], value,
                      -1 if active is None else active)
            return
        if not stmt.value.type.is_vector:
            value = self.on_half_edges(value, scope)
        where = None if active is None else self.on_half_edges(active, scope)
        if stmt.predicate is not None:
            predicate, _ = self.expr(stmt.predicate, scope)
            where = self.both(where, self.positive(predicate))
        where = self.both(where, mask)
        pending = self.pending[stmt.kind, stmt.name]
        if stmt.kind == "shared":
            flags = pending[1]
            self.emit(self.code, "propose", pending[0], value, -1 if where is None else where,
                      flags)
        else:
            self.emit(self.code, "store", pending[0], value, -1 if where is None else where)

    # --------------------------------------------------------- expressions

    def const(self, value: float, domain: int) -> int:
        value = float(value)
        key = ("const", domain, _bits(value))
        return self.fixed(key, domain, ("const", value))

    def on_half_edges(self, register: int, scope: _Scope) -> int:
        """A node register broadcast to the half-edges (memoized per scope): a
        constant is filled per graph on the half-edges directly, a param is
        broadcast once per call (in the prologue)."""
        source = self.r.source[register]
        if source[0] == "const":
            return self.const(source[1], HALF)
        key = ("bcast", register)
        if register in self.params.values():
            found = self.memo_step.get(key)
            if found is None:
                found = self.memo_step[key] = self.r.new(HALF)
                self.emit(self.prologue, "bcast", found, register)
            return found
        found = scope.find("memo", key)
        if found is None:
            found = self.r.new(HALF)
            self.emit(self.code, "bcast", found, register)
            scope.memo[key] = found
        return found

    def positive(self, register: int) -> int:
        """A 0/1 mask of where `register` > 0 (the register itself if it is one)."""
        if self.is_mask(register):
            return register
        out = self.r.new(self.r.domain[register])
        self.emit(self.code, "positive", out, register)
        self.masks.add(out)
        return out

    def is_mask(self, register: int) -> bool:
        source = self.r.source[register]
        return register in self.masks or source in (
            ("builtin", "incoming"), ("builtin", "outgoing"), ("const", 0.0), ("const", 1.0))

    def both(self, a: int | None, b: int | None) -> int | None:
        if a is None or b is None:
            return a if b is None else b
        out = self.r.new(self.r.domain[a])
        self.emit(self.code, "and", out, a, b)
        self.masks.add(out)
        return out

    def expr(self, expr: ir.Expr, scope: _Scope) -> tuple[int, int | None]:
        """(value register, mask register or None) of `expr`."""
        if type(expr) is ir.Local:
            return scope.find("locals", expr.name)
        # equal expressions share their registers when optimizing; the quick
        # tier only reuses an expression object's own (the program holds
        # them while it translates), and saves the hash consing
        key = self.number(expr) if self.optimize else id(expr)
        found = scope.find("memo", key)
        if found is not None:
            return found
        result = self.compute(expr, scope)
        scope.memo[key] = result
        return result

    def compute(self, expr: ir.Expr, scope: _Scope) -> tuple[int, int | None]:
        vector = expr.type.is_vector
        domain = HALF if vector else NODE
        kind = type(expr)  # the IR's classes have no subclasses; the most common first
        if kind is ir.Apply:
            args, mask = [], None
            for arg in expr.args:
                value, arg_mask = self.expr(arg, scope)
                if vector and not arg.type.is_vector:
                    value = self.on_half_edges(value, scope)
                args.append(value)
                if arg_mask is not None:
                    mask = arg_mask
            out = self.r.new(domain)
            self.emit(self.code, expr.op, out, *args)
            if expr.op in BOOLEAN:  # 1.0 or 0.0 everywhere
                self.masks.add(out)
            return out, mask
        if kind is ir.Const:
            return self.const(expr.value, domain), None
        if kind is ir.Slot:
            if expr.kind == "param":
                if expr.name not in self.params:
                    register = self.r.new(NODE)
                    index = [n for n, _ in self.program.params].index(expr.name)
                    self.emit(self.prologue, "fill_param", register, index)
                    self.params[expr.name] = register
                return self.params[expr.name], None
            slot = self.slot(expr.kind, expr.name)
            if expr.kind in ("node", "edge"):
                return slot, None
            out = self.r.new(HALF)
            op = {"nbr": "gather_nbr", "peer": "gather_rev", "shared": "gather_eid"}[expr.kind]
            self.emit(self.code, op, out, slot)
            return out, None
        if kind is ir.Builtin:
            if expr.name == "time":
                return self.time, None
            domain = HALF if expr.name in ("parity", "incoming", "outgoing", "nbr_degree") \
                else NODE
            return self.fixed(("builtin", expr.name), domain, ("builtin", expr.name)), None
        if kind is ir.Random:
            out = self.r.new(domain)
            self.emit(self.code, expr.dist, out, expr.ordinal)
            return out, None
        if kind is ir.Restrict:
            value, mask = self.expr(expr.value, scope)
            predicate, _ = self.expr(expr.predicate, scope)
            # the reference: the restriction's mask is the predicate's alone
            return value, self.positive(predicate)
        assert kind is ir.Reduce, expr
        value, mask = self.expr(expr.arg, scope)
        out = self.r.new(NODE)
        self.emit(self.code, f"red_{expr.op}", out, value, -1 if mask is None else mask)
        return out, None


_EFFECTS = {OPCODES[name] for name in ("store", "propose", "commit", "skip_if_none")}
#: Instructions whose operand a is an integer, not a register.
IMMEDIATE_A = ("fill_param", "uniform", "gauss")
_NOT_REGISTER_A = {OPCODES[name] for name in IMMEDIATE_A}


def _without_dead_code(prologue: list, step: list, kept: set[int]) -> tuple[list, list]:
    """A block's (prologue, step) without instructions whose results nothing
    reads (a `let` never used, a value only a removed instruction needed, a
    gather every reader of which reads through an index now). Writes to
    `kept` registers (slots, pending values) and control stay; skip offsets
    are renumbered. Branch bodies are straight-line code here: what a body
    computes is read only inside it."""
    code = [*prologue, *step]
    live: set[int] = set()
    keep = [False] * len(code)
    for index in range(len(code) - 1, -1, -1):
        ins = code[index]
        op, d = ins[0], ins[1]
        if op in _EFFECTS or d in kept or d in live:
            keep[index] = True
            special = op in _SPECIAL
            live.difference_update(_writes(*ins) if special else ins[1:2])
            # a masked store (propose, commit) also reads what it keeps
            live.update(_reads(*ins) if special else ins[2:])  # (-1 matches nothing)
    split = len(prologue)
    return _kept(prologue, keep[:split]), _kept(step, keep[split:])


def _kept(code: list, keep: list[bool], retarget: dict[int, int] | None = None) -> list:
    """The instructions of `code` that `keep` says to keep, with the skip
    offsets renumbered over what was dropped, and the destination of
    instruction i changed to retarget[i] where given."""
    if not retarget and all(keep):
        return code
    new_index, count = [], 0
    for flag in keep:
        new_index.append(count)
        count += flag
    new_index.append(count)
    retarget = retarget or {}
    out = []
    for index, (op, d, a, b, c) in enumerate(code):
        if not keep[index]:
            continue
        if op == _SKIP:
            b = new_index[index + b + 1] - new_index[index] - 1
        out.append((op, retarget.get(index, d), a, b, c))
    return out


_COPY, _STORE, _SKIP = OPCODES["copy"], OPCODES["store"], OPCODES["skip_if_none"]


_KEEPS_D = {OPCODES["store"], OPCODES["propose"], OPCODES["commit"]}
_PROPOSE, _COMMIT = OPCODES["propose"], OPCODES["commit"]


def _reads(op: int, d: int, a: int, b: int, c: int) -> tuple[int, ...]:
    """The registers an instruction may read (its destination too, for the
    ones that may keep what they do not overwrite); -1 where unused."""
    if op == _SKIP:
        return (a,)
    sources = (b, c) if op in _NOT_REGISTER_A else (a, b, c)
    return (d, *sources) if op in _KEEPS_D else sources


def _writes(op: int, d: int, a: int, b: int, c: int) -> tuple[int, ...]:
    """The registers an instruction writes: its destination, and a
    proposal's flags (c); none for a skip."""
    if op == _SKIP:
        return ()
    return (d, c) if op == _PROPOSE else (d,)


#: Instructions other than "writes d, reads a, b and c": the passes' loops
#: read ins[1:2] and ins[2:] for the others (a slice, not a call; -1 where
#: unused), and ask _reads and _writes for these.
_SPECIAL = {_SKIP, _PROPOSE, *_KEEPS_D, *_NOT_REGISTER_A}


def _direct_stores(code: list, pending: dict[int, int]) -> list:
    """`code` with the pending register of a node or edge slot left out
    where it is not needed: when a slot's pending register is written only
    by stores (after the copy of the slot into it at the step's start), read
    by nothing else, and nothing after the first store reads the slot, the
    stores can go into the slot itself, and the two copies around the step
    (slot to pending at its start and pending to slot at its end) go. Reads
    before the first store still see the block-start values, as the
    synchronous semantics asks; each removed copy was a pass over the
    slot's array. A masked store, or one in a branch, leaves the elements
    it does not write as they were: in the slot, the block-start values, as
    the pending register held them. Where _without_dead_stores dropped the
    start copy (one store overwrites the whole register first), that store
    is the only one and is neither masked nor in a branch.
    (The lanes VM keeps a frozen lane's slots out of such a store, as it
    does for the copies; Program.tiled() gives a store into a slot another
    tile reads a pending register again.)
    `pending`: slot register -> its pending register."""
    if not pending:
        return code
    covered = None
    writers = _writers(code)
    readers = _readers(code, {*pending, *pending.values()})
    drop, retarget = set(), {}
    for slot, pend in pending.items():
        written = writers.get(pend, [])
        if written and code[written[0]][:3:2] == (_COPY, slot):
            first, stores = written[0], written[1:]
        else:  # the copy at the start went as a dead store
            first, stores = None, written
            if covered is None:
                covered = _covered(code)
            if len(stores) != 1 or code[stores[0]][3] >= 0 or covered[stores[0]]:
                continue
        if not stores or any(code[i][0] != _STORE for i in stores):
            continue
        last = writers.get(slot, [])  # the copy back from pending, and nothing else
        if len(last) != 1 or last[0] < stores[-1] or code[last[0]][:3] != (_COPY, slot, pend):
            continue
        if any(i not in stores and i != last[0] for i in readers[pend]):
            continue
        if any(i > stores[0] for i in readers[slot]):
            continue
        drop.update((first, last[0]) if first is not None else (last[0],))
        for store in stores:
            if code[store][2] == slot:  # `x = x`: nothing to store
                drop.add(store)
            else:
                retarget[store] = slot
    if not drop:
        return code
    return _kept(code, [i not in drop for i in range(len(code))], retarget)


#: Instructions that compute a value from their operands alone: the same
#: operands give the same result in the prologue as in any step.
_PURE = {OPCODES[name] for name in ("copy", "zero", "gather_nbr", "gather_rev", "gather_eid",
                                    "bcast", "red_sum", "red_mean", "red_max", "red_min",
                                    "red_count", "positive", "andnot", *ELEMENTWISE, *PAIRS)}
_ELEMENTWISE = {OPCODES[name] for name in (*ELEMENTWISE, *PAIRS)}
_ARITY = {**{OPCODES[name]: op.arity for name, op in OPS.items()},
          **{OPCODES[name]: 3 for name in PAIRS}}
#: a gathering instruction -> the mode that reads through its index
_GATHER_MODE = {OPCODES["gather_nbr"]: NBR, OPCODES["bcast"]: OWNER,
                OPCODES["gather_rev"]: REV, OPCODES["gather_eid"]: EID}
_FILL_PARAM = OPCODES["fill_param"]
_FIXED = ("const", "builtin")  # registers filled once per graph


def _bodies(code: list) -> list[tuple[int, int]]:
    """The branch bodies of `code`: (first, last) instruction of each, the
    instructions a skip_if_none skips."""
    return [(index + 1, index + ins[3]) for index, ins in enumerate(code) if ins[0] == _SKIP]


def _innermost(code: list) -> list[tuple[int, int] | None]:
    """For each instruction of `code`, the innermost branch body it is in
    (first, last), or None."""
    body: list[tuple[int, int] | None] = [None] * len(code)
    for first, last in _bodies(code):  # an inner body comes after its outer one
        body[first:last + 1] = [(first, last)] * (last + 1 - first)
    return body


def _covered(code: list) -> list[bool]:
    """For each instruction of `code`, whether it is in a branch body."""
    return [body is not None for body in _innermost(code)]


def _readers(code: list, wanted=None) -> dict[int, list[int]]:
    """register -> the instructions that read it, in order (of the
    registers in `wanted` only, where given: each then has a list)."""
    out: dict[int, list[int]] = {r: [] for r in wanted} if wanted is not None else {}
    for index, ins in enumerate(code):
        for r in _reads(*ins) if ins[0] in _SPECIAL else ins[2:]:
            if wanted is None:
                if r >= 0:
                    out.setdefault(r, []).append(index)
            elif r in wanted:
                out[r].append(index)
    return out


def _writers(code: list) -> dict[int, list[int]]:
    """register -> the instructions that write it, in order."""
    out: dict[int, list[int]] = {}
    for index, ins in enumerate(code):
        if ins[0] in _SPECIAL:
            for r in _writes(*ins):
                out.setdefault(r, []).append(index)
        else:
            out.setdefault(ins[1], []).append(index)
    return out


_DRAWS = {OPCODES["uniform"], OPCODES["gauss"]}
_SELECT = OPCODES["select"]


def _masked_draws(step: list, registers: Registers) -> list:
    """`step` with each draw made only where its value is taken: a draw into
    a temporary that goes, through a chain of elementwise instructions that
    each read the last one's value at their own element and are its one
    reader, to one reader that takes it only where a mask is > 0: a select
    taking it where the condition is > 0 (`select(source, gauss(), y)`), or
    a store masked by m (`if c { x = 0.1 * uniform() }`). The draw gets that
    condition or mask as its own (operand b): a draw is keyed by its
    element, so the values drawn are the same, and what the chain computes
    from the elements not drawn is read by nothing. Sound where the mask
    holds at the draw what it holds at the reader (nothing writes it in
    between) and every reader reads at its own element (no fused operand
    for the value: run this after _fused)."""
    readers, writers = _readers(step), _writers(step)
    source, domain = registers.source, registers.domain
    out = step
    for j, (op, d, a, b, c) in enumerate(step):
        if op not in _DRAWS or b >= 0 or domain[d] == EDGE:
            continue
        mask, value = None, d
        while source[value][0] == "temp" and len(writers.get(value, ())) == 1:
            found = readers.get(value, ())
            if len(found) != 1:
                break
            k = found[0]
            reader = step[k]
            if reader[0] == _SELECT and reader[3] == value and value not in (reader[2],
                                                                              reader[4]):
                mask = reader[2]  # select(mask, value, other): value where mask > 0
                break
            if reader[0] == _STORE and reader[2] == value and reader[3] not in (-1, value):
                mask = reader[3]  # store(x, value, mask)
                break
            word = reader[0]
            if word & 255 not in _ELEMENTWISE or reader[1] == value or domain[reader[1]] != \
                    domain[d] or any(r == value and mode != OWN for r, mode in
                                     zip(reader[2:], _modes(word), strict=True)):
                break
            value = reader[1]  # an elementwise op of it at its own element: follow
        if mask is None or domain[mask] != domain[d] or \
                any(j <= w < k for w in writers.get(mask, ())):
            continue
        if out is step:
            out = list(step)
        out[j] = (op, d, a, mask, c)
    return out


def _without_dead_stores(step: list) -> list:
    """`step` without the writes that a later write overwrites whole before
    anything reads them: `x += f(...)` then `x = degree` keeps only the
    second store into x's pending register (and the copy that filled it at
    the step's start goes too, where a store overwrites it). A write
    overwrites whole when it is outside any branch and writes every element
    (not a masked store, a proposal or a commit). What only the dropped
    writes read then goes as dead code."""
    covered = _covered(step)
    killed: set[int] = set()  # overwritten whole later, with no read in between
    keep = [True] * len(step)
    for index in range(len(step) - 1, -1, -1):
        ins = step[index]
        op = ins[0]
        special = op in _SPECIAL
        writes = _writes(*ins) if special else ins[1:2]
        if writes and op != _PROPOSE and op != _COMMIT and killed.issuperset(writes):
            keep[index] = False
            continue
        unmasked = op == _STORE and ins[3] < 0  # reads only its value
        if not covered[index] and (op not in _KEEPS_D or unmasked):
            killed.update(writes)
        killed.difference_update((ins[2],) if unmasked else
                                 _reads(*ins) if special else ins[2:])
    return _kept(step, keep)


def _hoisted(prologue: list, step: list, registers: Registers) -> tuple[list, list]:
    """(prologue, step) with the step's loop invariants moved to the end of
    the prologue: a pure instruction whose operands are constants,
    built-ins, slots the block does not write, or registers only the
    prologue writes (params, and invariants already moved), and whose
    destination is a temporary nothing else writes and nothing reads before
    it. It then runs once per call, not once per step (`count(incoming) > 0`
    in a rule's step is the same at every step), computing the same values:
    nothing writes those operands between a call's steps (the protocol
    driver sets inputs between calls). An instruction in a branch
    moves too: it is pure, and what it computes is read only in that
    branch (the branch's own scope), so computing it whether or not the
    branch is taken changes nothing the branch does not read."""
    source = registers.source
    writers = _writers([*prologue, *step])
    split = len(prologue)
    # invariant through a call: written only by the prologue, a slot the
    # block never writes (an input the protocol sets between calls), a
    # constant or a built-in; and -1, no operand
    fixed = {-1, *(r for r, found in writers.items() if found[-1] < split)}
    fixed.update(r for r, src in enumerate(source)
                 if src[0] in _FIXED or (src[0] == "slot" and r not in writers))
    read_before: set[int] = set()
    moved, keep = [], [True] * len(step)
    for index, ins in enumerate(step):
        op, d = ins[0], ins[1]
        reads = _reads(*ins) if op in _SPECIAL else ins[2:]
        if (op in _PURE and fixed.issuperset(reads) and source[d][0] == "temp"
                and writers.get(d) == [split + index] and d not in read_before):
            moved.append(ins)
            keep[index] = False
            fixed.add(d)
        read_before.update(reads)
    if not moved:
        return prologue, step
    return [*prologue, *moved], _kept(step, keep)


def _fused(prologue: list, step: list, registers: Registers, node_const) -> tuple[list, list]:
    """(prologue, step) with the operands of elementwise instructions on the
    half-edges read through an index where that saves a register (the VM's
    fused operands, docs/vm.md): a gathered operand (gather_nbr, bcast,
    gather_rev, gather_eid) is read from the gather's source through the
    gather's index, and a constant on the half-edges, or a param broadcast
    to them, is read as one value. The gathers nothing else reads then go
    as dead code. Sound where the source still holds what the gather read:
    nothing writes it between the two (and nothing in the step, for a
    gather in the prologue read by the step), and the gather is in no
    branch the reader is not in. `node_const(value)`: the node register of
    a constant."""
    code = [*prologue, *step]
    split = len(prologue)
    source, domain = registers.source, registers.domain
    writers = _writers(code)
    bodies = [(split + first, split + last) for first, last in _bodies(step)]

    def ran_with(i: int, j: int) -> bool:  # every body that holds i holds j
        return all(first <= j <= last for first, last in bodies if first <= i <= last)

    def scalar(r: int) -> bool:  # the same value at every element, every step
        found = writers.get(r, ())
        return source[r][0] == "const" or (
            source[r][0] == "temp" and len(found) == 1 and code[found[0]][0] == _FILL_PARAM
            and found[0] < split)

    def unchanged(x: int, first: int, last: int) -> bool:  # nothing writes x in (first, last)
        found = writers.get(x, ())
        if first < split <= last and found and found[-1] >= split:  # written by the step
            return False
        return not any(first < i < last for i in found)

    out, changed = list(code), False
    for j, ins in enumerate(code):
        op, d = ins[0], ins[1]
        if op not in _ELEMENTWISE or domain[d] != HALF or source[d][0] != "temp":
            continue
        operands, word = list(ins[2:2 + _ARITY[op]]), op
        for k, r in enumerate(operands):
            mode = OWN
            if source[r][0] == "const":
                operands[k], mode = node_const(source[r][1]), SCALAR
            else:
                found = writers.get(r, ())
                if len(found) == 1 and found[0] < j and code[found[0]][0] in _GATHER_MODE:
                    i = found[0]
                    gather, x = code[i][0], code[i][2]
                    if ran_with(i, j) and unchanged(x, i, j):
                        mode = _GATHER_MODE[gather]
                        if mode == OWNER and scalar(x):
                            mode = SCALAR
                        operands[k] = x
            word |= mode << (OPERAND_SHIFT + OPERAND_BITS * k)
        if word != op:
            rest = [-1] * (3 - len(operands))
            out[j] = (word, d, *operands, *rest)
            changed = True
    if not changed:
        return prologue, step
    return out[:split], out[split:]


_GATHERS = {OPCODES["gather_nbr"], OPCODES["gather_rev"], OPCODES["gather_eid"]}
_ACROSS = (NBR, REV, EID)  # modes that read another element than the owner's


#: a reduction -> the same reduction of an elementwise op's values. Not
#: counts: a count of `1 - nbr.ready` fused so ran 1.15x slower on 50 nodes
#: (rows of ~10 half-edges: a short gathering loop per node, where the op
#: alone is one long vectorized loop) and gained little elsewhere
_REDUCED_OF = {OPCODES["red_sum"]: OPCODES["red_sum_of"]}
#: The ops whose values a sum computes where it adds them: arithmetic
#: whose operands the compiler cannot swap. Not the commutative ops (the op
#: table's `commutative`: add, mul, min, max): of two NaN operands x86
#: returns the first's sign and payload, and the compiler orders a
#: commutative op's operands as it likes in each loop, so the sum could get
#: another NaN than the op's own loop gives (tests/test_vm.py's same-bits
#: test caught a sum of products doing so; vm.c.j2's one-operand fused
#: loops leave them out for the same reason). Nor exp, tanh, ...: such a
#: sum is bound by the function, not by the register it saves, and each op
#: summed is two more loop nests in the VM's C (its build time, once per
#: rulec version).
SUMMED_OPS = ("sub", "div", "neg", "abs", "square")
_SUMMED = {OPCODES[name] for name in SUMMED_OPS}


def _fused_reductions(step: list, registers: Registers) -> list:
    """`step` with each sum over a node's half-edges of a temporary that one
    elementwise instruction (unary or binary, its operands fused or not)
    wrote for it alone computed in the sum (red_sum_of): the value of each
    half-edge is made where the sum adds it, not written into a register
    and read back. The same float operations in the same order, so the same
    bits. Sound where the elementwise instruction and the sum run in the
    same branch body and nothing writes its operands in between."""
    source, domain = registers.source, registers.domain
    readers = _readers(step)
    writers = _writers(step)
    body = None
    out, keep = list(step), [True] * len(step)
    for index, (word, d, t, mask, _) in enumerate(step):
        if word not in _REDUCED_OF or source[t][0] != "temp" or domain[t] != HALF:
            continue
        written = writers.get(t, ())
        if len(written) != 1 or written[0] > index or readers.get(t) != [index]:
            continue
        e = written[0]
        op = step[e][0] & 255
        if op not in _SUMMED or not keep[e]:
            continue
        if body is None:
            body = _innermost(step)
        if body[e] != body[index]:
            continue
        operands = [r for r in step[e][2:2 + _ARITY[op]] if r >= 0]
        if any(e < i < index for r in operands for i in writers.get(r, ())):
            continue
        modes = step[e][0] >> OPERAND_SHIFT  # a's and b's (c's is OWN: arity <= 2)
        out[index] = (_REDUCED_OF[word] | modes << OPERAND_SHIFT | op << REDUCED_SHIFT, d,
                      step[e][2], step[e][3] if _ARITY[op] == 2 else -1, mask)
        keep[e] = False
    if all(keep):
        return step
    return _kept(out, keep)


_PAIRED = {(OPCODES[outer], OPCODES[inner], side): OPCODES[name]
           for name, (outer, inner, side) in PAIRS.items()}
_PAIR_OPS = {OPCODES[name] for name in PAIR_OPS}


def _paired(step: list, registers: Registers) -> list:
    """`step` with each instruction of +, - or * that reads, at its own
    element, a temporary that one other such instruction wrote for it alone
    computing that value itself (a paired op, PAIRS): one loop over the
    elements, not two, and no register written and read back between.
    `x + y * z` on the nodes is `add_mul_r x y z`; a pair does not pair
    again. The same float operations on the same values; which NaN comes
    out where two meet in `+` or `*` may differ (the compiler orders a
    commutative op's operands as it likes in each loop, and x86 returns the
    first's NaN). Sound where both run in the same branch body, nothing
    writes the first's operands in between, and the second does not write
    a register the first reads (its operands may read other elements). Not
    where an operand is a scalar (a constant or a param on the half-edges:
    the unpaired loops hold it in a register, and `v + lr * w` ran 1.35x
    slower paired on 2^20 half-edges)."""
    source, domain = registers.source, registers.domain
    readers, writers = _readers(step), _writers(step)
    body = None
    out, keep = list(step), [True] * len(step)
    for j, (word, d, *operands) in enumerate(step):
        if word & 255 not in _PAIR_OPS:
            continue
        modes = _modes(word)
        for side in (0, 1):
            t, other = operands[side], operands[1 - side]
            if modes[side] != OWN or t == other or source[t][0] != "temp":
                continue
            found = writers.get(t, ())
            if len(found) != 1 or found[0] >= j or readers.get(t) != [j]:
                continue
            i = found[0]
            first = out[i]
            if first[0] & 255 not in _PAIR_OPS or domain[first[1]] != domain[d] \
                    or d in first[2:4]:
                continue
            if body is None:
                body = _innermost(step)
            if body[i] != body[j] or any(i < w < j for r in first[2:4]
                                         for w in writers.get(r, ())):
                continue
            inner = _modes(first[0])
            if side == 0:  # outer(inner(a, b), c)
                regs, kept_modes = (first[2], first[3], other), (inner[0], inner[1], modes[1])
            else:  # outer(a, inner(b, c))
                regs, kept_modes = (other, first[2], first[3]), (modes[0], inner[0], inner[1])
            if SCALAR in kept_modes:
                continue
            paired = _PAIRED[word & 255, first[0] & 255, "lr"[side]]
            for k, mode in enumerate(kept_modes):
                paired |= mode << (OPERAND_SHIFT + OPERAND_BITS * k)
            out[j] = (paired, d, *regs)
            keep[i] = False
            break
    if all(keep):
        return step
    return _kept(out, keep)


def _modes(word: int) -> tuple[int, int, int]:
    """The operand modes of an op word (OWN for an instruction not fused)."""
    return tuple((word >> (OPERAND_SHIFT + OPERAND_BITS * k)) & 7 for k in range(3))


def _read_across(ins: tuple) -> list[int]:
    """The registers `ins` reads at elements of other nodes than the one it
    writes for: a gather's source, an operand read through nbr, rev or eid."""
    op = ins[0]
    if op in _GATHERS:
        return [ins[2]]
    if op >> OPERAND_SHIFT:
        return [r for r, mode in zip(ins[2:], _modes(op), strict=True) if mode in _ACROSS]
    return []


def _tiled(step: list, registers: Registers) -> tuple[list, int]:
    """(the step as it runs in tiles, the length of its untiled epilogue),
    or (step, -1) where it cannot run in tiles.

    Tiles of nodes run the step one after another, each over its nodes and
    their half-edges; a tile reads another's elements only of the slots
    (gathers read slots), which change only in the epilogue: the copies of
    pending registers into the slots and the commits, which end every step
    and run once over everything. A store straight into a slot in the
    middle of the step (_direct_stores) would change what a later tile
    gathers; where another tile reads that slot, the store goes into a
    pending register again, copied in the epilogue."""
    source, domain = registers.source, registers.domain
    across = {r for ins in step for r in _read_across(ins)}
    if any(source[r][0] != "slot" for r in across):
        return step, -1  # never made by the translator; untiled is always right
    out, head, tail = list(step), [], []
    covered = _covered(step)
    stores: dict[int, list[int]] = {}  # a slot read across -> the stores straight into it
    for index, ins in enumerate(step):
        if ins[0] == _STORE and ins[1] in across:
            stores.setdefault(ins[1], []).append(index)
    for slot, indexes in stores.items():
        pending = registers.new(domain[slot])
        for index in indexes:
            out[index] = (_STORE, pending, *step[index][2:])
        if len(indexes) > 1 or any(step[i][3] >= 0 or covered[i] for i in indexes):
            head.append((_COPY, pending, slot, -1, -1))  # the elements no store writes
        tail.append((_COPY, slot, pending, -1, -1))
    if head:  # skips count instructions, and none skips past the step's start
        out = head + out
    out += tail
    epilogue = 0
    for ins in reversed(out):
        if ins[0] == _COMMIT or (ins[0] == _COPY and source[ins[1]][0] == "slot"):
            epilogue += 1
        else:
            break
    head = out[:len(out) - epilogue]
    if any(ins[0] == _COMMIT or (r >= 0 and source[r][0] == "slot" and r in across)
           for ins in head for r in _writes(*ins)):
        return step, -1
    return out, epilogue


def _compact(registers: Registers, blocks: dict[str, BlockCode], slots: int) -> Registers:
    """The registers some instruction uses (the slots, registers 0 .. slots-1,
    always), renumbered in order, with every block's code renumbered to
    match: a constant every reader of which now reads a scalar, or a
    temporary dead code left, takes no array."""
    used = set(range(slots))
    for code in blocks.values():
        for ins in (*code.prologue, *code.step):
            if ins[0] in _SPECIAL:
                used.update(_reads(*ins), _writes(*ins))
            else:
                used.update(ins[1:])
    used.discard(-1)
    if len(used) == len(registers.source):
        return registers
    order = sorted(used)
    number = {r: i for i, r in enumerate(order)}
    number[-1] = -1
    out = Registers([registers.domain[r] for r in order], [registers.source[r] for r in order])
    for code in blocks.values():
        code.prologue = [_renumbered(ins, number) for ins in code.prologue]
        code.step = [_renumbered(ins, number) for ins in code.step]
    return out


def _renumbered(ins: tuple, number: dict[int, int]) -> tuple:
    """`ins` with its registers renumbered (number[-1] is -1)."""
    op, d, a, b, c = ins
    if op == _SKIP:
        return (op, d, number[a], b, c)
    return (op, number[d], a if op in _NOT_REGISTER_A else number[a], number[b], number[c])


def _uses_time(statements) -> bool:
    return any(isinstance(e, ir.Builtin) and e.name == "time"
               for top in ir.expressions_in(statements) for e in ir.walk(top))


def translate(program: ir.Program, optimize: bool = True) -> Program:
    """The VM program of a checked rule (after the IR passes). Without
    `optimize`, the code is as translated: dead code and dead stores stay,
    nothing moves to the prologue, no operand is fused, no store goes
    straight into its slot and every draw is made everywhere: the same
    values bit for bit, from code that takes less than half the time to
    make and a little more to run (a search screens most rules that way:
    they run a few steps, and few go on to learn)."""
    program = pipeline(program)
    registers = Registers()
    shared: dict = {}
    translator = _Translator(program, registers, shared, optimize)
    # the slots first, in the state's order: registers 0 .. S-1 (check_finite reads them)
    slots = program.slot_kinds
    for kind, name in slots:
        translator.slot(kind, name)
    blocks = {}
    for block in program.blocks:
        translator.memo_step = {}
        blocks[block.label] = translator.block(block)
    return Program(program, _compact(registers, blocks, len(slots)), blocks)


def disassemble(vm: Program) -> str:
    """A readable listing of a VM program (for docs and debugging)."""
    names = {code: name for name, code in OPCODES.items()}
    lines = []
    for i, (domain, source) in enumerate(zip(vm.registers.domain, vm.registers.source,
                                             strict=True)):
        if source[0] != "temp":
            lines.append(f"r{i} {'N H M'.split()[domain]} {' '.join(map(str, source))}")
    for label, code in vm.blocks.items():
        for part, instructions in (("prologue", code.prologue), ("step", code.step)):
            lines.append(f"{label} {part}:")
            for word, d, a, b, c in instructions:
                op = word & 255
                immediate = names[op] in IMMEDIATE_A
                skip = names[op] == "skip_if_none"
                fused = [f"[{MODE_NAMES[m]}]" if m else "" for m in _modes(word)]
                # red_sum_of: the elementwise op whose values it sums
                summed = f" ({names[(word >> REDUCED_SHIFT) & 255]})" \
                    if op in _REDUCED_OF.values() else ""
                operands = [f"r{d}" if d >= 0 else "-",
                            f"#{a}" if immediate else f"r{a}{fused[0]}" if a >= 0 else "-",
                            f"+{b}" if skip else f"r{b}{fused[1]}" if b >= 0 else "-",
                            f"r{c}{fused[2]}" if c >= 0 else "-"]
                lines.append(f"    {names[op]:<12} {' '.join(operands).rstrip(' -')}{summed}")
    return "\n".join(lines)
