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

    @property
    def final_accuracy(self) -> float:
        return self.accuracy[-1] if self.accuracy else 0.0


def orders(task: Task, epochs: int, seed: int) -> np.ndarray:
    """The training order of the patterns in each epoch (epochs x patterns), as
    numpy's default_rng(seed) draws it: the C driver gets it as data."""
    rng = np.random.default_rng(seed)
    patterns = len(task.inputs)
    return np.array([rng.permutation(patterns) for _ in range(epochs)],
                    dtype=np.int32).reshape(epochs, patterns)


def score_orders(task: Task, epochs: int, seed: int) -> np.ndarray:
    """The order the patterns are scored in after each epoch (epochs x
    patterns), from a stream of its own: shuffled, so that a rule cannot
    score by the clock or by replaying the training order."""
    rng = np.random.default_rng([seed, 1])
    patterns = len(task.inputs)
    return np.array([rng.permutation(patterns) for _ in range(epochs)],
                    dtype=np.int32).reshape(epochs, patterns)


def score(task: Task, outputs: np.ndarray, threshold: float) -> tuple[float, float]:
    """(accuracy, mean squared error) of one forward pass over every pattern."""
    predicted = outputs > threshold
    correct = (predicted == (task.targets > 0.5)).all(axis=1)
    error = outputs.astype(np.float64) - task.targets  # finite outputs: no overflow
    return float(correct.mean()), float(np.mean(error * error))
