"""Spans of one playground answer, collected in memory and stored through `tracking.ingest`.

The playground is a client of the tracking app like any other: it builds the same SpanData
that the MLflow and OTLP paths build, and `store()` turns them into rows.
"""

from __future__ import annotations

import re
import secrets
import time
import traceback
import uuid
from types import TracebackType
from typing import TYPE_CHECKING, Any

from playground.agents.base import Stopped
from tracking.ingest import TOKEN_USAGE_ATTRIBUTE, SpanData, make_span
from tracking.models import LoggedModel, Trace

if TYPE_CHECKING:
    from playground.models import Agent


# W3C Trace Context, version 00, "sampled" flag: the playground records every answer.
TRACEPARENT_FORMAT = "00-{trace_id}-{span_id}-01"
TRACE_NAME_PREFIX = "playground"


def new_trace_id() -> str:
    return f"tr-{secrets.token_hex(16)}"


def otel_trace_id(trace_id: str) -> str:
    """The OpenTelemetry trace id (32 hex) of an MLflow trace id: MLflow's `tr-<32 hex>` is
    the OTel id in hex, so spans that an agent exports over OTLP with it land in this trace."""
    return trace_id.removeprefix("tr-")


def agent_version(agent: Agent) -> tuple[str, str]:
    """The model version an agent answers as: (model id, "<name> v<n>"), the label empty
    when the version is not (yet) logged here, ("", "") when the agent has none. The id is
    the agent's own, or the one its `models:/m-...` model_uri names (a logged-model agent
    made from a URI)."""
    model_id = agent.model_id
    if not model_id:
        match = _MODEL_URI_ID.fullmatch(str((agent.config or {}).get("model_uri") or ""))
        model_id = match.group(1) if match else ""
    if not model_id:
        return "", ""
    model = LoggedModel.objects.numbered().filter(model_id=model_id).first()
    return model_id, f"{model.name} v{model.number}" if model else ""


_MODEL_URI_ID = re.compile(r"models:/(m-[0-9a-f]{32})")


def trace_name(agent_name: str, version: str = "") -> str:
    """What the trace list shows: agents compared side by side are told apart by name, and
    by version when the agent is linked to one."""
    name = f"{TRACE_NAME_PREFIX}: {agent_name}"
    return f"{name} ({version})" if version else name


def trace_id_for_task(task_id: str) -> str | None:
    """The trace id of a run's answer, from its task id (a UUID): the reaper finds the trace
    of a run whose worker died without the task ever writing it on the row."""
    try:
        return f"tr-{uuid.UUID(task_id).hex}"
    except ValueError:
        return None


CANCELLED_ATTRIBUTE = "spyglass.cancelled"


