"""Pages for traces and logged models.

Every page runs a fixed number of queries whatever the row count: lists are bounded (keyset
pages, capped counts) and related values come from one aggregate query per page, never a
query per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db.models import Count, F, Max, OuterRef, Q, QuerySet, Subquery, Window
from django.db.models.functions import RowNumber
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_safe

from tracking.models import Experiment, LoggedModel, Span, Trace

TRACES_PER_PAGE = 50
RECENT_TRACES = 20
# Beyond this a plain list stops being readable and the page slow; the rest is announced.
SPAN_ROWS_MAX = 2_000
# Indentation classes exist in the stylesheet up to this depth (.depth-0 ... .depth-16).
MAX_INDENT = 16
MODEL_NAMES_PER_PAGE = 100
VERSIONS_PER_NAME = 20
KEY_PARAMS = 4
# Counting every row of a large table is slow on PostgreSQL; past this, pages say "N+".
COUNT_CAP = 100_000

# Trace columns that lists never show; some (metadata, tags) can be large JSON objects.
_LIST_DEFERRED = ("metadata", "tags", "response_preview")
# What the span list shows; inputs, outputs, attributes and events stay in the database.
_SPAN_ROW_FIELDS = (
    "span_id",
    "parent_span_id",
    "name",
    "span_type",
    "start_ns",
    "end_ns",
    "status",
    "status_message",
)
_CURSOR_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


# --- Query helpers (candidates for TraceQuerySet / LoggedModelQuerySet methods) -------------


def capped_count(queryset: QuerySet, cap: int = COUNT_CAP) -> tuple[int, bool]:
    """Count at most `cap` rows; returns (count, True) when there are more."""
    count = queryset.order_by()[: cap + 1].count()
    return min(count, cap), count > cap


def traces_for_list() -> QuerySet[Trace]:
    return Trace.objects.for_list().defer(*_LIST_DEFERRED)


def with_model_names(traces: Sequence[Trace]) -> Sequence[Trace]:
    """Set `model_name` on each trace from its logged model, in one query for all of them."""
    ids = {t.model_id for t in traces if t.model_id}
    names = dict(
        LoggedModel.objects.filter(model_id__in=ids).values_list("model_id", "name") if ids else ()
    )
    for trace in traces:
        trace.model_name = names.get(trace.model_id, "")
    return traces


def trace_counts(model_ids: Iterable[str]) -> dict[str, int]:
    """Number of traces per model id, as one grouped query."""
    ids = set(model_ids)
    if not ids:
        return {}
    rows = (
        Trace.objects.filter(model_id__in=ids)
        .order_by()
        .values("model_id")
        .annotate(n=Count("pk"))
        .values_list("model_id", "n")
    )
    return dict(rows)


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


# --- Keyset cursor ------------------------------------------------------------------------


def format_cursor(trace: Trace) -> str:
    # UTC with a "Z": no "+" that a hand-edited query string would turn into a space.
    return f"{trace.request_time.astimezone(UTC).strftime(_CURSOR_TIME_FORMAT)}|{trace.pk}"


def parse_cursor(value: str) -> tuple[datetime, int]:
    """`<request_time ISO 8601>|<pk>` -> (aware datetime, pk); ValueError when malformed."""
    time_part, _, pk_part = value.rpartition("|")
    request_time = datetime.fromisoformat(time_part)
    if request_time.tzinfo is None:
        raise ValueError("cursor time needs a time zone")
    return request_time, int(pk_part)


def _keyset_page(traces: QuerySet[Trace], before: str) -> tuple[list[Trace], str | None]:
    """A page of traces older than the `before` cursor, and the cursor of the page after it.

    Raises ValueError for a malformed cursor.
    """
    if before:
        request_time, pk = parse_cursor(before)
        traces = traces.filter(
            Q(request_time__lt=request_time) | Q(request_time=request_time, pk__lt=pk)
        )
    # One row more than a page tells whether an older page exists, without a COUNT.
    page = list(traces[: TRACES_PER_PAGE + 1])
    if len(page) <= TRACES_PER_PAGE:
        return page, None
    page = page[:TRACES_PER_PAGE]
    return page, format_cursor(page[-1])


def _query_with_cursor(request: HttpRequest, cursor: str | None) -> str:
    """The current query string (filters kept) with `before` set to `cursor`, or dropped."""
    query = request.GET.copy()
    query.pop("before", None)
    if cursor:
        query["before"] = cursor
    return query.urlencode()


def _get_experiment(experiment_id: str) -> Experiment | None:
    if not experiment_id:
        return None
    if not experiment_id.isdigit():
        raise Http404("No such experiment.")
    return get_object_or_404(Experiment, pk=int(experiment_id))


# --- Views --------------------------------------------------------------------------------


@require_safe
def trace_list(request: HttpRequest) -> HttpResponse:
    experiment = _get_experiment(request.GET.get("experiment", ""))
    model_id = request.GET.get("model", "")
    before = request.GET.get("before", "")
    traces = traces_for_list()
    if experiment:
        traces = traces.filter(experiment=experiment)
    if model_id:
        traces = traces.for_model(model_id)
    try:
        page, older = _keyset_page(traces, before)
    except ValueError:
        return HttpResponseBadRequest("Malformed 'before' cursor.")
    context = {
        "traces": with_model_names(page),
        "experiment": experiment,
        "model_id": model_id,
        "older_query": _query_with_cursor(request, older) if older else None,
        "newest_query": _query_with_cursor(request, None) if before else None,
    }
    return render(request, "tracking/trace_list.html", context)


def _with_depth(spans: list[Span]) -> list[Span]:
    """Set `depth` (capped for indentation) and `offset_ns` on spans given in start order."""
    depths: dict[str, int] = {}
    first_ns = spans[0].start_ns if spans else 0
    for span in spans:
        # A parent that starts later (clock skew) or is not loaded leaves the span at the root.
        parent_depth = depths.get(span.parent_span_id) if span.parent_span_id else None
        depths[span.span_id] = 0 if parent_depth is None else parent_depth + 1
        span.depth = depths[span.span_id]
        span.indent = min(span.depth, MAX_INDENT)
        span.offset_ns = span.start_ns - first_ns
    return spans


@require_safe
def trace_detail(request: HttpRequest, trace_id: str) -> HttpResponse:
    trace = get_object_or_404(Trace.objects.select_related("experiment"), trace_id=trace_id)
    # Not trace.spans: the related manager reads each row's (deferred) trace_id, a query per span.
    spans_qs = Span.objects.filter(trace=trace).order_by("start_ns", "pk").only(*_SPAN_ROW_FIELDS)
    spans = list(spans_qs[: SPAN_ROWS_MAX + 1])
    hidden_spans = 0
    if len(spans) > SPAN_ROWS_MAX:
        spans = spans[:SPAN_ROWS_MAX]
        hidden_spans = spans_qs.count() - SPAN_ROWS_MAX
    model = None
    if trace.model_id:
        model = LoggedModel.objects.filter(model_id=trace.model_id).only("name").first()
    context = {
        "trace": trace,
        "spans": _with_depth(spans),
        "hidden_spans": hidden_spans,
        "model": model,
        "tags": sorted(trace.tags.items()),
        "metadata": sorted(trace.metadata.items()),
    }
    return render(request, "tracking/trace_detail.html", context)


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
