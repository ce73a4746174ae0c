"""Trace metrics (MLflow's QueryTraceMetrics): one metric of the traces, spans or assessments of
some experiments, aggregated (count, sum, average, minimum, maximum, percentile) and grouped by
dimensions and by epoch-aligned time buckets, computed in SQL on both databases.

The metrics, aggregations, dimensions and filters are MLflow's (its SQL store's
`sql_trace_metrics_utils`), and so are the answers: buckets as ISO UTC times, values as
floats labelled "COUNT", "AVG", "P95.0"..., groups whose dimension is null left out. Two
additions that MLflow lacks, for comparing versions: the `model_id` dimension (the trace's
model version) and the TRACES metric `total_cost` (the trace's cost in dollars).

Counts, sums, averages, minima and maxima of trace metrics, grouped by any of model version,
trace name and state in buckets of whole hours, come from hourly rollups
(tracking/rollups.py) plus the partial hours at the range's ends read raw; everything else
(percentiles, sessions, spans, assessments) reads the rows.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db.models import (
    BigIntegerField,
    Case,
    CharField,
    Count,
    Exists,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.lookups import Exact

from tracking import rollups
from tracking.sql_functions import EpochMs, Percentile

MAX_RESULTS = 1000  # MLflow's default
# Dimensions held in text columns, where "" (not null) means there is none.
TEXT_DIMENSIONS = frozenset(
    {"trace_name", "model_id", "span_name", "span_model_name", "span_model_provider"}
)
MAX_RESULTS_CAP = 10_000
MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last moment a datetime holds
MAX_INTERVAL_S = 366 * 86_400
TIME_BUCKET = "time_bucket"

COUNT, SUM, AVG, PERCENTILE, MIN, MAX = "COUNT", "SUM", "AVG", "PERCENTILE", "MIN", "MAX"
AGGREGATION_TYPES = (COUNT, SUM, AVG, PERCENTILE, MIN, MAX)  # in proto order, from 1
VIEW_TYPES = ("TRACES", "SPANS", "ASSESSMENTS")
_STATS = frozenset({AVG, MIN, MAX, PERCENTILE})
_SUMMED = frozenset({SUM, AVG, MIN, MAX, PERCENTILE})

# view -> metric -> (aggregations it allows, dimensions it allows), as MLflow's server.
CONFIGS: dict[str, dict[str, tuple[frozenset[str], frozenset[str]]]] = {
    "TRACES": {
        "trace_count": (frozenset({COUNT}), frozenset({"trace_name", "trace_status", "model_id"})),
        "session_count": (frozenset({COUNT}), frozenset({"model_id"})),
        "latency": (_STATS, frozenset({"trace_name", "model_id"})),
        **{
            metric: (_SUMMED, frozenset({"trace_name", "model_id"}))
            for metric in (
                "input_tokens",
                "output_tokens",
                "total_tokens",
                "cache_read_input_tokens",
                "cache_creation_input_tokens",
                "total_cost",
            )
        },
    },
    "SPANS": {
        "span_count": (
            frozenset({COUNT}),
            frozenset(
                {"span_name", "span_type", "span_status", "span_model_name", "span_model_provider"}
            ),
        ),
        "latency": (_STATS, frozenset({"span_name", "span_status"})),
        **{
            metric: (_SUMMED, frozenset({"span_model_name", "span_model_provider"}))
            for metric in ("input_cost", "output_cost", "total_cost")
        },
    },
    "ASSESSMENTS": {
        "assessment_count": (
            frozenset({COUNT}),
            frozenset({"assessment_name", "assessment_value", "model_id"}),
        ),
        "assessment_value": (_STATS, frozenset({"assessment_name", "model_id"})),
    },
}


class MetricsError(ValueError):
    """A request that names an unknown metric, aggregation, dimension or filter."""


@dataclass(frozen=True)
class Aggregation:
    kind: str
    percentile: float | None = None

    def __post_init__(self) -> None:
        if self.kind == PERCENTILE:
            if self.percentile is None:
                raise MetricsError("Percentile value is required for PERCENTILE aggregation")
            if not 0 <= self.percentile <= 100:
                raise MetricsError(
                    f"Percentile value must be between 0 and 100, got {self.percentile}"
                )
        elif self.percentile is not None:
            raise MetricsError(
                f"Percentile value is only allowed for PERCENTILE aggregation type, got {self.kind}"
            )

    @property
    def label(self) -> str:
        """The key of its value in a data point: MLflow's `str(MetricAggregation)`."""
        return f"P{float(self.percentile)}" if self.kind == PERCENTILE else self.kind


