"""Who may call each MLflow endpoint: one table, keyed by URL name, applied by
`errors.mlflow_endpoint` before any view runs (as MLflow's auth app does with its
BEFORE_REQUEST validators).

Each rule says how the request's experiment is found (from `experiment_id`, a run, trace or
logged model id, a `trace_info`, an artifact path) and the level needed there, by method; or
that the endpoint needs a right of the role (creating experiments, writing to the model
registry, which no experiment holds). Searches need READ on every experiment they name; the
views filter the rows of the others (`Access.readable`). An endpoint missing from the table is
refused, and tests/access/test_matrix.py fails on it.

A refusal is MLflow's `403 PERMISSION_DENIED`, for objects the caller may not even see too
(as MLflow's auth app answers). The levels follow MLflow's: reading needs READ, changing EDIT,
deleting a run, a logged model, an artifact or an experiment (and renaming or restoring one)
MANAGE; deleting traces needs EDIT.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest

from access.models import Level
from access.rules import Access, Denied, access_for
from tracking.mlflow_api import ids
from tracking.mlflow_api.errors import MlflowError
from tracking.mlflow_api.requests import Message
from tracking.models import (
    DEFAULT_EXPERIMENT_ID,
    DatasetExperiment,
    Experiment,
    LabelSchema,
    LoggedModel,
    ReviewQueue,
    Scorer,
)
from tracking.permissions import experiment_of_model, experiment_of_run, experiment_of_trace

PERMISSION_DENIED = "PERMISSION_DENIED"
READ, EDIT, MANAGE = Level.READ, Level.EDIT, Level.MANAGE

# request, URL kwargs -> the experiments the request touches (ids as sent). An id of the wrong
# shape or an object that does not exist yields nothing: the view answers its own 400 or 404.
Locator = Callable[[HttpRequest, dict[str, Any]], Iterable[Any]]


def denied(message: str) -> MlflowError:
    return MlflowError(PERMISSION_DENIED, message, 403)


@dataclass(frozen=True)
class Rule:
    levels: dict[str, Level] = field(default_factory=dict)  # by method; "*" for any other
    locate: Locator | None = None
    role: Callable[[Access], bool] | None = None
    role_what: str = ""

    def apply(self, access: Access, request: HttpRequest, kwargs: dict[str, Any]) -> None:
        if self.role is not None:
            access.require_role(self.role(access), self.role_what)
        level = self.levels.get(request.method or "", self.levels.get("*"))
        if level is None or self.locate is None or access.can_everywhere(level):
            return
        for experiment_id in self.locate(request, kwargs):
            access.require(level, experiment_id)


def check(request: HttpRequest, kwargs: dict[str, Any]) -> None:
    """Raise MLflow's 403 unless the caller may make this request."""
    access = access_for(request)
    if access.is_admin:
        return
    name = request.resolver_match.url_name if request.resolver_match else None
    rule = RULES.get(name or "")
    if rule is None:
        raise denied(f"{request.path} has no permission rule; only admins may call it.")
    try:
        rule.apply(access, request, kwargs)
    except Denied as refusal:
        raise denied(str(refusal)) from None


# --- Locators ------------------------------------------------------------------------------


def _message(request: HttpRequest) -> Message:
    return Message.of(request)


def experiment_param(name: str = "experiment_id", default: str | None = None) -> Locator:
    def locate(request: HttpRequest, kwargs: dict[str, Any]) -> list[Any]:
        value = _message(request).string(name, default=default or "")
        return [ids.experiment_pk(value, name)] if value else []

    return locate


def experiment_ids(request: HttpRequest, kwargs: dict[str, Any]) -> list[Any]:
    """The experiments a search names (`experiment_ids`, and V3's `locations`)."""
    message = _message(request)
    found = [ids.experiment_pk(e) for e in message.strings("experiment_ids")]
    if request.method == "POST":
        for location in message.objects("locations", max_items=100):
            experiment = location.get("mlflow_experiment")
            if isinstance(experiment, dict) and isinstance(experiment.get("experiment_id"), str):
                found.append(ids.experiment_pk(experiment["experiment_id"]))
    return found


