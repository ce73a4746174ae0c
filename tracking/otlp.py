"""OpenTelemetry OTLP/HTTP span ingest (`POST /v1/traces`, protobuf and JSON).

Any OpenTelemetry SDK or collector can export here (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=
<spyglass>/v1/traces`, protocol `http/protobuf`). The body is an `ExportTraceServiceRequest`
decoded by opentelemetry-proto, as binary protobuf or OTLP/JSON, optionally gzip- or
deflate-compressed. Spans go through `tracking.ingest.store`, so a span sent twice is stored
once and spans of one trace may come in any number of requests, before or after the MLflow
trace info. `POST /v1/logs` (tracking/otlp_logs.py, GenAI events) is read by the same
`receive`, with the same contract.

Contract (OTLP spec, "OTLP/HTTP Response"):
- 200 with an empty `ExportTraceServiceResponse`, in the request's encoding (empty bytes, or
  `{}` for JSON).
- 400 for input that cannot be decoded or stored (content type, encoding, protobuf, JSON, ids,
  times, unknown experiment), 413 for a body over DATA_UPLOAD_MAX_MEMORY_SIZE, before or after
  decompression, 411 for a chunked body without Content-Length (Django cannot read one). The
  error body is a `google.rpc.Status` with a developer-facing `message`, in the request's
  encoding (JSON `{"code": 3, "message": ...}` when the content type is unknown), as the
  spec requires; OTel exporters log it. Nothing is 5xx, so no exporter retries bad input,
  and a batch is stored whole or not at all.
- The experiment is the `x-mlflow-experiment-id` header (MLflow's OTLP convention), else the
  Default experiment "0". The caller needs EDIT there, and on the experiments of the traces
  the spans join; else 403 with a PERMISSION_DENIED Status and nothing is stored.

Mapping onto `SpanData`:
- trace id -> `tr-<32 hex>` (or a well-formed `mlflow.traceRequestId` attribute), span and
  parent ids -> 16 hex; an end time of 0 is an open span.
- MLflow attributes arrive natively typed (the mlflow client's own exporter) or JSON-encoded
  (MLflow spans through the stock OTel exporter: `"\\"CHAIN\\""`); both give the same row.
- GenAI conventions fill what MLflow attributes leave empty (`tracking.genai`): OpenInference,
  then OpenTelemetry `gen_ai.*` attributes and span events, as OpenAI-shaped chat inputs and
  outputs; token counts become `mlflow.chat.tokenUsage`, as on MLflow's own spans.
- Resource attributes other than `telemetry.sdk.*` and `mlflow.*` (e.g. `service.name`) become
  trace tags, as MLflow's server does.
"""

from __future__ import annotations

import base64
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.utils.log import log_response
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan

from access.models import Level
from access.rules import Denied, access_for
from tracking import genai, genai_logs
from tracking.ingest import TOKEN_USAGE_ATTRIBUTE, TRACE_ID_RE, IngestError, SpanData, make_span
from tracking.ingest import store as ingest_store
from tracking.models import DEFAULT_EXPERIMENT_ID, Experiment, Trace
from webapp import json_limits
from webapp.errors import RETRY_AFTER_SECONDS, database_unavailable

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# `application/protobuf` is the registered name some clients use for the same bytes.
_CONTENT_TYPES = {PROTOBUF: PROTOBUF, "application/protobuf": PROTOBUF, JSON: JSON}
EXPERIMENT_HEADER = "x-mlflow-experiment-id"
# Used when DATA_UPLOAD_MAX_MEMORY_SIZE is None: decompression always needs a cap.
FALLBACK_MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_NANOS = 2**63 - 1  # the span columns are signed 64-bit

# google.rpc.Code values carried in the error Status (informational per the OTLP spec).
_INVALID_ARGUMENT = 3
_RESOURCE_EXHAUSTED = 8
_INTERNAL = 13
_UNAVAILABLE_CODE = 14
_CODES = {413: _RESOURCE_EXHAUSTED, 500: _INTERNAL, 503: _UNAVAILABLE_CODE}
_UNAVAILABLE = "The database is busy or unreachable; nothing was stored. Retry shortly."

