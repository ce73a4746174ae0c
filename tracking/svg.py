"""Geometry of the small server-side SVG charts (latency histograms); templates draw it.

Numbers only: the template writes them into <rect> attributes and escapes every label, so no
markup is built in Python and nothing here can carry user content into the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tracking.templatetags.tracking_format import duration

WIDTH = 240
HEIGHT = 64
GAP = 1


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    count: int
    label: str  # the tooltip: "120 ms to 240 ms: 12 traces"


@dataclass(frozen=True)
class Histogram:
    bars: list[Bar]
    width: int
    height: int
    low_label: str
    high_label: str
    total: int


def histogram(
    counts: Sequence[int],
    bucket_ns: int,
    *,
    scale_max: int | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Histogram:
    """Bars for bucket counts; `scale_max` makes several histograms share a y scale."""
    top = scale_max or max(counts, default=0) or 1
    step = width / len(counts) if counts else width
    bars = []
    for index, count in enumerate(counts):
        bar_height = round(height * count / top, 2) if count else 0
        low, high = index * bucket_ns, (index + 1) * bucket_ns
        span = (
            f"≥ {duration(low)}"
            if index == len(counts) - 1
            else f"{duration(low)} to {duration(high)}"
        )
        bars.append(
            Bar(
                x=round(index * step, 2),
                y=round(height - bar_height, 2),
                width=round(max(step - GAP, 1), 2),
                height=bar_height,
                count=count,
                label=f"{span}: {count} trace{'s' if count != 1 else ''}",
            )
        )
    return Histogram(
        bars=bars,
        width=width,
        height=height,
        low_label=duration(0),
        high_label=duration(bucket_ns * len(counts)),
        total=sum(counts),
    )
