"""QueryTraceMetrics (`POST /api/3.0/mlflow/traces/metrics`) against a Python reference over
the same rows: every aggregation, dimension and filter MLflow's server supports, time buckets,
the hourly rollups with raw partial hours at the range's ends, and rollups following every
kind of write to the traces (the triggers)."""

from __future__ import annotations

import io
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numpy
import pytest
from django.db import connection

from tests.rows import make_span, make_trace
from tests.tracking.test_mlflow_api import error_of, post
from tracking import rollups, trace_metrics
from tracking.models import (
    Assessment,
    AssessmentKind,
    Experiment,
    RollupChange,
    Trace,
    TraceRollup,
)

FEEDBACK, EXPECTATION = AssessmentKind.FEEDBACK, AssessmentKind.EXPECTATION
URL = "/api/3.0/mlflow/traces/metrics"
DAY0 = datetime(2026, 3, 1, tzinfo=UTC)
HOUR = 3_600_000


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.fixture
def experiment(db) -> Experiment:
    return Experiment.objects.create(name="metrics")


@pytest.fixture
def traces(experiment) -> list[Trace]:
    """60 traces over three days, some exactly on an hour, of two versions and two names."""
    rng = random.Random(7)
    made = []
    for n in range(60):
        moment = DAY0 + timedelta(minutes=rng.randrange(0, 3 * 24 * 60))
        if n % 7 == 0:
            moment = moment.replace(minute=0, second=0)  # on the hour, to the microsecond
        else:
            moment += timedelta(microseconds=rng.randrange(0, 60_000_000))
        tokens = None if n % 5 == 0 else rng.randrange(10, 500)
        made.append(
            make_trace(
                experiment,
                n,
                name=["agent", "retriever"][n % 2],
                state=["OK", "OK", "ERROR"][n % 3],
                model_id=["m-1", "m-2", ""][n % 3 if n % 4 else 0],
                request_time=moment,
                duration_ns=rng.randrange(1, 5_000) * 1_000_000 + rng.randrange(0, 999_999),
                total_tokens=tokens,
                input_tokens=None if tokens is None else tokens // 3,
                output_tokens=None if tokens is None else tokens - tokens // 3,
                cost=None if n % 4 == 1 else rng.random() / 100,
                session_id=f"s-{n % 9}" if n % 2 else None,
            )
        )
    return made


def metrics(client, experiment, **body) -> list[dict]:
    body = {"experiment_ids": [str(experiment.pk)], "view_type": "TRACES", **body}
    response = post(client, URL, body)
    assert response.status_code == 200, response.content
    return response.json().get("data_points", [])


def as_table(points: list[dict]) -> dict[tuple, dict[str, float]]:
    return {tuple(sorted(p.get("dimensions", {}).items())): p["values"] for p in points}


def trace_value(trace: Trace, metric: str) -> float | None:
    if metric == "latency":
        return None if trace.duration_ns is None else trace.duration_ns / 1e6
    if metric == "total_cost":
        return trace.cost
    if metric == "trace_count":
        return 1
    return getattr(trace, metric)


def reference(traces, metric, aggregations, dimensions=(), interval=None, start=None, end=None):
    """What MLflow's SQL store answers, computed in Python."""
    groups = defaultdict(list)
    columns = {"trace_name": "name", "trace_status": "state", "model_id": "model_id"}
    for trace in traces:
        at = ms(trace.request_time)
        if (start is not None and at < start) or (end is not None and at > end):
            continue
        value = trace_value(trace, metric)
        if value is None:
            continue
        key = []
        if interval:
            bucket = at // (interval * 1000) * interval * 1000
            key.append(("time_bucket", datetime.fromtimestamp(bucket / 1000, UTC).isoformat()))
        key += [(d, getattr(trace, columns[d])) for d in dimensions]
        if any(v in (None, "") for _, v in key):
            continue
        groups[tuple(sorted(key))].append(value)
    table = {}
    for key, values in groups.items():
        row = {}
        for aggregation in aggregations:
            kind = aggregation["aggregation_type"]
            if kind == "COUNT":
                row["COUNT"] = float(len(values))
            elif kind == "SUM":
                row["SUM"] = sum(values)
            elif kind == "AVG":
                row["AVG"] = sum(values) / len(values)
            elif kind == "MIN":
                row["MIN"] = min(values)
            elif kind == "MAX":
                row["MAX"] = max(values)
            else:
                q = aggregation["percentile_value"]
                row[f"P{float(q)}"] = float(numpy.percentile(values, q))
        table[key] = row
    return table