class Span:
    """A span being recorded. As a context manager it ends itself and records an exception
    that escapes it (and lets it propagate); a `Stopped` one marks it cancelled."""

    def __init__(
        self, trace: TraceRecorder, name: str, span_type: str, parent_id: str, inputs: Any
    ) -> None:
        self.trace = trace
        self.span_id = secrets.token_hex(8)
        self.parent_id = parent_id
        self.name = name
        self.span_type = span_type
        self.inputs = inputs
        self.outputs: Any = None
        self.attributes: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []
        self.status = "UNSET"
        self.status_message = ""
        self.cancelled = False
        self.start_ns = time.time_ns()
        self.end_ns: int | None = None
        trace.spans.append(self)

    def child(self, name: str, span_type: str = "UNKNOWN", inputs: Any = None) -> Span:
        return Span(self.trace, name, span_type, self.span_id, inputs)

    def propagation_headers(self) -> dict[str, str]:
        """W3C Trace Context headers that make this span the parent of what the callee
        records: an OpenTelemetry-instrumented agent (its SDK's default propagator) that
        exports to Spyglass puts its spans in this trace, under this span.

        MLflow (3.9+) defines no headers of its own: `mlflow.tracing.distributed` reads and
        writes this same `traceparent` (OTel's TraceContextTextMapPropagator). What a served
        MLflow agent needs to join (checked against mlflow 3.17):
        - code that reads the header: `mlflow models serve` and mlflow's agent server do not,
          and `predict` never sees the request, so the app serving it wraps `predict` in
          `mlflow.tracing.set_tracing_context_from_http_request_headers(request.headers)`;
        - an exporter that sends the callee's spans to Spyglass over OTLP:
          `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=<spyglass>/v1/traces` with
          `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf`. MLflow's default exporter sends
          a callee's spans (a trace it did not start) only through `/v1/traces`, and only to
          a server that answers `GET /version`, which Spyglass does not
          (tracking/mlflow_api/urls.py): it would drop them with a warning.
        Ingest then merges those spans into the playground's trace, whichever comes first.

        No `tracestate`: the playground starts the trace, so no vendor has state to carry.
        """
        traceparent = TRACEPARENT_FORMAT.format(
            trace_id=otel_trace_id(self.trace.trace_id), span_id=self.span_id
        )
        return {"traceparent": traceparent}

    def set_usage(self, usage: dict[str, int]) -> None:
        if usage:
            self.attributes[TOKEN_USAGE_ATTRIBUTE] = usage

    def fail(self, error: BaseException | str) -> None:
        self.status = "ERROR"
        if isinstance(error, BaseException):
            message = "Cancelled." if isinstance(error, GeneratorExit) else str(error)
            self.events.append(
                {
                    "name": "exception",
                    "timestamp_ns": time.time_ns(),
                    "attributes": {
                        "exception.type": type(error).__name__,
                        "exception.message": message,
                        "exception.stacktrace": "".join(traceback.format_exception(error)),
                    },
                }
            )
        else:
            message = error
        self.status_message = message

    def cancel(self, message: str = "Cancelled.") -> None:
        """Stopped by a cancel, which is not an error: the status stays UNSET (neither OK nor
        ERROR, in OpenTelemetry's terms), the message and an attribute say why it ended."""
        if self.status == "ERROR":
            return  # it had failed before the cancel came: that is what it says
        self.cancelled = True
        self.status_message = message
        self.attributes[CANCELLED_ATTRIBUTE] = True
        self.events.append({"name": "cancelled", "timestamp_ns": time.time_ns(), "attributes": {}})

    def end(self, outputs: Any = None) -> None:
        if outputs is not None:
            self.outputs = outputs
        if self.end_ns is None:
            self.end_ns = time.time_ns()
        if self.status == "UNSET" and not self.cancelled:
            self.status = "OK"

    def __enter__(self) -> Span:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, Stopped):
            self.cancel()
        elif exc is not None:
            self.fail(exc)
        self.end()

    def to_span_data(self, close_open: bool = True) -> SpanData:
        end_ns = self.end_ns
        if end_ns is None and close_open:
            # A span left open (a worker stopped mid-answer) is closed where the trace is.
            end_ns = time.time_ns()
        return make_span(
            trace_id=self.trace.trace_id,
            span_id=self.span_id,
            parent_span_id=self.parent_id,
            name=self.name,
            start_ns=self.start_ns,
            end_ns=end_ns,
            span_type=self.span_type,
            status=self.status,
            status_message=self.status_message,
            inputs=self.inputs,
            outputs=self.outputs,
            attributes=self.attributes,
            events=self.events,
        )


class TraceRecorder:
    def __init__(self, trace_id: str | None = None) -> None:
        self.trace_id = trace_id or new_trace_id()
        self.spans: list[Span] = []

    def root(self, name: str, span_type: str = "CHAIN", inputs: Any = None) -> Span:
        return Span(self, name, span_type, "", inputs)

    def span_data(self, close_open: bool = True) -> list[SpanData]:
        """The spans as ingest takes them; `close_open=False` stores open ones as open (the
        trace of an answer that has just started)."""
        return [span.to_span_data(close_open) for span in self.spans]


def fail_unfinished(trace_ids: list[str], error: str) -> int:
    """End the stored traces of answers whose worker was lost (SIGKILL, OOM). Their spans are
    already stored (the task records the trace when it starts), so this is a state change of
    the tracking tables, made by the method that owns it."""
    if not trace_ids:
        return 0
    return Trace.objects.filter(trace_id__in=trace_ids).fail_unfinished(error)