_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}
# INTERNAL is the default kind and says nothing; the others (a server handling a request, a
# client calling out) are worth seeing beside the span.
_KIND = {2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)

# MLflow's span attributes (protocol §6) and the columns they fill.
_MLFLOW_TRACE_ID = "mlflow.traceRequestId"
_MLFLOW_TYPE = "mlflow.spanType"
_MLFLOW_INPUTS = "mlflow.spanInputs"
_MLFLOW_OUTPUTS = "mlflow.spanOutputs"
_MLFLOW_JSON_KEYS = (_MLFLOW_INPUTS, _MLFLOW_OUTPUTS, TOKEN_USAGE_ATTRIBUTE)

_HEX = re.compile(r"[0-9a-fA-F]+")


class OtlpError(Exception):
    """A request answered with an error Status; `message` is shown to the client."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(slots=True)
class Batch:
    """What one export request stores: spans, and trace tags from resource attributes."""

    spans: list[SpanData] = field(default_factory=list)
    trace_tags: dict[str, dict[str, str]] = field(default_factory=dict)


# --- The view -------------------------------------------------------------------------------


@csrf_exempt
@require_POST
def export_traces(request: HttpRequest) -> HttpResponse:
    """OTLP/HTTP trace export: decode, store, answer an empty ExportTraceServiceResponse."""

    def handle(body: bytes, encoding: str, experiment_id: int) -> Message | HttpResponse:
        batch = decode_request(parse(body, encoding, ExportTraceServiceRequest))
        trace_ids = {span.trace_id for span in batch.spans}
        if refusal := refuse(request, trace_ids, experiment_id, encoding):
            return refusal
        store(batch, experiment_id)
        return ExportTraceServiceResponse()

    return receive(request, handle)


Handler = Callable[[bytes, str, int], "Message | HttpResponse"]


def receive(request: HttpRequest, handle: Handler) -> HttpResponse:
    """What every OTLP/HTTP signal shares: the content type, the experiment header, the body
    (decompressed and capped), and errors answered as a Status. `handle(body, encoding,
    experiment_id)` decodes and stores, and answers the export response message (or a
    refusal)."""
    encoding = _CONTENT_TYPES.get(request.content_type.lower())
    if encoding is None:
        return _error(
            OtlpError(f"Content-Type must be {PROTOBUF} or {JSON}, got {request.content_type!r}."),
            JSON,
        )
    try:
        experiment_id = _experiment_id(request)
        answer = handle(_decompressed_body(request), encoding, experiment_id)
    except OtlpError as exc:
        return _error(exc, encoding)
    except IngestError as exc:
        return _error(OtlpError(exc.message), encoding)
    except Exception as exc:
        # Still a Status, which exporters read: 503 (retried, after Retry-After) when the
        # database is busy or down, else 500 with the error logged as Django logs one.
        if database_unavailable(exc):
            response = _error(OtlpError(_UNAVAILABLE, 503), encoding)
            response["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response
        log_response(
            "Internal Server Error: %s", request.path, response=HttpResponse(status=500),
            request=request, exception=exc,
        )  # fmt: skip
        return _error(OtlpError("The server failed; the error is logged.", 500), encoding)
    if isinstance(answer, HttpResponse):
        return answer
    if encoding == JSON:
        return HttpResponse(json_format.MessageToJson(answer, indent=None), content_type=JSON)
    return HttpResponse(answer.SerializeToString(), content_type=PROTOBUF)


def refuse(
    request: HttpRequest, trace_ids: set[str], experiment_id: int, encoding: str
) -> HttpResponse | None:
    """403 PERMISSION_DENIED (google.rpc.Code 7) unless the caller may edit the experiment new
    traces go to and those of the stored traces the request joins; None when it may."""
    access = access_for(request)
    if access.can_everywhere(Level.EDIT):
        return None
    joined = Trace.objects.filter(trace_id__in=trace_ids)
    touched = {experiment_id, *joined.order_by().values_list("experiment_id", flat=True)}
    try:
        for experiment in sorted(touched):
            access.require(Level.EDIT, experiment)
    except Denied as denied:
        status = Status(code=7, message=str(denied))
        if encoding == JSON:
            return HttpResponse(
                json_format.MessageToJson(status, indent=None), status=403, content_type=JSON
            )
        return HttpResponse(status.SerializeToString(), status=403, content_type=encoding)
    return None


def store(batch: Batch, experiment_id: int = DEFAULT_EXPERIMENT_ID) -> None:
    """Store a decoded batch; new traces are filed under `experiment_id`."""
    if not batch.spans:
        # An empty export is a success (OTLP spec), but a wrong experiment should still show.
        check_experiment(experiment_id)
        return
    ingest_store(
        spans=batch.spans, default_experiment_id=experiment_id, trace_tags=batch.trace_tags
    )
    # GenAI log records (/v1/logs) kept for these spans join them (again, if re-sent).
    genai_logs.join((s.trace_id, s.span_id) for s in batch.spans)


def _experiment_id(request: HttpRequest) -> int:
    raw = request.headers.get(EXPERIMENT_HEADER, "").strip()
    if not raw:
        return DEFAULT_EXPERIMENT_ID
    # 18 digits keeps the id inside a signed bigint on every backend.
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise OtlpError(f"{EXPERIMENT_HEADER} must be an experiment id (a number), got {raw!r}.")
    return int(raw)


def check_experiment(experiment_id: int) -> None:
    if not Experiment.objects.filter(pk=experiment_id).exists():
        raise OtlpError(f"Experiment {experiment_id} does not exist.")


def _max_body_bytes() -> int:
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE or FALLBACK_MAX_BODY_BYTES


def _decompressed_body(request: HttpRequest) -> bytes:
    if not request.META.get("CONTENT_LENGTH") and "chunked" in request.headers.get(
        "Transfer-Encoding", ""
    ):
        # Django reads a body by its Content-Length only: a chunked one would arrive empty
        # and be acknowledged as an export of nothing.
        raise OtlpError("Send the body with a Content-Length; chunked bodies are not read.", 411)
    try:
        # Django refuses a Content-Length over DATA_UPLOAD_MAX_MEMORY_SIZE before reading.
        body = request.body
    except RequestDataTooBig:
        limit = _max_body_bytes()
        raise OtlpError(f"The request body is over the limit of {limit} bytes.", 413) from None
    coding = request.headers.get("Content-Encoding", "").strip().lower()
    return decompress(body, coding, _max_body_bytes())


# gzip members are framed; HTTP's "deflate" is a zlib stream, though some clients send raw
# deflate, which is tried when the zlib header is missing.
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def decompress(body: bytes, coding: str, limit: int) -> bytes:
    """Undo a Content-Encoding, never producing more than `limit` bytes: a small compressed
    body can expand a thousandfold (a "zip bomb"), so output is capped as it is produced."""
    if coding in ("", "identity"):
        return body
    wbits = _WBITS.get(coding)
    if wbits is None:
        raise OtlpError(f"Content-Encoding must be gzip, deflate or none, got {coding!r}.")
    if coding == "deflate" and not _has_zlib_header(body):
        wbits = -zlib.MAX_WBITS
    out = bytearray()
    data = body
    try:
        while data:  # a gzip body may hold several members, one after the other
            stream = zlib.decompressobj(wbits)
            out += stream.decompress(data, limit + 1 - len(out))
            if len(out) > limit:
                raise OtlpError(
                    f"The decompressed request body is over the limit of {limit} bytes.", 413
                )
            if not stream.eof:
                raise OtlpError(f"The {coding} request body is truncated.")
            data = stream.unused_data
    except zlib.error as exc:
        raise OtlpError(f"The request body is not valid {coding} data: {exc}.") from None
    return bytes(out)


def _has_zlib_header(body: bytes) -> bool:
    return len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0


# --- Errors: a google.rpc.Status, as the OTLP spec asks -------------------------------------


def _status_class() -> type:
    """google.rpc.Status built from its two wire fields in a private descriptor pool.

    The message class lives in googleapis-common-protos, which only the OTel exporters pull
    in; a private pool avoids that dependency and any clash with it when both are loaded.
    """
    proto = descriptor_pb2.FileDescriptorProto(
        name="spyglass/google_rpc_status.proto", package="google.rpc", syntax="proto3"
    )
    status = proto.message_type.add(name="Status")
    status.field.add(name="code", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT32)
    status.field.add(name="message", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.Status"))


Status = _status_class()


def _error(exc: OtlpError, encoding: str) -> HttpResponse:
    code = _CODES.get(exc.status, _INVALID_ARGUMENT)
    status = Status(code=code, message=exc.message)
    if encoding == JSON:
        body = json_format.MessageToJson(status, indent=None).encode()
    else:
        body = status.SerializeToString()
    return HttpResponse(body, status=exc.status, content_type=encoding)


# --- Parsing the two encodings --------------------------------------------------------------


def parse(body: bytes, encoding: str, message: type[Message]) -> Any:
    """An export request of type `message` from the body, in the request's encoding."""
    return parse_json(body, message) if encoding == JSON else parse_protobuf(body, message)


