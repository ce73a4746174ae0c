"""The trace page: a trace's facts and its spans."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_safe

from tracking.models import LoggedModel, Span, Trace

# Beyond this a plain list stops being readable and the page slow; the rest is announced.
SPAN_ROWS_MAX = 2_000
# Indentation classes exist in the stylesheet up to this depth (.depth-0 ... .depth-16).
MAX_INDENT = 16
# What the span list shows; inputs, outputs, attributes and events stay in the database.
_SPAN_ROW_FIELDS = (
    "span_id",
    "parent_span_id",
    "name",
    "span_type",
    "start_ns",
    "end_ns",
    "status",
    "status_message",
)


def _with_depth(spans: list[Span]) -> list[Span]:
    """Set `depth` (capped for indentation) and `offset_ns` on spans given in start order."""
    depths: dict[str, int] = {}
    first_ns = spans[0].start_ns if spans else 0
    for span in spans:
        # A parent that starts later (clock skew) or is not loaded leaves the span at the root.
        parent_depth = depths.get(span.parent_span_id) if span.parent_span_id else None
        depths[span.span_id] = 0 if parent_depth is None else parent_depth + 1
        span.depth = depths[span.span_id]
        span.indent = min(span.depth, MAX_INDENT)
        span.offset_ns = span.start_ns - first_ns
    return spans


@require_safe
def trace_detail(request: HttpRequest, trace_id: str) -> HttpResponse:
    trace = get_object_or_404(Trace.objects.select_related("experiment"), trace_id=trace_id)
    # Not trace.spans: the related manager reads each row's (deferred) trace_id, a query per span.
    spans_qs = Span.objects.filter(trace=trace).order_by("start_ns", "pk").only(*_SPAN_ROW_FIELDS)
    spans = list(spans_qs[: SPAN_ROWS_MAX + 1])
    hidden_spans = 0
    if len(spans) > SPAN_ROWS_MAX:
        spans = spans[:SPAN_ROWS_MAX]
        hidden_spans = spans_qs.count() - SPAN_ROWS_MAX
    model = None
    if trace.model_id:
        model = LoggedModel.objects.filter(model_id=trace.model_id).only("name").first()
    context = {
        "trace": trace,
        "spans": _with_depth(spans),
        "hidden_spans": hidden_spans,
        "model": model,
        "tags": sorted(trace.tags.items()),
        "metadata": sorted(trace.metadata.items()),
    }
    return render(request, "tracking/trace_detail.html", context)
