"""Hourly rollups of what the overview shows beside trace metrics: tool spans (calls, errors
and latency bins per name), failing spans (per name and exception type), assessment values
(per name) and sessions started, per experiment, UTC hour (and day) and model version.

They ride on tracking/rollups.py: the same change rows mark an hour, the same refresh
recomputes it (`recompute()` is called from rollups._recompute), and `rebuild_trace_rollups`
rebuilds them. Spans and assessments are keyed by their trace's hour: triggers on
tracking_assessment mark their trace's hour, and ingest (the one writer of spans) marks the hour of
every stored trace that gets spans (`mark_traces`). Spans have no trigger: their upsert is the
hottest write there is (see SQLITE_TRIGGERS). Spans are deleted only with their trace, whose own
trigger marks its hour; a trace that moves marks both hours through the trace triggers.

Each rollup is one SELECT over the rows ("facts"), grouped by a time expression: the hour when
a refresh writes rollup rows, the overview's bucket when `read()` covers the partial hours at a
range's ends from the rows. So rollup rows and raw rows add up to the same.

"Sessions started" counts each session once, in the hour and version of its first trace: a
count that sums over hours, unlike distinct active sessions. When a session's first trace
changes (it is deleted or moved, its session id is set later, an earlier turn is stored), the
trace triggers (tracking/rollups.py) also mark the hour of the session's other first trace, so
both hours are recomputed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection, models

from tracking import rollups
from tracking.sql_functions import POSTGRESQL_EPOCH_MS, SQLITE_EPOCH_MS


class _Rolled(models.Model):
    experiment = models.ForeignKey(
        "tracking.Experiment", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    period_hours = models.SmallIntegerField()  # 1 or 24
    hour_ms = models.BigIntegerField()
    model_id = models.CharField(max_length=64, blank=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.experiment_id}@{self.hour_ms}"


class ToolRollup(_Rolled):
    """TOOL spans of an hour's traces per name, status and latency bin."""

    name = models.CharField(max_length=500)
    status = models.CharField(max_length=8)
    bin = models.SmallIntegerField()
    spans = models.BigIntegerField()

    class Meta:
        indexes = [
            models.Index(fields=["experiment", "period_hours", "hour_ms"], name="tool_rollup_idx")
        ]


class ErrorRollup(_Rolled):
    """Failing spans of an hour's traces per name and exception type, and the newest trace."""

    name = models.CharField(max_length=500)
    exception_type = models.CharField(max_length=500, blank=True)
    spans = models.BigIntegerField()
    last_trace = models.BigIntegerField()  # a tracking_trace id, not a key: it may be gone

    class Meta:
        indexes = [
            models.Index(fields=["experiment", "period_hours", "hour_ms"], name="error_rollup_idx")
        ]


class QualityRollup(_Rolled):
    """Numeric assessment values (AssessmentNumber) of an hour's traces per name: count, sum,
    and how many were 0 or 1 (all of them: a pass rate)."""

    name = models.CharField(max_length=250)
    n = models.BigIntegerField()
    total = models.FloatField()
    binary_n = models.BigIntegerField()

    class Meta:
        indexes = [
            models.Index(
                fields=["experiment", "period_hours", "hour_ms"], name="quality_rollup_idx"
            )
        ]


class SessionRollup(_Rolled):
    """Sessions whose first trace is in the hour, per version of that trace."""

    sessions = models.BigIntegerField()

    class Meta:
        indexes = [
            models.Index(
                fields=["experiment", "period_hours", "hour_ms"], name="session_rollup_idx"
            )
        ]


# --- The facts ---------------------------------------------------------------------------------


def epoch_ms_sql(vendor: str, column: str) -> str:
    template = POSTGRESQL_EPOCH_MS if vendor == "postgresql" else SQLITE_EPOCH_MS
    return template.replace("%(expressions)s", column)


def exception_type_sql(vendor: str, events: str) -> str:
    """The `exception.type` of a span's first exception event (OTel's convention), or NULL."""
    if vendor == "postgresql":
        return (
            "(SELECT e -> 'attributes' ->> 'exception.type' FROM jsonb_array_elements("
            f"CASE WHEN jsonb_typeof({events}) = 'array' THEN {events} ELSE '[]'::jsonb END) e "
            "WHERE e ->> 'name' = 'exception' LIMIT 1)"
        )
    return (
        "(SELECT json_extract(e.value, '$.attributes.\"exception.type\"') FROM json_each("
        f"CASE WHEN json_type({events}) = 'array' THEN {events} ELSE '[]' END) e "
        "WHERE json_extract(e.value, '$.name') = 'exception' LIMIT 1)"
    )


