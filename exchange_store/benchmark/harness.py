"""The one timing harness of the benches: timed runs, best-of rounds, rates and ratios.

Every figure the benches print is a ratio against a baseline measured in the same run
(:func:`ratio`); times are the best (or median) of alternating rounds so that a slow spell of
a shared machine hits both sides alike.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

__all__ = ["MB", "BestTimes", "Timing", "median_by", "rate", "ratio", "timed"]

MB = 1 << 20
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Timing:
    """One measured run.

    Attributes:
        wall: Seconds of wall time.
        cpu: Seconds of CPU time of this process (all threads).
    """

    wall: float
    cpu: float


def timed(fn: Callable[[], object], repeat: int = 1) -> Timing:
    """The best wall time of ``repeat`` runs of ``fn``, with the CPU time of that run."""
    best: Timing | None = None
    for _ in range(max(1, repeat)):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        fn()
        run = Timing(time.perf_counter() - wall0, time.process_time() - cpu0)
        if best is None or run.wall < best.wall:
            best = run
    assert best is not None
    return best


@dataclass
class BestTimes:
    """The best (smallest) seconds per phase over rounds (``write``, ``read``, ...)."""

    best: dict[str, float] = field(default_factory=dict)

    def add(self, phase: str, seconds: float) -> None:
        """Record one round's time of ``phase``."""
        if phase not in self.best or seconds < self.best[phase]:
            self.best[phase] = seconds

    def rate(self, nbytes: float, phase: str) -> float | None:
        """MiB/s of ``phase`` at its best, or None when it was not measured."""
        return rate(nbytes, self.best.get(phase))


def rate(nbytes: float, seconds: float | None) -> float | None:
    """MiB/s, rounded to 0.1; None without a time."""
    return round(nbytes / MB / seconds, 1) if seconds else None


def ratio(baseline: float | None, measured: float | None) -> float | None:
    """``baseline / measured`` rounded to 3 digits (for times: above 1 means faster)."""
    return round(baseline / measured, 3) if baseline and measured else None


def median_by(rows: Sequence[T], key: Callable[[T], float]) -> T:
    """The row whose ``key`` is the median (the lower one of an even count)."""
    ordered = sorted(rows, key=key)
    target = statistics.median_low([key(r) for r in ordered])
    return next(r for r in ordered if key(r) == target)