def parse_protobuf(body: bytes, message: type[Message] = ExportTraceServiceRequest) -> Any:
    try:
        return message.FromString(body)
    except DecodeError as exc:
        name = message.DESCRIPTOR.name
        raise OtlpError(f"The body is not an {name} protobuf: {exc}.") from None


def parse_json(body: bytes, message: type[Message] = ExportTraceServiceRequest) -> Any:
    """OTLP/JSON: protobuf's JSON mapping, except that trace and span ids are hex strings
    (OTLP spec, "JSON Protobuf Encoding"); they are turned into base64 before parsing."""
    name = message.DESCRIPTOR.name
    try:
        data = json_limits.loads(body)
    except json_limits.JsonError as exc:
        raise OtlpError(f"The body is {exc.message}.") from None
    if not isinstance(data, dict):
        raise OtlpError(f"The body must be a JSON object (an {name}).")
    _hex_ids_to_base64(data)
    _refuse_inexact_integers(data)
    try:
        # Unknown fields must be ignored (OTLP spec): newer clients add fields.
        return json_format.ParseDict(data, message(), ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise OtlpError(f"The body is not an OTLP/JSON {name}: {exc}") from None


_ID_FIELDS = {
    "traceId": 16,
    "trace_id": 16,
    "spanId": 8,
    "span_id": 8,
    "parentSpanId": 8,
    "parent_span_id": 8,
}


def _hex_ids_to_base64(data: Any) -> None:
    """Rewrite hex ids in place. Ids that are not hex of the right length are left for the
    parser: base64 ids (what protobuf's own JSON printer writes) are accepted as they are,
    and anything else fails there or at the id length check."""
    for resource_spans in _items(data, "resourceSpans", "resource_spans"):
        for scope_spans in _items(resource_spans, "scopeSpans", "scope_spans"):
            for span in _items(scope_spans, "spans"):
                _rewrite_ids(span)
                for link in _items(span, "links"):
                    _rewrite_ids(link)
    for resource_logs in _items(data, "resourceLogs", "resource_logs"):
        for scope_logs in _items(resource_logs, "scopeLogs", "scope_logs"):
            for record in _items(scope_logs, "logRecords", "log_records"):
                _rewrite_ids(record)


_INT_FIELDS = frozenset({"intValue", "int_value"})


def _refuse_inexact_integers(data: Any) -> None:
    """A JSON integer past 64 bits reaches us as a rounded float (orjson), which protobuf
    would take as the nearest int64: refuse it instead of storing another number. (Smaller
    integral floats, `5.0`, are exact and stay accepted, as protobuf's JSON mapping says.)"""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key in _INT_FIELDS and isinstance(value, float) and abs(value) >= 2**53:
                    raise OtlpError(f"{key} {value!r} is not a 64-bit integer.")
                if isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, dict | list))


