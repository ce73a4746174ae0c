"""The overview's data (tracking/overview.py): ranges and UTC buckets, every series against a
Python reference over the same rows, latency percentiles from histograms within their stated
bound, the top-N version split, scoping and access, and a query count that does not grow with
buckets or versions."""

from __future__ import annotations

import itertools
import json
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone

import numpy
import pytest
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone as django_timezone

from access.models import ExperimentGrant, Level
from access.rules import ADMIN, access_for_user
from tests.rows import make_model, make_span, make_trace
from tracking import ingest, rollups
from tracking.models import Assessment, AssessmentKind, Trace
from tracking.overview import OTHER, OverviewError, Range, overview

NOW = datetime(2026, 3, 4, 10, 30, tzinfo=UTC)
VERSIONS = [f"m-{n}" for n in range(7)]  # seven versions and traces of none
BOUND = rollups.LATENCY_REL_ERROR


def parse(query: str, now: datetime = NOW) -> Range:
    return Range.parse(QueryDict(query), now=now)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.fixture
def traces(experiment) -> list[Trace]:
    """300 traces over the three days before NOW: versions of falling popularity (m-0 most),
    some of no version, every 7th an error with a failing tool span, sessions, costs."""
    rng = random.Random(19)
    make_model(experiment, name="support-agent", model_id="m-0")
    made = []
    for n in range(300):
        moment = NOW - timedelta(milliseconds=rng.randrange(0, 3 * 86_400_000))
        version = "" if n % 23 == 0 else VERSIONS[min(int(rng.expovariate(0.5)), 6)]
        error = n % 7 == 0
        trace = make_trace(
            experiment,
            n,
            name="agent",
            state="ERROR" if error else "OK",
            model_id=version,
            request_time=moment,
            duration_ns=int(rng.lognormvariate(6.5, 1.0) * 1_000_000),
            total_tokens=rng.randrange(10, 900),
            cost=None if n % 5 == 0 else rng.random() / 100,
            session_id=f"s-{n % 40}" if n % 2 else None,
        )
        start = ms(moment) * 1_000_000
        make_span(
            trace,
            "a1",
            start,
            name="search_docs" if n % 2 else "lookup_order",
            span_type="TOOL",
            status="ERROR" if error else "OK",
            end_ns=start + (n % 50 + 1) * 1_000_000,
            events=[
                {
                    "name": "exception",
                    "attributes": {"exception.type": "TimeoutError" if n % 2 else "KeyError"},
                }
            ]
            if error
            else [],
        )
        made.append(trace)
    return made


def assess(trace: Trace, name: str, value) -> Assessment:
    return Assessment.objects.create(
        trace=trace, name=name, kind=AssessmentKind.FEEDBACK, value=value
    )


def in_bucket(rng: Range, trace: Trace, start: int) -> bool:
    at = ms(trace.request_time)
    return rng.start_ms <= at < rng.end_ms and start <= at < start + rng.bucket_ms


# --- Ranges and buckets -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "bucket_ms", "count"),
    [
        ("1h", 120_000, 30),
        ("6h", 900_000, 24),
        ("24h", 3_600_000, 24),
        ("7d", 6 * 3_600_000, 28),
        ("30d", 86_400_000, 30),
        ("90d", 3 * 86_400_000, 30),
    ],
)
def test_each_preset_gets_a_bucket_that_fits(name, bucket_ms, count):
    rng = parse(f"range={name}")
    assert rng.name == name
    assert rng.end == NOW
    assert rng.bucket_ms == bucket_ms
    starts = rng.bucket_starts()
    # Epoch-aligned: the first bucket may start before the range, never after it.
    assert starts[0] <= rng.start_ms < starts[0] + bucket_ms
    assert all(s % bucket_ms == 0 for s in starts)
    assert starts[-1] < rng.end_ms <= starts[-1] + bucket_ms
    assert count <= len(starts) <= count + 1


