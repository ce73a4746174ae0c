"""The trace list: a query-language filter, keyset pages, live rows, columns, bulk actions.

Scoped by `?experiment=<id>` and `?model=<model_id>`; `?q=` holds the query and `?sort=` the
order, so every view of the list is a shareable URL.
"""

from __future__ import annotations

from django.contrib import messages
from django.db.models.functions import Lower
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST, require_safe

from access.models import Level
from access.rules import Access, access_for, declares
from tracking import assessment_columns, search
from tracking.keyset import Sort, newer_traces
from tracking.models import (
    SHOWN_STATES,
    Experiment,
    LifecycleStage,
    LoggedModel,
    Trace,
    TraceTagTooLong,
)
from tracking.permissions import page_scope, readable_experiment
from webapp.htmx import HtmxHttpRequest, render_page
from webapp.models import UserPreferences
from webapp.query_strings import with_params

TRACES_PER_PAGE = 50
MAX_BULK = 500
MODEL_CHOICES = 30
EXPERIMENT_CHOICES = 20
COLUMNS = {
    "time": "Time",
    "request": "Request",
    "response": "Response",
    "state": "State",
    "duration": "Duration",
    "tokens": "Tokens",
    "cost": "Cost",
    "spans": "Spans",
    "model": "Model",
    "tags": "Tags",
    "session": "Session",
}
DEFAULT_COLUMNS = ("time", "request", "state", "duration", "tokens", "cost", "model")
_COLUMNS_SESSION_KEY = "trace_list_columns"
STATE_LABELS = {
    "OK": "OK",
    "ERROR": "Error",
    "IN_PROGRESS": "In progress",
    "CANCELLED": "Cancelled",
}
TIME_RANGES = (("15m", "15 min"), ("1h", "1 hour"), ("24h", "24 hours"), ("7d", "7 days"))
# Deferred unless their column is shown: JSON and long text that most rows never need.
_COLUMN_FIELDS = {"response": "response_preview", "tags": "tags"}


@declares("lists the rows of readable experiments; ?experiment= needs READ, else 404")
@require_safe
def trace_list(request: HttpRequest) -> HttpResponse:
    access = access_for(request)
    experiment, model_id = page_scope(access, request.GET)
    query = request.GET.get("q", "").strip()
    sort = Sort.parse(request.GET.get("sort", ""))
    before = request.GET.get("before", "")
    columns = _columns_for(request)
    try:
        traces = _scoped(access, experiment, model_id, columns)
        traces = traces.filter(search.compile_query(query))
    except search.SearchError as error:
        # A 200 with the message at its position, in the bar's place: a typo in a query is
        # an ordinary state of a search page (and a 4xx would be a browser console error).
        context = _context(request, experiment, model_id, query, sort, columns)
        context.update(error=error, error_caret=" " * error.position + "^")
        return _render_list(request, context)
    if request.GET.get("after"):  # the live poll: its rows only, nothing else queried
        return _live_rows(request, traces, columns)
    try:
        page, next_cursor = sort.page(traces, before, TRACES_PER_PAGE)
    except ValueError:
        return HttpResponseBadRequest("Malformed 'before' cursor.")
    context = _context(request, experiment, model_id, query, sort, columns)
    context.update(
        traces=_for_rows(access, page, columns),
        older_query=_query_with(request, before=next_cursor) if next_cursor else None,
        newest_query=_query_with(request, before=None) if before else None,
    )
    if not before and sort == Sort("time", True):  # only this page grows at the top
        context["live_query"] = _live_query(request, page)
    return _render_list(request, context)


def _render_list(request: HtmxHttpRequest, context: dict) -> HttpResponse:
    return render_page(request, "tracking/trace_list.html", context, fragment="trace-list")


def _live_rows(request: HttpRequest, traces, columns: list[str]) -> HttpResponse:
    """New rows above the list's top row, or 204 (nothing new: htmx leaves the page alone)."""
    try:
        rows, more = newer_traces(traces, request.GET["after"], TRACES_PER_PAGE)
    except ValueError:
        return HttpResponseBadRequest("Malformed 'after' cursor.")
    if not rows:
        return HttpResponse(status=204)
    context = {
        "traces": _for_rows(access_for(request), rows, columns),
        "columns": columns,
        "more_newer": more,
        "live_query": _query_with(request, after=Sort("time", True).format_cursor(rows[0])),
    }
    return render(request, "tracking/trace_list.html#live-rows", context)