@dataclass(frozen=True)
class Kind:
    model: type[_Rolled]
    keys: tuple[str, ...]  # after model_id
    values: tuple[tuple[str, str], ...]  # (column, how day rows and reads combine it)

    def facts(self, vendor: str, time: str, where: str) -> str:
        """SELECT time, model_id, *keys, *values over the rows of traces matching `where`
        (on trace alias t), grouped by `time` (an SQL expression of t.request_time)."""
        if self.model is ToolRollup:
            latency = rollups.LATENCY_BIN_SQL.format(ns="(s.end_ns - s.start_ns)")
            return (
                f"SELECT {time}, t.model_id, s.name, s.status, {latency}, COUNT(*) "
                "FROM tracking_span s JOIN tracking_trace t ON t.id = s.trace_id "
                f"WHERE {where} AND s.span_type = 'TOOL' AND s.end_ns IS NOT NULL "
                f"GROUP BY {time}, t.model_id, s.name, s.status, {latency}"
            )
        if self.model is ErrorRollup:
            kind = f"COALESCE({exception_type_sql(vendor, 's.events')}, '')"
            return (
                f"SELECT {time}, t.model_id, s.name, {kind}, COUNT(*), MAX(t.id) "
                "FROM tracking_span s JOIN tracking_trace t ON t.id = s.trace_id "
                f"WHERE {where} AND s.status = 'ERROR' "
                f"GROUP BY {time}, t.model_id, s.name, {kind}"
            )
        if self.model is QualityRollup:
            from tracking.trace_metrics import AssessmentNumber

            number = AssessmentNumber.sql_for(vendor, "a.value")
            return (
                "SELECT g_time, model_id, name, COUNT(*), SUM(v), "
                "SUM(CASE WHEN v = 0 OR v = 1 THEN 1 ELSE 0 END) FROM ("
                f"SELECT {time} AS g_time, t.model_id AS model_id, a.name AS name, {number} AS v "
                "FROM tracking_assessment a JOIN tracking_trace t ON t.id = a.trace_id "
                f"WHERE {where} AND a.valid) facts WHERE v IS NOT NULL "
                "GROUP BY g_time, model_id, name"
            )
        earlier = (
            "SELECT 1 FROM tracking_trace p WHERE p.session_id = t.session_id "
            "AND p.experiment_id = t.experiment_id AND (p.request_time < t.request_time "
            "OR (p.request_time = t.request_time AND p.id < t.id))"
        )
        return (
            f"SELECT {time}, t.model_id, COUNT(*) FROM tracking_trace t "
            f"WHERE {where} AND t.session_id IS NOT NULL AND NOT EXISTS ({earlier}) "
            f"GROUP BY {time}, t.model_id"
        )

    @property
    def columns(self) -> list[str]:
        return ["model_id", *self.keys, *(c for c, _ in self.values)]


TOOLS = Kind(ToolRollup, ("name", "status", "bin"), (("spans", "SUM"),))
ERRORS = Kind(ErrorRollup, ("name", "exception_type"), (("spans", "SUM"), ("last_trace", "MAX")))
QUALITY = Kind(QualityRollup, ("name",), (("n", "SUM"), ("total", "SUM"), ("binary_n", "SUM")))
SESSIONS = Kind(SessionRollup, (), (("sessions", "SUM"),))
KINDS = (TOOLS, ERRORS, QUALITY, SESSIONS)


def recompute(cursor, experiment_id: int, hours: list[int]) -> None:
    """Rows of these hours, then of the longer periods that hold them (rollups.roll_up)."""
    vendor = connection.vendor
    adapt = connection.ops.adapt_datetimefield_value
    hour = rollups.hour_sql(vendor, "t")
    for kind in KINDS:
        table = kind.model._meta.db_table
        columns = ", ".join(["experiment_id", "period_hours", "hour_ms", *kind.columns])
        where = "t.experiment_id = %s AND t.request_time >= %s AND t.request_time < %s"
        for start, end in rollups.runs(hours, rollups.HOUR_MS):
            cursor.execute(
                f"DELETE FROM {table} WHERE experiment_id = %s AND period_hours = 1 "
                "AND hour_ms >= %s AND hour_ms < %s",
                [experiment_id, start, end],
            )
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT %s, 1, facts.* FROM "
                f"({kind.facts(vendor, hour, where)}) facts",
                [
                    experiment_id,
                    experiment_id,
                    adapt(rollups.from_ms(start)),
                    adapt(rollups.from_ms(end)),
                ],
            )
        rollups.roll_up(
            cursor, table, experiment_id, ["model_id", *kind.keys], list(kind.values), hours
        )


