"""Conformance of GenAI ingest with a real instrumentation:
`opentelemetry-instrumentation-openai-v2` on the real `openai` client, against a local
OpenAI-compatible server (tests/interop/genai_capture.py), for a chat call, a streamed chat
call, a tool-calling round trip and an embeddings call.

The captured OTLP payloads are kept in tests/fixtures/otel_genai/ and ingested through
`POST /v1/traces`; the live test makes them again with the instrumentation, sends them with the
stock OTLP exporter to the live server, and checks the same stored rows, and that the kept
fixtures still say what the instrumentation sends today.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import genai_prices
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

from tests.interop import genai_capture
from tests.interop.genai_capture import MODEL, QUESTION, SYSTEM, WEATHER
from tracking import chat, otlp
from tracking.models import Experiment, Span, SpanLogEvents, Trace

# Attributes whose values are now the inputs and outputs: never stored twice.
MOVED = {"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions"}
CHAT_USAGE = {"input_tokens": 1200, "output_tokens": 300, "total_tokens": 1500}


def library_cost(model: str, input_tokens: int, output_tokens: int) -> dict[str, float]:
    """What genai-prices charges, by its own calculation."""
    calculation = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=input_tokens, output_tokens=output_tokens),
        model,
        provider_id="openai",  # as the spans' gen_ai.provider.name says
    )
    input_cost, output_cost = float(calculation.input_price), float(calculation.output_price)
    return {"input_cost": input_cost, "output_cost": output_cost,
            "total_cost": input_cost + output_cost}  # fmt: skip


def answer(text: str, finish_reason: str = "stop") -> dict:
    message = {"role": "assistant", "content": text}
    return {"choices": [{"index": 0, "message": message, "finish_reason": finish_reason}]}


def assert_priced_chat(span: Span) -> None:
    assert span.span_type == "CHAT_MODEL"
    assert MOVED.isdisjoint(span.attributes)
    assert span.attributes["mlflow.chat.tokenUsage"] == CHAT_USAGE
    assert span.attributes["mlflow.llm.model"] == f"{MODEL}-2024-07-18"  # the one that answered
    expected = library_cost(MODEL, 1200, 300)
    assert span.attributes["mlflow.llm.cost"] == pytest.approx(expected, rel=1e-12)
    assert span.events == []


def check_chat() -> None:
    trace, span = Trace.objects.get(), Span.objects.get()
    assert_priced_chat(span)
    assert span.inputs == {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Say hello."},
        ]
    }
    assert span.outputs == answer("Hello from the test model.")
    assert span.attributes["gen_ai.request.temperature"] == 0.2  # the rest stays
    assert trace.cost == pytest.approx(library_cost(MODEL, 1200, 300)["total_cost"])
    # The trace list's previews, as a person reads them.
    assert chat.request_text(trace.request_preview) == "Say hello."
    assert chat.answer_text(trace.response_preview) == "Hello from the test model."
    conversation = chat.conversation(span.inputs, span.outputs)
    assert [(m.role, m.content) for m in conversation.messages] == [
        ("system", SYSTEM),
        ("user", "Say hello."),
        ("assistant", "Hello from the test model."),
    ]


def check_chat_stream() -> None:
    span = Span.objects.get()
    assert_priced_chat(span)
    assert span.inputs == {"messages": [{"role": "user", "content": "Say hello, streamed."}]}
    assert span.outputs == answer("Hello from the test model.")


def check_tool_round_trip() -> None:
    trace = Trace.objects.get()
    agent, ask, answer_call = Span.objects.order_by("start_ns")
    assert agent.name == "weather_agent" and agent.parent_span_id == ""
    assert {ask.parent_span_id, answer_call.parent_span_id} == {agent.span_id}
    for span in (ask, answer_call):
        assert_priced_chat(span)
    call = {
        "id": "call_weather_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    assert ask.inputs == {"messages": [{"role": "user", "content": QUESTION}]}
    assert ask.outputs == {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "tool_calls": [call]},
                "finish_reason": "tool_calls",
            }
        ]
    }
    assert answer_call.inputs == {
        "messages": [
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_weather_1", "content": json.dumps(WEATHER)},
        ]
    }
    assert answer_call.outputs == answer("It is sunny in Paris.")
    messages = chat.conversation(answer_call.inputs, answer_call.outputs).messages
    assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert (messages[1].tool_calls[0].name, messages[2].tool_call_id) == (
        "get_weather",
        "call_weather_1",
    )
    # Session and user, from the application's span, as MLflow metadata.
    assert (trace.session_id, trace.user_id) == ("session-42", "alice")
    assert trace.metadata["mlflow.trace.session"] == "session-42"
    assert trace.cost == pytest.approx(2 * library_cost(MODEL, 1200, 300)["total_cost"])


def check_embeddings() -> None:
    span = Span.objects.get()
    assert span.span_type == "EMBEDDING"
    assert (span.inputs, span.outputs) == (None, None)  # the instrumentation sends no texts
    assert span.attributes["gen_ai.embeddings.dimension.count"] == 4
    assert span.attributes["mlflow.chat.tokenUsage"] == {"input_tokens": 8, "total_tokens": 8}
    expected = library_cost(genai_capture.EMBEDDING_MODEL, 8, 0)
    assert span.attributes["mlflow.llm.cost"] == pytest.approx(expected, rel=1e-12)


CHECKS: dict[str, Callable[[], None]] = {
    "chat": check_chat,
    "chat_stream": check_chat_stream,
    "tool_round_trip": check_tool_round_trip,
    "embeddings": check_embeddings,
}


def decoded(export: dict) -> list[tuple]:
    """What ingest makes of an export, without ids and times: for comparing two captures."""
    batch = otlp.decode_request(otlp.parse_json(json.dumps(export).encode()))
    return sorted(
        (s.name, s.span_type, json.dumps(s.inputs), json.dumps(s.outputs), sorted(s.attributes))
        for s in batch.spans
    )


@pytest.mark.django_db
@pytest.mark.parametrize("scenario", CHECKS)
def test_captured_payloads_are_stored_as_chat(client, scenario):
    body = json.dumps(genai_capture.load(scenario))

    response = client.post("/v1/traces", body, content_type="application/json")

    assert response.status_code == 200, response.content
    CHECKS[scenario]()


@pytest.fixture
def otlp_url(live_server, transactional_db) -> str:
    Experiment.objects.get_or_create(
        pk=0, defaults={"name": "Default", "artifact_location": "mlflow-artifacts:/0"}
    )
    return live_server.url + "/v1/traces"


def test_the_live_instrumentation_is_stored_as_its_kept_captures_are(otlp_url):
    # The dev extra installs it: a failing import is a broken pin, never a reason to skip.
    import opentelemetry.instrumentation.openai_v2  # noqa: F401

    captured = {}
    for scenario, check in CHECKS.items():
        # One scenario at a time, each checked against a fresh database.
        Trace.objects.all().delete()
        exporter = OTLPSpanExporter(endpoint=otlp_url)
        captured.update(genai_capture.capture(exporter=exporter, only=scenario))
        check()
    for scenario, export in captured.items():
        assert decoded(export) == decoded(genai_capture.load(scenario)), (
            f"{scenario}: the instrumentation now sends something else; rewrite the fixtures "
            "with `python -m tests.interop.genai_capture` and check the stored spans."
        )


@pytest.mark.parametrize("logs_first", [True, False], ids=["logs-first", "spans-first"])
@pytest.mark.parametrize("scenario", ["chat", "tool_round_trip"])
def test_the_default_modes_message_events_sent_as_logs_join_their_spans(
    otlp_url, scenario, logs_first
):
    """The instrumentation's default mode sends the messages only as log records: with the
    SDK's own log exporter on /v1/logs, the spans are stored as in the `span_only` captures.
    A simple log processor exports each record as it is emitted, before its span has ended;
    a batch one after the spans were exported."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, SimpleLogRecordProcessor

    log_exporter = OTLPLogExporter(endpoint=otlp_url.removesuffix("/v1/traces") + "/v1/logs")
    processor = (SimpleLogRecordProcessor if logs_first else BatchLogRecordProcessor)(log_exporter)

    captured = genai_capture.capture(
        env=genai_capture.EVENTS_ENV,
        exporter=OTLPSpanExporter(endpoint=otlp_url),
        only=scenario,
        log_processor=processor,
    )

    attributes = {a["key"] for s in _spans(captured[scenario]) for a in s["attributes"]}
    assert MOVED.isdisjoint(attributes)  # the spans themselves carry no message
    CHECKS[scenario]()
    assert not SpanLogEvents.objects.filter(joined_trace=None).exists()


def _spans(export: dict) -> list[dict]:
    return [s for rs in export["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
