"""OTLP ingest: the decoder as pure functions, and `POST /v1/traces` with Django's test client
(error paths, what a bad request leaves behind, merges). The real OpenTelemetry SDK exporter
drives the view in tests/interop/test_otel_sdk.py."""

from __future__ import annotations

import base64
import gzip
import json
import os
import zlib
from typing import Any

import pytest
from google.protobuf import json_format
from google.rpc.status_pb2 import Status  # the real message, to check our error bodies
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1 import trace_pb2

from tracking import ingest, otlp
from tracking.ingest import IngestError
from tracking.models import Experiment, Span, Trace

T0 = 1_795_294_591_376_191_837
TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
ROOT_ID = bytes.fromhex("eee19b7ec3c1b174")
CHILD_ID = bytes.fromhex("0102030405060708")

# Bodies the mlflow 3.17 client sent to a real MLflow server (../shared/mlflow-capture.jsonl):
# seq 37, its own exporter (native AnyValue attributes), and seq 108, an MLflow span through
# the stock OTel exporter (MLflow's JSON-encoded attribute strings).
MLFLOW_NATIVE_BODY = base64.b64decode(
    "CsMDCmcKIgoWdGVsZW1ldHJ5LnNkay5sYW5ndWFnZRIICgZweXRob24KHgoSdGVsZW1ldHJ5LnNkay5uYW1lEggK"
    "Bm1sZmxvdwohChV0ZWxlbWV0cnkuc2RrLnZlcnNpb24SCAoGMy4xNy4yEtcCEtQCChD9PHyz2taQmpJJCoBuiYtR"
    "EghYcJ/4K/v3bCoFYWdlbnQ5ERbB+/Yq6hhBy2WEAfcq6hhKPgoVbWxmbG93LnRyYWNlUmVxdWVzdElkEiUKI3Ry"
    "LWZkM2M3Y2IzZGFkNjkwOWE5MjQ5MGE4MDZlODk4YjUxShoKD21sZmxvdy5zcGFuVHlwZRIHCgVBR0VOVEoiChdt"
    "bGZsb3cuc3BhbkZ1bmN0aW9uTmFtZRIHCgVhZ2VudEo7ChFtbGZsb3cuc3BhbklucHV0cxImMiQKIgoBcRIdChto"
    "b3cgZG8gSSByZXNldCBteSBwYXNzd29yZD9KQQoSbWxmbG93LnNwYW5PdXRwdXRzEisyKQonCgZhbnN3ZXISHQob"
    "SE9XIERPIEkgUkVTRVQgTVkgUEFTU1dPUkQ/ShkKE21sZmxvdy5zcGFuTG9nTGV2ZWwSAhgUegIYAQ=="
)
MLFLOW_JSON_ENCODED_BODY = base64.b64decode(
    "CuMFCmcKIgoWdGVsZW1ldHJ5LnNkay5sYW5ndWFnZRIICgZweXRob24KHgoSdGVsZW1ldHJ5LnNkay5uYW1lEggK"
    "Bm1sZmxvdwohChV0ZWxlbWV0cnkuc2RrLnZlcnNpb24SCAoGMy4xNy4yEvcEChkKF21sZmxvdy50cmFjaW5nLnBy"
    "b3ZpZGVyEq8CChDwhgZTk10KG1+z3NnQEl4+EggzR2AN3144qCIIZ5e0cAZPZhkqBmhlbHBlcjABOTl5PDoPK+oY"
    "QXbTRToPK+oYSkAKFW1sZmxvdy50cmFjZVJlcXVlc3RJZBInCiUidHItZjA4NjA2NTM5MzVkMGExYjVmYjNkY2Q5"
    "ZDAxMjVlM2UiSh4KD21sZmxvdy5zcGFuVHlwZRILCgkiVU5LTk9XTiJKJQoXbWxmbG93LnNwYW5GdW5jdGlvbk5h"
    "bWUSCgoIImhlbHBlciJKHwoRbWxmbG93LnNwYW5JbnB1dHMSCgoIeyJ4IjogNH1KGgoSbWxmbG93LnNwYW5PdXRw"
    "dXRzEgQKAjQwShsKE21sZmxvdy5zcGFuTG9nTGV2ZWwSBAoCMTB6AhgBhQEAAQAAEqcCChDwhgZTk10KG1+z3NnQ"
    "El4+Eghnl7RwBk9mGSoIdmlhX290bHAwATm+tCI6DyvqGEHqmUc6DyvqGEpAChVtbGZsb3cudHJhY2VSZXF1ZXN0"
    "SWQSJwolInRyLWYwODYwNjUzOTM1ZDBhMWI1ZmIzZGNkOWQwMTI1ZTNlIkocCg9tbGZsb3cuc3BhblR5cGUSCQoH"
    "IkNIQUlOIkonChdtbGZsb3cuc3BhbkZ1bmN0aW9uTmFtZRIMCgoidmlhX290bHAiSh8KEW1sZmxvdy5zcGFuSW5w"
    "dXRzEgoKCHsieCI6IDR9ShoKEm1sZmxvdy5zcGFuT3V0cHV0cxIECgI0MUobChNtbGZsb3cuc3BhbkxvZ0xldmVs"
    "EgQKAjEwegIYAYUBAAEAAA=="
)


