"""The tracking tables: experiments, runs, logged models, traces and spans.

Ids follow MLflow so that the mlflow client can use them verbatim: experiments are numeric
strings ("0" is Default), runs 32 hex characters, logged models `m-<32 hex>`, traces
`tr-<32 hex>`. Rows carry a bigint primary key of their own; the MLflow id is a unique column,
which keeps foreign keys and indexes on the span table narrow.
"""

from __future__ import annotations

import copy
import json
import math
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db import connection, models, transaction
from django.db.models import (
    BooleanField,
    Count,
    Exists,
    F,
    Func,
    IntegerField,
    Max,
    OuterRef,
    Q,
    Subquery,
    Window,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce, RowNumber
from django.urls import reverse
from django.utils import timezone

from tracking import evaluations, storage

# A run's inputs as rows, for the evaluation queries (tracking/evaluations.py).
from tracking.evaluations import RunDataset, RunModel

DEFAULT_EXPERIMENT_ID = 0
# Counting every row of a large table is slow on PostgreSQL; past this, pages say "N+".
COUNT_CAP = 100_000
# Trace columns that lists never show unless asked; some (metadata, tags) are large JSON.
LIST_DEFERRED = ("metadata", "tags", "response_preview")
# What a version's answer shows on the compare page.
ANSWER_FIELDS = (
    "trace_id", "model_id", "state", "request_time", "duration_ns",
    "request_preview", "response_preview",
)  # fmt: skip


def new_run_id() -> str:
    return uuid.uuid4().hex


def new_model_id() -> str:
    return f"m-{uuid.uuid4().hex}"


class LifecycleStage(models.TextChoices):
    ACTIVE = "active"
    DELETED = "deleted"


def _lock(row: models.Model) -> bool:
    """Re-read `row`, locked until the caller's transaction ends, so that a change merged into
    its JSON columns starts from what the last writer saved. False if the row is gone: a change
    to a row deleted meanwhile is one that came just before the delete, and writes nothing."""
    try:
        rows = type(row)._default_manager.select_for_update(of=("self",))
        row.refresh_from_db(from_queryset=rows)
    except ObjectDoesNotExist:
        return False
    return True


def _without(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k != key}


class TaggedRow:
    """`set_tags` / `delete_tag` for the tables with a `tags` JSON column (experiments, runs,
    logged models, registered models and their versions), merged under the row's lock.
    Traces are not among them: their tags have MLflow's limits and a column that copies one
    (`Trace.change_tags`)."""

    tags: dict[str, str]

    def _tag_fields(self) -> list[str]:
        # Runs have no updated_at: MLflow's run has no "last updated" time.
        names = {f.name for f in self._meta.concrete_fields}  # type: ignore[attr-defined]
        return ["tags", "updated_at"] if "updated_at" in names else ["tags"]

    def set_tags(self, tags: dict[str, str]) -> None:
        with transaction.atomic():
            if _lock(self):  # type: ignore[arg-type]
                self.tags = {**self.tags, **tags}
                self.save(update_fields=self._tag_fields())  # type: ignore[attr-defined]

    def delete_tag(self, key: str) -> bool:
        """Whether the row had the tag (a missing tag is an error in some of MLflow's APIs and
        not in the registry's: the caller decides)."""
        with transaction.atomic():
            if not _lock(self) or key not in self.tags:  # type: ignore[arg-type]
                return False
            self.tags = _without(self.tags, key)
            self.save(update_fields=self._tag_fields())  # type: ignore[attr-defined]
        return True


class ExperimentQuerySet(models.QuerySet["Experiment"]):
    def create_named(
        self, name: str, *, artifact_location: str = "", tags: dict[str, str] | None = None
    ) -> Experiment:
        """A new experiment; IntegrityError if the name was taken meanwhile (the caller
        checked it first), raised from a savepoint so that the caller's transaction goes on."""
        with transaction.atomic():
            return self.create(name=name, artifact_location=artifact_location, tags=tags or {})


class Experiment(TaggedRow, models.Model):
    # The primary key is the MLflow experiment id; "0" (Default) is made by a migration.
    name = models.CharField(max_length=500, unique=True)
    artifact_location = models.CharField(max_length=1000, blank=True)
    lifecycle_stage = models.CharField(
        max_length=16, choices=LifecycleStage.choices, default=LifecycleStage.ACTIVE
    )
    tags = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ExperimentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def experiment_id(self) -> str:
        return str(self.pk)

    def rename(self, name: str) -> None:
        """IntegrityError if another experiment has the name (the unique column decides)."""
        self.name = name
        with transaction.atomic():
            self.save(update_fields=["name", "updated_at"])

    def soft_delete(self) -> None:
        self._set_stage(LifecycleStage.DELETED)

    def restore(self) -> None:
        self._set_stage(LifecycleStage.ACTIVE)

    def _set_stage(self, stage: str) -> None:
        self.lifecycle_stage = stage
        self.save(update_fields=["lifecycle_stage", "updated_at"])


class RunStatus(models.TextChoices):
    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"


class ParamChanged(ValueError):
    """A run param logged again with another value: MLflow params are written once."""

    def __init__(self, run: Run, key: str, value: str) -> None:
        super().__init__(
            f"Changing param values is not allowed. Param with key='{key}' was already "
            f"logged with value='{run.params[key]}' for run ID='{run.run_id}'. "
            f"Attempted logging new value '{value}'."
        )


class RunQuerySet(models.QuerySet["Run"]):
    def start(
        self,
        experiment: Experiment,
        *,
        name: str,
        user_id: str,
        start_time: datetime,
        tags: dict[str, str],
    ) -> Run:
        """A new run, named both in its column and in its `mlflow.runName` tag."""
        return self.create(
            experiment=experiment,
            name=name,
            user_id=user_id,
            start_time=start_time,
            tags={**tags, Run.NAME_TAG: name},
        )

    def evaluations(self) -> RunQuerySet:
        """The active evaluation runs here (`mlflow.genai.evaluate` tags its run
        `mlflow.runType=genai_evaluate`), newest first, each with its dataset
        (`dataset_name`, `dataset_digest`, `evaluation_dataset_id`: the managed dataset's id,
        None if Spyglass does not hold it), its model version (`model_id`, `model_name`),
        `row_count` (its traces) and `latest_metrics` (the scores, see `Run.scores`): two
        queries for a page of any length. Narrow it with `.filter(experiment=...)`,
        `of_model()` and `on_dataset()`."""
        dataset = RunDataset.objects.filter(run=OuterRef("pk")).order_by("pk")
        model = RunModel.objects.filter(run=OuterRef("pk")).order_by("pk")
        links = Run.linked_traces.through.objects.filter(run=OuterRef("pk")).order_by()
        return (
            self.filter(
                **{f"tags__{evaluations.RUN_TYPE_TAG}": evaluations.GENAI_EVALUATE},
                lifecycle_stage=LifecycleStage.ACTIVE,
            )
            .annotate(
                dataset_name=Subquery(dataset.values("name")[:1]),
                dataset_digest=Subquery(dataset.values("digest")[:1]),
                evaluation_dataset_id=Subquery(dataset.values("dataset__dataset_id")[:1]),
                model_id=Subquery(model.values("model_id")[:1]),
                model_name=Subquery(model.values("logged_model__name")[:1]),
                row_count=Coalesce(
                    Subquery(links.values("run").annotate(n=Count("pk")).values("n")), 0
                ),
            )
            .prefetch_related(
                models.Prefetch(
                    "metric_set",
                    queryset=Metric.objects.latest("run_id", "key").order_by("key"),
                    to_attr="latest_metrics",
                )
            )
            .order_by("-start_time", "-pk")
        )

    def of_model(self, model_id: str) -> RunQuerySet:
        """The runs that used this model version (LogInputs' model inputs)."""
        return self.filter(Exists(RunModel.objects.filter(run=OuterRef("pk"), model_id=model_id)))

    def on_dataset(self, dataset: EvaluationDataset) -> RunQuerySet:
        """The runs that read this evaluation dataset, whatever its digest was then."""
        return self.filter(Exists(RunDataset.objects.filter(run=OuterRef("pk"), dataset=dataset)))


class Run(TaggedRow, models.Model):
    NAME_TAG = "mlflow.runName"

    run_id = models.CharField(max_length=32, unique=True, default=new_run_id)
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="runs")
    name = models.CharField(max_length=500, blank=True)
    user_id = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    start_time = models.DateTimeField(default=timezone.now)
    end_time = models.DateTimeField(null=True, blank=True)
    lifecycle_stage = models.CharField(
        max_length=16, choices=LifecycleStage.choices, default=LifecycleStage.ACTIVE
    )
    # MLflow params are write-once strings and tags are string->string: a JSON object each
    # is enough, and both backends can filter on a key (params__alpha="0.5").
    params = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    # MLflow's run inputs (LogInputs): {"dataset_inputs": [...], "model_inputs": [...]}.
    inputs = models.JSONField(default=dict, blank=True)
    # Traces linked to the run after they were made (LinkTracesToRun, which
    # `mlflow.genai.evaluate` calls): MLflow's trace->run entity associations. A trace may be
    # linked to many runs; its `mlflow.sourceRun` metadata names at most one.
    linked_traces = models.ManyToManyField("Trace", related_name="linked_runs", blank=True)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-start_time"]
        indexes = [models.Index(fields=["experiment", "-start_time"])]

    def __str__(self) -> str:
        return self.name or self.run_id

    def update_info(
        self, *, status: str = "", end_time: datetime | None = None, name: str = ""
    ) -> None:
        """MLflow's UpdateRun: what is given changes (a status, an end, a new name)."""
        with transaction.atomic():
            if not _lock(self):
                return
            if status:
                self.status = status
            if end_time is not None:
                self.end_time = end_time
            if name:
                self.name = name
                self.tags = {**self.tags, self.NAME_TAG: name}
            self.save(update_fields=["status", "end_time", "name", "tags"])

    def soft_delete(self) -> None:
        self._set_stage(LifecycleStage.DELETED)

    def restore(self) -> None:
        self._set_stage(LifecycleStage.ACTIVE)

    def _set_stage(self, stage: str) -> None:
        Run.objects.filter(pk=self.pk).update(lifecycle_stage=stage)

    def log_batch(
        self,
        metrics: Iterable[Metric] = (),
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        """Metric rows, params and tags in one transaction. ParamChanged (and nothing written)
        if a param was logged before with another value; `mlflow.runName` renames the run."""
        params, tags = params or {}, tags or {}
        with transaction.atomic():
            if not _lock(self):
                return
            fields = []
            if params:
                for key, value in params.items():
                    if key in self.params and self.params[key] != value:
                        raise ParamChanged(self, key, value)
                self.params = {**self.params, **params}
                fields.append("params")
            if tags:
                self.tags = {**self.tags, **tags}
                if tags.get(self.NAME_TAG):
                    self.name = tags[self.NAME_TAG][:500]
                fields += ["tags", "name"]
            if fields:
                self.save(update_fields=fields)
            Metric.objects.bulk_create(metrics)

    def log_inputs(self, datasets: list[dict[str, Any]], model_ids: list[str]) -> None:
        """Datasets ({"dataset": {name, digest, ...}, ...}) and models the run used; one
        already logged (same dataset name and digest, same model id) is not added again."""
        with transaction.atomic():
            if not _lock(self):
                return
            inputs = dict(self.inputs or {})
            known = {_dataset_key(d) for d in inputs.get("dataset_inputs", [])}
            new_datasets = [d for d in datasets if _dataset_key(d) not in known]
            known_models = {m.get("model_id") for m in inputs.get("model_inputs", [])}
            new_models = [
                {"model_id": m} for m in dict.fromkeys(model_ids) if m not in known_models
            ]
            if new_datasets or new_models:
                inputs["dataset_inputs"] = [*inputs.get("dataset_inputs", []), *new_datasets]
                inputs["model_inputs"] = [*inputs.get("model_inputs", []), *new_models]
                self.inputs = {k: v for k, v in inputs.items() if v}
                self.save(update_fields=["inputs"])
                evaluations.record_inputs(self, new_datasets, [m["model_id"] for m in new_models])

    @property
    def scores(self) -> dict[str, dict[str, float]]:
        """{scorer: {aggregation: value}} from the run's latest metrics (`exact/mean`); from
        what `RunQuerySet.evaluations()` prefetched, else one query."""
        latest = getattr(self, "latest_metrics", None)
        if latest is None:
            latest = Metric.objects.filter(run=self).latest_per_key()
        return evaluations.scores_of(latest)

    def evaluation_rows(self) -> list[evaluations.EvaluationRow]:
        """This evaluation's rows (trace, root inputs and outputs, its assessments), oldest
        first, in three queries however many rows; `evaluations.evaluation_rows` reads
        several runs' rows at once."""
        return evaluations.evaluation_rows([self])[self.pk]


def _dataset_key(item: dict[str, Any]) -> tuple[str, str]:
    dataset = item.get("dataset") or {}
    return str(dataset.get("name", "")), str(dataset.get("digest", ""))


class LoggedModelStatus(models.TextChoices):
    PENDING = "LOGGED_MODEL_PENDING"
    READY = "LOGGED_MODEL_READY"
    UPLOAD_FAILED = "LOGGED_MODEL_UPLOAD_FAILED"


@dataclass
class ModelGroup:
    """One group of the model list (a name, an experiment or a registered model): how many
    versions it has, and the newest of them."""

    name: str
    version_count: int
    versions: list[LoggedModel] = field(default_factory=list)
    # What selects this group alone (`?group=`): the name, the experiment id, the registered name.
    key: str = ""
    # A registered model's {alias: version number}.
    aliases: dict[str, int] = field(default_factory=dict)

    @property
    def hidden_versions(self) -> int:
        return self.version_count - len(self.versions)


def _group_summaries(
    rows: models.QuerySet, group_by: str, label: str, url_key: str, limit: int
) -> tuple[dict[Any, ModelGroup], bool]:
    """The `limit` most recently active groups of `rows` (versions, or registry versions)
    by `group_by`, each an empty ModelGroup with its version count, in one query; and whether
    more groups exist. `url_key` (`group_by` or `label`) is what `?group=` selects it by.
    The model list's three groupings differ only in these names."""
    summaries = list(
        rows.order_by()
        .values(group_by, label)
        .annotate(versions=Count("pk"), latest_created_at=Max("created_at"))
        .order_by("-latest_created_at", label)[: limit + 1]
    )
    groups = {
        s[group_by]: ModelGroup(s[label], s["versions"], key=str(s[url_key]))
        for s in summaries[:limit]
    }
    return groups, len(summaries) > limit


class ModelGrouping(models.TextChoices):
    """How the model list groups versions into histories."""

    REGISTERED = "registered", "Registered model"
    EXPERIMENT = "experiment", "Experiment"
    NAME = "name", "Logged-model name"


@dataclass(frozen=True)
class VersionShape:
    """How a set of versions is named, which decides the model list's default grouping."""

    versions: int
    names: int
    registered: int

    @property
    def grouping(self) -> str:
        """Registered model when every version is registered (the registry names the history,
        whatever the logged models are called); experiment when no name has a second version
        (a commit or date in each name: the app's experiment is the history); else the name."""
        if self.versions and self.registered == self.versions:
            return ModelGrouping.REGISTERED
        if self.versions > 1 and self.names == self.versions:
            return ModelGrouping.EXPERIMENT
        return ModelGrouping.NAME


@dataclass
class VersionHistory:
    """The versions a version page lists as its history, grouped as the model list groups
    them (`/models/?by=<by>&group=<key>`); each version carries `history_number`."""

    by: str
    key: str
    title: str
    versions: list[LoggedModel]


class LoggedModelQuerySet(models.QuerySet["LoggedModel"]):
    def versions_of(self, name: str) -> LoggedModelQuerySet:
        return self.filter(name=name).order_by("-created_at", "-pk")

    def history_of(
        self, model: LoggedModel, registration: ModelVersion | None, limit: int
    ) -> VersionHistory:
        """The newest `limit` versions of `model`'s app among these: its registered model's
        versions (numbered by the registry) when it is registered, else those of its name,
        else (a name per version: `agent-<commit>`) those of its experiment. One to two
        queries."""
        if registration is not None:
            registered = registration.registered_model
            # One query: a logged model registered twice under the name shows its newest number.
            numbers = registered.versions.filter(model_id=OuterRef("model_id"))
            newest = numbers.order_by("-version").values("version")[:1]
            versions = list(
                self.filter(model_id__in=registered.versions.values("model_id"))
                .annotate(history_number=Subquery(newest))
                .order_by("-history_number")[:limit]
            )
            return VersionHistory(
                ModelGrouping.REGISTERED, registered.name, registered.name, versions
            )
        versions = list(self.versions_of(model.name).numbered(as_name="history_number")[:limit])
        if len(versions) > 1:
            return VersionHistory(ModelGrouping.NAME, model.name, model.name, versions)
        by_experiment = self.filter(experiment_id=model.experiment_id).order_by(
            "-created_at", "-pk"
        )
        versions = list(by_experiment.numbered("experiment", as_name="history_number")[:limit])
        return VersionHistory(
            ModelGrouping.EXPERIMENT, str(model.experiment_id), model.experiment.name, versions
        )

    def initialize(
        self,
        experiment: Experiment,
        *,
        model_id: str,
        name: str,
        model_type: str,
        source_run: Run | None,
        params: dict[str, str],
        tags: dict[str, str],
        artifact_location: str,
    ) -> LoggedModel:
        """A new model, PENDING until its client finalizes it (MLflow's create_logged_model)."""
        return self.create(
            experiment=experiment,
            model_id=model_id,
            name=name,
            model_type=model_type,
            source_run=source_run,
            params=params,
            tags=tags,
            artifact_location=artifact_location,
        )

    def link_source_run(self, run: Run) -> None:
        """Make `run` the source run of these models, of those that have none yet."""
        self.filter(source_run__isnull=True).update(source_run=run, updated_at=timezone.now())

    def set_model_config(self, config: dict[str, Any]) -> None:
        """Keep the `python_function` config of an uploaded MLmodel, which the model pages show
        and compare (the last upload wins, as the file it comes from is replaced)."""
        self.update(model_config=config)

    def numbered(self, within: str = "name", as_name: str = "number") -> LoggedModelQuerySet:
        """Annotate `number`: 1 for the first version of a name, n for the nth (by time, then pk);
        `within="experiment"` numbers the versions of an experiment instead.

        A correlated count on the (name, created_at) index rather than a window, so that the
        number stays right when the outer query is filtered by a search.
        """
        earlier = (
            LoggedModel.objects.filter(**{within: OuterRef(within)})
            .filter(
                Q(created_at__lt=OuterRef("created_at"))
                | Q(created_at=OuterRef("created_at"), pk__lte=OuterRef("pk"))
            )
            .order_by()
            .values(within)
            .annotate(n=Count("pk"))
            .values("n")
        )
        return self.annotate(**{as_name: Subquery(earlier)})

    def name_summaries(self) -> models.QuerySet:
        """One row per model name among these versions: version count, newest version and
        when it was logged; the most recently active names first."""
        newest = self.filter(name=OuterRef("name")).order_by("-created_at", "-pk")
        return (
            self.order_by()
            .values("name")
            .annotate(
                versions=Count("pk"),
                latest_created_at=Max("created_at"),
                newest_model_id=Subquery(newest.values("model_id")[:1]),
            )
            .order_by("-latest_created_at", "name")
        )

    def grouped(self, limit: int, per_name: int) -> tuple[list[ModelGroup], bool]:
        """The `limit` most recently active names among these versions, each with its
        `per_name` newest versions (numbered), in two queries.

        Returns (groups, more) where `more` says names beyond `limit` exist.
        """
        groups, more = _group_summaries(self, "name", "name", "name", limit)
        for version in self._newest_per("name", groups, per_name):
            groups[version.name].versions.append(version)
        return list(groups.values()), more

    def shape(self) -> VersionShape:
        """How many versions, distinct names and registered versions these are, in one query."""
        registered = ModelVersion.objects.filter(model_id=OuterRef("model_id"))
        counts = self.order_by().aggregate(
            versions=Count("pk"),
            names=Count("name", distinct=True),
            registered=Count("pk", filter=Q(Exists(registered))),
        )
        return VersionShape(**counts)

    def _listed(self) -> LoggedModelQuerySet:
        """Versions as the model list shows them: numbered, with their source run, without
        the big fields no row shows."""
        return (
            self.numbered()
            .select_related("source_run")
            .defer("model_config", "status_message", "source_run__params", "source_run__tags")
        )

    def _newest_per(self, partition: str, keys: Iterable[Any], per_group: int) -> Any:
        """The `per_group` newest versions (numbered) of each `partition` value in `keys`."""
        # A window rank keeps the query bounded even for a group with thousands of versions.
        return (
            self.filter(**{f"{partition}__in": list(keys)})
            ._listed()
            .annotate(
                rank=Window(
                    RowNumber(),
                    partition_by=[F(partition)],
                    order_by=[F("created_at").desc(), F("pk").desc()],
                )
            )
            .filter(rank__lte=per_group)
            .order_by(partition, "-created_at", "-pk")
        )

    def grouped_by_experiment(self, limit: int, per_group: int) -> tuple[list[ModelGroup], bool]:
        """Like `grouped`, by experiment: an app's versions as one history, whatever each
        version is called (`agent-<commit>`), in two queries. Each version carries its
        `experiment_number`, its place in the app's history."""
        groups, more = _group_summaries(
            self, "experiment_id", "experiment__name", "experiment_id", limit
        )
        newest = self._newest_per("experiment_id", groups, per_group)
        for version in newest.numbered("experiment", as_name="experiment_number"):
            groups[version.experiment_id].versions.append(version)
        return list(groups.values()), more

    def grouped_by_registered_model(
        self, limit: int, per_group: int
    ) -> tuple[list[ModelGroup], bool]:
        """Like `grouped`, by the registered models these versions are registered as, newest
        registry version first, in three queries. Each version carries `registry_version`, and
        each group its registered model's aliases; a version registered twice is in two groups."""
        registry = ModelVersion.objects.filter(model_id__in=self.values("model_id")).exclude(
            model_id=""
        )
        groups, more = _group_summaries(
            registry, "registered_model_id", "registered_model__name", "registered_model__name",
            limit,
        )  # fmt: skip
        ranked = list(
            registry.filter(registered_model_id__in=list(groups))
            .select_related("registered_model")
            .annotate(
                rank=Window(
                    RowNumber(),
                    partition_by=[F("registered_model_id")],
                    order_by=[F("version").desc()],
                )
            )
            .filter(rank__lte=per_group)
            .order_by("registered_model_id", "-version")
        )
        logged = {
            m.model_id: m for m in self.filter(model_id__in={r.model_id for r in ranked})._listed()
        }
        for row in ranked:
            group = groups[row.registered_model_id]
            group.aliases = row.registered_model.aliases
            # A copy per registration: the same logged model may be a version of two names.
            version = copy.copy(logged[row.model_id])
            version.registry_version = row.version
            group.versions.append(version)
        return list(groups.values()), more

    def name_traces(self, traces: Sequence[Trace]) -> Sequence[Trace]:
        """Set `model_name` on each trace from its version among these, in one query for all
        of them. Pass the versions the caller may read: the others stay nameless."""
        ids = {t.model_id for t in traces if t.model_id}
        names = dict(self.filter(model_id__in=ids).values_list("model_id", "name") if ids else ())
        for trace in traces:
            trace.model_name = names.get(trace.model_id, "")
        return traces


class LoggedModel(TaggedRow, models.Model):
    """One version of an agent: MLflow's LoggedModel. Versions share a name."""

    model_id = models.CharField(max_length=64, unique=True, default=new_model_id)
    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="logged_models"
    )
    name = models.CharField(max_length=500)
    source_run = models.ForeignKey(
        Run, on_delete=models.SET_NULL, null=True, blank=True, related_name="logged_models"
    )
    status = models.CharField(
        max_length=32, choices=LoggedModelStatus.choices, default=LoggedModelStatus.PENDING
    )
    status_message = models.TextField(blank=True)
    model_type = models.CharField(max_length=200, blank=True)
    params = models.JSONField(default=dict, blank=True)
    # Git commit, branch and repo arrive as `mlflow.source.git.*` tags, as in MLflow.
    tags = models.JSONField(default=dict, blank=True)
    # The `model_config` of a models-from-code agent (endpoint, instructions, temperature, ...).
    model_config = models.JSONField(default=dict, blank=True)
    artifact_location = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = LoggedModelQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["name", "-created_at"]),
            models.Index(fields=["experiment", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.model_id})"

    @property
    def git_commit(self) -> str:
        return self.tags.get("mlflow.source.git.commit", "")

    @property
    def git_branch(self) -> str:
        return self.tags.get("mlflow.source.git.branch", "")

    @property
    def git_repo_url(self) -> str:
        return self.tags.get("mlflow.source.git.repoURL", "")

    # The registry versions made from this model, as MLflow lists them: JSON [{name, version}].
    MODEL_VERSIONS_TAG = "mlflow.modelVersions"
    # Where MLflow keeps a logged model's description (its UI edits this tag), markdown.
    DESCRIPTION_TAG = "mlflow.note.content"
    DESCRIPTION_MAX_CHARS = 8000  # MLflow's limit for a tag value

    @property
    def description(self) -> str:
        return str(self.tags.get(self.DESCRIPTION_TAG) or "")

    def set_description(self, text: str) -> None:
        """Write the description where MLflow reads it; a blank one removes the tag."""
        if text.strip():
            self.set_tags({self.DESCRIPTION_TAG: text})
        else:
            self.delete_tag(self.DESCRIPTION_TAG)

    def finalize(self, status: str) -> None:
        with transaction.atomic():
            if _lock(self):
                self.status = status
                self.save(update_fields=["status", "updated_at"])

    def log_params(self, params: dict[str, str]) -> None:
        with transaction.atomic():
            if _lock(self):
                self.params = {**self.params, **params}
                self.save(update_fields=["params", "updated_at"])

    def record_version(self, name: str, version: int) -> None:
        """Add {name, version} to the `mlflow.modelVersions` tag, once."""
        with transaction.atomic():
            if not _lock(self):
                return
            try:
                recorded = json.loads(self.tags.get(self.MODEL_VERSIONS_TAG) or "[]")
            except ValueError:
                recorded = []
            if not isinstance(recorded, list):
                recorded = []
            entry = {"name": name, "version": version}
            if entry not in recorded:
                self.tags = {**self.tags, self.MODEL_VERSIONS_TAG: json.dumps([*recorded, entry])}
                self.save(update_fields=["tags", "updated_at"])


