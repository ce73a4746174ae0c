"""Geometry of the overview's time charts (lines and stacked bars); templates draw it.

As in tracking/svg.py, only numbers, plain-text labels and URLs come out of here: the template
(and tracking/templatetags/chart_marks.py, through format_html) writes them into SVG attributes
and `<title>` elements escaped, so a version or assessment name cannot become markup. Colours
are never chosen here either: a series carries a CSS class (`series-0` ... `series-7`,
`series-all`) that the stylesheet colours per theme.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from django.utils import timezone

WIDTH = 720
HEIGHT = 160
LEFT = 56  # room for the y labels
BOTTOM = 18  # room for the x labels
TOP = 6
PALETTE = 8  # series-0 .. series-7 in static/css/overview.css
X_TICKS = 6
# The largest value an axis reaches: a huge or infinite value (a sum of absurd stored numbers)
# is drawn at the top of an axis this high rather than overflowing the geometry (a 500).
AXIS_MAX = 1e300
ALL = "all"  # the key of a series over every version (drawn in the text colour)

Format = Callable[[float], str]
Href = Callable[[int, str], str]  # (bucket index, series key) -> the filtered trace list


class SeriesLike(Protocol):
    key: str
    label: str
    values: list[float | None]


@dataclass(frozen=True)
class Mark:
    """One bucket of one series: a point of a line or a segment of a bar, and its link."""

    x: float
    y: float
    width: float  # bars only
    height: float  # bars only
    title: str  # the hover text: "v2 · Dec 5 14:00: 1.2 s"
    href: str


@dataclass(frozen=True)
class Drawn:
    key: str
    label: str
    css: str  # series-N or series-all
    path: str  # lines: "M x y L x y ..." broken where a bucket has no value
    marks: list[Mark]


@dataclass(frozen=True)
class Chart:
    kind: str  # "line" or "bars"
    width: int
    height: int
    plot_left: int
    plot_bottom: float
    series: list[Drawn]
    y_ticks: list[tuple[float, str]]  # (y, label)
    x_ticks: list[tuple[float, str]]  # (x, label)
    empty: bool  # no value at all in the range

    @property
    def y_label_x(self) -> int:
        return self.plot_left - 4

    @property
    def x_label_y(self) -> int:
        return self.height - 4

    @property
    def legend(self) -> list[Drawn]:
        return [s for s in self.series if s.key != ALL or len(self.series) > 1]


def css_class(key: str, index: int) -> str:
    return "series-all" if key == ALL else f"series-{index % PALETTE}"


def bucket_label(start: datetime, bucket_ms: int) -> str:
    """A bucket's start in the display time zone: the hour for sub-day buckets, else the day."""
    local = timezone.localtime(start)
    if bucket_ms >= 86_400_000:
        return local.strftime("%b %-d")
    return local.strftime("%b %-d %H:%M")


def line_chart(
    buckets: Sequence[datetime],
    bucket_ms: int,
    series: Sequence[SeriesLike],
    fmt: Format,
    href: Href,
    *,
    keys: Sequence[str] | None = None,
) -> Chart:
    """One line per series; a missing value (None) breaks the line instead of drawing a 0.
    `keys` fixes each version's colour across charts (its index in the page's version list)."""
    top = _nice_max(max((v for s in series for v in s.values if v is not None), default=0))
    frame = _Frame(len(buckets), top)
    labels = [bucket_label(b, bucket_ms) for b in buckets]
    drawn = []
    for index, s in enumerate(series):
        marks, path = [], []
        pen_up = True
        for i, value in enumerate(s.values):
            if value is None:
                pen_up = True
                continue
            x, y = frame.center(i), frame.y(value)
            path.append(f"{'M' if pen_up else 'L'}{x} {y}")
            pen_up = False
            title = f"{s.label} · {labels[i]}: {fmt(value)}"
            marks.append(Mark(x, y, 0, 0, title, href(i, s.key)))
        drawn.append(Drawn(s.key, s.label, _css(s.key, index, keys), " ".join(path), marks))
    return frame.chart("line", drawn, buckets, bucket_ms, fmt)


