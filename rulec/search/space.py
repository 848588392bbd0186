"""What a search draws rules from and how it screens them, as data.

A search space file is TOML (docs/search.md); every section and key is
optional, and what is left out keeps the built-in default:

    [protocol]                 # how the harness talks to a rule (rulec.learning)
    name = "fixed"             # fixed | simultaneous | handshake
    forward = 10               # steps with the inputs presented
    learn = 10                 # steps with the targets presented (fixed)
    budget = 100               # the step budget of a wait (handshake)
    [protocol.slots]           # role = the rule's node slot
    input = "inp"
    target = "target"
    train_flag = "train"
    output = "a"

    [slots]                    # [min, max] memory a rule may have
    node = [0, 2]              # extra node slots, beyond the protocol's
    edge = [1, 2]              # private edge slots
    shared = [0, 1]            # shared edge slots

    [params]                   # name = [low, high]
    lr = [0.001, 1.0]

    [ops]
    allow = ["add", "mul", ...]   # or leave out: every op

    [limits]
    depth = 3                  # expression depth
    statements = 4             # statements per block

    [odds]
    vector_ratio = 2.0         # vector : float operands
    filter = 0.2               # a vector node is a filter
    conditional = 0.15         # a statement is an `if`
    reuse = 0.2                # a leaf reuses the rule's base expression
    draw = 0.05                # a leaf of `update` is a random draw
    init = 0.5                 # a rule has an `init` block
    neighbour = 0.3            # a vector leaf is a neighbour's node slot (nbr.x)
    shaped = 0.5               # a rule ends with a forward and a learning statement

    [screen]                   # the hurdles (rulec.search.hurdles)
    tasks = ["and", "or"]
    graph = "layered:2,1,bias"
    seeds = 3                  # seeds per task hurdle
    epochs = 30                # epochs per seed
    pass_accuracy = 1.0        # the mean accuracy over seeds that passes a task
    hold = 5                   # a seed's accuracy: the mean of its last `hold` epochs
                               # (training stops once it is 100% for `hold` in a row)
    retain = 50                # then trains max(epochs taken, retain) more: it must hold
    fresh_seeds = 10           # held-out seeds for the rules that pass every task
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .. import syntax as ast
from ..errors import RulecError
from ..generate import ALL_OPS, Options, SeededSource, rule_tree
from ..learning.protocols import OPTIONAL_ROLES, PROTOCOLS, STEP_SETTINGS

PROTOCOL_NAMES = tuple(PROTOCOLS)


def digest(data: dict) -> str:
    """A short, stable hash of plain data (JSON with sorted keys)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


class SpaceError(RulecError, ValueError):
    """A search space file or option that cannot be used."""


#: The whole numbers a space file or the command line may set, with their
#: bounds: sizes that fit in memory and in time (a screen runs seeds x
#: epochs x steps per example; a rule has at most SLOTS_MAX slots of a kind).
WHOLE = {
    ("protocol", "forward"): (1, 10_000),
    ("protocol", "learn"): (1, 10_000),
    ("protocol", "budget"): (1, 100_000),
    ("limits", "depth"): (1, 12),
    ("limits", "statements"): (1, 64),
    ("screen", "seeds"): (1, 1_000),
    ("screen", "epochs"): (1, 1_000_000),
    ("screen", "hold"): (1, 1_000_000),
    ("screen", "retain"): (0, 1_000_000),
    ("screen", "fresh_seeds"): (0, 1_000),
    ("screen", "robust_seeds"): (0, 999),
    ("screen", "probe_seed"): (0, 2**32 - 1),
}
SLOTS_MAX = 32
VECTOR_RATIO_MAX = 1_000.0
#: The largest magnitude of a param's bound (float32's range).
PARAM_MAX = 3.4e38
#: Which protocols read each [protocol] number (a number no protocol of the
#: file reads is refused, not silently ignored).
PROTOCOL_NUMBERS = {"forward": ("fixed", "simultaneous"), "learn": ("fixed",),
                    "budget": ("handshake",)}  # and fixed, with settle
SETTLE_MAX = 1000.0
assert all(set(kinds) >= {k for k, known in STEP_SETTINGS.items() if key in known}
           for key, kinds in PROTOCOL_NUMBERS.items())

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: Names the generator gives to a space's own slots and locals.
_GENERATED = re.compile(r"(h|t)[0-9]+\Z")


