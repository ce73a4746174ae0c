"""OTLP ingest with the real OpenTelemetry SDK: `TracerProvider`, span processors and the
stock `OTLPSpanExporter` (http/protobuf) against pytest-django's live server; OTLP/JSON built
from a request the SDK itself encoded; and the mlflow client exporting through the stock
exporter (MLflow's JSON-encoded attributes).

Every test makes its own TracerProvider and never sets the global one, so tests do not see
each other's spans.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import requests
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer, format_span_id, format_trace_id

from tracking.models import Experiment, Span, Trace

SERVICE = "otel-interop"


class Recording(SpanExporter):
    """The real exporter, with a record of what it was given and what it answered: a
    BatchSpanProcessor only logs a failed export."""

    def __init__(self, exporter: SpanExporter) -> None:
        self.exporter = exporter
        self.spans: list[ReadableSpan] = []
        self.results: list[SpanExportResult] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        result = self.exporter.export(spans)
        self.results.append(result)
        return result

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.exporter.force_flush(timeout_millis)


@pytest.fixture
def otlp_url(live_server, transactional_db) -> str:
    # transactional_db empties every table between tests, migrations' rows included.
    Experiment.objects.get_or_create(
        pk=0, defaults={"name": "Default", "artifact_location": "mlflow-artifacts:/0"}
    )
    return live_server.url + "/v1/traces"


@pytest.fixture
def tracing(otlp_url: str) -> Iterator[Callable[..., tuple[Tracer, TracerProvider, Recording]]]:
    """Makes (tracer, provider, recording exporter) on a provider of the test's own."""
    providers: list[TracerProvider] = []

    def make(processor: type = BatchSpanProcessor, **exporter_options: Any):
        exporter = Recording(OTLPSpanExporter(endpoint=otlp_url, **exporter_options))
        provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
        provider.add_span_processor(processor(exporter))
        providers.append(provider)
        return provider.get_tracer("spyglass.tests"), provider, exporter

    yield make
    for provider in providers:
        provider.shutdown()


def flushed(provider: TracerProvider, exporter: Recording) -> list[SpanExportResult]:
    assert provider.force_flush(10_000)
    return exporter.results


LLM_ATTRIBUTES = {
    "gen_ai.operation.name": "chat",
    "gen_ai.input.messages": json.dumps([{"role": "user", "content": "hi"}]),
    "gen_ai.usage.input_tokens": 11,
    "gen_ai.usage.output_tokens": 4,
}


def run_agent(tracer: Tracer) -> None:
    """A three-level tree: agent -> llm -> tool, in the GenAI conventions."""
    with (
        tracer.start_as_current_span("agent", attributes={"gen_ai.operation.name": "invoke_agent"}),
        tracer.start_as_current_span("llm", attributes=LLM_ATTRIBUTES),
        tracer.start_as_current_span(
            "tool", attributes={"gen_ai.operation.name": "execute_tool"}
        ) as tool,
    ):
        tool.add_event("called", {"args": ["a", "b"]})


def test_a_three_level_tree_arrives_as_one_trace(tracing):
    tracer, provider, exporter = tracing()
    run_agent(tracer)

    assert flushed(provider, exporter) == [SpanExportResult.SUCCESS]
    trace = Trace.objects.get()
    root = exporter.spans[-1]
    assert trace.trace_id == f"tr-{format_trace_id(root.context.trace_id)}"
    assert (trace.name, trace.state, trace.experiment_id, trace.span_count) == ("agent", "OK", 0, 3)
    assert trace.tags["service.name"] == SERVICE
    assert trace.total_tokens == 15
    spans = {s.name: s for s in Span.objects.all()}
    assert spans["agent"].parent_span_id == ""
    assert spans["llm"].parent_span_id == spans["agent"].span_id
    assert spans["tool"].parent_span_id == spans["llm"].span_id
    assert [spans[n].span_type for n in ("agent", "llm", "tool")] == ["AGENT", "CHAT_MODEL", "TOOL"]
    assert spans["llm"].inputs == {"messages": [{"role": "user", "content": "hi"}]}
    assert spans["tool"].events[0]["attributes"] == {"args": ["a", "b"]}
    # The SDK's ids and times, unchanged.
    assert spans["agent"].span_id == format_span_id(root.context.span_id)
    assert (spans["agent"].start_ns, spans["agent"].end_ns) == (root.start_time, root.end_time)


def test_an_exception_marks_the_span_as_an_error_with_its_event(tracing):
    tracer, provider, exporter = tracing(SimpleSpanProcessor)
    with pytest.raises(ValueError), tracer.start_as_current_span("boom"):
        raise ValueError("kaboom")

    assert flushed(provider, exporter) == [SpanExportResult.SUCCESS]
    span = Span.objects.get()
    assert (span.status, span.status_message) == ("ERROR", "ValueError: kaboom")
    (event,) = span.events
    assert event["name"] == "exception"
    assert event["attributes"]["exception.type"] == "ValueError"
    assert event["attributes"]["exception.message"] == "kaboom"
    assert "Traceback" in event["attributes"]["exception.stacktrace"]
    assert Trace.objects.get().state == "ERROR"


