"""Trace statistics of model versions, computed by the database.

Every function takes a set of versions and answers with a fixed number of grouped queries,
whatever the number of traces: counts and sums are aggregates, percentiles are the rows at
the right ranks of a window (ROW_NUMBER per model ordered by duration, which SQLite and
PostgreSQL both have; percentile_cont is PostgreSQL only), and a histogram is a GROUP BY on an
integer bucket expression. Python only sees a handful of rows per version.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import (
    Avg,
    BigIntegerField,
    Count,
    ExpressionWrapper,
    F,
    Max,
    Q,
    QuerySet,
    Sum,
    Value,
    Window,
)
from django.db.models.functions import Least, RowNumber

from tracking.models import Trace, TraceState

PERCENTILES = (0.5, 0.95, 0.99)
HISTOGRAM_BUCKETS = 24


@dataclass
class TraceCounts:
    count: int = 0
    errors: int = 0
    cost: float | None = None  # dollars, summed over the traces with a known cost

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.count if self.count else None


@dataclass
class TraceStats(TraceCounts):
    timed: int = 0  # traces with a duration (finished ones)
    avg_tokens: float | None = None
    avg_cost: float | None = None  # dollars per trace, among the traces with a known cost
    max_ns: int | None = None
    percentiles: dict[float, float] = field(default_factory=dict)  # q -> duration in ns
    histogram: list[int] = field(default_factory=list)
    bucket_ns: int = 0  # width of one histogram bucket; the last one also holds the rest

    @property
    def p50(self) -> float | None:
        return self.percentiles.get(0.5)

    @property
    def p95(self) -> float | None:
        return self.percentiles.get(0.95)

    @property
    def p99(self) -> float | None:
        return self.percentiles.get(0.99)


def trace_counts(
    model_ids: Iterable[str], traces: QuerySet[Trace] | None = None
) -> dict[str, TraceCounts]:
    """Traces and errors per model id, in one grouped query; among `traces` (the ones the
    caller may read) when given."""
    ids = set(model_ids)
    if not ids:
        return {}
    rows = (
        (Trace.objects.all() if traces is None else traces)
        .filter(model_id__in=ids)
        .order_by()
        .values("model_id")
        # COUNT(*) and COUNT(model_id), not COUNT(id): an index on (model_id, state, ...)
        # without the id can then answer alone (star cannot take a filter).
        .annotate(
            n=Count("*"),
            errors=Count("model_id", filter=Q(state=TraceState.ERROR)),
            cost=Sum("cost"),
        )
    )
    return {row["model_id"]: TraceCounts(row["n"], row["errors"], row["cost"]) for row in rows}


def rank_offsets(n: int, q: float) -> tuple[int, int, float]:
    """The two 0-based ranks a percentile lies between, and how far along: the linear
    interpolation of PostgreSQL's percentile_cont (and numpy's default)."""
    position = q * (n - 1)
    low = math.floor(position)
    return low, min(low + 1, n - 1), position - low


def trace_stats(
    model_ids: Iterable[str],
    buckets: int = HISTOGRAM_BUCKETS,
    traces: QuerySet[Trace] | None = None,
) -> dict[str, TraceStats]:
    """Count, error rate, tokens per trace, latency percentiles and a latency histogram per
    model id, in three queries. Histograms of all the ids share one scale (0 to the highest
    p99), so that they can be drawn side by side; slower traces land in the last bucket."""
    ids = sorted(set(model_ids))
    if not ids:
        return {}
    traces = (Trace.objects.all() if traces is None else traces).filter(model_id__in=ids)
    traces = traces.order_by()
    stats = {model_id: TraceStats() for model_id in ids}
    rows = traces.values("model_id").annotate(
        n=Count("*"),
        errors=Count("model_id", filter=Q(state=TraceState.ERROR)),
        timed=Count("duration_ns"),
        avg_tokens=Avg("total_tokens"),
        avg_cost=Avg("cost"),
        cost=Sum("cost"),
        max_ns=Max("duration_ns"),
    )
    for row in rows:
        s = stats[row["model_id"]]
        s.count, s.errors, s.timed = row["n"], row["errors"], row["timed"]
        s.avg_tokens, s.max_ns = row["avg_tokens"], row["max_ns"]
        s.avg_cost, s.cost = row["avg_cost"], row["cost"]
    timed = {model_id: s.timed for model_id, s in stats.items() if s.timed}
    if not timed:
        return stats
    _add_percentiles(traces, stats, timed)
    top = max(s.p99 or 0 for s in stats.values())
    _add_histograms(traces, stats, buckets, int(top) // buckets + 1)
    return stats


def _add_percentiles(traces, stats: dict[str, TraceStats], timed: dict[str, int]) -> None:
    wanted: dict[str, set[int]] = {}
    for model_id, n in timed.items():
        wanted[model_id] = {rank for q in PERCENTILES for rank in rank_offsets(n, q)[:2]}
    ranked = (
        traces.filter(model_id__in=timed, duration_ns__isnull=False)
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("model_id")],
                # No tie-breaker: equal durations are equal values, and without the id an
                # index on (model_id, ..., duration_ns) covers the query.
                order_by=[F("duration_ns").asc()],
            )
        )
        # Window filters cannot be OR-ed with column filters, so ask for every model's ranks
        # and keep each model's own below: a few dozen rows at most.
        .filter(rank__in=sorted({rank + 1 for ranks in wanted.values() for rank in ranks}))
        .values_list("model_id", "rank", "duration_ns")
    )
    values: dict[str, dict[int, int]] = defaultdict(dict)
    for model_id, rank, duration_ns in ranked:
        if rank - 1 in wanted[model_id]:
            values[model_id][rank - 1] = duration_ns
    for model_id, n in timed.items():
        for q in PERCENTILES:
            low, high, fraction = rank_offsets(n, q)
            a, b = values[model_id][low], values[model_id][high]
            stats[model_id].percentiles[q] = a + (b - a) * fraction


def _add_histograms(traces, stats: dict[str, TraceStats], buckets: int, width: int) -> None:
    # Integer division on integers in both databases: the bucket of each trace.
    bucket = Least(
        ExpressionWrapper(F("duration_ns") / Value(width), output_field=BigIntegerField()),
        Value(buckets - 1),
    )
    rows = (
        traces.filter(duration_ns__isnull=False, duration_ns__gte=0)
        .annotate(bucket=bucket)
        .values("model_id", "bucket")
        .annotate(n=Count("*"))
    )
    for s in stats.values():
        s.histogram, s.bucket_ns = [0] * buckets, width
    for row in rows:
        stats[row["model_id"]].histogram[int(row["bucket"])] += row["n"]
