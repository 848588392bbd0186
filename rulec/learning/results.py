"""Results of an evaluation, the epochs' example orders, and scoring."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .tasks import Task


@dataclass
class Result:
    accuracy: list[float] = field(default_factory=list)  # per epoch, forward-only pass
    loss: list[float] = field(default_factory=list)  # mean squared error per epoch
    steps: int = 0
    failure: str | None = None
    outputs: np.ndarray | None = None  # the last evaluation's outputs per pattern
    seconds: float = 0.0
    confirm: list[float] = field(default_factory=list)  # accuracy of each untrained pass
    goal_epoch: int | None = None  # with retain: the epochs it took to reach the goal
    retained: list[float] = field(default_factory=list)  # with retain: accuracy after the goal
    # with evaluate(keep_state=True): the state as training left it
    state: object = field(default=None, repr=False, compare=False)

    @property
    def final_accuracy(self) -> float:
        return self.accuracy[-1] if self.accuracy else 0.0


#: Permutation streams already drawn, by (stream seed, patterns): a search
#: trains every rule on the same seeds, so the same orders are asked for
#: again and again (drawing 3,000 epochs' took a fifth of a 7-node XOR
#: evaluation). Read-only; each holds at least the epochs asked for so far.
_DRAWN: dict[tuple, np.ndarray] = {}
_DRAWN_KEPT = 256


def _permutations(stream, patterns: int, epochs: int) -> np.ndarray:
    """epochs x patterns: one rng.permutation(patterns) per epoch from
    default_rng(stream), as numpy draws them (a longer run's first rows are
    a shorter run's rows: the stream is the same)."""
    key = (repr(stream), patterns)
    drawn = _DRAWN.get(key)
    if drawn is None or len(drawn) < epochs:
        count = max(epochs, 2 * len(drawn)) if drawn is not None else epochs
        drawn = _shuffles(stream, patterns, count)
        drawn.flags.writeable = False
        if len(_DRAWN) >= _DRAWN_KEPT:
            del _DRAWN[next(iter(_DRAWN))]  # the oldest
        _DRAWN[key] = drawn
    return drawn[:epochs]


def _shuffles(stream, patterns: int, count: int, raw_count: int | None = None) -> np.ndarray:
    """count x patterns: rng.permutation(patterns) count times from
    default_rng(stream), as numpy draws them, but shuffled in C
    (rulec_permutations in runtime/rulec_driver.c) from the bit generator's
    raw outputs: numpy's own loop took a third of a 32-lane XOR evaluation.
    raw_count: the outputs drawn first (doubled until they are enough)."""
    from ..backends.toolchain import BuildError
    from .driver import library
    try:
        ffi, lib = library()
    except BuildError:  # no C compiler: numpy's own draws (the definition)
        return numpy_shuffles(stream, patterns, count)
    out = np.empty((count, patterns), dtype=np.int32)
    if raw_count is None:  # about twice what is used, on average
        raw_count = count * max(patterns - 1, 0) + 64
    while True:
        raw = np.random.default_rng(stream).bit_generator.random_raw(raw_count)
        used = lib.rulec_permutations(ffi.from_buffer("uint64_t[]", raw), raw_count, patterns,
                                      count, ffi.from_buffer("int32_t[]", out))
        if used >= 0:
            return out
        raw_count *= 2


def numpy_shuffles(stream, patterns: int, count: int) -> np.ndarray:
    """What _shuffles gives, drawn by numpy itself (its definition)."""
    rng = np.random.default_rng(stream)
    return np.array([rng.permutation(patterns) for _ in range(count)],
                    dtype=np.int32).reshape(count, patterns)


def orders(task: Task, epochs: int, seed: int) -> np.ndarray:
    """The training order of the patterns in each epoch (epochs x patterns), as
    numpy's default_rng(seed) draws it: the C driver gets it as data.
    Read-only (the same seed's orders are shared)."""
    return _permutations(seed, len(task.inputs), epochs)


def score_orders(task: Task, epochs: int, seed: int) -> np.ndarray:
    """The order the patterns are scored in after each epoch (epochs x
    patterns), from a stream of its own: shuffled, so that a rule cannot
    score by the clock or by replaying the training order. Read-only."""
    return _permutations((seed, 1), len(task.inputs), epochs)


def confirm_orders(task: Task, passes: int, seed: int) -> np.ndarray:
    """The orders of evaluation's confirm passes (passes x patterns), one
    permutation per pass from default_rng([seed, 2]). Read-only."""
    return _permutations([seed, 2], len(task.inputs), passes)


def score(task: Task, outputs: np.ndarray, threshold: float) -> tuple[float, float]:
    """(accuracy, mean squared error) of one forward pass over every pattern."""
    predicted = outputs > threshold
    correct = (predicted == (task.targets > 0.5)).all(axis=1)
    error = outputs.astype(np.float64) - task.targets  # finite outputs: no overflow
    return float(correct.mean()), float(np.mean(error * error))
