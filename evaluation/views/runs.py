"""Evaluation runs: the list (by experiment and by model version) and one run row by row."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.http import Http404, HttpResponse
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_safe

from access.rules import access_for, declares
from evaluation import charts, results
from evaluation.run_tables import run_tables
from tracking import keyset
from tracking.models import Experiment, Run
from tracking.permissions import page_reads
from tracking.templatetags.tracking_format import dollars, duration, model_url, tokens
from webapp.htmx import HtmxHttpRequest, render_page

RUNS_PER_PAGE = 50
ROWS_PER_PAGE = 100
MAX_PARAM = 200
ORDER = ("-start_time", "-pk")


def _cursor(value: str) -> tuple[datetime, int] | None:
    """`?after=<iso time>|<pk>`, the last run of the page before; None when malformed."""
    when, _, pk = value.rpartition("|")
    parsed = parse_datetime(when) if when else None
    return (parsed, int(pk)) if parsed and pk.isdigit() else None


@declares("lists evaluation runs of readable experiments only")
@require_safe
def evaluation_list(request: HtmxHttpRequest) -> HttpResponse:
    access = access_for(request)
    runs = access.readable(Run.objects.evaluations()).select_related("experiment")
    experiment = request.GET.get("experiment", "")[:MAX_PARAM]
    model = request.GET.get("model", "")[:MAX_PARAM]
    if experiment:
        runs = runs.filter(experiment_id=int(experiment) if experiment.isdigit() else -1)
    if model:
        runs = runs.of_model(model)
    cursor = _cursor(request.GET.get("after", "")[:MAX_PARAM])
    condition = keyset.after(ORDER, cursor) if cursor else None
    page, more = keyset.page(runs, ORDER, condition, RUNS_PER_PAGE)
    for run in page:
        run.url_model = model_url(run.model_id)
        run.score_list = [
            (name, value)
            for name, aggs in sorted(run.scores.items())
            for agg, value in sorted(aggs.items())
            if agg == "mean"
        ]
    filters = {k: v for k, v in (("experiment", experiment), ("model", model)) if v}
    next_query = ""
    if more:
        last = page[-1]
        next_query = urlencode({**filters, "after": f"{last.start_time.isoformat()}|{last.pk}"})
    context = {
        "runs": page,
        "experiments": access.readable(Experiment.objects.order_by("name"), "pk")
        .filter(lifecycle_stage="active")
        .only("pk", "name"),
        "experiment": experiment,
        "model": model,
        "paged": cursor is not None,
        "first_query": urlencode(filters),
        "next_query": next_query,
    }
    return render_page(request, "evaluation/list.html", context, fragment="runs")


def evaluation_run_or_404(request: HtmxHttpRequest, run_id: str) -> Run:
    """The readable evaluation run `run_id` with its dataset, model version and row count."""
    run = (
        access_for(request)
        .readable(Run.objects.evaluations())
        .select_related("experiment")
        .filter(run_id=run_id)
        .first()
    )
    if run is None:
        raise Http404("No such evaluation run.")
    return run


def _label(row: results.ResultRow) -> None:
    """Cell texts for the rows a page shows (formatted here, not by a filter per cell)."""
    row.latency_label = duration(row.latency_ns)
    row.tokens_label = tokens(row.tokens)
    row.cost_label = dollars(row.cost)


def _page_number(value: str, pages: int) -> int:
    return min(max(int(value), 1), pages) if value.isdigit() and len(value) < 7 else 1


@page_reads("run", "run_id")
@require_safe
def evaluation_run(request: HtmxHttpRequest, run_id: str) -> HttpResponse:
    run = evaluation_run_or_404(request, run_id)
    table = run_tables([run])[run.pk]
    aggregates = table.aggregates()
    for item in aggregates:
        item.bar = charts.bar(item.fraction)
    scorer = request.GET.get("scorer", "")[:MAX_PARAM]
    result = request.GET.get("result", "")
    rows = table.filtered(scorer, result)
    rows, sort = results.sort_rows(rows, request.GET.get("sort", "")[:MAX_PARAM], table.scorers)
    pages = max(1, -(-len(rows) // ROWS_PER_PAGE))
    number = _page_number(request.GET.get("page", ""), pages)
    shown = rows[(number - 1) * ROWS_PER_PAGE : number * ROWS_PER_PAGE]
    for row in shown:
        _label(row)
    filters = {"scorer": scorer, "result": result} if scorer in table.scorers else {}
    context: dict[str, Any] = {
        "run": run,
        "model_link": model_url(run.model_id),
        "table": table,
        "aggregates": aggregates,
        "rows": shown,
        "matching": len(rows),
        "scorer": scorer if filters else "",
        "result": result if filters else "",
        "results": results.RESULTS,
        "sort": sort,
        "sort_keys": [
            ("position", "#"),
            ("inputs", "Inputs"),
            ("outputs", "Outputs"),
            ("latency", "Latency"),
            ("tokens", "Tokens"),
            ("cost", "Cost"),
        ],
        "filter_query": urlencode(filters),
        "sort_query": urlencode({**filters, "sort": sort}),
        "page": number,
        "pages": pages,
    }
    return render_page(request, "evaluation/run.html", context, fragment="rows")
