"""Runs: create, get, update, delete, params, metrics, tags, model outputs, search, and metric
history.

As in MLflow, a param is written once (the same value again is fine, a different one is a
400), tags are overwritten, and every metric value is a row (one per step). A write to a run
validates the whole request before it touches a row, so a bad request changes nothing.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.utils import timezone

from tracking import filters
from tracking.mlflow_api import ids, pages
from tracking.mlflow_api.entities import metric_json, run_info_json, run_json, to_ms
from tracking.mlflow_api.errors import invalid, mlflow_endpoint, not_found
from tracking.mlflow_api.requests import (
    Message,
    check_key,
    check_value,
    enum_choices,
    to_integer,
    to_number,
)
from tracking.models import LifecycleStage, LoggedModel, Metric, ParamChanged, Run
from webapp import json_limits

MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_BATCH_METRICS = 1000
MAX_BATCH_PARAMS_TAGS = 100
SEARCH_DEFAULT = 1000
SEARCH_MAX = 1000
HISTORY_DEFAULT = 25_000
HISTORY_MAX = 25_000
RUN_STATUSES = enum_choices("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
VIEW_TYPES = enum_choices("ACTIVE_ONLY", "DELETED_ONLY", "ALL")
_VIEW_FILTERS = {
    "ACTIVE_ONLY": {"lifecycle_stage": LifecycleStage.ACTIVE},
    "DELETED_ONLY": {"lifecycle_stage": LifecycleStage.DELETED},
    "ALL": {},
}
# MLflow names unnamed runs "adjective-animal-number"; users recognise the shape.
_ADJECTIVES = ("amber", "bold", "brave", "calm", "clever", "eager", "gentle", "keen", "lucid")
_ANIMALS = ("ant", "bat", "crow", "doe", "eel", "fox", "gnu", "hare", "ibis", "jay", "koi", "owl")


def generate_run_name() -> str:
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_ANIMALS)}-{random.randint(0, 999)}"


def runs_json(runs: list[Run]) -> list[dict[str, Any]]:
    """Runs with their latest metrics and model outputs, in two queries for the whole page."""
    metrics: dict[int, list[Metric]] = defaultdict(list)
    outputs: dict[int, list[str]] = defaultdict(list)
    if runs:
        pks = [run.pk for run in runs]
        for metric in Metric.objects.filter(run__in=pks).latest("run_id", "key"):
            metrics[metric.run_id].append(metric)
        models = LoggedModel.objects.filter(source_run__in=pks).order_by("created_at", "pk")
        for run_pk, model_id in models.values_list("source_run_id", "model_id"):
            outputs[run_pk].append(model_id)
    return [
        run_json(run, sorted(metrics[run.pk], key=lambda m: m.key), outputs[run.pk]) for run in runs
    ]


def _run_id(message: Message) -> str:
    return message.string("run_id", "run_uuid", required=True)


@mlflow_endpoint(["POST"])
def create(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    experiment = ids.active_experiment(message.string("experiment_id", default="0"))
    tags = message.key_values("tags", max_value=MAX_TAG_VALUE)
    name = message.string("run_name", max_length=500) or tags.get(Run.NAME_TAG, "")[:500]
    name = name or generate_run_name()
    run = Run.objects.start(
        experiment,
        name=name,
        user_id=message.string("user_id", max_length=200),
        start_time=message.time_ms("start_time") or timezone.now(),
        tags=tags,
    )
    return JsonResponse({"run": run_json(run)})


@mlflow_endpoint(["GET"])
def get(request: HttpRequest) -> JsonResponse:
    run = ids.run(_run_id(Message.of(request)))
    return JsonResponse({"run": runs_json([run])[0]})


@mlflow_endpoint(["POST"])
def update(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    status = message.enum("status", RUN_STATUSES, "")
    end_time = message.time_ms("end_time")
    name = message.string("run_name", max_length=500)
    run = ids.active_run(_run_id(message))
    run.update_info(status=status, end_time=end_time, name=name)
    return JsonResponse({"run_info": run_info_json(run)})


@mlflow_endpoint(["POST"])
def delete(request: HttpRequest) -> JsonResponse:
    ids.run(_run_id(Message.of(request))).soft_delete()
    return JsonResponse({})


@mlflow_endpoint(["POST"])
def restore(request: HttpRequest) -> JsonResponse:
    ids.run(_run_id(Message.of(request))).restore()
    return JsonResponse({})


# --- Params, metrics, tags -----------------------------------------------------------------


def _metric(
    item: dict[str, Any], where: str, run: Run | None, models: dict[str, LoggedModel]
) -> Metric:
    value = to_number(item.get("value"), f"{where}.value")
    timestamp = item.get("timestamp")
    model_id = item.get("model_id") or ""
    return Metric(
        run=run,
        logged_model=models.get(model_id) if model_id else None,
        key=check_key(item.get("key"), f"{where}.key"),
        value=value,
        timestamp_ms=to_ms(timezone.now())
        if timestamp in (None, "")
        else to_integer(timestamp, f"{where}.timestamp"),
        step=to_integer(item.get("step") or 0, f"{where}.step", minimum=-(2**63)),
        dataset_name=check_value(item.get("dataset_name"), f"{where}.dataset_name", 500),
        dataset_digest=check_value(item.get("dataset_digest"), f"{where}.dataset_digest", 64),
    )


def _models_of(items: Iterable[dict[str, Any]]) -> dict[str, LoggedModel]:
    """The logged models that metrics name (`log_metric(..., model_id=...)`), in one query."""
    wanted = set()
    for item in items:
        if model_id := item.get("model_id"):
            wanted.add(ids.check_model_id(model_id))
    found = {m.model_id: m for m in LoggedModel.objects.filter(model_id__in=wanted)}
    if missing := sorted(wanted - found.keys()):
        raise not_found(f"Logged model with ID '{missing[0]}' not found.")
    return found


def _log_batch(
    run: Run,
    metrics: list[Metric] | None = None,
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
) -> None:
    try:
        run.log_batch(metrics or [], params, tags)
    except ParamChanged as error:
        raise invalid(str(error)) from None


def _params(items: list[dict[str, Any]]) -> dict[str, str]:
    params: dict[str, str] = {}
    for i, item in enumerate(items):
        key = check_key(item.get("key"), f"params[{i}].key")
        value = check_value(item.get("value"), f"params[{i}].value", MAX_PARAM_VALUE)
        if params.get(key, value) != value:
            raise invalid(f"Duplicate parameter key '{key}' with different values in one batch.")
        params[key] = value
    return params


@mlflow_endpoint(["POST"])
def log_parameter(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    params = _params([{"key": message.string("key", required=True),
                       "value": message.string("value")}])  # fmt: skip
    _log_batch(ids.active_run(_run_id(message)), params=params)
    return JsonResponse({})


@mlflow_endpoint(["POST"])
def log_metric(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    item = message.raw(
        "key", "value", "timestamp", "step", "model_id", "dataset_name", "dataset_digest"
    )
    models = _models_of([item])
    run = ids.active_run(_run_id(message))
    _log_batch(run, [_metric(item, "metric", run, models)])
    return JsonResponse({})


@mlflow_endpoint(["POST"])
def log_batch(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    metric_items = message.objects("metrics", MAX_BATCH_METRICS)
    params = _params(message.objects("params", MAX_BATCH_PARAMS_TAGS))
    tags = message.key_values("tags", max_items=MAX_BATCH_PARAMS_TAGS, max_value=MAX_TAG_VALUE)
    models = _models_of(metric_items)
    run = ids.active_run(_run_id(message))
    metrics = [_metric(m, f"metrics[{i}]", run, models) for i, m in enumerate(metric_items)]
    _log_batch(run, metrics, params, tags)
    return JsonResponse({})


@mlflow_endpoint(["POST"])
def set_tag(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    key = check_key(message.string("key", required=True), "key")
    value = check_value(message.string("value"), "value", MAX_TAG_VALUE)
    _log_batch(ids.active_run(_run_id(message)), tags={key: value})
    return JsonResponse({})


@mlflow_endpoint(["POST"])
def delete_tag(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    key = message.string("key", required=True)
    run = ids.active_run(_run_id(message))
    if not run.delete_tag(key):
        raise not_found(f"No tag with name: {key} in run with id {run.run_id}")
    return JsonResponse({})


@mlflow_endpoint(["POST"])
def log_outputs(request: HttpRequest) -> JsonResponse:
    """`log_model` links its model to the run. The link is the model's source run (what
    `runs:/<run>/model` resolves through), so a model made elsewhere is adopted only if it
    has no source run yet."""
    message = Message.of(request)
    model_ids = [
        ids.check_model_id(item.get("model_id"), f"models[{i}].model_id")
        for i, item in enumerate(message.objects("models"))
    ]
    run = ids.active_run(_run_id(message))
    found = LoggedModel.objects.filter(model_id__in=model_ids)
    if missing := sorted(set(model_ids) - set(found.values_list("model_id", flat=True))):
        raise not_found(f"Logged model with ID '{missing[0]}' not found.")
    found.link_source_run(run)
    return JsonResponse({})


MAX_INPUTS = 1000


@mlflow_endpoint(["POST"])
def log_inputs(request: HttpRequest) -> JsonResponse:
    """LogInputs: datasets a run read and models it used (`mlflow.log_input`, and
    `log_metric(..., model_id=...)`). Kept on the run and answered by GetRun; logging the
    same dataset (name and digest) or model again adds nothing."""
    message = Message.of(request)
    datasets = message.objects("datasets", MAX_INPUTS)
    for i, item in enumerate(datasets):
        dataset = item.get("dataset")
        if not isinstance(dataset, dict) or not isinstance(dataset.get("name"), str):
            raise invalid(f"datasets[{i}].dataset must be an object with a name.")
    model_ids = [
        ids.check_model_id(item.get("model_id"), f"models[{i}].model_id")
        for i, item in enumerate(message.objects("models", MAX_INPUTS))
    ]
    ids.active_run(_run_id(message)).log_inputs(datasets, model_ids)
    return JsonResponse({})


# --- Search and history --------------------------------------------------------------------


@mlflow_endpoint(["GET", "POST"])
def search(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    experiment_pks = [ids.experiment_pk(e) for e in message.strings("experiment_ids")]
    view_type = message.enum("run_view_type", VIEW_TYPES, "ACTIVE_ONLY")
    ordering = filters.RUNS.order_by(message.strings("order_by", max_items=10))
    runs = (
        Run.objects.filter(experiment__in=experiment_pks, **_VIEW_FILTERS[view_type])
        .filter(filters.RUNS.q(message.string("filter")))
        .order_by(*ordering, *([] if ordering else ["-start_time"]), "-pk")
    )
    rows, token = pages.requested_page(runs, message, SEARCH_DEFAULT, SEARCH_MAX)
    return JsonResponse(pages.listing("runs", runs_json(rows), token))


@mlflow_endpoint(["GET"])
def metric_history(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    run = ids.run(_run_id(message))
    key = message.string("metric_key", required=True)
    history = Metric.objects.filter(run=run, key=key).order_by("step", "timestamp_ms", "pk")
    rows, token = pages.requested_page(history, message, HISTORY_DEFAULT, HISTORY_MAX)
    return JsonResponse(pages.listing("metrics", [metric_json(m) for m in rows], token))


BULK_MAX_RUNS = 100  # MLflow's MAX_RUNS_GET_METRIC_HISTORY_BULK
BULK_MAX_RESULTS = 2500  # MLflow's MAX_RESULTS_PER_RUN


def sampled_steps(steps_by_run: list[list[int]], max_results: int, start: int, end: int) -> set:
    """MLflow's step sampling for the metric charts: at most about `max_results` of the steps
    that exist in [start, end], evenly spaced, plus each run's first and last step."""
    all_steps = sorted({step for steps in steps_by_run for step in steps})
    edges = {s for steps in steps_by_run if steps for s in (min(steps), max(steps))}
    in_range = [s for s in all_steps if start <= s <= end]
    sampled = set(in_range)
    if len(in_range) > max_results:
        interval = len(in_range) / max_results
        sampled = {in_range[int(i * interval)] for i in range(max_results)} | {in_range[-1]}
    return sampled | {s for s in edges if start <= s <= end}


