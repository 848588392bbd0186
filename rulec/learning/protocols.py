"""Protocols: how the harness talks to a rule, as data. A protocol is a
list of phases run for every example (its schedule), which the Python
reference (rulec.learning.evaluate) and the C driver (rulec.learning.driver)
both interpret."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import RulecValueError

if TYPE_CHECKING:
    from ..api import Rule


@dataclass(frozen=True)
class Phase:
    """One step of the conversation between a protocol and a rule, for one
    example. A protocol is a list of phases (its schedule): data that the
    Python reference and the C driver (rulec.backends.vm) both interpret.

    op 'write': set node slot `slot` on `nodes` to `value` ('input': the
        example's input bits on the input nodes, 1 on extra (bias) inputs;
        'target': its target bits on the output nodes; 'error': on every
        node, the mean over the outputs of target - output, the outputs of
        the example's last read; or a number)
    op 'run': step `block` `steps` times; with `until`, stop before a step
        once node slot `until` is > 0 on `nodes`, and fail if `steps` (the
        budget) run out first; with `settle` > 0, stop after a step that
        moved node slot `slot` on `nodes` by at most `settle` (the largest
        absolute change), and fail if `steps` run out first (a recurrent
        rule's relaxation). `optional`: skip if the rule has no such block
    op 'read': the example's outputs are node slot `slot` on the output nodes
    when: 'always', 'train' (training examples only) or 'test' (scoring only)
    """

    op: str
    when: str = "always"
    slot: str | None = None
    nodes: str = "all"  # 'inputs' | 'outputs' | 'all'
    value: str | float = 0.0
    block: str = "update"
    steps: int = 1
    until: str | None = None
    optional: bool = False
    settle: float = 0.0

    def __post_init__(self) -> None:
        if self.op not in ("write", "run", "read") or self.when not in ("always", "train",
                                                                        "test"):
            raise RulecValueError(f"a phase's op is write, run or read and its when always, train "
                                  f"or test; got {self.op!r}, {self.when!r}")
        if (self.until is not None or self.settle) and self.nodes not in ("inputs", "outputs"):
            raise RulecValueError("a run phase waits on the input or the output nodes "
                                  f"(nodes='inputs' or 'outputs'), not {self.nodes!r}")
        check_settle(self.settle)
        if self.settle and (self.op != "run" or self.until is not None or self.slot is None):
            raise RulecValueError("a phase that settles is a run phase with the slot it "
                                  "watches (slot=) and no `until`")

    def waits_for(self) -> str:
        """What a run phase that ran out of steps was waiting for."""
        if self.settle:
            return f"{self.slot!r} to settle (move by at most {self.settle:g} in a step)"
        return repr(self.until)


def check_settle(value) -> float:
    """A settle tolerance: a number >= 0 (0: no settling)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0 \
            or value == float("inf"):
        raise RulecValueError(f"settle is how little the outputs may move in a step to have "
                              f"settled: a number >= 0 (0: no settle phase), got {value!r}")
    return float(value)


class _Schedule:
    """What every protocol shares: checking a rule's slots, the setup."""

    input_flag: str | None = None
    # 1 on output nodes, 0 elsewhere (set once, like the input flag): lets a
    # rule tell an output from a hidden node that feeds nothing. No slot by
    # default; map it (--map output_flag=SLOT, [protocol.slots])
    output_flag: str | None = None
    # the error broadcast to every node while training (target - output, the
    # mean over the outputs, from the example's read), 0 otherwise: a global
    # third factor. No slot by default; map it (--map error=SLOT)
    error: str | None = None
    threshold: float = 0.5

    def schedule(self, budget: int) -> list[Phase]:
        raise NotImplementedError

    def _taught(self) -> list[Phase]:
        """Read the outputs; to train, present the targets, the error (with
        an error role) and the train flag (with a train flag role)."""
        phases = [Phase("read", slot=self.output),
                  Phase("write", "train", slot=self.target, nodes="outputs", value="target")]
        if self.error:
            phases.append(Phase("write", "train", slot=self.error, value="error"))
        if self.train_flag:
            phases.append(Phase("write", "train", slot=self.train_flag, value=1.0))
        return phases

    def roles(self) -> list[tuple[str, str]]:
        """(role, slot) of every slot the protocol reads or writes."""
        return [(role, getattr(self, role)) for role in self.ROLES
                if getattr(self, role, None) is not None]

    def check(self, rule: Rule) -> None:
        """Every slot the protocol needs exists; names every missing one at once."""
        slots = set(rule.program.node_slots)
        missing = [(role, name) for role, name in self.roles() if name not in slots]
        if missing:
            listed = ", ".join(f"{name!r} ({role})" for role, name in missing)
            raise RulecValueError(
                f"rule {rule.name!r} lacks node slot{'s' if len(missing) > 1 else ''} "
                f"{listed}, which the protocol needs (its node slots: "
                f"{', '.join(sorted(slots))}); map a role to another slot with "
                "--map ROLE=SLOT (tasks.Protocol(ROLE=...) in Python), or ROLE= to drop an "
                "optional one (input_flag, output_flag, train_flag, done, error)"
                + ("; or use a protocol without ready flags (--protocol fixed, "
                   "tasks.FixedTime)" if {"ready", "done"} & {r for r, _ in missing} else ""))


@dataclass(frozen=True)
class Protocol(_Schedule):
    """The handshake protocol (backprop.rule's): present the inputs, step until
    every output is `ready`, read the outputs; to train, present the targets,
    raise the train flag and step until every input is `done`."""

    input: str = "inp"  # written on input nodes
    input_flag: str | None = "is_in"  # 1 on input nodes, 0 elsewhere (set once)
    target: str = "target"  # written on output nodes when training
    train_flag: str | None = "train"  # set to 1 on every node when training
    output: str = "a"  # read on output nodes
    ready: str = "ready"  # outputs are read once it is > 0 on every output
    done: str | None = "dready"  # training ends once it is > 0 on every input
    reset_block: str | None = "reset"  # run before each example (if the rule has it)
    block: str = "update"
    threshold: float = 0.5  # an output bit is 1 above it

    output_flag: str | None = None
    error: str | None = None

    ROLES = ("input", "input_flag", "output_flag", "target", "train_flag", "output", "ready",
             "done", "error")

    def schedule(self, budget: int) -> list[Phase]:
        phases = [Phase("write", slot=self.input, nodes="inputs", value="input")]
        if self.error:
            phases.append(Phase("write", slot=self.error, value=0.0))
        if self.reset_block:
            phases.append(Phase("run", block=self.reset_block, optional=True))
        phases.append(Phase("run", block=self.block, nodes="outputs", until=self.ready,
                            steps=budget))
        phases += self._taught()
        if self.done:
            phases.append(Phase("run", "train", block=self.block, nodes="inputs",
                                until=self.done, steps=budget))
        else:
            phases.append(Phase("run", "train", block=self.block))
        return phases


@dataclass(frozen=True)
class _Flagless(_Schedule):
    """The slots of the protocols that need no flags from the rule."""

    input: str = "inp"
    target: str = "target"
    train_flag: str | None = "train"
    output: str = "a"
    input_flag: str | None = None
    block: str = "update"
    threshold: float = 0.5

    output_flag: str | None = None

    ROLES = ("input", "input_flag", "output_flag", "target", "train_flag", "output")


@dataclass(frozen=True)
class FixedTime(_Flagless):
    """No flags to wait for, so any rule can satisfy it: clear the target and
    the train flag, present the inputs, run `forward` steps, read the outputs;
    to train, present the targets with the train flag up for `learn` steps.

    `settle` > 0 (a recurrent rule's relaxation): instead of `forward` steps,
    step until a step moves the output slot on the outputs by at most
    `settle`, at most the evaluation's budget of steps (else it fails)."""

    forward: int = 10
    learn: int = 10
    error: str | None = None  # (simultaneous reads after training: it has no error)
    settle: float = 0.0

    ROLES = _Flagless.ROLES + ("error",)

    def schedule(self, budget: int) -> list[Phase]:
        phases = [Phase("write", slot=self.target, nodes="outputs", value=0.0)]
        if self.train_flag:
            phases.append(Phase("write", slot=self.train_flag, value=0.0))
        if self.error:
            phases.append(Phase("write", slot=self.error, value=0.0))
        phases.append(Phase("write", slot=self.input, nodes="inputs", value="input"))
        if self.settle:
            phases.append(Phase("run", block=self.block, nodes="outputs", slot=self.output,
                                settle=check_settle(self.settle), steps=budget))
        else:
            phases.append(Phase("run", block=self.block, steps=self.forward))
        phases += self._taught()
        phases.append(Phase("run", "train", block=self.block, steps=self.learn))
        return phases


@dataclass(frozen=True)
class Simultaneous(_Flagless):
    """Inputs and targets presented together (targets only when training, the
    train flag up then), `steps` steps, then the outputs are read."""

    steps: int = 10

    def schedule(self, budget: int) -> list[Phase]:
        phases = [Phase("write", slot=self.input, nodes="inputs", value="input"),
                  Phase("write", "train", slot=self.target, nodes="outputs", value="target"),
                  Phase("write", "test", slot=self.target, nodes="outputs", value=0.0)]
        if self.train_flag:
            phases += [Phase("write", "train", slot=self.train_flag, value=1.0),
                       Phase("write", "test", slot=self.train_flag, value=0.0)]
        phases += [Phase("run", block=self.block, steps=self.steps),
                   Phase("read", slot=self.output)]
        return phases


#: Protocols by name: the one table the CLI (`rulec train --protocol NAME`)
#: and a search space's [protocol] name read.
PROTOCOLS = {"handshake": Protocol, "fixed": FixedTime, "simultaneous": Simultaneous}

#: The step counts each protocol reads: setting -> the protocol's field.
STEP_SETTINGS = {"handshake": {}, "fixed": {"forward": "forward", "learn": "learn"},
                 "simultaneous": {"forward": "steps"}}

#: Roles a protocol can do without (mapped to no slot).
OPTIONAL_ROLES = ("input_flag", "output_flag", "train_flag", "done", "reset_block", "error")


class ProtocolError(RulecValueError):
    """A protocol asked for by name with settings it does not have;
    `setting` names the step count or role at fault (None: the name)."""

    def __init__(self, message: str, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


def mappable_roles(name: str) -> tuple[str, ...]:
    """The roles of protocol `name` that can be mapped to a rule's names (its
    slots and blocks): every field but the threshold and step counts."""
    numbers = {"threshold", "settle", *STEP_SETTINGS[name].values()}
    return tuple(f.name for f in dataclasses.fields(PROTOCOLS[name]) if f.name not in numbers)


def protocol_named(name: str, slots=(), settle: float = 0.0, **steps):
    """The protocol `name` with `slots` ((role, slot) pairs; slot None drops
    an optional role), step counts (`forward`, `learn`; None keeps the
    default) and `settle` (the fixed protocol's; 0: none). Raises
    ProtocolError naming what is wrong."""
    if name not in PROTOCOLS:
        raise ProtocolError(f"unknown protocol {name!r}; protocols: {', '.join(PROTOCOLS)}")
    changes: dict = {}
    if settle:
        if name != "fixed":
            raise ProtocolError(f"the {name} protocol has no settle phase (only fixed has "
                                "one)", "settle")
        try:
            changes["settle"] = check_settle(settle)
        except RulecValueError as exc:
            raise ProtocolError(str(exc), "settle") from None
    for setting, value in steps.items():
        if value is None:
            continue
        field = STEP_SETTINGS[name].get(setting)
        if field is None:
            readers = [n for n, known in STEP_SETTINGS.items() if setting in known]
            raise ProtocolError(f"the {name} protocol has no {setting} step count (only "
                                f"{' and '.join(readers)} read one)", setting)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ProtocolError(f"{setting} must be a whole number of steps, at least 1, "
                                f"got {value!r}", setting)
        changes[field] = value
    roles = mappable_roles(name)
    for role, slot in slots:
        if role not in roles:
            raise ProtocolError(f"unknown role {role!r} for the {name} protocol; its roles: "
                                f"{', '.join(roles)}")
        if slot is None and role not in OPTIONAL_ROLES:
            raise ProtocolError(f"the {role} role cannot be dropped")
        changes[role] = slot
    return dataclasses.replace(PROTOCOLS[name](), **changes)