# --- Building OTLP messages -----------------------------------------------------------------


def any_value(value: Any) -> AnyValue:
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        out = AnyValue()
        out.array_value.values.extend(any_value(v) for v in value)
        return out
    if isinstance(value, dict):
        out = AnyValue()
        out.kvlist_value.values.extend(key_values(value))
        return out
    return AnyValue()


def key_values(values: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in values.items()]


def span(
    name: str = "root",
    *,
    trace_id: bytes = TRACE_ID,
    span_id: bytes = ROOT_ID,
    parent: bytes = b"",
    start: int = T0,
    end: int = T0 + 5_000_000,
    attributes: dict[str, Any] | None = None,
    events: list[trace_pb2.Span.Event] = (),
    status: int = 1,
    message: str = "",
    kind: int = trace_pb2.Span.SPAN_KIND_INTERNAL,
) -> trace_pb2.Span:
    return trace_pb2.Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        kind=kind,
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        attributes=key_values(attributes or {}),
        events=events,
        status=trace_pb2.Status(code=status, message=message),
    )


def export(*spans: trace_pb2.Span, resource: dict[str, Any] | None = None):
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(key_values(resource or {}))
    resource_spans.scope_spans.add().spans.extend(spans)
    return request


def decode_one(otlp_span: trace_pb2.Span) -> ingest.SpanData:
    (decoded,) = otlp.decode_request(export(otlp_span)).spans
    return decoded


def as_otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """OTLP/JSON as the spec writes it: protobuf's JSON mapping, ids as hex."""
    data = json_format.MessageToDict(request)
    for resource_spans in data.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for s in scope_spans.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in s:
                        s[key] = base64.b64decode(s[key]).hex()
    return json.dumps(data).encode()


# --- The decoder, no database ---------------------------------------------------------------


def test_any_value_decodes_every_kind():
    values = {
        "s": "text",
        "b": True,
        "i": -42,
        "d": 0.5,
        "a": ["x", 1, [True]],
        "kv": {"nested": {"deep": 1.5}, "list": []},
        "raw": b"\x00\xff",
    }
    attrs = otlp.decode_attributes(key_values(values))
    assert attrs == {**values, "raw": "AP8="}
    assert otlp.any_value(AnyValue()) is None


def test_ids_become_mlflow_trace_ids_and_hex_span_ids():
    decoded = decode_one(span(parent=CHILD_ID))
    assert decoded.trace_id == "tr-5b8efff798038103d269b633813fc60c"
    assert decoded.span_id == "eee19b7ec3c1b174"
    assert decoded.parent_span_id == "0102030405060708"
    assert decode_one(span()).parent_span_id == ""
    assert decode_one(span(parent=bytes(8))).parent_span_id == ""  # OTel's "no parent"


def test_a_well_formed_mlflow_trace_request_id_names_the_trace():
    own = "tr-" + "ab" * 16
    assert decode_one(span(attributes={"mlflow.traceRequestId": own})).trace_id == own
    odd = decode_one(span(attributes={"mlflow.traceRequestId": "not-an-id"}))
    assert odd.trace_id == "tr-5b8efff798038103d269b633813fc60c"
    assert "mlflow.traceRequestId" not in odd.attributes