def approx_table(table):
    return {
        k: {name: pytest.approx(v, rel=1e-9) for name, v in row.items()} for k, row in table.items()
    }


COUNT = [{"aggregation_type": "COUNT"}]
STATS = [{"aggregation_type": t} for t in ("AVG", "MIN", "MAX")]
SUMMED = [{"aggregation_type": t} for t in ("SUM", "AVG", "MIN", "MAX")]
P = [{"aggregation_type": "PERCENTILE", "percentile_value": q} for q in (50, 95, 99.9)]


@pytest.mark.parametrize(
    ("metric", "aggregations", "dimensions"),
    [
        ("trace_count", COUNT, []),
        ("trace_count", COUNT, ["trace_status"]),
        ("trace_count", COUNT, ["model_id", "trace_name", "trace_status"]),
        ("latency", STATS, ["trace_name"]),
        ("latency", STATS + P, ["model_id"]),
        ("total_tokens", SUMMED, []),
        ("input_tokens", SUMMED + P[:1], ["trace_name"]),
        ("output_tokens", SUMMED, ["model_id"]),
        ("total_cost", SUMMED + P[1:2], ["model_id"]),
    ],
)
@pytest.mark.parametrize(
    ("interval", "start", "end"),
    [
        (None, None, None),
        (86_400, ms(DAY0), ms(DAY0 + timedelta(days=3)) - 1),  # whole days: rollups only
        # Ranges that begin and end inside an hour: the partial hours are read raw.
        (3600 * 6, ms(DAY0) + 1_234_567, ms(DAY0 + timedelta(days=2)) + 2_345_678),
        (3600, ms(DAY0 + timedelta(hours=5)) + 1, ms(DAY0 + timedelta(hours=30)) - 1),
        (60, ms(DAY0), ms(DAY0 + timedelta(days=3))),  # minutes: no rollup serves them
        (None, ms(DAY0 + timedelta(minutes=90)), None),
    ],
)
def test_answers_match_the_reference(
    client, experiment, traces, metric, aggregations, dimensions, interval, start, end
):
    body = {"metric_name": metric, "aggregations": aggregations, "dimensions": dimensions}
    if interval:
        body["time_interval_seconds"] = interval
    if start is not None:
        body["start_time_ms"] = start
    if end is not None:
        body["end_time_ms"] = end
    got = as_table(metrics(client, experiment, **body))
    expected = reference(traces, metric, aggregations, dimensions, interval, start, end)
    assert got == approx_table(expected)


def test_buckets_are_ordered_and_iso_utc(client, experiment, traces):
    body = {
        "metric_name": "trace_count",
        "aggregations": COUNT,
        "time_interval_seconds": 86_400,
        "start_time_ms": ms(DAY0),
        "end_time_ms": ms(DAY0 + timedelta(days=3)),
    }
    points = metrics(client, experiment, **body)
    assert [p["dimensions"]["time_bucket"] for p in points] == [
        "2026-03-01T00:00:00+00:00",
        "2026-03-02T00:00:00+00:00",
        "2026-03-03T00:00:00+00:00",
    ]
    assert sum(p["values"]["COUNT"] for p in points) == 60


def test_sessions_are_counted_once(client, experiment, traces):
    got = metrics(client, experiment, metric_name="session_count", aggregations=COUNT)
    assert got == [{"metric_name": "session_count", "values": {"COUNT": 9.0}}]


def test_no_traces_count_zero_and_average_nothing(client, experiment):
    assert metrics(client, experiment, metric_name="trace_count", aggregations=COUNT) == [
        {"metric_name": "trace_count", "values": {"COUNT": 0.0}}
    ]
    assert metrics(client, experiment, metric_name="latency", aggregations=STATS) == []


@pytest.mark.parametrize(
    ("filters", "keep"),
    [
        (["trace.status = 'ERROR'"], lambda t: t.state == "ERROR"),
        (["trace.tag.mlflow.traceName = 'agent'"], lambda t: t.name == "agent"),
        (["trace.metadata.mlflow.modelId = 'm-2'"], lambda t: t.model_id == "m-2"),
        (
            ["trace.status = 'OK'", 'trace.metadata.`mlflow.modelId` = "m-1"'],
            lambda t: t.state == "OK" and t.model_id == "m-1",
        ),
        (["trace.metadata.mlflow.trace.session = 's-3'"], lambda t: t.session_id == "s-3"),
    ],
)
def test_filters(client, experiment, traces, filters, keep):
    body = {"metric_name": "latency", "aggregations": STATS, "filters": filters}
    got = as_table(metrics(client, experiment, **body))
    assert got == approx_table(reference([t for t in traces if keep(t)], "latency", STATS))