class NaNFloatField(models.FloatField):
    """A float column that keeps NaN as NULL.

    MLflow clients log NaN metrics (a diverged loss) and expect them back; SQLite cannot store
    NaN (it reads back as NULL), so both databases store NULL and Python sees NaN again.
    Aggregates and comparisons in SQL skip it, as NaN compares false anyway.
    """

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        return None if isinstance(value, float) and math.isnan(value) else value

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> float:
        return math.nan if value is None else value


class MetricQuerySet(models.QuerySet["Metric"]):
    def latest(self, *partition: str) -> MetricQuerySet:
        """The last logged value (highest step, then newest) of each group of `partition`
        columns in this queryset, in one query however many steps were logged."""
        return self.annotate(
            key_rank=Window(
                RowNumber(),
                partition_by=[F(name) for name in partition],
                order_by=[F("step").desc(), F("timestamp_ms").desc(), F("pk").desc()],
            )
        ).filter(key_rank=1)

    def latest_per_key(self) -> MetricQuerySet:
        """The last logged value of each key in this queryset.

        Filter to one owner (a run or a logged model) first: keys are ranked across the
        whole queryset. One row per key.
        """
        return self.latest("key").order_by("key")

    def latest_of_models(
        self, model_pks: Iterable[int]
    ) -> dict[int, dict[tuple[str, str], Metric]]:
        """The last value of each (key, dataset) per logged model, in one query:
        {model pk: {(key, dataset_name): metric}}."""
        pks = set(model_pks)
        if not pks:
            return {}
        rows = (
            self.filter(logged_model__in=pks)
            .latest("logged_model", "key", "dataset_name")
            .order_by("key", "dataset_name")
        )
        latest: dict[int, dict[tuple[str, str], Metric]] = defaultdict(dict)
        for metric in rows:
            latest[metric.logged_model_id][(metric.key, metric.dataset_name)] = metric
        return latest