def test_the_mlflow_clients_own_exporter_fills_the_columns():
    request = otlp.parse_protobuf(MLFLOW_NATIVE_BODY)
    (agent,) = otlp.decode_request(request).spans
    assert agent.trace_id == "tr-fd3c7cb3dad6909a92490a806e898b51"
    assert agent.name == "agent"
    assert agent.span_type == "AGENT"
    assert agent.status == "OK"
    assert agent.inputs == {"q": "how do I reset my password?"}
    assert agent.outputs == {"answer": "HOW DO I RESET MY PASSWORD?"}
    assert agent.attributes == {"mlflow.spanFunctionName": "agent", "mlflow.spanLogLevel": 20}


def test_mlflow_spans_through_the_stock_exporter_are_json_decoded():
    request = otlp.parse_protobuf(MLFLOW_JSON_ENCODED_BODY)
    helper, root = otlp.decode_request(request).spans
    assert root.trace_id == helper.trace_id == "tr-f0860653935d0a1b5fb3dcd9d0125e3e"
    assert (root.name, root.span_type, root.inputs, root.outputs) == (
        "via_otlp",
        "CHAIN",
        {"x": 4},
        41,
    )
    assert (helper.span_type, helper.parent_span_id) == ("UNKNOWN", root.span_id)
    assert helper.attributes == {"mlflow.spanFunctionName": "helper", "mlflow.spanLogLevel": 10}


def test_both_mlflow_encodings_give_the_same_span():
    values = {
        "mlflow.traceRequestId": "tr-" + TRACE_ID.hex(),
        "mlflow.spanType": "RETRIEVER",
        "mlflow.spanInputs": {"query": "reset password", "k": 3},
        "mlflow.spanOutputs": [{"doc": "a", "score": 0.9}],
        "mlflow.chat.tokenUsage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
        "user.tags": ["x", "y"],
        "user.label": "plain",
    }
    native = decode_one(span(attributes=values))
    encoded = decode_one(span(attributes={k: json.dumps(v) for k, v in values.items()}))
    assert native == encoded
    assert native.span_type == "RETRIEVER"
    assert native.inputs == {"query": "reset password", "k": 3}
    assert native.attributes["mlflow.chat.tokenUsage"]["total_tokens"] == 7


def test_json_text_inputs_beside_a_plain_span_type_are_parsed():
    # What a hand-written OTLP/JSON client sent to MLflow (capture e4).
    decoded = decode_one(
        span(attributes={"mlflow.spanType": "AGENT", "mlflow.spanInputs": '{"q": "hi"}'})
    )
    assert (decoded.span_type, decoded.inputs) == ("AGENT", {"q": "hi"})
    assert decode_one(span(attributes={"mlflow.spanOutputs": "plain words"})).outputs == (
        "plain words"
    )


@pytest.mark.parametrize(
    ("code", "expected"), [(0, "UNSET"), (1, "OK"), (2, "ERROR"), (7, "UNSET")]
)
def test_status_codes_map_from_the_enum(code, expected):
    assert decode_one(span(status=code)).status == expected


def test_an_exception_event_is_kept_with_its_attributes():
    event = trace_pb2.Span.Event(
        name="exception",
        time_unix_nano=T0 + 10,
        attributes=key_values({"exception.type": "ValueError", "exception.message": "kaboom"}),
    )
    decoded = decode_one(span(status=2, message="ValueError: kaboom", events=[event]))
    assert (decoded.status, decoded.status_message) == ("ERROR", "ValueError: kaboom")
    assert decoded.events == [
        {
            "name": "exception",
            "time_unix_nano": T0 + 10,
            "attributes": {"exception.type": "ValueError", "exception.message": "kaboom"},
        }
    ]


def test_an_end_time_of_zero_is_an_open_span():
    assert decode_one(span(end=0)).end_ns is None


def test_span_kind_is_kept_unless_internal():
    assert decode_one(span(kind=trace_pb2.Span.SPAN_KIND_CLIENT)).attributes == {
        "otel.span_kind": "CLIENT"
    }
    assert decode_one(span(kind=trace_pb2.Span.SPAN_KIND_INTERNAL)).attributes == {}


@pytest.mark.parametrize(
    ("operation", "span_type"),
    [
        ("chat", "CHAT_MODEL"),
        ("text_completion", "LLM"),
        ("generate_content", "LLM"),
        ("embeddings", "EMBEDDING"),
        ("execute_tool", "TOOL"),
        ("invoke_agent", "AGENT"),
        ("create_agent", "AGENT"),
        ("retrieval", "RETRIEVER"),
        ("something_new", "UNKNOWN"),
    ],
)
def test_gen_ai_operations_give_span_types(operation, span_type):
    assert decode_one(span(attributes={"gen_ai.operation.name": operation})).span_type == span_type


