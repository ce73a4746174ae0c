"""Compare 2-4 model versions side by side: their answers to the same requests, params, config,
tags, metrics, trace statistics and the code between their commits. The URL (`?ids=a,b&diff=1`)
is the whole state: shareable. Ids may be cut short, as the model list shows them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib.humanize.templatetags.humanize import intcomma
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpResponse
from django.views.decorators.http import require_safe

from access.rules import access_for, declares
from tracking import svg
from tracking.compare import (
    Answers,
    Row,
    diff_rows,
    direction,
    flatten,
    git_commit_url,
    git_compare_url,
    match_answers,
)
from tracking.evaluations import RunModel, scores_by_dataset
from tracking.models import LoggedModel, Metric, Run, Trace
from tracking.templatetags.tracking_format import dollars, duration, metric
from tracking.trace_stats import TraceStats, trace_stats
from webapp.htmx import HtmxHttpRequest, render_page

MIN_VERSIONS = 2
MAX_VERSIONS = 4
MAX_ID_LENGTH = 64
# The evaluations read for the per-dataset scores: the newest, bounded.
EVALUATION_RUNS = 200
# Each version's newest traces read for its answers: enough for the rows shown, bounded however
# many traces a version has.
ANSWER_TRACES = 200


def requested_ids(values: list[str]) -> list[str]:
    """Ids from `?ids=a,b` and/or `?ids=a&ids=b`, in order, without repeats or blanks; an id
    copied with the ellipsis a truncated one is shown with loses it."""
    ids: list[str] = []
    for value in values:
        for part in value.split(","):
            part = part.strip().removesuffix("…").strip()
            if part and part not in ids:
                ids.append(part)
    return ids


@dataclass
class Section:
    title: str
    rows: list[Row]
    hidden: int = 0  # unchanged rows left out by "only differences"


def _number(value: Any) -> str:
    return metric(value) if isinstance(value, float) else str(value)


def _percent(value: Any) -> str:
    return f"{value * 100:.1f} %"


def _tokens(value: Any) -> str:
    return f"{value:,.0f}"


# Trace statistics rows: label, attribute, direction (-1: lower is better), formatter.
STAT_ROWS: list[tuple[str, str, int, Callable[[Any], str]]] = [
    ("Traces", "count", 0, intcomma),
    ("Error rate", "error_rate", -1, _percent),
    ("Latency p50", "p50", -1, duration),
    ("Latency p95", "p95", -1, duration),
    ("Latency p99", "p99", -1, duration),
    ("Tokens per trace", "avg_tokens", 0, _tokens),
    ("Cost per trace", "avg_cost", -1, dollars),
]


def _stat_rows(stats: list[TraceStats]) -> list[Row]:
    rows = []
    for label, attribute, sense, text in STAT_ROWS:
        columns = [{} if getattr(s, attribute) is None else {label: getattr(s, attribute)}
                   for s in stats]  # fmt: skip
        rows += diff_rows(columns, sense=lambda _key, sense=sense: sense, text=text)
    return rows


def _metric_columns(versions: list[LoggedModel]) -> list[dict[str, float]]:
    metrics = Metric.objects.latest_of_models(v.pk for v in versions)
    return [
        {
            f"{key} ({dataset})" if dataset else key: m.value
            for (key, dataset), m in metrics.get(v.pk, {}).items()
        }
        for v in versions
    ]


def _sections(versions: list[LoggedModel], stats: list[TraceStats], only_diff: bool) -> list:
    sections = [
        Section("Params", diff_rows([v.params for v in versions])),
        Section("Config", diff_rows([flatten(v.model_config) for v in versions])),
        Section("Metrics", diff_rows(_metric_columns(versions), sense=direction, text=_number)),
        Section("Trace statistics", _stat_rows(stats)),
        Section("Tags", diff_rows([v.tags for v in versions])),
    ]
    if only_diff:
        for section in sections:
            changed = [row for row in section.rows if row.changed]
            section.hidden, section.rows = len(section.rows) - len(changed), changed
    return sections


def _git(versions: list[LoggedModel]) -> bool:
    """Link each commit, and the code between the first one and each other; mark the commits
    that differ from the first (a version without one differs from a version with one).
    Answers whether any does."""
    base = versions[0]
    for version in versions:
        version.commit_url = git_commit_url(version.git_repo_url, version.git_commit)
        same_repo = version.git_repo_url and version.git_repo_url == base.git_repo_url
        version.compare_url = (
            git_compare_url(version.git_repo_url, base.git_commit, version.git_commit)
            if same_repo and version is not base
            else ""
        )
    rows = diff_rows([{"commit": v.git_commit} if v.git_commit else {} for v in versions])
    for i, version in enumerate(versions):
        version.commit_changed = bool(rows) and rows[0].cells[i].changed
    return bool(rows) and rows[0].changed


def _resolve(request: HtmxHttpRequest, ids: list[str]) -> tuple[dict[str, LoggedModel], str]:
    """The readable versions of `ids` by the id asked for, each a full id or an unambiguous
    start of one (the model list shows `m-` and 12 hex digits); and the message for an id that
    starts several. One query for full ids, one more per shortened id."""
    readable = (
        access_for(request)
        .readable(LoggedModel.objects.all())
        .numbered()
        .select_related("source_run")
    )
    if len(ids) < MIN_VERSIONS or len(ids) > MAX_VERSIONS:
        return {}, ""  # _problem() says so, without a query
    lookup = [i for i in ids if len(i) <= MAX_ID_LENGTH]
    found = {v.model_id: v for v in readable.filter(model_id__in=lookup)}
    for short in [i for i in lookup if i not in found]:
        matches = list(readable.filter(model_id__startswith=short)[:2])
        if len(matches) > 1:
            which = " and ".join(m.model_id for m in matches)
            return found, f"{short} starts more than one version's id ({which}): give more of it."
        if matches:
            found[short] = matches[0]
    return found, ""


def _problem(ids: list[str], found: dict[str, LoggedModel]) -> tuple[str, int]:
    if len(ids) < MIN_VERSIONS or len(ids) > MAX_VERSIONS:
        return f"Pick {MIN_VERSIONS} to {MAX_VERSIONS} versions to compare.", 400
    missing = [i for i in ids if i not in found]
    if missing:
        return "No such model version: " + ", ".join(missing) + ".", 404
    if len({v.pk for v in found.values()}) < len(ids):
        return "These ids name the same version more than once.", 400
    return "", 200


def _answers(versions: list[LoggedModel], traces: QuerySet[Trace]) -> Answers:
    recent = traces.recent_of_models((v.model_id for v in versions), ANSWER_TRACES)
    by_model: dict[str, list[Trace]] = {v.model_id: [] for v in versions}
    for trace in recent:
        by_model[trace.model_id].append(trace)
    return match_answers([by_model[v.model_id] for v in versions])


def _answer_context(answers: Answers, only_diff: bool) -> dict[str, Any]:
    rows = [row for row in answers.rows if row.changed] if only_diff else answers.rows
    hidden = len(answers.rows) - len(rows)
    return {"answers": answers, "answer_rows": rows, "answers_hidden": hidden}


def _evaluations(request: HtmxHttpRequest, versions: list[LoggedModel]) -> list:
    """Per dataset, the versions' newest evaluations there and their scores side by side."""
    ids = [v.model_id for v in versions]
    used = RunModel.objects.filter(run=OuterRef("pk"), model_id__in=ids)
    runs = access_for(request).readable(Run.objects.evaluations()).filter(Exists(used))
    return scores_by_dataset(runs[:EVALUATION_RUNS], ids)