def _items(obj: Any, *keys: str) -> list[Any]:
    if isinstance(obj, dict):
        for key in keys:
            value = obj.get(key)
            if isinstance(value, list):
                # protobuf's JSON parser reads a string in place of a message as an empty
                # message: a malformed export would be acknowledged as one of nothing.
                if not all(isinstance(item, dict) for item in value):
                    raise OtlpError(f"Each item of {key} must be a JSON object.")
                return value
    return []


def _rewrite_ids(obj: Any) -> None:
    if not isinstance(obj, dict):
        return
    for key, size in _ID_FIELDS.items():
        value = obj.get(key)
        if isinstance(value, str) and len(value) == size * 2 and _HEX.fullmatch(value):
            obj[key] = base64.b64encode(bytes.fromhex(value)).decode()


# --- Decoding spans -------------------------------------------------------------------------


def decode_request(export: ExportTraceServiceRequest) -> Batch:
    """Turn an export request into SpanData and per-trace tags. Needs no database."""
    count = sum(len(scope.spans) for rs in export.resource_spans for scope in rs.scope_spans)
    limit = settings.SPYGLASS_OTLP_MAX_SPANS
    if count > limit:
        # Refused before any span becomes Python objects: those, not the body, are what a
        # request of many tiny spans costs in memory (README, "Memory per web worker").
        raise OtlpError(
            f"The request holds {count} spans, over the limit of {limit} per request: "
            "export in smaller batches.", 413,
        )  # fmt: skip
    batch = Batch()
    for r, resource_spans in enumerate(export.resource_spans):
        tags = resource_tags(resource_spans.resource.attributes)
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            for i, otlp_span in enumerate(scope_spans.spans):
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"
                span = decode_span(otlp_span, where)
                batch.spans.append(span)
                if tags:
                    batch.trace_tags.setdefault(span.trace_id, {}).update(tags)
    return batch


