"""Hourly trace rollups: counts, sums, minima and maxima of each trace metric per experiment,
UTC hour, model version, trace name and state, so that QueryTraceMetrics (and the overview
built on it) reads a few thousand summary rows instead of a million traces.

How they stay exact:

- Database triggers on tracking_trace append the (experiment, hour) of every inserted,
  deleted or changed trace to `RollupChange`, whatever wrote it: ingest's upserts, a tag
  change, retention's chunked deletes, a cascade from a deleted experiment. Nothing in
  Python has to remember to mark anything.
- Before answering from rollups, the reader `refresh()`es the experiments it reads: it claims
  their pending changes (DELETE ... RETURNING) and recomputes those hours from the traces.
  A write that commits after the claim left its own change row behind, so the next read
  recomputes its hour again; a change row is only ever deleted by the refresh that
  recomputes it. A beat task does the same every minute, so that reads rarely have to.
- Change rows are appended, never upserted: a unique (experiment, hour) row would make every
  concurrent ingest transaction of the same hour wait for the others to commit.

Percentiles cannot be summed from hours, but histograms can: `TraceLatencyBin` counts each
hour's traces per model version in log-spaced latency bins (recomputed with the rollup rows),
and the overview merges them into approximate percentiles (`percentile()`, error bound below).
QueryTraceMetrics answers percentiles exactly from the traces, as MLflow does. Distinct session
counts read the traces. Hours are UTC, as MLflow's time buckets are epoch-aligned.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from django.db import connection, models, transaction
from django.db.models import Case, ExpressionWrapper, F, FloatField, Q, Value, When

from tracking.cost import MAX_COST
from tracking.sql_functions import POSTGRESQL_EPOCH_MS, SQLITE_EPOCH_MS, EpochMs

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
PERIODS_MS = (DAY_MS, HOUR_MS)  # the rollup periods, longest first
# Latency bins and the overview's rollups have one more, epoch-aligned 3 days: what the
# overview's 90-day range buckets by. They hold many rows per hour (a row per bin), so a
# 90-day read of 3-day rows reads a third of the day rows.
LONG_PERIOD_MS = 3 * DAY_MS
QUARTER_DAY_MS = 6 * HOUR_MS  # the 7-day range's bucket
BIN_PERIODS_MS = (LONG_PERIOD_MS, DAY_MS, QUARTER_DAY_MS, HOUR_MS)
ADVISORY_LOCK = 7310_0001  # PostgreSQL's advisory lock key of rollup refreshes

# TRACES metrics summed per hour, and the trace column (or expression) each one reads.
# Latency is in milliseconds, as MLflow's execution_time_ms.
ROLLED_METRICS: dict[str, models.Expression | F] = {
    "latency": ExpressionWrapper(F("duration_ns") / Value(1e6), output_field=FloatField()),
    "input_tokens": F("input_tokens"),
    "output_tokens": F("output_tokens"),
    "total_tokens": F("total_tokens"),
    "cache_read_input_tokens": F("cache_read_input_tokens"),
    "cache_creation_input_tokens": F("cache_creation_input_tokens"),
    # A cost over cost.MAX_COST (stored before ingest bounded it) is left out, as ingest now
    # leaves it: summed, it overflowed (PostgreSQL raised, SQLite gave inf).
    "total_cost": Case(
        When(Q(cost__gte=-MAX_COST, cost__lte=MAX_COST), then=F("cost")), output_field=FloatField()
    ),
}
# The same, as SQL over tracking_trace (the refresh computes hour rows in one INSERT ... SELECT).
_ROLLED_SQL = {
    "latency": "duration_ns / 1e6",
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "total_tokens": "total_tokens",
    "cache_read_input_tokens": "cache_read_input_tokens",
    "cache_creation_input_tokens": "cache_creation_input_tokens",
    "total_cost": f"CASE WHEN cost BETWEEN {-MAX_COST} AND {MAX_COST} THEN cost END",
}
# The trace columns a rollup row is keyed by besides its experiment and period.
KEY_COLUMNS = ("model_id", "name", "state")

# Latency bins: bin 0 holds latencies under 1 ms, bin k >= 1 those in [R**(k-1), R**k) ms.
# A percentile read from the bins takes each trace's latency as its bin's geometric middle
# (R**(k-0.5)): within a factor sqrt(R) of the true one, so the estimate of any percentile is
# within LATENCY_REL_ERROR of the exact one (or 0.5 ms under 1 ms). 1 ms to an hour is ~160
# bins; a typical version spans 30-50.
LATENCY_BIN_RATIO = 1.1
LATENCY_REL_ERROR = math.sqrt(LATENCY_BIN_RATIO) - 1  # 4.88 %
LATENCY_BIN_SQL = (
    "CASE WHEN {ns} < 1000000 THEN 0 "
    f"ELSE 1 + CAST(FLOOR(LN({{ns}} / 1e6) / LN({LATENCY_BIN_RATIO})) AS INTEGER) END"
)


class TraceRollup(models.Model):
    """One UTC hour (or day) of one experiment's traces with the same model version, name and
    state. For each metric: how many traces had a value (`_n`), their sum, minimum and maximum.

    Hour rows are computed from the traces, day rows from a day's hour rows: a query over 90
    days by day reads 90 rows per key, not 2,160, and one by hour over a day still finds its
    hours."""

    experiment = models.ForeignKey(
        "tracking.Experiment", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    period_hours = models.SmallIntegerField()  # 1 or 24
    hour_ms = models.BigIntegerField()  # epoch milliseconds of the period's start
    model_id = models.CharField(max_length=64, blank=True)
    name = models.CharField(max_length=500, blank=True)
    state = models.CharField(max_length=16)
    traces = models.BigIntegerField()

    latency_n = models.BigIntegerField(default=0)
    latency_sum = models.FloatField(null=True)
    latency_min = models.FloatField(null=True)
    latency_max = models.FloatField(null=True)
    input_tokens_n = models.BigIntegerField(default=0)
    input_tokens_sum = models.FloatField(null=True)
    input_tokens_min = models.FloatField(null=True)
    input_tokens_max = models.FloatField(null=True)
    output_tokens_n = models.BigIntegerField(default=0)
    output_tokens_sum = models.FloatField(null=True)
    output_tokens_min = models.FloatField(null=True)
    output_tokens_max = models.FloatField(null=True)
    total_tokens_n = models.BigIntegerField(default=0)
    total_tokens_sum = models.FloatField(null=True)
    total_tokens_min = models.FloatField(null=True)
    total_tokens_max = models.FloatField(null=True)
    cache_read_input_tokens_n = models.BigIntegerField(default=0)
    cache_read_input_tokens_sum = models.FloatField(null=True)
    cache_read_input_tokens_min = models.FloatField(null=True)
    cache_read_input_tokens_max = models.FloatField(null=True)
    cache_creation_input_tokens_n = models.BigIntegerField(default=0)
    cache_creation_input_tokens_sum = models.FloatField(null=True)
    cache_creation_input_tokens_min = models.FloatField(null=True)
    cache_creation_input_tokens_max = models.FloatField(null=True)
    total_cost_n = models.BigIntegerField(default=0)
    total_cost_sum = models.FloatField(null=True)
    total_cost_min = models.FloatField(null=True)
    total_cost_max = models.FloatField(null=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["experiment", "period_hours", "hour_ms"], name="rollup_exp_hour_idx"
            )
        ]

    def __str__(self) -> str:
        return f"{self.experiment_id}@{self.hour_ms}"


class TraceLatencyBin(models.Model):
    """How many traces of one UTC hour (or day), experiment and model version had a latency in
    one bin (LATENCY_BIN_SQL): a histogram that sums over hours, for percentiles over long
    ranges without reading every trace. Kept in step with TraceRollup by the same refresh."""

    experiment = models.ForeignKey(
        "tracking.Experiment", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    period_hours = models.SmallIntegerField()  # 1 or 24
    hour_ms = models.BigIntegerField()
    model_id = models.CharField(max_length=64, blank=True)
    bin = models.SmallIntegerField()
    traces = models.BigIntegerField()

    class Meta:
        indexes = [
            models.Index(
                fields=["experiment", "period_hours", "hour_ms", "model_id", "bin", "traces"],
                name="latency_bin_exp_hour_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.experiment_id}@{self.hour_ms}#{self.bin}"


def bin_latency_ms(bin_index: int) -> float:
    """The latency that stands for every trace of a bin: its geometric middle."""
    if bin_index <= 0:
        return 0.5
    return LATENCY_BIN_RATIO ** (bin_index - 0.5)


def percentile(bins: dict[int, int], percent: float) -> float | None:
    """`percent`-th percentile of a histogram, interpolated between ranks as PostgreSQL's
    percentile_cont (and numpy's default) interpolates between values."""
    total = sum(bins.values())
    if not total:
        return None
    ordered = sorted(bins.items())

    def nth(index: int) -> float:  # the index-th smallest latency (from 0)
        seen = 0
        for bin_index, count in ordered:
            seen += count
            if seen > index:
                return bin_latency_ms(bin_index)
        return bin_latency_ms(ordered[-1][0])

    rank = percent / 100 * (total - 1)
    low = int(rank)
    value = nth(low)
    if rank > low:
        value += (rank - low) * (nth(low + 1) - value)
    return value


class RollupChange(models.Model):
    """An hour of an experiment whose traces changed since its rollup rows were computed.
    Written by the triggers below only; a plain integer, not a foreign key, so that marking
    costs one index entry and a deleted experiment's marks are simply found empty."""

    experiment_id = models.BigIntegerField()
    hour_ms = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["experiment_id"], name="rollup_change_exp_idx")]

    def __str__(self) -> str:
        return f"{self.experiment_id}@{self.hour_ms}"


