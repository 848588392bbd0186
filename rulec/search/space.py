"""What a search draws rules from and how it screens them, as data.

A search space file is TOML (docs/search.md); every section and key is
optional, and what is left out keeps the built-in default:

    [protocol]                 # how the harness talks to a rule (rulec.tasks)
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

    [screen]                   # the hurdles (rulec.search.hurdles)
    tasks = ["and", "or"]
    graph = "layered:2,4,1"
    seeds = 3                  # seeds per task hurdle
    epochs = 30                # epochs per seed
    pass_accuracy = 1.0        # the mean accuracy over seeds that passes a task
    hold = 5                   # a seed's accuracy: the mean of its last `hold` epochs
                               # (training stops once it is 100% for `hold` in a row)
    fresh_seeds = 10           # held-out seeds for the rules that pass every task
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RulecError
from ..generate import ALL_OPS, Options

PROTOCOL_NAMES = ("fixed", "simultaneous", "handshake")


def digest(data: dict) -> str:
    """A short, stable hash of plain data (JSON with sorted keys)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


class SpaceError(RulecError, ValueError):
    """A search space file or option that cannot be used."""


def _pair(value, what: str) -> tuple[int, int]:
    if (not isinstance(value, list | tuple) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            or not 0 <= value[0] <= value[1]):
        raise SpaceError(f"{what} must be [min, max], two whole numbers with 0 <= min <= max; "
                         f"got {value!r}")
    return int(value[0]), int(value[1])


@dataclass(frozen=True)
class Space:
    """The rules a search draws: the protocol's slots and the generator's knobs."""

    protocol: str = "fixed"
    forward: int = 10
    learn: int = 10
    budget: int = 100
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

    def make_protocol(self):
        """The rulec.tasks protocol object."""
        from .. import tasks

        kind = tasks.PROTOCOLS[self.protocol]
        changes = dict(self.slots)
        if kind is tasks.FixedTime:
            changes.update(forward=self.forward, learn=self.learn)
        elif kind is tasks.Simultaneous:
            changes.update(steps=self.forward)
        try:
            return dataclasses.replace(kind(), **changes)
        except TypeError as exc:
            raise SpaceError(f"[protocol.slots]: {exc}") from None

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
            neighbour=self.neighbour, param_ranges=self.params)

    def param_range(self, name: str) -> tuple[float, float] | None:
        for param, low, high in self.params:
            if param == name:
                return low, high
        return None


@dataclass(frozen=True)
class Screen:
    """The hurdles: which tasks, on which graph, how many seeds and epochs."""

    tasks: tuple[str, ...] = ("and", "or")
    graph: str = "layered:2,4,1"
    seeds: int = 3
    epochs: int = 30
    pass_accuracy: float = 1.0
    hold: int = 5  # epochs in a row at 100% that count as learned
    fresh_seeds: int = 10
    probe_seed: int = 12345

    def check(self) -> None:
        from .. import tasks as tasks_module

        if not self.tasks:
            raise SpaceError("a search needs at least one task (--task and,or)")
        for name in self.tasks:
            if name not in tasks_module.TASKS:
                raise SpaceError(f"unknown task {name!r}; tasks: "
                                 f"{', '.join(tasks_module.TASKS)}")
            tasks_module.topology_from_spec(self.graph, tasks_module.TASKS[name])
        for what, value in (("seeds", self.seeds), ("epochs", self.epochs),
                            ("hold", self.hold)):
            if value < 1:
                raise SpaceError(f"[screen] {what} must be at least 1, got {value}")
        if self.fresh_seeds < 0:
            raise SpaceError("[screen] fresh_seeds must be 0 or more")
        if not 0 < self.pass_accuracy <= 1:
            raise SpaceError("[screen] pass_accuracy must be in (0, 1]")


@dataclass(frozen=True)
class Settings:
    """Everything that decides a run's rules and results (not how fast it runs)."""

    space: Space = field(default_factory=Space)
    screen: Screen = field(default_factory=Screen)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

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
        return cls(Space(**space), Screen(**screen))

    def key(self) -> str:
        """A short hash of the settings (a worker's Evaluator is found by it)."""
        return digest(self.to_dict())


_SECTIONS = {
    "protocol": {"name", "forward", "learn", "budget", "slots"},
    "slots": {"node", "edge", "shared"},
    "params": None,  # any names
    "ops": {"allow"},
    "limits": {"depth", "statements"},
    "odds": {"vector_ratio", "filter", "conditional", "reuse", "draw", "init", "neighbour"},
    "screen": {"tasks", "graph", "seeds", "epochs", "pass_accuracy", "hold", "fresh_seeds",
               "probe_seed"},
}


def _number(value, what: str, low: float = 0.0, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpaceError(f"{what} must be a number, got {value!r}")
    if value < low or (high is not None and value > high):
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

    def at(section: str, key: str | None = None) -> str:
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
        return where

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
    for key in ("forward", "learn", "budget"):
        if key in protocol:
            space[key] = _whole(protocol[key], f"{at('protocol', key)}: [protocol] {key}")
    if "slots" in protocol:
        slots = protocol["slots"]
        if not isinstance(slots, dict) or not all(isinstance(v, str) for v in slots.values()):
            raise SpaceError(f"{at('protocol.slots')}: [protocol.slots] maps roles to slot "
                             "names (strings)")
        space["slots"] = tuple(sorted(slots.items()))
    for key, value in data.get("slots", {}).items():
        space[key] = _pair(value, f"{at('slots', key)}: [slots] {key}")
    if "params" in data:
        params = []
        for name, bounds in data["params"].items():
            if (not isinstance(bounds, list) or len(bounds) != 2
                    or not all(isinstance(b, int | float) and not isinstance(b, bool)
                               for b in bounds) or bounds[0] > bounds[1]):
                raise SpaceError(f"{at('params', name)}: [params] {name} must be [low, high] with "
                                 f"low <= high, got {bounds!r}")
            params.append((name, float(bounds[0]), float(bounds[1])))
        space["params"] = tuple(params)
    if "allow" in data.get("ops", {}):
        allow = data["ops"]["allow"]
        unknown = [op for op in allow if op not in ALL_OPS] if isinstance(allow, list) else allow
        if unknown or not allow:
            raise SpaceError(f"{at('ops', 'allow')}: [ops] allow lists op names from: "
                             f"{', '.join(sorted(ALL_OPS))}; unknown: {unknown!r}")
        space["ops"] = tuple(sorted(set(allow)))
    limits = data.get("limits", {})
    for key in ("depth", "statements"):
        if key in limits:
            space[key] = _whole(limits[key], f"{at('limits', key)}: [limits] {key}")
    for key, value in data.get("odds", {}).items():
        high = None if key == "vector_ratio" else 1.0
        space[key] = _number(value, f"{at('odds', key)}: [odds] {key}", 0.0, high)
    screen: dict = {}
    for key, value in data.get("screen", {}).items():
        if key == "tasks":
            if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
                raise SpaceError(f"{at('screen', 'tasks')}: [screen] tasks is a list of task names")
            screen[key] = tuple(value)
        elif key == "graph":
            screen[key] = str(value)
        elif key == "pass_accuracy":
            screen[key] = _number(value, f"{at('screen', key)}: [screen] pass_accuracy", 0.0, 1.0)
        else:
            screen[key] = _whole(value, f"{at('screen', key)}: [screen] {key}",
                                 0 if key in ("fresh_seeds", "probe_seed") else 1)
    settings = Settings(Space(**space), Screen(**screen))
    settings.space.make_protocol()
    return settings


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