@mlflow_endpoint(["GET"])
def metric_history_bulk_interval(request: HttpRequest) -> JsonResponse:
    """GetMetricHistoryBulkInterval: one metric of up to 100 runs, sampled by step (the UI's
    charts), each value with its run id."""
    message = Message.of(request)
    run_ids = message.strings("run_ids", max_items=BULK_MAX_RUNS)
    if not run_ids:
        raise invalid("Missing value for required parameter 'run_ids'.")
    key = message.string("metric_key", required=True)
    max_results = message.integer("max_results", default=BULK_MAX_RESULTS, minimum=1)
    if max_results > BULK_MAX_RESULTS:
        raise invalid(f"max_results must be between 1 and {BULK_MAX_RESULTS}.")
    start, end = message.integer("start_step"), message.integer("end_step")
    if (start is None) != (end is None):
        raise invalid("If either start step or end step are specified, both must be specified.")
    if start is not None and start > end:
        raise invalid(
            "end_step must be greater than start_step. "
            f"Found start_step={start} and end_step={end}."
        )
    runs = {run.run_id: run for run in (ids.run(r, "run_ids") for r in dict.fromkeys(run_ids))}
    history: dict[str, list[Metric]] = defaultdict(list)
    rows = Metric.objects.filter(run__in=runs.values(), key=key).select_related("run")
    for metric in rows.order_by("step", "timestamp_ms", "pk"):
        history[metric.run.run_id].append(metric)
    steps_by_run = [[m.step for m in history[r]] for r in runs]
    all_steps = [s for steps in steps_by_run for s in steps]
    low, high = (start, end) if start is not None else (0, max(all_steps, default=0))
    keep = sampled_steps(steps_by_run, max_results, low, high)
    metrics = [
        {**metric_json(m), "run_id": run_id}
        for run_id in runs
        for m in history[run_id]
        if m.step in keep
    ]
    return JsonResponse({"metrics": metrics} if metrics else {})