def test_no_range_is_seven_days():
    assert parse("").name == "7d"


def test_a_custom_range_with_offsets_is_stored_in_utc():
    rng = parse("start=2026-03-01T02:00:00%2B02:00&end=2026-03-02T00:00:00Z")
    assert rng.start == datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    assert rng.end == datetime(2026, 3, 2, tzinfo=UTC)
    assert rng.name == "custom"
    assert rng.bucket_ms == 3_600_000
    # A time without an offset is UTC.
    assert parse("start=2026-03-01T00:00&end=2026-03-02").start == rng.start


def test_a_range_over_a_dst_change_has_equal_utc_buckets():
    # Europe's clocks went forward on 2026-03-29: buckets stay 24 UTC hours long.
    rng = parse("start=2026-03-28T00:00:00%2B01:00&end=2026-03-31T00:00:00%2B02:00")
    starts = rng.bucket_starts()
    assert {b - a for a, b in itertools.pairwise(starts)} == {rng.bucket_ms}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("range=2w", "range must be one of"),
        ("start=2026-03-01", "needs both start and end"),
        ("start=2026-03-02&end=2026-03-01", "before its end"),
        ("start=2025-01-01&end=2026-03-01", "at most 366 days"),
        ("start=yesterday&end=2026-03-01", "ISO date"),
    ],
)
def test_bad_ranges_are_refused_with_a_message(query, message):
    with pytest.raises(OverviewError, match=message):
        parse(query)


# --- The series against a reference -----------------------------------------------------------


def test_usage_errors_tokens_and_cost_match_the_rows(traces, experiment):
    rng = parse("range=7d")
    found = overview(ADMIN, experiment_ids=[experiment.pk], model_id=None, rng=rng)
    top = [key for key, _ in found.versions if key != OTHER]
    assert len(found.buckets) == len(rng.bucket_starts())
    for i, start in enumerate(rng.bucket_starts()):
        in_it = [t for t in traces if in_bucket(rng, t, start)]
        for series in found.traces:
            mine = [t for t in in_it if (t.model_id in top) == (series.key != OTHER)]
            if series.key != OTHER:
                mine = [t for t in mine if t.model_id == series.key]
            assert series.values[i] == len(mine)
        tokens = {s.key: s.values[i] for s in found.tokens}
        assert sum(tokens.values()) == sum(t.total_tokens for t in in_it)
        cost = sum(s.values[i] for s in found.cost)
        assert cost == pytest.approx(sum(t.cost or 0 for t in in_it))
        everyone = {s.key: s.values[i] for s in found.error_rate}["all"]
        errors = sum(t.state == "ERROR" for t in in_it)
        assert everyone == (pytest.approx(errors / len(in_it)) if in_it else None)
        per_trace = {s.key: s.values[i] for s in found.cost_per_trace}["all"]
        if in_it:
            assert per_trace == pytest.approx(sum(t.cost or 0 for t in in_it) / len(in_it))
    # Sessions started: each once, in the bucket and version of its first trace.
    first: dict[str, Trace] = {}
    for t in sorted(traces, key=lambda t: (t.request_time, t.pk)):
        if t.session_id:
            first.setdefault(t.session_id, t)
    for series in found.sessions:
        for i, start in enumerate(rng.bucket_starts()):
            mine = [
                t
                for t in first.values()
                if in_bucket(rng, t, start)
                and (t.model_id == series.key or (series.key == OTHER and t.model_id not in top))
            ]
            assert series.values[i] == len(mine)
    assert found.freshness is not None


def test_empty_buckets_are_zero_for_counts_and_none_for_rates(traces, experiment):
    # A range a week before any trace: every bucket is there, and empty.
    rng = parse("range=24h", now=NOW - timedelta(days=10))
    found = overview(ADMIN, experiment_ids=[experiment.pk], model_id=None, rng=rng)
    assert found.versions == []
    assert len(found.buckets) == 25  # 24 hours from half past: 23 whole, two halves
    assert found.latency["p95"][-1].key == "all"
    assert found.latency["p95"][-1].values == [None] * 25
    assert found.error_rate[-1].values == [None] * 25
    assert found.top_errors == [] and found.tools == [] and found.quality == []


