"""The trace page's "Compare with…" list: the same input on other model versions
(tracking/same_input.py), each with a link to its diff with this trace.

Asked for by htmx when the control is first opened, so the trace page pays nothing for it; the
same URL is a page of its own for a plain request.
"""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_safe

from access.rules import access_for
from tracking import same_input
from tracking.models import Trace
from tracking.permissions import page_reads
from webapp.htmx import HtmxHttpRequest, render_page


@page_reads("trace", "trace_id")
@require_safe
def trace_same_input(request: HtmxHttpRequest, trace_id: str) -> HttpResponse:
    fields = ("trace_id", "experiment", "model_id", "request_preview")
    trace = get_object_or_404(Trace.objects.only(*fields), trace_id=trace_id)
    context = {"trace": trace, "found": same_input.find(trace, access_for(request))}
    return render_page(request, "tracking/trace_same_input.html", context, fragment="same-input")