@dataclass(frozen=True)
class Filter:
    view: str  # trace, span, assessment
    entity: str
    key: str | None
    value: str


@dataclass
class MetricQuery:
    view: str
    metric: str
    aggregations: list[Aggregation]
    dimensions: list[str] = field(default_factory=list)
    filters: list[Filter] = field(default_factory=list)
    interval_s: int | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    max_results: int = MAX_RESULTS
    # Ours, never MLflow's: keep groups whose dimension is blank ("" model version: traces
    # of no version), which MLflow leaves out. The overview counts them as a version of
    # their own.
    keep_blank: bool = False

    def __post_init__(self) -> None:
        if self.view not in CONFIGS:
            raise MetricsError(f"view_type must be one of {list(VIEW_TYPES)}, got '{self.view}'")
        metrics = CONFIGS[self.view]
        if self.metric not in metrics:
            raise MetricsError(f"metric_name must be one of {list(metrics)}, got '{self.metric}'")
        if not self.aggregations:
            raise MetricsError("At least one aggregation is required.")
        allowed_aggregations, allowed_dimensions = metrics[self.metric]
        if wrong := sorted({a.kind for a in self.aggregations} - allowed_aggregations):
            raise MetricsError(
                f"Found invalid aggregation_type(s): {wrong}. "
                f"Supported aggregation types: {sorted(allowed_aggregations)}"
            )
        if wrong := sorted(set(self.dimensions) - allowed_dimensions):
            raise MetricsError(
                f"Found invalid dimension(s): {wrong}. "
                f"Supported dimensions: {sorted(allowed_dimensions)}"
            )
        if len(set(self.dimensions)) != len(self.dimensions):
            raise MetricsError("Each dimension may be given once.")
        for f in self.filters:
            if f.view != "trace" and f.view != _FILTER_VIEW[self.view]:
                raise MetricsError(
                    f"Filtering by {f.view} is only supported for "
                    f"{_VIEW_OF_FILTER[f.view]} view type, got {self.view}"
                )
        if self.interval_s is not None and not 0 <= self.interval_s <= MAX_INTERVAL_S:
            raise MetricsError(
                f"time_interval_seconds must be between 0 and {MAX_INTERVAL_S} (a year)."
            )
        for name, value in (("start_time_ms", self.start_ms), ("end_time_ms", self.end_ms)):
            if value is not None and not 0 <= value <= MAX_TIME_MS:
                raise MetricsError(f"{name} must be between 0 and {MAX_TIME_MS} (year 9999).")
        if self.interval_s and (self.start_ms is None or self.end_ms is None):
            raise MetricsError(
                "start_time_ms and end_time_ms are required if time_interval_seconds is set"
            )
        self.max_results = max(1, min(self.max_results, MAX_RESULTS_CAP))


@dataclass
class DataPoint:
    metric_name: str
    dimensions: dict[str, str]
    values: dict[str, float]

    def as_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"metric_name": self.metric_name}
        if self.dimensions:
            shown["dimensions"] = self.dimensions
        shown["values"] = self.values
        return shown


# --- Filters ----------------------------------------------------------------------------------

_FILTER_VIEW = {"TRACES": "trace", "SPANS": "span", "ASSESSMENTS": "assessment"}
_VIEW_OF_FILTER = {v: k for k, v in _FILTER_VIEW.items()}
# entity -> whether it takes a key, per filter view (MLflow's *MetricSearchKey classes).
_ENTITIES = {
    "trace": {"status": False, "tag": True, "metadata": True},
    "span": {"name": False, "status": False, "type": False},
    "assessment": {"name": False, "type": False},
}
_FILTER_RE = re.compile(
    r"""\s*(?P<view>[A-Za-z_`]+)\.(?P<entity>[A-Za-z_`]+)
        (?:\.(?P<key>`[^`]*`|"[^"]*"|'[^']*'|[^\s=!<>]+))?
        \s*(?P<op>[=!<>]+|(?i:like|ilike|in|is))\s*
        (?P<value>.*?)\s*""",
    re.VERBOSE | re.DOTALL,
)
_QUOTED = re.compile(r"""'(?P<single>[^']*)'|"(?P<double>[^"]*)"\Z""", re.DOTALL)