def test_the_top_five_versions_are_split_out_and_the_rest_grouped(traces, experiment):
    rng = parse("range=7d")
    found = overview(ADMIN, experiment_ids=[experiment.pk], model_id=None, rng=rng)
    counts = defaultdict(int)
    for t in traces:
        counts[t.model_id] += 1
    ranked = sorted(counts, key=lambda v: (-counts[v], v))
    assert [key for key, _ in found.versions] == [*ranked[:5], OTHER]
    labels = dict(found.versions)
    assert labels["m-0"] == "support-agent · m-0"
    assert labels[OTHER] == "Other versions"
    if "" in labels:
        assert labels[""] == "No version"
    other = next(s for s in found.traces if s.key == OTHER)
    assert sum(other.values) == sum(counts[v] for v in ranked[5:])


def test_a_model_scope_reads_only_that_version(traces, experiment):
    rng = parse("range=7d")
    found = overview(ADMIN, experiment_ids=[experiment.pk], model_id="m-1", rng=rng)
    assert [key for key, _ in found.versions] == ["m-1"]
    assert sum(found.traces[0].values) == sum(t.model_id == "m-1" for t in traces)
    assert sum(t.calls for t in found.tools) == sum(t.model_id == "m-1" for t in traces)


@pytest.mark.parametrize("name", ["p50", "p95", "p99"])
@pytest.mark.parametrize("period", ["7d", "90d"])  # hour rows; 3-day, day and hour rows
def test_latency_percentiles_are_within_the_bound_of_the_exact_ones(
    traces, experiment, name, period
):
    rng = parse(f"range={period}")
    found = overview(ADMIN, experiment_ids=[experiment.pk], model_id=None, rng=rng)
    assert found.approximate and found.latency_error == BOUND < 0.05
    percent = float(name[1:])
    everyone = next(s for s in found.latency[name] if s.key == "all")
    m0 = next(s for s in found.latency[name] if s.key == "m-0")
    checked = 0
    for i, start in enumerate(rng.bucket_starts()):
        in_it = [t.duration_ns / 1e6 for t in traces if in_bucket(rng, t, start)]
        if not in_it:
            assert everyone.values[i] is None
            continue
        exact = numpy.percentile(in_it, percent)  # linear, as percentile_cont
        assert everyone.values[i] == pytest.approx(exact, rel=BOUND)
        mine = [
            t.duration_ns / 1e6 for t in traces if in_bucket(rng, t, start) and t.model_id == "m-0"
        ]
        if mine:
            assert m0.values[i] == pytest.approx(numpy.percentile(mine, percent), rel=BOUND)
        checked += 1
    assert checked >= (10 if period == "7d" else 2)
    if period == "90d":  # a whole 3-day period of traces was read from its rollup rows
        assert rollups.TraceLatencyBin.objects.filter(period_hours=72).exists()


def test_percentiles_of_a_histogram_are_within_the_bound_for_any_data():
    rng = random.Random(3)
    for size in (1, 2, 5, 100, 1000):
        values = [rng.lognormvariate(5, 2) + 1 for _ in range(size)]
        bins = defaultdict(int)
        for value in values:
            bins[1 + int(numpy.floor(numpy.log(value) / numpy.log(rollups.LATENCY_BIN_RATIO)))] += 1
        for percent in (0, 50, 95, 99, 100):
            exact = numpy.percentile(values, percent)
            assert rollups.percentile(bins, percent) == pytest.approx(exact, rel=BOUND)
    assert rollups.percentile({}, 50) is None
    assert rollups.percentile({0: 3}, 50) == 0.5  # under 1 ms: within half a millisecond


