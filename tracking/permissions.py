"""Where pages and the native API apply access/rules.py: which experiment an object is in,
the page decorators that declare (and enforce) each route's rule, and DRF's permission class.

The rules themselves (who has which level) live in access/rules.py only. Every route says
its rule in `view.access_rule` (read by tests/access/test_matrix.py), so a route without one
is seen. Pages answer 404 for an object the caller may not read (its existence stays
hidden); the native API answers 404 for those too and 403 for a missing write right.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404
from rest_framework import permissions
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request

from access.models import Level
from access.rules import ACCESS_RULE, Access, Denied, access_for
from tracking.models import Experiment, LoggedModel, Run, Trace


def _usable(object_id: object) -> bool:
    # PostgreSQL refuses NUL in a query; no id holds one (the view answers its own 400/404).
    return isinstance(object_id, str) and "\x00" not in object_id


def experiment_of_trace(trace_id: str) -> int | None:
    if not _usable(trace_id):
        return None
    rows = Trace.objects.filter(trace_id=trace_id).values_list("experiment_id", flat=True)
    return rows.first()


def experiment_of_model(model_id: str) -> int | None:
    if not _usable(model_id):
        return None
    rows = LoggedModel.objects.filter(model_id=model_id).values_list("experiment_id", flat=True)
    return rows.first()


def experiment_of_run(run_id: str) -> int | None:
    if not _usable(run_id):
        return None
    return Run.objects.filter(run_id=run_id).values_list("experiment_id", flat=True).first()


EXPERIMENT_OF: dict[str, Callable[[str], int | None]] = {
    "trace": experiment_of_trace,
    "model": experiment_of_model,
    "run": experiment_of_run,
}


def may(access: Access, level: Level, kind: str, object_id: str) -> bool:
    """Whether the caller has `level` on the experiment of an object; True for an object that
    does not exist (the view answers its own 404). No query when the role suffices anywhere."""
    if access.can_everywhere(level):
        return True
    experiment_id = EXPERIMENT_OF[kind](object_id)
    return experiment_id is None or access.can(level, experiment_id)


def readable_experiment(access: Access, experiment_id: str) -> Experiment | None:
    """The experiment a page is narrowed to by ?experiment=: None when not given; 404 when
    malformed, missing or not readable (its existence stays hidden)."""
    if not experiment_id:
        return None
    if not experiment_id.isdigit() or not access.can(Level.READ, int(experiment_id)):
        raise Http404("No such experiment.")
    return get_object_or_404(Experiment, pk=int(experiment_id))


def page_scope(access: Access, params: QueryDict) -> tuple[Experiment | None, str]:
    """A list page's ?experiment= (see readable_experiment) and ?model= (a model id, "" when
    not given; 404 for one no id can be)."""
    experiment = readable_experiment(access, params.get("experiment", ""))
    model_id = params.get("model", "")
    if not _usable(model_id):
        raise Http404("No such model.")
    return experiment, model_id


def page_reads(kind: str, kwarg: str) -> Callable[[Callable[..., HttpResponse]], Callable]:
    """A page of one object (`kind` named by the URL's `kwarg`): READ on its experiment, else
    404 as for an object that does not exist."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not may(access_for(request), Level.READ, kind, kwargs[kwarg]):
                raise Http404(f"No such {kind}.")
            return view(request, *args, **kwargs)

        setattr(wrapper, ACCESS_RULE, f"READ on the {kind}'s experiment, else 404")
        return wrapper

    return decorate


# --- The native API (DRF) ----------------------------------------------------------------------


class ExperimentObjectAccess(permissions.BasePermission):
    """Native API objects: READ to see (the viewset's `readable` queryset already answers 404
    for the others), EDIT to change, MANAGE to delete an experiment. Viewsets name the level
    of each action in `write_levels`; actions not named only read."""

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        level = getattr(view, "write_levels", {}).get(view.action)
        if level is None:
            return True
        experiment_id = obj.pk if obj._meta.model_name == "experiment" else obj.experiment_id
        require_for_api(access_for(request._request), level, experiment_id)
        return True


def require_for_api(access: Access, level: Level, experiment_id: Any) -> None:
    """`Access.require` answered as DRF answers: 404 when hidden, else 403."""
    try:
        access.require(level, experiment_id)
    except Denied as denied:
        if denied.hidden:
            raise NotFound(f"No experiment {experiment_id}.") from None
        raise PermissionDenied(str(denied)) from None