def test_tag_and_metadata_filters(client, experiment):
    make_trace(experiment, 1, tags={"env": "prod"}, metadata={"team": "a"})
    make_trace(experiment, 2, tags={"env": "dev"}, metadata={"team": "a"})
    count = {"metric_name": "trace_count", "aggregations": COUNT}
    assert metrics(client, experiment, **count, filters=["trace.tag.env = 'prod'"])[0][
        "values"
    ] == {"COUNT": 1.0}
    assert metrics(client, experiment, **count, filters=["trace.metadata.team = 'a'"])[0][
        "values"
    ] == {"COUNT": 2.0}


def test_rollups_follow_every_write(client, experiment, traces):
    whole = {
        "metric_name": "latency",
        "aggregations": [{"aggregation_type": "MAX"}, {"aggregation_type": "AVG"}],
        "dimensions": ["model_id"],
        "time_interval_seconds": 86_400,
        "start_time_ms": ms(DAY0),
        "end_time_ms": ms(DAY0 + timedelta(days=3)) - 1,
    }

    def check() -> None:
        current = list(Trace.objects.all())
        expected = reference(current, "latency", whole["aggregations"], ["model_id"], 86_400)
        assert as_table(metrics(client, experiment, **whole)) == approx_table(expected)

    check()
    # The read claimed and recomputed every hour of its experiment (another test's worker may
    # have left changes of other experiments behind: they are not this read's).
    assert not RollupChange.objects.filter(experiment_id=experiment.pk).exists()
    assert TraceRollup.objects.filter(experiment=experiment).exists()
    # An UPDATE through the ORM, a bulk UPDATE, a move to another day, a DELETE, an INSERT.
    slowest = traces[3]
    slowest.duration_ns = 10**12
    slowest.save()
    check()
    Trace.objects.filter(model_id="m-1").update(model_id="m-2")
    check()
    Trace.objects.filter(pk=traces[4].pk).update(request_time=DAY0 + timedelta(days=2, hours=3))
    check()
    Trace.objects.filter(pk__in=[t.pk for t in traces[:10]]).delete()
    check()
    make_trace(experiment, 999, request_time=DAY0 + timedelta(hours=1), duration_ns=7 * 10**12)
    check()


def test_unwatched_columns_mark_nothing(experiment, traces):
    rollups.refresh()
    changes = RollupChange.objects.filter(experiment_id=experiment.pk)
    Trace.objects.filter(pk=traces[0].pk).update(response_preview="new", span_count=9)
    assert not changes.exists()
    Trace.objects.filter(pk=traces[0].pk).update(state="ERROR" if traces[0].state == "OK" else "OK")
    assert changes.count() == 1


def test_rebuild_recomputes_from_scratch(experiment, traces):
    rollups.refresh()
    TraceRollup.objects.update(traces=0)  # corrupted
    rollups.rebuild()
    for period in (1, 24):  # hours, and days summed from them
        rows = TraceRollup.objects.filter(period_hours=period)
        assert sum(rows.values_list("traces", flat=True)) == 60


D, H = rollups.DAY_MS, rollups.HOUR_MS


@pytest.mark.parametrize(
    ("start", "end", "segments"),
    [
        (None, None, [(None, None, D)]),
        (0, 3 * D, [(0, 3 * D, D)]),
        (5, 3 * D, [(5, H, None), (H, D, H), (D, 3 * D, D)]),
        (
            D - H,
            2 * D + 2 * H + 7,
            [
                (D - H, D, H),
                (D, 2 * D, D),
                (2 * D, 2 * D + 2 * H, H),
                (2 * D + 2 * H, 2 * D + 2 * H + 7, None),
            ],
        ),
        (H + 1, 2 * H - 1, [(H + 1, 2 * H - 1, None)]),
        (None, D + H, [(None, D, D), (D, D + H, H)]),
        (7, 7, []),
    ],
)
def test_plan_cuts_ranges_into_days_hours_and_raw_ends(start, end, segments):
    assert trace_metrics.plan(start, end, rollups.PERIODS_MS) == segments