LOG_MODEL_HISTORY = "mlflow.log-model.history"
LOG_MODEL_FIELDS = {"artifact_path", "flavors", "utc_time_created", "run_id"}


@mlflow_endpoint(["POST"])
def log_model(request: HttpRequest) -> JsonResponse:
    """LogModel (MLflow 2's `log_model`): the model's MLmodel JSON joins the run's
    `mlflow.log-model.history` tag, as MLflow's store records it."""
    message = Message.of(request)
    run_id = _run_id(message)
    text = message.string("model_json", required=True)
    try:  # depth-limited: Python's json recurses once per level (a 500 past ~1,000)
        model = json_limits.loads(text.encode(), allow_nan=True)
    except json_limits.JsonError:
        raise invalid(f"Malformed model info. \n {text} \n is not a valid JSON.") from None
    if not isinstance(model, dict):
        raise invalid(f"Malformed model info. \n {text} \n is not a valid JSON.")
    if missing := LOG_MODEL_FIELDS - set(model):
        raise invalid(f"Model json is missing mandatory fields: {missing}")
    run = ids.active_run(run_id)
    history = json.loads(run.tags.get(LOG_MODEL_HISTORY, "[]"))
    # What MLflow's Model.get_tags_dict keeps: the ids and the flavors without their configs.
    entry = {
        k: model[k]
        for k in ("run_id", "utc_time_created", "artifact_path", "model_uuid")
        if k in model
    }
    flavors = model["flavors"] if isinstance(model["flavors"], dict) else {}
    entry["flavors"] = {
        name: {k: v for k, v in conf.items() if k != "config"} if isinstance(conf, dict) else conf
        for name, conf in flavors.items()
    }
    value = json.dumps([*history, entry])
    _log_batch(run, tags={LOG_MODEL_HISTORY: check_value(value, LOG_MODEL_HISTORY, MAX_TAG_VALUE)})
    return JsonResponse({})
