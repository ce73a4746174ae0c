"""Logged model pages: versions grouped by name, and one version's overview and traces."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.timezone import localtime
from django.views.decorators.http import require_safe

from access.models import Level
from access.rules import access_for, declares
from tracking import filters, markdown, svg
from tracking.compare import git_commit_url
from tracking.filters import LOGGED_MODELS, FilterError
from tracking.models import (
    LoggedModel,
    LoggedModelQuerySet,
    LoggedModelStatus,
    Metric,
    ModelGroup,
    ModelGrouping,
    ModelVersion,
    RegisteredModel,
    Run,
    Trace,
    VersionShape,
)
from tracking.permissions import page_reads
from tracking.templatetags.tracking_format import (
    dollars,
    json_value,
    metric,
    model_url,
    percent,
    short_sha,
)
from tracking.trace_stats import TraceCounts, trace_counts, trace_stats

MODEL_NAMES_PER_PAGE = 100
RECENT_TRACES = 20
# The overview lists each name's newest versions; `?name=` lists one name's versions in full
# (up to ONE_NAME_VERSIONS), so that any version can be ticked for a comparison.
VERSIONS_PER_NAME = 10
ONE_NAME_VERSIONS = 200
KEY_PARAMS = 4
KEY_METRICS = 2
METRIC_ROWS = 500
EVALUATIONS = 20  # the version's newest evaluation runs, on its page
STATUS_LABELS = {
    LoggedModelStatus.READY: "Ready",
    LoggedModelStatus.PENDING: "Pending",
    LoggedModelStatus.UPLOAD_FAILED: "Upload failed",
}
MAX_QUERY = 2000


@dataclass(frozen=True)
class Column:
    kind: str  # "param" or "metric"
    key: str

    @property
    def value(self) -> str:
        return f"{self.kind}:{self.key}"


def _columns(request: HttpRequest, versions: list[LoggedModel], metric_keys: Counter) -> dict:
    """The selectable param and metric columns, and the ones chosen (`col=param:x`)."""
    param_keys = Counter(key for v in versions for key in v.params)
    available = [Column("param", k) for k, _ in sorted(param_keys.items())] + [
        Column("metric", k) for k, _ in sorted(metric_keys.items())
    ]
    if "cols" in request.GET:  # the column form was sent: exactly what it selected
        wanted = set(request.GET.getlist("col"))
        chosen = [c for c in available if c.value in wanted]
    else:
        chosen = [Column("param", k) for k, _ in param_keys.most_common(KEY_PARAMS)]
        chosen += [Column("metric", k) for k, _ in metric_keys.most_common(KEY_METRICS)]
    return {"available": available, "chosen": chosen}


def _cell(value: Any) -> tuple[str, bool]:
    """A param or metric as (text, is a number) for one list cell."""
    if value is None:
        return "—", False
    if isinstance(value, float):
        return metric(value), True
    text = json_value(value)
    return (text[:39] + "…" if len(text) > 40 else text), False


def _prepare_row(
    version: LoggedModel, counts: TraceCounts | None, metrics: dict, columns: dict
) -> None:
    """Everything a list row shows, as plain strings: the list renders up to 2,000 rows and
    template filters and includes per cell would cost more than the queries."""
    by_key = {key: m.value for (key, _), m in metrics.items()}
    values = [
        version.params.get(c.key) if c.kind == "param" else by_key.get(c.key)
        for c in columns["chosen"]
    ]
    version.cells = [_cell(value) for value in values]
    version.has_value = [value is not None for value in values]
    version.counts = counts
    # Strings, not ints: the template would localize each number on every one of the rows.
    version.count_label = f"{counts.count:,}" if counts else "0"
    # Grouped by registered model, a version is numbered as the registry numbers it; by
    # experiment, by its place in the app's history.
    group_number = getattr(version, "registry_version", None) or getattr(
        version, "experiment_number", None
    )
    version.number_label = str(group_number or version.number)
    version.name_label = f"{version.name} v{version.number}"
    version.error_label = percent(counts.error_rate) if counts else "—"
    version.cost_label = dollars(counts.cost if counts else None)
    version.url = model_url(version.model_id)
    version.short_id = version.model_id[:14]
    version.description_excerpt = markdown.excerpt(version.description)
    version.status_class = version.status.lower()
    version.status_label = STATUS_LABELS.get(version.status, version.status)
    version.created_iso = version.created_at.isoformat()
    version.created_label = localtime(version.created_at).strftime("%Y-%m-%d %H:%M")
    version.short_sha = short_sha(version.git_commit)
    version.commit_url = git_commit_url(version.git_repo_url, version.git_commit)
    run = version.source_run
    version.run_label = (run.name or run.run_id)[:24] if run else ""


GROUPINGS = {
    ModelGrouping.REGISTERED: LoggedModelQuerySet.grouped_by_registered_model,
    ModelGrouping.EXPERIMENT: LoggedModelQuerySet.grouped_by_experiment,
    ModelGrouping.NAME: LoggedModelQuerySet.grouped,
}
WHY_GROUPED = {
    ModelGrouping.REGISTERED: "every version is registered",
    ModelGrouping.EXPERIMENT: "each logged-model name has one version",
    ModelGrouping.NAME: "versions share their logged-model names",
}


def _grouping(asked: str, readable: LoggedModelQuerySet) -> tuple[str, VersionShape | None]:
    """The grouping asked for, else the one that the shape of all readable versions suggests
    (not of a search's: the grouping stays put while the user narrows the list)."""
    if asked in ModelGrouping.values:
        return asked, None
    shape = readable.shape()
    return shape.grouping, shape


def _one_group(versions: LoggedModelQuerySet, by: str, key: str) -> LoggedModelQuerySet:
    """The versions of one group (`?group=`): a name, an experiment id, a registered name."""
    if by == ModelGrouping.EXPERIMENT:
        if not key.isdigit() or len(key) > 18:
            raise FilterError(f"No experiment has the id {key!r}.")
        return versions.filter(experiment_id=int(key))
    if by == ModelGrouping.REGISTERED:
        registered = ModelVersion.objects.filter(registered_model__name=key)
        return versions.filter(model_id__in=registered.exclude(model_id="").values("model_id"))
    return versions.filter(name=key)


@declares("lists the versions of readable experiments")
@require_safe
def model_list(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:MAX_QUERY]
    readable = access_for(request).readable(LoggedModel.objects.all())
    # `?name=` is the by-name group link of earlier versions of this page.
    group_key = request.GET.get("group", "") or request.GET.get("name", "")
    asked = request.GET.get("by", "") or (ModelGrouping.NAME if request.GET.get("name") else "")
    by, shape = _grouping(asked, readable)
    versions, error = readable, ""
    try:
        if asked not in ("", *ModelGrouping.values):
            raise FilterError(
                f"Unknown grouping {asked[:40]!r}: choose one of {', '.join(ModelGrouping.values)}."
            )
        versions = versions.filter(LOGGED_MODELS.q(query)) if query else versions
        versions = _one_group(versions, by, group_key) if group_key else versions
    except FilterError as exc:
        error, versions = exc.message, versions.none()
    groups, more = GROUPINGS[by](
        versions, MODEL_NAMES_PER_PAGE, ONE_NAME_VERSIONS if group_key else VERSIONS_PER_NAME
    )
    listed = [v for g in groups for v in g.versions]
    counts = trace_counts((v.model_id for v in listed), _readable_traces(request))
    # No registry rows to look up when the shape says that no version is registered.
    registered = listed and (shape is None or shape.registered)
    registrations = _registrations(v.model_id for v in listed) if registered else {}
    metrics = Metric.objects.latest_of_models(v.pk for v in listed)
    metric_keys = Counter(key for m in metrics.values() for key, _ in m)
    columns = _columns(request, listed, metric_keys)
    for version in listed:
        _prepare_row(version, counts.get(version.model_id), metrics.get(version.pk, {}), columns)
        version.registry_labels = registrations.get(version.model_id, [])
    for group in groups:
        _group_columns(group, columns["chosen"])
    # Asked only of a search that found nothing.
    searched = query and not listed and not error
    registered_name = _registered_name_searched(query) if searched else ""
    context = {
        "groups": groups,
        "registered_name": registered_name,
        "registered_query": "model = '{}'".format(registered_name.replace("'", "''")),
        "more_names": more,
        "names_limit": MODEL_NAMES_PER_PAGE,
        "q": query,
        "by": by,
        "groupings": ModelGrouping.choices,
        "why_grouped": WHY_GROUPED[by] if shape else "",
        "group_key": group_key,
        "error": error,
        "traces_url": reverse("tracking:trace-list"),
        **columns,
    }
    return render(request, "tracking/model_list.html", context, status=400 if error else 200)


def _group_columns(group: ModelGroup, chosen: list[Column]) -> None:
    """Give a group only the chosen columns that one of its listed versions has a value for:
    another agent's params would be a column of dashes."""
    keep = [i for i in range(len(chosen)) if any(v.has_value[i] for v in group.versions)]
    group.columns = [chosen[i] for i in keep]
    # Each listed version is a row of its own (grouping copies one registered twice).
    for version in group.versions:
        version.cells = [version.cells[i] for i in keep]


def _registered_name_searched(query: str) -> str:
    """A registered model that a search by `name = '...'` meant: MLflow's `name` is the
    logged model's, which seeds that log `name="agent"` never match."""
    names = [
        c.value
        for c in filters.parse(query)
        if c.prefix == "attribute" and c.key.lower() == "name" and c.op == "="
    ]
    return (
        RegisteredModel.objects.filter(name__in=names).values_list("name", flat=True).first() or ""
    )


def _registrations(model_ids: Iterable[str]) -> dict[str, list[str]]:
    """Where each logged model is registered, as list labels: "support-agent v3 @champion"."""
    labels: dict[str, list[str]] = defaultdict(list)
    for version in ModelVersion.objects.of_logged_models(model_ids):
        aliases = "".join(f" @{alias}" for alias in version.aliases)
        labels[version.model_id].append(
            f"{version.registered_model.name} v{version.version}{aliases}"
        )
    return labels


def _readable_traces(request: HttpRequest) -> QuerySet[Trace]:
    """A model's traces may be logged to other experiments than it: count only readable ones."""
    return access_for(request).readable(Trace.objects.all())


def version_or_404(model_id: str) -> LoggedModel:
    return get_object_or_404(
        LoggedModel.objects.select_related("experiment", "source_run").numbered(),
        model_id=model_id,
    )


def _tree(value: Any) -> list[dict[str, Any]]:
    """A config as nested nodes for a recursive template: {key, value, children}."""
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: str(kv[0]))
    else:
        items = [(f"[{i}]", v) for i, v in enumerate(value)]
    nodes = []
    for key, item in items:
        nested = isinstance(item, dict | list) and bool(item)
        nodes.append({"key": key, "value": item, "children": _tree(item) if nested else None})
    return nodes


