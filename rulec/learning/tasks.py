"""Learning tasks: truth tables of input bits -> target bits (TASKS, n-bit
parity, custom tables by name), and the counterfactual targets a search
scores rules against."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import RulecError


@dataclass(frozen=True)
class Task:
    """A truth table: inputs[k] -> targets[k], bits as 0.0/1.0."""

    name: str
    inputs: np.ndarray  # (patterns, n_in)
    targets: np.ndarray  # (patterns, n_out)

    @property
    def n_inputs(self) -> int:
        return self.inputs.shape[1]

    @property
    def n_outputs(self) -> int:
        return self.targets.shape[1]

    def counterfactuals(self) -> list[Task]:
        """The same inputs with other targets: the complement of every bit,
        and the rows' targets moved one row on (left out when that changes
        nothing). A rule that learns from its targets answers them
        differently; one that ignores them cannot."""
        out = [Task(f"{self.name}~complement", self.inputs, 1.0 - self.targets)]
        shifted = np.roll(self.targets, 1, axis=0)
        if not np.array_equal(shifted, self.targets):
            out.append(Task(f"{self.name}~shifted", self.inputs, shifted))
        return out

    @classmethod
    def from_table(cls, name: str, table: dict) -> Task:
        """From {input bits: output bits}, e.g. {(0, 1): (1,), ...}."""
        rows = sorted(table.items())
        inputs = np.array([list(k) for k, _ in rows], dtype=np.float32)
        targets = np.array([list(v) if isinstance(v, tuple | list) else [v] for _, v in rows],
                           dtype=np.float32)
        return cls(name, inputs, targets)

    @classmethod
    def from_function(cls, name: str, n_inputs: int, function: Callable) -> Task:
        """From a function of the input bits (a tuple of ints) to output bits."""
        table = {}
        for bits in itertools.product((0, 1), repeat=n_inputs):
            out = function(bits)
            table[bits] = tuple(out) if isinstance(out, tuple | list) else (out,)
        return cls.from_table(name, table)


def _bits(value: int, width: int) -> tuple[int, ...]:
    return tuple((value >> (width - 1 - i)) & 1 for i in range(width))


def _add2(bits):
    a, b = bits[0] * 2 + bits[1], bits[2] * 2 + bits[3]
    return _bits(a + b, 3)


def _sub2(bits):
    """a - b as (borrow, two result bits): borrow set when b > a, result mod 4."""
    a, b = bits[0] * 2 + bits[1], bits[2] * 2 + bits[3]
    return (int(b > a), *_bits((a - b) % 4, 2))


TASKS: dict[str, Task] = {
    "and": Task.from_function("and", 2, lambda b: b[0] & b[1]),
    "or": Task.from_function("or", 2, lambda b: b[0] | b[1]),
    "nand": Task.from_function("nand", 2, lambda b: 1 - (b[0] & b[1])),
    "xor": Task.from_function("xor", 2, lambda b: b[0] ^ b[1]),
    "add2": Task.from_function("add2", 4, _add2),
    "sub2": Task.from_function("sub2", 4, _sub2),
}

#: The widest parityN and table: task (2^N patterns each).
TASK_MAX_INPUTS = 8


class TaskError(RulecError, KeyError):
    """A task name that names no task."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def task_named(name: str) -> Task:
    """A task by name: one of TASKS (and, or, nand, xor, add2, sub2);
    `parityN` (N-bit parity, N from 2 to 8: 1 when an odd number of inputs
    are on); or `table:BITS`, a truth table with one output: BITS holds the
    output for each input pattern in counting order (00, 01, 10, 11, ...),
    so `table:0110` is XOR and `table:0001` is AND."""
    if name in TASKS:
        return TASKS[name]
    found = re.fullmatch(r"parity([0-9]+)", name)
    if found:
        n = int(found[1])
        if not 2 <= n <= TASK_MAX_INPUTS:
            raise TaskError(f"parity{n}: parity takes 2 to {TASK_MAX_INPUTS} inputs")
        return Task.from_function(name, n, lambda bits: sum(bits) % 2)
    if name.startswith("table:"):
        bits = name[len("table:"):]
        n = len(bits).bit_length() - 1
        if not re.fullmatch(r"[01]+", bits) or len(bits) != 2 ** n or not \
                1 <= n <= TASK_MAX_INPUTS:
            raise TaskError(f"{name}: a table lists one output bit (0 or 1) for each of the "
                            f"2^N input patterns in counting order, N from 1 to "
                            f"{TASK_MAX_INPUTS}: e.g. table:0110 is XOR")
        rows = itertools.product((0, 1), repeat=n)
        return Task.from_table(name, {row: (int(bit),) for row, bit in zip(rows, bits,
                                                                           strict=True)})
    raise TaskError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}, parityN (N-bit "
                    f"parity, e.g. parity3) and table:BITS (a truth table, e.g. table:0110)")