def draw_tree(options: Options, seed: int, index: int) -> ast.File:
    """Rule `index` of seed `seed`'s random stream: a function of (seed,
    index, the space's options) alone, wherever it is drawn."""
    return rule_tree(SeededSource(f"{seed}:{index}"), options)


def check_name(name, what: str) -> str:
    """`name` if it can stand in rule text as a slot or param name: an
    identifier that is no keyword, built-in or function, and none of the
    names the generator makes (w v q g k edge slots, h0... node slots,
    t1... locals). Anything else would be spliced into rule text verbatim."""
    from ..checker import RESERVED
    from ..generate import EDGE_NAMES, SHARED_NAMES

    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise SpaceError(f"{what} must be a name (letters, digits and _, not starting with a "
                         f"digit), got {name!r}")
    if name in RESERVED:
        raise SpaceError(f"{what}: {name!r} is a keyword or built-in name of the rule "
                         "language; choose another")
    if name in EDGE_NAMES or name in SHARED_NAMES or _GENERATED.match(name):
        raise SpaceError(f"{what}: {name!r} is a name the generator gives to its own slots "
                         f"and locals ({', '.join(EDGE_NAMES + SHARED_NAMES)}, h0..., t1...); "
                         "choose another")
    return name


def _shown(key: str) -> str:
    """A TOML key as an error shows it: bare when it is a name, else quoted."""
    return key if _IDENTIFIER.match(key) else repr(key)


def _pair(value, what: str) -> tuple[int, int]:
    if (not isinstance(value, list | tuple) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            or not 0 <= value[0] <= value[1]):
        raise SpaceError(f"{what} must be [min, max], two whole numbers with 0 <= min <= max; "
                         f"got {value!r}")
    if value[1] > SLOTS_MAX:
        raise SpaceError(f"{what}: at most {SLOTS_MAX} slots of a kind, got {value[1]}")
    return int(value[0]), int(value[1])


def _bounded(value, section: str, key: str, what: str) -> int:
    low, high = WHOLE[(section, key)]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpaceError(f"{what} must be a whole number in [{low}, {high:,}], got {value!r}")
    return value


@dataclass(frozen=True)
class Space:
    """The rules a search draws: the protocol's slots and the generator's knobs."""

    protocol: str = "fixed"
    forward: int = 10
    learn: int = 10
    budget: int = 100
    # fixed: step until the outputs move by at most this much, at most
    # `budget` steps, instead of `forward` steps (0: off)
    settle: float = 0.0
    slots: tuple[tuple[str, str], ...] = ()  # (role, slot) overrides of the protocol's names
    node: tuple[int, int] = (0, 2)
    edge: tuple[int, int] = (1, 2)
    shared: tuple[int, int] = (0, 1)
    params: tuple[tuple[str, float, float], ...] = (("lr", 0.001, 1.0),)
    ops: tuple[str, ...] = tuple(sorted(ALL_OPS))
    depth: int = 3
    statements: int = 4
    vector_ratio: float = 2.0
    filter: float = 0.2
    conditional: float = 0.15
    reuse: float = 0.2
    draw: float = 0.05
    init: float = 0.5
    neighbour: float = 0.3
    shaped: float = 0.5

    def make_protocol(self):
        """The rulec.learning protocol object."""
        from ..learning import protocols

        roles = protocols.PROTOCOLS[self.protocol].ROLES
        unknown = [role for role, _ in self.slots if role not in roles]
        if unknown:
            raise SpaceError(f"[protocol.slots]: unknown role {unknown[0]!r} for the "
                             f"{self.protocol} protocol; its roles: {', '.join(roles)}")
        steps = protocols.STEP_SETTINGS[self.protocol]
        try:
            return protocols.protocol_named(
                self.protocol, self.slots, settle=self.settle,
                forward=self.forward if "forward" in steps else None,
                learn=self.learn if "learn" in steps else None)
        except protocols.ProtocolError as exc:
            raise SpaceError(f"[protocol] {exc}") from None

    def protocol_slots(self) -> tuple[str, ...]:
        """The node slots every rule of the space has, in role order."""
        names: list[str] = []
        for _, slot in self.make_protocol().roles():
            if slot not in names:
                names.append(slot)
        return tuple(names)

    def options(self) -> Options:
        """The generator's options for this space."""
        fixed = self.protocol_slots()
        extra = tuple(f"h{i}" for i in range(self.node[1]))
        return Options(
            max_depth=self.depth, max_statements=self.statements,
            node_slots=(len(fixed) + self.node[0], len(fixed) + self.node[1]),
            edge_slots=self.edge, shared_slots=self.shared, params=(0, 0),
            named_blocks=(0, 0), init=self.init, ops=frozenset(self.ops),
            vector_ratio=self.vector_ratio, reuse=self.reuse, draws_in_update=self.draw,
            node_names=fixed + extra, filter=self.filter, conditional=self.conditional,
            neighbour=self.neighbour, param_ranges=self.params, live_only=True,
            roles=self.shape_roles(), shaped=self.shaped)

    def shape_roles(self) -> tuple[str, str, str | None, str | None]:
        """(input, output, target, train flag) slots of the protocol: a shaped
        rule's roles."""
        protocol = self.make_protocol()
        return (protocol.input, protocol.output, getattr(protocol, "target", None),
                getattr(protocol, "train_flag", None))

    def param_range(self, name: str) -> tuple[float, float] | None:
        for param, low, high in self.params:
            if param == name:
                return low, high
        return None


