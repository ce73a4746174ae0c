"""Spans of one playground answer, collected in memory and stored through `tracking.ingest`.

The playground is a client of the tracking app like any other: it builds the same SpanData
that the MLflow and OTLP paths build, and `store()` turns them into rows.
"""

from __future__ import annotations

import secrets
import time
import traceback
import uuid
from types import TracebackType
from typing import Any

from playground.agents.base import Stopped
from tracking.ingest import TOKEN_USAGE_ATTRIBUTE, SpanData, make_span
from tracking.models import Trace


def new_trace_id() -> str:
    return f"tr-{secrets.token_hex(16)}"


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