def test_spans_view(client, experiment):
    trace = make_trace(experiment, 1)
    start = ms(trace.request_time) * 1_000_000
    cost = {"mlflow.llm.cost": {"input_cost": 0.001, "output_cost": 0.002, "total_cost": 0.003}}
    model = {"mlflow.llm.model": "gpt-4o-mini", "mlflow.llm.provider": "openai"}
    make_span(trace, "a" * 16, start, span_type="CHAIN", end_ns=start + 50_000_000)
    make_span(
        trace, "b" * 16, start, "a" * 16, span_type="CHAT_MODEL", attributes={**cost, **model}
    )
    make_span(
        trace, "c" * 16, start, "a" * 16, span_type="CHAT_MODEL", attributes={**cost, **model}
    )
    junk = {"mlflow.llm.cost": {"total_cost": "lots"}, "mlflow.llm.model": "gpt-4o-mini"}
    make_span(trace, "d" * 16, start, "a" * 16, span_type="CHAT_MODEL", attributes=junk)
    spans = {"view_type": "SPANS"}
    got = metrics(
        client,
        experiment,
        **spans,
        metric_name="span_count",
        aggregations=COUNT,
        dimensions=["span_type", "span_model_name"],
    )
    assert as_table(got) == {
        (("span_model_name", "gpt-4o-mini"), ("span_type", "CHAT_MODEL")): {"COUNT": 3.0}
    }
    got = metrics(
        client,
        experiment,
        **spans,
        metric_name="total_cost",
        aggregations=[{"aggregation_type": "SUM"}],
        dimensions=["span_model_provider"],
    )
    assert as_table(got) == {(("span_model_provider", "openai"),): {"SUM": pytest.approx(0.006)}}
    got = metrics(
        client,
        experiment,
        **spans,
        metric_name="latency",
        aggregations=[{"aggregation_type": "MAX"}],
        filters=["span.type = 'CHAIN'"],
    )
    assert got == [{"metric_name": "latency", "values": {"MAX": 50.0}}]


def test_assessments_view(client, experiment):
    first, second = make_trace(experiment, 1, model_id="m-1"), make_trace(experiment, 2)
    for trace, value in [(first, True), (second, False), (first, "yes"), (second, 0.25)]:
        Assessment.objects.create(trace=trace, name="good", kind=FEEDBACK, value=value)
    Assessment.objects.create(trace=first, name="good", kind=FEEDBACK, value=1.0, valid=False)
    Assessment.objects.create(trace=first, name="note", kind=FEEDBACK, value="long text")
    Assessment.objects.create(trace=first, name="answer", kind=EXPECTATION, value={"a": 1})
    view = {"view_type": "ASSESSMENTS"}
    got = metrics(
        client,
        experiment,
        **view,
        metric_name="assessment_value",
        aggregations=[{"aggregation_type": "AVG"}, {"aggregation_type": "MIN"}],
        dimensions=["assessment_name"],
    )
    assert as_table(got) == {
        (("assessment_name", "good"),): {"AVG": pytest.approx(2.25 / 4), "MIN": 0.0}
    }
    got = metrics(
        client,
        experiment,
        **view,
        metric_name="assessment_count",
        aggregations=COUNT,
        dimensions=["assessment_value"],
        filters=["assessment.name = 'good'"],
    )
    assert as_table(got) == {
        (("assessment_value", v),): {"COUNT": 1.0} for v in ("true", "false", '"yes"', "0.25")
    }
    got = metrics(
        client,
        experiment,
        **view,
        metric_name="assessment_count",
        aggregations=COUNT,
        dimensions=["model_id"],
        filters=["assessment.type = 'feedback'"],
    )
    assert as_table(got) == {(("model_id", "m-1"),): {"COUNT": 3.0}}


def test_max_results_limits_groups_in_order(client, experiment, traces):
    body = {"metric_name": "trace_count", "aggregations": COUNT, "dimensions": ["model_id"]}
    got = metrics(client, experiment, **body, max_results=1)
    assert [p["dimensions"] for p in got] == [{"model_id": "m-1"}]