def decode_span(otlp: OtlpSpan, where: str = "span") -> SpanData:
    trace_hex = _id_hex(otlp.trace_id, 16, where, "traceId")
    span_hex = _id_hex(otlp.span_id, 8, where, "spanId")
    parent = otlp.parent_span_id
    # An all-zero parent is OTel's "invalid span id", i.e. no parent.
    parent_hex = (
        "" if not parent or parent == _ZERO_SPAN_ID else _id_hex(parent, 8, where, "parentSpanId")
    )

    start_ns = otlp.start_time_unix_nano
    end_ns = otlp.end_time_unix_nano
    if not start_ns:
        raise IngestError(f"{where}.startTimeUnixNano is required.")
    if start_ns > MAX_NANOS or end_ns > MAX_NANOS:
        raise IngestError(f"{where} has a time after the year 2262.")

    attrs = _mlflow_attributes(decode_attributes(otlp.attributes))
    request_id = attrs.pop(_MLFLOW_TRACE_ID, None)
    trace_id = (
        request_id
        if type(request_id) is str and TRACE_ID_RE.fullmatch(request_id)
        else f"tr-{trace_hex}"
    )
    if otlp.kind in _KIND:
        attrs["otel.span_kind"] = _KIND[otlp.kind]

    events = [_event(event) for event in otlp.events]
    span_type, inputs, outputs, events = _semantics(attrs, events)
    return make_span(
        where=where,
        trace_id=trace_id,
        span_id=span_hex,
        parent_span_id=parent_hex,
        name=otlp.name,
        start_ns=start_ns,
        end_ns=end_ns or None,
        span_type=span_type,
        status=_STATUS.get(otlp.status.code, "UNSET"),
        status_message=otlp.status.message,
        inputs=inputs,
        outputs=outputs,
        attributes=attrs,
        events=events,
    )


def valid_id(raw: bytes, size: int) -> bool:
    """A trace (16 bytes) or span (8 bytes) id: that long, and not all zero (OTel's invalid)."""
    return len(raw) == size and raw != (_ZERO_TRACE_ID if size == 16 else _ZERO_SPAN_ID)


