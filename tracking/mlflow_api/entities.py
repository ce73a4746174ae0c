"""Rows as MLflow's JSON entities: Experiment, Run, LoggedModel, TraceInfoV3 and spans, and
the model registry's RegisteredModel and ModelVersion.

Shapes follow the protobuf-JSON the real server sends (mlflow-protocol.md §3, §5, §6); the
client parses them with `ignore_unknown_fields`, so only what it reads matters. Times go out
as epoch milliseconds, except TraceInfoV3, which uses protobuf Timestamp/Duration strings.
Spans come in two shapes: the `traces.json` span dicts (JSON-encoded attribute values) and
the OTLP proto-JSON of `traces/get` (typed AnyValues).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from tracking.models import (
    Assessment,
    Experiment,
    LoggedModel,
    Metric,
    ModelVersion,
    RegisteredModel,
    Run,
    Span,
    Trace,
)
from tracking.storage import (
    ARTIFACT_SCHEME,
    model_artifact_path,
    run_artifact_path,
    trace_artifact_path,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ARTIFACT_LOCATION_TAG = "mlflow.artifactLocation"

_SPAN_STATUS = {"UNSET": "STATUS_CODE_UNSET", "OK": "STATUS_CODE_OK", "ERROR": "STATUS_CODE_ERROR"}
_INT64 = range(-(2**63), 2**63)


# --- Time ------------------------------------------------------------------------------------


def to_ms(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def from_ms(millis: int) -> datetime:
    return EPOCH + timedelta(milliseconds=millis)


def timestamp_text(moment: datetime) -> str:
    """A protobuf-JSON Timestamp: RFC 3339 in UTC, with 3 or 6 fractional digits."""
    moment = moment.astimezone(UTC)
    fraction = f".{moment.microsecond // 1000:03d}"
    if moment.microsecond % 1000:
        fraction = f".{moment.microsecond:06d}"
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def duration_text(nanos: int) -> str:
    """A protobuf-JSON Duration ("0.085s"), exact to the nanosecond."""
    seconds, rest = divmod(nanos, 1_000_000_000)
    if rest == 0:
        return f"{seconds}s"
    if rest % 1_000_000 == 0:
        return f"{seconds}.{rest // 1_000_000:03d}s"
    if rest % 1000 == 0:
        return f"{seconds}.{rest // 1000:06d}s"
    return f"{seconds}.{rest:09d}s"


# --- Artifact locations --------------------------------------------------------------------


def experiment_artifact_location(experiment: Experiment) -> str:
    return experiment.artifact_location or f"{ARTIFACT_SCHEME}{experiment.pk}"


def run_artifact_uri(run: Run) -> str:
    return ARTIFACT_SCHEME + run_artifact_path(run.experiment_id, run.run_id)


def model_artifact_uri(experiment_id: int, model_id: str) -> str:
    return ARTIFACT_SCHEME + model_artifact_path(experiment_id, model_id)


# --- Experiments and runs ------------------------------------------------------------------


def key_values(mapping: dict[str, Any]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in mapping.items()]


def experiment_json(experiment: Experiment) -> dict[str, Any]:
    data: dict[str, Any] = {
        "experiment_id": str(experiment.pk),
        "name": experiment.name,
        "artifact_location": experiment_artifact_location(experiment),
        "lifecycle_stage": experiment.lifecycle_stage,
        "last_update_time": to_ms(experiment.updated_at),
        "creation_time": to_ms(experiment.created_at),
    }
    if experiment.tags:
        data["tags"] = key_values(experiment.tags)
    return data


def run_info_json(run: Run) -> dict[str, Any]:
    info: dict[str, Any] = {
        "run_uuid": run.run_id,
        "run_id": run.run_id,
        "experiment_id": str(run.experiment_id),
        "run_name": run.name,
        "user_id": run.user_id,
        "status": run.status,
        "start_time": to_ms(run.start_time),
        "artifact_uri": run_artifact_uri(run),
        "lifecycle_stage": run.lifecycle_stage,
    }
    if run.end_time is not None:
        info["end_time"] = to_ms(run.end_time)
    return info


def metric_json(metric: Metric, *, with_owner: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "key": metric.key,
        "value": number_json(metric.value),
        "timestamp": metric.timestamp_ms,
        "step": metric.step,
    }
    if with_owner:
        if metric.dataset_name:
            data["dataset_name"] = metric.dataset_name
        if metric.dataset_digest:
            data["dataset_digest"] = metric.dataset_digest
    return data


def number_json(value: float) -> float | str:
    """protobuf-JSON spells the doubles that JSON has no literal for as strings."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def run_json(
    run: Run, metrics: Iterable[Metric] = (), model_ids: Iterable[str] = ()
) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if metrics := [metric_json(m) for m in metrics]:
        data["metrics"] = metrics
    if run.params:
        data["params"] = key_values(run.params)
    if run.tags:
        data["tags"] = key_values(run.tags)
    outputs = [{"model_id": model_id, "step": 0} for model_id in model_ids]
    return {
        "info": run_info_json(run),
        "data": data,
        "inputs": run.inputs or {},
        "outputs": {"model_outputs": outputs} if outputs else {},
    }