def test_gen_ai_messages_and_usage_become_inputs_outputs_and_token_usage():
    messages_in = [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
    messages_out = [{"role": "assistant", "parts": [{"type": "text", "content": "hello"}]}]
    decoded = decode_one(
        span(
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o-mini",
                # JSON text, as the conventions specify for SDKs without structured values
                "gen_ai.input.messages": json.dumps(messages_in),
                "gen_ai.output.messages": messages_out,
                "gen_ai.usage.input_tokens": 12,
                "gen_ai.usage.output_tokens": 5,
            }
        )
    )
    assert decoded.span_type == "CHAT_MODEL"
    # In the OpenAI chat shape every view reads (tracking/chat.py).
    assert decoded.inputs == {"messages": [{"role": "user", "content": "hi"}]}
    assert decoded.outputs == {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}]
    }
    assert decoded.attributes["mlflow.chat.tokenUsage"] == {
        "input_tokens": 12,
        "output_tokens": 5,
        "total_tokens": 17,
    }
    # Moved, not copied; the rest stays.
    assert "gen_ai.input.messages" not in decoded.attributes
    assert decoded.attributes["gen_ai.request.model"] == "gpt-4o-mini"


def test_older_gen_ai_prompt_attributes_are_read_too():
    flat = decode_one(
        span(
            attributes={
                "gen_ai.prompt.1.role": "user",
                "gen_ai.prompt.1.content": "and now?",
                "gen_ai.prompt.0.role": "system",
                "gen_ai.prompt.0.content": "be brief",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.content": "done",
                "gen_ai.usage.prompt_tokens": 9,
                "gen_ai.usage.completion_tokens": 1,
            }
        )
    )
    assert flat.inputs == {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "and now?"},
        ]
    }
    assert flat.outputs == {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "done"}}]
    }
    assert not any(
        key.startswith(("gen_ai.prompt", "gen_ai.completion")) for key in flat.attributes
    )
    assert flat.attributes["mlflow.chat.tokenUsage"]["total_tokens"] == 10
    plain = decode_one(span(attributes={"gen_ai.prompt": "Say hi", "gen_ai.completion": "hi"}))
    assert (plain.inputs, plain.outputs) == ("Say hi", "hi")


@pytest.mark.parametrize(
    "kind",
    [
        "LLM",
        "CHAIN",
        "TOOL",
        "RETRIEVER",
        "EMBEDDING",
        "AGENT",
        "RERANKER",
        "GUARDRAIL",
        "EVALUATOR",
    ],
)
def test_openinference_span_kinds_are_span_types(kind):
    assert decode_one(span(attributes={"openinference.span.kind": kind})).span_type == kind


def test_openinference_values_and_token_counts():
    decoded = decode_one(
        span(
            attributes={
                "openinference.span.kind": "LLM",
                "input.value": '{"messages": [{"role": "user", "content": "hi"}]}',
                "input.mime_type": "application/json",
                "output.value": '{"not": "parsed"}',
                "output.mime_type": "text/plain",
                "llm.token_count.prompt": 20,
                "llm.token_count.completion": 3,
                "llm.token_count.total": 23,
            }
        )
    )
    assert decoded.inputs == {"messages": [{"role": "user", "content": "hi"}]}
    assert decoded.outputs == '{"not": "parsed"}'  # text/plain stays text
    assert decoded.attributes["mlflow.chat.tokenUsage"] == {
        "input_tokens": 20,
        "output_tokens": 3,
        "total_tokens": 23,
    }


def test_mlflow_attributes_win_over_the_conventions():
    decoded = decode_one(
        span(
            attributes={
                "mlflow.spanType": "CHAT_MODEL",
                "mlflow.spanInputs": {"from": "mlflow"},
                "openinference.span.kind": "LLM",
                "input.value": "from openinference",
            }
        )
    )
    assert (decoded.span_type, decoded.inputs) == ("CHAT_MODEL", {"from": "mlflow"})
    # ...except an UNKNOWN type, which says nothing.
    unknown = decode_one(
        span(attributes={"mlflow.spanType": "UNKNOWN", "gen_ai.operation.name": "chat"})
    )
    assert unknown.span_type == "CHAT_MODEL"