#: The most graphs one run screens every rule on.
MAX_GRAPHS = 16
#: Rung k of successive halving trains on seeds RUNG_SEED0 * (k + 1) and up
#: (the task hurdles' and robust seeds stay below RUNG_SEED0, the untouched
#: ones start at 1000); a run has at most MAX_RUNGS cheaper rungs.
RUNG_SEED0 = 100
MAX_RUNGS = 8


def graph_label(task: str, graph: int) -> str:
    """How a result row names a task learned on the run's `graph`-th graph:
    the task's name on the first, `TASK@K` on graph K > 0."""
    return task if graph == 0 else f"{task}@{graph}"


@dataclass(frozen=True)
class Screen:
    """The hurdles: which tasks, on which graph, how many seeds and epochs."""

    tasks: tuple[str, ...] = ("and", "or")
    # AND and OR are linearly separable: a rule learns them on one layer with a
    # bias input (a delta rule cannot on layered:2,4,1: no error reaches its
    # hidden nodes; docs/search.md, "Calibration")
    # one graph spec, or a tuple of several: every task is learned on each
    graph: str | tuple[str, ...] = "layered:2,1,bias"
    seeds: int = 3
    epochs: int = 30
    pass_accuracy: float = 1.0
    hold: int = 5  # epochs in a row at 100% that count as learned
    retain: int = 50  # after the goal at epoch E, train max(E, retain) more: it must hold
    fresh_seeds: int = 10
    probe_seed: int = 12345
    # the `hidden` hurdle: what the hidden layer learned must be needed
    # (a space for tasks that need one, as XOR does; rulec.search.hurdles)
    hidden: bool = False
    # the `robust` hurdle: a rule that cleared every other hurdle trains on
    # this many more selection seeds (seeds `seeds` .. seeds+robust_seeds-1;
    # never the untouched ones) and must learn every task on at least
    # `robust_share` of them; its score becomes the share of all its
    # selection seeds it learned on, so selection favours rules that learn
    # on most seeds over rules that learned on the first few by luck (0: no
    # such hurdle)
    robust_seeds: int = 0
    robust_share: float = 0.8
    # a seed counts as learned only if its last scoring pass answers every
    # pattern right by at least this much (|output - threshold| >= margin on
    # the right side): an output sitting on the threshold is right only by
    # how `>` breaks the tie (0: no margin)
    margin: float = 0.0
    # the tasks one after another on one state: each seed learns the first
    # task from a fresh state, then each next task from the state the one
    # before it left (a rule must learn again from what it learned: a wired
    # circuit for one task, or a rule that stops learning, fails the next)
    sequence: bool = False
    # successive halving (ASHA's promotion rule): the epochs of cheaper rungs
    # run before the task hurdles (each fewer than `epochs`, increasing); a
    # rule goes up from rung k only if its score there is among the top
    # 1/eta of every rung-k score of the run so far. Rung k trains on
    # rung_seed_count(k) seeds of its own (RUNG_SEED0 * (k + 1) and up),
    # never the task hurdles' or the untouched ones (): no rungs
    rungs: tuple[int, ...] = ()
    eta: int = 3

    @property
    def graphs(self) -> tuple[str, ...]:
        """The graph specs, one or several."""
        return (self.graph,) if isinstance(self.graph, str) else tuple(self.graph)

    def rung_seeds(self, k: int) -> range:
        """The selection seeds of rung k (0-based): ceil(seeds / eta^(R-k))
        of them, at least 1, from RUNG_SEED0 * (k + 1): more seeds on each
        rung up, other seeds on each."""
        count = max(1, math.ceil(self.seeds / self.eta ** (len(self.rungs) - k)))
        return range(RUNG_SEED0 * (k + 1), RUNG_SEED0 * (k + 1) + count)

    def check(self) -> None:
        from .. import learning

        if not self.tasks:
            raise SpaceError("a search needs at least one task (--task and,or)")
        for name in self.tasks:
            try:
                task = learning.task_named(name)
            except learning.TaskError as exc:
                raise SpaceError(str(exc)) from None
            for spec in self.graphs:
                learning.topology_from_spec(spec, task)
        if len(set(self.graphs)) != len(self.graphs):
            raise SpaceError(f"graph {self.graphs!r}: a graph is named twice")
        if len(self.graphs) > MAX_GRAPHS:
            raise SpaceError(f"graph: {len(self.graphs)} graphs; a run screens at most "
                             f"{MAX_GRAPHS}")
        for key in ("seeds", "epochs", "hold", "retain", "fresh_seeds", "probe_seed",
                    "robust_seeds"):
            _bounded(getattr(self, key), "screen", key, f"[screen] {key}")
        if self.seeds + self.robust_seeds > 1000:
            raise SpaceError(f"[screen] seeds + robust_seeds is {self.seeds + self.robust_seeds}"
                             f"; selection seeds stay below 1000, where the untouched (fresh) "
                             f"seeds start")
        if not (isinstance(self.robust_share, int | float) and 0 < self.robust_share <= 1):
            raise SpaceError("[screen] robust_share must be in (0, 1]")
        if self.rungs:
            self._check_rungs()
        if self.sequence:
            if len(self.tasks) < 2:
                raise SpaceError("[screen] sequence = true (--sequence) trains the tasks one "
                                 "after another on one state; it needs at least two tasks "
                                 "(tasks = [\"and\", \"or\"], --task and,or)")
            for spec in self.graphs:
                tops = [learning.topology_from_spec(spec, learning.task_named(name))
                        for name in self.tasks]
                shape = {(t.graph.n_nodes, t.graph.n_edges, tuple(t.inputs), tuple(t.outputs))
                         for t in tops}
                if len(shape) > 1:
                    raise SpaceError(f"[screen] sequence = true: the tasks "
                                     f"{', '.join(self.tasks)} make different graphs of "
                                     f"{spec!r} (their inputs or outputs differ in number); "
                                     "tasks learned on one state must share its graph")
        if not (isinstance(self.margin, int | float) and 0 <= self.margin < 0.5):
            raise SpaceError("[screen] margin must be in [0, 0.5): how far from the "
                             "threshold a right answer must be")
        if self.hold > self.epochs:
            raise SpaceError(f"[screen] hold ({self.hold}) must be at most epochs "
                             f"({self.epochs}): a seed counts as learned after `hold` epochs "
                             "in a row at the goal")
        if not (isinstance(self.pass_accuracy, int | float) and 0 < self.pass_accuracy <= 1):
            raise SpaceError("[screen] pass_accuracy must be in (0, 1]")

    def _check_rungs(self) -> None:
        rungs = self.rungs
        if not all(isinstance(e, int) and not isinstance(e, bool) and e >= 1 for e in rungs):
            raise SpaceError(f"[screen] rungs (--rungs) is a list of epochs, whole numbers from 1, "
                             f"got {list(rungs)}")
        if list(rungs) != sorted(set(rungs)) or rungs[-1] >= self.epochs:
            raise SpaceError(f"[screen] rungs (--rungs) {list(rungs)}: the epochs of the "
                             f"cheaper rungs go up, each fewer than epochs ({self.epochs}), "
                             "which the last rung (the task hurdles) trains")
        if len(rungs) > MAX_RUNGS:
            raise SpaceError(f"[screen] rungs: {len(rungs)} rungs; at most {MAX_RUNGS} (their "
                             "seeds stay below 1000, where the untouched seeds start)")
        if not (isinstance(self.eta, int) and not isinstance(self.eta, bool) and
                2 <= self.eta <= 100):
            raise SpaceError(f"[screen] eta (--eta) must be a whole number from 2 to 100 (a "
                             f"rule goes up a rung when it is in the top 1/eta there), got "
                             f"{self.eta!r}")
        if self.seeds + self.robust_seeds > RUNG_SEED0:
            raise SpaceError(f"[screen] seeds + robust_seeds is "
                             f"{self.seeds + self.robust_seeds}; with rungs, the task hurdles' "
                             f"and robust seeds stay below {RUNG_SEED0}, where the rungs' "
                             "seeds start")


