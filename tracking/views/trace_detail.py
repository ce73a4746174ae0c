"""The trace page (the waterfall), its layout JSON, and one span's details.

The page itself carries only the trace's facts. waterfall.js fetches the layout (span ids,
names, types, times, tree shape: the layout columns only, never inputs or outputs) as compact
JSON and renders the rows near the viewport; a span's contents come from `span_detail` when it
is opened. So a 50,000-span trace costs one narrow query and a few megabytes at most.
"""

from __future__ import annotations

from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_safe

from access.models import Level
from access.rules import access_for
from tracking import chat, conversation, cost, json_tree, span_contents, waterfall
from tracking.feedback import FeedbackForm
from tracking.ingest import TRUNCATED
from tracking.models import Assessment, LoggedModel, Span, Trace
from tracking.permissions import page_reads
from tracking.views import feedback
from webapp.gzip_json import gzipped_json
from webapp.htmx import HtmxHttpRequest, render_page, wants_fragment

# What the layout needs; inputs, outputs, attributes and events stay in the database.
LAYOUT_COLUMNS = ("span_id", "parent_span_id", "name", "span_type", "start_ns", "end_ns", "status")
# The parts of a span that can be opened whole (the caps of the details panel link here).
SPAN_VALUE_FIELDS = ("inputs", "outputs", "attributes", "events")


@page_reads("trace", "trace_id")
@require_safe
def trace_detail(request: HtmxHttpRequest, trace_id: str) -> HttpResponse:
    trace = get_object_or_404(Trace.objects.select_related("experiment"), trace_id=trace_id)
    return render_trace_page(request, trace)


def render_trace_page(
    request: HtmxHttpRequest,
    trace: Trace,
    *,
    form: FeedbackForm | None = None,
    edit: tuple[str, FeedbackForm] | None = None,
    status: int = 200,
) -> HttpResponse:
    """The page; with a feedback form and its errors after a plain (not htmx) form post."""
    model = None
    if trace.model_id:
        model = LoggedModel.objects.filter(model_id=trace.model_id).only("name").first()
    assessments = list(Assessment.objects.of_trace(trace))
    can_edit = access_for(request).can(Level.EDIT, trace.experiment_id)
    has_conversation = conversation.root_has_chat(trace)
    context = {
        "trace": trace,
        "has_conversation": has_conversation,
        "view": _view(request, has_conversation),
        "model": model,
        "tags": sorted(trace.tags.items()),
        "metadata": sorted(trace.metadata.items()),
        "selected_span": request.GET.get("span", ""),
        # The playground replays a root span's chat messages. The preview (the root's inputs)
        # tells without loading the span; the playground explains when it cannot replay.
        "replayable": chat.preview_has_user_message(trace.request_preview),
        "feedback": feedback.panel_context(
            trace, assessments, can_edit=can_edit, form=form, edit=edit
        ),
    }
    return render(request, "tracking/trace_detail.html", context, status=status)


def _view(request: HtmxHttpRequest, has_conversation: bool) -> str:
    """The tab the page opens on: the conversation for a chat trace, unless `?view=waterfall`
    or a selected span (`?span=`, what the waterfall writes in the URL) asks for the waterfall."""
    if not has_conversation:
        return "waterfall"
    asked = request.GET.get("view")
    if asked in ("conversation", "waterfall"):
        return asked
    return "waterfall" if request.GET.get("span") else "conversation"


@page_reads("trace", "trace_id")
@require_safe
def trace_layout(request: HtmxHttpRequest, trace_id: str) -> HttpResponse:
    """The waterfall's layout as JSON; 204 when `?known=<span count>:<state>` is still current.

    An open page polls this while its trace is in progress: the 204 costs one indexed query.
    """
    traces = Trace.objects.only("state", "span_count").with_cancelled()
    trace = get_object_or_404(traces, trace_id=trace_id)
    # CANCELLED for a cancelled one, so that the page's badge says so once the answer stops.
    state = trace.shown_state
    if request.GET.get("known") == f"{trace.span_count}:{state}":
        return HttpResponse(status=204)
    rows = Span.objects.filter(trace_id=trace.pk).values_list(*LAYOUT_COLUMNS)
    layout = waterfall.build(rows)
    return gzipped_json(request, waterfall.to_json_data(layout, state, trace.span_count))