def test_token_usage_keeps_only_counts_the_database_can_sum():
    decoded = decode_one(
        span(
            attributes={
                "mlflow.chat.tokenUsage": {
                    "input_tokens": "7",
                    "output_tokens": 2.0,
                    "total_tokens": "lots",
                }
            }
        )
    )
    assert decoded.attributes["mlflow.chat.tokenUsage"] == {"input_tokens": 7, "output_tokens": 2}
    junk = decode_one(
        span(attributes={"mlflow.chat.tokenUsage": "lots", "gen_ai.usage.input_tokens": True})
    )
    assert "mlflow.chat.tokenUsage" not in junk.attributes


def test_resource_attributes_become_trace_tags():
    batch = otlp.decode_request(
        export(
            span(),
            span("child", span_id=CHILD_ID, parent=ROOT_ID),
            resource={
                "service.name": "support-agent",
                "deployment.environment": "prod",
                "service.ports": [80, 443],
                "telemetry.sdk.name": "opentelemetry",
                "mlflow.experimentId": "1",
            },
        )
    )
    assert batch.trace_tags == {
        "tr-5b8efff798038103d269b633813fc60c": {
            "service.name": "support-agent",
            "deployment.environment": "prod",
            "service.ports": "[80,443]",
        }
    }


def test_otlp_json_ids_are_hex_and_give_the_same_spans_as_protobuf():
    request = export(span(), span("child", span_id=CHILD_ID, parent=ROOT_ID, attributes={"n": 1}))
    from_json = otlp.decode_request(otlp.parse_json(as_otlp_json(request))).spans
    assert from_json == otlp.decode_request(request).spans
    upper = as_otlp_json(request).replace(
        b"5b8efff798038103d269b633813fc60c", b"5B8EFFF798038103D269B633813FC60C"
    )
    assert otlp.decode_request(otlp.parse_json(upper)).spans[0].trace_id == from_json[0].trace_id
    # protobuf's own JSON printer writes base64 ids; those are read as well.
    base64_json = json_format.MessageToJson(request).encode()
    assert otlp.decode_request(otlp.parse_json(base64_json)).spans == from_json


def test_otlp_json_enum_numbers_and_unknown_fields():
    body = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": TRACE_ID.hex(),
                                "spanId": ROOT_ID.hex(),
                                "name": "json-root",
                                "kind": 2,
                                "startTimeUnixNano": str(T0),
                                "endTimeUnixNano": T0 + 10,
                                "status": {"code": 2, "message": "bad"},
                                "someFutureField": {"x": 1},
                            }
                        ]
                    }
                ]
            }
        ]
    }
    (decoded,) = otlp.decode_request(otlp.parse_json(json.dumps(body).encode())).spans
    assert (decoded.status, decoded.end_ns) == ("ERROR", T0 + 10)
    assert decoded.attributes == {"otel.span_kind": "SERVER"}


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ({"trace_id": b"short"}, "traceId must be 16 bytes"),
        ({"trace_id": bytes(16)}, "traceId must be 16 bytes"),
        ({"span_id": b""}, "spanId must be 8 bytes"),
        ({"parent": b"\x01" * 9}, "parentSpanId must be 8 bytes"),
        ({"start": 0}, "startTimeUnixNano is required"),
        ({"end": 2**64 - 1}, "after the year 2262"),
    ],
)
def test_bad_spans_raise_a_message_that_says_where(bad, fragment):
    request = export(span(), span("bad", **{"span_id": CHILD_ID, **bad}))
    with pytest.raises(IngestError) as caught:
        otlp.decode_request(request)
    assert fragment in caught.value.message
    assert "resourceSpans[0].scopeSpans[0].spans[1]" in caught.value.message


def test_a_span_ending_before_it_starts_is_kept_lasting_no_time():
    # Refused, it would take its whole batch with it: exporters drop a 400 for good.
    decoded = decode_one(span(start=T0, end=T0 - 1))

    assert (decoded.start_ns, decoded.end_ns) == (T0, T0)