class Metric(models.Model):
    """One logged metric value; MLflow keeps every step, so this is a row per value.

    Metrics belong to a run, to a logged model (`log_metric(..., model_id=...)`), or both.
    """

    # Both foreign keys are served by the composite indexes below.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, null=True, blank=True, db_index=False)
    logged_model = models.ForeignKey(
        LoggedModel,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="metrics",
        db_index=False,
    )
    key = models.CharField(max_length=250)
    value = NaNFloatField(null=True)
    timestamp_ms = models.BigIntegerField()
    step = models.BigIntegerField(default=0)
    dataset_name = models.CharField(max_length=500, blank=True)
    dataset_digest = models.CharField(max_length=64, blank=True)

    objects = MetricQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["run", "key", "step"]),
            models.Index(fields=["logged_model", "key", "step"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(run__isnull=False) | models.Q(logged_model__isnull=False),
                name="metric_has_owner",
            )
        ]

    def __str__(self) -> str:
        return f"{self.key}={self.value}@{self.step}"


# Set by a client that stopped the trace on purpose (the playground's cancel); not an error.
CANCELLED_TAG = "spyglass.cancelled"


class TraceState(models.TextChoices):
    OK = "OK"
    ERROR = "ERROR"
    IN_PROGRESS = "IN_PROGRESS"


