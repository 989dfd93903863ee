"""A run's progress in its train job's log: one line per epoch, with the time left.

``arcface case 3 (4/10): epoch 12/30, loss 0.4123, val loss 0.3871, val acc 0.912, 1.2s; ~2m05s left
in this run``. The time left is the run's wall time so far divided by the epochs done, times the
epochs left in the run (this case's and the cases after it): every epoch of a run trains the same
number of batches, so epochs are its unit of work. Standard library only.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from dmlbench.config.progress import duration

__all__ = ["RunProgress", "duration"]


class RunProgress:
    """Counts the epochs of one run (``n_cases`` cases of ``epochs`` epochs each) and formats the
    per-epoch line. ``clock`` (seconds) is injectable for tests."""

    def __init__(self, method: str, n_cases: int, epochs: int, clock: Callable[[], float] = time.perf_counter):
        self.method, self.n_cases, self.epochs, self.clock = method, n_cases, epochs, clock
        self.total = n_cases * epochs
        self.done = 0
        self.started: float | None = None

    def start(self) -> None:
        """Called when the run's first case starts training (not at build or compilation)."""
        if self.started is None:
            self.started = self.clock()

    def seconds_left(self) -> float | None:
        if self.started is None or self.done == 0:
            return None
        return (self.clock() - self.started) / self.done * (self.total - self.done)

    def epoch_line(
        self,
        case: int,
        position: int,
        epoch: int,
        train_loss: float,
        valid_loss: float,
        accuracy: float,
        seconds: float,
    ) -> str:
        """Count one epoch done (``epoch`` 0-based, of the case at 0-based ``position`` among the
        run's cases) and return its line."""
        self.start()
        self.done += 1
        left = self.seconds_left()
        eta = f"; ~{duration(left)} left in this run" if left is not None else ""
        return (
            f"{self.method} case {case} ({position + 1}/{self.n_cases}): epoch {epoch + 1}/{self.epochs}, "
            f"loss {train_loss:.4f}, val loss {valid_loss:.4f}, val acc {accuracy:.3f}, {seconds:.1f}s{eta}"
        )