@page_reads("model", "model_id")
@require_safe
def model_detail(request: HttpRequest, model_id: str) -> HttpResponse:
    return render_detail(request, version_or_404(model_id))


def render_detail(request: HttpRequest, model: LoggedModel, **extra: Any) -> HttpResponse:
    """The version page; `extra` (a description form's error and draft) and its status 400
    when the description form failed without htmx."""
    access = access_for(request)
    trace_count, more_traces = _readable_traces(request).for_model(model.model_id).capped_count()
    metrics = model.metrics.order_by("key", "dataset_name", "step", "timestamp_ms")
    # With their registered models in the same query: the line shows name and aliases.
    registrations = list(ModelVersion.objects.of_logged_model(model.model_id))
    versions = access.readable(LoggedModel.objects.only("model_id", "status", "created_at"))
    history = versions.history_of(
        model, registrations[0] if registrations else None, VERSIONS_PER_NAME
    )
    context = {
        "model": model,
        "tab": "overview",
        "params": sorted(model.params.items()),
        "tags": sorted(model.tags.items()),
        "config": _tree(model.model_config) if model.model_config else [],
        "metrics": list(metrics[:METRIC_ROWS]),
        "metrics_limit": METRIC_ROWS,
        "trace_count": trace_count,
        "more_traces": more_traces,
        "evaluations": list(
            access.readable(Run.objects.evaluations().of_model(model.model_id))[:EVALUATIONS]
        ),
        "commit_url": git_commit_url(model.git_repo_url, model.git_commit),
        "history": history,
        "history_label": ModelGrouping(history.by).label,
        "registrations": registrations,
        "can_edit": access.can(Level.EDIT, model.experiment_id),
        "description_error": "",
        "draft": model.description,
        **extra,
    }
    status = 400 if extra.get("description_error") else 200
    return render(request, "tracking/model_detail.html", context, status=status)


@page_reads("model", "model_id")
@require_safe
def model_traces(request: HttpRequest, model_id: str) -> HttpResponse:
    model = version_or_404(model_id)
    readable = _readable_traces(request)
    stats = trace_stats([model.model_id], traces=readable)[model.model_id]
    recent = list(
        access_for(request)
        .readable(Trace.objects.for_list())
        .for_model(model.model_id)[:RECENT_TRACES]
    )
    for trace in recent:
        trace.model_name = model.name  # all of them are this version's
    chart = svg.histogram(stats.histogram, stats.bucket_ns) if stats.histogram else None
    context = {"model": model, "tab": "traces", "stats": stats, "traces": recent, "chart": chart}
    return render(request, "tracking/model_traces.html", context)