# --- Triggers ---------------------------------------------------------------------------------

# The columns a rollup reads: a change to any other (previews, tags, span counts) marks nothing.
_WATCHED = (
    "experiment_id",
    "request_time",
    "state",
    "duration_ns",
    "name",
    "model_id",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cost",
    "session_id",  # sessions started (overview_rollups) count a session in its first trace's hour
)
_CHANGES = "tracking_rollupchange"
# The hour exactly as the reader computes it, EpochMs(request_time) / HOUR_MS * HOUR_MS.
_SQLITE_HOUR = (
    SQLITE_EPOCH_MS.replace("%(expressions)s", "{row}.request_time") + " / 3600000 * 3600000"
)


def hour_sql(vendor: str, row: str) -> str:
    """The hour of `row`.request_time as SQL (for triggers and the first fill)."""
    return (_PG_HOUR if vendor == "postgresql" else _SQLITE_HOUR).format(row=row)


def _sqlite_mark(row: str) -> str:
    return (
        f"INSERT INTO {_CHANGES} (experiment_id, hour_ms) "
        f"VALUES ({row}.experiment_id, {_SQLITE_HOUR.format(row=row)});"
    )


def _first_of_session_sql(vendor: str, row: str) -> str:
    """Mark the hour of the first other trace of `row`'s session when `row` was (or now is)
    before it: deleting a session's first trace (retention deletes oldest first), moving it
    out, or storing an earlier turn moves "sessions started" to another hour, which only this
    mark gets recomputed. One index lookup (trace_session_idx) per write of a session's trace."""
    hour = (_PG_HOUR if vendor == "postgresql" else _SQLITE_HOUR).format(row="f")
    return (
        f"INSERT INTO {_CHANGES} (experiment_id, hour_ms) "
        f"SELECT f.experiment_id, {hour} FROM ("
        "SELECT p.experiment_id, p.request_time FROM tracking_trace p "
        f"WHERE p.session_id = {row}.session_id AND p.experiment_id = {row}.experiment_id "
        f"AND p.id <> {row}.id ORDER BY p.request_time, p.id LIMIT 1) f "
        f"WHERE f.request_time >= {row}.request_time;"
    )


