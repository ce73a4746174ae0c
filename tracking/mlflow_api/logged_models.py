"""Logged models (versions of an agent): create, get, finalize, params, tags, delete, search.

`mlflow.set_active_model(name=...)` searches `name='<name>'` in the current experiment and
uses the newest match, or creates an external model (create, get, PUT of `MLmodel`, finalize
READY; mlflow-protocol.md §2c). Traces made meanwhile carry the model id in their metadata,
which ingest copies to `Trace.model_id`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db.models import Exists, OuterRef, Q
from django.http import HttpRequest, JsonResponse

from tracking import filters
from tracking.mlflow_api import ids, pages
from tracking.mlflow_api.entities import logged_model_json, model_artifact_uri
from tracking.mlflow_api.errors import invalid, mlflow_endpoint, not_found
from tracking.mlflow_api.requests import Message, check_value, enum_choices
from tracking.mlflow_api.runs import generate_run_name
from tracking.models import LoggedModel, Metric, new_model_id

MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_PARAMS = 1000
SEARCH_DEFAULT = 100
SEARCH_MAX = 1000
STATUSES = enum_choices(
    "LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED", start=1
)


def models_json(models: list[LoggedModel]) -> list[dict[str, Any]]:
    """Models with their latest metrics per key and dataset, in one query for the page."""
    metrics: dict[int, list[Metric]] = defaultdict(list)
    if models:
        rows = Metric.objects.filter(logged_model__in=[m.pk for m in models]).latest(
            "logged_model_id", "key", "dataset_name", "dataset_digest"
        )
        for metric in rows:
            metrics[metric.logged_model_id].append(metric)
    return [
        logged_model_json(m, sorted(metrics[m.pk], key=lambda x: (x.key, x.dataset_name)))
        for m in models
    ]


def _model_json(model: LoggedModel) -> JsonResponse:
    return JsonResponse({"model": models_json([model])[0]})


@mlflow_endpoint(["POST"])
def create(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    experiment = ids.active_experiment(message.string("experiment_id", required=True))
    source_run_id = message.string("source_run_id")
    source_run = ids.run(source_run_id, "source_run_id") if source_run_id else None
    model_id = new_model_id()
    model = LoggedModel.objects.initialize(
        experiment,
        model_id=model_id,
        name=message.string("name", max_length=500) or generate_run_name(),
        model_type=message.string("model_type", max_length=200),
        source_run=source_run,
        params=message.key_values("params", max_items=MAX_PARAMS, max_value=MAX_PARAM_VALUE),
        tags=message.key_values("tags", max_value=MAX_TAG_VALUE),
        artifact_location=model_artifact_uri(experiment.pk, model_id),
    )
    return _model_json(model)


@mlflow_endpoint(["GET", "PATCH", "DELETE"])
def detail(request: HttpRequest, model_id: str) -> JsonResponse:
    """GET: the model. PATCH: finalize (set its status). DELETE: delete it."""
    if request.method == "GET":
        return _model_json(ids.logged_model(model_id))
    message = Message.of(request)
    if request.method == "DELETE":
        ids.logged_model(model_id).delete()
        return JsonResponse({})
    status = message.enum("status", STATUSES, "")
    if not status:
        raise invalid("Missing value for required parameter 'status'.")
    model = ids.logged_model(model_id)
    model.finalize(status)
    return _model_json(model)


@mlflow_endpoint(["POST"])
def log_params(request: HttpRequest, model_id: str) -> JsonResponse:
    params = Message.of(request).key_values(
        "params", max_items=MAX_PARAMS, max_value=MAX_PARAM_VALUE
    )
    ids.logged_model(model_id).log_params(params)
    return JsonResponse({})


@mlflow_endpoint(["PATCH"])
def set_tags(request: HttpRequest, model_id: str) -> JsonResponse:
    tags = Message.of(request).key_values("tags", max_value=MAX_TAG_VALUE)
    ids.logged_model(model_id).set_tags(tags)
    return JsonResponse({})


@mlflow_endpoint(["DELETE"])
def delete_tag(request: HttpRequest, model_id: str, key: str) -> JsonResponse:
    if not ids.logged_model(model_id).delete_tag(key):
        raise not_found(f"No tag with key '{key}' on logged model '{model_id}'.")
    return JsonResponse({})


def _dataset_q(datasets: list[dict[str, Any]]) -> Q:
    """Models with a metric on one of the datasets (SearchLoggedModels.datasets)."""
    matches = Q()
    for i, dataset in enumerate(datasets):
        name = check_value(dataset.get("dataset_name"), f"datasets[{i}].dataset_name", 500)
        if not name:
            raise invalid(f"datasets[{i}].dataset_name is required.")
        on_dataset = Q(dataset_name=name)
        if digest := check_value(dataset.get("dataset_digest"), f"datasets[{i}].digest", 64):
            on_dataset &= Q(dataset_digest=digest)
        matches |= on_dataset
    return Q(Exists(Metric.objects.filter(matches, logged_model=OuterRef("pk"))))


def _ordering(items: list[dict[str, Any]]) -> list[Any]:
    ordering = []
    for i, item in enumerate(items):
        field_name = item.get("field_name")
        if not isinstance(field_name, str) or not field_name:
            raise invalid(f"order_by[{i}].field_name must be a non-empty string.")
        prefix, key, _ = filters.parse_order(field_name)
        # protobuf-JSON leaves out `ascending: false`, so a missing value means descending.
        ascending = item.get("ascending") in (True, "true", "True")
        ordering.append(filters.LOGGED_MODELS.ordering(prefix, key, ascending))
    return ordering


@mlflow_endpoint(["POST"])
def search(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    experiment_pks = [ids.experiment_pk(e) for e in message.strings("experiment_ids")]
    models = LoggedModel.objects.select_related("source_run").filter(
        filters.LOGGED_MODELS.q(message.string("filter")), experiment__in=experiment_pks
    )
    if datasets := message.objects("datasets", max_items=100):
        models = models.filter(_dataset_q(datasets))
    ordering = _ordering(message.objects("order_by", max_items=10))
    models = models.order_by(*ordering, *([] if ordering else ["-created_at"]), "-pk")
    rows, token = pages.requested_page(models, message, SEARCH_DEFAULT, SEARCH_MAX)
    return JsonResponse(pages.listing("models", models_json(rows), token))
