"""Compare 2-4 evaluation runs row by row: `?runs=a,b[,c,d]`, the first the baseline."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.http import HttpResponse
from django.views.decorators.http import require_safe

from access.rules import access_for, declares
from evaluation import charts, comparison
from evaluation.run_tables import comparison_of
from tracking.models import Run
from tracking.templatetags.tracking_format import dollars, duration, model_url
from tracking.views.model_compare import requested_ids
from webapp.htmx import HtmxHttpRequest, render_page

MIN_RUNS = 2
MAX_RUNS = 4
LINES_PER_PAGE = 100
MAX_ID_LENGTH = 64


def _runs(request: HtmxHttpRequest, ids: list[str]) -> tuple[list[Run], str, int]:
    """The readable evaluation runs `ids` name, in the order asked; or why not."""
    if not MIN_RUNS <= len(ids) <= MAX_RUNS:
        return [], f"Pick {MIN_RUNS} to {MAX_RUNS} evaluation runs to compare.", 400
    wanted = [i for i in ids if len(i) <= MAX_ID_LENGTH]
    found = {
        run.run_id: run
        for run in access_for(request).readable(Run.objects.evaluations()).filter(run_id__in=wanted)
    }
    missing = [i for i in ids if i not in found]
    if missing:
        return [], "No such evaluation run: " + ", ".join(missing) + ".", 404
    return [found[i] for i in ids], "", 200


def _strips(runs: list[Run], result: comparison.Comparison) -> list[charts.Strip]:
    """A score/cost/latency strip: one bar per run for each scorer, mean latency, cost."""
    names = [run.name or run.run_id for run in runs]
    strips = []
    for i, scorer in enumerate(result.scorers):
        items = [s.aggregates[i] for s in result.summaries]
        labels = [f"{name}: {item.label}" for name, item in zip(names, items, strict=True)]
        strips.append(charts.strip(scorer, [item.value for item in items], labels))
    for title, attribute, text in (
        ("mean latency", "mean_latency_ns", duration),
        ("cost", "total_cost", dollars),
    ):
        values = [getattr(s, attribute) for s in result.summaries]
        labels = [
            f"{name}: {text(value) if value is not None else '—'}"
            for name, value in zip(names, values, strict=True)
        ]
        strips.append(charts.strip(title, values, labels))
    return strips


def _page_number(value: str, pages: int) -> int:
    return min(max(int(value), 1), pages) if value.isdigit() and len(value) < 7 else 1


@declares("compares readable evaluation runs only; the others are 'no such run' (404)")
@require_safe
def evaluation_compare(request: HtmxHttpRequest) -> HttpResponse:
    ids = requested_ids(request.GET.getlist("runs"))
    only_changes = request.GET.get("changes") == "1"
    runs, error, status = _runs(request, ids)
    context: dict[str, Any] = {"error": error, "only_changes": only_changes}
    if not error:
        result = comparison_of(runs)
        shown = (
            [item for item in result.placed if item.category != "unchanged"]
            if only_changes
            else result.placed
        )
        pages = max(1, -(-len(shown) // LINES_PER_PAGE))
        number = _page_number(request.GET.get("page", ""), pages)
        for run, summary in zip(runs, result.summaries, strict=True):
            run.summary = summary
            run.url_model = model_url(run.model_id)
        runs_param = ",".join(run.run_id for run in runs)
        context |= {
            "runs": runs,
            "result": result,
            "counts": result.counts(),
            "lines": result.lines_of(
                shown[(number - 1) * LINES_PER_PAGE : number * LINES_PER_PAGE]
            ),
            "strips": _strips(runs, result),
            "runs_param": runs_param,
            "page": number,
            "pages": pages,
            "page_query": urlencode(
                {"runs": runs_param, **({"changes": "1"} if only_changes else {})}
            ),
        }
    return render_page(
        request, "evaluation/compare.html", context, fragment="compare-body", status=status
    )