# --- Logged models -------------------------------------------------------------------------


def logged_model_json(model: LoggedModel, metrics: Iterable[Metric] = ()) -> dict[str, Any]:
    info: dict[str, Any] = {
        "model_id": model.model_id,
        "experiment_id": str(model.experiment_id),
        "name": model.name,
        "creation_timestamp_ms": to_ms(model.created_at),
        "last_updated_timestamp_ms": to_ms(model.updated_at),
        "artifact_uri": model.artifact_location
        or model_artifact_uri(model.experiment_id, model.model_id),
        "status": model.status,
        "model_type": model.model_type,
        "source_run_id": model.source_run.run_id if model.source_run else "",
    }
    if model.status_message:
        info["status_message"] = model.status_message
    if model.tags:
        info["tags"] = key_values(model.tags)
    data: dict[str, Any] = {}
    if model.params:
        data["params"] = key_values(model.params)
    metric_rows = []
    for metric in metrics:
        row = metric_json(metric, with_owner=True)
        row["model_id"] = model.model_id
        metric_rows.append(row)
    if metric_rows:
        data["metrics"] = metric_rows
    return {"info": info, "data": data}


# --- Traces --------------------------------------------------------------------------------


def trace_tags(trace: Trace) -> dict[str, str]:
    """A trace's tags with `mlflow.artifactLocation`, which is always set: it is where the
    client reads and writes `traces.json`, and the client needs it for any artifact-based
    span access."""
    tags = dict(trace.tags or {})
    tags[ARTIFACT_LOCATION_TAG] = ARTIFACT_SCHEME + trace_artifact_path(
        trace.experiment_id, trace.trace_id
    )
    return tags


def trace_info_json(trace: Trace, assessments: Iterable[Assessment] = ()) -> dict[str, Any]:
    """TraceInfoV3, tags as `trace_tags`. `assessments` are all of the trace's, overridden
    ones too, as MLflow sends them."""
    tags = trace_tags(trace)
    info: dict[str, Any] = {
        "trace_id": trace.trace_id,
        "trace_location": {
            "type": "MLFLOW_EXPERIMENT",
            "mlflow_experiment": {"experiment_id": str(trace.experiment_id)},
        },
        "request_time": timestamp_text(trace.request_time),
        "state": trace.state,
        "trace_metadata": dict(trace.metadata or {}),
        "tags": tags,
    }
    if trace.duration_ns is not None:
        info["execution_duration"] = duration_text(trace.duration_ns)
    if trace.request_preview:
        info["request_preview"] = trace.request_preview
    if trace.response_preview:
        info["response_preview"] = trace.response_preview
    if assessment_list := [assessment_json(a, trace.trace_id) for a in assessments]:
        info["assessments"] = assessment_list
    return info


