"""A trace's Conversation tab: its root's messages, tool calls, documents and model calls.

The trace page asks for it as an htmx partial when the tab is shown, so the page itself stays
as quick as the waterfall's; the same URL is a page of its own for a plain request.
"""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_safe

from tracking import conversation
from tracking.models import Trace
from tracking.permissions import page_reads
from webapp.htmx import HtmxHttpRequest, render_page


@page_reads("trace", "trace_id")
@require_safe
def trace_conversation(request: HtmxHttpRequest, trace_id: str) -> HttpResponse:
    trace = get_object_or_404(Trace.objects.only("pk", "trace_id", "name"), trace_id=trace_id)
    context = {"trace": trace, "conversation": conversation.load(trace)}
    return render_page(
        request, "tracking/trace_conversation.html", context, fragment="conversation"
    )
