"""MLflow's model registry: registered models (names), their numbered versions, tags, aliases
and legacy stages.

`mlflow.register_model(uri, name)` creates the registered model, takes RESOURCE_ALREADY_EXISTS
as "go on", then creates a version and polls it until READY (ours are READY at once).
`models:/name/1` and `models:/name@alias` are resolved by the client through get-download-uri
(after alias -> version); a version whose source is `models:/m-<id>` downloads from that
logged model's artifact location, as on MLflow's server. A version made from a logged model
is also recorded on it, in the `mlflow.modelVersions` tag (a JSON list of {name, version}).

Names and versions arrive in the body (POST/PATCH/DELETE) or the query (GET); versions are
strings on the wire and numbers here. Every write checks the whole request before it touches
a row, so a bad request changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import IntegrityError
from django.db.models import Q, lookups
from django.http import HttpRequest, JsonResponse

from tracking import filters
from tracking.mlflow_api import ids, pages
from tracking.mlflow_api.entities import (
    model_artifact_uri,
    model_version_json,
    registered_model_json,
)
from tracking.mlflow_api.errors import already_exists, invalid, mlflow_endpoint, not_found
from tracking.mlflow_api.requests import Message, check_key, check_value
from tracking.models import (
    LoggedModel,
    ModelVersion,
    ModelVersionStage,
    RegisteredModel,
)

MAX_NAME = 256
MAX_DESCRIPTION = 5000
MAX_TAG_VALUE = 5000
MAX_SOURCE = 1000
MAX_ALIAS = 255
MAX_VERSION = 2**31 - 1
MODELS_SEARCH_DEFAULT = 100
VERSIONS_SEARCH_DEFAULT = 1000
SEARCH_MAX = 1000
# `models:/` sources nest (a version of a version); the client never sends deep chains.
MAX_SOURCE_DEPTH = 5
_STAGES = {stage.value.lower(): stage.value for stage in ModelVersionStage}
_ALIAS_RE = re.compile(r"[\w\-]+")
_VERSION_ALIAS_RE = re.compile(r"[vV]\d+")
_REGISTERED_SOURCE_RE = re.compile(r"models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>.+))")


# --- Search filters --------------------------------------------------------------------------


@dataclass(frozen=True)
class _RegistryEntity(filters.Entity):
    """Registry search, where `tags.k != 'v'` also matches rows without the tag: the client
    adds ``tag.`mlflow.prompt.is_prompt` != 'true'`` to every registered model search, and
    models (not prompts) have no such tag."""

    def comparison_q(self, c: filters.Comparison) -> Q:
        if c.prefix == "tag" and c.op == "!=" and self.tags:
            key = filters.json_key(self.tags, c.key)
            value = filters.as_text(c.value, f"tags.{c.key}")
            return Q(lookups.IsNull(key, True)) | ~Q(lookups.Exact(key, value))
        return super().comparison_q(c)


REGISTERED_MODELS = _RegistryEntity(
    name="registered models",
    attributes={
        "name": filters.column("name"),
        "creation_timestamp": filters.column("created_at", filters.as_time_ms),
        "last_updated_timestamp": filters.column("updated_at", filters.as_time_ms),
        "timestamp": filters.column("updated_at", filters.as_time_ms),
    },
    tags="tags",
)

MODEL_VERSIONS = _RegistryEntity(
    name="model versions",
    attributes={
        "name": filters.column("registered_model__name"),
        "version_number": filters.column("version", filters.as_number),
        "run_id": filters.column("run_id"),
        "source_path": filters.column("source"),
        "model_id": filters.column("model_id"),
        "current_stage": filters.column("current_stage"),
        "creation_timestamp": filters.column("created_at", filters.as_time_ms),
        "last_updated_timestamp": filters.column("updated_at", filters.as_time_ms),
    },
    tags="tags",
)


# --- Reading requests --------------------------------------------------------------------


def _name(message: Message, field: str = "name") -> str:
    return message.string(field, required=True, max_length=MAX_NAME)


def _new_name(message: Message, field: str = "name") -> str:
    """A name to store: it becomes part of `models:/<name>/<version>` URIs."""
    name = _name(message, field)
    if not name.strip():
        raise invalid(f"Missing value for required parameter '{field}'.")
    if "/" in name or ":" in name:
        raise invalid(f"Invalid model name '{name}'. Names cannot contain '/' or ':'.")
    return name


def _version_number(message: Message) -> int:
    number = message.integer("version", required=True, minimum=1)
    assert number is not None  # required
    if number > MAX_VERSION:
        raise invalid(f"Parameter 'version' is out of range: {number}.")
    return number


def _description(message: Message) -> str:
    return message.string("description", max_length=MAX_DESCRIPTION)


def _tag(message: Message) -> tuple[str, str]:
    key = check_key(message.string("key", required=True), "key")
    return key, check_value(message.string("value"), "value", MAX_TAG_VALUE)


def _alias(message: Message) -> str:
    alias = message.string("alias", required=True, max_length=MAX_ALIAS)
    if not _ALIAS_RE.fullmatch(alias):
        raise invalid(
            f"Invalid alias name: '{alias}'. Names may only contain alphanumerics, "
            "underscores (_), and dashes (-)."
        )
    return alias


def _stage(value: str) -> str:
    stage = _STAGES.get(value.lower())
    if stage is None:
        raise invalid(f"Invalid Model Version stage: {value}. Value must be one of {_STAGES}.")
    return stage


# --- Rows ----------------------------------------------------------------------------------


def _registered(name: str) -> RegisteredModel:
    found = RegisteredModel.objects.named(name)
    if found is None:
        raise not_found(f"Registered Model with name={name} not found")
    return found


def _version(name: str, number: int) -> ModelVersion:
    found = ModelVersion.objects.of(name, number).first()
    if found is None:
        raise not_found(f"Model Version (name={name}, version={number}) not found")
    return found


def _latest_versions(models: list[RegisteredModel]) -> dict[int, list[ModelVersion]]:
    """Each model's newest version per stage, in one query for the page."""
    latest: dict[int, list[ModelVersion]] = {m.pk: [] for m in models}
    by_pk = {m.pk: m for m in models}
    for version in ModelVersion.objects.filter(registered_model__in=by_pk).latest_per_stage():
        version.registered_model = by_pk[version.registered_model_id]
        latest[version.registered_model_id].append(version)
    return latest


