"""Results of an evaluation, the epochs' example orders, and scoring."""

from __future__ import annotations

import threading
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


#: The permutation streams in use, by (stream seed, patterns): a search
#: trains every rule on the same seeds, so the same orders are asked for
#: again and again (drawing 3,000 epochs' took a fifth of a 7-node XOR
#: evaluation). Each keeps at most PREFIX_BYTES of its first rows.
_STREAMS: dict[tuple, _Stream] = {}
_STREAMS_KEPT = 256
PREFIX_BYTES = 1 << 18  # 16,384 epochs of 4 patterns
RAW_PER_ROW = 1.0  # raw outputs drawn per row and pattern: about twice what is used


class _Stream:
    """The epochs' permutations of one stream, as numpy draws them: one
    rng.permutation(patterns) per epoch from default_rng(stream), shuffled
    in C (rulec_permutations in runtime/rulec_driver.c) from the bit
    generator's raw outputs (numpy's own loop took a third of a 32-lane XOR
    evaluation).

    Its first rows, up to PREFIX_BYTES, are kept; later rows are drawn as
    they are asked for, going on from the last ones asked (a long run asks
    for its epochs in order, chunk by chunk), or from the prefix's end where
    a run asks again for earlier rows. So memory stays bounded however many
    epochs a run has."""

    def __init__(self, stream, patterns: int, library) -> None:
        self.stream, self.patterns = stream, patterns
        self.ffi, self.lib = library  # the C driver's (rulec_permutations)
        self.cap = max(1, PREFIX_BYTES // (4 * max(patterns, 1)))  # rows kept
        self.prefix = np.zeros((0, patterns), dtype=np.int32)
        self.prefix.flags.writeable = False
        # one reader per stream, and C runs without the GIL: threads that
        # evaluate the same seeds (evaluate_many) take turns
        self.lock = threading.Lock()
        self._reader(None)

    def _reader(self, checkpoint) -> None:
        """The drawing position at row 0 (checkpoint None) or as saved."""
        if checkpoint is None:
            self.generator = np.random.PCG64(self.stream)  # default_rng(stream)'s
            self.left, self.skip, self.at = np.zeros(0, dtype=np.uint64), 0, 0
        else:
            state, self.left, self.skip, self.at = checkpoint
            self.generator.state = state

    def _draw(self, count: int) -> np.ndarray:
        """The next `count` rows from the drawing position."""
        ffi, lib = self.ffi, self.lib
        out = np.empty((count, self.patterns), dtype=np.int32)
        need = int(count * max(self.patterns - 1, 0) * RAW_PER_ROW) + 64
        while True:
            if len(self.left) < need:
                self.left = np.concatenate([self.left, self.generator.random_raw(need)])
            used = lib.rulec_permutations(ffi.from_buffer("uint64_t[]", self.left),
                                          len(self.left), self.skip, self.patterns, count,
                                          ffi.from_buffer("int32_t[]", out))
            if used >= 0:
                break
            need *= 2
        self.left, self.skip = self.left[used // 2:].copy(), used % 2
        self.at += count
        return out

    def rows(self, first: int, end: int) -> np.ndarray:
        """Rows first .. end-1 (read-only)."""
        with self.lock:
            return self._rows(first, end)

    def _rows(self, first: int, end: int) -> np.ndarray:
        kept = len(self.prefix)
        if end <= kept:
            return self.prefix[first:end]
        if kept < self.cap:  # the prefix grows, doubling (the position is its end)
            grow = min(self.cap, max(end, 2 * kept)) - kept
            self.prefix = np.concatenate([self.prefix, self._draw(grow)])
            self.prefix.flags.writeable = False
            if len(self.prefix) == self.cap:
                self.checkpoint = (self.generator.state, self.left, self.skip, self.at)
            if end <= len(self.prefix):
                return self.prefix[first:end]
        start = max(first, self.cap)
        if self.at > start:  # earlier rows again: from the prefix's end
            self._reader(self.checkpoint)
        while self.at < start:  # skip ahead, a prefix's worth at a time
            self._draw(min(start - self.at, self.cap))
        rows = self._draw(end - start)
        if first < self.cap:
            rows = np.concatenate([self.prefix[first:], rows])
        rows.flags.writeable = False
        return rows


def _permutations(stream, patterns: int, end: int, first: int = 0) -> np.ndarray:
    """(end - first) x patterns: epochs first .. end-1 of the stream's
    permutations (a longer run's first rows are a shorter run's rows: the
    stream is the same)."""
    key = (repr(stream), patterns)
    found = _STREAMS.get(key)
    if found is None:
        from ..backends.toolchain import BuildError
        from .native import library

        try:
            built = library()
        except BuildError:  # no C compiler (the numpy backend needs none): numpy's draws
            rows = numpy_shuffles(stream, patterns, max(end, first))[first:]
            rows.flags.writeable = False
            return rows
        if len(_STREAMS) >= _STREAMS_KEPT:
            del _STREAMS[next(iter(_STREAMS))]  # the oldest
        found = _STREAMS[key] = _Stream(stream, patterns, built)
    return found.rows(first, max(end, first))


def numpy_shuffles(stream, patterns: int, count: int) -> np.ndarray:
    """The first `count` rows of a stream, drawn by numpy itself (the
    definition of what _Stream gives)."""
    rng = np.random.default_rng(stream)
    return np.array([rng.permutation(patterns) for _ in range(count)],
                    dtype=np.int32).reshape(count, patterns)


def orders(task: Task, epochs: int, seed: int, first: int = 0) -> np.ndarray:
    """The training order of the patterns in epochs first .. epochs-1
    ((epochs - first) x patterns), as numpy's default_rng(seed) draws it: the
    C driver gets it as data. Read-only (the same seed's orders are shared)."""
    return _permutations(seed, len(task.inputs), epochs, first)


def score_orders(task: Task, epochs: int, seed: int, first: int = 0) -> np.ndarray:
    """The order the patterns are scored in after each epoch (as orders), from
    a stream of its own: shuffled, so that a rule cannot score by the clock
    or by replaying the training order. Read-only."""
    return _permutations((seed, 1), len(task.inputs), epochs, first)


def confirm_orders(task: Task, passes: int, seed: int, first: int = 0) -> np.ndarray:
    """The orders of evaluation's confirm passes (as orders), one permutation
    per pass from default_rng([seed, 2]). Read-only."""
    return _permutations([seed, 2], len(task.inputs), passes, first)


def score(task: Task, outputs: np.ndarray, threshold: float) -> tuple[float, float]:
    """(accuracy, mean squared error) of one forward pass over every pattern."""
    predicted = outputs > threshold
    correct = (predicted == (task.targets > 0.5)).all(axis=1)
    error = outputs.astype(np.float64) - task.targets  # finite outputs: no overflow
    return float(correct.mean()), float(np.mean(error * error))
