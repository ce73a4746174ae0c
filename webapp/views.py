"""The home page: what is in this Spyglass, newest first."""

from __future__ import annotations

from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from tracking.models import Experiment, LifecycleStage, LoggedModel, Trace
from tracking.views import (
    RECENT_TRACES,
    capped_count,
    model_name_summaries,
    traces_for_list,
    with_model_names,
)

RECENT_MODEL_NAMES = 8


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    models = LoggedModel.objects.aggregate(names=Count("name", distinct=True), versions=Count("pk"))
    trace_count, more_traces = capped_count(Trace.objects.all())
    context = {
        "experiment_count": Experiment.objects.filter(
            lifecycle_stage=LifecycleStage.ACTIVE
        ).count(),
        "model_count": models["names"],
        "version_count": models["versions"],
        "trace_count": trace_count,
        "more_traces": more_traces,
        "models": list(model_name_summaries()[:RECENT_MODEL_NAMES]),
        "traces": with_model_names(list(traces_for_list()[:RECENT_TRACES])),
        # What to put in MLFLOW_TRACKING_URI to log to this very server.
        "tracking_uri": request.build_absolute_uri("/").rstrip("/"),
    }
    return render(request, "home.html", context)