def _versions(request: HtmxHttpRequest, ids: list[str]) -> tuple[list[LoggedModel], str, int]:
    """The readable versions `ids` name, oldest first (the first column is the baseline every
    other column is diffed against); or the message and status that say why not."""
    found, ambiguous = _resolve(request, ids)
    error, status = (ambiguous, 400) if ambiguous else _problem(ids, found)
    if error:
        return [], error, status
    return sorted(found.values(), key=lambda v: (v.created_at, v.pk)), "", 200


@declares("compares readable versions only; the others are 'no such model version' (404)")
@require_safe
def model_compare(request: HtmxHttpRequest) -> HttpResponse:
    ids = requested_ids(request.GET.getlist("ids"))
    only_diff = request.GET.get("diff") == "1"
    versions, error, status = _versions(request, ids)
    # The answers read up to ANSWER_TRACES traces per version: they arrive as their own
    # fragment after the page, unless asked for inline (`answers=1`, the link without htmx).
    inline_answers = request.GET.get("answers") == "1"
    context: dict[str, Any] = {
        "ids": ids, "error": error, "only_diff": only_diff, "answers_later": not inline_answers,
    }  # fmt: skip
    if not error:
        readable = access_for(request).readable(Trace.objects.all())
        stats_by_id = trace_stats((v.model_id for v in versions), traces=readable)
        stats = [stats_by_id[v.model_id] for v in versions]
        commit_changed = _git(versions)
        for version, s in zip(versions, stats, strict=True):
            version.chart = svg.histogram(s.histogram, s.bucket_ns) if s.histogram else None
        context |= {
            "versions": versions,
            "commit_changed": commit_changed,
            "sections": _sections(versions, stats, only_diff),
            "ids_param": ",".join(v.model_id for v in versions),
            "evaluations": _evaluations(request, versions),
        }
        if inline_answers:
            context |= _answer_context(_answers(versions, readable), only_diff)
    return render_page(
        request, "tracking/model_compare.html", context, fragment="compare-body", status=status
    )


@declares("answers of readable versions from readable traces only")
@require_safe
def model_compare_answers(request: HtmxHttpRequest) -> HttpResponse:
    """The compare page's answers section alone (the `<tbody>` it swaps in)."""
    ids = requested_ids(request.GET.getlist("ids"))
    versions, error, status = _versions(request, ids)
    if error:
        return HttpResponse(error, status=status, content_type="text/plain; charset=utf-8")
    readable = access_for(request).readable(Trace.objects.all())
    only_diff = request.GET.get("diff") == "1"
    context = {"versions": versions, "answers_later": False,
               **_answer_context(_answers(versions, readable), only_diff)}  # fmt: skip
    return render_page(request, "tracking/model_compare.html#compare-answers", context)