_SQLITE_CHANGED = " OR ".join(f"old.{c} IS NOT new.{c}" for c in _WATCHED)
_SQLITE_MOVED = (
    "old.experiment_id IS NOT new.experiment_id OR old.request_time IS NOT new.request_time"
)
_SQLITE_SESSION_MOVED = f"{_SQLITE_MOVED} OR old.session_id IS NOT new.session_id"


def _sqlite_first_of_session(row: str, when: str = "") -> str:
    # SQLite's trigger bodies have no IF: the condition is a WHERE of the INSERT ... SELECT.
    condition = f" AND {row}.session_id IS NOT NULL" + (f" AND ({when})" if when else "")
    return _first_of_session_sql("sqlite", row).replace(
        "ORDER BY p.request_time", f"{condition} ORDER BY p.request_time", 1
    )


SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER IF NOT EXISTS tracking_trace_rollup_insert AFTER INSERT ON tracking_trace
    BEGIN {_sqlite_mark("new")} {_sqlite_first_of_session("new")} END""",
    f"""CREATE TRIGGER IF NOT EXISTS tracking_trace_rollup_delete AFTER DELETE ON tracking_trace
    BEGIN {_sqlite_mark("old")} {_sqlite_first_of_session("old")} END""",
    f"""CREATE TRIGGER IF NOT EXISTS tracking_trace_rollup_update
    AFTER UPDATE OF {", ".join(_WATCHED)} ON tracking_trace WHEN {_SQLITE_CHANGED}
    BEGIN
        {_sqlite_mark("old")}
        INSERT INTO {_CHANGES} (experiment_id, hour_ms)
        SELECT new.experiment_id, {_SQLITE_HOUR.format(row="new")} WHERE {_SQLITE_MOVED};
        {_sqlite_first_of_session("old", _SQLITE_SESSION_MOVED)}
        {_sqlite_first_of_session("new", _SQLITE_SESSION_MOVED)}
    END""",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS tracking_trace_rollup_insert",
    "DROP TRIGGER IF EXISTS tracking_trace_rollup_delete",
    "DROP TRIGGER IF EXISTS tracking_trace_rollup_update",
]

_PG_HOUR = (
    POSTGRESQL_EPOCH_MS.replace("%(expressions)s", "{row}.request_time") + " / 3600000 * 3600000"
)
_PG_OLD = ", ".join(f"OLD.{c}" for c in _WATCHED)
_PG_NEW = ", ".join(f"NEW.{c}" for c in _WATCHED)
POSTGRESQL_TRIGGERS = [
    f"""CREATE OR REPLACE FUNCTION tracking_trace_rollup_mark() RETURNS trigger AS $$
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            INSERT INTO {_CHANGES} (experiment_id, hour_ms)
            VALUES (OLD.experiment_id, {_PG_HOUR.format(row="OLD")});
        END IF;
        IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND (OLD.experiment_id, OLD.request_time)
                IS DISTINCT FROM (NEW.experiment_id, NEW.request_time)) THEN
            INSERT INTO {_CHANGES} (experiment_id, hour_ms)
            VALUES (NEW.experiment_id, {_PG_HOUR.format(row="NEW")});
        END IF;
        IF TG_OP = 'DELETE' THEN
            IF OLD.session_id IS NOT NULL THEN
                {_first_of_session_sql("postgresql", "OLD")}
            END IF;
        ELSIF TG_OP = 'INSERT' THEN
            IF NEW.session_id IS NOT NULL THEN
                {_first_of_session_sql("postgresql", "NEW")}
            END IF;
        ELSIF (OLD.experiment_id, OLD.request_time, OLD.session_id)
                IS DISTINCT FROM (NEW.experiment_id, NEW.request_time, NEW.session_id) THEN
            IF OLD.session_id IS NOT NULL THEN
                {_first_of_session_sql("postgresql", "OLD")}
            END IF;
            IF NEW.session_id IS NOT NULL THEN
                {_first_of_session_sql("postgresql", "NEW")}
            END IF;
        END IF;
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS tracking_trace_rollup_write ON tracking_trace",
    """CREATE TRIGGER tracking_trace_rollup_write AFTER INSERT OR DELETE ON tracking_trace
    FOR EACH ROW EXECUTE FUNCTION tracking_trace_rollup_mark()""",
    "DROP TRIGGER IF EXISTS tracking_trace_rollup_update ON tracking_trace",
    f"""CREATE TRIGGER tracking_trace_rollup_update
    AFTER UPDATE OF {", ".join(_WATCHED)} ON tracking_trace FOR EACH ROW
    WHEN (({_PG_OLD}) IS DISTINCT FROM ({_PG_NEW}))
    EXECUTE FUNCTION tracking_trace_rollup_mark()""",
]
POSTGRESQL_DROP = [
    "DROP TRIGGER IF EXISTS tracking_trace_rollup_update ON tracking_trace",
    "DROP TRIGGER IF EXISTS tracking_trace_rollup_write ON tracking_trace",
    "DROP FUNCTION IF EXISTS tracking_trace_rollup_mark()",
]