@declares("anyone: the caller's own column choice")
@require_POST
def trace_columns(request: HttpRequest) -> HttpResponse:
    chosen = [
        c for c in request.POST.getlist("column") if c in COLUMNS or assessment_columns.is_column(c)
    ]
    if request.user.is_authenticated:
        UserPreferences.objects.update_or_create(
            user=request.user, defaults={"trace_list_columns": chosen}
        )
    else:
        request.session[_COLUMNS_SESSION_KEY] = chosen
    return redirect(_next_url(request))


@declares("names from readable experiments; ?experiment= needs READ, else 404")
@require_safe
def trace_assessment_columns(request: HttpRequest) -> HttpResponse:
    """The chooser's assessment names, fetched when it is opened: a query the list itself
    need not run on every load."""
    access = access_for(request)
    experiment = readable_experiment(access, request.GET.get("experiment", ""))
    context = assessment_columns.context(access, experiment, _columns_for(request))
    return render(request, "tracking/trace_list.html#assessment-choices", context)


@declares("EDIT on the experiment of every selected trace, else nothing is done")
@require_POST
def trace_bulk(request: HttpRequest) -> HttpResponse:
    """Tag or delete the checked traces; deleting asks for a confirmation first."""
    # PostgreSQL refuses NUL characters in text; no trace id holds one.
    trace_ids = [t for t in dict.fromkeys(request.POST.getlist("trace")) if "\x00" not in t]
    trace_ids = trace_ids[:MAX_BULK]
    traces = Trace.objects.filter(trace_id__in=trace_ids)
    action = request.POST.get("action", "")
    next_url = _next_url(request)
    refused = _not_editable(access_for(request), traces) if action in ("tag", "delete") else 0
    if refused:
        # All or nothing: a bulk action that did part of its work would leave the user
        # guessing which rows changed.
        messages.error(
            request,
            f"Nothing was changed: {refused} of the selected traces "
            f"{'is' if refused == 1 else 'are'} in experiments you may not edit.",
        )
    elif not trace_ids:
        messages.info(request, "No traces were selected.")
    elif action == "tag":
        key = request.POST.get("tag_key", "").strip()
        value = request.POST.get("tag_value", "")
        if not key or "\x00" in key + value:
            messages.error(request, "A tag needs a key, and neither may hold a NUL character.")
        else:
            try:
                count = traces.change_tags({key: value})
            except TraceTagTooLong as error:
                messages.error(request, f"That tag is too long. {error}")
            else:
                messages.success(request, f"Tagged {count} trace{'s' if count != 1 else ''}.")
    elif action == "delete" and request.POST.get("confirm") == "yes":
        count = traces.delete_with_documents()
        messages.success(request, f"Deleted {count} trace{'s' if count != 1 else ''}.")
    elif action == "delete":
        selected = list(traces.only("trace_id", "name").order_by("-request_time", "-pk"))
        context = {"selected": selected, "next_url": next_url}
        return render(request, "tracking/trace_list_delete.html", context)
    else:
        return HttpResponseBadRequest("Unknown bulk action.")
    return redirect(next_url)


def _not_editable(access: Access, traces) -> int:
    """How many of the selected traces are in experiments where the caller lacks EDIT (no
    experiment named: some may be ones it may not even read)."""
    if access.can_everywhere(Level.EDIT):
        return 0
    experiment_ids = traces.order_by().values_list("experiment_id", flat=True)
    return sum(1 for e in experiment_ids if not access.can(Level.EDIT, e))


# --- Helpers of this page -------------------------------------------------------------------


def _scoped(access: Access, experiment: Experiment | None, model_id: str, columns: list[str]):
    shown = [field for column, field in _COLUMN_FIELDS.items() if column in columns]
    traces = access.readable(Trace.objects.for_list(shown))
    if experiment:
        traces = traces.filter(experiment=experiment)
    if model_id:
        traces = traces.for_model(model_id)
    return traces


def _columns_for(request: HttpRequest) -> list[str]:
    if request.user.is_authenticated:
        chosen = (
            UserPreferences.objects.filter(user=request.user)
            .values_list("trace_list_columns", flat=True)
            .first()
        )
    else:  # no user without auth: the session remembers the choice, per browser
        chosen = request.session.get(_COLUMNS_SESSION_KEY)
    if not isinstance(chosen, list):
        return list(DEFAULT_COLUMNS)
    return [c for c in COLUMNS if c in chosen] + assessment_columns.chosen(chosen)