# What pages and the list's query language call a trace stopped on purpose. Not a TraceState:
# the column keeps OK, the state MLflow clients know, and the tag says why it stopped.
CANCELLED_STATE = "CANCELLED"
SHOWN_STATES = (*TraceState.values, CANCELLED_STATE)


class IsCancelled(Func):
    """Whether a trace is cancelled: state OK and `spyglass.cancelled=true` (never NULL, so
    that its negation keeps every other trace). The condition of the partial index
    trace_cancelled_time_idx, which serves `state = CANCELLED` on both databases.

    All literals, no parameters: SQLite uses a partial index only when the query repeats its
    condition term for term, and it matches a parameter only once it is bound, after the plan
    was chosen; Django's KeyTextTransform also varies its SQLite form between processes.
    """

    conditional = True
    output_field = BooleanField()
    arity = 2  # state, tags

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, tuple]:
        state_sql, state_params = compiler.compile(self.source_expressions[0])
        tags_sql, tags_params = compiler.compile(self.source_expressions[1])
        if connection.vendor == "postgresql":
            tag = f"({tags_sql} ->> '{CANCELLED_TAG}')"
        else:
            tag = f"JSON_EXTRACT({tags_sql}, '$.\"{CANCELLED_TAG}\"')"
        sql = f"({state_sql} = '{TraceState.OK.value}' AND COALESCE({tag}, '') = 'true')"
        return sql, (*state_params, *tags_params)


def cancelled_condition() -> Q:
    """The traces stopped on purpose (a cancelled playground answer), from their index."""
    return Q(IsCancelled(F("state"), F("tags")))


# MLflow's own limits for a trace tag (`_validate_trace_tag`: 250 and 8,000 characters), so
# that a tag set here can be set on an MLflow server too, whichever interface sets it.
TRACE_TAG_KEY_MAX_CHARS = 250
TRACE_TAG_VALUE_MAX_CHARS = 8_000
TRACE_NAME_TAG = "mlflow.traceName"  # the tag that the `name` column copies
# Rows deleted per DELETE: SQLite caps the parameters of one statement.
TRACE_DELETE_CHUNK = 1000


class TraceTagTooLong(ValueError):
    def __init__(self) -> None:
        super().__init__(
            f"Trace tag keys are limited to {TRACE_TAG_KEY_MAX_CHARS} characters "
            f"and values to {TRACE_TAG_VALUE_MAX_CHARS:,}."
        )