def delete(experiment_ids: Iterable[int] | None) -> None:
    for kind in KINDS:
        rows = kind.model.objects.all()
        if experiment_ids is not None:
            rows = rows.filter(experiment_id__in=list(experiment_ids))
        rows.delete()


ONE_BUCKET_MS = 1 << 50

# --- Reading -----------------------------------------------------------------------------------


def read(
    kind: Kind,
    experiment_ids: list[int],
    model_id: str | None,
    start_ms: int,
    end_ms: int,
    width_ms: int | None,
    by_version: bool = True,
) -> list[tuple]:
    """Rows (bucket start ms, 0 without a width; model_id, *keys, *values) of [start_ms, end_ms) by
    buckets of `width_ms` (None: one for the whole range): whole days and hours from the
    rollup rows, the rest from the rows themselves. Rollups are refreshed first if needed.
    Without `by_version` the rows are summed over versions in SQL (model_id "" in each)."""
    from tracking.trace_metrics import plan

    periods = tuple(p for p in rollups.BIN_PERIODS_MS if width_ms is None or width_ms % p == 0)
    # No width: one bucket, 0, for every time (integer division by more than any epoch ms;
    # a constant NULL would not do, PostgreSQL refuses to GROUP BY a literal).
    width_ms = width_ms or ONE_BUCKET_MS
    segments = plan(start_ms, end_ms, periods)
    if any(period is not None for _, _, period in segments) and rollups.pending(experiment_ids):
        rollups.refresh(experiment_ids)
    vendor = connection.vendor
    experiments = ", ".join(["%s"] * len(experiment_ids))
    keys = ", ".join(["model_id" if by_version else "''", *kind.keys])
    grouped = ", ".join((["model_id"] if by_version else []) + list(kind.keys))
    values = ", ".join(f"{how}({column})" for column, how in kind.values)
    found: list[tuple] = []
    with connection.cursor() as cursor:
        rolled = [(a, b, p) for a, b, p in segments if p is not None]
        if rolled:
            bucket = f"hour_ms / {width_ms} * {width_ms}"
            # The experiments in each term: one index range per term (as
            # trace_metrics.rollup_segments).
            within = " OR ".join(
                f"(experiment_id IN ({experiments}) AND period_hours = %s "
                "AND hour_ms >= %s AND hour_ms < %s)"
                for _ in rolled
            )
            params: list = []
            for a, b, p in rolled:
                params += [*experiment_ids, p // rollups.HOUR_MS, a, b]
            scope = ""
            if model_id is not None:
                scope = " AND model_id = %s"
                params.append(model_id)
            cursor.execute(
                f"SELECT {bucket}, {keys}, {values} FROM {kind.model._meta.db_table} "
                f"WHERE ({within}){scope} "
                f"GROUP BY {', '.join(filter(None, [bucket, grouped]))}",
                params,
            )
            found += cursor.fetchall()
        adapt = connection.ops.adapt_datetimefield_value
        for a, b, _ in (s for s in segments if s[2] is None):
            epoch = epoch_ms_sql(vendor, "t.request_time")
            bucket = f"{epoch} / {width_ms} * {width_ms}"
            where = (
                f"t.experiment_id IN ({experiments}) "
                "AND t.request_time >= %s AND t.request_time < %s"
            )
            params = [*experiment_ids, adapt(rollups.from_ms(a)), adapt(rollups.from_ms(b))]
            if model_id is not None:
                where += " AND t.model_id = %s"
                params.append(model_id)
            cursor.execute(kind.facts(vendor, bucket, where), params)
            found += cursor.fetchall()
    return found


# --- Triggers: spans and assessments mark their trace's hour ------------------------------------

_CHANGES = "tracking_rollupchange"
_ASSESSMENT_COLUMNS = "name, value, valid, trace_id"


def _sqlite_mark(row: str) -> str:
    hour = rollups.hour_sql("sqlite", "tracking_trace")
    return (
        f"INSERT INTO {_CHANGES} (experiment_id, hour_ms) SELECT experiment_id, {hour} "
        f"FROM tracking_trace WHERE id = {row}.trace_id;"
    )


# No trigger on tracking_span at all: a per-row trigger, even one whose WHEN is false, cost ingest
# 15-20% of its throughput on SQLite (bench/ingest.py, 1,000-span traces), and ingest's upsert
# (INSERT ... ON CONFLICT DO UPDATE) pays for insert and update triggers alike. Ingest, the one
# writer of spans, marks instead (mark_traces below); a new trace's hour is marked by its own
# insert. The DROPs remove the triggers that earlier versions installed.
_SPAN_OPS = ("insert", "delete", "update")
SQLITE_TRIGGERS = [
    *(f"DROP TRIGGER IF EXISTS tracking_span_rollup_{op}" for op in _SPAN_OPS),
    f"""CREATE TRIGGER IF NOT EXISTS tracking_assessment_rollup_insert
    AFTER INSERT ON tracking_assessment BEGIN {_sqlite_mark("new")} END""",
    f"""CREATE TRIGGER IF NOT EXISTS tracking_assessment_rollup_delete
    AFTER DELETE ON tracking_assessment BEGIN {_sqlite_mark("old")} END""",
    f"""CREATE TRIGGER IF NOT EXISTS tracking_assessment_rollup_update
    AFTER UPDATE OF {_ASSESSMENT_COLUMNS} ON tracking_assessment
    BEGIN {_sqlite_mark("old")} {_sqlite_mark("new")} END""",
]


def mark_traces(trace_pks: Iterable[int]) -> None:
    """Mark the hours of these traces as changed: ingest calls it for every trace that already
    existed and got spans (a new span, or a stored one whose status or type changed)."""
    pks = sorted(set(trace_pks))
    if not pks:
        return
    hour = rollups.hour_sql(connection.vendor, "tracking_trace")
    marks = ", ".join(["%s"] * len(pks))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_CHANGES} (experiment_id, hour_ms) "
            f"SELECT experiment_id, {hour} FROM tracking_trace WHERE id IN ({marks})",
            pks,
        )


