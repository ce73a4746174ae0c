"""The overview: usage, latency, errors, tokens and cost, quality and tools over time, per
model version, as server-drawn SVG charts whose buckets link to the filtered trace list.

`?experiment=<id>` (none: every readable experiment), `?model=<model_id>`, and
`?range=1h|24h|7d|30d|90d` or `?start=&end=` (UTC). The range switcher swaps the charts
partial with htmx and pushes the URL, so every view of the page is a shareable link.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.views.decorators.http import require_safe

from access.rules import Access, access_for, declares
from tracking import overview_charts
from tracking.models import Experiment, LifecycleStage, LoggedModel
from tracking.overview import Overview, OverviewError, Range, overview
from tracking.permissions import page_scope
from webapp.htmx import HtmxHttpRequest, render_page
from webapp.query_strings import with_params

RANGES = {"1h": "1 hour", "24h": "24 hours", "7d": "7 days", "30d": "30 days", "90d": "90 days"}
EXPERIMENT_CHOICES = 50


@declares("charts the traces of readable experiments; ?experiment= needs READ, else 404")
@require_safe
def overview_page(request: HtmxHttpRequest) -> HttpResponse:
    access = access_for(request)
    experiment, model_id = page_scope(access, request.GET)
    try:
        rng = Range.parse(request.GET)
    except OverviewError as error:
        return HttpResponseBadRequest(str(error))
    data = overview(
        access,
        experiment_ids=[experiment.pk] if experiment else None,
        model_id=model_id or None,
        rng=rng,
    )
    context = _context(request, access, experiment, model_id, data)
    return render_page(request, "tracking/overview.html", context, fragment="overview-charts")


def _context(
    request: HttpRequest,
    access: Access,
    experiment: Experiment | None,
    model_id: str,
    data: Overview,
) -> dict[str, Any]:
    rng = data.range
    scope = overview_charts.Scope(experiment.pk if experiment else None, model_id)
    return {
        "data": data,
        "charts": overview_charts.build(data, scope),
        "experiment": experiment,
        "model_id": model_id,
        "model_name": _model_name(access, model_id),
        "ranges": [
            (key, label, with_params(request, range=key, start=None, end=None))
            for key, label in RANGES.items()
        ],
        "current_range": rng.name,
        # The custom range's inputs hold UTC (datetime-local has no zone; ?start= reads UTC).
        "start_input": rng.start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M"),
        "end_input": rng.end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M"),
        "experiments": _experiment_choices(access),
        "bucket_label": overview_charts.bucket_text(rng.bucket_ms),
        # A version's name narrows the page to it (not "other", nor traces with no version).
        "versions": [
            (key, label, with_params(request, model=key) if key not in ("", "other") else "")
            for key, label in data.versions
        ],
        "all_versions_query": with_params(request, model=None),
    }


def _model_name(access: Access, model_id: str) -> str:
    if not model_id:
        return ""
    models = access.readable(LoggedModel.objects.filter(model_id=model_id))
    return models.values_list("name", flat=True).first() or ""


def _experiment_choices(access: Access) -> list[Experiment]:
    active = Experiment.objects.filter(lifecycle_stage=LifecycleStage.ACTIVE)
    return list(access.readable(active, "pk").order_by("name")[:EXPERIMENT_CHOICES])