def install_triggers(schema_connection=connection) -> None:
    """(Re)create the triggers; idempotent. Run by the migration and after every `migrate`
    (tracking/apps.py): on SQLite a later migration that rebuilds tracking_trace drops them
    with the old table, and rollups would silently stop following the traces."""
    from tracking import overview_rollups

    if schema_connection.vendor == "postgresql":
        statements = POSTGRESQL_TRIGGERS + overview_rollups.POSTGRESQL_TRIGGERS
    else:
        statements = SQLITE_TRIGGERS + overview_rollups.SQLITE_TRIGGERS
    with schema_connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


# --- Refreshing -------------------------------------------------------------------------------


def pending(experiment_ids: Iterable[int]) -> bool:
    """Whether any of these experiments has hours to recompute (a read: no write lock)."""
    ids = set(experiment_ids)
    if ids <= getattr(_refreshed, "ids", set()):
        return False
    return RollupChange.objects.filter(experiment_id__in=list(ids)).exists()


_refreshed = threading.local()


@contextmanager
def refreshed(experiment_ids: Iterable[int]) -> Iterator[None]:
    """Refresh these experiments' rollups once, then read them without asking again: a page
    of many rollup reads (the overview) asks once, and all its charts come from one state."""
    ids = set(experiment_ids)
    if pending(ids):
        refresh(ids)
    before = getattr(_refreshed, "ids", set())
    _refreshed.ids = before | ids
    try:
        yield
    finally:
        _refreshed.ids = before


