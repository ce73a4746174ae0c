"""The trace list: keyset pages, scoped to an experiment or a logged model."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_safe

from tracking.models import Experiment, Trace
from tracking.queries import traces_for_list, with_model_names

TRACES_PER_PAGE = 50
_CURSOR_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


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