def started_or_searched(request: HttpRequest, kwargs: dict[str, Any]) -> list[Any]:
    """`/api/2.0/mlflow/traces`: StartTrace (POST) names the experiment it files the trace
    in, SearchTraces (GET) the experiments it searches."""
    if request.method == "POST":
        return experiment_param()(request, kwargs)
    return experiment_ids(request, kwargs)


def experiment_by_name(request: HttpRequest, kwargs: dict[str, Any]) -> list[Any]:
    name = _message(request).string("experiment_name")
    return list(Experiment.objects.filter(name=name).values_list("pk", flat=True)[:1])


def _found(experiment_id: int | None) -> list[Any]:
    return [] if experiment_id is None else [experiment_id]


def run_param(request: HttpRequest, kwargs: dict[str, Any]) -> list[Any]:
    return _found(experiment_of_run(_message(request).string("run_id", "run_uuid")))


def _models_experiments(model_ids: set[Any]) -> list[Any]:
    wanted = {m for m in model_ids if isinstance(m, str) and ids.MODEL_ID_RE.fullmatch(m)}
    if not wanted:
        return []
    models = LoggedModel.objects.filter(model_id__in=wanted).order_by()
    return list(models.values_list("experiment_id", flat=True).distinct())


def run_and_models(request: HttpRequest, kwargs: dict[str, Any]) -> list[Any]:
    """A run write that may name logged models too (`log_metric(..., model_id=)`, log_batch's
    metrics, `log_model`'s outputs): those models change with it, so their experiments count."""
    found = run_param(request, kwargs)
    if request.method != "POST":
        return found
    message = _message(request)
    items = [*message.objects("metrics", max_items=10_000), *message.objects("models")]
    model_ids = {item.get("model_id") for item in items} | {message.raw("model_id")["model_id"]}
    return found + _models_experiments(model_ids)


def registry_sources(request: HttpRequest, kwargs: dict[str, Any]) -> list[Any]:
    """A model version made from a run or a logged model copies from them and tags the model:
    the caller must be able to read them."""
    message = _message(request)
    source = message.raw("source")["source"]
    model_ids = {message.raw("model_id")["model_id"]}
    if isinstance(source, str) and source.startswith("models:/"):
        model_ids.add(source.removeprefix("models:/"))
    run_id = message.raw("run_id")["run_id"]
    runs = _found(experiment_of_run(run_id)) if isinstance(run_id, str) and run_id else []
    return runs + _models_experiments(model_ids)


def run_ids_param(request: HttpRequest, kwargs: dict[str, Any]) -> list[Any]:
    """The experiments of the runs a bulk read names (`run_ids`)."""
    run_ids = _message(request).strings("run_ids", max_items=1000)
    return [e for r in dict.fromkeys(run_ids) for e in _found(experiment_of_run(r))]


def trace_param(request: HttpRequest, kwargs: dict[str, Any]) -> list[Any]:
    return _found(experiment_of_trace(_message(request).string("trace_id")))


def trace_kwarg(request: HttpRequest, kwargs: dict[str, Any]) -> list[Any]:
    return _found(experiment_of_trace(kwargs["trace_id"]))


def model_kwarg(request: HttpRequest, kwargs: dict[str, Any]) -> list[Any]:
    return _found(experiment_of_model(kwargs["model_id"]))


def started_trace(request: HttpRequest, kwargs: dict[str, Any]) -> list[Any]:
    """StartTraceV3: the experiment it is filed in, and the one it is in already (if any),
    so that nobody moves or rewrites a trace of an experiment they may not edit."""
    info = _message(request).object("trace").get("trace_info")
    if not isinstance(info, dict):
        return []
    location = info.get("trace_location")
    experiment = location.get("mlflow_experiment") if isinstance(location, dict) else None
    raw = experiment.get("experiment_id") if isinstance(experiment, dict) else None
    found: list[Any] = [DEFAULT_EXPERIMENT_ID if raw in (None, "") else str(raw)]
    if isinstance(info.get("trace_id"), str):
        found += _found(experiment_of_trace(info["trace_id"]))
    return found


