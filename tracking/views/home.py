"""The home page: what is in this Spyglass, newest first."""

from __future__ import annotations

from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from access.rules import access_for, declares
from tracking.models import Experiment, LifecycleStage, LoggedModel, Trace
from tracking.overview_strip import home_strip

RECENT_MODEL_NAMES = 8
RECENT_TRACES = 20


@declares("counts and lists the rows of readable experiments")
@require_safe
def home(request: HttpRequest) -> HttpResponse:
    access = access_for(request)
    versions = access.readable(LoggedModel.objects.all())
    models = versions.aggregate(names=Count("name", distinct=True), versions=Count("pk"))
    trace_count, more_traces = access.readable(Trace.objects.all()).capped_count()
    experiments = Experiment.objects.filter(lifecycle_stage=LifecycleStage.ACTIVE)
    traces = list(access.readable(Trace.objects.for_list())[:RECENT_TRACES])
    context = {
        "experiment_count": access.readable(experiments, "pk").count(),
        "model_count": models["names"],
        "version_count": models["versions"],
        "trace_count": trace_count,
        "more_traces": more_traces,
        "models": list(versions.name_summaries()[:RECENT_MODEL_NAMES]),
        "traces": access.readable(LoggedModel.objects.all()).name_traces(traces),
        "strip": home_strip(access) if traces else None,
        # What to put in MLFLOW_TRACKING_URI to log to this very server.
        "tracking_uri": request.build_absolute_uri("/").rstrip("/"),
    }
    return render(request, "tracking/home.html", context)
