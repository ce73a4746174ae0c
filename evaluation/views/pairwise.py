"""Pairwise review pages: two traces' answers side by side, judged A, B or a tie
(`/review/pairwise/?a=<trace>&b=<trace>`), and the judgements per version pair
(`/review/pairwise/summary/?a=<model>&b=<model>`). What is stored: evaluation/pairwise.py.

READ on both traces' experiments to see a pair (else 404, as for traces that do not exist),
EDIT on both to judge it (else 403).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_safe

from access.models import Level
from access.rules import access_for, declares
from evaluation import pairwise
from tracking import chat
from tracking.models import LoggedModel, Trace
from tracking.templatetags.tracking_format import model_url
from tracking.trace_pair import pair_ids, pair_or_404
from webapp.htmx import HtmxHttpRequest, render_page

MAX_ID = 64  # LoggedModel.model_id
SHOWN_PAIRS = 200


def _ids(request: HtmxHttpRequest) -> tuple[str, str, str]:
    """`a` and `b` of the query, and why they cannot be used ('' when they can)."""
    a, b, error = pair_ids(request.GET)
    if not error and a == b:
        return a, b, "Pick two different traces: a trace is not compared with itself."
    return a, b, error


def _readable_traces(request: HtmxHttpRequest) -> QuerySet[Trace]:
    return access_for(request).readable(Trace.objects.all())


def _reviewer(request: HtmxHttpRequest) -> str:
    """The signed-in user's name, the HUMAN source of the feedback; "anonymous" with
    authentication off (every caller is the same reviewer then)."""
    user = getattr(request, "user", None)
    return user.get_username() if user is not None and user.is_authenticated else "anonymous"


def _logged(model_ids: list[str]) -> dict[str, LoggedModel]:
    """The logged versions among `model_ids`, numbered, by id."""
    rows = LoggedModel.objects.numbered().filter(model_id__in=[m for m in model_ids if m])
    return {m.model_id: m for m in rows}


def _versions(model_ids: list[str]) -> dict[str, str]:
    """ "<name> v<n>" of each logged version, by id."""
    return {m: f"{v.name} v{v.number}" for m, v in _logged(model_ids).items()}


def _side(trace: Trace, label: str, versions: dict[str, str]) -> dict[str, Any]:
    return {
        "label": label,
        "trace": trace,
        "question": chat.request_text(trace.request_preview or ""),
        "answer": chat.answer_text(trace.response_preview or ""),
        "version": versions.get(trace.model_id, trace.model_id),
        "version_url": model_url(trace.model_id),
    }


def _summary_url(a: Trace, b: Trace) -> str:
    if not a.model_id or not b.model_id or a.model_id == b.model_id:
        return ""
    query = urlencode({"a": a.model_id, "b": b.model_id})
    return f"{reverse('evaluation:pairwise-summary')}?{query}"


def _render(request: HtmxHttpRequest, context: dict[str, Any], status: int = 200) -> HttpResponse:
    return render_page(request, "evaluation/pairwise.html", context, status=status)


@declares("READ on both traces' experiments to see the pair, else 404; EDIT on both to judge")
@require_http_methods(["GET", "HEAD", "POST"])
def pairwise_review(request: HtmxHttpRequest) -> HttpResponse:
    a_id, b_id, error = _ids(request)
    if error:
        return _render(request, {"error": error}, status=400)
    a, b = pair_or_404(_readable_traces(request), a_id, b_id)
    access = access_for(request)
    may_judge = access.can(Level.EDIT, a.experiment_id) and access.can(Level.EDIT, b.experiment_id)
    reviewer = _reviewer(request)
    choice, rationale = pairwise.current_choice(a, b, reviewer)
    form_error = ""
    if request.method == "POST":
        if not may_judge:
            raise PermissionDenied("Judging this pair needs EDIT on both traces' experiments.")
        choice = request.POST.get("choice", "")
        rationale = request.POST.get("rationale", "").replace("\r\n", "\n").replace("\x00", "")
        if choice not in pairwise.CHOICES:
            form_error = "Pick A, B or a tie."
        elif len(rationale) > pairwise.MAX_RATIONALE:
            form_error = f"The rationale may be at most {pairwise.MAX_RATIONALE:,} characters."
        else:
            pairwise.judge(a, b, choice, rationale.strip(), reviewer)
            said = {"a": "A is better", "b": "B is better", "tie": "a tie"}[choice]
            messages.success(request, f"Saved: {said}.")
            return redirect(request.get_full_path())
    versions = _versions([a.model_id, b.model_id])
    sides = [_side(a, "A", versions), _side(b, "B", versions)]
    context = {
        "sides": sides,
        "same_question": sides[0]["question"] == sides[1]["question"],
        "may_judge": may_judge,
        "choice": choice,
        "rationale": rationale,
        "form_error": form_error,
        "reviewer": reviewer,
        "summary_url": _summary_url(a, b),
        "max_rationale": pairwise.MAX_RATIONALE,
    }
    return _render(request, context, status=422 if form_error else 200)


def _newer(logged: dict[str, LoggedModel], a: str, b: str) -> bool:
    """Whether version `a` was logged after `b` (an unlogged id sorts last)."""
    far = timezone.now() + timedelta(days=36500)
    when = {m: (logged[m].created_at if m in logged else far, m) for m in (a, b)}
    return when[a] > when[b]


@declares("counts judgements whose two traces are both readable")
@require_safe
def pairwise_summary(request: HtmxHttpRequest) -> HttpResponse:
    model_a, model_b = (request.GET.get(k, "").strip()[:MAX_ID] for k in ("a", "b"))
    error = ""
    if bool(model_a) != bool(model_b) or (model_a and model_a == model_b):
        error = "Give two different model versions: ?a=<model id>&b=<model id>."
        model_a = model_b = ""
    model_a, model_b = model_a.replace("\x00", ""), model_b.replace("\x00", "")
    tallies = pairwise.tallies(_readable_traces(request), model_a, model_b)
    if model_a and not tallies:
        tallies = [pairwise.PairTally(model_a, model_b)]
    tallies = tallies[:SHOWN_PAIRS]
    logged = _logged([m for t in tallies for m in (t.model_a, t.model_b)])
    if not model_a:  # every pair: the older version as A, as a model compare page puts it
        tallies = [t.swapped() if _newer(logged, t.model_a, t.model_b) else t for t in tallies]
    versions = {m: f"{v.name} v{v.number}" for m, v in logged.items()}
    rows = [
        {
            "tally": t,
            "a": versions.get(t.model_a, t.model_a),
            "b": versions.get(t.model_b, t.model_b),
            "a_url": model_url(t.model_a),
            "b_url": model_url(t.model_b),
        }
        for t in tallies
    ]
    context = {"rows": rows, "error": error, "pair": bool(model_a)}
    return render_page(
        request, "evaluation/pairwise_summary.html", context, status=400 if error else 200
    )