def check_trace_tags(changes: Mapping[str, str | None]) -> None:
    """Raise TraceTagTooLong for a key or value past the limits (None deletes a tag)."""
    for key, value in changes.items():
        if len(key) > TRACE_TAG_KEY_MAX_CHARS or len(value or "") > TRACE_TAG_VALUE_MAX_CHARS:
            raise TraceTagTooLong


class TraceQuerySet(models.QuerySet["Trace"]):
    def for_list(self, shown: Iterable[str] = ()) -> TraceQuerySet:
        """What a trace list row shows, newest first: LIST_DEFERRED columns only when named
        in `shown`, and never the heavy metadata of spans.

        No join: a row does not show its experiment, and on SQLite the join led the planner
        away from the (state, time) index to sorting every match of a filter.
        """
        shown = set(shown)
        deferred = [name for name in LIST_DEFERRED if name not in shown]
        return self.order_by("-request_time", "-pk").defer(*deferred).with_cancelled()

    def with_cancelled(self) -> TraceQuerySet:
        """Annotate `is_cancelled` (read by `Trace.cancelled`) without reading `tags` into
        Python: an expression in the SELECT, computed only for the rows a page returns."""
        return self.annotate(is_cancelled=IsCancelled(F("state"), F("tags")))

    def capped_count(self, cap: int = COUNT_CAP) -> tuple[int, bool]:
        """Count at most `cap` rows; returns (count, True) when there are more."""
        count = self.order_by()[: cap + 1].count()
        return min(count, cap), count > cap

    def for_model(self, model_id: str) -> TraceQuerySet:
        return self.filter(model_id=model_id)

    def recent_of_models(self, model_ids: Iterable[str], per_model: int) -> TraceQuerySet:
        """The `per_model` newest of these traces of each model version, newest first, with
        what an answer shows (request and response previews, state, latency), in one query:
        a window rank keeps it bounded however many traces a version has."""
        # Ranked on the (model_id, request_time) index alone, then only the rows kept are
        # read whole: ranking rows with their previews read every trace of every version.
        newest = (
            self.filter(model_id__in=list(model_ids))
            .annotate(
                rank=Window(
                    RowNumber(),
                    partition_by=[F("model_id")],
                    order_by=[F("request_time").desc(), F("pk").desc()],
                )
            )
            .filter(rank__lte=per_model)
            .values("pk")
        )
        answers = self.filter(pk__in=newest).only(*ANSWER_FIELDS).with_cancelled()
        return answers.order_by("-request_time", "-pk")

    def for_tag_change(self) -> TraceQuerySet:
        """The rows locked until the transaction ends, so that two tag changes at once (API,
        another tab) cannot lose one: the second waits for the first. Inside an atomic block."""
        return self.select_for_update().only("pk", "trace_id", "experiment", "name", "tags")

    def change_tags(self, changes: Mapping[str, str | None]) -> int:
        """Set (a string) or delete (None) tags on every trace here, under one lock; tags not
        named are left alone. Returns how many traces there were."""
        check_trace_tags(changes)
        with transaction.atomic():
            traces = list(self.for_tag_change())
            for trace in traces:
                trace.change_tags(changes)
        return len(traces)

    def delete_with_documents(self) -> int:
        """Delete these traces, their spans and assessments, and (once the deletion commits)
        the `traces.json` uploaded for them. Returns how many traces were deleted."""
        rows = list(self.values_list("pk", "experiment_id", "trace_id", "session_id"))
        for start in range(0, len(rows), TRACE_DELETE_CHUNK):
            chunk = rows[start : start + TRACE_DELETE_CHUNK]
            Trace.objects.filter(pk__in=[pk for pk, _, _, _ in chunk]).delete()
            _delete_documents_on_commit([(e, trace) for _, e, trace, _ in chunk])
            TraceSession.objects.refresh((e, session) for _, e, _, session in chunk if session)
        return len(rows)

    def fail_unfinished(self, error: str) -> int:
        """End those of these traces still IN_PROGRESS whose writer is gone (a worker killed
        mid-answer): state ERROR, the root span failed with `error`, spans left open closed
        now. Conditional UPDATEs, so a trace that finished meanwhile is left alone. Answers
        how many."""
        open_traces = self.filter(state=TraceState.IN_PROGRESS)
        spans = Span.objects.filter(trace__in=open_traces)
        spans.filter(parent_span_id="").update(status=SpanStatus.ERROR, status_message=error)
        spans.filter(end_ns__isnull=True).update(end_ns=time.time_ns())
        # Their sessions count one more error each (read before the UPDATE empties the set).
        sessions = list(
            open_traces.filter(session_id__isnull=False).values_list("experiment_id", "session_id")
        )
        failed = open_traces.update(state=TraceState.ERROR, response_preview=error[:1000])
        TraceSession.objects.refresh(sessions)
        return failed


class Trace(models.Model):
    trace_id = models.CharField(max_length=64, unique=True)
    # db_index=False: trace_exp_time_idx starts with this column and serves its lookups.
    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="traces", db_index=False
    )
    # Root span name (MLflow's `mlflow.traceName` tag), copied out for lists and filters.
    name = models.CharField(max_length=500, blank=True)
    state = models.CharField(
        max_length=16, choices=TraceState.choices, default=TraceState.IN_PROGRESS
    )
    request_time = models.DateTimeField()
    duration_ns = models.BigIntegerField(null=True, blank=True)
    request_preview = models.TextField(blank=True)
    response_preview = models.TextField(blank=True)
    # MLflow trace metadata (string -> string); `mlflow.modelId` links a model version.
    metadata = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    # Copied out of metadata so that lists can filter, sort and group on plain indexed columns.
    model_id = models.CharField(max_length=64, blank=True)  # indexed by trace_model_time_idx
    total_tokens = models.BigIntegerField(null=True, blank=True)
    # The rest of `mlflow.trace.tokenUsage`, which trace metrics aggregate (tracking/rollups.py).
    input_tokens = models.BigIntegerField(null=True, blank=True)
    output_tokens = models.BigIntegerField(null=True, blank=True)
    cache_read_input_tokens = models.BigIntegerField(null=True, blank=True)
    cache_creation_input_tokens = models.BigIntegerField(null=True, blank=True)
    # `mlflow.trace.session`. Null, not "", when absent: a nullable column is added to SQLite
    # in place, where a default would rebuild the table and drop its search triggers.
    session_id = models.CharField(max_length=250, null=True, blank=True)  # noqa: DJ001
    # `mlflow.trace.user` (or OTel `user.id`, copied into that metadata at ingest); null as above.
    user_id = models.CharField(max_length=250, null=True, blank=True)  # noqa: DJ001
    # Dollars, the `total_cost` of `mlflow.trace.cost` (tracking/cost.py); null when no span's
    # model has a known price, which is not a cost of zero.
    cost = models.FloatField(null=True, blank=True)
    span_count = models.IntegerField(default=0)
    # True once a client sent the trace info itself (StartTraceV3); until then the columns
    # above are derived from spans, and derived values never overwrite sent ones.
    has_info = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TraceQuerySet.as_manager()

    class Meta:
        ordering = ["-request_time", "-pk"]
        indexes = [
            # Keyset pagination of the list, globally and per experiment / model / state.
            models.Index(fields=["-request_time", "-id"], name="trace_time_idx"),
            models.Index(fields=["experiment", "-request_time", "-id"], name="trace_exp_time_idx"),
            models.Index(fields=["model_id", "-request_time"], name="trace_model_time_idx"),
            models.Index(fields=["state", "-request_time"], name="trace_state_time_idx"),
            models.Index(fields=["name"], name="trace_name_idx"),
            models.Index(fields=["duration_ns"], name="trace_duration_idx"),
            # Model version statistics (count, errors, latency ranks, tokens and cost per
            # version) answered from the index alone, without reading trace rows.
            models.Index(
                fields=["model_id", "state", "duration_ns", "total_tokens", "cost"],
                name="trace_model_stats_idx",
            ),
            # `state = CANCELLED` on the list: a few rows among millions of OK ones, newest
            # first from this small index instead of walking every OK trace's tags.
            models.Index(
                fields=["-request_time", "-id"],
                condition=cancelled_condition(),
                name="trace_cancelled_time_idx",
            ),
            # A session's turns (its page, refreshing its TraceSession row) and the trace
            # list's `session = <id>` / `user = <id>`, newest first. Not led by experiment:
            # a session id is short-lived and rare, so the id alone narrows to a few rows.
            models.Index(fields=["session_id", "-request_time", "-id"], name="trace_session_idx"),
            models.Index(fields=["user_id", "-request_time", "-id"], name="trace_user_idx"),
        ]
        # Not declared here because they differ per database, see migrations 0003 and 0004:
        # free text on the previews (SQLite: an FTS5 table kept in sync by triggers, which a
        # table rebuild on SQLite would drop; PostgreSQL: pg_trgm GIN indexes), the
        # (total_tokens, id) and (cost, id) sort indexes and PostgreSQL's NULLS FIRST ones.

    def __str__(self) -> str:
        return self.trace_id

    def get_absolute_url(self) -> str:
        return reverse("tracking:trace-detail", args=[self.trace_id])

    @property
    def duration_ms(self) -> float | None:
        return None if self.duration_ns is None else self.duration_ns / 1e6

    @property
    def cancelled(self) -> bool:
        """Stopped on purpose (a cancelled playground answer): its state stays one MLflow
        knows, OK, and pages say "Cancelled" instead. List rows read the `is_cancelled`
        annotation (`with_cancelled()`); a whole row reads its tags."""
        if "is_cancelled" in self.__dict__:
            return bool(self.is_cancelled)
        return self.state == TraceState.OK and (self.tags or {}).get(CANCELLED_TAG) == "true"

    @property
    def shown_state(self) -> str:
        """The state as pages name it: CANCELLED for a cancelled trace, else the column."""
        return CANCELLED_STATE if self.cancelled else self.state

    def change_tags(self, changes: Mapping[str, str | None]) -> None:
        """Set (a string) or delete (None) tags, keeping `name` on `mlflow.traceName`. The
        caller holds the row locked (`Trace.objects.for_tag_change()`), as
        `TraceQuerySet.change_tags` does."""
        check_trace_tags(changes)
        tags = dict(self.tags or {})
        for key, value in changes.items():
            if value is None:
                tags.pop(key, None)
            else:
                tags[key] = value
        self.tags = tags
        if TRACE_NAME_TAG in changes:  # the list column follows the tag it copies
            self.name = tags.get(TRACE_NAME_TAG, "")[: self._meta.get_field("name").max_length]
        self.save(update_fields=["tags", "name", "updated_at"])

    def delete_with_documents(self) -> None:
        """Delete this trace, its spans and assessments, and (once the deletion commits) the
        `traces.json` uploaded for it."""
        session_id = self.session_id  # read first: a deferred field needs the row
        self.delete()
        _delete_documents_on_commit([(self.experiment_id, self.trace_id)])
        if session_id:
            TraceSession.objects.refresh([(self.experiment_id, session_id)])