def refresh(experiment_ids: Iterable[int] | None = None) -> int:
    """Recompute the rollup rows of every changed hour of these experiments (all when None);
    answers how many hours were recomputed."""
    ids = None if experiment_ids is None else sorted(set(experiment_ids))
    if ids is not None and not ids:
        return 0
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # One refresher at a time (SQLite has one writer anyway): two recomputing the same
            # hour would each delete the rows they saw and insert their own, leaving both.
            # Refreshes are short, so one lock for all is simpler than one per experiment.
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK])
        hours = _claim(ids)
        for experiment_id, experiment_hours in hours.items():
            _recompute(experiment_id, sorted(experiment_hours))
    recomputed = sum(len(h) for h in hours.values())
    if recomputed >= ANALYZE_AFTER_HOURS and connection.vendor == "postgresql":
        _analyze()
    return recomputed


# After a bulk refresh (the first page over months of traces, a rebuild, an import) the
# planner still has the rollup tables' old row estimates, often none: PostgreSQL then sorts tens
# of thousands of rollup rows to group them where it would hash them (the overview's tool and
# latency reads took 26-30 ms instead of 11-18 ms over a million traces). Autovacuum, where it
# runs, analyzes them a minute later; this does at once, in under a second.
ANALYZE_AFTER_HOURS = 1_000


