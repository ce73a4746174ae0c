"""One trace per answer: an agent instrumented with the OpenTelemetry SDK continues the
`traceparent` the playground sends it and exports its own spans over OTLP to the live server;
they land in the playground's trace under the agent call, once each, whichever arrives first.
With the embedded worker (`make run`) and a worker process on Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export import SpanExportResult

from playground import runs
from playground.models import Run, RunStatus
from tests.playground.agent_server import AgentServer
from tests.playground.conftest import chat, wait_for, wait_until_finished
from tracking.models import Experiment, Span, Trace

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("sqlite_shared_reads"),
]


@pytest.fixture
def agent_exports(live_server, agent_server: AgentServer) -> Iterator[AgentServer]:
    """The test agent server, exporting its spans to this test's live server."""
    # transactional_db empties every table between tests, migrations' rows included: OTLP
    # files span-only traces under the default experiment until their info arrives.
    Experiment.objects.get_or_create(
        pk=0, defaults={"name": "Default", "artifact_location": "mlflow-artifacts:/0"}
    )
    agent_server.otlp_url = live_server.url + "/v1/traces"
    yield agent_server
    agent_server.otlp_url = ""


def assert_one_trace_with_the_agent_spans(run: Run, agent_server: AgentServer, path: str) -> None:
    assert run.status == RunStatus.DONE, run.error
    trace = Trace.objects.get(trace_id=run.trace_id)
    assert Trace.objects.count() == 1
    spans = list(Span.objects.filter(trace=trace))
    by_name = {s.name: s for s in spans}
    agent_name = run.agent.name
    assert sorted(by_name) == sorted(
        ["playground", agent_name, f"POST {path}", "predict", "lookup_sources"]
    )
    assert len(spans) == trace.span_count == 5  # a span sent twice is stored once
    root, call, post = by_name["playground"], by_name[agent_name], by_name[f"POST {path}"]
    predict, lookup = by_name["predict"], by_name["lookup_sources"]
    # The header the agent received names this trace and the HTTP span of the agent call.
    headers = {k.lower(): v for k, v in agent_server.requests[-1]["headers"].items()}
    assert headers["traceparent"] == f"00-{run.trace_id.removeprefix('tr-')}-{post.span_id}-01"
    assert [s.name for s in spans if not s.parent_span_id] == ["playground"]
    assert call.parent_span_id == root.span_id and post.parent_span_id == call.span_id
    assert predict.parent_span_id == post.span_id
    assert lookup.parent_span_id == predict.span_id
    assert (predict.span_type, lookup.span_type) == ("AGENT", "RETRIEVER")
    assert post.start_ns <= predict.start_ns <= predict.end_ns <= post.end_ns
    assert trace.name == f"playground: {agent_name}"
    assert trace.state == "OK" and trace.experiment.name == "Playground"
    assert trace.response_preview == "Echo: where is Paris?"
    assert trace.tags["service.name"] == "test-agent"


def test_spans_an_agent_exports_while_answering_join_the_playground_trace(
    worker_app, http_agent, agent_exports
):
    agent = http_agent("traced", "mlflow-serving")
    message = runs.send(chat(agent), "where is Paris?", app=worker_app)

    run = wait_until_finished(message.runs.get().pk)

    assert agent_exports.export_results == [SpanExportResult.SUCCESS] * 4  # 2 spans, twice
    assert_one_trace_with_the_agent_spans(run, agent_exports, "/traced/invocations")


def test_spans_an_agent_exports_after_the_answer_join_the_playground_trace(
    worker_app, http_agent, agent_exports
):
    agent = http_agent("traced-late", "openai")
    message = runs.send(chat(agent), "where is Paris?", app=worker_app)
    run = wait_until_finished(message.runs.get().pk)
    assert Trace.objects.get(trace_id=run.trace_id).span_count == 3  # the playground's own

    assert agent_exports.export_pending() == SpanExportResult.SUCCESS

    assert_one_trace_with_the_agent_spans(run, agent_exports, "/traced-late/v1/chat/completions")


@pytest.fixture
def redis_playground_worker(request, transactional_db, monkeypatch):
    """The Redis worker process, on the test database."""
    from tests.conftest import database_url_for_another_process

    monkeypatch.setenv("DATABASE_URL", database_url_for_another_process())
    return request.getfixturevalue("redis_worker")


@pytest.mark.services
def test_a_worker_process_on_redis_sends_the_traceparent_too(
    redis_playground_worker, http_agent, agent_exports
):
    app, queue = redis_playground_worker
    agent = http_agent("traced", "mlflow-serving")

    message = runs.send(chat(agent), "where is Paris?", app=app, queue=queue)

    run = wait_until_finished(message.runs.get().pk, timeout=20)
    wait_for(lambda: Trace.objects.get(trace_id=run.trace_id).span_count == 5, what="5 spans")
    assert_one_trace_with_the_agent_spans(run, agent_exports, "/traced/invocations")
