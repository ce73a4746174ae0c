"""The home page's strip: the last 24 hours of the most active readable experiment at a glance
(traces, p95 latency, error rate, cost, a sparkline of traces per hour), linking to its
overview. Its numbers are the overview's (tracking/overview.py) and, for the p95 over the
whole day, which buckets cannot be summed into, the same trace-metrics SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count
from django.http import QueryDict
from django.utils import timezone

from access.rules import Access
from tracking import charts, trace_metrics
from tracking.models import Experiment, Trace
from tracking.overview import Range, overview

RANGE = "24h"


@dataclass(frozen=True)
class Strip:
    experiment: Experiment
    traces: int
    p95_ms: float | None
    error_rate: float | None
    cost: float | None
    sparkline: str  # an SVG path of traces per bucket
    range: str

    @property
    def p95_ns(self) -> int | None:
        return None if self.p95_ms is None else int(self.p95_ms * 1_000_000)


def most_active_experiment(access: Access, since_hours: int = 24) -> Experiment | None:
    """The readable experiment with the most traces lately (one grouped query on the time
    index: a day of traces, not all of them)."""
    since = timezone.now() - timedelta(hours=since_hours)
    busiest = (
        access.readable(Trace.objects.filter(request_time__gte=since))
        .order_by()
        .values("experiment_id")
        .annotate(n=Count("*"))
        .order_by("-n", "experiment_id")
        .first()
    )
    return Experiment.objects.filter(pk=busiest["experiment_id"]).first() if busiest else None


def home_strip(access: Access) -> Strip | None:
    experiment = most_active_experiment(access)
    if experiment is None:
        return None
    rng = Range.parse(QueryDict(f"range={RANGE}"))
    data = overview(access, experiment_ids=[experiment.pk], model_id=None, rng=rng)
    per_bucket = [sum(s.values[i] or 0 for s in data.traces) for i in range(len(data.buckets))]
    traces = sum(per_bucket)
    # error_rate ends with the rate over all versions: weighted by the traces, the errors.
    all_rates = data.error_rate[-1].values if data.error_rate else []
    errors = sum((r or 0) * n for r, n in zip(all_rates, per_bucket, strict=False))
    costs = [v for s in data.cost for v in s.values if v is not None]
    return Strip(
        experiment=experiment,
        traces=traces,
        p95_ms=_p95_ms(experiment.pk, rng),
        error_rate=round(errors) / traces if traces else None,
        cost=sum(costs) if costs else None,
        sparkline=charts.sparkline(per_bucket),
        range=RANGE,
    )


def _p95_ms(experiment_id: int, rng: Range) -> float | None:
    aggregation = trace_metrics.Aggregation(trace_metrics.PERCENTILE, 95)
    q = trace_metrics.MetricQuery(
        view="TRACES",
        metric="latency",
        aggregations=[aggregation],
        start_ms=int(rng.start.timestamp() * 1000),
        end_ms=int(rng.end.timestamp() * 1000),
    )
    points = trace_metrics.query([experiment_id], q)
    return points[0].values.get(aggregation.label) if points else None