@pytest.mark.parametrize("compression", [Compression.Gzip, Compression.Deflate])
def test_compressed_exports_are_stored(tracing, compression):
    sent_encodings: list[str | None] = []
    session = requests.Session()
    session.hooks["response"].append(
        lambda response, *args, **kwargs: sent_encodings.append(
            response.request.headers.get("Content-Encoding")
        )
    )
    tracer, provider, exporter = tracing(compression=compression, session=session)
    run_agent(tracer)

    assert flushed(provider, exporter) == [SpanExportResult.SUCCESS]
    assert sent_encodings == [compression.value]
    assert Span.objects.count() == 3


def test_the_experiment_header_files_the_trace(tracing):
    experiment = Experiment.objects.create(name="otel-agents")
    tracer, provider, exporter = tracing(headers={"x-mlflow-experiment-id": str(experiment.pk)})
    run_agent(tracer)

    assert flushed(provider, exporter) == [SpanExportResult.SUCCESS]
    assert Trace.objects.get().experiment == experiment


def test_an_unknown_experiment_fails_the_export_and_stores_nothing(tracing, caplog):
    tracer, provider, exporter = tracing(headers={"x-mlflow-experiment-id": "424242"})
    run_agent(tracer)

    assert flushed(provider, exporter) == [SpanExportResult.FAILURE]  # 400: not retried
    assert not Trace.objects.exists()
    assert "400" in caplog.text


def test_spans_exported_one_by_one_build_the_same_trace(tracing):
    # SimpleSpanProcessor exports each span as it ends: the children before the root.
    tracer, provider, exporter = tracing(SimpleSpanProcessor)
    run_agent(tracer)

    assert flushed(provider, exporter) == [SpanExportResult.SUCCESS] * 3
    trace = Trace.objects.get()
    assert (trace.name, trace.state, trace.span_count, trace.total_tokens) == ("agent", "OK", 3, 15)


def test_sending_the_same_spans_twice_stores_them_once(tracing, otlp_url):
    tracer, provider, exporter = tracing()
    run_agent(tracer)
    assert flushed(provider, exporter) == [SpanExportResult.SUCCESS]

    # A retry, as an exporter sends after a lost response.
    again = OTLPSpanExporter(endpoint=otlp_url)
    assert again.export(exporter.spans) == SpanExportResult.SUCCESS
    again.shutdown()

    assert Span.objects.count() == 3
    assert Trace.objects.get().span_count == 3


def test_otlp_json_of_a_request_the_sdk_encoded(otlp_url):
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "json-client"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    run_agent(provider.get_tracer("spyglass.tests"))
    provider.shutdown()
    spans = memory.get_finished_spans()

    response = post_json(otlp_url, otlp_json(encode_spans(spans)))

    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    assert json.loads(response.read()) == {}
    stored = dict(Span.objects.values_list("span_id", "parent_span_id"))
    assert stored == {
        format_span_id(s.context.span_id): format_span_id(s.parent.span_id) if s.parent else ""
        for s in spans
    }
    trace = Trace.objects.get()
    assert trace.trace_id == f"tr-{format_trace_id(spans[0].context.trace_id)}"
    assert trace.tags["service.name"] == "json-client"


def otlp_json(request) -> bytes:
    """The OTLP/JSON encoding of a request: protobuf's JSON mapping, with hex ids (the spec's
    one deviation, which MessageToJson does not know about)."""
    data = json_format.MessageToDict(request)
    for resource_spans in data["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(data).encode()


def post_json(url: str, body: bytes):
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    return urllib.request.urlopen(request, timeout=10)


def test_mlflow_spans_through_the_stock_exporter(run_mlflow, otlp_url):
    """The mlflow client's OTLP-only mode (protocol §4, path 2): the stock OTel exporter,
    MLflow's attributes JSON-encoded."""
    experiment = Experiment.objects.create(name="mlflow-otlp")
    run_mlflow(
        """
        @mlflow.trace
        def helper(x):
            return x * 10

        @mlflow.trace(span_type="CHAIN", attributes={"agent.version": "1.2"})
        def via_otlp(x):
            return helper(x) + 1

        via_otlp(4)
        """,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=otlp_url,
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_TRACES_HEADERS=f"x-mlflow-experiment-id={experiment.pk}",
    )

    trace = Trace.objects.get()
    assert (trace.experiment, trace.name, trace.span_count) == (experiment, "via_otlp", 2)
    spans = {s.name: s for s in Span.objects.all()}
    root, helper = spans["via_otlp"], spans["helper"]
    assert (root.span_type, root.inputs, root.outputs) == ("CHAIN", {"x": 4}, 41)
    assert root.attributes["agent.version"] == "1.2"  # decoded, not '"1.2"'
    assert (helper.parent_span_id, helper.inputs, helper.outputs) == (root.span_id, {"x": 4}, 40)
