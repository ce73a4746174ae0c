"""The percentile aggregate that SQLite lacks (before 3.47, and Python's build may lack it
even then), registered on every connection by the backend (base.py): trace metrics'
percentiles (tracking/sql_functions.py `Percentile`) as PostgreSQL's percentile_cont answers
them, linearly interpolated."""

from __future__ import annotations

import math

SQLITE_PERCENTILE = "spyglass_percentile"


def interpolated(ordered: list[float], fraction: float) -> float:
    """The value at `fraction` (0..1) of sorted values, interpolated between neighbours."""
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class PercentileAggregate:
    """SQLite aggregate `spyglass_percentile(value, percent)`; NULL values are skipped, as
    SQL aggregates skip them, and an empty group answers NULL."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.percent = 50.0

    def step(self, value: float | None, percent: float) -> None:
        if value is not None:
            self.values.append(value)
            self.percent = percent

    def finalize(self) -> float | None:
        if not self.values:
            return None
        self.values.sort()
        return interpolated(self.values, self.percent / 100)