def _for_rows(access: Access, traces: list[Trace], columns: list[str]) -> list[Trace]:
    access.readable(LoggedModel.objects.all()).name_traces(traces)
    assessment_columns.fill(traces, assessment_columns.names_in(columns))
    for trace in traces:
        tags = trace.__dict__.get("tags") or {}  # deferred unless the tags column is shown
        # MLflow's own tags (trace name, user, source) are noise in a list row.
        trace.shown_tags = sorted(
            (str(k), str(v)) for k, v in tags.items() if not str(k).startswith("mlflow.")
        )
    return traces


def _context(request, experiment, model_id, query, sort, columns) -> dict:
    return {
        "experiment": experiment,
        "model_id": model_id,
        "query": query,
        "sort": str(sort),
        "sort_links": {
            key: _query_with(request, sort=_toggled(sort, key), before=None)
            for key in ("time", "duration", "tokens", "cost")
        },
        "columns": columns,
        "all_columns": COLUMNS.items(),
        "assessment_shown": assessment_columns.names_in(columns),
        "error": None,
        "error_caret": "",
        "quick": {
            "choices": [*_experiment_filter(request, experiment), *_quick_filters(request, query)]
        },
        "clear_query": _query_with(request, q=None, before=None),
        # Whitespace as spaces, so that the caret line below lines up with the position.
        "query_echo": "".join(" " if c.isspace() else c for c in query),
        "traces": [],
        "older_query": None,
        "newest_query": None,
        "live_query": None,
        "next_url": request.get_full_path(),
    }


def _toggled(sort: Sort, key: str) -> str:
    if sort.key == key:
        return str(Sort(key, not sort.descending))
    return f"-{key}"


def _quick_filters(request: HttpRequest, query: str) -> list[tuple[str, list]]:
    """Per field (state, model, time): (label, link, active) options, each link the query
    with that field's top-level clause replaced, so that the bar and the links agree."""
    present = search.top_level_clauses(query)
    models = access_for(request).readable(LoggedModel.objects.order_by("name"))
    models = models.values_list("name", flat=True).distinct()
    clauses = {
        "state": [(STATE_LABELS[s], f"state = {s}") for s in SHOWN_STATES],
        "model": [(m, search.clause("model", "=", m)) for m in models[:MODEL_CHOICES]],
        "time": [(label, f"time > -{value}") for value, label in TIME_RANGES],
    }
    choices = []
    for field, options in clauses.items():
        if not options:
            continue
        fields_present = {f for f, _ in present}
        row = [("Any", _with_clause_link(request, query, field, ""), field not in fields_present)]
        for label, text in options:
            link = _with_clause_link(request, query, field, text)
            row.append((label, link, (field, text) in present))
        choices.append((field, row))
    return choices


def _experiment_filter(
    request: HttpRequest, experiment: Experiment | None
) -> list[tuple[str, list]]:
    """The active experiments, as links that scope the list (`?experiment=`): they are a
    user's projects, and the query language has no field for them. None while there is only
    one to choose."""
    # Not only those holding traces: PostgreSQL estimates "has a trace" per experiment from
    # the column's average and would scan every trace for an empty one (the Default, often).
    found = list(
        access_for(request)
        .readable(Experiment.objects.filter(lifecycle_stage=LifecycleStage.ACTIVE), "pk")
        .order_by(Lower("name"), "pk")
        .values_list("pk", "name")[:EXPERIMENT_CHOICES]
    )
    if len(found) < 2 and experiment is None:
        return []
    current = experiment.pk if experiment else None
    row = [("Any", "?" + _query_with(request, experiment=None, before=None), current is None)]
    for pk, name in found:
        link = "?" + _query_with(request, experiment=str(pk), before=None)
        row.append((name, link, pk == current))
    return [("experiment", row)]


def _with_clause_link(request: HttpRequest, query: str, field: str, text: str) -> str:
    return "?" + _query_with(request, q=search.with_clause(query, field, text), before=None)


def _live_query(request: HttpRequest, page: list[Trace]) -> str:
    top = Sort("time", True).format_cursor(page[0]) if page else "0001-01-01T00:00:00Z|0"
    return _query_with(request, after=top, before=None)


def _query_with(request: HttpRequest, **changes: str | None) -> str:
    """The current query string with some parameters set (or dropped when None), without
    the live poll's `after` unless it is one of them."""
    return with_params(request, **({"after": None} | changes))


def _next_url(request: HttpRequest) -> str:
    url = request.POST.get("next", "")
    if url and url_has_allowed_host_and_scheme(url, {request.get_host()}):
        return url
    return "/traces/"