def _delete_documents_on_commit(traces: list[tuple[int, str]]) -> None:
    # After the commit: a rolled-back delete keeps its trace, so it must keep its document.
    transaction.on_commit(lambda: storage.delete_traces_json(traces))


class TraceSessionQuerySet(models.QuerySet["TraceSession"]):
    def refresh(self, keys: Iterable[tuple[int, str]]) -> None:
        """Recompute the rows of these (experiment_id, session_id) sessions from their traces,
        deleting those left without any: three queries, whatever the count."""
        keys = {(e, s) for e, s in keys if s}
        if not keys:
            return
        _lock_sessions(keys)
        found = (
            Trace.objects.filter(
                session_id__in={s for _, s in keys}, experiment_id__in={e for e, _ in keys}
            )
            .order_by()
            .values("experiment_id", "session_id")
            .annotate(
                first_time=models.Min("request_time"),
                last_time=models.Max("request_time"),
                turns=models.Count("id"),
                duration_ns=models.Sum("duration_ns"),
                total_tokens=models.Sum("total_tokens"),
                cost=models.Sum("cost"),
                error_count=models.Count("id", filter=Q(state=TraceState.ERROR)),
                user=models.Max("user_id"),
            )
        )
        rows = []
        for row in found:
            key = (row.pop("experiment_id"), row.pop("session_id"))
            if key in keys:  # the IN lists cross experiments with ids of other sessions
                keys.discard(key)
                rows.append(
                    TraceSession(
                        experiment_id=key[0], session_id=key[1], user_id=row.pop("user"), **row
                    )
                )
        if rows:
            self.bulk_create(
                rows,
                update_conflicts=True,
                unique_fields=["experiment", "session_id"],
                update_fields=[*_SESSION_AGGREGATES, "user_id"],
            )
        if keys:  # no trace left in these
            gone = Q()
            for experiment_id, session_id in keys:
                gone |= Q(experiment_id=experiment_id, session_id=session_id)
            self.filter(gone).delete()


def _lock_sessions(keys: set[tuple[int, str]]) -> None:
    """PostgreSQL: one refresh of a session at a time, until the transaction ends. Without it
    two ingests of one session's turns each sum the traces their snapshot sees, and the last
    upsert would forget the other's turn. Taken in one order, so two callers cannot deadlock.
    SQLite needs none: its one writer holds the database through the whole ingest."""
    if connection.vendor != "postgresql":
        return
    names = sorted(f"{e}/{s}" for e, s in keys)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(h) FROM "
            "(SELECT hashtextextended(k, 17) AS h FROM unnest(%s::text[]) AS k ORDER BY h) AS s",
            [names],
        )


_SESSION_AGGREGATES = [
    "first_time",
    "last_time",
    "turns",
    "duration_ns",
    "total_tokens",
    "cost",
    "error_count",
]


class TraceSession(models.Model):
    """A conversation: the traces of one experiment sharing a `session_id`, summed up.

    A row per session kept in step with its traces at ingest and deletion
    (`TraceSession.objects.refresh`), because the sessions page orders and filters on these
    aggregates: computing them from a million traces for each page would read them all.
    """

    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="sessions", db_index=False
    )
    session_id = models.CharField(max_length=250)
    # The user of its traces (the greatest, if they differ), null when none said.
    user_id = models.CharField(max_length=250, null=True, blank=True)  # noqa: DJ001
    first_time = models.DateTimeField()
    last_time = models.DateTimeField()
    turns = models.IntegerField(default=0)
    duration_ns = models.BigIntegerField(null=True, blank=True)  # the turns' sum
    total_tokens = models.BigIntegerField(null=True, blank=True)
    cost = models.FloatField(null=True, blank=True)
    error_count = models.IntegerField(default=0)

    objects = TraceSessionQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "session_id"], name="trace_session_unique"
            )
        ]
        indexes = [
            # Keyset pages of /sessions/, most recently active first, globally and per
            # experiment and user.
            models.Index(fields=["-last_time", "-id"], name="session_last_idx"),
            models.Index(fields=["experiment", "-last_time", "-id"], name="session_exp_last_idx"),
            models.Index(fields=["user_id", "-last_time", "-id"], name="session_user_last_idx"),
        ]

    def __str__(self) -> str:
        return self.session_id


class SpanStatus(models.TextChoices):
    UNSET = "UNSET"
    OK = "OK"
    ERROR = "ERROR"


