"""Geometry of the evaluation pages' small SVG charts (a scorer's bar on the run page, the
per-run score/cost/latency strip on the compare page); templates draw it.

Numbers only, as tracking/svg.py: templates write them into <rect> attributes and escape every
label, so no markup is built in Python and no scorer name can carry markup into the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

BAR_WIDTH = 120
BAR_HEIGHT = 10
STRIP_WIDTH = 160
STRIP_BAR = 10
STRIP_GAP = 3


@dataclass(frozen=True)
class Bar:
    width: int
    height: int
    filled: float  # the filled part's width

    @property
    def empty(self) -> float:
        return round(self.width - self.filled, 2)


def bar(fraction: float, width: int = BAR_WIDTH, height: int = BAR_HEIGHT) -> Bar:
    """A bar filled to `fraction` (clamped to 0..1) of its width."""
    fraction = max(0.0, min(1.0, fraction))
    return Bar(width=width, height=height, filled=round(width * fraction, 2))


@dataclass(frozen=True)
class StripBar:
    y: float
    width: float
    label: str  # the tooltip: "run-b: 75.0 %"
    baseline: bool


@dataclass(frozen=True)
class Strip:
    """One measure across the compared runs: a bar per run, the longest one full width."""

    title: str
    bars: list[StripBar]
    width: int
    height: int


def strip(title: str, values: Sequence[float | None], labels: Sequence[str]) -> Strip:
    """Bars for `values` (None: no bar) on one scale, the first run (the baseline) marked."""
    top = max((abs(v) for v in values if v is not None), default=0.0) or 1.0
    bars = [
        StripBar(
            y=index * (STRIP_BAR + STRIP_GAP),
            width=0.0 if value is None else round(STRIP_WIDTH * abs(value) / top, 2),
            label=label,
            baseline=index == 0,
        )
        for index, (value, label) in enumerate(zip(values, labels, strict=True))
    ]
    height = len(values) * (STRIP_BAR + STRIP_GAP) - STRIP_GAP
    return Strip(title=title, bars=bars, width=STRIP_WIDTH, height=max(height, STRIP_BAR))
