"""Evaluation datasets (MLflow 3's `mlflow.genai.datasets`): a dataset, its records, and the
experiments it is linked to, each in a table of its own.

Records are merged by their inputs, as MLflow's server does: a record whose inputs (as JSON
with sorted keys) hash like a stored one's updates that one, its expectations and tags merged
key by key and its outputs replaced; any other is inserted. The dataset's digest changes with
every merge (MLflow: the first 8 hex digits of sha256 of "name:last update time in ms"), and
its schema (the type of each inputs/outputs/expectations key seen) and profile (the record
count) follow the records.

Imported by tracking/models.py, so these are tracking's models. Not an `evaluation/` app:
the MLflow API routes and their permission table live in tracking, and an app of its own
would have tracking import it, against the one-way flow of DESIGN.md.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from django.db import models, transaction
from django.utils import timezone

# A record's outputs are stored wrapped, as MLflow's table does, so that any JSON value
# (null included) round-trips through a nullable JSON column.
WRAPPED_OUTPUT_KEY = "mlflow_wrapped"
MLFLOW_USER = "mlflow.user"
USER_MAX_CHARS = 255
SOURCE_ID_MAX_CHARS = 255
SOURCE_TYPES = ("UNSPECIFIED", "TRACE", "HUMAN", "DOCUMENT", "CODE")
_BULK = 500  # rows per IN (...) lookup and per bulk write: under every database's limits


def new_dataset_id() -> str:
    return f"d-{uuid.uuid4().hex}"


def new_record_id() -> str:
    return f"dr-{uuid.uuid4().hex}"


def now_ms() -> datetime:
    """Now, to the millisecond: the wire carries milliseconds, and the record page token
    compares a time sent back by the client with the stored one."""
    now = timezone.now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def from_ms(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


def input_hash(inputs: Any) -> str:
    # MLflow's own key, so records keep their identity if moved between the two servers.
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def digest_of(name: str, moment: datetime) -> str:
    return hashlib.sha256(f"{name}:{to_ms(moment)}".encode()).hexdigest()[:8]


def _field_type(value: Any) -> str:
    if value is None:
        return "null"
    for kind, name in ((bool, "boolean"), (int, "integer"), (float, "float"), (str, "string")):
        if isinstance(value, kind):
            return name
    return "array" if isinstance(value, list) else "object"


def merged_schema(schema: dict[str, Any] | None, records: Iterable[dict[str, Any]]) -> dict:
    """The schema after `records`: keys already typed keep their first type (MLflow's rule)."""
    result = schema or {"inputs": {}, "outputs": {}, "expectations": {}, "version": "1.0"}
    for record in records:
        for part in ("inputs", "expectations"):
            for key, value in (record.get(part) or {}).items():
                result[part].setdefault(key, _field_type(value))
        if (outputs := record.get("outputs")) is not None:
            if isinstance(outputs, dict):
                for key, value in outputs.items():
                    result["outputs"].setdefault(key, _field_type(value))
            elif not result["outputs"]:
                result["outputs"] = _field_type(outputs)
    return result


class EvaluationDatasetQuerySet(models.QuerySet["EvaluationDataset"]):
    def in_experiments(self, experiment_ids: Iterable[int]) -> EvaluationDatasetQuerySet:
        links = DatasetExperiment.objects.filter(experiment_id__in=list(experiment_ids))
        return self.filter(pk__in=links.values("dataset_id"))

    def for_list(self) -> EvaluationDatasetQuerySet:
        """Newest update first (dataset_updated_idx), each row's linked experiments (id and
        name) prefetched: two queries for a page of any length. Record counts come from the
        profile, which merges and deletes keep current."""
        links = DatasetExperiment.objects.select_related("experiment").only(
            "dataset_id", "experiment_id", "experiment__name"
        )
        return self.order_by("-updated_at", "-pk").prefetch_related(
            models.Prefetch("links", queryset=links.order_by("experiment_id"))
        )


class EvaluationDataset(models.Model):
    dataset_id = models.CharField(max_length=36, unique=True, default=new_dataset_id)
    name = models.CharField(max_length=500)
    digest = models.CharField(max_length=64)
    # JSON text as MLflow sends and answers them: {"inputs": {key: type}, ...}, {"num_records"}.
    schema = models.JSONField(null=True, blank=True)
    profile = models.JSONField(null=True, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    created_by = models.CharField(max_length=255, blank=True)
    last_updated_by = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=now_ms)
    updated_at = models.DateTimeField(default=now_ms)
    experiments = models.ManyToManyField(
        "tracking.Experiment", through="DatasetExperiment", related_name="datasets"
    )

    objects = EvaluationDatasetQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["-created_at"], name="dataset_created_idx"),
            # The datasets page: newest update first, keyset pages.
            models.Index(fields=["-updated_at", "-id"], name="dataset_updated_idx"),
        ]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def create(
        cls, name: str, tags: dict[str, str], experiment_ids: list[int]
    ) -> EvaluationDataset:
        moment = now_ms()
        user = _user(tags)
        with transaction.atomic():
            dataset = cls.objects.create(
                name=name,
                digest=digest_of(name, moment),
                tags=tags,
                created_by=user,
                last_updated_by=user,
                created_at=moment,
                updated_at=moment,
            )
            dataset.link(experiment_ids)
        return dataset

    def experiment_ids(self) -> list[str]:
        # From links a search prefetched for its whole page, else one query.
        return [str(pk) for pk in sorted(link.experiment_id for link in self.links.all())]

    def link(self, experiment_ids: Iterable[int]) -> None:
        known = set(self.links.values_list("experiment_id", flat=True))
        new = [pk for pk in dict.fromkeys(experiment_ids) if pk not in known]
        DatasetExperiment.objects.bulk_create(
            [DatasetExperiment(dataset=self, experiment_id=pk) for pk in new],
            ignore_conflicts=True,  # linked concurrently: the link is there all the same
        )

    def add_experiments(self, experiment_ids: list[int]) -> None:
        with transaction.atomic():
            self.link(experiment_ids)
            self.touch()

    def remove_experiments(self, experiment_ids: list[int]) -> None:
        with transaction.atomic():
            if self.links.filter(experiment_id__in=experiment_ids).delete()[0]:
                self.touch()

    def touch(self) -> None:
        self.updated_at = now_ms()
        self.save(update_fields=["updated_at"])

    def set_tags(self, tags: dict[str, str]) -> None:
        """Merged into the dataset's under its lock; as MLflow, not a change of its data."""
        with transaction.atomic():
            row = EvaluationDataset.objects.select_for_update().filter(pk=self.pk).first()
            if row is not None:
                self.tags = {**row.tags, **tags}
                self.save(update_fields=["tags"])

    def delete_tag(self, key: str) -> None:
        with transaction.atomic():
            row = EvaluationDataset.objects.select_for_update().filter(pk=self.pk).first()
            if row is not None and key in row.tags:
                self.tags = {k: v for k, v in row.tags.items() if k != key}
                self.save(update_fields=["tags"])

    def merge_records(self, records: list[dict[str, Any]]) -> tuple[int, int]:
        """Insert or merge validated record dicts; (inserted, updated) as MLflow counts them:
        a record whose inputs repeat an earlier one of the same call counts as an update."""
        moment = now_ms()
        with transaction.atomic():
            # The dataset's lock serialises merges: two concurrent ones cannot both insert
            # the same inputs (the unique constraint would fail the second).
            dataset = EvaluationDataset.objects.select_for_update().get(pk=self.pk)
            hashes = [input_hash(r.get("inputs", {})) for r in records]
            existing = _records_by_hash(self, set(hashes))
            new: dict[str, DatasetRecord] = {}
            changed: dict[str, DatasetRecord] = {}
            inserted = updated = 0
            updated_by = ""
            for record, key in zip(records, hashes, strict=True):
                updated_by = _user(record.get("tags"), updated_by)
                row = new.get(key) or existing.get(key)
                if row is None:
                    new[key] = DatasetRecord.from_dict(self, record, key, moment)
                    inserted += 1
                    continue
                row.merge(record, moment)
                if key not in new:
                    changed[key] = row
                updated += 1
            # Merged rows are replaced (same record id and creation time), not updated:
            # bulk_update's CASE per column runs several times slower than delete + insert.
            merged = list(changed.values())
            pks = [row.pk for row in merged]
            for start in range(0, len(pks), _BULK):
                DatasetRecord.objects.filter(pk__in=pks[start : start + _BULK]).delete()
            for row in merged:
                row.pk = None
            DatasetRecord.objects.bulk_create([*new.values(), *merged], batch_size=_BULK)
            dataset.schema = merged_schema(dataset.schema, records)
            count = dataset.records.count()
            dataset.profile = {"num_records": count} if count else dataset.profile
            dataset.digest = digest_of(dataset.name, moment)
            dataset.updated_at = moment
            dataset.last_updated_by = updated_by
            dataset.save(
                update_fields=["schema", "profile", "digest", "updated_at", "last_updated_by"]
            )
        self.refresh_from_db()
        return inserted, updated

    @property
    def record_count(self) -> int:
        return int((self.profile or {}).get("num_records") or 0)

    def set_expectations(
        self, record_id: str, expectations: dict[str, Any] | None, user: str = ""
    ) -> DatasetRecord | None:
        """Replace one record's expectations (an edit, where a merge would add keys); a change
        of the dataset's data, so its update time and digest move as a merge moves them.
        None when the record is not (or no longer) in this dataset."""
        moment = now_ms()
        with transaction.atomic():
            dataset = EvaluationDataset.objects.select_for_update().get(pk=self.pk)
            record = dataset.records.filter(record_id=record_id).first()
            if record is None:
                return None
            record.expectations = expectations or None
            record.updated_at = moment
            record.last_updated_by = user[:USER_MAX_CHARS] or record.last_updated_by
            record.save(update_fields=["expectations", "updated_at", "last_updated_by"])
            dataset.schema = merged_schema(dataset.schema, [{"expectations": expectations}])
            dataset.digest = digest_of(dataset.name, moment)
            dataset.updated_at = moment
            dataset.last_updated_by = user[:USER_MAX_CHARS] or dataset.last_updated_by
            dataset.save(update_fields=["schema", "digest", "updated_at", "last_updated_by"])
        self.refresh_from_db()
        return record

    def delete_records(self, record_ids: list[str]) -> int:
        with transaction.atomic():
            dataset = EvaluationDataset.objects.select_for_update().get(pk=self.pk)
            deleted = dataset.records.filter(record_id__in=record_ids).delete()[0]
            if deleted:
                count = dataset.records.count()
                dataset.profile = {"num_records": count} if count else None
                dataset.save(update_fields=["profile"])
        return deleted


