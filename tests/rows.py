"""Rows for page tests, made with objects.create()."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tracking.models import Experiment, LoggedModel, Span, Trace, TraceState

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
XSS = "<script>alert(1)</script>"
XSS_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def make_trace(experiment: Experiment, n: int = 0, **fields) -> Trace:
    defaults = {
        "trace_id": f"tr-{n:032x}",
        "name": f"trace {n}",
        "state": TraceState.OK,
        "request_time": T0 + timedelta(seconds=n),
        "duration_ns": 1_230_000_000,
        "span_count": 3,
        "total_tokens": 1234,
        "request_preview": '{"question": "hi"}',
    }
    return Trace.objects.create(experiment=experiment, **{**defaults, **fields})


def make_model(experiment: Experiment, name: str = "support-agent", **fields) -> LoggedModel:
    return LoggedModel.objects.create(experiment=experiment, name=name, **fields)


def make_span(trace: Trace, span_id: str, start_ns: int, parent: str = "", **fields) -> Span:
    defaults = {"name": f"span {span_id}", "span_type": "CHAIN", "end_ns": start_ns + 5_000_000}
    return Span.objects.create(
        trace=trace,
        span_id=span_id,
        parent_span_id=parent,
        start_ns=start_ns,
        **{**defaults, **fields},
    )


def trace_names_on_every_page(client, url: str) -> list[str]:
    """The names of the traces the trace list shows from `url`, following its Older links."""
    seen = []
    while url:
        response = client.get(url)
        assert response.status_code == 200
        seen += [t.name for t in response.context["traces"]]
        older = response.context["older_query"]
        url = f"/traces/?{older}" if older else None
    return seen
