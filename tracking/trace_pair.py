"""Two traces named by a page's query, `?a=<trace id>&b=<trace id>`: the trace diff's and the
pairwise review's."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404, QueryDict

from tracking.models import Trace

MAX_ID = 64  # Trace.trace_id


def pair_ids(params: QueryDict) -> tuple[str, str, str]:
    """`a` and `b` of the query, and why they cannot be used ('' when they can)."""
    a, b = (params.get(k, "").strip() for k in ("a", "b"))
    if not a or not b:
        return a, b, "Give two traces to compare: ?a=<trace id>&b=<trace id>."
    if len(a) > MAX_ID or len(b) > MAX_ID or "\x00" in a + b:
        return a, b, "That is not a trace id."
    return a, b, ""


def pair_or_404(traces: QuerySet[Trace], a: str, b: str) -> tuple[Trace, Trace]:
    """Both traces in one query from `traces` (those the caller may read): a trace not among
    them is one that does not exist."""
    found = {t.trace_id: t for t in traces.filter(trace_id__in=[a, b])}
    if a not in found or b not in found:
        raise Http404("No such trace.")
    return found[a], found[b]
