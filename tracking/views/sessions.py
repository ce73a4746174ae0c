"""The sessions list and one session's page (a conversation, turn by turn).

A session is (experiment, session_id): the same id in two experiments is two sessions. The
list links to `/sessions/<id>/?experiment=<pk>`; without `?experiment=`, an id found in one
readable experiment opens it, and one found in several lists them to choose from.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.views.decorators.http import require_safe

from access.models import Level
from access.rules import access_for, declares
from tracking import sessions
from tracking.models import Assessment, LoggedModel
from tracking.views.feedback import panel_context
from webapp.htmx import HtmxHttpRequest, render_page
from webapp.query_strings import with_params


@declares("lists the sessions of readable experiments; hidden ones are left out")
@require_safe
def session_list(request: HtmxHttpRequest) -> HttpResponse:
    access = access_for(request)
    filters = sessions.SessionFilters.parse(request.GET)
    try:
        page, next_cursor = sessions.list_page(access, filters, request.GET.get("before", ""))
    except ValueError:
        return HttpResponseBadRequest("Malformed 'before' cursor.")
    context = {
        "sessions": page,
        "filters": filters,
        "time_ranges": sessions.TIME_RANGES,
        "older_query": with_params(request, before=next_cursor) if next_cursor else "",
        "newest_query": with_params(request, before=None) if request.GET.get("before") else None,
    }
    return render_page(request, "tracking/session_list.html", context, fragment="session-list")


@declares("READ on the session's experiment, else 404 (a hidden one is not chosen)")
@require_safe
def session_detail(request: HttpRequest, session_id: str) -> HttpResponse:
    found = sessions.experiments_of(access_for(request), session_id)
    wanted = request.GET.get("experiment", "")
    if wanted:
        found = [s for s in found if str(s.experiment_id) == wanted]
    if not found:
        raise Http404("No such session.")
    if len(found) > 1:
        context = {"session_id": session_id, "choices": found}
        return render_page(request, "tracking/session_choose.html", context)
    session = found[0]
    turns = sessions.turns(session)
    first = turns[0].trace if turns else None
    access_for(request).readable(LoggedModel.objects.all()).name_traces([t.trace for t in turns])
    context = {
        "session": session,
        "turns": turns,
        "truncated": session.turns > len(turns),
        "feedback_panel": None
        if first is None
        else panel_context(
            first,
            list(Assessment.objects.of_trace(first)),
            can_edit=access_for(request).can(Level.EDIT, session.experiment_id),
            session_id=session.session_id,
        ),
        "first_trace": first,
        "replay_query": urlencode(
            {"replay_session": session.session_id, "experiment": session.experiment_id}
        ),
    }
    return render_page(request, "tracking/session_detail.html", context)