def test_partial_edges_and_rollups_add_up(traces, experiment):
    """A range cut mid-hour: whole hours come from TraceLatencyBin, the ends from the rows."""
    rng = parse("start=2026-03-01T10:17:00&end=2026-03-04T09:43:00")
    found = overview(ADMIN, experiment_ids=[experiment.pk], model_id=None, rng=rng)
    assert rollups.TraceLatencyBin.objects.filter(experiment=experiment).exists()
    within = [t for t in traces if rng.start_ms <= ms(t.request_time) < rng.end_ms]
    assert sum(v for s in found.traces for v in s.values) == len(within)


def test_latency_bins_follow_new_traces(traces, experiment):
    rng = parse("range=7d")
    before = overview(ADMIN, experiment_ids=[experiment.pk], model_id=None, rng=rng)
    make_trace(
        experiment,
        10_000,
        model_id="m-0",
        request_time=NOW - timedelta(days=2, hours=1),
        duration_ns=10**12,  # far slower than any other
    )
    after = overview(ADMIN, experiment_ids=[experiment.pk], model_id=None, rng=rng)
    p99 = [s for s in (before.latency["p99"][-1], after.latency["p99"][-1])]
    assert max(v or 0 for v in p99[1].values) > max(v or 0 for v in p99[0].values)


def test_top_errors_and_tools(traces, experiment):
    rng = parse("range=7d")
    found = overview(ADMIN, experiment_ids=[experiment.pk], model_id=None, rng=rng)
    failed = [t for t in traces if t.state == "ERROR"]
    assert {(e.span_name, e.exception_type) for e in found.top_errors} == {
        ("search_docs", "TimeoutError"),
        ("lookup_order", "KeyError"),
    }
    assert sum(e.count for e in found.top_errors) == len(failed)
    assert all(e.last_trace_id.startswith("tr-") for e in found.top_errors)
    tools = {t.name: t for t in found.tools}
    for name, parity in (("search_docs", 1), ("lookup_order", 0)):
        mine = [t for t in traces if t.pk and int(t.trace_id[3:], 16) % 2 == parity]
        assert tools[name].calls == len(mine)
        errors = sum(t.state == "ERROR" for t in mine)
        assert tools[name].error_rate == pytest.approx(errors / len(mine))
        durations = [int(t.trace_id[3:], 16) % 50 + 1 for t in mine]
        assert tools[name].p95_ms == pytest.approx(numpy.percentile(durations, 95), rel=BOUND)


def test_quality_is_a_pass_rate_or_a_mean_per_version(traces, experiment):
    for n, trace in enumerate(traces[:60]):
        assess(trace, "correct", n % 3 != 0)
        assess(trace, "relevance", n % 5 + 0.5)
    assess(traces[0], "ignored", "a sentence, not a number")
    rng = parse("range=7d")
    found = overview(ADMIN, experiment_ids=[experiment.pk], model_id=None, rng=rng)
    rows = {row.name: row for row in found.quality}
    assert set(rows) == {"correct", "relevance"}
    assert rows["correct"].kind == "pass_rate" and rows["relevance"].kind == "mean"
    assert rows["correct"].count == 60
    assert rows["correct"].overall == pytest.approx(sum(n % 3 != 0 for n in range(60)) / 60)
    assert rows["relevance"].overall == pytest.approx(sum(n % 5 + 0.5 for n in range(60)) / 60)
    m0 = next(s for s in rows["correct"].per_version if s.key == "m-0")
    for i, start in enumerate(rng.bucket_starts()):
        mine = [
            n % 3 != 0
            for n, t in enumerate(traces[:60])
            if t.model_id == "m-0" and in_bucket(rng, t, start)
        ]
        assert m0.values[i] == (pytest.approx(sum(mine) / len(mine)) if mine else None)


