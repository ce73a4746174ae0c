"""Registered scorers: MLflow 3's `/api/3.0/mlflow/scorers/...` endpoints, thin views over
tracking/scorers.py, answering as MLflow's server does (handlers.py and its SQL store).

`scorer.register(name=...)`, `list_scorers()`, `list_scorer_versions()`, `get_scorer()`,
`delete_scorer()` and online scoring's `scorer.start()/update()/stop()` call these. Everything
is checked before anything is written: a refused request changes nothing.

Where Spyglass differs from `mlflow server`, on purpose:
- `@scorer` functions are accepted (MLflow refuses them unless its operator sets
  MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS, because *its* server would exec their source): here the
  serialized scorer is stored as text and never deserialized or run.
- Online scoring may be started for any registered scorer: MLflow allows it only for judges on
  its AI gateway, which Spyglass does not have; who runs sampled scorers is a later step.
"""

from __future__ import annotations

import math
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest, JsonResponse

from access.rules import access_for
from tracking import filters
from tracking.mlflow_api import ids
from tracking.mlflow_api.errors import invalid, mlflow_endpoint, not_found
from tracking.mlflow_api.requests import Message, to_integer
from tracking.models import Experiment, LifecycleStage
from tracking.scorers import NAME_MAX_CHARS, OnlineConfig, Scorer, ScorerVersion
from webapp import json_limits

MAX_SERIALIZED_BYTES = 1024 * 1024  # a judge's instructions or a function's source: ample
MAX_SCORER_IDS = 1000  # Django refuses more query fields (DATA_UPLOAD_MAX_NUMBER_FIELDS)
MAX_FILTER_CHARS = 10_000
# Where a serialized scorer names its LLM (MLflow's extract_model_from_serialized_scorer).
MODEL_HOLDERS = ("instructions_judge_pydantic_data", "builtin_scorer_pydantic_data")


# --- Checks --------------------------------------------------------------------------------


def _name(message: Message) -> str:
    name = message.string("name", required=True, max_length=NAME_MAX_CHARS)
    if not name.strip():
        raise invalid("Scorer name cannot be empty or contain only whitespace.")
    return name


def _serialized(message: Message) -> str:
    text = message.string("serialized_scorer", required=True)
    raw = text.encode()
    if len(raw) > MAX_SERIALIZED_BYTES:
        raise invalid(f"serialized_scorer is larger than {MAX_SERIALIZED_BYTES} bytes.")
    try:
        data = json_limits.loads(raw)
    except json_limits.JsonError:
        raise invalid("serialized_scorer must be valid JSON") from None
    if not isinstance(data, dict):
        raise invalid("serialized_scorer must be a JSON object.")
    for holder in MODEL_HOLDERS:
        part = data.get(holder)
        if isinstance(part, dict) and part.get("model") is not None:
            model = part["model"]
            if not isinstance(model, str):
                raise invalid(f"Scorer model must be a string, got {type(model).__name__}.")
            if not model.strip():
                raise invalid("Scorer model cannot be empty or contain only whitespace.")
    return text  # stored verbatim: the client reads back exactly what it sent


def _version(message: Message) -> int | None:
    """The optional `version` (int32): absent means the latest, or all of them on delete."""
    value = message.raw("version")["version"]
    if value in (None, ""):
        return None
    number = to_integer(value, "version", minimum=1)
    if number > 2**31 - 1:
        raise invalid(f"Parameter 'version' is out of range: {number}.")
    return number


def _scorer(experiment: Experiment, name: str) -> Scorer:
    found = Scorer.objects.filter(experiment=experiment, name=name).first()
    if found is None:
        raise not_found(f"Scorer with name '{name}' not found for experiment {experiment.pk}.")
    return found


def _versions(experiment: Experiment, name: str, version: int | None) -> QuerySet[ScorerVersion]:
    """The versions asked for (one, or all): a 404 in MLflow's words if there are none."""
    rows = ScorerVersion.objects.filter(scorer=_scorer(experiment, name))
    if version is not None:
        rows = rows.filter(version=version)
    if not rows.exists():
        which = f" and version {version}" if version is not None else ""
        raise not_found(
            f"Scorer with name '{name}'{which} not found for experiment {experiment.pk}."
        )
    return rows.select_related("scorer")


def _sample_rate(value: Any) -> float:
    # MLflow's handler takes float(sample_rate): numbers, or text that reads as one.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise invalid(f"sample_rate must be a number, got {type(value).__name__}")
    try:
        rate = float(value)
    except ValueError:
        raise invalid(f"sample_rate must be a number, got {value!r}") from None
    if math.isnan(rate) or not 0.0 <= rate <= 1.0:
        raise invalid(f"sample_rate must be between 0.0 and 1.0, got {rate}")
    return rate


