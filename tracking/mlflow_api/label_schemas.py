"""Label schemas: MLflow 3's `/api/3.0/mlflow/label-schemas/...` endpoints, thin views over
tracking/reviews.py, answering as MLflow's server does (handlers.py, its SQL store and
mlflow/genai/label_schemas/validation.py, whose limits and wording these checks repeat).

`mlflow.genai.label_schemas.create_label_schema`, `get_label_schema`, `list_label_schemas`,
`update_label_schema` and `delete_label_schema` call these. Everything is checked before
anything is written: a refused request changes nothing.
"""

from __future__ import annotations

import math
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse

from tracking.mlflow_api import ids
from tracking.mlflow_api.errors import already_exists, invalid, mlflow_endpoint, not_found
from tracking.mlflow_api.pages import listing, requested_page
from tracking.mlflow_api.requests import Message, enum_choices, to_integer, to_number
from tracking.models import Experiment, LifecycleStage
from tracking.reviews import DEFAULT_SCHEMA_NAME, NAME_MAX_CHARS, LabelSchema, now_ms

INSTRUCTION_MAX_CHARS = 1000
LABEL_MAX_CHARS = 64  # a pass/fail label, a categorical option
MAX_OPTIONS = 10
MAX_RESULTS = 50_000  # MLflow's SEARCH_MAX_RESULTS_THRESHOLD: more is refused
MAX_PAGE = 1000  # a larger page is cut here, with a token for the rest
TYPES = enum_choices("FEEDBACK", "EXPECTATION")
INPUT_KINDS = ("pass_fail", "categorical", "numeric", "text")


def live_experiment(value: str) -> Experiment:
    """The experiment, active: MLflow's store finds no deleted one."""
    experiment = ids.experiment(value)
    if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
        raise not_found(f"No Experiment with id={experiment.pk} exists")
    return experiment


# --- Checks --------------------------------------------------------------------------------


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise invalid(f"Label schema `name` must be a non-empty string; got {value!r}.")
    if len(value) > NAME_MAX_CHARS:
        raise invalid(
            f"Label schema `name` must be at most {NAME_MAX_CHARS} characters; got {len(value)}."
        )
    if value.strip().lower() == DEFAULT_SCHEMA_NAME.lower():
        raise invalid(
            f"`{value}` is reserved for the experiment's default question and cannot be used "
            "for another label schema."
        )
    return value


def _instruction(message: Message) -> str | None:
    if message.raw("instruction")["instruction"] is None:
        return None
    text = message.string("instruction")
    if len(text) > INSTRUCTION_MAX_CHARS:
        raise invalid(
            f"Label schema `instruction` must be at most {INSTRUCTION_MAX_CHARS} characters; "
            f"got {len(text)}."
        )
    return text


