"""A logged-model agent's own `@mlflow.trace` spans nest in the playground's trace: the model
runs in the worker inside the playground's span (MLflow's distributed-tracing context), and
the real mlflow client exports its spans to the live server, where ingest merges them.
With the embedded worker (in this process) and a worker process on Redis."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from playground import runs
from playground.models import Agent, Run, RunStatus
from tests.playground.conftest import chat, wait_for, wait_until_finished
from tracking.models import Experiment, Span, Trace

mlflow = pytest.importorskip("mlflow", reason="the real mlflow client is not installed")

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("sqlite_shared_reads"),
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated"),
]

AGENT_CODE = textwrap.dedent(
    """
    import mlflow
    from mlflow.pyfunc import ResponsesAgent
    from mlflow.types.responses import ResponsesAgentResponse


    @mlflow.trace(span_type="RETRIEVER")
    def lookup_sources(question):
        return ["the atlas"]


    @mlflow.trace(span_type="CHAIN")
    def answer_question(question):
        return lookup_sources(question)[0]


    class Support(ResponsesAgent):
        def predict(self, request):
            question = request.input[-1].content
            source = answer_question(question)
            text = f"From {source}: {question}"
            return ResponsesAgentResponse(output=[self.create_text_output_item(text=text, id="o1")])


    mlflow.models.set_model(Support())
    """
)

MLFLOW_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    # Spans are sent as they end, not from a queue the test would have to wait for.
    "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "false",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_USE_BATCH_SPAN_PROCESSOR": "false",
}


@pytest.fixture(scope="module")
def saved_agent(tmp_path_factory) -> Path:
    from tests.interop.test_mlflow_serving import _save

    return _save(tmp_path_factory.mktemp("support-agent"), AGENT_CODE)


@pytest.fixture
def mlflow_to_live_server(live_server, monkeypatch, settings) -> Iterator[str]:
    """The worker's mlflow client logs to this test's live server."""
    Experiment.objects.get_or_create(
        pk=0, defaults={"name": "Default", "artifact_location": "mlflow-artifacts:/0"}
    )
    settings.SPYGLASS_PLAYGROUND_LOGGED_MODELS = True
    monkeypatch.setenv("SPYGLASS_PLAYGROUND_LOGGED_MODELS", "1")  # a worker process's settings
    monkeypatch.setenv("MLFLOW_TRACKING_URI", live_server.url)
    for name, value in MLFLOW_ENV.items():
        monkeypatch.setenv(name, value)
    # Spyglass serves no `/version`, so mlflow's own exporter sends no spans over OTLP and drops
    # a callee's spans (tracking/mlflow_api/urls.py); its OTLP exporter sends them all.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", live_server.url + "/v1/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
    mlflow.set_tracking_uri(live_server.url)
    mlflow.tracing.reset()  # its exporter is made for a tracking URI: a new one for this one
    yield live_server.url
    mlflow.set_tracking_uri(None)
    mlflow.tracing.reset()


def assert_the_model_spans_nest_in_the_playground_trace(run: Run, agent: Agent) -> None:
    assert run.status == RunStatus.DONE, run.error
    assert run.content == "From the atlas: where is Paris?"
    trace = Trace.objects.get(trace_id=run.trace_id)
    assert Trace.objects.count() == 1  # no trace of the model's own
    spans = {s.span_id: s for s in Span.objects.filter(trace=trace)}
    by_name = {s.name: s for s in spans.values()}
    assert len(spans) == trace.span_count
    assert [s.name for s in spans.values() if not s.parent_span_id] == ["playground"]
    assert all(s.parent_span_id in spans for s in spans.values() if s.parent_span_id)

    def ancestors(span: Span) -> list[str]:
        names = []
        while span.parent_span_id:
            span = spans[span.parent_span_id]
            names.append(span.name)
        return names

    predict = f"predict {agent.config['model_uri']}"
    assert ancestors(by_name["lookup_sources"])[:1] == ["answer_question"]
    assert ancestors(by_name["answer_question"])[-3:] == [predict, agent.name, "playground"]
    assert by_name["lookup_sources"].span_type == "RETRIEVER"
    assert by_name["lookup_sources"].outputs == ["the atlas"]
    assert trace.name == f"playground: {agent.name}" and trace.state == "OK"


def logged_model_agent(saved_agent: Path) -> Agent:
    return Agent.objects.create(name="support (logged)", kind="logged-model",
                                config={"model_uri": str(saved_agent)})  # fmt: skip


def test_a_logged_model_agents_spans_nest_under_the_agent_call(
    worker_app, saved_agent, mlflow_to_live_server
):
    agent = logged_model_agent(saved_agent)
    message = runs.send(chat(agent), "where is Paris?", app=worker_app)

    run = wait_until_finished(message.runs.get().pk, timeout=60)

    wait_for(lambda: Span.objects.filter(name="lookup_sources").exists(), what="model spans")
    assert_the_model_spans_nest_in_the_playground_trace(run, agent)


@pytest.fixture
def redis_playground_worker(request, transactional_db, monkeypatch, mlflow_to_live_server):
    """The Redis worker process, on the test database, its mlflow on the live server."""
    from tests.conftest import database_url_for_another_process

    monkeypatch.setenv("DATABASE_URL", database_url_for_another_process())
    return request.getfixturevalue("redis_worker")


@pytest.mark.services
def test_a_worker_process_on_redis_nests_the_logged_model_spans_too(
    redis_playground_worker, saved_agent
):
    app, queue = redis_playground_worker
    agent = logged_model_agent(saved_agent)

    message = runs.send(chat(agent), "where is Paris?", app=app, queue=queue)

    run = wait_until_finished(message.runs.get().pk, timeout=60)
    wait_for(lambda: Span.objects.filter(name="lookup_sources").exists(), what="model spans")
    assert_the_model_spans_nest_in_the_playground_trace(run, agent)
