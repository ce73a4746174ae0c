"""The home page: what is in this Spyglass, newest first."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from access.models import Role
from access.rules import access_for, declares
from tracking.models import Experiment, LifecycleStage, LoggedModel, Trace
from tracking.queries import RECENT_TRACES, capped_count, traces_for_list, with_model_names
from tracking.views.logged_models import model_name_summaries
from webapp.models import ApiToken, TokenScope

RECENT_MODEL_NAMES = 8


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses it, e.g. “ci-evals”.")
    scope = forms.ChoiceField(choices=TokenScope.choices, initial=TokenScope.WRITE)


@declares("counts and lists the rows of readable experiments")
@require_safe
def home(request: HttpRequest) -> HttpResponse:
    access = access_for(request)
    versions = access.readable(LoggedModel.objects.all())
    models = versions.aggregate(names=Count("name", distinct=True), versions=Count("pk"))
    trace_count, more_traces = capped_count(access.readable(Trace.objects.all()))
    experiments = Experiment.objects.filter(lifecycle_stage=LifecycleStage.ACTIVE)
    context = {
        "experiment_count": access.readable(experiments, "pk").count(),
        "model_count": models["names"],
        "version_count": models["versions"],
        "trace_count": trace_count,
        "more_traces": more_traces,
        "models": list(model_name_summaries(versions)[:RECENT_MODEL_NAMES]),
        "traces": with_model_names(
            list(access.readable(traces_for_list())[:RECENT_TRACES]),
            access.readable(LoggedModel.objects.all()),
        ),
        # What to put in MLFLOW_TRACKING_URI to log to this very server.
        "tracking_uri": request.build_absolute_uri("/").rstrip("/"),
    }
    return render(request, "home.html", context)


@declares("the caller's own tokens")
@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    """The user's API tokens; a POST issues one and shows its plaintext this once."""
    form = TokenForm(request.POST or None)
    issued = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            _, issued = ApiToken.issue(request.user, **form.cleaned_data)
            form = TokenForm()
        else:
            status = 400
    context = {
        "form": form,
        "issued": issued,
        "tokens": request.user.api_tokens.filter(revoked_at__isnull=True),
        "role": Role(access_for(request).role).label,
        "tracking_uri": request.build_absolute_uri("/").rstrip("/"),
    }
    return render(request, "webapp/tokens.html", context, status=status)


@declares("the caller's own tokens")
@login_required
@require_POST
def revoke_token(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(request.user.api_tokens, pk=token_id, revoked_at__isnull=True)
    token.revoke()
    return redirect("tokens")
