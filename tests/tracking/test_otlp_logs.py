"""`POST /v1/logs`: GenAI events sent as log records join their spans, whichever of the two
requests comes first. The real SDK's log exporter and the real openai-v2 instrumentation drive
it in tests/interop/test_otel_genai.py."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.logs.v1 import logs_pb2

from tests.tracking.test_otlp import (
    ROOT_ID,
    T0,
    TRACE_ID,
    any_value,
    export,
    key_values,
    span,
    status_of,
)
from tests.xss import CORPUS, injected_markup
from tracking import chat, genai_logs, otlp
from tracking.models import Experiment, Span, SpanLogEvents, Trace

pytestmark = pytest.mark.django_db

CHAT_SPAN = {
    "gen_ai.operation.name": "chat",
    "gen_ai.system": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.usage.input_tokens": 12,
    "gen_ai.usage.output_tokens": 5,
}


def record(
    event_name: str,
    body: Any = None,
    *,
    trace_id: bytes = TRACE_ID,
    span_id: bytes = ROOT_ID,
    at: int = T0 + 1,
    attributes: dict[str, Any] | None = None,
    name_as_attribute: bool = False,
) -> logs_pb2.LogRecord:
    """A log record as openai-v2 emits one (the event name in its own field, or, as older
    SDKs did, in an `event.name` attribute)."""
    attributes = {"gen_ai.system": "openai", **(attributes or {})}
    if name_as_attribute:
        attributes["event.name"] = event_name
    made = logs_pb2.LogRecord(
        time_unix_nano=at,
        trace_id=trace_id,
        span_id=span_id,
        event_name="" if name_as_attribute else event_name,
        attributes=key_values(attributes),
    )
    if body is not None:
        made.body.CopyFrom(any_value(body))
    return made


def logs(*records: logs_pb2.LogRecord) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    request.resource_logs.add().scope_logs.add().log_records.extend(records)
    return request


def conversation(question: str = "What is 2+2?", answer: str = "4") -> ExportLogsServiceRequest:
    """The records of one chat call, in the order openai-v2 emits them."""
    return logs(
        record("gen_ai.system.message", {"content": "Answer briefly."}, at=T0 + 1),
        record("gen_ai.user.message", {"content": question}, at=T0 + 2),
        record(
            "gen_ai.choice",
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": answer},
            },
            at=T0 + 3,
        ),
    )


def chat_span(**overrides: Any):
    return export(span("chat gpt-4o-mini", attributes={**CHAT_SPAN, **overrides}))


def post_logs(client, request: ExportLogsServiceRequest, experiment: int | None = None):
    headers = {} if experiment is None else {"x-mlflow-experiment-id": str(experiment)}
    return client.post(
        "/v1/logs",
        data=request.SerializeToString(),
        content_type=otlp.PROTOBUF,
        headers=headers,
    )


def post_spans(client, request, experiment: int | None = None):
    headers = {} if experiment is None else {"x-mlflow-experiment-id": str(experiment)}
    return client.post(
        "/v1/traces", data=request.SerializeToString(), content_type=otlp.PROTOBUF, headers=headers
    )


@pytest.fixture
def experiment() -> Experiment:
    return Experiment.objects.create(name="genai-logs")


def assert_chat(question: str = "What is 2+2?", answer: str = "4") -> Span:
    stored = Span.objects.get()
    assert stored.span_type == "CHAT_MODEL"
    assert stored.inputs == {
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": question},
        ]
    }
    assert stored.outputs["choices"][0]["message"] == {"role": "assistant", "content": answer}
    assert stored.outputs["choices"][0]["finish_reason"] == "stop"
    assert stored.events == []  # every event became the inputs or the outputs
    # The trace list's previews follow, as for messages sent on the span.
    trace = Trace.objects.get()
    assert chat.request_text(trace.request_preview) == question
    assert chat.answer_text(trace.response_preview) == answer
    return stored


def test_events_that_come_before_their_span_wait_for_it(client, experiment):
    response = post_logs(client, conversation(), experiment.pk)

    assert response.status_code == 200
    assert ExportLogsServiceResponse.FromString(response.content) == ExportLogsServiceResponse()
    kept = SpanLogEvents.objects.get()
    assert (kept.trace_id, kept.span_id) == (f"tr-{TRACE_ID.hex()}", ROOT_ID.hex())
    assert kept.joined_trace is None and not Span.objects.exists()

    assert post_spans(client, chat_span(), experiment.pk).status_code == 200
    stored = assert_chat()
    assert stored.attributes["mlflow.chat.tokenUsage"]["total_tokens"] == 17
    assert SpanLogEvents.objects.get().joined_trace == Trace.objects.get()


def test_events_that_come_after_their_span_join_it_at_once(client, experiment):
    assert post_spans(client, chat_span(), experiment.pk).status_code == 200
    assert Span.objects.get().inputs is None

    assert post_logs(client, conversation(), experiment.pk).status_code == 200

    assert_chat()
    assert SpanLogEvents.objects.get().joined_trace == Trace.objects.get()
    assert Trace.objects.get().span_count == 1


def test_a_resent_export_changes_nothing(client, experiment):
    post_spans(client, chat_span(), experiment.pk)
    post_logs(client, conversation(), experiment.pk)
    before = Span.objects.values("inputs", "outputs", "events", "attributes").get()

    post_logs(client, conversation(), experiment.pk)  # an exporter retrying a timed-out send
    post_spans(client, chat_span(), experiment.pk)

    assert Span.objects.values("inputs", "outputs", "events", "attributes").get() == before


def test_records_split_over_two_requests_give_one_conversation(client, experiment):
    whole = conversation()
    first, second = (
        logs(*whole.resource_logs[0].scope_logs[0].log_records[:2]),
        logs(*whole.resource_logs[0].scope_logs[0].log_records[2:]),
    )
    post_logs(client, second, experiment.pk)  # the answer first: batches may cross
    post_logs(client, first, experiment.pk)
    post_spans(client, chat_span(), experiment.pk)

    assert_chat()


def test_an_older_sdk_names_the_event_in_an_attribute(client, experiment):
    post_spans(client, chat_span(), experiment.pk)
    request = logs(
        record("gen_ai.user.message", {"content": "hi"}, name_as_attribute=True),
        record("gen_ai.choice", {"index": 0, "finish_reason": "stop",
                                 "message": {"content": "hello"}}, name_as_attribute=True),
    )  # fmt: skip

    post_logs(client, request, experiment.pk)

    stored = Span.objects.get()
    assert stored.inputs == {"messages": [{"role": "user", "content": "hi"}]}
    assert stored.outputs["choices"][0]["message"] == {"role": "assistant", "content": "hello"}


def test_messages_on_the_span_are_not_shown_twice(client, experiment):
    """`span_and_event`: the messages are span attributes and a details event both."""
    messages = [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
    post_spans(client, chat_span(**{"gen_ai.input.messages": json.dumps(messages)}), experiment.pk)
    details = record(
        "gen_ai.client.inference.operation.details",
        attributes={"gen_ai.input.messages": json.dumps(messages)},
    )

    post_logs(client, logs(details), experiment.pk)

    stored = Span.objects.get()
    assert stored.inputs == {"messages": [{"role": "user", "content": "hi"}]}
    assert stored.events == []


def test_other_gen_ai_events_stay_as_span_events(client, experiment):
    post_spans(client, chat_span(), experiment.pk)
    result = record(
        "gen_ai.evaluation.result",
        attributes={"gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": 0.9},
    )

    post_logs(client, logs(result), experiment.pk)

    (event,) = Span.objects.get().events
    assert event["name"] == "gen_ai.evaluation.result"
    assert event["attributes"]["gen_ai.evaluation.score.value"] == 0.9


def test_other_records_are_rejected_with_the_reason_and_not_stored(client, experiment):
    plain = logs_pb2.LogRecord(
        time_unix_nano=T0, trace_id=TRACE_ID, span_id=ROOT_ID, body=any_value("GET /health 200")
    )
    no_span = record("gen_ai.user.message", {"content": "hi"}, span_id=b"")
    kept = record("gen_ai.user.message", {"content": "hi"})

    response = post_logs(client, logs(plain, no_span, kept), experiment.pk)

    assert response.status_code == 200
    answer = ExportLogsServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_log_records == 2
    assert "GenAI events" in answer.partial_success.error_message
    assert len(SpanLogEvents.objects.get().events) == 1


def test_a_span_takes_so_many_events_and_no_more(client, experiment, monkeypatch):
    monkeypatch.setattr(genai_logs, "MAX_EVENTS_PER_SPAN", 2)
    post_spans(client, chat_span(), experiment.pk)
    results = [record("gen_ai.evaluation.result", attributes={"n": n}, at=T0 + n) for n in range(3)]

    post_logs(client, logs(*results[:1]), experiment.pk)
    post_logs(client, logs(*results[1:]), experiment.pk)

    assert [e["attributes"]["n"] for e in Span.objects.get().events] == [0, 1]


def test_otlp_json_with_hex_ids(client, experiment):
    data = json_format.MessageToDict(conversation())
    for item in data["resourceLogs"][0]["scopeLogs"][0]["logRecords"]:
        item["traceId"], item["spanId"] = TRACE_ID.hex(), ROOT_ID.hex()

    response = client.post(
        "/v1/logs",
        data=json.dumps(data),
        content_type=otlp.JSON,
        headers={"x-mlflow-experiment-id": str(experiment.pk)},
    )

    assert (response.status_code, response.json()) == (200, {})
    post_spans(client, chat_span(), experiment.pk)
    assert_chat()


def test_events_only_join_a_span_of_the_experiment_they_were_sent_with(client, experiment):
    other = Experiment.objects.create(name="elsewhere")
    post_logs(client, conversation(), other.pk)

    post_spans(client, chat_span(), experiment.pk)

    assert Span.objects.get().inputs is None
    assert SpanLogEvents.objects.get().joined_trace is None


def test_records_whose_span_never_comes_go_after_a_day_the_others_with_their_trace(
    client, experiment
):
    post_spans(client, chat_span(), experiment.pk)
    post_logs(client, conversation(), experiment.pk)  # joined at once
    stray = record("gen_ai.user.message", {"content": "x"}, span_id=b"\x01" * 8)
    post_logs(client, logs(stray), experiment.pk)
    SpanLogEvents.objects.update(
        received_at=timezone.now() - timedelta(hours=genai_logs.UNJOINED_HOURS, minutes=1)
    )

    later = record("gen_ai.user.message", {"content": "y"}, span_id=b"\x02" * 8)
    post_logs(client, logs(later), experiment.pk)

    assert {row.span_id for row in SpanLogEvents.objects.all()} == {ROOT_ID.hex(), "02" * 8}
    Trace.objects.get().delete()
    assert [row.span_id for row in SpanLogEvents.objects.all()] == ["02" * 8]


@pytest.mark.parametrize(
    ("body", "content_type", "fragment"),
    [
        (b"\x0a\xff", otlp.PROTOBUF, "not an ExportLogsServiceRequest protobuf"),
        (b"[1]", otlp.JSON, "must be a JSON object (an ExportLogsServiceRequest)"),
        (b'{"resourceLogs": 3}', otlp.JSON, "not an OTLP/JSON ExportLogsServiceRequest"),
        (b"x", "text/plain", "Content-Type must be"),
    ],
)
def test_bad_bodies_get_a_status_and_store_nothing(
    client, experiment, body, content_type, fragment
):
    response = client.post("/v1/logs", data=body, content_type=content_type)

    status, message = status_of(response)
    assert status == 400 and fragment in message
    assert not SpanLogEvents.objects.exists() and not Span.objects.exists()


def test_an_unknown_experiment_is_a_bad_request(client):
    response = post_logs(client, conversation(), 999_999)

    assert status_of(response) == (400, "Experiment 999999 does not exist.")
    assert not SpanLogEvents.objects.exists()


def test_too_many_records_are_refused_before_decoding(client, experiment, settings):
    settings.SPYGLASS_OTLP_MAX_SPANS = 2

    response = post_logs(client, conversation(), experiment.pk)

    status, message = status_of(response)
    assert status == 413 and "3 log records, over the limit of 2" in message


def test_message_content_is_data_on_every_page(client, experiment):
    """Untrusted text: stored as sent, never markup where the span and trace are shown."""
    text = " ".join(CORPUS)
    post_spans(client, chat_span(), experiment.pk)
    post_logs(client, conversation(question=text, answer=text), experiment.pk)

    assert_chat(question=text, answer=text)
    trace_id = f"tr-{TRACE_ID.hex()}"
    for path in (f"/traces/{trace_id}/", f"/traces/{trace_id}/conversation/", "/traces/"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert injected_markup(response.content.decode()) == [], path


def test_a_message_of_a_later_export_still_joins_the_inputs(client, experiment):
    """The span first; then the system message alone; then the user message and the answer:
    what the first join filled is read again from all the records."""
    post_spans(client, chat_span(), experiment.pk)
    records = list(conversation().resource_logs[0].scope_logs[0].log_records)

    post_logs(client, logs(records[0]), experiment.pk)
    post_logs(client, logs(*records[1:]), experiment.pk)

    assert_chat()


def test_records_sent_under_another_header_stay_joined_when_the_span_is_sent_again(
    client, experiment
):
    """Records for a stored span join it whatever header they came with (the caller could
    edit the span's experiment), and stay joined through a retried span export."""
    other = Experiment.objects.create(name="logs-header")
    post_spans(client, chat_span(), experiment.pk)
    post_logs(client, conversation(), other.pk)
    assert_chat()

    post_spans(client, chat_span(), experiment.pk)

    assert_chat()


def test_retried_exports_do_not_crowd_out_later_records(client, experiment, monkeypatch):
    monkeypatch.setattr(genai_logs, "MAX_EVENTS_PER_SPAN", 3)
    records = list(conversation().resource_logs[0].scope_logs[0].log_records)
    for _ in range(4):
        post_logs(client, logs(*records[:2]), experiment.pk)
    post_logs(client, logs(records[2]), experiment.pk)

    post_spans(client, chat_span(), experiment.pk)

    assert_chat()
    assert len(SpanLogEvents.objects.get().events) == 3


def test_values_no_json_column_takes_are_stored_safely(client, experiment):
    odd = record(
        "gen_ai.evaluation.result",
        {"note": "nul\x00here"},
        attributes={"score": float("nan"), "high": float("inf"), "k\x00ey": "v\x00"},
    )
    post_spans(client, chat_span(), experiment.pk)

    response = post_logs(client, logs(odd), experiment.pk)

    assert response.status_code == 200
    (event,) = Span.objects.get().events
    assert event["attributes"]["score"] is None and event["attributes"]["key"] == "v"
    assert event["attributes"]["body"] == {"note": "nulhere"}


TRACE_HEX, SPAN_HEX = "ab" * 16, "cd" * 8
NATIVE_IDS = {"trace_id": bytes.fromhex(TRACE_HEX), "span_id": bytes.fromhex(SPAN_HEX)}


def post_native(client, attributes: dict | None = None, events: list | None = None):
    """One LLM span through `POST /api/v1/traces/`, in MLflow's span shape."""
    span = {
        "trace_id": TRACE_HEX,
        "span_id": SPAN_HEX,
        "parent_span_id": None,
        "name": "llm",
        "start_time_unix_nano": T0,
        "end_time_unix_nano": T0 + 500,
        "status": {"code": "STATUS_CODE_OK", "message": ""},
        "attributes": {"mlflow.spanType": '"LLM"', **(attributes or {})},
        "events": events or [],
    }
    info = {
        "trace_id": f"tr-{TRACE_HEX}",
        "trace_location": {
            "type": "MLFLOW_EXPERIMENT",
            "mlflow_experiment": {"experiment_id": "0"},
        },
        "request_time": "2025-06-01T12:00:00Z",
        "state": "OK",
    }
    body = json.dumps({"trace_info": info, "spans": [span]})
    response = client.post("/api/v1/traces/", body, content_type="application/json")
    assert response.status_code == 201, response.content


def test_inputs_a_native_span_holds_in_its_attributes_are_its_own(client):
    """Read out of the attributes at the first join, they are the span's: a later join does
    not take them for the records' and lose them."""
    post_native(client, {"input.value": json.dumps("what is 2+2?")})
    for n in range(2):
        result = record("gen_ai.evaluation.result", attributes={"n": n}, **NATIVE_IDS)
        assert post_logs(client, logs(result)).status_code == 200

    stored = Span.objects.get()
    assert stored.inputs == "what is 2+2?"
    assert [e["attributes"]["n"] for e in stored.events] == [0, 1]


def test_odd_stored_events_do_not_fail_a_join(client):
    post_native(client, events=[{"name": ["x"], "time_unix_nano": 1, "attributes": {}}])

    response = post_logs(
        client, logs(record("gen_ai.user.message", {"content": "hi"}, **NATIVE_IDS))
    )

    assert response.status_code == 200
    assert Span.objects.get().inputs == {"messages": [{"role": "user", "content": "hi"}]}


def test_events_cut_at_the_size_cap_are_left_as_they_are(client, settings):
    settings.SPYGLASS_MAX_SPAN_FIELD_BYTES = 2_000
    post_native(client, events=[{"name": "exception", "time_unix_nano": 1,
                                 "attributes": {"trace": "x" * 3_000}}])  # fmt: skip
    marker = Span.objects.get().events
    assert isinstance(marker, dict)  # the truncation marker

    result = record("gen_ai.evaluation.result", attributes={"n": 1}, **NATIVE_IDS)
    assert post_logs(client, logs(result)).status_code == 200

    assert Span.objects.get().events == marker
    assert len(SpanLogEvents.objects.get().events) == 1  # still kept


def test_a_details_record_beside_a_span_with_one_side_fills_the_other_only(client, experiment):
    """`span_and_event` on a span that holds its input messages only: the record's input
    messages are not shown again beside them."""
    messages = [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
    answer_parts = [{"role": "assistant", "parts": [{"type": "text", "content": "hello"}]}]
    post_spans(client, chat_span(**{"gen_ai.input.messages": json.dumps(messages)}), experiment.pk)
    details = record(
        "gen_ai.client.inference.operation.details",
        attributes={
            "gen_ai.input.messages": json.dumps(messages),
            "gen_ai.output.messages": json.dumps(answer_parts),
        },
    )

    post_logs(client, logs(details), experiment.pk)

    stored = Span.objects.get()
    assert stored.inputs == {"messages": [{"role": "user", "content": "hi"}]}
    assert stored.outputs["choices"][0]["message"] == {"role": "assistant", "content": "hello"}
    assert stored.events == []


def test_a_span_stored_through_the_native_api_gets_its_records_too(client):
    """Records first, then the span through `POST /api/v1/traces/` (MLflow's span shape, with
    an event whose time is not a number): the span reads its messages from them."""
    post_logs(client, logs(record("gen_ai.user.message", {"content": "hi"}, **NATIVE_IDS)))

    post_native(client, events=[{"name": "note", "time_unix_nano": "soon", "attributes": {}}])

    assert Span.objects.get().inputs == {"messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("big", [1e17, 1e20])
def test_a_record_sent_again_is_recognised_whatever_its_numbers(client, experiment, big):
    """PostgreSQL's jsonb gives 1e20 back as an integer: a retried record must still match
    the kept one, and nothing may fail on it."""
    post_spans(client, chat_span(), experiment.pk)
    result = record("gen_ai.evaluation.result", {"x": 1}, attributes={"big": big})

    codes = [post_logs(client, logs(result), experiment.pk).status_code for _ in range(3)]
    codes.append(post_spans(client, chat_span(), experiment.pk).status_code)

    assert codes == [200] * 4
    assert len(SpanLogEvents.objects.get().events) == 1
    assert len(Span.objects.get().events) == 1


def test_what_a_record_leaves_on_the_span_is_there_once_however_often_it_comes(client, experiment):
    post_spans(client, chat_span(), experiment.pk)
    message = record("gen_ai.user.message", {"content": "hi"}, attributes={"session": "s1"})

    for _ in range(3):
        post_logs(client, logs(message), experiment.pk)
    post_spans(client, chat_span(), experiment.pk)

    stored = Span.objects.get()
    assert stored.inputs == {"messages": [{"role": "user", "content": "hi"}]}
    assert [e["attributes"] for e in stored.events] == [{"session": "s1"}]


def test_a_retried_record_keeps_the_inputs_it_gave(client, experiment):
    post_spans(client, chat_span(), experiment.pk)
    messages = [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
    details = record(
        "gen_ai.client.inference.operation.details",
        {"gen_ai.input.messages": messages, "note": "x"},
    )

    for _ in range(2):
        post_logs(client, logs(details), experiment.pk)

    assert Span.objects.get().inputs == {"messages": [{"role": "user", "content": "hi"}]}
