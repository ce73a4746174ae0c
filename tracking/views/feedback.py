"""Feedback and expectations given on the trace page, a span's details and a session's page.

Each write is an MLflow assessment, made through the model's record / amend / retract (as the
MLflow endpoints do): the source is the signed-in person (HUMAN, their username). A feedback
is never edited in place: a new value overrides it (MLflow's `override_feedback`), the old
one stays, marked not valid, in the item's history. Expectations (ground truth) are edited
in place, as `update_assessment` does. The panel (templates/tracking/feedback.html#panel) is
the fragment htmx swaps; a form with errors comes back as a 422 with the messages by its
fields, and a plain form post gets the trace page back.
"""

from __future__ import annotations

from typing import Any

import orjson
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from access.models import Level
from access.rules import access_for, declares
from tracking import feedback, ingest
from tracking.models import Assessment, AssessmentKind, AssessmentSourceType, Trace
from tracking.permissions import may
from webapp.htmx import HtmxHttpRequest

SESSION_METADATA = ingest.SESSION_METADATA

ANONYMOUS_SOURCE = "anonymous"  # SPYGLASS_AUTH off (loopback only): nobody is signed in


def panel_context(
    trace: Trace,
    assessments: list[Assessment],
    *,
    can_edit: bool,
    span_id: str = "",
    session_id: str = "",
    form: feedback.FeedbackForm | None = None,
    edit: tuple[str, feedback.FeedbackForm] | None = None,
) -> dict[str, Any]:
    """What feedback.html#panel shows: the assessments (of one span when `span_id` is set; of
    the session when `session_id` is: on its first trace, naming the session, as MLflow keeps
    session feedback) each with the ones it overrode, newest override first, and the forms
    for a writer. `form` is a new assessment's form being re-shown, `edit` an (id, form)."""
    by_id = {a.assessment_id: a for a in assessments}
    if span_id:
        assessments = [a for a in assessments if a.span_id == span_id]
    if session_id:
        assessments = [a for a in assessments if _session_of(a) == session_id]
    items = []
    for assessment in assessments:
        if not assessment.valid:
            continue
        history, seen, older = [], set(), by_id.get(assessment.overrides)
        while older is not None and older.assessment_id not in seen:  # a cycle: stop
            seen.add(older.assessment_id)
            history.append(_shown(older))
            older = by_id.get(older.overrides)
        value_type, text = feedback.value_as_text(assessment.value)
        if not assessment.is_feedback and value_type != "json":
            value_type = "text" if isinstance(assessment.value, str) else "json"
        editing = edit is not None and edit[0] == assessment.assessment_id
        item = {"history": history, "value_type": value_type, "text": text, "editing": editing}
        items.append({**_shown(assessment), **item})
    return {
        "trace_id": trace.trace_id,
        "span_id": span_id,
        "session_id": session_id,
        "key": f"{trace.trace_id}-{span_id}" if span_id else trace.trace_id,
        "items": items,
        "overridden": [_shown(a) for a in assessments if not a.valid],
        "can_edit": can_edit,
        "form": form or feedback.FeedbackForm(span_id=span_id),
        "edit_id": edit[0] if edit else "",
        "edit_form": edit[1] if edit else None,
        "feedback_types": feedback.FEEDBACK_TYPES.items(),
        "expectation_types": feedback.EXPECTATION_TYPES.items(),
    }


def _session_of(assessment: Assessment) -> str:
    return str((assessment.metadata or {}).get(SESSION_METADATA) or "")


def _shown(assessment: Assessment) -> dict[str, Any]:
    shown = orjson.dumps(assessment.value, option=orjson.OPT_INDENT_2).decode()
    return {"assessment": assessment, "value_json": shown}


def source_id(request: HtmxHttpRequest) -> str:
    user = getattr(request, "user", None)
    name = user.get_username() if user is not None and user.is_authenticated else ""
    return name[: feedback.NAME_MAX_CHARS] or ANONYMOUS_SOURCE


def _editable_trace(request: HtmxHttpRequest, trace_id: str) -> Trace:
    if not may(access_for(request), Level.EDIT, "trace", trace_id):
        raise Http404("No such trace.")
    return get_object_or_404(Trace.objects.select_related("experiment"), trace_id=trace_id)