def _model_response(model: RegisteredModel) -> JsonResponse:
    latest = _latest_versions([model])[model.pk]
    return JsonResponse({"registered_model": registered_model_json(model, latest)})


def _version_response(version: ModelVersion) -> JsonResponse:
    return JsonResponse({"model_version": model_version_json(version)})


# --- Registered models ---------------------------------------------------------------------


@mlflow_endpoint(["POST"])
def create_model(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    name = _new_name(message)
    description = _description(message)
    tags = message.key_values("tags", max_value=MAX_TAG_VALUE)
    try:
        model = RegisteredModel.objects.register(name, description=description, tags=tags)
    except IntegrityError:
        # The unique name, also when two clients register the same name at once.
        raise already_exists(f"Registered Model (name={name}) already exists.") from None
    return _model_response(model)


@mlflow_endpoint(["GET"])
def get_model(request: HttpRequest) -> JsonResponse:
    return _model_response(_registered(_name(Message.of(request))))


@mlflow_endpoint(["PATCH"])
def update_model(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    description = _description(message)
    model = _registered(_name(message))
    model.set_description(description)
    return _model_response(model)


@mlflow_endpoint(["POST"])
def rename_model(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    name, new_name = _name(message), _new_name(message, "new_name")
    model = _registered(name)
    try:
        model.rename(new_name)
    except IntegrityError:
        raise already_exists(f"Registered Model (name={new_name}) already exists.") from None
    return _model_response(model)


@mlflow_endpoint(["DELETE"])
def delete_model(request: HttpRequest) -> JsonResponse:
    _registered(_name(Message.of(request))).delete()  # its versions go with it (CASCADE)
    return JsonResponse({})


@mlflow_endpoint(["GET"])
def search_models(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    ordering = REGISTERED_MODELS.order_by(message.strings("order_by", max_items=10))
    models = RegisteredModel.objects.filter(REGISTERED_MODELS.q(message.string("filter")))
    models = models.order_by(*ordering, "name")
    rows, token = pages.requested_page(models, message, MODELS_SEARCH_DEFAULT, SEARCH_MAX)
    latest = _latest_versions(rows)
    items = [registered_model_json(m, latest[m.pk]) for m in rows]
    return JsonResponse(pages.listing("registered_models", items, token))


@mlflow_endpoint(["POST"])
def set_model_tag(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    key, value = _tag(message)
    _registered(_name(message)).set_tags({key: value})
    return JsonResponse({})


@mlflow_endpoint(["DELETE"])
def delete_model_tag(request: HttpRequest) -> JsonResponse:
    """Deleting a tag the model does not have is not an error, as in MLflow's registry."""
    message = Message.of(request)
    key = check_key(message.string("key", required=True), "key")
    _registered(_name(message)).delete_tag(key)
    return JsonResponse({})


@mlflow_endpoint(["GET", "POST", "DELETE"])
def alias(request: HttpRequest) -> JsonResponse:
    """GET: the version an alias names. POST: point it at a version. DELETE: remove it."""
    message = Message.of(request)
    name, alias_name = _name(message), _alias(message)
    if request.method == "GET":
        number = _registered(name).aliases.get(alias_name)
        if number is None:
            raise not_found(f"Registered model alias {alias_name} not found.")
        return _version_response(_version(name, number))
    if request.method == "DELETE":
        _registered(name).delete_alias(alias_name)
        return JsonResponse({})
    if alias_name.lower() == "latest" or _VERSION_ALIAS_RE.fullmatch(alias_name):
        # `models:/name@latest` and `@v3` mean something else to the client.
        raise invalid(f"Alias name '{alias_name}' is reserved.")
    number = _version_number(message)
    try:
        _registered(name).set_alias(alias_name, number)
    except ModelVersion.DoesNotExist:
        raise not_found(f"Model Version (name={name}, version={number}) not found") from None
    return JsonResponse({})


@mlflow_endpoint(["GET", "POST"])
def get_latest_versions(request: HttpRequest) -> JsonResponse:
    """The newest version in each of `stages` (every stage when none is given)."""
    message = Message.of(request)
    stages = [_stage(s) for s in message.strings("stages", max_items=10)] or list(_STAGES.values())
    model = _registered(_name(message))
    latest = {v.current_stage: v for v in _latest_versions([model])[model.pk]}
    items = [model_version_json(latest[s]) for s in dict.fromkeys(stages) if s in latest]
    return JsonResponse({"model_versions": items})


# --- Model versions ------------------------------------------------------------------------


def _resolve_source(
    source: str, run_id: str, model_id: str
) -> tuple[str, str, str, LoggedModel | None]:
    """(source, run_id, model_id, logged model) as the version stores them.

    `models:/m-<id>` names a logged model, which must exist and agree with `model_id`;
    `models:/<name>/<n>` (or `@alias`) names another version, whose run and model the new
    one inherits. A missing run id is the logged model's source run, as on MLflow's server.
    """
    inherited = False
    if match := _REGISTERED_SOURCE_RE.fullmatch(source):
        origin = _source_version(match)
        source = f"models:/{origin.registered_model.name}/{origin.version}"
        inherited = not model_id and bool(origin.model_id)
        run_id, model_id = run_id or origin.run_id, model_id or origin.model_id
    elif source.startswith("models:/"):
        source_model_id = source.removeprefix("models:/")
        ids.check_model_id(source_model_id, "source")
        if model_id and model_id != source_model_id:
            raise invalid(
                f"Invalid model version source: '{source}'. The model_id request parameter "
                "must identify the resource that contains the source."
            )
        model_id = source_model_id
    logged = None
    if inherited:
        # The other version's logged model may be gone since; the copy stays valid.
        logged = LoggedModel.objects.filter(model_id=model_id).first()
    elif model_id:
        logged = ids.logged_model(model_id)
    if logged is not None and not run_id and logged.source_run_id:
        run_id = logged.source_run.run_id
    return source, run_id, model_id, logged


def _source_version(match: re.Match[str]) -> ModelVersion:
    name = match["name"]
    if match["alias"]:
        number = _registered(name).aliases.get(match["alias"])
        if number is None:
            raise not_found(f"Registered model alias {match['alias']} not found.")
        return _version(name, number)
    if int(match["version"]) > MAX_VERSION:
        raise invalid(f"Invalid model version source: '{match.string}'.")
    return _version(name, int(match["version"]))


@mlflow_endpoint(["POST"])
def create_version(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    name = _name(message)
    source = message.string("source", required=True, max_length=MAX_SOURCE)
    run_id = message.string("run_id", max_length=64)
    model_id = message.string("model_id", max_length=64)
    description = _description(message)
    tags = message.key_values("tags", max_value=MAX_TAG_VALUE)
    if model_id:
        ids.check_model_id(model_id)
    registered = _registered(name)
    source, run_id, model_id, logged = _resolve_source(source, run_id, model_id)
    try:
        version = registered.add_version(
            source=source,
            run_id=run_id,
            model_id=model_id,
            description=description,
            tags=tags,
            logged_model=logged,
        )
    except RegisteredModel.DoesNotExist:  # deleted since it was read above
        raise not_found(f"Registered Model with name={name} not found") from None
    return _version_response(version)


@mlflow_endpoint(["GET"])
def get_version(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    return _version_response(_version(_name(message), _version_number(message)))


@mlflow_endpoint(["PATCH"])
def update_version(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    name, number, description = _name(message), _version_number(message), _description(message)
    version = _version(name, number)
    version.set_description(description)
    return _version_response(version)


@mlflow_endpoint(["DELETE"])
def delete_version(request: HttpRequest) -> JsonResponse:
    """Aliases that pointed at the version go with it, as in MLflow."""
    message = Message.of(request)
    name, number = _name(message), _version_number(message)
    model = _registered(name)
    _version(name, number)  # a 404 when the model has no such version
    model.delete_version(number)
    return JsonResponse({})


@mlflow_endpoint(["GET"])
def search_versions(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    ordering = MODEL_VERSIONS.order_by(message.strings("order_by", max_items=10))
    versions = (
        ModelVersion.objects.select_related("registered_model")
        .filter(MODEL_VERSIONS.q(message.string("filter")))
        .order_by(*ordering, "registered_model__name", "-version")
    )
    rows, token = pages.requested_page(versions, message, VERSIONS_SEARCH_DEFAULT, SEARCH_MAX)
    items = [model_version_json(v) for v in rows]
    return JsonResponse(pages.listing("model_versions", items, token))


@mlflow_endpoint(["POST"])
def set_version_tag(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    name, number = _name(message), _version_number(message)
    key, value = _tag(message)
    _version(name, number).set_tags({key: value})
    return JsonResponse({})


@mlflow_endpoint(["DELETE"])
def delete_version_tag(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    name, number = _name(message), _version_number(message)
    key = check_key(message.string("key", required=True), "key")
    _version(name, number).delete_tag(key)
    return JsonResponse({})


@mlflow_endpoint(["POST"])
def transition_stage(request: HttpRequest) -> JsonResponse:
    """Legacy stages. `archive_existing_versions` moves the others in that stage to Archived."""
    message = Message.of(request)
    name, number = _name(message), _version_number(message)
    stage = _stage(message.string("stage", required=True, max_length=32))
    archive = message.boolean("archive_existing_versions")
    if archive and stage not in (ModelVersionStage.STAGING, ModelVersionStage.PRODUCTION):
        raise invalid(
            f"Model version transition cannot archive existing model versions because "
            f"'{stage}' is not an Active stage. Valid stages are Staging and Production."
        )
    version = _version(name, number)
    version.transition(stage, archive_existing=archive)
    return _version_response(version)


def download_uri(version: ModelVersion, depth: int = 0) -> str:
    """Where a version's files are: a logged model's artifact location for `models:/m-<id>`,
    the other version's location for `models:/<name>/<n>`, else the source itself."""
    source = version.source
    if source.startswith("models:/") and depth < MAX_SOURCE_DEPTH:
        target = source.removeprefix("models:/")
        if ids.MODEL_ID_RE.fullmatch(target):
            logged = LoggedModel.objects.filter(model_id=target).first()
            if logged is not None:
                return logged.artifact_location or model_artifact_uri(
                    logged.experiment_id, logged.model_id
                )
        elif (match := _REGISTERED_SOURCE_RE.fullmatch(source)) and match["version"]:
            origin = ModelVersion.objects.of(match["name"], int(match["version"])).first()
            if origin is not None:
                return download_uri(origin, depth + 1)
    return source


@mlflow_endpoint(["GET"])
def get_download_uri(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    version = _version(_name(message), _version_number(message))
    return JsonResponse({"artifact_uri": download_uri(version)})