def _filter_string(message: Message) -> str:
    value = message.raw("filter_string")["filter_string"]
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid(
            f"Invalid value {value!r} for parameter 'filter_string' supplied: Value was of"
            f" type '{type(value).__name__}'. Expected type 'str' or None."
        )
    text = message.string("filter_string", max_length=MAX_FILTER_CHARS)
    filters.TRACES.q(text)  # a filter that search_traces would refuse is refused now
    return text


# --- Views ---------------------------------------------------------------------------------


@mlflow_endpoint(["POST"])
def register(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    experiment = ids.active_experiment(message.string("experiment_id", required=True))
    made = Scorer.register(experiment.pk, _name(message), _serialized(message))
    scorer = made.scorer
    return JsonResponse(
        {
            "version": made.version,
            "scorer_id": scorer.scorer_id,
            "experiment_id": str(scorer.experiment_id),
            "name": scorer.name,
            "serialized_scorer": made.serialized_scorer,
            "creation_time": made.as_mlflow()["creation_time"],
        }
    )


@mlflow_endpoint(["GET"])
def list_scorers(request: HttpRequest) -> JsonResponse:
    """The latest version of each scorer: of one experiment, of several, or of every active
    experiment the caller may read."""
    message = Message.of(request)
    one = message.string("experiment_id")
    several = message.strings("experiment_ids")
    if one and several:
        raise invalid(
            "Cannot specify both 'experiment_id' and 'experiment_ids'. Use 'experiment_ids'"
            " to scope the query to multiple experiments, or 'experiment_id' to scope it to a"
            " single experiment."
        )
    rows = ScorerVersion.objects.latest_per_scorer().filter(
        scorer__experiment__lifecycle_stage=LifecycleStage.ACTIVE
    )
    if one:
        rows = rows.filter(scorer__experiment=ids.active_experiment(one))
    elif several:
        rows = rows.filter(scorer__experiment__in=[ids.experiment_pk(e) for e in several])
    rows = access_for(request).readable(rows, "scorer__experiment_id")
    rows = rows.select_related("scorer").order_by("scorer__experiment_id", "scorer__name")
    return JsonResponse({"scorers": [row.as_mlflow() for row in rows]})


@mlflow_endpoint(["GET"])
def versions(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    experiment = ids.active_experiment(message.string("experiment_id", required=True))
    rows = _versions(experiment, _name(message), None).order_by("version")
    return JsonResponse({"scorers": [row.as_mlflow() for row in rows]})


@mlflow_endpoint(["GET"])
def get(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    experiment = ids.active_experiment(message.string("experiment_id", required=True))
    name, version = _name(message), _version(message)
    found = _versions(experiment, name, version).order_by("-version").first()
    return JsonResponse({"scorer": found.as_mlflow() if found else {}})


@mlflow_endpoint(["DELETE"])
def delete(request: HttpRequest) -> JsonResponse:
    """One version, or (without `version`) the scorer with all its versions and its config."""
    message = Message.of(request)
    experiment = ids.active_experiment(message.string("experiment_id", required=True))
    name, version = _name(message), _version(message)
    rows = _versions(experiment, name, version)
    if version is None:
        _scorer(experiment, name).delete()
    else:
        rows.delete()
    return JsonResponse({})


@mlflow_endpoint(["PUT"])
def online_config(request: HttpRequest) -> JsonResponse:
    """Start, update or stop online scoring (`stop` is a sample rate of 0)."""
    message = Message.of(request)
    experiment = ids.active_experiment(message.string("experiment_id", required=True))
    name = _name(message)
    raw_rate = message.raw("sample_rate")["sample_rate"]
    if raw_rate is None:
        raise invalid("Missing value for required parameter 'sample_rate'.")
    rate, filter_string = _sample_rate(raw_rate), _filter_string(message)
    config = _scorer(experiment, name).set_online_config(rate, filter_string)
    return JsonResponse({"config": config.as_mlflow()})


@mlflow_endpoint(["GET"])
def online_configs(request: HttpRequest) -> JsonResponse:
    """The configs of the scorers named by id (the permission rule has checked READ on their
    experiments); ids with no config, or no scorer, are left out."""
    scorer_ids = Message.of(request).strings("scorer_ids", max_items=MAX_SCORER_IDS)
    if not scorer_ids:
        raise invalid("Missing value for required parameter 'scorer_ids'.")
    rows = OnlineConfig.objects.filter(scorer__scorer_id__in=scorer_ids).select_related("scorer")
    return JsonResponse({"configs": [row.as_mlflow() for row in rows.order_by("pk")]})