class Span(models.Model):
    # db_index=False: the unique (trace, span_id) constraint and span_trace_start_idx both
    # start with this column; a third index would only cost a write per span.
    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="spans", db_index=False)
    span_id = models.CharField(max_length=16)  # 8 bytes as hex, as OTel prints them
    parent_span_id = models.CharField(max_length=16, blank=True)
    name = models.CharField(max_length=500)
    span_type = models.CharField(max_length=32, default="UNKNOWN")
    start_ns = models.BigIntegerField()
    end_ns = models.BigIntegerField(null=True, blank=True)  # null while the span is open
    status = models.CharField(max_length=8, choices=SpanStatus.choices, default=SpanStatus.UNSET)
    status_message = models.TextField(blank=True)
    inputs = models.JSONField(null=True, blank=True)
    outputs = models.JSONField(null=True, blank=True)
    # Decoded attribute values, without the inputs/outputs/type that have columns of their own.
    attributes = models.JSONField(default=dict, blank=True)
    events = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trace", "span_id"], name="span_unique_per_trace"),
        ]
        indexes = [
            # Loading one trace's spans in start order (the waterfall).
            models.Index(fields=["trace", "start_ns"], name="span_trace_start_idx"),
            # `span.name = ...` / `span.type = ...` filters on the trace list.
            models.Index(fields=["name", "trace"], name="span_name_idx"),
            models.Index(fields=["span_type", "status", "trace"], name="span_type_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.span_id})"

    @property
    def duration_ns(self) -> int | None:
        return None if self.end_ns is None else self.end_ns - self.start_ns


class SpanLogEvents(models.Model):
    """The GenAI events sent as OTLP log records (`/v1/logs`) for one span, kept beside it:
    each time the span is stored (first, or again) they are merged into it again, so a span
    that comes after them, or twice, still shows them (tracking/genai_logs.py). Rows whose span
    never comes are dropped after a day; the others go with their trace."""

    # The stored trace's experiment when the events came after it, else the one they were
    # sent with: they only join a trace of that experiment.
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="+",
                                   db_index=False)  # fmt: skip
    trace_id = models.CharField(max_length=64)  # tr-<32 hex>, as Trace.trace_id
    span_id = models.CharField(max_length=16)
    events = models.JSONField(default=list)  # distinct, in the order they came
    # Which of the span's sides these events filled: a later join reads them again from all
    # the events (a message that came later included), the span's own sides never.
    filled_inputs = models.BooleanField(default=False)
    filled_outputs = models.BooleanField(default=False)
    # Digests of the events the last join put on the span: the next one takes them off first,
    # and merges every record again.
    added = models.JSONField(default=list)
    joined_trace = models.ForeignKey(Trace, on_delete=models.CASCADE, null=True, related_name="+")
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trace_id", "span_id", "experiment"],
                                    name="span_log_events_unique"),
        ]  # fmt: skip
        indexes = [
            # The expiry of rows whose span never came.
            models.Index(fields=["received_at"], name="span_log_events_unjoined_idx",
                         condition=models.Q(joined_trace__isnull=True)),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"{len(self.events)} events for {self.trace_id}/{self.span_id}"


# --- The model registry ----------------------------------------------------------------------


class ModelVersionStage(models.TextChoices):
    """MLflow's legacy stages; aliases replace them, but clients still send and read them."""

    NONE = "None"
    STAGING = "Staging"
    PRODUCTION = "Production"
    ARCHIVED = "Archived"


class RegisteredModelQuerySet(models.QuerySet["RegisteredModel"]):
    def named(self, name: str) -> RegisteredModel | None:
        return self.filter(name=name).first()

    def register(self, name: str, *, description: str, tags: dict[str, str]) -> RegisteredModel:
        """IntegrityError if the name is taken, also by a client registering it at once."""
        with transaction.atomic():
            return self.create(name=name, description=description, tags=tags)


class RegisteredModel(TaggedRow, models.Model):
    """A name in MLflow's model registry; its versions point at logged models or artifacts."""

    name = models.CharField(max_length=256, unique=True)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=dict, blank=True)
    # {alias: version number}: a few per model, always read with the model.
    aliases = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RegisteredModelQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def next_version_number(self) -> int:
        """The number a new version gets. Call it with this row locked (as `add_version`
        does): two creates would otherwise both read the same maximum."""
        highest = self.versions.aggregate(highest=models.Max("version"))["highest"]
        return (highest or 0) + 1

    def aliases_of(self, version: int) -> list[str]:
        return sorted(alias for alias, number in self.aliases.items() if number == version)

    # Every change below locks the row first: merges into its JSON columns and the numbering
    # of its versions apply one request at a time.

    def set_description(self, description: str) -> None:
        with transaction.atomic():
            if _lock(self):
                self.description = description
                self.save(update_fields=["description", "updated_at"])

    def rename(self, name: str) -> None:
        """IntegrityError if another registered model has the name."""
        with transaction.atomic():
            if _lock(self):
                self.name = name
                self.save(update_fields=["name", "updated_at"])

    def set_alias(self, alias: str, version: int) -> None:
        """Point `alias` at one of the model's versions; ModelVersion.DoesNotExist if it has
        no such version (checked under the lock that delete_version takes too)."""
        with transaction.atomic():
            if not _lock(self) or not self.versions.filter(version=version).exists():
                raise ModelVersion.DoesNotExist
            self.aliases = {**self.aliases, alias: version}
            self.save(update_fields=["aliases", "updated_at"])

    def delete_alias(self, alias: str) -> None:
        with transaction.atomic():
            if _lock(self) and alias in self.aliases:
                self.aliases = _without(self.aliases, alias)
                self.save(update_fields=["aliases", "updated_at"])

    def add_version(
        self,
        *,
        source: str,
        run_id: str,
        model_id: str,
        description: str,
        tags: dict[str, str],
        logged_model: LoggedModel | None,
    ) -> ModelVersion:
        """The next numbered version; recorded on `logged_model` too when it is made from
        one. RegisteredModel.DoesNotExist if this model was deleted meanwhile."""
        with transaction.atomic():
            if not _lock(self):
                raise RegisteredModel.DoesNotExist
            version = ModelVersion.objects.create(
                registered_model=self,
                version=self.next_version_number(),
                source=source,
                run_id=run_id,
                model_id=model_id,
                description=description,
                tags=tags,
            )
            self.save(update_fields=["updated_at"])
            if logged_model is not None:
                logged_model.record_version(self.name, version.version)
        return version

    def delete_version(self, version: int) -> None:
        """Aliases that pointed at the version go with it, as in MLflow."""
        with transaction.atomic():
            if not _lock(self):
                return
            self.versions.filter(version=version).delete()
            self.aliases = {a: v for a, v in self.aliases.items() if v != version}
            self.save(update_fields=["aliases", "updated_at"])


class ModelVersionQuerySet(models.QuerySet["ModelVersion"]):
    def of(self, name: str, version: int) -> ModelVersionQuerySet:
        return self.select_related("registered_model").filter(
            registered_model__name=name, version=version
        )

    def of_logged_model(self, model_id: str) -> ModelVersionQuerySet:
        """The registry versions that point at one logged model, with their names."""
        return self.of_logged_models([model_id])

    def of_logged_models(self, model_ids: Iterable[str]) -> ModelVersionQuerySet:
        """The registry versions that point at any of these logged models: one query for a
        page of them."""
        return (
            self.select_related("registered_model")
            .filter(model_id__in=list(model_ids))
            .order_by("registered_model__name", "version")
        )

    def referenced(self, *references: str) -> ModelVersionQuerySet:
        """The versions that point at logged models, of the registered models these references
        name as MLflow's `models:/` URIs do: `name` (every version), `name@alias`, `name/3`
        (the `models:/` prefix optional). A reference is also tried as a whole name, so that a
        registered name holding `@` or `/` still matches."""
        q = Q()
        for reference in references:
            whole = reference.removeprefix("models:/")
            q |= Q(registered_model__name=whole)
            name, at, alias = whole.rpartition("@")
            if at and name and alias:
                pointed = KeyTextTransform(alias, "registered_model__aliases")
                q |= Q(registered_model__name=name, version=Cast(pointed, IntegerField()))
            name, slash, number = whole.rpartition("/")
            if slash and name and number.isdigit() and len(number) < 10:
                q |= Q(registered_model__name=name, version=int(number))
        if not q:
            return self.none()
        return self.filter(q).exclude(model_id="")

    def latest_per_stage(self) -> ModelVersionQuerySet:
        """The highest version of each (registered model, stage) in this queryset: MLflow's
        `latest_versions`. One query for a whole page of registered models."""
        return (
            self.annotate(
                stage_rank=Window(
                    RowNumber(),
                    partition_by=[F("registered_model_id"), F("current_stage")],
                    order_by=[F("version").desc()],
                )
            )
            .filter(stage_rank=1)
            .order_by("registered_model_id", "version")
        )