def _id_hex(raw: bytes, size: int, where: str, name: str) -> str:
    if not valid_id(raw, size):
        raise IngestError(
            f"{where}.{name} must be {size} bytes, not all zero ({size * 2} hex characters in "
            f"OTLP/JSON); got {len(raw)} bytes."
        )
    return raw.hex()


def _event(event: OtlpSpan.Event) -> dict[str, Any]:
    # The shape of MLflow's `traces.json` events, so both paths render alike.
    return {
        "name": event.name,
        "time_unix_nano": event.time_unix_nano,
        "attributes": decode_attributes(event.attributes),
    }


def decode_attributes(attributes: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in attributes}


def any_value(value: AnyValue) -> Any:
    """An OTLP AnyValue as plain JSON-able Python (bytes as base64, as OTLP/JSON shows them)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "double_value":
        return value.double_value
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None  # empty, or a kind only profiles use (string_value_strindex)


def resource_tags(attributes: Iterable[KeyValue]) -> dict[str, str]:
    """Trace tags from resource attributes: all but the SDK's and MLflow's own, as strings."""
    tags = {}
    for kv in attributes:
        key = kv.key
        if key.startswith(("telemetry.sdk.", "mlflow.")):
            continue
        value = any_value(kv.value)
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        # PostgreSQL's jsonb refuses NUL.
        tags[key.replace("\x00", "")] = text.replace("\x00", "")
    return tags


def _mlflow_attributes(attrs: dict[str, Any]) -> dict[str, Any]:
    """Undo MLflow's JSON encoding of attribute values where it was kept.

    MLflow spans exported by the stock OTel exporter keep MLflow's JSON-encoded values
    (`"\\"CHAIN\\""`, user attributes included); the mlflow client's own exporter sends native
    values. The trace id and span type, always strings, tell which. Other senders set MLflow's
    inputs/outputs as JSON text beside a plain span type, so those are read as JSON if they
    parse, as MLflow's server does.
    """
    marker = attrs.get(_MLFLOW_TRACE_ID) or attrs.get(_MLFLOW_TYPE)
    if type(marker) is str and len(marker) > 1 and marker[0] == '"' and marker[-1] == '"':
        return {key: genai.loads_or_keep(value) for key, value in attrs.items()}
    for key in _MLFLOW_JSON_KEYS:
        if type(attrs.get(key)) is str:
            attrs[key] = genai.loads_or_keep(attrs[key])
    return attrs


# --- GenAI semantics: span type, inputs/outputs, token usage --------------------------------


def _semantics(
    attrs: dict[str, Any], events: list[dict[str, Any]]
) -> tuple[str, Any, Any, list[dict[str, Any]]]:
    """Span type, inputs, outputs and the events left, from MLflow's attributes, else from the
    GenAI conventions (`tracking.genai`).

    Attributes and events that become inputs/outputs are removed, so large prompts are not
    stored twice; token counts are summarised into `mlflow.chat.tokenUsage` and kept as sent.
    """
    span_type = attrs.pop(_MLFLOW_TYPE, None)
    if type(span_type) is not str or span_type in ("", "UNKNOWN"):
        span_type = genai.span_type(attrs) or "UNKNOWN"
    has_inputs, has_outputs = _MLFLOW_INPUTS in attrs, _MLFLOW_OUTPUTS in attrs
    inputs, outputs, events = genai.inputs_outputs(
        attrs, events, inputs=not has_inputs, outputs=not has_outputs
    )
    inputs = attrs.pop(_MLFLOW_INPUTS) if has_inputs else inputs
    outputs = attrs.pop(_MLFLOW_OUTPUTS) if has_outputs else outputs
    usage = genai.token_usage(attrs)
    if usage:
        attrs[TOKEN_USAGE_ATTRIBUTE] = usage
    else:
        attrs.pop(TOKEN_USAGE_ATTRIBUTE, None)
    return (
        span_type,
        None if inputs is genai.MISSING else inputs,
        None if outputs is genai.MISSING else outputs,
        events,
    )