def _user(tags: dict[str, str] | None, default: str = "") -> str:
    """Who made a change, from the client's `mlflow.user` tag (a tag value may be longer than
    the column: the name is cut, the tag itself keeps it whole)."""
    return (tags or {}).get(MLFLOW_USER, default)[:USER_MAX_CHARS]


def _records_by_hash(dataset: EvaluationDataset, hashes: set[str]) -> dict[str, DatasetRecord]:
    found: dict[str, DatasetRecord] = {}
    wanted = sorted(hashes)
    for start in range(0, len(wanted), _BULK):
        chunk = wanted[start : start + _BULK]
        for row in dataset.records.filter(input_hash__in=chunk):
            found[row.input_hash] = row
    return found


class DatasetExperiment(models.Model):
    """A dataset belongs to the experiments it is linked to (access follows them)."""

    dataset = models.ForeignKey(EvaluationDataset, on_delete=models.CASCADE, related_name="links")
    experiment = models.ForeignKey(
        "tracking.Experiment", on_delete=models.CASCADE, related_name="dataset_links"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["dataset", "experiment"], name="dataset_experiment_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.dataset_id} -> {self.experiment_id}"


class DatasetRecord(models.Model):
    dataset = models.ForeignKey(
        EvaluationDataset, on_delete=models.CASCADE, related_name="records", db_index=False
    )
    record_id = models.CharField(max_length=36, unique=True, default=new_record_id)
    input_hash = models.CharField(max_length=64)
    inputs = models.JSONField(default=dict)
    outputs = models.JSONField(null=True, blank=True)  # {WRAPPED_OUTPUT_KEY: value} or null
    expectations = models.JSONField(null=True, blank=True)
    tags = models.JSONField(null=True, blank=True)
    source = models.JSONField(null=True, blank=True)  # {"source_type", "source_data"}
    source_type = models.CharField(max_length=16, blank=True)
    source_id = models.CharField(max_length=SOURCE_ID_MAX_CHARS, blank=True)
    created_by = models.CharField(max_length=255, blank=True)
    last_updated_by = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=now_ms)
    updated_at = models.DateTimeField(default=now_ms)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset", "input_hash"], name="dataset_record_inputs")
        ]
        indexes = [
            # Paged reads: (created, record id) after the page token's pair.
            models.Index(fields=["dataset", "created_at", "record_id"], name="dataset_record_page")
        ]

    def __str__(self) -> str:
        return self.record_id

    @classmethod
    def from_dict(
        cls, dataset: EvaluationDataset, record: dict[str, Any], key: str, moment: datetime
    ) -> DatasetRecord:
        source = record.get("source")
        user = _user(record.get("tags"))
        source_type = source_id = ""
        if source:
            data = source.get("source_data") or {}
            source_type = source["source_type"]
            id_key = "trace_id" if source_type == "TRACE" else "source_id"
            source_id = str(data.get(id_key) or "")
        return cls(
            dataset=dataset,
            input_hash=key,
            inputs=record.get("inputs", {}),
            # MLflow stores a new record's missing outputs as {}, not null.
            outputs={WRAPPED_OUTPUT_KEY: record.get("outputs", {})},
            expectations=record.get("expectations"),
            tags=record.get("tags"),
            source=source or None,
            source_type=source_type,
            source_id=source_id,
            created_by=user,
            last_updated_by=user,
            created_at=moment,
            updated_at=moment,
        )

    def merge(self, record: dict[str, Any], moment: datetime) -> None:
        """MLflow's merge: outputs replaced when sent, expectations and tags merged by key."""
        if "outputs" in record:
            outputs = record["outputs"]
            self.outputs = None if outputs is None else {WRAPPED_OUTPUT_KEY: outputs}
        if expectations := record.get("expectations"):
            self.expectations = {**(self.expectations or {}), **expectations}
        if tags := record.get("tags"):
            self.tags = {**(self.tags or {}), **tags}
            self.last_updated_by = _user(tags, self.last_updated_by)
        self.updated_at = moment