def parse_filter(text: str) -> Filter:
    """One `view.entity[.key] = 'value'` clause, as MLflow's SearchTraceMetricsUtils reads it."""
    match = _FILTER_RE.fullmatch(text)
    if not match:
        raise MetricsError(
            f"Invalid filter '{text}'. Filters take the form "
            "'trace.<entity>[.<key>] = <value>', 'span.<entity> = <value>' or "
            "'assessment.<entity> = <value>', one clause each."
        )
    view, entity = match["view"].strip("`"), match["entity"].strip("`")
    if view not in _ENTITIES:
        raise MetricsError(f"Invalid view type '{view}'. Valid values are {list(_ENTITIES)}")
    entities = _ENTITIES[view]
    if entity not in entities:
        raise MetricsError(
            f"Invalid entity '{entity}' specified for view type '{view}'. "
            f"Valid entities are {list(entities)}"
        )
    key = match["key"]
    if entities[entity] and key is None:
        raise MetricsError(
            f"Filtering by {entity} requires a key, e.g. '{view}.{entity}.<key> = <value>'"
        )
    if not entities[entity] and key is not None:
        raise MetricsError(
            f"Filtering by {entity} does not require a key, use '{view}.{entity}' instead"
        )
    if match["op"] != "=":
        raise MetricsError(f"Invalid comparator: '{match['op']}', only '=' operator is supported")
    quoted = _QUOTED.fullmatch(match["value"])
    if not quoted:
        raise MetricsError(
            f"Expected a quoted string value for {entity} value (e.g. 'my-value'). "
            f"Got value {match['value']}"
        )
    value = quoted["single"] if quoted["single"] is not None else quoted["double"]
    if key is not None and key[0] in "`\"'":
        key = key[1:-1]
    return Filter(view=view, entity=entity, key=key, value=value)


# Filters that rollup rows can answer: their columns are rollup keys.
def _rollup_filter(f: Filter) -> Q | None:
    if f.view != "trace":
        return None
    if f.entity == "status":
        return Q(state=f.value)
    if f.entity == "tag" and f.key == "mlflow.traceName":
        return Q(name=f.value)
    if f.entity == "metadata" and f.key == "mlflow.modelId":
        return Q(model_id=f.value)
    return None


def _apply_filters(rows: QuerySet, filters: list[Filter], trace: str) -> QuerySet:
    """`trace` is the path from the rows to their trace ("" for traces, "trace__" else)."""
    from tracking.models import Run

    for f in filters:
        rollup = _rollup_filter(f)
        if rollup is not None:
            rows = rows.filter(**{f"{trace}{k}": v for k, v in rollup.children})
        elif f.view == "trace" and f.entity == "tag":
            rows = rows.filter(Exact(KeyTextTransform(f.key, f"{trace}tags"), f.value))
        elif f.view == "trace" and f.key == "mlflow.trace.session":
            rows = rows.filter(**{f"{trace}session_id": f.value})
        elif f.view == "trace":
            matched = Q(Exact(KeyTextTransform(f.key, f"{trace}metadata"), f.value))
            if f.key == "mlflow.sourceRun":
                # Traces linked to the run afterwards (link_traces_to_run) count as its own.
                linked = Run.linked_traces.through.objects.filter(
                    trace_id=OuterRef(f"{trace}pk" if trace else "pk"), run__run_id=f.value
                )
                matched |= Q(Exists(linked))
            rows = rows.filter(matched)
        elif f.view == "span":
            column = {"name": "name", "status": "status", "type": "span_type"}[f.entity]
            rows = rows.filter(**{column: f.value})
        else:  # assessment
            if f.entity == "name":
                rows = rows.filter(name=f.value)
            else:
                rows = rows.filter(kind=f.value.lower())
    return rows


# --- What each view reads -----------------------------------------------------------------------