def test_decompress_gzip_deflate_and_raw_deflate():
    data = b"spans" * 1000
    assert otlp.decompress(gzip.compress(data), "gzip", 10**6) == data
    assert otlp.decompress(gzip.compress(data) + gzip.compress(b"!"), "gzip", 10**6) == data + b"!"
    assert otlp.decompress(zlib.compress(data), "deflate", 10**6) == data
    raw = zlib.compressobj(wbits=-15)
    assert otlp.decompress(raw.compress(data) + raw.flush(), "deflate", 10**6) == data
    assert otlp.decompress(data, "identity", 10) == data


def test_a_zip_bomb_stops_at_the_cap():
    bomb = gzip.compress(bytes(1_000_000_000 // 100), compresslevel=9)  # 10 MB of zeros
    with pytest.raises(otlp.OtlpError) as caught:
        otlp.decompress(bomb, "gzip", 1_000_000)
    assert caught.value.status == 413


@pytest.mark.parametrize(
    ("body", "coding", "fragment"),
    [
        (gzip.compress(b"x" * 100)[:-12], "gzip", "truncated"),
        (b"not gzip at all", "gzip", "not valid gzip"),
        (b"abc", "br", "Content-Encoding must be"),
    ],
)
def test_bad_compression_is_a_bad_request(body, coding, fragment):
    with pytest.raises(otlp.OtlpError) as caught:
        otlp.decompress(body, coding, 10**6)
    assert (caught.value.status, fragment in caught.value.message) == (400, True)


def test_decoding_needs_no_database():
    # pytest-django refuses queries in tests without the db mark: this runs none.
    otlp.decode_request(otlp.parse_protobuf(MLFLOW_JSON_ENCODED_BODY))


# --- The view -------------------------------------------------------------------------------


@pytest.fixture
def experiment(db) -> Experiment:
    return Experiment.objects.create(name="otel")


def post(client, body: bytes, content_type: str = otlp.PROTOBUF, **headers: str):
    return client.post("/v1/traces", data=body, content_type=content_type, headers=headers)


def status_of(response) -> tuple[int, str]:
    """The error Status an OTLP client gets, decoded with the real google.rpc.Status."""
    if response["Content-Type"] == otlp.JSON:
        return response.status_code, json.loads(response.content)["message"]
    return response.status_code, Status.FromString(response.content).message


def tree(trace_id: bytes = TRACE_ID) -> ExportTraceServiceRequest:
    grandchild = os.urandom(8)
    return export(
        span(
            "grandchild",
            trace_id=trace_id,
            span_id=grandchild,
            parent=CHILD_ID,
            start=T0 + 2,
            end=T0 + 3,
        ),
        span(
            "child", trace_id=trace_id, span_id=CHILD_ID, parent=ROOT_ID, start=T0 + 1, end=T0 + 4
        ),
        span("root", trace_id=trace_id, attributes={"mlflow.spanInputs": {"q": "hi"}}),
        resource={"service.name": "agent-svc"},
    )


@pytest.mark.django_db
def test_it_stores_a_protobuf_export_and_answers_an_empty_response(client):
    response = post(client, tree().SerializeToString())

    assert response.status_code == 200
    assert response["Content-Type"] == otlp.PROTOBUF
    assert response.content == b""  # an empty ExportTraceServiceResponse
    trace = Trace.objects.get()
    assert (trace.trace_id, trace.name, trace.experiment_id) == (
        "tr-5b8efff798038103d269b633813fc60c",
        "root",
        0,
    )
    assert trace.tags["service.name"] == "agent-svc"
    assert trace.request_preview == '{"q":"hi"}'
    assert not trace.has_info
    parents = dict(Span.objects.values_list("name", "parent_span_id"))
    assert parents == {"root": "", "child": ROOT_ID.hex(), "grandchild": CHILD_ID.hex()}


@pytest.mark.django_db
def test_a_json_export_gets_a_json_answer(client):
    response = post(client, as_otlp_json(tree()), otlp.JSON)

    assert (response.status_code, response["Content-Type"], response.json()) == (200, otlp.JSON, {})
    assert Span.objects.count() == 3


@pytest.mark.django_db
def test_the_experiment_header_files_the_trace(client, experiment):
    response = post(
        client, tree().SerializeToString(), **{"x-mlflow-experiment-id": str(experiment.pk)}
    )

    assert response.status_code == 200
    assert Trace.objects.get().experiment == experiment


@pytest.mark.django_db
def test_gzip_and_deflate_bodies_are_accepted(client):
    body = tree().SerializeToString()
    assert post(client, gzip.compress(body), **{"Content-Encoding": "gzip"}).status_code == 200
    other = tree(os.urandom(16)).SerializeToString()
    assert post(client, zlib.compress(other), **{"Content-Encoding": "deflate"}).status_code == 200
    assert Trace.objects.count() == 2


@pytest.mark.django_db
def test_an_empty_export_is_a_success(client):
    # No spans: one resource with an empty scope (the test client drops the Content-Type of
    # a zero-length body, which no exporter sends).
    assert post(client, export().SerializeToString()).status_code == 200
    assert not Trace.objects.exists()


def bad_requests() -> list[tuple[str, dict[str, Any], int, str]]:
    good = tree().SerializeToString()
    bad_ids = export(span(), span("bad", span_id=b"\x01\x02")).SerializeToString()
    hex_json = as_otlp_json(export(span()))
    newline_id = hex_json.replace(TRACE_ID.hex().encode(), TRACE_ID.hex()[:-1].encode() + b"\\n")
    return [
        ("text/plain", {"body": good}, 400, "Content-Type must be application/x-protobuf"),
        (otlp.PROTOBUF, {"body": b"\xff\xff\xff garbage"}, 400, "not an ExportTraceServiceRequest"),
        (otlp.PROTOBUF, {"body": hex_json}, 400, "not an ExportTraceServiceRequest"),
        (otlp.JSON, {"body": b"{not json"}, 400, "not valid JSON"),
        (otlp.JSON, {"body": b'{"resourceSpans": 5}'}, 400, "not an OTLP/JSON"),
        (otlp.JSON, {"body": hex_json.replace(b'"name"', b'"name": 3, "x"')}, 400, "OTLP/JSON"),
        (otlp.PROTOBUF, {"body": bad_ids}, 400, "spans[1].spanId must be 8 bytes"),
        # `$` would match before the newline, and bytes.fromhex() skips whitespace.
        (otlp.JSON, {"body": newline_id}, 400, "traceId"),
        (
            otlp.PROTOBUF,
            {"body": good, "x-mlflow-experiment-id": "abc"},
            400,
            "must be an experiment id",
        ),
        (
            otlp.PROTOBUF,
            {"body": good, "x-mlflow-experiment-id": "987654"},
            400,
            "Experiment 987654 does not exist",
        ),
        (
            otlp.PROTOBUF,
            {"body": export().SerializeToString(), "x-mlflow-experiment-id": "987654"},
            400,
            "does not exist",
        ),
        (otlp.PROTOBUF, {"body": good, "Content-Encoding": "gzip"}, 400, "not valid gzip"),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(("content_type", "request_", "status", "fragment"), bad_requests())
def test_a_bad_request_is_refused_with_a_status_message_and_stores_nothing(
    client, content_type, request_, status, fragment
):
    request_ = dict(request_)
    response = post(client, request_.pop("body"), content_type, **request_)

    code, message = status_of(response)
    assert code == status
    assert fragment in message
    assert not Trace.objects.exists()
    assert not Span.objects.exists()


@pytest.mark.django_db
def test_a_body_over_the_upload_limit_is_413(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    response = post(client, export(span(attributes={"big": "x" * 2_000})).SerializeToString())

    assert status_of(response) == (413, "The request body is over the limit of 1000 bytes.")
    assert not Trace.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("number", ["-9223372036854775809", "18446744073709551616"])
def test_an_int_attribute_past_64_bits_is_refused_not_rounded(client, number):
    body = json.loads(json_format.MessageToJson(export(span(attributes={"n": 1}))))
    attributes = body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]
    text = json.dumps(body).replace(json.dumps(attributes[0]["value"]), f'{{"intValue": {number}}}')

    response = post(client, text.encode(), otlp.JSON)

    code, message = status_of(response)
    assert (code, "is not a 64-bit integer" in message) == (400, True)
    assert not Span.objects.exists()


@pytest.mark.django_db
def test_more_spans_than_one_request_may_carry_is_413_and_stores_none(client, settings):
    settings.SPYGLASS_OTLP_MAX_SPANS = 3
    ok = export(*(span(f"s{i}", span_id=os.urandom(8)) for i in range(3)))
    over = export(*(span(f"s{i}", trace_id=os.urandom(16), span_id=os.urandom(8))
                    for i in range(4)))  # fmt: skip

    assert post(client, ok.SerializeToString()).status_code == 200
    response = post(client, over.SerializeToString())

    code, message = status_of(response)
    assert (code, "holds 4 spans, over the limit of 3 per request" in message) == (413, True)
    assert Span.objects.count() == 3


@pytest.mark.django_db
def test_a_gzip_bomb_is_413_without_inflating_it(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100_000
    bomb = gzip.compress(bytes(50_000_000), compresslevel=9)  # ~50 KB that inflate to 50 MB
    assert len(bomb) < settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    response = post(client, bomb, **{"Content-Encoding": "gzip"})

    code, message = status_of(response)
    assert (code, "decompressed request body is over the limit" in message) == (413, True)


def test_a_chunked_body_without_length_is_refused_not_read_as_empty(rf):
    request = rf.post(
        "/v1/traces",
        data=tree().SerializeToString(),
        content_type=otlp.PROTOBUF,
        headers={"Transfer-Encoding": "chunked"},
    )
    del request.META["CONTENT_LENGTH"]

    response = otlp.export_traces(request)

    assert status_of(response) == (
        411,
        "Send the body with a Content-Length; chunked bodies are not read.",
    )


@pytest.mark.django_db
def test_only_post_is_allowed(client):
    assert client.get("/v1/traces").status_code == 405


@pytest.mark.django_db
def test_split_batches_and_resends_store_each_span_once(client):
    request = tree()
    spans = list(request.resource_spans[0].scope_spans[0].spans)
    for part in ([spans[0]], spans[1:], spans, spans):  # the child first, then all, twice over
        assert post(client, export(*part).SerializeToString()).status_code == 200

    trace = Trace.objects.get()
    assert (trace.span_count, Span.objects.count()) == (3, 3)
    assert (trace.name, trace.state) == ("root", "OK")


@pytest.mark.django_db
def test_spans_before_and_after_the_mlflow_trace_info_merge_into_one_trace(client, experiment):
    trace_id = "tr-" + TRACE_ID.hex()
    info = {
        "trace_id": trace_id,
        "trace_location": {"mlflow_experiment": {"experiment_id": str(experiment.pk)}},
        "request_time": "2026-11-21T20:56:31.290Z",
        "execution_duration": "0.085s",
        "state": "OK",
        "tags": {"mlflow.traceName": "from-info"},
    }
    spans = list(tree().resource_spans[0].scope_spans[0].spans)
    post(client, export(spans[0]).SerializeToString())
    ingest.store_trace(trace_info=info)  # what StartTraceV3 does
    post(client, export(*spans[1:], resource={"service.name": "late"}).SerializeToString())

    trace = Trace.objects.get()
    assert (trace.experiment, trace.name, trace.duration_ns) == (
        experiment,
        "from-info",
        85_000_000,
    )
    assert trace.has_info
    assert trace.tags["service.name"] == "late"
    assert trace.span_count == 3


@pytest.mark.django_db
def test_token_usage_from_gen_ai_spans_adds_up_on_the_trace(client):
    usage = {
        "gen_ai.operation.name": "chat",
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 2,
    }
    body = export(
        span("agent", attributes={"gen_ai.operation.name": "invoke_agent"}),
        span("llm-1", span_id=CHILD_ID, parent=ROOT_ID, attributes=usage),
        span("llm-2", span_id=os.urandom(8), parent=ROOT_ID, attributes=usage),
    ).SerializeToString()
    post(client, body)
    post(client, body)  # a retry does not count twice

    assert Trace.objects.get().total_tokens == 24
    assert set(Span.objects.values_list("span_type", flat=True)) == {"AGENT", "CHAT_MODEL"}


@pytest.mark.django_db
def test_hostile_text_is_stored(client):
    body = export(
        span(
            "nul\x00name",
            status=2,
            message="bad\x00news",
            attributes={"k\x00": "v\x00", "mlflow.spanInputs": "\x00"},
        ),
        resource={"service.name": "svc\x00", "weird\x00key": 1.5},
    ).SerializeToString()

    assert post(client, body).status_code == 200
    stored = Span.objects.get()
    assert (stored.name, stored.status_message) == ("nulname", "badnews")
    assert Trace.objects.get().tags["service.name"] == "svc"