def store_tool_span(trace: Trace, span_id: str, start_ns: int, *, tool: bool = True) -> None:
    """A failing tool span joining a stored trace, through ingest, the one writer of spans
    (tool=False stores it again as a working LLM span)."""
    ingest.store_trace(
        None,
        [
            {
                "trace_id": trace.trace_id.removeprefix("tr-"),
                "span_id": span_id,
                "parent_span_id": None,
                "name": "send_email",
                "start_time_unix_nano": start_ns,
                "end_time_unix_nano": start_ns + 5_000_000,
                "status": {"code": "STATUS_CODE_ERROR" if tool else "STATUS_CODE_OK"},
                "attributes": {
                    "mlflow.traceRequestId": json.dumps(trace.trace_id),
                    "mlflow.spanType": '"TOOL"' if tool else '"LLM"',
                },
            }
        ],
    )


def test_a_tool_span_joining_a_stored_trace_marks_its_hour(traces, experiment):
    """Nothing else changes on the trace row (it has its info), so only ingest's own mark
    gets the hour recomputed: span inserts have no trigger."""
    Trace.objects.filter(pk=traces[7].pk).update(has_info=True, session_id=None)
    rng = parse("range=30d")
    overview(ADMIN, experiment_ids=[experiment.pk], model_id=None, rng=rng)  # rollups current
    start = ms(traces[7].request_time) * 1_000_000 + 1_000_000

    store_tool_span(traces[7], "c3".rjust(16, "0"), start)

    after = overview(ADMIN, experiment_ids=[experiment.pk], model_id=None, rng=rng)
    assert {t.name: t.calls for t in after.tools}.get("send_email") == 1


def test_assessments_and_spans_added_later_reach_the_rollups(traces, experiment):
    rng = parse("range=30d")
    before = overview(ADMIN, experiment_ids=[experiment.pk], model_id=None, rng=rng)
    assert before.quality == []
    assess(traces[5], "helpful", "yes")
    start = ms(traces[5].request_time) * 1_000_000
    store_tool_span(traces[5], "b2".rjust(16, "0"), start)
    after = overview(ADMIN, experiment_ids=[experiment.pk], model_id=None, rng=rng)
    assert [(q.name, q.kind, q.count, q.overall) for q in after.quality] == [
        ("helpful", "pass_rate", 1, 1.0)
    ]
    assert {t.name: (t.calls, t.error_rate) for t in after.tools}["send_email"] == (1, 1.0)
    assert ("send_email", "") in {(e.span_name, e.exception_type) for e in after.top_errors}
    Assessment.objects.filter(name="helpful").update(valid=False)
    # The same span sent again as a working LLM call: no tool call nor failure is left.
    store_tool_span(traces[5], "b2".rjust(16, "0"), start, tool=False)
    again = overview(ADMIN, experiment_ids=[experiment.pk], model_id=None, rng=rng)
    assert again.quality == [] and "send_email" not in {t.name for t in again.tools}
    # A rebuild from scratch agrees with what the triggers kept.
    rollups.rebuild()
    rebuilt = overview(ADMIN, experiment_ids=[experiment.pk], model_id=None, rng=rng)
    assert rebuilt.tools == again.tools and rebuilt.top_errors == again.top_errors
    assert rebuilt.sessions == again.sessions and rebuilt.latency == again.latency


