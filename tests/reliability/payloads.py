"""Trace payloads as clients send them: OTLP protobuf, and the mlflow client's pair of
StartTraceV3 info and `traces.json` spans. Span i's parent is span (i - 1) // 3."""

from __future__ import annotations

import base64
import json

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1 import trace_pb2

T0 = 1_795_294_591_376_191_837


def span_id(i: int) -> bytes:
    return (i + 1).to_bytes(8, "big")


def otlp_body(trace_id: bytes, n_spans: int) -> bytes:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for i in range(n_spans):
        spans.append(
            trace_pb2.Span(
                trace_id=trace_id,
                span_id=span_id(i),
                parent_span_id=span_id((i - 1) // 3) if i else b"",
                name="agent" if i == 0 else f"step-{i}",
                start_time_unix_nano=T0 + i * 1000,
                end_time_unix_nano=T0 + i * 1000 + 900 + (n_spans * 1000 if i == 0 else 0),
                attributes=[
                    KeyValue(key="input.value", value=AnyValue(string_value=f"question {i}")),
                    KeyValue(key="output.value", value=AnyValue(string_value=f"answer {i}")),
                ],
                status=trace_pb2.Status(code=1),
            )
        )
    return request.SerializeToString()


def mlflow_info(trace_id: bytes, experiment_id: int) -> bytes:
    info = {
        "trace_id": f"tr-{trace_id.hex()}",
        "trace_location": {
            "type": "MLFLOW_EXPERIMENT",
            "mlflow_experiment": {"experiment_id": str(experiment_id)},
        },
        "request_time": "2026-11-21T20:56:31.290Z",
        "execution_duration": "0.085s",
        "state": "OK",
        "tags": {"mlflow.traceName": "agent"},
    }
    return json.dumps({"trace": {"trace_info": info}}).encode()


def mlflow_spans(trace_id: bytes, n_spans: int) -> bytes:
    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    spans = [
        {
            "trace_id": b64(trace_id),
            "span_id": b64(span_id(i)),
            "parent_span_id": b64(span_id((i - 1) // 3)) if i else None,
            "name": "agent" if i == 0 else f"step-{i}",
            "start_time_unix_nano": T0 + i * 1000,
            "end_time_unix_nano": T0 + i * 1000 + 900,
            "events": [],
            "status": {"code": "STATUS_CODE_OK", "message": ""},
            "attributes": {
                "mlflow.traceRequestId": json.dumps(f"tr-{trace_id.hex()}"),
                "mlflow.spanType": json.dumps("CHAIN"),
                "mlflow.spanInputs": json.dumps({"q": i}),
                "mlflow.spanOutputs": json.dumps({"a": i}),
            },
        }
        for i in range(n_spans)
    ]
    return json.dumps({"spans": spans}).encode()


def traces_json_path(trace_id: bytes, experiment_id: int) -> str:
    return (
        f"/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/traces/"
        f"tr-{trace_id.hex()}/artifacts/traces.json"
    )