def stacked_bars(
    buckets: Sequence[datetime],
    bucket_ms: int,
    series: Sequence[SeriesLike],
    fmt: Format,
    href: Href,
    *,
    keys: Sequence[str] | None = None,
) -> Chart:
    """Per bucket, one bar stacked from the series in order (a None counts as 0)."""
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(buckets))]
    frame = _Frame(len(buckets), _nice_max(max(totals, default=0)))
    labels = [bucket_label(b, bucket_ms) for b in buckets]
    base = [0.0] * len(buckets)
    drawn = []
    for index, s in enumerate(series):
        marks = []
        for i, value in enumerate(s.values):
            if not value:
                continue
            y_top, y_bottom = frame.y(base[i] + value), frame.y(base[i])
            base[i] += value
            title = f"{s.label} · {labels[i]}: {fmt(value)}"
            x = round(frame.left(i) + frame.gap, 2)
            width = round(max(frame.step - 2 * frame.gap, 1), 2)
            height = round(max(y_bottom - y_top, 0.5), 2)
            marks.append(Mark(x, y_top, width, height, title, href(i, s.key)))
        drawn.append(Drawn(s.key, s.label, _css(s.key, index, keys), "", marks))
    return frame.chart("bars", drawn, buckets, bucket_ms, fmt)


def sparkline(values: Sequence[float | None], width: int = 160, height: int = 32) -> str:
    """The path of a small line with no axes (the home page's strip)."""
    top = _bounded(max((v for v in values if v is not None), default=0)) or 1
    step = width / max(len(values) - 1, 1)
    path, pen_up = [], True
    for i, value in enumerate(values):
        if value is None:
            pen_up = True
            continue
        y = round(height - 1 - (height - 2) * _bounded(value) / top, 2)
        path.append(f"{'M' if pen_up else 'L'}{round(i * step, 2)} {y}")
        pen_up = False
    return " ".join(path)


def _css(key: str, index: int, keys: Sequence[str] | None) -> str:
    if keys is not None and key in keys:
        index = list(keys).index(key)
    return css_class(key, index)


def _bounded(value: float) -> float:
    """The value within [-AXIS_MAX, AXIS_MAX]; NaN as 0."""
    if math.isnan(value):
        return 0.0
    return max(-AXIS_MAX, min(value, AXIS_MAX))


def _nice_max(value: float) -> float:
    """The y axis top: the value rounded up to 1, 2, 2.5 or 5 times a power of ten."""
    value = _bounded(value)
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1) if value >= 1 else 1.0
    while magnitude > value:
        magnitude /= 10
    for factor in (1, 2, 2.5, 5, 10):
        if value <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


@dataclass
class _Frame:
    count: int
    top: float

    def __post_init__(self) -> None:
        self.step = (WIDTH - LEFT) / max(self.count, 1)
        self.gap = min(1.0, self.step / 4)
        self.bottom = HEIGHT - BOTTOM

    def left(self, i: int) -> float:
        return LEFT + i * self.step

    def center(self, i: int) -> float:
        return round(self.left(i) + self.step / 2, 2)

    def y(self, value: float) -> float:
        # Within the axis: a value over the bounded top (infinite, say) is drawn at the top.
        return round(self.bottom - (self.bottom - TOP) * self._within(value) / self.top, 2)

    def _within(self, value: float) -> float:
        if math.isnan(value):
            return 0.0
        return max(-self.top, min(value, self.top))

    def chart(
        self,
        kind: str,
        drawn: list[Drawn],
        buckets: Sequence[datetime],
        bucket_ms: int,
        fmt: Format,
    ) -> Chart:
        every = max(1, -(-self.count // X_TICKS))
        x_ticks = [
            (round(self.left(i), 2), bucket_label(buckets[i], bucket_ms))
            for i in range(0, self.count, every)
        ]
        y_ticks = [(self.y(self.top * f), fmt(self.top * f)) for f in (0, 0.5, 1)]
        return Chart(
            kind=kind,
            width=WIDTH,
            height=HEIGHT,
            plot_left=LEFT,
            plot_bottom=self.bottom,
            series=drawn,
            y_ticks=y_ticks,
            x_ticks=x_ticks,
            empty=not any(d.marks for d in drawn),
        )