class ModelVersion(TaggedRow, models.Model):
    """One numbered version of a registered model (MLflow's ModelVersion)."""

    registered_model = models.ForeignKey(
        RegisteredModel, on_delete=models.CASCADE, related_name="versions", db_index=False
    )
    version = models.PositiveIntegerField()
    # Where the model's files are: `models:/m-<id>` (a logged model), `models:/<name>/<n>`,
    # or an artifact URI; get-download-uri resolves it.
    source = models.CharField(max_length=1000, blank=True)
    run_id = models.CharField(max_length=64, blank=True)
    # The LoggedModel id (a string, not a foreign key: a version outlives a deleted model,
    # as in MLflow, and may name a model of another tracking server).
    model_id = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=32, default="READY")
    description = models.TextField(blank=True)
    tags = models.JSONField(default=dict, blank=True)
    current_stage = models.CharField(
        max_length=16, choices=ModelVersionStage.choices, default=ModelVersionStage.NONE
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ModelVersionQuerySet.as_manager()

    class Meta:
        ordering = ["registered_model", "-version"]
        constraints = [
            # Also the index of a model's versions (it starts with the foreign key).
            models.UniqueConstraint(
                fields=["registered_model", "version"], name="model_version_unique_per_model"
            ),
        ]
        indexes = [
            models.Index(fields=["model_id"], name="model_version_model_idx"),
            models.Index(fields=["run_id"], name="model_version_run_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.registered_model.name} v{self.version}"

    @property
    def aliases(self) -> list[str]:
        return self.registered_model.aliases_of(self.version)

    def set_description(self, description: str) -> None:
        with transaction.atomic():
            if _lock(self):
                self.description = description
                self.save(update_fields=["description", "updated_at"])

    def transition(self, stage: str, *, archive_existing: bool = False) -> None:
        """Move to a legacy stage; with `archive_existing`, the model's other versions in that
        stage move to Archived."""
        with transaction.atomic():
            if not _lock(self):
                return
            if archive_existing:
                self.registered_model.versions.filter(current_stage=stage).exclude(
                    pk=self.pk
                ).update(current_stage=ModelVersionStage.ARCHIVED, updated_at=timezone.now())
            self.current_stage = stage
            self.save(update_fields=["current_stage", "updated_at"])


# --- Trace assessments -----------------------------------------------------------------------


def new_assessment_id() -> str:
    return f"a-{uuid.uuid4().hex}"


class AssessmentKind(models.TextChoices):
    FEEDBACK = "feedback"
    EXPECTATION = "expectation"


class AssessmentSourceType(models.TextChoices):
    UNSPECIFIED = "SOURCE_TYPE_UNSPECIFIED"
    HUMAN = "HUMAN"
    LLM_JUDGE = "LLM_JUDGE"
    CODE = "CODE"


class AssessmentQuerySet(models.QuerySet["Assessment"]):
    def in_order(self) -> AssessmentQuerySet:
        """Oldest first, as MLflow lists a trace's assessments."""
        return self.order_by("created_at", "pk")

    def of_trace(self, trace: Trace) -> AssessmentQuerySet:
        return self.filter(trace=trace).in_order()

    def record(self, trace: Trace, **fields: Any) -> Assessment:
        """A new assessment; one that `overrides` another marks it not valid. With the trace
        locked, so that overrides on one trace apply one at a time. Trace.DoesNotExist if
        the trace was deleted meanwhile."""
        with transaction.atomic():
            Trace.objects.select_for_update().only("pk").get(pk=trace.pk)
            if fields.get("overrides"):
                self.filter(trace=trace, assessment_id=fields["overrides"]).update(valid=False)
            return self.create(trace=trace, **fields)


class Assessment(models.Model):
    """Feedback (a judgement: human, LLM judge or code) or an expectation (the ground truth)
    on a trace or one of its spans: MLflow 3's assessments.

    An override is a new feedback naming the one it replaces in `overrides`; the replaced one
    stays, marked not `valid`, as MLflow keeps it (say, to tune the judge that was overruled).
    """

    # db_index=False: assessment_trace_idx starts with this column.
    trace = models.ForeignKey(
        Trace, on_delete=models.CASCADE, related_name="assessments", db_index=False
    )
    assessment_id = models.CharField(max_length=64, unique=True, default=new_assessment_id)
    name = models.CharField(max_length=250)
    kind = models.CharField(max_length=16, choices=AssessmentKind.choices)
    # Any JSON; null for a feedback that failed (its `error` says why).
    value = models.JSONField(null=True, blank=True)
    # {"error_code", "error_message", "stack_trace"} of a feedback that could not be computed.
    error = models.JSONField(null=True, blank=True)
    rationale = models.TextField(blank=True)
    source_type = models.CharField(
        max_length=32, choices=AssessmentSourceType.choices, default=AssessmentSourceType.CODE
    )
    source_id = models.CharField(max_length=250, blank=True)
    span_id = models.CharField(max_length=16, blank=True)  # hex, as Span.span_id
    metadata = models.JSONField(default=dict, blank=True)
    overrides = models.CharField(max_length=64, blank=True)  # an assessment_id of this trace
    valid = models.BooleanField(default=True)
    # Not auto_now: the client sends both times and MLflow keeps them.
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = AssessmentQuerySet.as_manager()

    class Meta:
        indexes = [
            # A trace's assessments in the order they were made (trace info, the trace page).
            models.Index(fields=["trace", "created_at"], name="assessment_trace_idx"),
            # One name's assessments across traces: `feedback.<name>` queries and the trace
            # list's assessment columns (trace last: the subquery reads it from the index).
            models.Index(fields=["name", "kind", "trace"], name="assessment_name_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.assessment_id})"

    @property
    def is_feedback(self) -> bool:
        return self.kind == AssessmentKind.FEEDBACK

    def amend(self, changes: dict[str, Any], metadata: dict[str, str]) -> None:
        """Set the fields in `changes` and merge `metadata` into the assessment's; its kind
        (feedback or expectation) is not one of them (the caller refuses that)."""
        with transaction.atomic():
            if not _lock(self):
                return
            for name, value in changes.items():
                setattr(self, name, value)
            self.metadata = {**(self.metadata or {}), **metadata}
            self.updated_at = timezone.now()
            self.save()

    def retract(self) -> None:
        """Delete it; the assessment it overrode, if any, is valid again."""
        with transaction.atomic():
            if not _lock(self):
                return
            if self.overrides:
                Assessment.objects.filter(
                    trace_id=self.trace_id, assessment_id=self.overrides
                ).update(valid=True)
            self.delete()

    # How the trace page shows the value: a pass/fail badge for booleans, numbers and short
    # text as they are, JSON for anything else.
    SHORT_TEXT_CHARS = 200

    @property
    def display_kind(self) -> str:
        if isinstance(self.value, bool):
            return "boolean"
        if isinstance(self.value, int | float):
            return "number"
        if isinstance(self.value, str) and len(self.value) <= self.SHORT_TEXT_CHARS:
            return "text"
        return "json"


# Evaluation datasets: tables of their own, in a module of their own (its docstring says why).
from tracking.datasets import DatasetExperiment, DatasetRecord, EvaluationDataset  # noqa: E402, F401

# The overview's span, assessment and session rollups (tracking/overview_rollups.py).
from tracking.overview_rollups import (  # noqa: E402, F401
    ErrorRollup,
    QualityRollup,
    SessionRollup,
    ToolRollup,
)

# Label schemas and review queues: likewise (tracking/reviews.py).
from tracking.reviews import (  # noqa: E402, F401
    LabelSchema,
    ReviewerStatus,
    ReviewItem,
    ReviewQueue,
    ReviewQueueUser,
)

# Hourly trace rollups for trace metrics: likewise (tracking/rollups.py).
from tracking.rollups import RollupChange, TraceLatencyBin, TraceRollup  # noqa: E402, F401

# Registered scorers: likewise (tracking/scorers.py).
from tracking.scorers import OnlineConfig, Scorer, ScorerVersion  # noqa: E402, F401