def dataset_kwarg(request: HttpRequest, kwargs: dict[str, Any]) -> list[Any]:
    """A dataset's experiments: access to it is access to all of them (as MLflow's auth app).
    One linked to no experiment is judged by the role alone, as artifacts outside one are."""
    from tracking.mlflow_api.datasets import DATASET_ID_RE

    dataset_id = kwargs["dataset_id"]
    if not DATASET_ID_RE.fullmatch(dataset_id):
        return []
    links = DatasetExperiment.objects.filter(dataset__dataset_id=dataset_id)
    found = list(links.values_list("experiment_id", flat=True))
    if not found and request.method != "GET":
        access = access_for(request)
        access.require_role(access.can_write_anything, "change datasets")
    return found


def new_dataset_experiments(request: HttpRequest, kwargs: dict[str, Any]) -> list[Any]:
    """A new dataset is made in the experiments it names (EDIT there, as a run); one in no
    experiment is judged by the role alone."""
    found = experiment_ids(request, kwargs)
    if not found:
        access = access_for(request)
        access.require_role(access.can_write_anything, "create datasets outside an experiment")
    return found


def dataset_and_added(request: HttpRequest, kwargs: dict[str, Any]) -> list[Any]:
    """Linking a dataset to more experiments changes those too: EDIT there as well."""
    return dataset_kwarg(request, kwargs) + experiment_ids(request, kwargs)


def scorer_experiments(request: HttpRequest, kwargs: dict[str, Any]) -> list[Any]:
    """ListScorers names one experiment (`experiment_id`) or several (`experiment_ids`);
    naming none lists the readable ones (rows filtered in the view)."""
    return experiment_param()(request, kwargs) + experiment_ids(request, kwargs)


def scorers_by_id(request: HttpRequest, kwargs: dict[str, Any]) -> list[Any]:
    """The experiments of the scorers whose online configs are asked for (unknown ids: none)."""
    wanted = _message(request).strings("scorer_ids", max_items=1000)
    scorers = Scorer.objects.filter(scorer_id__in=wanted).order_by()
    return list(scorers.values_list("experiment_id", flat=True).distinct())


def label_schema_param(request: HttpRequest, kwargs: dict[str, Any]) -> list[Any]:
    """The experiment of the label schema named by `schema_id` (unknown: none)."""
    schema_id = _message(request).string("schema_id")
    found = LabelSchema.objects.filter(schema_id=schema_id).values_list("experiment_id", flat=True)
    return list(found[:1])


def review_queue_param(request: HttpRequest, kwargs: dict[str, Any]) -> list[Any]:
    """The experiment of the review queue named by `queue_id` (unknown: none)."""
    queue_id = _message(request).string("queue_id")
    found = ReviewQueue.objects.filter(queue_id=queue_id).values_list("experiment_id", flat=True)
    return list(found[:1])


def artifact_experiment(request: HttpRequest, path: str) -> list[Any]:
    """Artifacts live under `<experiment id>/...`. A path outside any experiment is judged by
    the role alone: every role reads it, writers write it, only admins delete it."""
    head = path.lstrip("/").split("/", 1)[0]
    if ids.EXPERIMENT_ID_RE.fullmatch(head):
        return [int(head)]
    access = access_for(request)
    if request.method == "PUT":
        access.require_role(access.can_write_anything, "write artifacts")
    elif request.method == "DELETE":
        access.require_role(access.is_admin, "delete artifacts outside an experiment")
    return []


def artifact_kwarg(request: HttpRequest, kwargs: dict[str, Any]) -> list[Any]:
    return artifact_experiment(request, kwargs["artifact_path"])


def artifact_list_path(request: HttpRequest, kwargs: dict[str, Any]) -> list[Any]:
    return artifact_experiment(request, request.GET.get("path", ""))


# --- The table -----------------------------------------------------------------------------


def on(locate: Locator, level: Level | None = None, **by_method: Level) -> Rule:
    levels = dict(by_method)
    if level is not None:
        levels["*"] = level
    return Rule(levels=levels, locate=locate)


def _any_role(access: Access) -> bool:
    return bool(access.role)


ANYONE = Rule(role=_any_role, role_what="use Spyglass")
CREATE_EXPERIMENTS = Rule(role=lambda a: a.can_create_experiments, role_what="create experiments")
# The registry holds no experiment: every role reads it, editors and admins write it.
REGISTRY_READ = ANYONE
REGISTRY_WRITE = Rule(role=lambda a: a.can_write_anything, role_what="change the model registry")


