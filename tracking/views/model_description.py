"""A version's description, edited inline: MLflow's `mlflow.note.content` tag of the logged
model, so the MLflow client and UI read and write the same text."""

from __future__ import annotations

from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from access.models import Level
from access.rules import access_for, declares
from tracking.models import LoggedModel
from tracking.permissions import may
from tracking.views import logged_models
from webapp.htmx import HtmxHttpRequest


def description_error(text: str) -> str:
    """Why a description cannot be saved, '' when it can."""
    if "\x00" in text:
        return "The description may not hold a NUL character."
    if len(text) > LoggedModel.DESCRIPTION_MAX_CHARS:
        return (
            f"The description is {len(text):,} characters long; MLflow keeps at most "
            f"{LoggedModel.DESCRIPTION_MAX_CHARS:,}."
        )
    return ""


@declares("EDIT on the version's experiment, else 404")
@require_POST
def model_description(request: HtmxHttpRequest, model_id: str) -> HttpResponse:
    if not may(access_for(request), Level.EDIT, "model", model_id):
        raise Http404("No such model.")
    model = logged_models.version_or_404(model_id)
    text = request.POST.get("description", "").replace("\r\n", "\n")
    error = description_error(text)
    if not error:
        model.set_description(text)
    if not request.htmx:  # a plain form post: the page again, with the error by the form
        if error:
            return logged_models.render_detail(request, model, description_error=error, draft=text)
        return redirect("tracking:model-detail", model_id=model.model_id)
    context = {"model": model, "can_edit": True, "description_error": error, "draft": text}
    # 422 with the form and its error: base.html's htmx config swaps it in.
    return render(
        request,
        "tracking/model_detail.html#description",
        context,
        status=422 if error else 200,
    )