def rungs_from_text(text: str) -> tuple[int, ...]:
    """`30,300` (--rungs): the epochs of successive halving's cheaper rungs;
    `none` (or 0, or nothing) for none. Screen.check checks the values."""
    if text.strip().lower() in ("none", "0", ""):
        return ()
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise SpaceError(f"--rungs {text!r}: give the epochs of the cheaper rungs, "
                         "comma-separated and going up (e.g. --rungs 30,300), or none") from None


@dataclass(frozen=True)
class Settings:
    """Everything that decides a run's rules and results (not how fast it runs)."""

    space: Space = field(default_factory=Space)
    screen: Screen = field(default_factory=Screen)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        if not self.screen.robust_seeds:
            # settings without the robust hurdle (or a margin) keep the keys,
            # and so the run identities, they had before these existed
            del data["screen"]["robust_seeds"], data["screen"]["robust_share"]
        if not self.screen.margin:
            del data["screen"]["margin"]
        if not self.screen.sequence:
            del data["screen"]["sequence"]
        if not self.screen.rungs:
            del data["screen"]["rungs"], data["screen"]["eta"]
        if not self.space.settle:
            del data["space"]["settle"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Settings:
        space = dict(data["space"])
        for key in ("node", "edge", "shared"):
            space[key] = tuple(space[key])
        space["slots"] = tuple(tuple(p) for p in space["slots"])
        space["params"] = tuple(tuple(p) for p in space["params"])
        space["ops"] = tuple(space["ops"])
        screen = dict(data["screen"])
        screen["tasks"] = tuple(screen["tasks"])
        if "rungs" in screen:
            screen["rungs"] = tuple(screen["rungs"])
        if not isinstance(screen["graph"], str):
            screen["graph"] = tuple(screen["graph"])
        return cls(Space(**space), Screen(**screen))

    def check(self) -> None:
        """The screen's checks, and that the protocol's forward phase is long
        enough for every input of every graph to reach an output (each step
        carries a signal one edge on)."""
        from .. import learning

        self.screen.check()
        steps = STEP_SETTINGS[self.space.protocol]
        if "forward" not in steps:
            return
        for spec in self.screen.graphs:
            top = learning.topology_from_spec(spec, learning.task_named(self.screen.tasks[0]))
            reach = top.reach
            if reach is None:
                raise SpaceError(f"graph {spec}: input {top.unreached()[0]} has no path to an "
                                 "output; no rule can learn there")
            if reach > self.space.forward and not self.space.settle:  # settle: budget steps
                raise SpaceError(
                    f"graph {spec}: an input needs {reach} steps to reach an output, but the "
                    f"{self.space.protocol} protocol's forward phase runs {self.space.forward}: "
                    f"raise [protocol] forward to at least {reach}, or use a shallower graph")

    def key(self) -> str:
        """A short hash of the settings (a worker's Evaluator is found by it)."""
        return digest(self.to_dict())


_SECTIONS = {
    "protocol": {"name", "forward", "learn", "budget", "settle", "slots"},
    "slots": {"node", "edge", "shared"},
    "params": None,  # any names
    "ops": {"allow"},
    "limits": {"depth", "statements"},
    "odds": {"vector_ratio", "filter", "conditional", "reuse", "draw", "init", "neighbour",
             "shaped"},
    "screen": {"tasks", "graph", "seeds", "epochs", "pass_accuracy", "hold", "retain",
               "fresh_seeds", "probe_seed", "hidden", "robust_seeds", "robust_share", "margin",
               "sequence", "rungs", "eta"},
}


def _number(value, what: str, low: float = 0.0, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpaceError(f"{what} must be a number, got {value!r}")
    if not math.isfinite(value) or value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise SpaceError(f"{what} must be {bound}, got {value!r}")
    return float(value)


def _whole(value, what: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SpaceError(f"{what} must be a whole number >= {low}, got {value!r}")
    return value


def _locator(where: str, text: str | None):
    """at(section, key): `where:LINE:COL` of a key (or a section's header) in
    the TOML text, or just `where` when it cannot be found."""
    lines = (text or "").splitlines()

    def find(section: str, key: str | None) -> str | None:
        current = None
        for number, line in enumerate(lines, 1):
            stripped = line.strip()
            if stripped.startswith("["):
                current = stripped.strip("[] \t").split("]")[0].strip()
                if key is None and current == section:
                    return f"{where}:{number}:{line.index('[') + 1}"
                continue
            name = stripped.split("=", 1)[0].strip().strip('"')
            if key is not None and current == section and "=" in stripped and name == key:
                return f"{where}:{number}:{line.index(stripped[0]) + 1}"
        return None

    def at(section: str, key: str | None = None) -> str:
        """The key's place; else its section's header; else the enclosing
        section's (a key of an inline table, `slots = {...}`, is there)."""
        while True:
            found = find(section, key) or (find(section, None) if key is not None else None)
            if found or "." not in section:
                return found or where
            section, _, key = section.rpartition(".")

    return at


def settings_from_toml(data: dict, where: str = "space file",
                       text: str | None = None) -> Settings:
    """Settings from a parsed TOML document (unknown keys are errors, placed
    at their line and column when the document's `text` is given)."""
    at = _locator(where, text)
    for section, value in data.items():
        if section not in _SECTIONS:
            raise SpaceError(f"{at(section)}: unknown section [{section}]; sections: "
                             f"{', '.join(f'[{s}]' for s in _SECTIONS)}")
        if not isinstance(value, dict):
            raise SpaceError(f"{at(section)}: {section} must be a [{section}] table")
        keys = _SECTIONS[section]
        if keys is not None:
            for key in value:
                if key not in keys:
                    raise SpaceError(f"{at(section, key)}: unknown key {key!r} in "
                                     f"[{section}]; keys: {', '.join(sorted(keys))}")
    space: dict = {}
    protocol = data.get("protocol", {})
    if "name" in protocol:
        if protocol["name"] not in PROTOCOL_NAMES:
            raise SpaceError(f"{at('protocol', 'name')}: [protocol] name must be one of "
                             f"{', '.join(PROTOCOL_NAMES)}, got {protocol['name']!r}")
        space["protocol"] = protocol["name"]
    name = space.get("protocol", Space.protocol)
    if "settle" in protocol:
        place = at("protocol", "settle")
        if name != "fixed":
            raise SpaceError(f"{place}: [protocol] settle is read only by the fixed protocol, "
                             f"not {name}; remove it")
        space["settle"] = _number(protocol["settle"], f"{place}: [protocol] settle", 0.0,
                                  SETTLE_MAX)
    for key in ("forward", "learn", "budget"):
        if key in protocol:
            place = at('protocol', key)
            settles = key == "budget" and space.get("settle")  # the settle phase's limit
            if name not in PROTOCOL_NUMBERS[key] and not settles:
                raise SpaceError(f"{place}: [protocol] {key} is not read by the {name} "
                                 f"protocol (only by {' and '.join(PROTOCOL_NUMBERS[key])}); "
                                 "remove it")
            space[key] = _bounded(protocol[key], "protocol", key, f"{place}: [protocol] {key}")
    if "slots" in protocol:
        space["slots"] = _role_slots(protocol["slots"], name, at)
    for key, value in data.get("slots", {}).items():
        space[key] = _pair(value, f"{at('slots', key)}: [slots] {key}")
    roles = dict(Space(protocol=name, slots=space.get("slots", ())).make_protocol().roles())
    if "params" in data:
        params = []
        for param, bounds in data["params"].items():
            place = f"{at('params', param)}: [params] {_shown(param)}"
            check_name(param, place)
            if param in roles.values():
                raise SpaceError(f"{place}: a param cannot share its name with the protocol's "
                                 "slot of that name")
            if (not isinstance(bounds, list) or len(bounds) != 2
                    or not all(isinstance(b, int | float) and not isinstance(b, bool)
                               and math.isfinite(b) and abs(b) <= PARAM_MAX for b in bounds)
                    or bounds[0] > bounds[1]):
                raise SpaceError(f"{place} must be [low, high], two finite numbers (float32) "
                                 f"with low <= high, got {bounds!r}")
            params.append((param, float(bounds[0]), float(bounds[1])))
        space["params"] = tuple(params)
    if "allow" in data.get("ops", {}):
        allow = data["ops"]["allow"]
        unknown = ([op for op in allow if not isinstance(op, str) or op not in ALL_OPS]
                   if isinstance(allow, list) else allow)
        if unknown or not allow:
            raise SpaceError(f"{at('ops', 'allow')}: [ops] allow lists op names from: "
                             f"{', '.join(sorted(ALL_OPS))}; unknown: {unknown!r}")
        space["ops"] = tuple(sorted(set(allow)))
    limits = data.get("limits", {})
    for key in ("depth", "statements"):
        if key in limits:
            space[key] = _bounded(limits[key], "limits", key,
                                  f"{at('limits', key)}: [limits] {key}")
    for key, value in data.get("odds", {}).items():
        high = VECTOR_RATIO_MAX if key == "vector_ratio" else 1.0
        space[key] = _number(value, f"{at('odds', key)}: [odds] {key}", 0.0, high)
    screen: dict = {}
    for key, value in data.get("screen", {}).items():
        place = f"{at('screen', key)}: [screen] {key}"
        if key == "tasks":
            if (not isinstance(value, list) or not value
                    or not all(isinstance(t, str) for t in value)):
                raise SpaceError(f"{place} is a list of task names, at least one")
            screen[key] = tuple(value)
        elif key == "graph":
            if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                value = value[0] if len(value) == 1 else tuple(value)
            if not isinstance(value, str | tuple):
                raise SpaceError(f"{place} is a graph spec (a string such as "
                                 f"\"layered:2,4,1\") or a list of them, got {value!r}")
            screen[key] = value
        elif key in ("pass_accuracy", "robust_share", "margin"):
            screen[key] = _number(value, place, 0.0, 1.0)
        elif key in ("hidden", "sequence"):
            if not isinstance(value, bool):
                raise SpaceError(f"{place} is true or false, got {value!r}")
            screen[key] = value
        elif key == "rungs":
            if not isinstance(value, list) or not value:
                raise SpaceError(f"{place} is a list of epochs, such as [30, 300], got "
                                 f"{value!r}")
            screen[key] = tuple(value)
        elif key == "eta":
            screen[key] = value
        else:
            screen[key] = _bounded(value, "screen", key, place)
    settings = Settings(Space(**space), Screen(**screen))
    try:  # what depends on several keys: placed at the key it names
        settings.check()
    except RulecError as exc:  # a SpaceError, or the graph's GraphSpecError
        given, message = data.get("screen", {}), str(exc)
        named = [k for k in given if re.search(rf"\b{re.escape(k)}\b", message)]
        # the key the message names first (the checks start with it)
        culprit = min(named, key=lambda k: re.search(rf"\b{re.escape(k)}\b",
                                                      message).start(), default=None)
        if culprit is None:
            culprit = next((k for k in ("graph", "tasks") if k in given), None)
        place = at("screen", culprit) if culprit else where
        raise SpaceError(f"{place}: {exc}") from None
    return settings


def _role_slots(slots, protocol: str, at) -> tuple[tuple[str, str], ...]:
    """[protocol.slots]: known roles of the protocol, each mapped to a slot
    name (or "" to drop an optional role), no two roles on one slot."""
    kind = PROTOCOLS[protocol]
    if not isinstance(slots, dict):
        raise SpaceError(f"{at('protocol.slots')}: [protocol.slots] maps roles to slot names")
    for role, slot in slots.items():
        where = f"{at('protocol.slots', role)}: [protocol.slots] {_shown(role)}"
        if role not in kind.ROLES:
            raise SpaceError(f"{where}: unknown role for the {protocol} protocol; its roles: "
                             f"{', '.join(kind.ROLES)}")
        if slot == "" and role in OPTIONAL_ROLES:
            continue
        check_name(slot, where)
    merged = dict(dataclasses.replace(kind(), **{r: (s or None) for r, s in slots.items()})
                  .roles())
    owners: dict[str, str] = {}
    for role, slot in merged.items():
        if slot in owners:
            culprit = role if role in slots else owners[slot]
            raise SpaceError(f"{at('protocol.slots', culprit)}: [protocol.slots] roles "
                             f"{owners[slot]!r} and {role!r} both name slot {slot!r}; each role "
                             "needs a slot of its own")
        owners[slot] = role
    return tuple(sorted((role, slot or None) for role, slot in slots.items()))


def settings_to_toml(settings: Settings) -> str:
    """A space file that load_settings reads back as `settings` (what `rulec
    search export` writes beside the rules it exports)."""
    space, screen = settings.space, settings.screen

    def value(v) -> str:
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float):
            return repr(v)
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return str(v)

    numbers = [key for key, kinds in PROTOCOL_NUMBERS.items() if space.protocol in kinds]
    lines = ["# The settings of a rulec search run (rulec search score RULE --space FILE)",
             "", "[protocol]", f"name = {value(space.protocol)}"]
    lines += [f"{key} = {getattr(space, key)}" for key in numbers]
    if space.settle:
        lines += [f"settle = {value(float(space.settle))}", f"budget = {space.budget}"]
    if space.slots:
        lines += ["", "[protocol.slots]"]
        lines += [f"{role} = {value(slot or '')}" for role, slot in space.slots]
    lines += ["", "[slots]"] + [f"{key} = {value(list(getattr(space, key)))}"
                                for key in ("node", "edge", "shared")]
    lines += ["", "[params]"] + [f"{name} = {value([low, high])}"
                                 for name, low, high in space.params]
    lines += ["", "[ops]", f"allow = {value(list(space.ops))}",
              "", "[limits]", f"depth = {space.depth}", f"statements = {space.statements}",
              "", "[odds]"]
    lines += [f"{key} = {value(float(getattr(space, key)))}" for key in
              ("vector_ratio", "filter", "conditional", "reuse", "draw", "init", "neighbour",
               "shaped")]
    lines += ["", "[screen]", f"tasks = {value(list(screen.tasks))}",
              f"graph = {value(screen.graph)}"]
    lines += [f"{key} = {value(getattr(screen, key))}" for key in
              ("seeds", "epochs", "pass_accuracy", "hold", "retain", "fresh_seeds",
               "probe_seed", "hidden")]
    if screen.robust_seeds:
        lines += [f"robust_seeds = {screen.robust_seeds}",
                  f"robust_share = {value(float(screen.robust_share))}"]
    if screen.margin:
        lines.append(f"margin = {value(float(screen.margin))}")
    if screen.sequence:
        lines.append("sequence = true")
    if screen.rungs:
        lines += [f"rungs = {value(list(screen.rungs))}", f"eta = {screen.eta}"]
    return "\n".join(lines) + "\n"


def load_settings(path: str | Path) -> Settings:
    """Settings from a space file (TOML)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except FileNotFoundError:
        raise SpaceError(f"{path}: no such space file") from None
    except tomllib.TOMLDecodeError as exc:
        import re

        # tomllib says "... (at line L, column C)": put the place first, as rule errors do
        found = re.search(r"\s*\(at line (\d+), column (\d+)\)$", str(exc))
        place = f"{path}:{found[1]}:{found[2]}" if found else str(path)
        message = str(exc)[:found.start()] if found else str(exc)
        raise SpaceError(f"{place}: not valid TOML: {message}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpaceError(f"{path}: cannot read: {exc}") from None
    return settings_from_toml(data, str(path), text)