class JsonNumber(Func):
    """A number inside a JSON column, NULL when absent or not a number (a client may send
    anything there; a cast of text to a number would fail the whole query)."""

    output_field = FloatField()
    arity = 1

    def __init__(self, column: str, *path: str) -> None:
        self.path = path
        super().__init__(F(column))

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        column, params = compiler.compile(self.source_expressions[0])
        value = f"({column} #> %s)"
        # Nested CASEs: PostgreSQL may evaluate both sides of an AND, and casting a string
        # to numeric fails.
        sql = (
            f"CASE WHEN jsonb_typeof({value}) = 'number' THEN "
            f"CASE WHEN ABS(({value})::text::numeric) < 1e300 "
            f"THEN ({value})::text::double precision END END"
        )
        return sql, (*params, list(self.path), *params, list(self.path), *params, list(self.path))

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        column, params = compiler.compile(self.source_expressions[0])
        path = "$" + "".join(f".{json.dumps(key)}" for key in self.path)
        sql = (
            f"CASE WHEN json_type({column}, %s) IN ('integer', 'real') "
            f"THEN json_extract({column}, %s) END"
        )
        return sql, (*params, path, *params, path)


class AssessmentNumber(Func):
    """An assessment value as MLflow aggregates it: true/false and "yes"/"no" as 1/0, numbers
    under ASSESSMENT_MAX as they are, anything else NULL (left out).

    The bound keeps any SUM of them finite: 2**63 rows of ASSESSMENT_MAX stay under the
    float maximum (1.8e308), where PostgreSQL's SUM raises and SQLite's gives inf."""

    output_field = FloatField()
    arity = 1

    @staticmethod
    def sql_for(vendor: str, value: str) -> str:
        """The SQL over a JSON column (or expression) `value`, for hand-written queries."""
        if vendor == "postgresql":
            return (
                f"CASE jsonb_typeof({value}) "
                f"WHEN 'boolean' THEN CASE WHEN ({value})::text = 'true' THEN 1.0 ELSE 0.0 END "
                f"WHEN 'number' THEN CASE WHEN ABS(({value})::text::numeric) < {ASSESSMENT_MAX} "
                f"THEN ({value})::text::double precision END "
                f"WHEN 'string' THEN CASE LOWER(TRIM({value} #>> '{{}}')) "
                f"WHEN 'yes' THEN 1.0 WHEN 'no' THEN 0.0 END END"
            )
        return (
            f"CASE json_type({value}) WHEN 'true' THEN 1.0 WHEN 'false' THEN 0.0 "
            f"WHEN 'integer' THEN CAST(json_extract({value}, '$') AS REAL) "
            f"WHEN 'real' THEN CASE WHEN ABS(json_extract({value}, '$')) < {ASSESSMENT_MAX} "
            f"THEN json_extract({value}, '$') END "
            f"WHEN 'text' THEN CASE LOWER(TRIM(json_extract({value}, '$'))) "
            f"WHEN 'yes' THEN 1.0 WHEN 'no' THEN 0.0 END END"
        )

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        value, params = compiler.compile(self.source_expressions[0])
        return self.sql_for("postgresql", value), params * 5

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        value, params = compiler.compile(self.source_expressions[0])
        return self.sql_for("sqlite", value), params * 5


ASSESSMENT_MAX = "1e280"  # see AssessmentNumber


def _ms(expression: Any) -> ExpressionWrapper:
    return ExpressionWrapper(expression, output_field=BigIntegerField())


@dataclass
class _View:
    rows: QuerySet
    trace: str  # path to the trace
    value: Any  # the metric's expression; None counts rows
    distinct: bool = False
    # The time each row is bucketed and (unless span_time) range-filtered by.
    time_ms: Any = None
    span_time: bool = False
    dimensions: dict[str, Any] = field(default_factory=dict)


