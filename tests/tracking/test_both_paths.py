"""One trace sent through both client paths (OTLP and MLflow's StartTraceV3 + traces.json),
in either order and twice over, is stored once."""

from __future__ import annotations

import base64
import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.payloads import mlflow_trace
from tracking.models import Span, Trace


def otlp_body(trace: dict) -> bytes:
    """The trace's spans as the stock OTel exporter sends MLflow spans (JSON-encoded values)."""
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for span in trace["spans"]:
        otlp = scope.spans.add(
            trace_id=base64.b64decode(span["trace_id"]),
            span_id=base64.b64decode(span["span_id"]),
            name=span["name"],
            start_time_unix_nano=span["start_time_unix_nano"],
            end_time_unix_nano=span["end_time_unix_nano"],
        )
        if span["parent_span_id"]:
            otlp.parent_span_id = base64.b64decode(span["parent_span_id"])
        otlp.attributes.extend(
            KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in span["attributes"].items()
        )
    return request.SerializeToString()


def send_otlp(client, trace: dict) -> None:
    response = client.post(
        "/v1/traces", data=otlp_body(trace), content_type="application/x-protobuf"
    )
    assert response.status_code == 200, response.content


def send_mlflow(client, trace: dict) -> None:
    response = client.post(
        "/api/3.0/mlflow/traces",
        data={"trace": {"trace_info": trace["info"]}},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    response = client.put(
        f"/api/2.0/mlflow-artifacts/artifacts/0/traces/{trace['trace_id']}/artifacts/traces.json",
        data=json.dumps({"spans": trace["spans"]}),
        content_type="text/plain",
    )
    assert response.status_code == 200, response.content


@pytest.mark.django_db
@pytest.mark.parametrize("order", ["otlp-first", "mlflow-first"])
def test_a_trace_sent_both_ways_twice_is_stored_once(client, order, tmp_path, settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path},
        },
    }
    trace = mlflow_trace(12)
    senders = [send_otlp, send_mlflow] if order == "otlp-first" else [send_mlflow, send_otlp]

    for send in senders * 2:
        send(client, trace)

    stored = Trace.objects.get(trace_id=trace["trace_id"])
    assert Trace.objects.count() == 1
    assert Span.objects.filter(trace=stored).count() == 12
    assert stored.span_count == 12
    assert stored.has_info
    assert stored.duration_ns == 85_000_000
    root = stored.spans.get(parent_span_id="")
    assert root.inputs == {"messages": [{"role": "user", "content": "question 0"}]}