def test_sessions_started_follow_a_sessions_first_trace(experiment):
    rng = parse("range=24h")

    def started() -> float:
        found = overview(ADMIN, experiment_ids=[experiment.pk], model_id=None, rng=rng)
        return sum(v or 0 for s in found.sessions for v in s.values)

    def hour(hours_ago: int) -> datetime:
        return NOW.replace(minute=10) - timedelta(hours=hours_ago)

    # A session id set by a later trace info (only session_id changes) counts the session.
    info = ingest.TraceInfo("tr-" + "a" * 32, experiment.pk, "OK", hour(5), 1_000_000)
    ingest.store([info])
    assert started() == 0
    info.metadata = {"mlflow.trace.session": "s1"}
    ingest.store([info])
    assert started() == 1
    # Deleting a session's first trace (outside the range, as retention deletes the oldest)
    # starts the session at its next trace, in the range.
    first = make_trace(experiment, 1, request_time=hour(30), session_id="s2")
    make_trace(experiment, 2, request_time=hour(4), session_id="s2")
    assert started() == 1
    first.delete()
    assert started() == 2
    # An earlier turn stored later moves the start out of the range.
    make_trace(experiment, 3, request_time=hour(40), session_id="s2")
    assert started() == 1
    # Moving a trace to another session by an UPDATE moves its session's start too.
    Trace.objects.filter(trace_id="tr-" + "a" * 32).update(session_id="s2")
    assert started() == 0
    rollups.rebuild()
    assert started() == 0


# --- Time zones, access, query counts ---------------------------------------------------------


def test_a_display_time_zone_does_not_shift_buckets(traces, experiment, settings):
    rng = parse("range=7d")
    utc = overview(ADMIN, experiment_ids=[experiment.pk], model_id=None, rng=rng)
    with django_timezone.override(timezone(timedelta(hours=-5))):
        shifted = overview(ADMIN, experiment_ids=[experiment.pk], model_id=None, rng=rng)
    assert shifted.buckets == utc.buckets
    assert all(b.utcoffset() == timedelta(0) for b in shifted.buckets)
    assert [s.values for s in shifted.traces] == [s.values for s in utc.traces]


def test_experiments_the_caller_may_not_read_are_left_out(traces, experiment, charlie, auth_on):
    ExperimentGrant.objects.create(experiment=experiment, level=Level.NONE)  # private
    rng = parse("range=7d")
    found = overview(access_for_user(charlie), experiment_ids=None, model_id=None, rng=rng)
    assert experiment.pk not in found.experiment_ids
    assert sum(v for s in found.traces for v in s.values) == 0
    ExperimentGrant.objects.create(experiment=experiment, user=charlie, level=Level.READ)
    found = overview(access_for_user(charlie), experiment_ids=None, model_id=None, rng=rng)
    assert experiment.pk in found.experiment_ids
    assert sum(v for s in found.traces for v in s.values) == len(traces)


def count_queries(**kwargs) -> int:
    with CaptureQueriesContext(connection) as queries:
        overview(ADMIN, **kwargs)
    return len(queries)


def test_the_query_count_does_not_grow_with_buckets_or_versions(traces, experiment):
    rollups.refresh()  # as the beat task does; a read after writes refreshes first
    week = count_queries(experiment_ids=[experiment.pk], model_id=None, rng=parse("range=7d"))
    for n in range(40):  # forty more versions
        make_trace(experiment, 20_000 + n, model_id=f"x-{n}", request_time=NOW - timedelta(hours=n))
    rollups.refresh()
    more = count_queries(experiment_ids=[experiment.pk], model_id=None, rng=parse("range=7d"))
    month = count_queries(experiment_ids=None, model_id=None, rng=parse("range=30d"))
    # The experiments, one pending check, then each section its rollup rows and raw ends.
    assert week == more == month <= 24
    # Short ranges read no rollups, so ask fewer.
    assert count_queries(experiment_ids=None, model_id=None, rng=parse("range=1h")) <= month


def test_one_page_refreshes_the_rollups_once(traces, experiment):
    assert rollups.pending([experiment.pk])
    with rollups.refreshed([experiment.pk]):
        assert not rollups.RollupChange.objects.filter(experiment_id=experiment.pk).exists()
        make_trace(experiment, 30_000, request_time=NOW - timedelta(hours=1))
        assert not rollups.pending([experiment.pk])  # the page reads one state
    assert rollups.pending([experiment.pk])  # the next page sees the new trace
