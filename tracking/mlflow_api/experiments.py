"""Experiments: create, get, get-by-name, search, and the small edits (rename, tags, delete).

`mlflow.set_experiment(name)` is get-by-name, then create on RESOURCE_DOES_NOT_EXIST, then get;
a create that loses a race answers RESOURCE_ALREADY_EXISTS and the client looks the name up
again (mlflow-protocol.md §2a), so both codes must be exactly these.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse

from access.rules import access_for, grant_creator
from tracking import filters
from tracking.mlflow_api import ids, pages
from tracking.mlflow_api.entities import experiment_json
from tracking.mlflow_api.errors import already_exists, invalid, mlflow_endpoint, not_found
from tracking.mlflow_api.requests import Message, check_key, check_value, enum_choices
from tracking.models import DEFAULT_EXPERIMENT_ID, Experiment, LifecycleStage

MAX_NAME = 500
MAX_TAG_VALUE = 20_000
SEARCH_DEFAULT = 1000
SEARCH_MAX = 1000
VIEW_TYPES = enum_choices("ACTIVE_ONLY", "DELETED_ONLY", "ALL")
_VIEW_FILTERS = {
    "ACTIVE_ONLY": {"lifecycle_stage": LifecycleStage.ACTIVE},
    "DELETED_ONLY": {"lifecycle_stage": LifecycleStage.DELETED},
    "ALL": {},
}


def _name(message: Message, field: str) -> str:
    name = message.string(field, required=True, max_length=MAX_NAME)
    if not name.strip():
        raise invalid(f"Parameter '{field}' must not be blank.")
    return name


def _experiment(message: Message) -> Experiment:
    return ids.experiment(message.string("experiment_id", required=True))


@mlflow_endpoint(["POST"])
def create(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    name = _name(message, "name")
    location = message.string("artifact_location", max_length=1000)
    tags = message.key_values("tags", max_value=MAX_TAG_VALUE)
    if Experiment.objects.filter(name=name).exists():
        raise already_exists(f"Experiment(name={name}) already exists.")
    try:
        with transaction.atomic():
            experiment = Experiment.objects.create_named(
                name, artifact_location=location, tags=tags
            )
            grant_creator(experiment, access_for(request))  # as MLflow: its creator manages it
    except IntegrityError:  # created concurrently: the client looks it up again on this code
        raise already_exists(f"Experiment(name={name}) already exists.") from None
    return JsonResponse({"experiment_id": str(experiment.pk)})


@mlflow_endpoint(["GET"])
def get(request: HttpRequest) -> JsonResponse:
    experiment = _experiment(Message.of(request))
    return JsonResponse({"experiment": experiment_json(experiment)})


@mlflow_endpoint(["GET"])
def get_by_name(request: HttpRequest) -> JsonResponse:
    name = Message.of(request).string("experiment_name", required=True)
    experiment = Experiment.objects.filter(name=name).first()
    if experiment is None:
        raise not_found(f"Could not find experiment with name '{name}'")
    return JsonResponse({"experiment": experiment_json(experiment)})


@mlflow_endpoint(["GET", "POST"])
def search(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    view_type = message.enum("view_type", VIEW_TYPES, "ACTIVE_ONLY")
    ordering = filters.EXPERIMENTS.order_by(message.strings("order_by", max_items=10))
    experiments = access_for(request).readable(Experiment.objects.all(), "pk")
    experiments = experiments.filter(
        filters.EXPERIMENTS.q(message.string("filter")), **_VIEW_FILTERS[view_type]
    ).order_by(*ordering, *([] if ordering else ["-created_at"]), "pk")
    rows, token = pages.requested_page(experiments, message, SEARCH_DEFAULT, SEARCH_MAX)
    return JsonResponse(pages.listing("experiments", [experiment_json(e) for e in rows], token))


@mlflow_endpoint(["POST"])
def update(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    experiment = _experiment(message)
    name = _name(message, "new_name")
    if Experiment.objects.filter(name=name).exclude(pk=experiment.pk).exists():
        raise already_exists(f"Experiment(name={name}) already exists.")
    try:
        experiment.rename(name)
    except IntegrityError:
        raise already_exists(f"Experiment(name={name}) already exists.") from None
    return JsonResponse({})


@mlflow_endpoint(["POST"])
def delete(request: HttpRequest) -> JsonResponse:
    experiment = _experiment(Message.of(request))
    if experiment.pk == DEFAULT_EXPERIMENT_ID:
        raise invalid("The Default experiment (id 0) cannot be deleted.")
    experiment.soft_delete()
    return JsonResponse({})


@mlflow_endpoint(["POST"])
def restore(request: HttpRequest) -> JsonResponse:
    _experiment(Message.of(request)).restore()
    return JsonResponse({})


@mlflow_endpoint(["POST"])
def set_tag(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    key = check_key(message.string("key", required=True), "key")
    value = check_value(message.string("value"), "value", MAX_TAG_VALUE)
    _experiment(message).set_tags({key: value})
    return JsonResponse({})


@mlflow_endpoint(["POST"])
def delete_tag(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    key = message.string("key", required=True)
    experiment = _experiment(message)
    if not experiment.delete_tag(key):
        raise not_found(f"No tag with name: {key} in experiment with id {experiment.pk}")
    return JsonResponse({})
