"""The overview page's charts (tracking/charts.py geometry) and the trace-list links of their
buckets, built from a tracking.overview.Overview. Pure: no database, no request.

A bucket link opens the trace list filtered to that bucket and version with the list's own
query language (tracking/search.py), so the link shows exactly the traces the bucket counted:
`time >= <start> and time < <end> and model = <model_id>`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.urls import reverse

from tracking import charts, search
from tracking.templatetags.tracking_format import dollars, duration, metric, percent, tokens

if TYPE_CHECKING:
    from tracking.overview import Overview

OTHER = "other"


@dataclass(frozen=True)
class Scope:
    """What the page is narrowed to: the links keep it."""

    experiment_id: int | None
    model_id: str


def iso(moment: datetime) -> str:
    """UTC, to the millisecond (a preset range ends at now's millisecond, so its first and
    last buckets' links need it to list exactly what they counted), in a form the query
    language reads back bare (no quoting). Whole seconds are written without the fraction."""
    moment = moment.astimezone(UTC)
    millis = moment.microsecond // 1000
    fraction = f".{millis:03d}" if millis else ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def trace_list_url(scope: Scope, clauses: Sequence[str], path: str = "") -> str:
    """`path`: the trace list's, when the caller already reversed it (once per page)."""
    params: dict[str, Any] = {}
    if scope.experiment_id is not None:
        params["experiment"] = scope.experiment_id
    params["q"] = " and ".join(clauses)
    return f"{path or reverse('tracking:trace-list')}?{urlencode(params)}"


def model_clauses(key: str, listed: Sequence[str], scope: Scope) -> list[str]:
    """The `model` filter of a series: one version, the versions not listed ("other"), or
    none for the all-versions series (still the page's model scope, if any)."""
    if key == charts.ALL:
        return [search.clause("model", "=", scope.model_id)] if scope.model_id else []
    if key == OTHER:
        named = [k for k in listed if k not in (OTHER, charts.ALL)]
        if not named:
            return []
        return ["model not in (" + ", ".join(search.quote(k) for k in named) + ")"]
    return [search.clause("model", "=", key)]


def time_clauses(start: datetime, end: datetime) -> list[str]:
    return [f"time >= {iso(start)}", f"time < {iso(end)}"]


class Links:
    """The trace-list URL of each bucket (clipped to the range: the first and last buckets
    may stick out of it) and of the error and tool rows. A page holds thousands of bucket
    links: their parts are built once per bucket and once per version, not per link."""

    def __init__(self, data: Overview, scope: Scope) -> None:
        self.data, self.scope = data, scope
        self.listed = [key for key, _ in data.versions]
        width = timedelta(milliseconds=data.range.bucket_ms)
        self.times = [
            time_clauses(max(start, data.range.start), min(start + width, data.range.end))
            for start in data.buckets
        ]
        self.path = reverse("tracking:trace-list")
        self._models: dict[str, list[str]] = {}
        self._urls: dict[tuple[int, str], str] = {}

    def bucket(self, index: int, key: str) -> str:
        url = self._urls.get((index, key))
        if url is None:
            if key not in self._models:
                self._models[key] = model_clauses(key, self.listed, self.scope)
            url = trace_list_url(self.scope, self.times[index] + self._models[key], self.path)
            self._urls[(index, key)] = url
        return url

    def whole_range(self, *clauses: str) -> str:
        rng = self.data.range
        scoped = model_clauses(charts.ALL, self.listed, self.scope)
        return trace_list_url(self.scope, [*clauses, *time_clauses(rng.start, rng.end), *scoped])

    def error(self, span_name: str) -> str:
        return self.whole_range(search.clause("span.name", "=", span_name), "state = ERROR")

    def tool(self, span_name: str) -> str:
        return self.whole_range(search.clause("span.name", "=", span_name), "span.type = TOOL")


def bucket_text(bucket_ms: int) -> str:
    """A bucket's width in words: "1 hour", "15 min", "1 day"."""
    for unit_ms, unit in ((86_400_000, "day"), (3_600_000, "hour"), (60_000, "min")):
        if bucket_ms >= unit_ms and bucket_ms % unit_ms == 0:
            n = bucket_ms // unit_ms
            return f"{n} {unit}{'s' if n != 1 and unit != 'min' else ''}"
    return f"{bucket_ms / 1000:g} s"


def _ms(value: float) -> str:
    return duration(int(value * 1_000_000))


def _count(value: float) -> str:
    # Whole in a bucket; the y axis's midpoint of a small chart is not ("0.5", not "0").
    return tokens(round(value)) if value == round(value) else f"{value:.1f}"


def build(data: Overview, scope: Scope) -> dict[str, Any]:
    """Every chart of the page, keyed by name, plus the quality rows with their charts."""
    links = Links(data, scope)
    keys = [key for key, _ in data.versions]
    args = (data.buckets, data.range.bucket_ms)

    def bars(series, fmt) -> charts.Chart:
        return charts.stacked_bars(*args, series, fmt, links.bucket, keys=keys)

    def lines(series, fmt) -> charts.Chart:
        return charts.line_chart(*args, series, fmt, links.bucket, keys=keys)

    latency = data.latency
    overall = [
        _renamed(s, name)
        for name in ("p50", "p95", "p99")
        for s in latency.get(name, [])
        if s.key == charts.ALL
    ]
    return {
        "traces": bars(data.traces, _count),
        "sessions": bars(data.sessions, _count),
        # Told apart by percentile, but each point links to the bucket over all versions.
        "latency_all": charts.line_chart(
            *args, overall, _ms, lambda i, _key: links.bucket(i, charts.ALL)
        ),
        "latency_p95": lines(_versions_only(latency.get("p95", [])), _ms),
        "latency_p99": lines(_versions_only(latency.get("p99", [])), _ms),
        "error_rate": lines(data.error_rate, percent),
        "tokens": bars(data.tokens, _count),
        "cost": bars(data.cost, dollars),
        "cost_per_trace": lines(data.cost_per_trace, dollars),
        "quality": [
            (row, lines(row.per_version, percent if row.kind == "pass_rate" else metric))
            for row in data.quality
        ],
        "errors": [(group, links.error(group.span_name)) for group in data.top_errors],
        "tools": [
            (tool, links.tool(tool.name), _ms(tool.p95_ms) if tool.p95_ms is not None else "—")
            for tool in data.tools
        ],
    }


@dataclass(frozen=True)
class _Renamed:
    key: str
    label: str
    values: list[float | None]


def _renamed(series: Any, percentile: str) -> _Renamed:
    return _Renamed(percentile, percentile, series.values)


def _versions_only(series: Sequence[Any]) -> list[Any]:
    return [s for s in series if s.key != charts.ALL]
