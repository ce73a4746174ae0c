"""Registered scorers (MLflow 3's `scorer.register()`, `list_scorers`, `get_scorer`, online
scoring's `start`/`update`/`stop`): a scorer per experiment and name, its numbered versions,
and its online scoring configuration, each in a table of its own.

A version holds the serialized scorer exactly as the client sent it (JSON text: a `@scorer`
function's source, a judge's instructions and model). Spyglass stores it and hands it back;
nothing here deserializes or runs it (running registered scorers is a later step, and will
have to treat this text as untrusted code).

As in MLflow's SQL store: versions count up from 1 per scorer (from 1 again once every version
is gone), deleting without a version removes the scorer with all its versions and its config,
and a scorer has at most one online config, replaced (with a new id) on every upsert.

Imported by tracking/models.py, so these are tracking's models (see tracking/datasets.py for
why not an app of their own).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models, transaction
from django.db.models import Max

from tracking.datasets import now_ms, to_ms

NAME_MAX_CHARS = 256  # MLflow's scorers.scorer_name column


def new_scorer_id() -> str:
    return str(uuid.uuid4())  # MLflow's shape: a UUID with dashes


def new_config_id() -> str:
    return uuid.uuid4().hex


class Scorer(models.Model):
    scorer_id = models.CharField(max_length=36, unique=True, default=new_scorer_id)
    experiment = models.ForeignKey(
        "tracking.Experiment", on_delete=models.CASCADE, related_name="scorers"
    )
    name = models.CharField(max_length=NAME_MAX_CHARS)
    created_at = models.DateTimeField(default=now_ms)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "name"], name="scorer_experiment_name")
        ]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def register(cls, experiment_id: int, name: str, serialized: str) -> ScorerVersion:
        """A new version of the scorer `name` (made on first use), numbered after the last."""
        with transaction.atomic():
            # Locked so that two registrations at once get consecutive numbers, not one twice.
            scorer, _ = cls.objects.select_for_update().get_or_create(
                experiment_id=experiment_id, name=name
            )
            last = scorer.versions.aggregate(last=Max("version"))["last"] or 0
            return scorer.versions.create(version=last + 1, serialized_scorer=serialized)

    def set_online_config(self, sample_rate: float, filter_string: str) -> OnlineConfig:
        with transaction.atomic():
            OnlineConfig.objects.filter(scorer=self).delete()
            return OnlineConfig.objects.create(
                scorer=self,
                experiment_id=self.experiment_id,
                sample_rate=sample_rate,
                filter_string=filter_string,
            )


class ScorerVersionQuerySet(models.QuerySet["ScorerVersion"]):
    def latest_per_scorer(self) -> ScorerVersionQuerySet:
        """Each scorer's highest version (what `list_scorers` shows)."""
        newest = models.Subquery(
            ScorerVersion.objects.filter(scorer=models.OuterRef("scorer"))
            .order_by("-version")
            .values("version")[:1]
        )
        return self.filter(version=newest)


class ScorerVersion(models.Model):
    scorer = models.ForeignKey(Scorer, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    serialized_scorer = models.TextField()  # the client's JSON text, verbatim
    created_at = models.DateTimeField(default=now_ms)

    objects = ScorerVersionQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scorer", "version"], name="scorer_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.scorer_id} v{self.version}"

    def as_mlflow(self) -> dict[str, Any]:
        """MLflow's `Scorer` message (its experiment_id is an int32 there)."""
        return {
            "experiment_id": self.scorer.experiment_id,
            "scorer_name": self.scorer.name,
            "scorer_version": self.version,
            "serialized_scorer": self.serialized_scorer,
            "creation_time": to_ms(self.created_at),
            "scorer_id": self.scorer.scorer_id,
        }


class OnlineConfig(models.Model):
    """How a registered scorer samples traces once started (sample rate 0: stopped)."""

    config_id = models.CharField(max_length=32, unique=True, default=new_config_id)
    scorer = models.OneToOneField(Scorer, on_delete=models.CASCADE, related_name="online_config")
    experiment = models.ForeignKey(
        "tracking.Experiment", on_delete=models.CASCADE, related_name="online_scoring_configs"
    )
    sample_rate = models.FloatField()
    filter_string = models.TextField(blank=True)  # empty: every trace (MLflow's None)

    def __str__(self) -> str:
        return f"{self.scorer_id} @ {self.sample_rate}"

    def as_mlflow(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "online_scoring_config_id": self.config_id,
            "scorer_id": self.scorer.scorer_id,
            "sample_rate": self.sample_rate,
            "experiment_id": str(self.experiment_id),
        }
        if self.filter_string:
            data["filter_string"] = self.filter_string
        return data
