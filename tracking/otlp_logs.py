"""OpenTelemetry OTLP/HTTP log ingest (`POST /v1/logs`, protobuf and JSON): the GenAI events
that instrumentations send as log records.

Point an SDK's log exporter here beside its span exporter (`OTEL_EXPORTER_OTLP_ENDPOINT=
<spyglass>`, or `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=<spyglass>/v1/logs`), with the same
`x-mlflow-experiment-id` header. The request is read as `/v1/traces` reads its own
(tracking/otlp.py: encodings, compression, size caps, errors as a google.rpc.Status, EDIT on
the experiment and on the traces it joins).

What is kept: log records whose event name (the record's `event_name`, or its `event.name`
attribute from older SDKs) starts with `gen_ai.` and that name a span (trace and span id). They
become that span's events, and its inputs and outputs where they hold messages
(tracking/genai_logs.py). Spyglass is not a log store: any other record is acknowledged as
rejected in the response's `partial_success`, with the reason, and not stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from tracking import genai_logs, otlp

GENAI_PREFIX = "gen_ai."


@dataclass
class Found:
    """The GenAI events of one export request, per (trace id, span id), and how many
    records were not kept."""

    events: dict[genai_logs.Key, genai_logs.Events] = field(default_factory=dict)
    rejected: int = 0

    def response(self) -> ExportLogsServiceResponse:
        answer = ExportLogsServiceResponse()
        if self.rejected:
            answer.partial_success.rejected_log_records = self.rejected
            answer.partial_success.error_message = (
                f"{self.rejected} log records were not stored: Spyglass keeps GenAI events "
                f"(event names starting with {GENAI_PREFIX!r}) that name their span."
            )
        return answer


@csrf_exempt
@require_POST
def export_logs(request: HttpRequest) -> HttpResponse:
    """OTLP/HTTP log export: keep the GenAI events, answer an ExportLogsServiceResponse."""

    def handle(body: bytes, encoding: str, experiment_id: int) -> Any:
        found = decode_logs(otlp.parse(body, encoding, ExportLogsServiceRequest))
        trace_ids = {trace_id for trace_id, _ in found.events}
        if refusal := otlp.refuse(request, trace_ids, experiment_id, encoding):
            return refusal
        otlp.check_experiment(experiment_id)
        genai_logs.attach(found.events, experiment_id)
        return found.response()

    return otlp.receive(request, handle)


def decode_logs(export: ExportLogsServiceRequest) -> Found:
    """The GenAI events of an export request, as span events. Needs no database."""
    count = sum(len(scope.log_records) for rl in export.resource_logs for scope in rl.scope_logs)
    limit = settings.SPYGLASS_OTLP_MAX_SPANS
    if count > limit:
        raise otlp.OtlpError(
            f"The request holds {count} log records, over the limit of {limit} per request: "
            "export in smaller batches.", 413,
        )  # fmt: skip
    found = Found()
    for resource_logs in export.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                attributes = otlp.decode_attributes(record.attributes)
                # event_name is a field since OTLP 1.5; before, an attribute said it.
                name = getattr(record, "event_name", "") or attributes.get("event.name")
                if (
                    not isinstance(name, str)
                    or not name.startswith(GENAI_PREFIX)
                    or not otlp.valid_id(record.trace_id, 16)
                    or not otlp.valid_id(record.span_id, 8)
                ):
                    found.rejected += 1
                    continue
                key = (f"tr-{record.trace_id.hex()}", record.span_id.hex())
                found.events.setdefault(key, []).append(_event(record, name, attributes))
    return found


def _event(record: LogRecord, name: str, attributes: dict[str, Any]) -> dict[str, Any]:
    """A log record as the span event it stands for (the shape of otlp.py's span events);
    its body, where the message is, goes in as the `body` attribute, as log bridges put it."""
    # The SDK sends an empty AnyValue when there is no body.
    body = otlp.any_value(record.body) if record.HasField("body") else None
    if body is not None:
        attributes["body"] = body
    return {
        "name": name,
        "time_unix_nano": record.time_unix_nano or record.observed_time_unix_nano,
        "attributes": attributes,
    }