def test_unreadable_or_missing_experiments_count_nothing(client, experiment, traces):
    body = {
        "experiment_ids": ["987654"],
        "view_type": "TRACES",
        "metric_name": "trace_count",
        "aggregations": COUNT,
    }
    response = post(client, URL, body)
    assert response.status_code in (200, 404)
    if response.status_code == 200:
        assert response.json()["data_points"] == [
            {"metric_name": "trace_count", "values": {"COUNT": 0.0}}
        ]


BASE = {"view_type": "TRACES", "metric_name": "trace_count", "aggregations": COUNT}


@pytest.mark.parametrize(
    "changes",
    [
        {"experiment_ids": None},
        {"experiment_ids": "1"},
        {"experiment_ids": ["x"]},
        {"view_type": None},
        {"view_type": "TABLES"},
        {"view_type": 9},
        {"metric_name": None},
        {"metric_name": "nope"},
        {"metric_name": ["trace_count"]},
        {"aggregations": []},
        {"aggregations": None},
        {"aggregations": "COUNT"},
        {"aggregations": [{"aggregation_type": "SUM"}]},
        {"aggregations": [{"aggregation_type": "BOGUS"}]},
        {"aggregations": [{}]},
        {"aggregations": [{"aggregation_type": "COUNT", "percentile_value": 5}]},
        {"metric_name": "latency", "aggregations": [{"aggregation_type": "PERCENTILE"}]},
        {
            "metric_name": "latency",
            "aggregations": [{"aggregation_type": "PERCENTILE", "percentile_value": 101}],
        },
        {
            "metric_name": "latency",
            "aggregations": [{"aggregation_type": "PERCENTILE", "percentile_value": "x"}],
        },
        {"dimensions": ["span_name"]},
        {"dimensions": "trace_name"},
        {"dimensions": ["trace_name", "trace_name"]},
        {"filters": ["trace.bogus = 'x'"]},
        {"filters": ["trace.status != 'OK'"]},
        {"filters": ["trace.status = OK"]},
        {"filters": ["trace.tag = 'x'"]},
        {"filters": ["trace.status.key = 'x'"]},
        {"filters": ["span.name = 'x'"]},
        {"filters": ["nonsense"]},
        {"filters": ["trace.status = 'OK' AND trace.status = 'ERROR'"]},
        {"filters": [7]},
        {"time_interval_seconds": 60},
        {"time_interval_seconds": -60, "start_time_ms": 0, "end_time_ms": 1},
        {"time_interval_seconds": "soon", "start_time_ms": 0, "end_time_ms": 1},
        {"start_time_ms": "yesterday"},
        {"start_time_ms": 0, "end_time_ms": 10**16},
        {"time_interval_seconds": 7 * 10**16, "start_time_ms": 0, "end_time_ms": 1},
        {"max_results": 0},
        {"max_results": "many"},
    ],
)
def test_bad_input_is_refused(client, experiment, traces, changes):
    body = {"experiment_ids": [str(experiment.pk)], **BASE, **changes}
    body = {k: v for k, v in body.items() if v is not None}
    before = TraceRollup.objects.count(), Trace.objects.count()
    assert error_of(post(client, URL, body)) == (400, "INVALID_PARAMETER_VALUE")
    assert (TraceRollup.objects.count(), Trace.objects.count()) == before


def test_the_beat_task_and_the_command_refresh_and_rebuild(experiment, traces, settings):
    from django.core.management import call_command

    from tracking.tasks import refresh_trace_rollups

    assert settings.CELERY_BEAT_SCHEDULE["refresh-trace-rollups"]["task"] == (
        "tracking.refresh_trace_rollups"
    )
    assert refresh_trace_rollups() > 0
    assert refresh_trace_rollups() == 0  # a second run finds nothing to do
    TraceRollup.objects.filter(period_hours=24).delete()
    call_command("rebuild_trace_rollups", "--experiment", str(experiment.pk), stdout=io.StringIO())
    days = TraceRollup.objects.filter(period_hours=24)
    assert sum(days.values_list("traces", flat=True)) == 60


def test_a_bulk_refresh_leaves_the_planner_the_rollups_row_counts(experiment, traces, monkeypatch):
    """Without them PostgreSQL sorts every rollup row it groups instead of hashing them."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's planner statistics; SQLite plans these reads by their index")
    monkeypatch.setattr(rollups, "ANALYZE_AFTER_HOURS", 10)
    assert rollups.rebuild([experiment.pk]) >= 10

    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'tracking_tracerollup'")
        assert cursor.fetchone()[0] == TraceRollup.objects.count()
