"""Logged model pages: versions grouped by name, and one version's page."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, F, Max, OuterRef, QuerySet, Subquery, Window
from django.db.models.functions import RowNumber
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_safe

from tracking.models import LoggedModel, Trace
from tracking.queries import RECENT_TRACES, capped_count, trace_counts, traces_for_list

MODEL_NAMES_PER_PAGE = 100
VERSIONS_PER_NAME = 20
KEY_PARAMS = 4


def model_name_summaries() -> QuerySet:
    """One row per model name: version count, newest version and when it was logged."""
    newest = LoggedModel.objects.filter(name=OuterRef("name")).order_by("-created_at", "-pk")
    return (
        LoggedModel.objects.order_by()
        .values("name")
        .annotate(
            versions=Count("pk"),
            latest_created_at=Max("created_at"),
            newest_model_id=Subquery(newest.values("model_id")[:1]),
        )
        .order_by("-latest_created_at", "name")
    )


@dataclass
class ModelGroup:
    name: str
    version_count: int
    versions: list[LoggedModel] = field(default_factory=list)

    @property
    def hidden_versions(self) -> int:
        return self.version_count - len(self.versions)


def model_groups(limit: int = MODEL_NAMES_PER_PAGE) -> tuple[list[ModelGroup], bool]:
    """The most recently active model names with their newest versions (3 queries).

    Returns (groups, more) where `more` says names beyond `limit` exist.
    """
    summaries = list(model_name_summaries()[: limit + 1])
    more = len(summaries) > limit
    groups = {s["name"]: ModelGroup(s["name"], s["versions"]) for s in summaries[:limit]}
    # A window rank keeps the query bounded even for a name with thousands of versions.
    versions = (
        LoggedModel.objects.filter(name__in=groups)
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("name")],
                order_by=[F("created_at").desc(), F("pk").desc()],
            )
        )
        .filter(rank__lte=VERSIONS_PER_NAME)
        .order_by("name", "-created_at", "-pk")
    )
    versions = list(versions)
    counts = trace_counts(v.model_id for v in versions)
    for version in versions:
        version.trace_count = counts.get(version.model_id, 0)
        params = sorted(version.params.items())
        version.key_params = params[:KEY_PARAMS]
        version.more_params = len(params) - len(version.key_params)
        groups[version.name].versions.append(version)
    return list(groups.values()), more


@require_safe
def model_list(request: HttpRequest) -> HttpResponse:
    groups, more = model_groups()
    context = {"groups": groups, "more_names": more, "names_limit": MODEL_NAMES_PER_PAGE}
    return render(request, "tracking/model_list.html", context)


@require_safe
def model_detail(request: HttpRequest, model_id: str) -> HttpResponse:
    model = get_object_or_404(
        LoggedModel.objects.select_related("experiment", "source_run"), model_id=model_id
    )
    traces = Trace.objects.for_model(model_id)
    trace_count, more_traces = capped_count(traces)
    recent = list(traces_for_list().for_model(model_id)[:RECENT_TRACES])
    for trace in recent:
        trace.model_name = model.name  # all of them are this version's
    versions = LoggedModel.objects.versions_of(model.name).only("model_id", "status", "created_at")
    context = {
        "model": model,
        "params": sorted(model.params.items()),
        "tags": sorted(model.tags.items()),
        "metrics": list(model.metrics.latest_per_key()),
        "traces": recent,
        "trace_count": trace_count,
        "more_traces": more_traces,
        "versions": list(versions[:VERSIONS_PER_NAME]),
    }
    return render(request, "tracking/model_detail.html", context)