def _analyze() -> None:
    from tracking import overview_rollups

    models = [TraceRollup, TraceLatencyBin, *(kind.model for kind in overview_rollups.KINDS)]
    tables = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in models)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {tables}")


def rebuild(experiment_ids: Iterable[int] | None = None) -> int:
    """Recompute every hour (management command `rebuild_trace_rollups`): marks every hour
    that has traces, then refreshes them."""
    from tracking import overview_rollups
    from tracking.models import Trace

    traces = Trace.objects.all()
    if experiment_ids is not None:
        traces = traces.filter(experiment_id__in=list(experiment_ids))
    hours = (
        traces.order_by()
        .annotate(hour=EpochMs("request_time") / HOUR_MS * HOUR_MS)
        .values_list("experiment_id", "hour")
        .distinct()
    )
    with transaction.atomic():
        RollupChange.objects.bulk_create(
            [RollupChange(experiment_id=e, hour_ms=h) for e, h in hours], batch_size=1000
        )
        rolled = TraceRollup.objects.all()
        if experiment_ids is not None:
            rolled = rolled.filter(experiment_id__in=list(experiment_ids))
        # Hours whose traces are all gone have no change row from above: drop them here.
        rolled.delete()
        bins = TraceLatencyBin.objects.all()
        if experiment_ids is not None:
            bins = bins.filter(experiment_id__in=list(experiment_ids))
        bins.delete()
        overview_rollups.delete(experiment_ids)
    return refresh(experiment_ids)


def _claim(ids: list[int] | None) -> dict[int, set[int]]:
    table = connection.ops.quote_name(RollupChange._meta.db_table)
    sql = f"DELETE FROM {table}"
    params: list[int] = []
    if ids is not None:
        sql += f" WHERE experiment_id IN ({', '.join(['%s'] * len(ids))})"
        params = ids
    hours: dict[int, set[int]] = defaultdict(set)
    with connection.cursor() as cursor:
        cursor.execute(sql + " RETURNING experiment_id, hour_ms", params)
        for experiment_id, hour_ms in cursor.fetchall():
            hours[experiment_id].add(hour_ms)
    return hours


def runs(starts: list[int], period: int) -> list[tuple[int, int]]:
    """Sorted period starts as [start, end) ranges of consecutive periods: one scan each."""
    runs: list[tuple[int, int]] = []
    for start in starts:
        if runs and runs[-1][1] == start:
            runs[-1] = (runs[-1][0], start + period)
        else:
            runs.append((start, start + period))
    return runs


def _stat_columns() -> list[str]:
    return [f"{m}_{stat}" for m in ROLLED_METRICS for stat in ("n", "sum", "min", "max")]


