"""The tracking tables: experiments, runs, logged models, traces and spans.

Ids follow MLflow so that the mlflow client can use them verbatim: experiments are numeric
strings ("0" is Default), runs 32 hex characters, logged models `m-<32 hex>`, traces
`tr-<32 hex>`. Rows carry a bigint primary key of their own; the MLflow id is a unique column,
which keeps foreign keys and indexes on the span table narrow.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import models
from django.db.models import Count, F, Max, OuterRef, Q, Subquery, Window
from django.db.models.functions import RowNumber
from django.urls import reverse
from django.utils import timezone

DEFAULT_EXPERIMENT_ID = 0
# Counting every row of a large table is slow on PostgreSQL; past this, pages say "N+".
COUNT_CAP = 100_000
# Trace columns that lists never show unless asked; some (metadata, tags) are large JSON.
LIST_DEFERRED = ("metadata", "tags", "response_preview")


def new_run_id() -> str:
    return uuid.uuid4().hex


def new_model_id() -> str:
    return f"m-{uuid.uuid4().hex}"


class LifecycleStage(models.TextChoices):
    ACTIVE = "active"
    DELETED = "deleted"


class Experiment(models.Model):
    # The primary key is the MLflow experiment id; "0" (Default) is made by a migration.
    name = models.CharField(max_length=500, unique=True)
    artifact_location = models.CharField(max_length=1000, blank=True)
    lifecycle_stage = models.CharField(
        max_length=16, choices=LifecycleStage.choices, default=LifecycleStage.ACTIVE
    )
    tags = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def experiment_id(self) -> str:
        return str(self.pk)


class RunStatus(models.TextChoices):
    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"


class Run(models.Model):
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

    class Meta:
        ordering = ["-start_time"]
        indexes = [models.Index(fields=["experiment", "-start_time"])]

    def __str__(self) -> str:
        return self.name or self.run_id


class LoggedModelStatus(models.TextChoices):
    PENDING = "LOGGED_MODEL_PENDING"
    READY = "LOGGED_MODEL_READY"
    UPLOAD_FAILED = "LOGGED_MODEL_UPLOAD_FAILED"


@dataclass
class ModelGroup:
    """One model name of the list: how many versions it has, and the newest of them."""

    name: str
    version_count: int
    versions: list[LoggedModel] = field(default_factory=list)

    @property
    def hidden_versions(self) -> int:
        return self.version_count - len(self.versions)


class LoggedModelQuerySet(models.QuerySet["LoggedModel"]):
    def versions_of(self, name: str) -> LoggedModelQuerySet:
        return self.filter(name=name).order_by("-created_at", "-pk")

    def numbered(self) -> LoggedModelQuerySet:
        """Annotate `number`: 1 for the first version of a name, n for the nth (by time, then pk).

        A correlated count on the (name, created_at) index rather than a window, so that the
        number stays right when the outer query is filtered by a search.
        """
        earlier = (
            LoggedModel.objects.filter(name=OuterRef("name"))
            .filter(
                Q(created_at__lt=OuterRef("created_at"))
                | Q(created_at=OuterRef("created_at"), pk__lte=OuterRef("pk"))
            )
            .order_by()
            .values("name")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return self.annotate(number=Subquery(earlier))

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
        summaries = list(self.name_summaries()[: limit + 1])
        groups = {s["name"]: ModelGroup(s["name"], s["versions"]) for s in summaries[:limit]}
        # A window rank keeps the query bounded even for a name with thousands of versions.
        ranked = (
            self.filter(name__in=groups)
            .numbered()
            .select_related("source_run")
            .defer("model_config", "status_message", "source_run__params", "source_run__tags")
            .annotate(
                rank=Window(
                    RowNumber(),
                    partition_by=[F("name")],
                    order_by=[F("created_at").desc(), F("pk").desc()],
                )
            )
            .filter(rank__lte=per_name)
            .order_by("name", "-created_at", "-pk")
        )
        for version in ranked:
            groups[version.name].versions.append(version)
        return list(groups.values()), len(summaries) > limit

    def name_traces(self, traces: Sequence[Trace]) -> Sequence[Trace]:
        """Set `model_name` on each trace from its version among these, in one query for all
        of them. Pass the versions the caller may read: the others stay nameless."""
        ids = {t.model_id for t in traces if t.model_id}
        names = dict(self.filter(model_id__in=ids).values_list("model_id", "name") if ids else ())
        for trace in traces:
            trace.model_name = names.get(trace.model_id, "")
        return traces


class LoggedModel(models.Model):
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


class TraceState(models.TextChoices):
    OK = "OK"
    ERROR = "ERROR"
    IN_PROGRESS = "IN_PROGRESS"


class TraceQuerySet(models.QuerySet["Trace"]):
    def for_list(self, shown: Iterable[str] = ()) -> TraceQuerySet:
        """What a trace list row shows, newest first: LIST_DEFERRED columns only when named
        in `shown`, and never the heavy metadata of spans.

        No join: a row does not show its experiment, and on SQLite the join led the planner
        away from the (state, time) index to sorting every match of a filter.
        """
        shown = set(shown)
        deferred = [name for name in LIST_DEFERRED if name not in shown]
        return self.order_by("-request_time", "-pk").defer(*deferred)

    def capped_count(self, cap: int = COUNT_CAP) -> tuple[int, bool]:
        """Count at most `cap` rows; returns (count, True) when there are more."""
        count = self.order_by()[: cap + 1].count()
        return min(count, cap), count > cap

    def for_model(self, model_id: str) -> TraceQuerySet:
        return self.filter(model_id=model_id)


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
            # Model version statistics (count, errors, latency ranks, tokens per version)
            # answered from the index alone, without reading trace rows.
            models.Index(
                fields=["model_id", "state", "duration_ns", "total_tokens"],
                name="trace_model_stats_idx",
            ),
        ]
        # Not declared here because they differ per database, see migrations 0003 and 0004:
        # free text on the previews (SQLite: an FTS5 table kept in sync by triggers, which a
        # table rebuild on SQLite would drop; PostgreSQL: pg_trgm GIN indexes), the
        # (total_tokens, id) sort index and PostgreSQL's NULLS FIRST sort indexes.

    def __str__(self) -> str:
        return self.trace_id

    def get_absolute_url(self) -> str:
        return reverse("tracking:trace-detail", args=[self.trace_id])

    @property
    def duration_ms(self) -> float | None:
        return None if self.duration_ns is None else self.duration_ns / 1e6


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


# --- The model registry ----------------------------------------------------------------------


class ModelVersionStage(models.TextChoices):
    """MLflow's legacy stages; aliases replace them, but clients still send and read them."""

    NONE = "None"
    STAGING = "Staging"
    PRODUCTION = "Production"
    ARCHIVED = "Archived"


class RegisteredModelQuerySet(models.QuerySet["RegisteredModel"]):
    def named(self, name: str, *, for_update: bool = False) -> RegisteredModel | None:
        """The registered model called `name`; with `for_update`, locked until the caller's
        transaction ends, so that merges into its JSON columns and version numbering apply
        one request at a time."""
        models_ = self.select_for_update() if for_update else self
        return models_.filter(name=name).first()


class RegisteredModel(models.Model):
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
        """The number a new version gets. Call it with this row locked (`named(...,
        for_update=True)`): two creates would otherwise both read the same maximum."""
        highest = self.versions.aggregate(highest=models.Max("version"))["highest"]
        return (highest or 0) + 1

    def aliases_of(self, version: int) -> list[str]:
        return sorted(alias for alias, number in self.aliases.items() if number == version)


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


class ModelVersion(models.Model):
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
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.assessment_id})"

    @property
    def is_feedback(self) -> bool:
        return self.kind == AssessmentKind.FEEDBACK

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