def _view(q: MetricQuery, experiment_ids: list[int]) -> _View:
    from tracking.models import Assessment, Span, Trace

    if q.view == "TRACES":
        traces = Trace.objects.filter(experiment_id__in=experiment_ids)
        values = {
            **rollups.ROLLED_METRICS,
            "trace_count": None,
            "session_count": F("session_id"),
        }
        return _View(
            rows=traces,
            trace="",
            value=values[q.metric],
            distinct=q.metric == "session_count",
            time_ms=EpochMs("request_time"),
            dimensions={
                "trace_name": F("name"),
                "trace_status": F("state"),
                "model_id": F("model_id"),
            },
        )
    if q.view == "SPANS":
        spans = Span.objects.filter(trace__experiment_id__in=experiment_ids)
        values = {
            "span_count": None,
            "latency": _ms((F("end_ns") - F("start_ns")) / Value(1_000_000)),
            **{
                key: JsonNumber("attributes", "mlflow.llm.cost", key)
                for key in ("input_cost", "output_cost", "total_cost")
            },
        }
        return _View(
            rows=spans,
            trace="trace__",
            value=values[q.metric],
            time_ms=_ms(F("start_ns") / Value(1_000_000)),
            # MLflow filters span costs by when the span started, counts and latency by
            # when their trace did.
            span_time=q.metric.endswith("_cost"),
            dimensions={
                "span_name": F("name"),
                "span_type": F("span_type"),
                "span_status": F("status"),
                "span_model_name": KeyTextTransform("mlflow.llm.model", "attributes"),
                "span_model_provider": KeyTextTransform("mlflow.llm.provider", "attributes"),
            },
        )
    assessments = Assessment.objects.filter(trace__experiment_id__in=experiment_ids, valid=True)
    return _View(
        rows=assessments,
        trace="trace__",
        value=None if q.metric == "assessment_count" else AssessmentNumber("value"),
        time_ms=EpochMs("trace__request_time"),
        dimensions={
            "assessment_name": F("name"),
            "assessment_value": F("value"),
            "model_id": F("trace__model_id"),
        },
    )


# --- Answering ---------------------------------------------------------------------------------


@dataclass
class Stats:
    """What a group's values come from; rollup rows and raw rows add up to the same."""

    n: float = 0
    total: float | None = None
    low: float | None = None
    high: float | None = None
    percentiles: dict[float, float | None] = field(default_factory=dict)

    def add(self, n: Any, total: Any, low: Any, high: Any) -> None:
        # float(): PostgreSQL answers sums of bigint columns as Decimal.
        self.n += int(n or 0)
        if total is not None:
            self.total = float(total) + (self.total or 0.0)
        if low is not None:
            self.low = float(low) if self.low is None else min(self.low, float(low))
        if high is not None:
            self.high = float(high) if self.high is None else max(self.high, float(high))

    def value(self, aggregation: Aggregation) -> float | None:
        match aggregation.kind:
            case "COUNT":
                return float(self.n)
            case "SUM":
                return None if self.total is None else float(self.total)
            case "AVG":
                return None if not self.n or self.total is None else self.total / self.n
            case "MIN":
                return None if self.low is None else float(self.low)
            case "MAX":
                return None if self.high is None else float(self.high)
        found = self.percentiles.get(aggregation.percentile)
        return None if found is None else float(found)


def query(experiment_ids: Iterable[int], q: MetricQuery) -> list[DataPoint]:
    """The data points of `q` over the experiments (already the caller's readable ones)."""
    return [point for key, stats in groups(experiment_ids, q) if (point := _point(q, key, stats))]


def groups(experiment_ids: Iterable[int], q: MetricQuery) -> list[tuple[tuple, Stats]]:
    """query()'s groups before they become data points: each key is the time bucket (epoch
    ms, when `q` has an interval) then the dimensions' values, each Stats the count and sum
    behind its values, for callers that merge groups (the overview's "Other versions")."""
    ids = sorted(set(experiment_ids))
    found = _from_rollups(ids, q) if _rollup_servable(q) else None
    if found is None:
        return _raw_groups(q, ids, [(q.start_ms, q.end_ms)], ordered=True)
    # As the raw query's ORDER BY and LIMIT: groups with a blank dimension never count.
    if not q.keep_blank:
        found = [(key, stats) for key, stats in found if not any(_blank(v) for v in key)]
    return sorted(found, key=lambda item: item[0])[: q.max_results]


def _blank(value: Any) -> bool:
    return value is None or value == ""


