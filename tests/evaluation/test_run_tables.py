"""A run's kept table of row summaries: read from the cache while the run is unchanged, and
built again after every kind of write a row depends on (assessments logged, overridden,
amended, retracted; traces linked later; costs set by raw SQL)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bench.evaluation_pages import fill
from evaluation import run_tables as kept
from evaluation.run_tables import run_tables
from tracking.models import Assessment, Run, Trace

pytestmark = pytest.mark.django_db


def _run(run_id: str) -> Run:
    return Run.objects.get(run_id=run_id)


def _first_row(run: Run):
    return run_tables([run])[run.pk].rows[0]


def _exact(run: Run):
    table = run_tables([run])[run.pk]
    return table.rows[0].scores[table.scorers.index("exact")]


def _first_trace(run: Run) -> Trace:
    return run.linked_traces.order_by("request_time", "pk").first()


def test_an_unchanged_run_is_read_from_the_cache_in_two_queries():
    base, other = fill(5, 2)
    runs = [_run(base), _run(other)]
    run_tables(runs)
    with CaptureQueriesContext(connection) as kept:
        tables = run_tables(runs)
    assert len(kept) == 2
    assert [len(tables[run.pk].rows) for run in runs] == [5, 5]


def test_another_process_reads_the_table_from_the_shared_cache_without_building_it():
    base, _ = fill(5, 2)
    run = _run(base)
    built = run_tables([run])[run.pk]
    kept._kept.clear()  # as a process that never showed the run
    with CaptureQueriesContext(connection) as queries:
        table = run_tables([run])[run.pk]
    assert len(queries) == 2
    assert table is not built
    assert [r.trace_id for r in table.rows] == [r.trace_id for r in built.rows]
    assert [r.scores for r in table.rows] == [r.scores for r in built.rows]


def test_a_human_override_shows_and_so_does_retracting_it():
    base, _ = fill(3, 2)
    run = _run(base)
    assert _exact(run).kind == "fail"  # row 0 fails exact in the baseline (bench's fill)
    trace = _first_trace(run)
    judged = Assessment.objects.get(trace=trace, name="exact")
    override = Assessment.objects.record(
        trace, name="exact", kind="feedback", value=True, source_type="HUMAN",
        rationale="a person says so", overrides=judged.assessment_id,
    )  # fmt: skip
    assert _exact(run)[:2] == ("pass", 1.0)
    assert _exact(run).rationale == "a person says so"

    override.retract()
    assert _exact(run).kind == "fail"


def test_an_amended_assessment_shows():
    base, _ = fill(3, 2)
    run = _run(base)
    judged = Assessment.objects.get(trace=_first_trace(run), name="exact")
    assert _exact(run).kind == "fail"
    judged.amend({"value": True}, {})
    assert _exact(run).kind == "pass"


def test_feedback_logged_later_adds_a_scorer():
    base, _ = fill(3, 2)
    run = _run(base)
    assert "tone" not in run_tables([run])[run.pk].scorers
    Assessment.objects.create(
        trace=_first_trace(run), name="tone", kind="feedback", value="polite",
        metadata={"mlflow.assessment.sourceRunId": run.run_id},
    )  # fmt: skip
    table = run_tables([run])[run.pk]
    assert "tone" in table.scorers
    assert table.rows[0].scores[table.scorers.index("tone")].label == "polite"


def test_a_trace_linked_later_adds_a_row():
    base, other = fill(3, 2)
    run = _run(base)
    assert len(run_tables([run])[run.pk].rows) == 3
    run.linked_traces.add(_first_trace(_run(other)))
    assert len(run_tables([run])[run.pk].rows) == 4


def test_a_cost_set_without_touching_the_trace_row_shows():
    base, _ = fill(3, 2)
    run = _run(base)
    assert _first_row(run).cost == pytest.approx(0.001)
    # As ingest.refresh_stored_costs does: an UPDATE of the cost alone, updated_at unchanged.
    Trace.objects.filter(pk=_first_trace(run).pk).update(cost=0.5)
    assert _first_row(run).cost == 0.5


def test_a_deleted_trace_leaves_the_table():
    base, _ = fill(3, 2)
    run = _run(base)
    first = _first_row(run).trace_id
    Trace.objects.filter(trace_id=first).delete()
    rows = run_tables([run])[run.pk].rows
    assert len(rows) == 2 and first not in {row.trace_id for row in rows}


def test_a_kept_comparison_follows_an_override_in_either_run():
    base, other = fill(20, 2)
    runs = [_run(base), _run(other)]
    assert kept.comparison_of(runs).counts()["regression"] == 2  # rows 1 and 11 (bench's fill)
    assert kept.comparison_of(runs) is kept.comparison_of(runs)
    regressed = runs[1].linked_traces.order_by("request_time", "pk")[1]
    judged = Assessment.objects.get(trace=regressed, name="exact")
    Assessment.objects.record(
        regressed, name="exact", kind="feedback", value=True, source_type="HUMAN",
        overrides=judged.assessment_id,
    )  # fmt: skip
    counts = kept.comparison_of(runs).counts()
    assert (counts["regression"], counts["unchanged"]) == (1, 17)


def test_the_pages_work_when_the_cache_is_unreachable(client, settings):
    base, other = fill(3, 2)
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
        }
    }
    kept._kept.clear()
    kept._compared.clear()
    assert client.get(f"/evaluations/{base}/").status_code == 200
    assert client.get(f"/evaluations/compare/?runs={base},{other}").status_code == 200