@declares("EDIT on the trace's experiment, else 404")
@require_POST
def feedback_add(request: HtmxHttpRequest, trace_id: str) -> HttpResponse:
    """A new feedback or expectation, or (with `overrides`) a feedback overriding another."""
    trace = _editable_trace(request, trace_id)
    old = _overridden(trace, request.POST.get("overrides", ""))
    if old is not None:  # the name and span stay the old one's, as override_feedback does
        form = feedback.read_form(request.POST, kind=AssessmentKind.FEEDBACK, name=old.name)
        form.span_id = old.span_id
    else:
        form = feedback.read_form(request.POST)
        if form.overrides and "overrides" not in form.errors:
            form.errors["overrides"] = "There is no such feedback on this trace to override."
    value = feedback.value_of(form) if "kind" not in form.errors else None
    session = _panel_session(request, trace)
    if form.valid:
        try:
            Assessment.objects.record(
                trace,
                metadata={SESSION_METADATA: session} if session else {},
                name=form.name,
                kind=form.kind,
                value=value,
                rationale=form.rationale,
                source_type=AssessmentSourceType.HUMAN,
                source_id=source_id(request),
                span_id=form.span_id,
                overrides=form.overrides,
            )
        except Trace.DoesNotExist:  # deleted meanwhile
            raise Http404("No such trace.") from None
    where = {"span_id": _panel_span(request), "session_id": session}
    if form.valid:
        return _answer(request, trace, **where)
    if old is not None:
        return _answer(request, trace, **where, edit=(old.assessment_id, form))
    return _answer(request, trace, **where, form=form)


def _overridden(trace: Trace, assessment_id: str) -> Assessment | None:
    if not feedback.ASSESSMENT_ID_RE.fullmatch(assessment_id):
        return None
    return Assessment.objects.filter(
        trace=trace, assessment_id=assessment_id, kind=AssessmentKind.FEEDBACK
    ).first()


@declares("EDIT on the trace's experiment, else 404")
@require_POST
def feedback_change(request: HtmxHttpRequest, trace_id: str, assessment_id: str) -> HttpResponse:
    """`action=delete` removes an assessment (the one it overrode is valid again); otherwise
    an expectation's value and rationale are edited in place. A feedback is overridden."""
    trace = _editable_trace(request, trace_id)
    assessment = get_object_or_404(
        Assessment.objects.filter(trace=trace), assessment_id=assessment_id
    )
    where = {"span_id": _panel_span(request), "session_id": _panel_session(request, trace)}
    if request.POST.get("action") == "delete":
        assessment.retract()
        return _answer(request, trace, **where)
    form = feedback.read_form(request.POST, kind=assessment.kind, name=assessment.name)
    if assessment.is_feedback:
        form.errors["value"] = "A feedback is not edited: override it, and its history stays."
    value = feedback.value_of(form) if form.valid else None
    if not form.valid:
        return _answer(request, trace, **where, edit=(assessment_id, form))
    assessment.amend({"value": value, "rationale": form.rationale}, {})
    return _answer(request, trace, **where)


def _panel_session(request: HtmxHttpRequest, trace: Trace) -> str:
    """The session whose page the panel is on ('' elsewhere): only the trace's own session,
    whose first trace MLflow keeps session feedback on."""
    session = request.POST.get("panel_session", "")
    return session if session and session == (trace.session_id or "") else ""


def _panel_span(request: HtmxHttpRequest) -> str:
    """The span whose details the panel is in ('' on the trace and session pages)."""
    span_id = request.POST.get("panel_span", "").strip().lower()
    return span_id if feedback.SPAN_ID_RE.fullmatch(span_id) else ""


def _answer(
    request: HtmxHttpRequest,
    trace: Trace,
    *,
    span_id: str,
    session_id: str = "",
    form: feedback.FeedbackForm | None = None,
    edit: tuple[str, feedback.FeedbackForm] | None = None,
) -> HttpResponse:
    failed = (form is not None and not form.valid) or (edit is not None and not edit[1].valid)
    if not request.htmx:
        if not failed and session_id:
            return redirect(
                reverse("tracking:session-detail", args=[session_id])
                + f"?experiment={trace.experiment_id}"
            )
        if not failed:
            return redirect(trace.get_absolute_url())
        from tracking.views.trace_detail import render_trace_page  # the page imports this module

        return render_trace_page(request, trace, form=form, edit=edit, status=422)
    assessments = list(Assessment.objects.of_trace(trace))
    context = {
        "feedback": panel_context(
            trace,
            assessments,
            can_edit=True,
            span_id=span_id,
            session_id=session_id,
            form=form,
            edit=edit,
        )
    }
    # 422 with the form and its errors: base.html's htmx config swaps it in.
    return render(request, "tracking/feedback.html#panel", context, status=422 if failed else 200)