SQLITE_DROP = [
    f"DROP TRIGGER IF EXISTS tracking_{table}_rollup_{op}"
    for table in ("span", "assessment")
    for op in ("insert", "delete", "update")
]

_PG_HOUR = rollups.hour_sql("postgresql", "t")
POSTGRESQL_TRIGGERS = [
    f"""CREATE OR REPLACE FUNCTION tracking_trace_child_mark() RETURNS trigger AS $$
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            INSERT INTO {_CHANGES} (experiment_id, hour_ms)
            SELECT t.experiment_id, {_PG_HOUR} FROM tracking_trace t WHERE t.id = OLD.trace_id;
        END IF;
        IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.trace_id <> OLD.trace_id) THEN
            INSERT INTO {_CHANGES} (experiment_id, hour_ms)
            SELECT t.experiment_id, {_PG_HOUR} FROM tracking_trace t WHERE t.id = NEW.trace_id;
        END IF;
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
    # None on tracking_span: see SQLITE_TRIGGERS.
    *(f"DROP TRIGGER IF EXISTS tracking_span_rollup_{op} ON tracking_span" for op in _SPAN_OPS),
    "DROP TRIGGER IF EXISTS tracking_assessment_rollup_write ON tracking_assessment",
    f"""CREATE TRIGGER tracking_assessment_rollup_write
    AFTER INSERT OR DELETE OR UPDATE OF {_ASSESSMENT_COLUMNS} ON tracking_assessment
    FOR EACH ROW EXECUTE FUNCTION tracking_trace_child_mark()""",
]
POSTGRESQL_DROP = [
    "DROP TRIGGER IF EXISTS tracking_span_rollup_insert ON tracking_span",
    "DROP TRIGGER IF EXISTS tracking_span_rollup_delete ON tracking_span",
    "DROP TRIGGER IF EXISTS tracking_span_rollup_update ON tracking_span",
    "DROP TRIGGER IF EXISTS tracking_assessment_rollup_write ON tracking_assessment",
    "DROP FUNCTION IF EXISTS tracking_trace_child_mark()",
]