def _point(q: MetricQuery, key: tuple, stats: Stats) -> DataPoint | None:
    names = ([TIME_BUCKET] if q.interval_s else []) + q.dimensions
    dimensions: dict[str, str] = {}
    for name, value in zip(names, key, strict=True):
        if _blank(value):
            if not q.keep_blank:
                return None  # MLflow leaves out groups with a null dimension
            value = ""
        if name == TIME_BUCKET:
            value = datetime.fromtimestamp(value / 1000, tz=UTC).isoformat()
        elif name == "assessment_value":
            value = json.dumps(value)
        dimensions[name] = str(value)
    values = {}
    for aggregation in q.aggregations:
        value = stats.value(aggregation)
        if value is not None and math.isfinite(value):
            values[aggregation.label] = value
    if not values:
        return None
    return DataPoint(metric_name=q.metric, dimensions=dimensions, values=values)


def _bucket(q: MetricQuery, time_ms: Any) -> Any:
    width = q.interval_s * 1000
    return _ms(time_ms / Value(width) * Value(width))


def _raw_groups(
    q: MetricQuery,
    experiment_ids: list[int],
    ranges: list[tuple[int | None, int | None]],
    ordered: bool,
) -> list[tuple[tuple, Stats]]:
    """Aggregate the rows of the view within the inclusive millisecond ranges."""
    view = _view(q, experiment_ids)
    rows = _apply_filters(view.rows, q.filters, view.trace)
    rows = rows.filter(_in_ranges(view, ranges))
    if view.value is not None:
        rows = rows.annotate(_value=view.value).filter(_value__isnull=False)
    names = []
    if q.interval_s:
        rows = rows.annotate(_g_time=_bucket(q, view.time_ms))
        names.append("_g_time")
    for i, dimension in enumerate(q.dimensions):
        name = f"_g{i}"
        rows = rows.annotate(**{name: view.dimensions[dimension]})
        if not q.keep_blank:
            rows = rows.exclude(**{f"{name}__isnull": True})
        if (
            dimension in TEXT_DIMENSIONS and not q.keep_blank
        ):  # "" is no name or no version here: null
            # A lookup on the expression itself: by the annotation's name, Django would
            # compare a JSON key's text as JSON.
            rows = rows.exclude(Exact(view.dimensions[dimension], ""))
        names.append(name)
    aggregates = _aggregates(q, view)
    if names:
        found = rows.values(*names).annotate(**aggregates)
        found = found.order_by(*names)[: q.max_results] if ordered else found.order_by()
        results = [(tuple(row[n] for n in names), row) for row in found]
    else:
        results = [((), rows.aggregate(**aggregates))]
    groups = []
    for key, row in results:
        stats = Stats()
        stats.add(row["_n"], row.get("_sum"), row.get("_min"), row.get("_max"))
        stats.percentiles = {
            a.percentile: row[f"_p{i}"]
            for i, a in enumerate(q.aggregations)
            if a.kind == PERCENTILE
        }
        groups.append((key, stats))
    return groups


def _aggregates(q: MetricQuery, view: _View) -> dict[str, Any]:
    kinds = {a.kind for a in q.aggregations}
    value = F("_value")
    if view.value is None:
        aggregates: dict[str, Any] = {"_n": Count("pk")}
    else:
        aggregates = {"_n": Count(value, distinct=view.distinct)}
    if kinds & {SUM, AVG}:
        aggregates["_sum"] = Sum(value, output_field=FloatField())
    if MIN in kinds:
        aggregates["_min"] = Min(value, output_field=FloatField())
    if MAX in kinds:
        aggregates["_max"] = Max(value, output_field=FloatField())
    for i, aggregation in enumerate(q.aggregations):
        if aggregation.kind == PERCENTILE:
            aggregates[f"_p{i}"] = Percentile(value, aggregation.percentile)
    return aggregates


def _in_ranges(view: _View, ranges: list[tuple[int | None, int | None]]) -> Q:
    """Rows whose time is within any of the inclusive ranges (on the indexed column)."""
    matched: Q | None = None
    for start, end in ranges:
        within = Q()
        if view.span_time:
            if start is not None:
                within &= Q(start_ns__gte=start * 1_000_000)
            if end is not None:
                within &= Q(start_ns__lt=(end + 1) * 1_000_000)
        else:
            column = f"{view.trace}request_time"
            if start is not None:
                within &= Q(**{f"{column}__gte": rollups.from_ms(start)})
            if end is not None:
                within &= Q(**{f"{column}__lt": rollups.from_ms(end + 1)})
        if not within:
            return Q()  # an unbounded range: every row
        matched = within if matched is None else matched | within
    return Q(pk__in=[]) if matched is None else matched


