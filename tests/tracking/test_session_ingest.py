"""Sessions at ingest: where a trace's session and user come from (MLflow metadata, OTel span
or resource attributes), and the TraceSession rows that sum a session's traces up."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.payloads import trace_info
from tests.tracking.test_otlp import ROOT_ID, TRACE_ID, export, span
from tracking import ingest, otlp
from tracking.models import Experiment, Trace, TraceSession

pytestmark = pytest.mark.django_db


def _info(n: int, experiment: Experiment, **metadata: str) -> dict:
    return trace_info(
        f"tr-{n:032x}",
        experiment.pk,
        trace_metadata=metadata,
        request_time=f"2026-11-21T20:5{n % 10}:00Z",
    )


def test_mlflow_metadata_sets_session_and_user(experiment):
    info = _info(1, experiment, **{"mlflow.trace.session": "s-1", "mlflow.trace.user": "alice"})
    ingest.store_trace(info)
    trace = Trace.objects.get()
    assert (trace.session_id, trace.user_id) == ("s-1", "alice")
    session = TraceSession.objects.get()
    assert (session.session_id, session.user_id, session.turns) == ("s-1", "alice", 1)


@pytest.mark.parametrize("attribute", ["session.id", "gen_ai.conversation.id"])
def test_otel_span_attribute_sets_session_and_copies_it_to_metadata(experiment, attribute):
    request = export(span(attributes={attribute: "conv-7", "user.id": "bob"}))
    otlp.store(otlp.decode_request(request), experiment.pk)
    trace = Trace.objects.get()
    assert (trace.session_id, trace.user_id) == ("conv-7", "bob")
    assert trace.metadata["mlflow.trace.session"] == "conv-7"
    assert trace.metadata["mlflow.trace.user"] == "bob"
    assert TraceSession.objects.get().session_id == "conv-7"


def test_otel_resource_attribute_sets_session(experiment):
    request = export(span(), resource={"session.id": "from-resource", "user.id": 42})
    otlp.store(otlp.decode_request(request), experiment.pk)
    trace = Trace.objects.get()
    assert (trace.session_id, trace.user_id) == ("from-resource", "42")


def test_metadata_wins_over_attributes_and_a_later_info_keeps_the_copy(experiment):
    request = export(span(attributes={"session.id": "otel"}))
    otlp.store(otlp.decode_request(request), experiment.pk)
    trace_id = Trace.objects.get().trace_id
    assert trace_id == "tr-" + TRACE_ID.hex() and ROOT_ID
    # The client's info without a session: the copied metadata stays.
    ingest.store_trace(trace_info(trace_id, experiment.pk))
    assert Trace.objects.get().session_id == "otel"
    ingest.store_trace(
        trace_info(trace_id, experiment.pk, trace_metadata={"mlflow.trace.session": "mlflow"})
    )
    assert Trace.objects.get().session_id == "mlflow"
    # The session moved: the old one has no trace left, so no row.
    assert list(TraceSession.objects.values_list("session_id", flat=True)) == ["mlflow"]


def test_session_row_sums_its_traces(experiment):
    for n, state in enumerate(["OK", "ERROR", "OK"], start=1):
        info = _info(n, experiment, **{"mlflow.trace.session": "s", "mlflow.trace.tokenUsage": (
            '{"input_tokens": 5, "output_tokens": 5, "total_tokens": 10}'
        )})  # fmt: skip
        info["state"] = state
        ingest.store_trace(info)
    ingest.store_trace(_info(4, experiment))  # no session: no row of its own
    session = TraceSession.objects.get()
    assert session.turns == 3
    assert session.error_count == 1
    assert session.total_tokens == 30
    assert session.duration_ns == 3 * 85_000_000
    assert session.first_time.minute == 51 and session.last_time.minute == 53


def test_same_session_id_in_two_experiments_is_two_sessions(experiment):
    other = Experiment.objects.create(name="other")
    ingest.store_trace(_info(1, experiment, **{"mlflow.trace.session": "s"}))
    ingest.store_trace(_info(2, other, **{"mlflow.trace.session": "s"}))
    assert TraceSession.objects.count() == 2


def test_deleting_traces_updates_and_removes_sessions(experiment):
    for n in (1, 2):
        ingest.store_trace(_info(n, experiment, **{"mlflow.trace.session": "s"}))
    Trace.objects.filter(trace_id=f"tr-{1:032x}").delete_with_documents()
    assert TraceSession.objects.get().turns == 1
    Trace.objects.get().delete_with_documents()
    assert not TraceSession.objects.exists()


def test_ingest_without_sessions_never_reads_the_session_table(experiment):
    ingest.store_trace(_info(1, experiment))
    with CaptureQueriesContext(connection) as queries:
        ingest.store_trace(_info(1, experiment, **{"spyglass.x": "1"}))
    assert queries.captured_queries
    assert not [q for q in queries.captured_queries if "tracesession" in q["sql"]]


def test_a_turn_failed_by_the_reaper_counts_as_its_sessions_error(experiment):
    info = _info(1, experiment, **{"mlflow.trace.session": "s"})
    info["state"] = "IN_PROGRESS"
    ingest.store_trace(info)
    assert TraceSession.objects.get().error_count == 0

    Trace.objects.all().fail_unfinished("worker lost")

    assert TraceSession.objects.get().error_count == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_turns_of_one_session_are_all_counted():
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    experiment = Experiment.objects.create(name="busy")

    def send(n: int) -> None:
        try:
            ingest.store_trace(_info(n, experiment, **{"mlflow.trace.session": "busy"}))
        finally:
            connections.close_all()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(send, range(1, 9)))

    assert TraceSession.objects.get().turns == 8


@pytest.mark.django_db(transaction=True)
def test_the_migration_backfills_users_and_sessions_of_stored_traces():
    from django.db.migrations.executor import MigrationExecutor

    before = [("tracking", "0018_assessment_name_idx")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    experiment = apps.get_model("tracking", "Experiment").objects.create(name="old")
    old_trace = apps.get_model("tracking", "Trace").objects
    for n, (session, user, state) in enumerate(
        [("s", "alice", "OK"), ("s", "alice", "ERROR"), (None, "bob", "OK")]
    ):
        metadata = {
            "mlflow.trace.user": user,
            **({"mlflow.trace.session": session} if session else {}),
        }
        old_trace.create(
            trace_id=f"tr-{n:032x}", experiment=experiment, state=state, session_id=session,
            request_time=f"2026-11-2{n}T00:00:00Z", duration_ns=10, metadata=metadata,
        )  # fmt: skip

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert dict(Trace.objects.values_list("trace_id", "user_id"))[f"tr-{2:032x}"] == "bob"
    session = TraceSession.objects.get()
    assert (session.session_id, session.user_id, session.turns) == ("s", "alice", 2)
    assert (session.error_count, session.duration_ns) == (1, 20)
