"""Trace payloads as clients send them: OTLP protobuf, and the mlflow client's pair of
StartTraceV3 info and `traces.json` spans (for these two, span i's parent is span (i - 1) // 3),
and a whole MLflow trace for `ingest`."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1 import trace_pb2

T0 = 1_795_294_591_376_191_837


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


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


def trace_info(trace_id: str, experiment_id: int, **fields: Any) -> dict:
    """A TraceInfoV3 as the mlflow client starts a trace with; `fields` replace its own."""
    return {
        "trace_id": trace_id,
        "trace_location": {
            "type": "MLFLOW_EXPERIMENT",
            "mlflow_experiment": {"experiment_id": str(experiment_id)},
        },
        "request_time": "2026-11-21T20:56:31.290Z",
        "execution_duration": "0.085s",
        "state": "OK",
        **fields,
    }


def mlflow_info(trace_id: bytes, experiment_id: int) -> bytes:
    info = trace_info(f"tr-{trace_id.hex()}", experiment_id, tags={"mlflow.traceName": "agent"})
    return json.dumps({"trace": {"trace_info": info}}).encode()


def mlflow_client_trace(
    experiment_id: int, names: tuple[str, ...] = ("span-0", "span-1"), **info_fields: Any
) -> tuple[dict, list[dict]]:
    """A StartTraceV3 info and its `traces.json` spans as the mlflow client sends them, with
    fresh random ids: the first name is the root, the others its children. `info_fields`
    replace fields of the info."""
    otel_id = os.urandom(16)
    trace_id = f"tr-{otel_id.hex()}"
    ids = [os.urandom(8) for _ in names]
    spans = [
        {
            "trace_id": b64(otel_id),
            "span_id": b64(ids[i]),
            "parent_span_id": b64(ids[0]) if i else None,
            "name": name,
            "start_time_unix_nano": T0 + i,
            "end_time_unix_nano": T0 + 1000,
            "events": [],
            "status": {"code": "STATUS_CODE_OK", "message": ""},
            "attributes": {
                "mlflow.traceRequestId": json.dumps(trace_id),
                "mlflow.spanType": json.dumps("CHAIN"),
                "mlflow.spanInputs": json.dumps({"i": i}),
                "mlflow.spanOutputs": json.dumps(f"out-{i}"),
            },
            "links": [],
        }
        for i, name in enumerate(names)
    ]
    info = trace_info(
        trace_id,
        experiment_id,
        **{
            "trace_metadata": {"mlflow.trace_schema.version": "3"},
            "tags": {"mlflow.traceName": names[0]},
            **info_fields,
        },
    )
    return info, spans


def mlflow_spans(trace_id: bytes, n_spans: int) -> bytes:
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


def mlflow_trace(n_spans: int, *, error: bool = False, seed: bytes | None = None) -> dict:
    """An MLflow-shaped trace: TraceInfoV3 plus `traces.json` span dicts (protocol §5, §6.1).

    Span i's parent is span (i - 1) // 4, so the tree is a few levels deep.
    """
    otel_trace_id = seed or os.urandom(16)
    trace_id = f"tr-{otel_trace_id.hex()}"
    span_ids = [os.urandom(8) for _ in range(n_spans)]
    spans = []
    for i, span_id in enumerate(span_ids):
        failed = error and i == 0
        spans.append(
            {
                "trace_id": b64(otel_trace_id),
                "span_id": b64(span_id),
                "parent_span_id": None if i == 0 else b64(span_ids[(i - 1) // 4]),
                "name": "agent" if i == 0 else f"step-{i}",
                "start_time_unix_nano": T0 + i * 1_000,
                "end_time_unix_nano": T0 + (n_spans * 1_000 + 500 if i == 0 else i * 1_000 + 900),
                "events": [
                    {
                        "name": "exception",
                        "time_unix_nano": T0 + 10,
                        "attributes": {
                            "exception.type": "ValueError",
                            "exception.message": "kaboom",
                            "exception.stacktrace": "Traceback ...",
                        },
                    }
                ]
                if failed
                else [],
                "status": {
                    "code": "STATUS_CODE_ERROR" if failed else "STATUS_CODE_OK",
                    "message": "ValueError: kaboom" if failed else "",
                },
                "attributes": {
                    "mlflow.traceRequestId": json.dumps(trace_id),
                    "mlflow.spanType": json.dumps("AGENT" if i == 0 else "LLM"),
                    "mlflow.spanInputs": json.dumps(
                        {"messages": [{"role": "user", "content": f"question {i}"}]}
                    ),
                    "mlflow.spanOutputs": json.dumps({"answer": f"answer {i}"}),
                    "mlflow.spanLogLevel": "20",
                    "agent.version": json.dumps("1.2"),
                },
                "links": [],
            }
        )
    info = {
        "trace_id": trace_id,
        "trace_location": {
            "type": "MLFLOW_EXPERIMENT",
            "mlflow_experiment": {"experiment_id": "0"},
        },
        "request_time": "2026-11-21T20:56:31.376Z",
        "execution_duration": "0.085s",
        "state": "ERROR" if error else "OK",
        "trace_metadata": {
            "mlflow.trace_schema.version": "3",
            "mlflow.modelId": "m-" + "a" * 32,
            "mlflow.trace.tokenUsage": json.dumps(
                {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
            ),
        },
        "tags": {"mlflow.traceName": "agent", "session": "s-1"},
        "request_preview": "question 0",
        "response_preview": "answer 0",
    }
    return {"trace_id": trace_id, "info": info, "spans": spans}