# --- From rollups -----------------------------------------------------------------------------

_ROLLUP_DIMENSIONS = {"trace_name": "name", "trace_status": "state", "model_id": "model_id"}


def _rollup_servable(q: MetricQuery) -> bool:
    return (
        q.view == "TRACES"
        and (q.metric == "trace_count" or q.metric in rollups.ROLLED_METRICS)
        and all(a.kind != PERCENTILE for a in q.aggregations)
        and all(_rollup_filter(f) is not None for f in q.filters)
        and (not q.interval_s or (q.interval_s * 1000) % rollups.HOUR_MS == 0)
    )


Segment = tuple[int | None, int | None, int | None]  # [start, end) ms and its period (None: raw)


def plan(start: int | None, end: int | None, periods: tuple[int, ...]) -> list[Segment]:
    """[start, end) (None: unbounded) cut into whole periods of the longest length that fits,
    the rest into shorter ones, and what no period covers left to read raw (period None).
    For a day-aligned range of 90 days and a few hours: a partial hour, hours, days, hours,
    a partial hour."""
    if start is not None and end is not None and start >= end:
        return []
    for i, period in enumerate(periods):
        first = None if start is None else -(-start // period) * period
        after = None if end is None else end // period * period
        if first is None or after is None or first < after:
            shorter = periods[i + 1 :]
            head = plan(start, first, shorter) if start is not None else []
            tail = plan(after, end, shorter) if end is not None else []
            return [*head, (first, after, period), *tail]
    return [(start, end, None)]


def _from_rollups(experiment_ids: list[int], q: MetricQuery) -> list[tuple[tuple, Stats]]:
    """Whole days and hours from rollup rows, what is left at either end from the traces."""
    width = q.interval_s * 1000 if q.interval_s else None
    # A bucket must hold whole periods: days for buckets of whole days, else hours.
    periods = tuple(p for p in rollups.PERIODS_MS if width is None or width % p == 0)
    end = None if q.end_ms is None else q.end_ms + 1
    segments = plan(q.start_ms, end, periods)
    if any(period is not None for _, _, period in segments) and rollups.pending(experiment_ids):
        rollups.refresh(experiment_ids)
    groups: dict[tuple, Stats] = {}
    raw = [(a, None if b is None else b - 1) for a, b, period in segments if period is None]
    for key, stats in _raw_groups(q, experiment_ids, raw, ordered=False) if raw else []:
        groups.setdefault(key, Stats()).add(stats.n, stats.total, stats.low, stats.high)
    rolled = [(a, b, period) for a, b, period in segments if period is not None]
    if rolled:
        for key, row in _rollup_rows(q, experiment_ids, rolled):
            groups.setdefault(key, Stats()).add(
                row["_n"], row.get("_sum"), row.get("_min"), row.get("_max")
            )
    return list(groups.items())


def rollup_segments(segments: list[Segment], experiment_ids: list[int]) -> Q:
    """Rollup rows of the experiments within the segments. The experiments are repeated in
    each term: SQLite then reads each term as one range of the (experiment, period, hour)
    index; with them outside the OR it read every row of the experiments."""
    within = Q(pk__in=[])
    for start, end, period in segments:
        segment = Q(experiment_id__in=experiment_ids, period_hours=period // rollups.HOUR_MS)
        if start is not None:
            segment &= Q(hour_ms__gte=start)
        if end is not None:
            segment &= Q(hour_ms__lt=end)
        within |= segment
    return within


def _rollup_rows(q: MetricQuery, experiment_ids: list[int], segments: list[Segment]):
    rows = rollups.TraceRollup.objects.filter(rollup_segments(segments, experiment_ids))
    for f in q.filters:
        rows = rows.filter(_rollup_filter(f))
    names = []
    if q.interval_s:
        rows = rows.annotate(_g_time=_bucket(q, F("hour_ms")))
        names.append("_g_time")
    for i, dimension in enumerate(q.dimensions):
        rows = rows.annotate(**{f"_g{i}": F(_ROLLUP_DIMENSIONS[dimension])})
        names.append(f"_g{i}")
    metric = q.metric
    if metric == "trace_count":
        aggregates: dict[str, Any] = {"_n": Sum("traces")}
    else:
        aggregates = {
            "_n": Sum(f"{metric}_n"),
            "_sum": Sum(f"{metric}_sum"),
            "_min": Min(f"{metric}_min"),
            "_max": Max(f"{metric}_max"),
        }
    if not names:
        return [((), rows.aggregate(**aggregates))]
    found = rows.values(*names).annotate(**aggregates).order_by()
    return [(tuple(row[n] for n in names), row) for row in found]


# --- Latency histograms (the overview's percentiles) --------------------------------------------


class LatencyBin(Func):
    """The latency bin of a trace (rollups.LATENCY_BIN_SQL) on its duration column."""

    output_field = BigIntegerField()
    arity = 1

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        column, params = compiler.compile(self.source_expressions[0])
        # The column appears three times in the template.
        return rollups.LATENCY_BIN_SQL.format(ns=column), (*params, *params, *params)


def latency_histograms(
    experiment_ids: Iterable[int],
    q: MetricQuery,
    keep_versions: Iterable[str] | None = None,
    others: str = "other",
) -> dict[tuple, dict[int, int]]:
    """Trace latency histograms (bin -> traces) per time bucket and model version, as `q`
    (TRACES latency, dimensions among model_id, filters on the model version only) groups
    them: whole periods from TraceLatencyBin, the partial ends binned from the traces by the
    same expression, so both add up. Blank versions are kept, as `keep_blank`. With
    `keep_versions`, every other version is grouped in SQL as `others` (a row per bin, not
    per bin and version: the overview's "Other versions")."""
    if q.view != "TRACES" or q.metric != "latency" or set(q.dimensions) - {"model_id"}:
        raise MetricsError("Latency histograms group TRACES latency by model_id only.")
    versions = [f.value for f in q.filters if f.key == "mlflow.modelId"]
    if len(versions) != len(q.filters):
        raise MetricsError("Latency histograms filter by the model version only.")
    ids = sorted(set(experiment_ids))
    width = q.interval_s * 1000 if q.interval_s else None
    periods = tuple(p for p in rollups.BIN_PERIODS_MS if width is None or width % p == 0)
    end = None if q.end_ms is None else q.end_ms + 1
    segments = plan(q.start_ms, end, periods)
    if any(period is not None for _, _, period in segments) and rollups.pending(ids):
        rollups.refresh(ids)
    version: Any = F("model_id")
    if keep_versions is not None:
        version = Case(
            When(model_id__in=sorted(keep_versions), then=F("model_id")),
            default=Value(others),
            output_field=CharField(),
        )
    histograms: dict[tuple, dict[int, int]] = {}

    def add(rows: QuerySet, time: Any, bin_index: Any, count: Any) -> None:
        names = []
        if q.interval_s:
            rows = rows.annotate(_g_time=_bucket(q, time))
            names.append("_g_time")
        if q.dimensions:
            rows = rows.annotate(_g0=version)
            names.append("_g0")
        # Tuples, not dicts: a 90-day read brings back thousands of rows.
        found = rows.values_list(*names, bin_index).annotate(_n=count).order_by()
        for *key, bin_value, n in found:
            bins = histograms.setdefault(tuple(key), {})
            bins[bin_value] = bins.get(bin_value, 0) + int(n)

    raw = [(a, None if b is None else b - 1) for a, b, period in segments if period is None]
    if raw:
        view = _view(q, ids)
        rows = _apply_filters(view.rows, q.filters, view.trace).filter(_in_ranges(view, raw))
        rows = rows.filter(duration_ns__isnull=False)
        add(rows, view.time_ms, LatencyBin("duration_ns"), Count("pk"))
    rolled = [(a, b, period) for a, b, period in segments if period is not None]
    if rolled:
        rows = rollups.TraceLatencyBin.objects.filter(rollup_segments(rolled, ids))
        if versions:
            rows = rows.filter(model_id=versions[0]) if len(set(versions)) == 1 else rows.none()
        add(rows, F("hour_ms"), F("bin"), Sum("traces"))
    return histograms