def trace_info_v2_json(trace: Trace) -> dict[str, Any]:
    """TraceInfo (V2, MLflow's deprecated trace API): epoch milliseconds, `status` named as
    `state` is, `request_metadata` (V3's trace_metadata) and tags as key/value lists. An
    unfinished trace's execution time is 0, as MLflow's proto sends it."""
    return {
        "request_id": trace.trace_id,
        "experiment_id": str(trace.experiment_id),
        "timestamp_ms": to_ms(trace.request_time),
        "execution_time_ms": (trace.duration_ns or 0) // 1_000_000,
        "status": trace.state,
        "request_metadata": key_values(trace.metadata or {}),
        "tags": key_values(trace_tags(trace)),
    }


# Expectation values the protobuf Value holds as they are; others go as JSON text, as the
# client writes them (`ExpectationValue.to_proto`) and MLflow's server sends them back.
_SCALARS = (bool, int, float, str)


def assessment_json(assessment: Assessment, trace_id: str) -> dict[str, Any]:
    """An Assessment message (assessments.proto): feedback or expectation, its source, times."""
    source = {"source_type": assessment.source_type}
    if assessment.source_id:
        source["source_id"] = assessment.source_id
    data: dict[str, Any] = {
        "assessment_id": assessment.assessment_id,
        "assessment_name": assessment.name,
        "trace_id": trace_id,
        "source": source,
        "create_time": timestamp_text(assessment.created_at),
        "last_update_time": timestamp_text(assessment.updated_at),
        # Always sent: protobuf-JSON would drop a false, and readers of the dict form
        # (`Assessment.from_dictionary`) take a missing one as true.
        "valid": assessment.valid,
    }
    if assessment.is_feedback:
        feedback: dict[str, Any] = {"value": assessment.value}
        if error := {k: v for k, v in (assessment.error or {}).items() if v}:
            feedback["error"] = error
        data["feedback"] = feedback
    elif assessment.value is None or isinstance(assessment.value, _SCALARS):
        data["expectation"] = {"value": assessment.value}
    else:
        serialized = json.dumps(assessment.value, ensure_ascii=False)
        data["expectation"] = {
            "serialized_value": {"serialization_format": "JSON_FORMAT", "value": serialized}
        }
    if assessment.span_id:
        data["span_id"] = assessment.span_id
    if assessment.rationale:
        data["rationale"] = assessment.rationale
    if assessment.metadata:
        data["metadata"] = dict(assessment.metadata)
    if assessment.overrides:
        data["overrides"] = assessment.overrides
    return data


def _id_base64(hex_id: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_id)).decode()


def otel_trace_id(trace_id: str) -> str:
    """The base64 OTel trace id inside an MLflow id (`tr-<32 hex>`)."""
    return _id_base64(trace_id.removeprefix("tr-"))


def _event_parts(event: dict[str, Any]) -> tuple[str, int, dict[str, Any]]:
    # Events are stored as the client sent them; OTLP decoders may use camelCase.
    time_ns = event.get("time_unix_nano", event.get("timeUnixNano", 0))
    attributes = event.get("attributes") or {}
    if isinstance(attributes, list):  # OTLP key/value list
        attributes = {a.get("key"): a.get("value") for a in attributes if isinstance(a, dict)}
    try:
        time_ns = int(time_ns)
    except (TypeError, ValueError):
        time_ns = 0
    return str(event.get("name", "")), time_ns, attributes


def _mlflow_attributes(span: Span, trace_id: str) -> dict[str, Any]:
    """Span attributes with the ones ingest moved into columns put back, decoded."""
    attributes: dict[str, Any] = {
        "mlflow.traceRequestId": trace_id,
        "mlflow.spanType": span.span_type,
    }
    if span.inputs is not None:
        attributes["mlflow.spanInputs"] = span.inputs
    attributes.update(span.attributes or {})
    if span.outputs is not None:
        attributes["mlflow.spanOutputs"] = span.outputs
    return attributes