@dataclass(frozen=True)
class RegistryRule(Rule):
    """A registry endpoint that reads on `reads` methods and writes on the others."""

    reads: frozenset[str] = frozenset({"GET"})

    def apply(self, access: Access, request: HttpRequest, kwargs: dict[str, Any]) -> None:
        rule = REGISTRY_READ if request.method in self.reads else REGISTRY_WRITE
        rule.apply(access, request, kwargs)


RULES: dict[str, Rule] = {
    # Experiments
    "experiments-create": CREATE_EXPERIMENTS,
    "experiments-get": on(experiment_param(), READ),
    "experiments-get-by-name": on(experiment_by_name, READ),
    "experiments-search": ANYONE,  # rows filtered in the view
    "experiments-update": on(experiment_param(), MANAGE),  # a rename
    "experiments-delete": on(experiment_param(), MANAGE),
    "experiments-restore": on(experiment_param(), MANAGE),
    "experiments-set-tag": on(experiment_param(), EDIT),
    "experiments-delete-tag": on(experiment_param(), EDIT),
    # Runs
    "runs-create": on(experiment_param(default=str(DEFAULT_EXPERIMENT_ID)), EDIT),
    "runs-get": on(run_param, READ),
    "runs-update": on(run_param, EDIT),
    "runs-delete": on(run_param, MANAGE),
    "runs-restore": on(run_param, MANAGE),
    "runs-log-parameter": on(run_param, EDIT),
    "runs-log-metric": on(run_and_models, EDIT),
    "runs-log-batch": on(run_and_models, EDIT),
    "runs-set-tag": on(run_param, EDIT),
    "runs-delete-tag": on(run_param, EDIT),
    "runs-outputs": on(run_and_models, EDIT),
    "runs-log-inputs": on(run_param, EDIT),
    "runs-search": on(experiment_ids, READ),
    "metrics-get-history": on(run_param, READ),
    "metrics-get-history-bulk-interval": on(run_ids_param, READ),
    "runs-log-model": on(run_param, EDIT),
    # Logged models
    "logged-models-create": on(experiment_param(), EDIT),
    "logged-models-search": on(experiment_ids, READ),
    "logged-model": on(model_kwarg, GET=READ, PATCH=EDIT, DELETE=MANAGE),
    "logged-model-params": on(model_kwarg, EDIT),
    "logged-model-tags": on(model_kwarg, EDIT),
    "logged-model-tag": on(model_kwarg, MANAGE),  # as MLflow's DeleteLoggedModelTag
    "logged-model-artifacts": on(model_kwarg, READ),
    # The model registry
    "registered-models-create": REGISTRY_WRITE,
    "registered-models-get": REGISTRY_READ,
    "registered-models-search": REGISTRY_READ,
    "registered-models-update": REGISTRY_WRITE,
    "registered-models-rename": REGISTRY_WRITE,
    "registered-models-delete": REGISTRY_WRITE,
    "registered-models-set-tag": REGISTRY_WRITE,
    "registered-models-delete-tag": REGISTRY_WRITE,
    "registered-models-alias": RegistryRule(),
    "registered-models-get-latest-versions": REGISTRY_READ,  # GET or a read-only POST
    "model-versions-create": Rule(
        levels={"*": READ},
        locate=registry_sources,
        role=REGISTRY_WRITE.role,
        role_what=REGISTRY_WRITE.role_what,
    ),
    "model-versions-get": REGISTRY_READ,
    "model-versions-search": REGISTRY_READ,
    "model-versions-update": REGISTRY_WRITE,
    "model-versions-delete": REGISTRY_WRITE,
    "model-versions-set-tag": REGISTRY_WRITE,
    "model-versions-delete-tag": REGISTRY_WRITE,
    "model-versions-get-download-uri": REGISTRY_READ,
    "model-versions-transition-stage": REGISTRY_WRITE,
    # Traces
    "traces-start": on(started_trace, EDIT),
    "traces-search": on(experiment_ids, READ),
    "traces-get": on(trace_param, READ),
    "traces-batch-get": on(experiment_ids, READ),  # and rows filtered in the view
    "traces-batch-get-infos": on(experiment_ids, READ),  # likewise
    "traces-delete-v3": on(experiment_param(), EDIT),
    "traces-delete": on(experiment_param(), EDIT),
    "trace-assessments": on(trace_kwarg, EDIT),
    "trace-assessment": on(trace_kwarg, EDIT, GET=READ),
    "trace-info": on(trace_kwarg, READ),
    "trace-tags": on(trace_kwarg, EDIT),
    "trace-tags-v3": on(trace_kwarg, EDIT),
    "traces-link-to-run": on(run_param, EDIT),  # and only readable traces are linked
    "traces-link-prompts": on(trace_param, EDIT),
    "traces-filter-correlation": on(experiment_ids, READ),
    "traces-metrics": on(experiment_ids, READ),
    "traces-v2": on(started_or_searched, GET=READ, POST=EDIT),
    "trace-end-v2": on(trace_kwarg, EDIT),
    "trace-info-v2": on(trace_kwarg, READ),
    # Evaluation datasets: those of the experiments they are linked to
    "datasets-create": on(new_dataset_experiments, EDIT),
    "datasets-search": on(experiment_ids, READ),  # and rows filtered in the view
    "dataset": on(dataset_kwarg, GET=READ, DELETE=MANAGE),
    "dataset-tags": on(dataset_kwarg, EDIT),
    "dataset-tag": on(dataset_kwarg, EDIT),
    "dataset-records": on(dataset_kwarg, EDIT, GET=READ),
    "dataset-experiment-ids": on(dataset_kwarg, READ),
    "dataset-add-experiments": on(dataset_and_added, EDIT),
    "dataset-remove-experiments": on(dataset_kwarg, EDIT),
    "experiments-search-datasets": on(experiment_ids, READ),
    # Registered scorers: those of their experiment (deleting one as MLflow's auth app: MANAGE)
    "scorers-register": on(experiment_param(), EDIT),
    "scorers-list": on(scorer_experiments, READ),  # and rows filtered in the view
    "scorers-versions": on(experiment_param(), READ),
    "scorers-get": on(experiment_param(), READ),
    "scorers-delete": on(experiment_param(), MANAGE),
    "scorers-online-config": on(experiment_param(), EDIT),
    "scorers-online-configs": on(scorers_by_id, READ),
    # Label schemas (an experiment's review questions: managed as MLflow's auth app, MANAGE)
    "label-schemas-create": on(experiment_param(), MANAGE),
    "label-schemas-get": on(label_schema_param, READ),
    "label-schemas-get-by-name": on(experiment_param(), READ),
    "label-schemas-list": on(experiment_param(), READ),
    "label-schemas-update": on(label_schema_param, MANAGE),
    "label-schemas-delete": on(label_schema_param, MANAGE),
    # Review queues: those of their experiment (reviewing, flagging traces for review: EDIT)
    "review-queues-create": on(experiment_param(), EDIT),
    "review-queues-get-or-create-user": on(experiment_param(), EDIT),
    "review-queues-get": on(review_queue_param, READ),
    "review-queues-get-by-name": on(experiment_param(), READ),
    "review-queues-list": on(experiment_param(), READ),
    "review-queues-update": on(review_queue_param, EDIT),
    "review-queues-delete": on(review_queue_param, MANAGE),
    "review-queues-items-add": on(review_queue_param, EDIT),
    "review-queues-items-remove": on(review_queue_param, EDIT),
    "review-queues-items-list": on(review_queue_param, READ),
    "review-queues-items-set-status": on(review_queue_param, EDIT),
    # Artifacts
    "artifacts-list": on(artifact_list_path, READ),  # the root lists readable ones only
    "run-artifacts-list": on(run_param, READ),
    "artifacts-presigned-upload-url": on(run_param, EDIT),  # always refused, after the rule
    "artifacts-presigned-download-url": on(run_param, READ),  # likewise
    "artifacts-multipart": on(artifact_kwarg, EDIT),  # likewise
    "artifacts-presigned": on(artifact_kwarg, READ),  # likewise
    "artifact": on(artifact_kwarg, GET=READ, PUT=EDIT, DELETE=MANAGE),
    # The server itself
    "server-info": ANYONE,
    "health": ANYONE,
}
