"""Figures: the median of several repetitions, with min and max; percentiles of samples."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["Figure", "format_value", "percentile"]


def percentile(samples: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of ``samples``, nearest-rank: always one of
    the samples, so a p99 over fewer than 100 samples is simply their maximum.

    Raises:
      ValueError: no samples, or ``p`` outside [0, 100].
    """
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} outside [0, 100]")
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured quantity over repetitions: the median, with min and max."""

    median: float
    min: float
    max: float
    reps: int

    @classmethod
    def of(cls, values: Iterable[float]) -> Figure:
        """Raises ValueError when there are no values."""
        data = list(values)
        if not data:
            raise ValueError("a figure needs at least one repetition")
        return cls(statistics.median(data), min(data), max(data), len(data))

    def scaled(self, factor: float) -> Figure:
        """The same figure in another unit (e.g. seconds to milliseconds)."""
        return Figure(self.median * factor, self.min * factor, self.max * factor, self.reps)

    def as_dict(self) -> dict[str, float | int]:
        return {"median": self.median, "min": self.min, "max": self.max, "reps": self.reps}


def format_value(value: float) -> str:
    """Three significant figures (whole numbers as they are), without an exponent."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    if float(value).is_integer() and abs(value) < 1000:  # a count
        return str(int(value))
    value = float(f"{value:.3g}")  # 99.9996 is 100, shown as such
    magnitude = math.floor(math.log10(abs(value)))
    if magnitude >= 3:
        return f"{value:,.0f}"
    return f"{value:.{max(0, 2 - magnitude)}f}"
