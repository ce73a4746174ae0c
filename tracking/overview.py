"""The Overview (issue 19): usage, latency, errors, tokens and cost, quality and tools of some
experiments over a time range, per time bucket and model version, for the page to draw.

Every number is asked of tracking/trace_metrics.py, the SQL behind MLflow's QueryTraceMetrics:
counts, sums and error rates from its hourly/daily rollups plus the raw partial hours at the
range's ends; sessions, assessments and tool spans from its raw views limited to the range;
latency percentiles from its latency histograms (rollups.TraceLatencyBin), merged per bucket
and version in Python, so "Other versions" and "All" are exact merges and the percentile is
within rollups.LATENCY_REL_ERROR of the exact one (`approximate`).

Buckets are epoch-aligned UTC, as MLflow's: a display time zone changes labels, never which
trace falls in which bucket. A fixed number of queries answers any range and any number of
versions.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.http import QueryDict
from django.utils import timezone

from access.rules import Access
from tracking import overview_rollups, rollups, trace_metrics
from tracking.trace_metrics import Aggregation, Filter, MetricQuery

MINUTE_MS = 60_000
HOUR_MS = rollups.HOUR_MS
DAY_MS = rollups.DAY_MS
RANGES_MS = {
    "1h": HOUR_MS,
    "6h": 6 * HOUR_MS,
    "24h": DAY_MS,
    "7d": 7 * DAY_MS,
    "30d": 30 * DAY_MS,
    "90d": 90 * DAY_MS,
}
DEFAULT_RANGE = "7d"
MAX_RANGE_MS = 366 * DAY_MS
# Bucket widths, shortest first. Hour multiples are read from rollups; day multiples from day
# rollups. The widest that still gives MIN_BUCKETS is picked: 1h -> 2 min (30 buckets),
# 24h -> 1 h (24), 7d -> 6 h (28), 30d -> 1 day (30), 90d -> 3 days (30).
BUCKETS_MS = (
    MINUTE_MS,
    2 * MINUTE_MS,
    5 * MINUTE_MS,
    10 * MINUTE_MS,
    15 * MINUTE_MS,
    30 * MINUTE_MS,
    HOUR_MS,
    2 * HOUR_MS,
    3 * HOUR_MS,
    6 * HOUR_MS,
    12 * HOUR_MS,
    DAY_MS,
    2 * DAY_MS,
    3 * DAY_MS,
    7 * DAY_MS,
)
MIN_BUCKETS = 24
TOP_VERSIONS = 5
OTHER = "other"
TOP_ERRORS = 10
TOP_TOOLS = 20
PERCENTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0}


class OverviewError(ValueError):
    """A range the overview cannot show; its message is for the user (a 400)."""


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _parse_time(text: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        # A time without an offset is UTC, as everything is stored.
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):  # astimezone leaves year 1..9999: 0001-01-01+01:00
        raise OverviewError(f"{name} must be an ISO date or time, got {text[:40]!r}.") from None
    # Metrics are asked in epoch ms from 1970 on, and a range's end plus a bucket must stay
    # a datetime: years outside 1970..9998 are refused here, not a 500 further on.
    if not MIN_YEAR <= moment.year <= MAX_YEAR:
        raise OverviewError(f"{name} must be between {MIN_YEAR} and {MAX_YEAR}, got {text[:40]!r}.")
    return moment


MIN_YEAR, MAX_YEAR = 1970, 9998


@dataclass(frozen=True)
class Range:
    """[start, end) in UTC and the bucket width that fits it."""

    start: datetime
    end: datetime
    bucket_ms: int
    name: str = "custom"  # the preset (1h ... 90d) it came from, or "custom"

    @classmethod
    def parse(cls, params: QueryDict, now: datetime | None = None) -> Range:
        """From ?range=1h|6h|24h|7d|30d|90d (ending now) or ?start=ISO&end=ISO."""
        start_text, end_text = params.get("start", ""), params.get("end", "")
        if start_text or end_text:
            if not (start_text and end_text):
                raise OverviewError("A custom range needs both start and end.")
            start = _parse_time(start_text, "start")
            end = _parse_time(end_text, "end")
            if start >= end:
                raise OverviewError("The range's start must be before its end.")
            if end - start > timedelta(milliseconds=MAX_RANGE_MS):
                raise OverviewError("A range may span at most 366 days.")
            return cls.of(start, end)
        name = params.get("range") or DEFAULT_RANGE
        if name not in RANGES_MS:
            raise OverviewError(f"range must be one of {', '.join(RANGES_MS)}, got {name[:20]!r}.")
        end = (now or timezone.now()).astimezone(UTC)
        end = end.replace(microsecond=end.microsecond // 1000 * 1000)
        return cls.of(end - timedelta(milliseconds=RANGES_MS[name]), end, name)

    @classmethod
    def of(cls, start: datetime, end: datetime, name: str = "custom") -> Range:
        span = _ms(end) - _ms(start)
        fitting = [width for width in BUCKETS_MS if span // width >= MIN_BUCKETS]
        return cls(
            start=start, end=end, bucket_ms=fitting[-1] if fitting else BUCKETS_MS[0], name=name
        )

    @property
    def start_ms(self) -> int:
        return _ms(self.start)

    @property
    def end_ms(self) -> int:
        return _ms(self.end)

    def bucket_starts(self) -> list[int]:
        """Epoch-aligned bucket starts (ms) covering [start, end): the first and last may
        reach outside the range, and hold only its part."""
        first = self.start_ms // self.bucket_ms * self.bucket_ms
        return list(range(first, self.end_ms, self.bucket_ms))


@dataclass
class Series:
    key: str  # model_id, "" (traces of no version), "other", or "all"
    label: str
    values: list[float | None]  # one per bucket


@dataclass
class ErrorGroup:
    span_name: str
    exception_type: str
    count: int
    last_trace_id: str


@dataclass
class QualityRow:
    name: str
    kind: str  # "pass_rate" (values all true/false, yes/no or 0/1) or "mean"
    per_version: list[Series]
    overall: float | None
    count: int


@dataclass
class ToolRow:
    name: str
    calls: int
    error_rate: float | None
    p95_ms: float | None


@dataclass
class Overview:
    range: Range
    buckets: list[datetime]
    versions: list[tuple[str, str]]
    traces: list[Series] = field(default_factory=list)
    sessions: list[Series] = field(default_factory=list)
    latency: dict[str, list[Series]] = field(default_factory=dict)
    error_rate: list[Series] = field(default_factory=list)
    top_errors: list[ErrorGroup] = field(default_factory=list)
    tokens: list[Series] = field(default_factory=list)
    cost: list[Series] = field(default_factory=list)
    cost_per_trace: list[Series] = field(default_factory=list)
    quality: list[QualityRow] = field(default_factory=list)
    tools: list[ToolRow] = field(default_factory=list)
    freshness: datetime | None = None
    approximate: bool = True
    # Ours beside the contract: the experiments read (for links), the latency error bound.
    experiment_ids: list[int] = field(default_factory=list)
    latency_error: float = rollups.LATENCY_REL_ERROR


def readable_experiments(access: Access, experiment_ids: list[int] | None) -> list[int]:
    """The experiments asked for (all active ones when None) that the caller may read."""
    from tracking.models import Experiment, LifecycleStage

    if experiment_ids is None:
        # "All" is the active experiments, as the trace list's: a deleted one is not shown.
        experiments = Experiment.objects.filter(lifecycle_stage=LifecycleStage.ACTIVE)
    else:
        experiments = Experiment.objects.filter(pk__in=experiment_ids)
    return sorted(access.readable(experiments, "pk").values_list("pk", flat=True))


def overview(
    access: Access, *, experiment_ids: list[int] | None, model_id: str | None, rng: Range
) -> Overview:
    """The overview of the readable experiments among `experiment_ids` (all when None),
    scoped to one model version when `model_id` is given."""
    ids = readable_experiments(access, experiment_ids)
    starts = rng.bucket_starts()
    result = Overview(
        range=rng, buckets=[rollups.from_ms(s) for s in starts], versions=[], experiment_ids=ids
    )
    if not ids:
        return result
    with rollups.refreshed(ids):
        _read(result, _Reader(ids, model_id, rng, starts))
    return result


def _read(result: Overview, reader: _Reader) -> None:
    ids = reader.ids
    # Per bucket, version and state; the first read refreshes the rollups if traces changed.
    found = trace_metrics.groups(
        ids, reader.metric("trace_count", COUNT, ["model_id", "trace_status"])
    )
    result.freshness = timezone.now()
    result.versions = reader.rank_versions(found)
    counts = reader.merge(found)
    traces = _cells(counts, lambda stats, key: stats.n)
    errors = _cells(counts, lambda stats, key: stats.n if key[-1] == "ERROR" else 0)
    result.traces = reader.series(traces, empty=0.0)
    result.error_rate = reader.series(_ratio(errors, traces), all_of=(errors, traces))
    result.sessions = reader.series(reader.sessions_started(), empty=0.0)
    tokens = _cells(reader.per_bucket("total_tokens", SUM), lambda stats, key: stats.total)
    result.tokens = reader.series(tokens, empty=0.0)
    cost = _cells(reader.per_bucket("total_cost", SUM), lambda stats, key: stats.total)
    result.cost = reader.series(cost, empty=0.0)
    # Cost per trace: the bucket's cost over all its traces (one without a known price costs
    # nothing here, as on the model page).
    result.cost_per_trace = reader.series(_ratio(cost, traces), all_of=(cost, traces))
    result.latency = reader.latency()
    result.top_errors = reader.top_errors()
    result.quality = reader.quality()
    result.tools = reader.tools()


COUNT = [Aggregation("COUNT")]
SUM = [Aggregation("SUM")]
Groups = list[tuple[tuple, trace_metrics.Stats]]  # as trace_metrics.groups() answers
Cells = dict[tuple[int, str], float]  # (bucket index, version key) -> value


def _cells(found: dict[tuple, trace_metrics.Stats], value) -> Cells:
    cells: Cells = defaultdict(float)
    for key, stats in found.items():
        amount = value(stats, key)
        if amount is not None:
            cells[key[:2]] += amount
    return cells


def _ratio(numerator: Cells, denominator: Cells) -> Cells:
    return {key: numerator.get(key, 0.0) / n for key, n in denominator.items() if n}


class _Reader:
    """The queries of one overview: each groups by bucket and model version in SQL (a fixed
    number of queries for any range and any number of versions); versions outside the top N
    are merged into "other" here."""

    def __init__(self, ids: list[int], model_id: str | None, rng: Range, starts: list[int]):
        self.ids, self.model_id, self.rng, self.starts = ids, model_id, rng, starts
        self.index = {start: i for i, start in enumerate(starts)}
        self.versions: list[tuple[str, str]] = []
        self.filters = (
            [Filter("trace", "metadata", "mlflow.modelId", model_id)]
            if model_id is not None
            else []
        )

    def metric(
        self,
        metric: str,
        aggregations: list[Aggregation],
        dimensions: list[str],
        *,
        interval: bool = True,
        view: str = "TRACES",
        filters: tuple[Filter, ...] = (),
    ) -> MetricQuery:
        return MetricQuery(
            view=view,
            metric=metric,
            aggregations=aggregations,
            dimensions=dimensions,
            filters=[*self.filters, *filters],
            interval_s=self.rng.bucket_ms // 1000 if interval else None,
            start_ms=self.rng.start_ms,
            end_ms=self.rng.end_ms - 1,  # MetricQuery's end is inclusive
            max_results=trace_metrics.MAX_RESULTS_CAP,
            keep_blank=True,
        )

    def group(self, version: str) -> str:
        return version if version in self._top else OTHER

    def rank_versions(self, counts: Groups) -> list[tuple[str, str]]:
        """The top versions by traces in the range (from the trace counts by bucket and
        version), then "other" if any trace is left."""
        from tracking.models import LoggedModel

        totals: dict[str, float] = defaultdict(float)
        for (_, version, *_), stats in counts:
            totals[version] += stats.n
        ranked = sorted(totals.items(), key=lambda v: (-v[1], v[0]))
        top = [version for version, _ in ranked[:TOP_VERSIONS]]
        # A trace may name a model of an experiment the caller cannot read: its name is
        # only looked up among the read experiments' models (else the bare id is shown).
        names = dict(
            LoggedModel.objects.filter(
                experiment_id__in=self.ids, model_id__in=[v for v in top if v]
            ).values_list("model_id", "name")
        )
        self.versions = [(v, _label(v, names.get(v))) for v in top]
        if len(ranked) > TOP_VERSIONS:
            self.versions.append((OTHER, "Other versions"))
        self._top = set(top)
        return self.versions

    def per_bucket(
        self, metric: str, aggregations: list[Aggregation], dimensions: tuple[str, ...] = ()
    ) -> dict[tuple, trace_metrics.Stats]:
        """{(bucket index, version group, *dimensions): Stats} of one TRACES metric."""
        q = self.metric(metric, aggregations, ["model_id", *dimensions])
        return self.merge(trace_metrics.groups(self.ids, q))

    def merge(self, groups: Groups) -> dict[tuple, trace_metrics.Stats]:
        """Groups keyed (bucket ms, version, ...) as (bucket index, version group, ...)."""
        found: dict[tuple, trace_metrics.Stats] = {}
        for (bucket, version, *rest), stats in groups:
            at = self.index.get(bucket)
            if at is None:
                continue
            merged = found.setdefault((at, self.group(version), *rest), trace_metrics.Stats())
            merged.add(stats.n, stats.total, stats.low, stats.high)
        return found

    def series(
        self,
        cells: Cells,
        *,
        empty: float | None = None,
        all_of: tuple[Cells, Cells] | None = None,
    ) -> list[Series]:
        """One Series per version, its value in each bucket from `cells` (`empty` where the
        bucket has none: 0 for counts and sums, None for rates); with `all_of` (a ratio's
        numerator and denominator) an "all" series of the ratio over every version."""
        found = [
            Series(key, label, [cells.get((i, key), empty) for i in range(len(self.starts))])
            for key, label in self.versions
        ]
        if all_of is not None:
            numerator, denominator = all_of
            values: list[float | None] = []
            for i in range(len(self.starts)):
                n = sum(denominator.get((i, key), 0.0) for key, _ in self.versions)
                top = sum(numerator.get((i, key), 0.0) for key, _ in self.versions)
                values.append(top / n if n else None)
            found.append(Series(ALL, "All versions", values))
        return found

    def latency(self) -> dict[str, list[Series]]:
        """p50/p95/p99 per bucket and version from merged latency histograms."""
        q = self.metric("latency", [Aggregation("AVG")], ["model_id"])
        merged: dict[tuple[int, str], dict[int, int]] = defaultdict(dict)
        histograms = trace_metrics.latency_histograms(self.ids, q, self._top, OTHER)
        for (bucket, version), bins in histograms.items():
            at = self.index.get(bucket)
            if at is None:
                continue
            for key in (self.group(version), ALL):
                target = merged[(at, key)]
                for bin_index, count in bins.items():
                    target[bin_index] = target.get(bin_index, 0) + count
        keys = [*self.versions, (ALL, "All versions")]
        return {
            name: [
                Series(
                    key,
                    label,
                    [
                        rollups.percentile(merged.get((i, key), {}), percent)
                        for i in range(len(self.starts))
                    ],
                )
                for key, label in keys
            ]
            for name, percent in PERCENTILES.items()
        }

    def rolled(self, kind: overview_rollups.Kind, by_bucket: bool) -> list[tuple]:
        """Bucketed reads are split by version; whole-range ones (tools, errors) summed."""
        return overview_rollups.read(
            kind,
            self.ids,
            self.model_id,
            self.rng.start_ms,
            self.rng.end_ms,
            self.rng.bucket_ms if by_bucket else None,
            by_version=by_bucket,
        )

    def sessions_started(self) -> Cells:
        cells: Cells = defaultdict(float)
        for bucket, version, sessions in self.rolled(overview_rollups.SESSIONS, True):
            at = self.index.get(bucket)
            if at is not None:
                cells[(at, self.group(version))] += int(sessions)
        return cells

    def top_errors(self) -> list[ErrorGroup]:
        """The most frequent failing spans (name and exception type) of the range's traces."""
        from tracking.models import Trace

        groups: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        for _, _, name, exception_type, spans, last in self.rolled(overview_rollups.ERRORS, False):
            found = groups[(name, exception_type)]
            found[0] += int(spans)
            found[1] = max(found[1], int(last))
        top = sorted(groups.items(), key=lambda item: (-item[1][0], item[0]))[:TOP_ERRORS]
        trace_ids = dict(
            Trace.objects.filter(pk__in=[last for _, (_, last) in top]).values_list(
                "pk", "trace_id"
            )
        )
        return [
            ErrorGroup(name, exception_type, n, trace_ids.get(last, ""))
            for (name, exception_type), (n, last) in top
        ]

    def quality(self) -> list[QualityRow]:
        """Per assessment name: its mean (a pass rate when every value is true/false, yes/no
        or 0/1) per bucket and version, and over the range."""
        overall: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0])
        cells: dict[str, dict[tuple[int, str], list[float]]] = defaultdict(
            lambda: defaultdict(lambda: [0, 0.0])
        )
        for bucket, version, name, n, total, binary in self.rolled(overview_rollups.QUALITY, True):
            summed = overall[name]
            summed[0] += int(n)
            summed[1] += float(total)
            summed[2] += int(binary)
            at = self.index.get(bucket)
            if at is not None:
                cell = cells[name][(at, self.group(version))]
                cell[0] += int(n)
                cell[1] += float(total)
        names = sorted(overall, key=lambda name: (-overall[name][0], name))[:MAX_QUALITY_NAMES]
        rows = []
        for name in sorted(names):
            n, total, binary = overall[name]
            means = {key: t / c for key, (c, t) in cells[name].items() if c}
            rows.append(
                QualityRow(
                    name=name,
                    kind="pass_rate" if binary == n else "mean",
                    per_version=self.series(means),
                    overall=total / n if n else None,
                    count=int(n),
                )
            )
        return rows

    def tools(self) -> list[ToolRow]:
        """Per TOOL span name: calls, error rate and p95 latency (from latency bins, within
        the same bound as the traces') in the range."""
        calls: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        bins: dict[str, dict[int, int]] = defaultdict(dict)
        for _, _, name, status, bin_index, spans in self.rolled(overview_rollups.TOOLS, False):
            calls[name][0] += int(spans)
            if status == "ERROR":
                calls[name][1] += int(spans)
            bins[name][bin_index] = bins[name].get(bin_index, 0) + int(spans)
        ranked = sorted(calls.items(), key=lambda item: (-item[1][0], item[0]))[:TOP_TOOLS]
        return [
            ToolRow(name, n, errors / n if n else None, rollups.percentile(bins[name], 95.0))
            for name, (n, errors) in ranked
        ]


ALL = "all"
MAX_QUALITY_NAMES = 20


def _label(model_id: str, name: str | None) -> str:
    if not model_id:
        return "No version"
    return f"{name} · {model_id[:10]}" if name else model_id