def span_dict(span: Span, trace_id: str) -> dict[str, Any]:
    """One span of `traces.json` (MLflow's "v3" span dict): base64 ids, and every attribute
    value JSON-encoded, as `Span.to_dict()` writes it and `Span.from_dict()` reads it."""
    events = []
    for event in span.events or []:
        name, time_ns, attributes = _event_parts(event)
        events.append({"name": name, "time_unix_nano": time_ns, "attributes": attributes})
    return {
        "trace_id": otel_trace_id(trace_id),
        "span_id": _id_base64(span.span_id),
        "parent_span_id": _id_base64(span.parent_span_id) if span.parent_span_id else None,
        "name": span.name,
        "start_time_unix_nano": span.start_ns,
        "end_time_unix_nano": span.end_ns,
        "events": events,
        "status": {
            "code": _SPAN_STATUS.get(span.status, "STATUS_CODE_UNSET"),
            "message": span.status_message,
        },
        "attributes": {
            key: json.dumps(value, ensure_ascii=False)
            for key, value in _mlflow_attributes(span, trace_id).items()
        },
        "links": [],
    }


def any_value(value: Any) -> dict[str, Any]:
    """A decoded attribute value as an OTLP AnyValue in protobuf-JSON."""
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"bool_value": value}
    if isinstance(value, int):
        return {"int_value": value} if value in _INT64 else {"string_value": str(value)}
    if isinstance(value, float):
        return {"double_value": number_json(value)}
    if isinstance(value, list):
        return {"array_value": {"values": [any_value(v) for v in value]}}
    if isinstance(value, dict):
        return {
            "kvlist_value": {
                "values": [{"key": str(k), "value": any_value(v)} for k, v in value.items()]
            }
        }
    return {"string_value": str(value)}


def otel_span_json(span: Span, trace_id: str) -> dict[str, Any]:
    """One span as the OTLP proto-JSON that `traces/get` and `batchGet` return."""
    data: dict[str, Any] = {
        "trace_id": otel_trace_id(trace_id),
        "span_id": _id_base64(span.span_id),
        "name": span.name,
        "start_time_unix_nano": span.start_ns,
        "attributes": [
            {"key": key, "value": any_value(value)}
            for key, value in _mlflow_attributes(span, trace_id).items()
        ],
        "events": [],
        "status": {
            "code": _SPAN_STATUS.get(span.status, "STATUS_CODE_UNSET"),
            "message": span.status_message,
        },
    }
    if span.parent_span_id:
        data["parent_span_id"] = _id_base64(span.parent_span_id)
    if span.end_ns is not None:
        data["end_time_unix_nano"] = span.end_ns
    for event in span.events or []:
        name, time_ns, attributes = _event_parts(event)
        data["events"].append(
            {
                "name": name,
                "time_unix_nano": time_ns,
                "attributes": [{"key": k, "value": any_value(v)} for k, v in attributes.items()],
            }
        )
    return data


# --- Model registry ------------------------------------------------------------------------


def model_version_json(version: ModelVersion) -> dict[str, Any]:
    """A ModelVersion; versions are strings on the wire. Reads `version.registered_model`
    (its name and aliases), so select it with the version."""
    data: dict[str, Any] = {
        "name": version.registered_model.name,
        "version": str(version.version),
        "creation_timestamp": to_ms(version.created_at),
        "last_updated_timestamp": to_ms(version.updated_at),
        "current_stage": version.current_stage,
        "description": version.description,
        "source": version.source,
        "run_id": version.run_id,
        "status": version.status,
    }
    if version.model_id:
        data["model_id"] = version.model_id
    if version.tags:
        data["tags"] = key_values(version.tags)
    if aliases := version.aliases:
        data["aliases"] = aliases
    return data


def registered_model_json(
    model: RegisteredModel, latest_versions: Iterable[ModelVersion] = ()
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": model.name,
        "creation_timestamp": to_ms(model.created_at),
        "last_updated_timestamp": to_ms(model.updated_at),
    }
    if model.description:
        data["description"] = model.description
    if latest := [model_version_json(v) for v in latest_versions]:
        data["latest_versions"] = latest
    if model.tags:
        data["tags"] = key_values(model.tags)
    if model.aliases:
        data["aliases"] = [
            {"alias": alias, "version": str(number)}
            for alias, number in sorted(model.aliases.items())
        ]
    return data
