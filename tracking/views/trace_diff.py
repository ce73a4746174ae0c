"""The trace diff (`/traces/diff/?a=<trace>&b=<trace>`): two traces' span trees aligned.

As on the trace page, the page carries only the two traces' facts; trace_diff.js fetches the
aligned layout (`trace_diff_layout`: layout columns, per-span digests compared in Python, never
inputs or outputs) and opens one aligned pair of spans at a time (`trace_diff_spans`).

READ on both traces' experiments, else 404 as for traces that do not exist (trace_detail's
rule, for two traces at once).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.db.models import Q, TextField
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import MD5, Cast
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_safe

from access.rules import access_for, declares
from tracking import cost, text_diff, trace_diff, waterfall
from tracking.models import Span, Trace
from tracking.templatetags.tracking_format import dollars, duration
from tracking.trace_pair import pair_ids, pair_or_404
from tracking.views.trace_detail import LAYOUT_COLUMNS
from webapp.gzip_json import gzipped_json
from webapp.htmx import HtmxHttpRequest

MAX_SPAN_ID = 16  # Span.span_id
RULE = "READ on both traces' experiments, else 404"
# The layout columns, then what tells two matched spans apart: digests of inputs and outputs
# computed by the database (50,000 JSON values never reach Python), token usage and cost.
DIGEST_COLUMNS = ("inputs_md5", "outputs_md5", "usage_text", "cost_text")


def _pair_or_404(
    request: HtmxHttpRequest, a: str, b: str, fields: tuple[str, ...] = ()
) -> tuple[Trace, Trace]:
    """Both traces, cancelled ones included; a trace the caller may not read is one that does
    not exist."""
    traces = access_for(request).readable(Trace.objects.with_cancelled())
    return pair_or_404(traces.only(*fields) if fields else traces, a, b)


@declares(RULE)
@require_safe
def trace_diff_page(request: HtmxHttpRequest) -> HttpResponse:
    a_id, b_id, error = pair_ids(request.GET)
    context: dict[str, Any] = {"a_id": a_id, "b_id": b_id, "error": error}
    if error:
        # A bare visit is a form to fill, not a mistake; a half-filled one says what is missing.
        status = 200 if not a_id and not b_id else 400
        return render(request, "tracking/trace_diff.html", context, status=status)
    a, b = _pair_or_404(request, a_id, b_id)
    query = urlencode({"a": a_id, "b": b_id})
    context.update(
        {
            "a": a,
            "b": b,
            "layout_url": f"{reverse('tracking:trace-diff-layout')}?{query}",
            "spans_url": f"{reverse('tracking:trace-diff-spans')}?{query}",
        }
    )
    return render(request, "tracking/trace_diff.html", context)


@declares(RULE)
@require_safe
def trace_diff_layout(request: HtmxHttpRequest) -> HttpResponse:
    """The aligned layout as gzipped JSON (shape: tracking/trace_diff.py's to_json_data)."""
    a_id, b_id, error = pair_ids(request.GET)
    if error:
        return JsonResponse({"error": error}, status=400)
    fields = ("trace_id", "name", "state", "span_count", "total_tokens", "cost")
    a, b = _pair_or_404(request, a_id, b_id, fields=fields)
    a_layout, a_digests = _layout(a)
    b_layout, b_digests = _layout(b) if b.pk != a.pk else (a_layout, a_digests)
    alignment = trace_diff.align(a_layout, b_layout, a_digests, b_digests)
    data = trace_diff.to_json_data(a_layout, b_layout, alignment, _side(a), _side(b))
    return gzipped_json(request, data)


def _side(trace: Trace) -> trace_diff.Side:
    return trace_diff.Side(
        trace_id=trace.trace_id,
        name=trace.name,
        state=trace.shown_state,
        span_count=trace.span_count,
        tokens=trace.total_tokens,
        cost=trace.cost,
    )


def _layout(trace: Trace) -> tuple[waterfall.Layout, dict[str, trace_diff.Digest]]:
    """One query: the layout columns and each span's digest."""
    rows = list(
        Span.objects.filter(trace_id=trace.pk)
        .annotate(
            inputs_md5=MD5(Cast("inputs", TextField())),
            outputs_md5=MD5(Cast("outputs", TextField())),
            usage_text=KeyTextTransform(cost.USAGE_ATTRIBUTE, "attributes"),
            cost_text=KeyTextTransform(
                "total_cost", KeyTransform(cost.COST_ATTRIBUTE, "attributes")
            ),
        )
        .values_list(*LAYOUT_COLUMNS, *DIGEST_COLUMNS)
    )
    width = len(LAYOUT_COLUMNS)
    layout = waterfall.build([r[:width] for r in rows])
    # Plain tuples in Digest's field order: building 50,000 named tuples costs more than
    # comparing them saves.
    digests = {r[0]: r[width:] for r in rows}
    return layout, digests  # type: ignore[return-value]


@declares(RULE)
@require_safe
def trace_diff_spans(request: HtmxHttpRequest) -> HttpResponse:
    """One aligned row opened: both spans' facts, and their inputs and outputs diffed.
    `sa` or `sb` may be empty: a span only B has (added) or only A had (removed)."""
    a_id, b_id, error = pair_ids(request.GET)
    sa, sb = (request.GET.get(k, "").strip() for k in ("sa", "sb"))
    if not error and not sa and not sb:
        error = "Give the span of A (sa), of B (sb), or both."
    if not error and (len(sa) > MAX_SPAN_ID or len(sb) > MAX_SPAN_ID):
        error = "That is not a span id."
    if error:
        return HttpResponse(error, status=400, content_type="text/plain; charset=utf-8")
    a, b = _pair_or_404(request, a_id, b_id, fields=("trace_id",))
    span_a, span_b = _span_pair(a, sa, b, sb)
    sides = [_span_side(span_a), _span_side(span_b)]
    budget = text_diff.Budget()  # one for both fields: the whole panel does bounded work
    context = {
        "a": a,
        "b": b,
        "span_a": span_a,
        "span_b": span_b,
        "sides": sides,
        "kind": "removed" if span_b is None else "added" if span_a is None else "pair",
        "delta": _delta(*sides),
        "fields": [
            (side, text_diff.diff_value(_value(span_a, side), _value(span_b, side), side, budget))
            for side in ("inputs", "outputs")
        ],
    }
    return render(request, "tracking/trace_diff_spans.html", context)


def _span_pair(a: Trace, sa: str, b: Trace, sb: str) -> tuple[Span | None, Span | None]:
    """Both spans in one query; a span id given that its trace lacks is a 404."""
    wanted = Q(pk__in=[])
    if sa:
        wanted |= Q(trace_id=a.pk, span_id=sa)
    if sb:
        wanted |= Q(trace_id=b.pk, span_id=sb)
    found = {(s.trace_id, s.span_id): s for s in Span.objects.filter(wanted)}
    span_a = found.get((a.pk, sa)) if sa else None
    span_b = found.get((b.pk, sb)) if sb else None
    if (sa and span_a is None) or (sb and span_b is None):
        raise Http404("No such span.")
    return span_a, span_b


def _value(span: Span | None, field: str) -> Any:
    return None if span is None else getattr(span, field)


def _span_side(span: Span | None) -> dict[str, Any]:
    if span is None:
        return {}
    return {"span": span, **cost.usage_and_cost(span)}


def _delta(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """B minus A, for what both sides have."""
    if not a or not b:
        return {}
    delta: dict[str, Any] = {}
    da, db = a["span"].duration_ns, b["span"].duration_ns
    if da is not None and db is not None:
        share = f" ({(db - da) / da:+.0%})" if da and db != da else ""
        delta["duration"] = _signed(db - da, duration) + share
    if a.get("usage") and b.get("usage"):
        delta["tokens"] = f"{b['usage']['total'] - a['usage']['total']:+,}"
    cost_a, cost_b = (s.get("cost") or {} for s in (a, b))
    if "total_cost" in cost_a and "total_cost" in cost_b:
        delta["cost"] = _signed(cost_b["total_cost"] - cost_a["total_cost"], dollars)
    return delta


def _signed(value: float, shown: Any) -> str:
    """A difference as "+12 ms", "-3 ms" (with a minus sign, U+2212) or "±0", in the page's
    own number formats."""
    if not value:
        return "±0"
    return ("+" if value > 0 else "\u2212") + shown(abs(value))