def _label(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise invalid(f"`{where}` must be a non-empty string; got {value!r}.")
    if len(value) > LABEL_MAX_CHARS:
        raise invalid(f"`{where}` must be at most {LABEL_MAX_CHARS} characters; got {len(value)}.")
    return Message({"v": value}).string("v")


def _pass_fail(config: dict[str, Any]) -> dict[str, Any]:
    positive = _label(config.get("positive_label", ""), "InputPassFail.positive_label")
    negative = _label(config.get("negative_label", ""), "InputPassFail.negative_label")
    if positive == negative:
        raise invalid(
            "`InputPassFail.positive_label` and `negative_label` must be distinct; "
            f"got {positive!r} for both."
        )
    return {"positive_label": positive, "negative_label": negative}


def _categorical(config: dict[str, Any]) -> dict[str, Any]:
    options = config.get("options") or []
    if not isinstance(options, list) or not options:
        raise invalid(f"`InputCategorical.options` must be a non-empty list; got {options!r}.")
    if len(options) > MAX_OPTIONS:
        raise invalid(
            f"`InputCategorical.options` must have at most {MAX_OPTIONS} entries; "
            f"got {len(options)}."
        )
    checked = [_label(option, "InputCategorical.options") for option in options]
    if len(set(checked)) != len(checked):
        twice = next(o for o in checked if checked.count(o) > 1)
        raise invalid(f"`InputCategorical.options` must be deduplicated; {twice!r} appears twice.")
    multi = Message(config).boolean("multi_select")
    return {"options": checked, "multi_select": multi}


def _numeric(config: dict[str, Any]) -> dict[str, Any]:
    bounds: dict[str, float] = {}
    for field in ("min_value", "max_value"):
        if config.get(field) is not None:
            value = to_number(config[field], f"InputNumeric.{field}")
            if not math.isfinite(value):
                raise invalid(f"`InputNumeric.{field}` must be a finite number; got {value}.")
            bounds[field] = value
    if len(bounds) == 2 and bounds["min_value"] >= bounds["max_value"]:
        raise invalid(
            "`InputNumeric.min_value` must be strictly less than `max_value`; "
            f"got min={bounds['min_value']}, max={bounds['max_value']}."
        )
    return bounds


def _text(config: dict[str, Any]) -> dict[str, Any]:
    if config.get("max_length") is None:
        return {}
    length = to_integer(config["max_length"], "InputText.max_length", minimum=-(2**63))
    if length < 1:
        raise invalid(f"`InputText.max_length` must be at least 1; got {length}.")
    return {"max_length": length}


CHECKS = {"pass_fail": _pass_fail, "categorical": _categorical, "numeric": _numeric, "text": _text}


def _input(message: Message) -> tuple[str, dict[str, Any]]:
    """The one input kind set in MLflow's `LabelSchemaInput` oneof, and its checked fields."""
    given = message.object("input")
    kinds = [kind for kind in INPUT_KINDS if given.get(kind) is not None]
    if len(kinds) != 1:
        raise invalid(
            "Label schema `input` must have exactly one of `pass_fail`, `categorical`, "
            "`numeric`, or `text` set; got an empty oneof."
        )
    kind = kinds[0]
    config = Message(given).object(kind)
    return kind, CHECKS[kind](config)


def _schema(message: Message) -> LabelSchema:
    schema_id = message.string("schema_id", required=True)
    found = LabelSchema.objects.filter(schema_id=schema_id).first()
    if found is None:
        raise not_found(f"Label schema with id '{schema_id}' not found.")
    return found


def _taken(experiment_id: int, name: str) -> Exception:
    return already_exists(
        f"Label schema with name '{name}' already exists for experiment '{experiment_id}'."
    )


# --- Views ---------------------------------------------------------------------------------


@mlflow_endpoint(["POST"])
def create(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    experiment_id = message.string("experiment_id", required=True)
    name = message.string("name", required=True)
    kind_of = message.enum("type", TYPES, "")
    if not kind_of:
        raise invalid(
            "Label schema `type` must be one of FEEDBACK or EXPECTATION; got proto enum value 0."
        )
    input_kind, config = _input(message)
    name, instruction = _name(name), _instruction(message)
    enable_comment = message.boolean("enable_comment")
    experiment = live_experiment(experiment_id)
    if LabelSchema.objects.filter(experiment=experiment, name=name).exists():
        raise _taken(experiment.pk, name)
    try:
        with transaction.atomic():
            schema = LabelSchema.objects.create(
                experiment=experiment,
                name=name,
                type=kind_of.lower(),
                instruction=instruction,
                enable_comment=enable_comment,
                input_kind=input_kind,
                input_config=config,
            )
    except IntegrityError:
        raise _taken(experiment.pk, name) from None  # made meanwhile by another request
    return JsonResponse({"label_schema": schema.as_mlflow()})


@mlflow_endpoint(["GET"])
def get(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"label_schema": _schema(Message.of(request)).as_mlflow()})


@mlflow_endpoint(["GET"])
def get_by_name(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    experiment_id = message.string("experiment_id", required=True)
    name = message.string("name", required=True)
    experiment = live_experiment(experiment_id)
    found = LabelSchema.objects.filter(experiment=experiment, name=name).first()
    if found is None:
        raise not_found(
            f"Label schema with name '{name}' not found for experiment '{experiment_id}'."
        )
    return JsonResponse({"label_schema": found.as_mlflow()})


@mlflow_endpoint(["GET"])
def list_schemas(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    experiment_id = message.string("experiment_id", required=True)
    check_page_size(message)
    experiment = live_experiment(experiment_id)
    LabelSchema.ensure_default(experiment.pk)
    schemas = LabelSchema.objects.filter(experiment=experiment).for_listing()
    rows, token = requested_page(schemas, message, default=100, maximum=MAX_PAGE)
    return JsonResponse(listing("label_schemas", [s.as_mlflow() for s in rows], token))


@mlflow_endpoint(["PATCH"])
def update(request: HttpRequest) -> JsonResponse:
    """A sparse update; the type and the input's kind (and multi_select) never change."""
    message = Message.of(request)
    schema = _schema(message)
    raw = message.raw("name", "enable_comment", "input")
    if schema.is_default:
        raise invalid("The experiment's default question cannot be edited.")
    name = _name(message.string("name")) if raw["name"] is not None else None
    instruction = _instruction(message)
    enable_comment = (
        message.boolean("enable_comment") if raw["enable_comment"] is not None else None
    )
    new_input = _input(message) if raw["input"] is not None else None
    if new_input is not None:
        kind, config = new_input
        if kind != schema.input_kind:
            raise invalid(
                "A label schema's input type cannot be changed after creation "
                f"(existing: {_class(schema.input_kind)}, got: {_class(kind)})."
            )
        if kind == "categorical" and config["multi_select"] != schema.input_config.get(
            "multi_select", False
        ):
            raise invalid("`InputCategorical.multi_select` cannot be changed after creation.")
        schema.input_config = config
    if name is not None and name != schema.name:
        others = LabelSchema.objects.filter(experiment_id=schema.experiment_id, name=name)
        if others.exists():
            raise _taken(schema.experiment_id, name)
        schema.name = name
    if instruction is not None:
        schema.instruction = instruction
    if enable_comment is not None:
        schema.enable_comment = enable_comment
    schema.updated_at = now_ms()
    try:
        with transaction.atomic():
            schema.save()
    except IntegrityError:
        raise _taken(schema.experiment_id, schema.name) from None
    return JsonResponse({"label_schema": schema.as_mlflow()})


@mlflow_endpoint(["DELETE"])
def delete(request: HttpRequest) -> JsonResponse:
    """An unknown id is no error (MLflow's delete is a no-op then); the default question stays.
    Queues lose the schema from their questions; assessments under its name stay."""
    message = Message.of(request)
    schema_id = message.string("schema_id", required=True)
    found = LabelSchema.objects.filter(schema_id=schema_id).first()
    if found is not None:
        if found.is_default:
            raise invalid("The experiment's default question cannot be deleted.")
        found.delete()
    return JsonResponse({})


def check_page_size(message: Message) -> None:
    size = message.integer("max_results", minimum=-(2**63))
    if size is not None and not 1 <= size <= MAX_RESULTS:
        raise invalid(f"max_results must be between 1 and {MAX_RESULTS}.")


def _class(kind: str) -> str:
    return {
        "pass_fail": "InputPassFail",
        "categorical": "InputCategorical",
        "numeric": "InputNumeric",
        "text": "InputText",
    }[kind]