def _recompute(experiment_id: int, hours: list[int]) -> None:
    """Hour rows of these hours from their traces, then day rows of their days from the hour
    rows, each in one DELETE and one INSERT ... SELECT (no row passes through Python); the
    overview's span, assessment and session rollups likewise."""
    from tracking import overview_rollups

    table = TraceRollup._meta.db_table
    columns = ", ".join(["experiment_id", "period_hours", "hour_ms", *KEY_COLUMNS, "traces"])
    columns += ", " + ", ".join(_stat_columns())
    hour = hour_sql(connection.vendor, "tracking_trace")
    from_traces = ", ".join(
        f"COUNT({sql}), SUM({sql}), MIN({sql}), MAX({sql})" for sql in _ROLLED_SQL.values()
    )
    from_hours = ", ".join(
        f"SUM({c}_n), SUM({c}_sum), MIN({c}_min), MAX({c}_max)" for c in ROLLED_METRICS
    )
    keys = ", ".join(KEY_COLUMNS)
    adapt = connection.ops.adapt_datetimefield_value
    days = sorted({hour // DAY_MS * DAY_MS for hour in hours})
    bins_table = TraceLatencyBin._meta.db_table
    bin_columns = "experiment_id, period_hours, hour_ms, model_id, bin, traces"
    latency_bin = LATENCY_BIN_SQL.format(ns="duration_ns")
    with connection.cursor() as cursor:
        for start, end in runs(hours, HOUR_MS):
            for rolled in (table, bins_table):
                cursor.execute(
                    f"DELETE FROM {rolled} WHERE experiment_id = %s AND period_hours = 1 "
                    "AND hour_ms >= %s AND hour_ms < %s",
                    [experiment_id, start, end],
                )
            cursor.execute(
                f"INSERT INTO {bins_table} ({bin_columns}) "
                f"SELECT experiment_id, 1, {hour}, model_id, {latency_bin}, COUNT(*) "
                "FROM tracking_trace WHERE experiment_id = %s "
                "AND request_time >= %s AND request_time < %s AND duration_ns IS NOT NULL "
                f"GROUP BY experiment_id, {hour}, model_id, {latency_bin}",
                [experiment_id, adapt(from_ms(start)), adapt(from_ms(end))],
            )
            cursor.execute(
                f"INSERT INTO {table} ({columns}) "
                f"SELECT experiment_id, 1, {hour}, {keys}, COUNT(*), {from_traces} "
                "FROM tracking_trace WHERE experiment_id = %s "
                "AND request_time >= %s AND request_time < %s "
                f"GROUP BY experiment_id, {hour}, {keys}",
                [experiment_id, adapt(from_ms(start)), adapt(from_ms(end))],
            )
        for start, end in runs(days, DAY_MS):
            cursor.execute(
                f"DELETE FROM {table} WHERE experiment_id = %s AND period_hours = 24 "
                "AND hour_ms >= %s AND hour_ms < %s",
                [experiment_id, start, end],
            )
            day = f"hour_ms / {DAY_MS} * {DAY_MS}"
            cursor.execute(
                f"INSERT INTO {table} ({columns}) "
                f"SELECT experiment_id, 24, {day}, {keys}, SUM(traces), {from_hours} "
                f"FROM {table} WHERE experiment_id = %s AND period_hours = 1 "
                "AND hour_ms >= %s AND hour_ms < %s "
                f"GROUP BY experiment_id, {day}, {keys}",
                [experiment_id, start, end],
            )
        roll_up(cursor, bins_table, experiment_id, ["model_id", "bin"], [("traces", "SUM")], hours)
        overview_rollups.recompute(cursor, experiment_id, hours)


def roll_up(
    cursor: Any,
    table: str,
    experiment_id: int,
    key_columns: list[str],
    value_columns: list[tuple[str, str]],
    hours: list[int],
) -> None:
    """The rows of every longer period (BIN_PERIODS_MS) holding these hours, from the rows
    of the next shorter period: 6 hours from hours, days from those, 3 days from days.
    Values are combined by their aggregate (SUM, MAX)."""
    keys = ", ".join(key_columns)
    columns = ", ".join(column for column, _ in value_columns)
    values = ", ".join(f"{how}({column})" for column, how in value_columns)
    starts = hours
    for shorter, longer in itertools.pairwise(BIN_PERIODS_MS[::-1]):
        starts = sorted({start // longer * longer for start in starts})
        period = f"hour_ms / {longer} * {longer}"
        for start, end in runs(starts, longer):
            cursor.execute(
                f"DELETE FROM {table} WHERE experiment_id = %s AND period_hours = %s "
                "AND hour_ms >= %s AND hour_ms < %s",
                [experiment_id, longer // HOUR_MS, start, end],
            )
            cursor.execute(
                f"INSERT INTO {table} (experiment_id, period_hours, hour_ms, {keys}, {columns}) "
                f"SELECT experiment_id, {longer // HOUR_MS}, {period}, {keys}, {values} "
                f"FROM {table} WHERE experiment_id = %s AND period_hours = %s "
                "AND hour_ms >= %s AND hour_ms < %s "
                f"GROUP BY experiment_id, {period}, {keys}",
                [experiment_id, shorter // HOUR_MS, start, end],
            )


def from_ms(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, tz=UTC)