def _truncated(span: Span) -> dict[str, int]:
    """{field or attribute key: original bytes} for values ingest stored as a truncation
    marker, so the page says so above them instead of showing a puzzling object."""
    out = {}
    values = {"inputs": span.inputs, "outputs": span.outputs, "events": span.events}
    if isinstance(span.attributes, dict):
        values.update({f"attributes.{k}": v for k, v in span.attributes.items()})
    for name, value in values.items():
        if isinstance(value, dict) and value.get(TRUNCATED) is True:
            out[name] = value.get("original_bytes", 0)
    return out


@page_reads("trace", "trace_id")
@require_safe
def span_detail(request: HtmxHttpRequest, trace_id: str, span_id: str) -> HttpResponse:
    span = _get_span(trace_id, span_id, with_trace=True)

    def tree(field: str) -> str:
        url = reverse("tracking:span-value", args=[trace_id, span_id, field])
        return json_tree.render(getattr(span, field), url, f"v-{span.span_id}-{field}")

    events = span.events if isinstance(span.events, list) else []
    by_type = _by_type(span)
    said = chat.conversation(span.inputs, span.outputs)
    context = {
        "trace_id": trace_id,
        "span": span,
        "conversation": said,
        **by_type,
        "first_tab": _first_tab(by_type, said is not None),
        "inputs_html": tree("inputs"),
        "outputs_html": "" if by_type.get("vectors") else tree("outputs"),
        "attributes_html": tree("attributes"),
        "events": [_event(e, span.start_ns) for e in events if isinstance(e, dict)],
        "truncated": _truncated(span),
        "partial": wants_fragment(request),
        "feedback": _span_feedback(request, span),
        **cost.usage_and_cost(span),
    }
    return render_page(request, "tracking/span_detail.html", context, fragment="span-detail")


def _by_type(span: Span) -> dict:
    """What the span's type is read as (tracking/span_contents.py), for its own tab."""
    kind = span.span_type.upper()
    if kind == "RETRIEVER":
        return {"documents": span_contents.documents(span.outputs)}
    if kind == "TOOL":
        call = span_contents.tool_call(span.name, span.inputs, span.outputs, span.attributes)
        return {"tool": call}
    if kind == "EMBEDDING":
        return {"vectors": span_contents.vectors(span.outputs)}
    return {}


def _first_tab(by_type: dict, has_chat: bool) -> str:
    """The tab the details open on: what the span's type is read as, else its chat."""
    if by_type.get("documents"):
        return "documents"
    if by_type.get("tool"):
        return "call"
    return "chat" if has_chat else "inputs"


def _span_feedback(request: HtmxHttpRequest, span: Span) -> dict:
    """The span's assessments and feedback forms (feedback.html#panel)."""
    trace = span.trace
    assessments = list(Assessment.objects.of_trace(trace).filter(span_id=span.span_id))
    can_edit = access_for(request).can(Level.EDIT, trace.experiment_id)
    return feedback.panel_context(trace, assessments, can_edit=can_edit, span_id=span.span_id)


@page_reads("trace", "trace_id")
@require_safe
def span_value(request: HtmxHttpRequest, trace_id: str, span_id: str, field: str) -> HttpResponse:
    """One whole part of a span as JSON: where the details panel's size caps link."""
    if field not in SPAN_VALUE_FIELDS:
        raise Http404("No such span field.")
    span = _get_span(trace_id, span_id, only=(field,))
    return JsonResponse(getattr(span, field), safe=False, json_dumps_params={"indent": 2})


def _get_span(
    trace_id: str, span_id: str, only: tuple[str, ...] | None = None, with_trace: bool = False
) -> Span:
    # One query; a span id that exists only in another trace is a 404 here too.
    spans = Span.objects.filter(trace__trace_id=trace_id, span_id=span_id)
    if with_trace:  # its experiment (may the caller give feedback?) in the same query
        spans = spans.select_related("trace").defer(
            "trace__tags", "trace__metadata", "trace__request_preview", "trace__response_preview"
        )
    if only:
        spans = spans.only(*only)
    return get_object_or_404(spans)


def _event(event: dict, span_start_ns: int) -> dict:
    attributes = event.get("attributes") if isinstance(event.get("attributes"), dict) else {}
    name = str(event.get("name", ""))
    time_ns = event.get("time_unix_nano", event.get("timestamp"))
    return {
        "name": name,
        "offset_ns": time_ns - span_start_ns if isinstance(time_ns, int) else None,
        "is_exception": name == "exception" or "exception.type" in attributes,
        "type": attributes.get("exception.type", ""),
        "message": attributes.get("exception.message", ""),
        "stacktrace": attributes.get("exception.stacktrace", ""),
        "attributes": sorted(
            (k, v) for k, v in attributes.items() if not k.startswith("exception.")
        ),
    }
