"""Human review: label schemas (the questions a reviewer answers) and review queues (the traces
or sessions waiting for review, and who reviews them), as MLflow 3.14+ keeps them
(`mlflow.genai.label_schemas`, `mlflow.genai.review_queues`, its SQL store).

MLflow's semantics, kept here and served by tracking/mlflow_api/label_schemas.py and
review_queues.py:
- A schema belongs to an experiment and is unique there by name. Its type (feedback or
  expectation) and its input kind (pass/fail, categorical, numeric, text) never change; every
  experiment gets a protected default question, "Feedback" (free text), the first time its
  schemas are listed.
- A queue belongs to an experiment, unique there by name ignoring case. A *user* queue is one
  reviewer's own worklist (named after them, them as its only user, every schema of the
  experiment as its questions); a *custom* queue has 0..10 users and chosen schemas, which
  are frozen once it holds items.
- An item's status is MLflow's, per (queue, item): pending, then complete or declined by
  whoever acted (`completed_by`), reopened to pending.

What Spyglass adds for its review pages: every reviewer's own decision on an item
(`ReviewerStatus`: done or skipped; no row is pending), so that several reviewers can work
one queue, each with their own next item; and items that are sessions as well as traces
(the MLflow API shows the trace items only: its protocol has no other kind).

Imported by tracking/models.py, so these are tracking's models (see tracking/datasets.py for
why not an app of their own).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import IntegrityError, models, transaction
from django.db.models import Count, Exists, OuterRef, Q

from tracking.datasets import now_ms, to_ms

NAME_MAX_CHARS = 250  # MLflow's label_schemas.name and review_queues.name
USER_MAX_CHARS = 250
DEFAULT_SCHEMA_NAME = "Feedback"
DEFAULT_SCHEMA_INSTRUCTION = "Share any feedback on this trace."


def new_schema_id() -> str:
    return "ls-" + uuid.uuid4().hex  # MLflow's shape


def new_queue_id() -> str:
    return "rq-" + uuid.uuid4().hex


class SchemaType(models.TextChoices):
    FEEDBACK = "feedback"
    EXPECTATION = "expectation"


class InputKind(models.TextChoices):
    PASS_FAIL = "pass_fail"
    CATEGORICAL = "categorical"
    NUMERIC = "numeric"
    TEXT = "text"


class LabelSchemaQuerySet(models.QuerySet["LabelSchema"]):
    def for_listing(self) -> LabelSchemaQuerySet:
        """MLflow's order: newest first."""
        return self.order_by("-created_at", "schema_id")


class LabelSchema(models.Model):
    schema_id = models.CharField(max_length=36, unique=True, default=new_schema_id)
    experiment = models.ForeignKey(
        "tracking.Experiment", on_delete=models.CASCADE, related_name="label_schemas"
    )
    name = models.CharField(max_length=NAME_MAX_CHARS)
    type = models.CharField(max_length=16, choices=SchemaType.choices)
    instruction = models.TextField(null=True, blank=True)  # noqa: DJ001 (MLflow: unset, not "")
    enable_comment = models.BooleanField(default=False)
    input_kind = models.CharField(max_length=16, choices=InputKind.choices)
    # The input's own fields as MLflow's message holds them (`{"options": [...]}`).
    input_config = models.JSONField(default=dict)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=now_ms)
    updated_at = models.DateTimeField(default=now_ms)

    objects = LabelSchemaQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "name"], name="label_schema_name")
        ]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def ensure_default(cls, experiment_id: int) -> None:
        """The experiment's protected default question, made on first need (idempotent)."""
        if cls.objects.filter(experiment_id=experiment_id, is_default=True).exists():
            return
        try:
            with transaction.atomic():
                cls.objects.create(
                    experiment_id=experiment_id,
                    name=DEFAULT_SCHEMA_NAME,
                    type=SchemaType.FEEDBACK,
                    input_kind=InputKind.TEXT,
                    instruction=DEFAULT_SCHEMA_INSTRUCTION,
                    is_default=True,
                )
        except IntegrityError:
            pass  # made meanwhile by another request (or an old schema holds the name)

    def as_mlflow(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema_id": self.schema_id,
            "experiment_id": str(self.experiment_id),
            "name": self.name,
            "type": self.type.upper(),
            "enable_comment": self.enable_comment,
            "input": {self.input_kind: self.input_config},
            "created_at": to_ms(self.created_at),
            "last_updated_at": to_ms(self.updated_at),
            "is_default": self.is_default,
        }
        if self.instruction is not None:
            data["instruction"] = self.instruction
        return data


class QueueType(models.TextChoices):
    USER = "user"
    CUSTOM = "custom"


class ItemType(models.TextChoices):
    TRACE = "trace"
    SESSION = "session"


class ItemStatus(models.TextChoices):
    """MLflow's per-item status."""

    PENDING = "pending"
    COMPLETE = "complete"
    DECLINED = "declined"


class Decision(models.TextChoices):
    """One reviewer's own status on an item (no row: pending)."""

    DONE = "done"
    SKIPPED = "skipped"


class ReviewQueueQuerySet(models.QuerySet["ReviewQueue"]):
    def for_listing(self) -> ReviewQueueQuerySet:
        return self.order_by("-created_at", "queue_id")

    def assigned_to(self, user: str) -> ReviewQueueQuerySet:
        return self.filter(assigned__user=user)

    def holding(self, item_id: str) -> ReviewQueueQuerySet:
        return self.filter(Exists(ReviewItem.objects.filter(queue=OuterRef("pk"), item_id=item_id)))

    def with_progress(self) -> ReviewQueueQuerySet:
        """Item counts per MLflow status (`total`, `pending`, `complete`, `declined`) in the
        same query, for a list of queues."""
        counts = {
            status: Count("items", filter=Q(items__status=status), distinct=True)
            for status in ItemStatus.values
        }
        return self.annotate(total=Count("items", distinct=True), **counts)


class ReviewQueue(models.Model):
    queue_id = models.CharField(max_length=36, unique=True, default=new_queue_id)
    experiment = models.ForeignKey(
        "tracking.Experiment", on_delete=models.CASCADE, related_name="review_queues"
    )
    name = models.CharField(max_length=NAME_MAX_CHARS)
    name_key = models.CharField(max_length=NAME_MAX_CHARS)  # lowercased: names ignore case
    queue_type = models.CharField(max_length=8, choices=QueueType.choices)
    created_by = models.CharField(max_length=USER_MAX_CHARS, null=True, blank=True)  # noqa: DJ001
    schemas = models.ManyToManyField(LabelSchema, related_name="review_queues", blank=True)
    created_at = models.DateTimeField(default=now_ms)
    updated_at = models.DateTimeField(default=now_ms)

    objects = ReviewQueueQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "name_key"], name="review_queue_name")
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.name_key = self.name.lower()
        super().save(*args, **kwargs)

    @property
    def users(self) -> list[str]:
        return sorted(row.user for row in self.assigned.all())

    def set_users(self, users: list[str]) -> None:
        self.assigned.all().delete()
        ReviewQueueUser.objects.bulk_create(ReviewQueueUser(queue=self, user=u) for u in users)

    def as_mlflow(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "queue_id": self.queue_id,
            "experiment_id": str(self.experiment_id),
            "name": self.name,
            "queue_type": self.queue_type.upper(),
            "creation_time_ms": to_ms(self.created_at),
            "last_update_time_ms": to_ms(self.updated_at),
            "users": self.users,
            "schema_ids": sorted(s.schema_id for s in self.schemas.all()),
        }
        if self.created_by is not None:
            data["created_by"] = self.created_by
        return data

    def progress(self, reviewer: str | None = None) -> dict[str, int]:
        """How far the queue is: items per MLflow status, and with `reviewer`, how many that
        reviewer has still to decide (`mine`)."""
        counts = dict(self.items.values_list("status").annotate(n=Count("pk")).order_by())
        result = {status: counts.get(status, 0) for status in ItemStatus.values}
        result["total"] = sum(counts.values())
        if reviewer is not None:
            result["mine"] = self.items.pending_for(reviewer).count()
        return result

    def next_for(self, reviewer: str, after: ReviewItem | None = None) -> ReviewItem | None:
        """The reviewer's next item to decide, in the order items were added (after `after`)."""
        items = self.items.pending_for(reviewer).in_review_order()
        if after is not None:
            items = items.filter(
                Q(created_at__gt=after.created_at) | Q(created_at=after.created_at, pk__gt=after.pk)
            )
        return items.first()


class ReviewQueueUser(models.Model):
    queue = models.ForeignKey(ReviewQueue, on_delete=models.CASCADE, related_name="assigned")
    user = models.CharField(max_length=USER_MAX_CHARS)  # lowercased, as MLflow stores it

    class Meta:
        constraints = [models.UniqueConstraint(fields=["queue", "user"], name="review_queue_user")]
        indexes = [models.Index(fields=["user"], name="review_queue_user_idx")]

    def __str__(self) -> str:
        return self.user


class ReviewItemQuerySet(models.QuerySet["ReviewItem"]):
    def for_listing(self) -> ReviewItemQuerySet:
        """MLflow's order: newest first."""
        return self.order_by("-created_at", "item_id")

    def in_review_order(self) -> ReviewItemQuerySet:
        return self.order_by("created_at", "pk")

    def pending_for(self, reviewer: str) -> ReviewItemQuerySet:
        """Items still open that `reviewer` has not decided."""
        decided = ReviewerStatus.objects.filter(item=OuterRef("pk"), reviewer=reviewer)
        return self.filter(status=ItemStatus.PENDING).exclude(Exists(decided))


class ReviewItem(models.Model):
    queue = models.ForeignKey(ReviewQueue, on_delete=models.CASCADE, related_name="items")
    item_type = models.CharField(max_length=16, choices=ItemType.choices)
    # A trace id, or a session id (`mlflow.trace.session`): no foreign key, as in MLflow.
    item_id = models.CharField(max_length=250)
    status = models.CharField(max_length=16, choices=ItemStatus.choices, default=ItemStatus.PENDING)
    completed_by = models.CharField(max_length=USER_MAX_CHARS, null=True, blank=True)  # noqa: DJ001
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now_ms)
    updated_at = models.DateTimeField(default=now_ms)

    objects = ReviewItemQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["queue", "item_type", "item_id"], name="review_item_unique"
            )
        ]
        indexes = [models.Index(fields=["item_id"], name="review_item_item_idx")]

    def __str__(self) -> str:
        return f"{self.item_type} {self.item_id}"

    def set_status(self, status: str, completed_by: str | None) -> None:
        """MLflow's SetReviewQueueItemStatus: the same status again changes nothing (the first
        completer keeps the credit); a reopen clears who completed it, and every reviewer's
        decision with it."""
        if self.status == status:
            return
        now = now_ms()
        self.status, self.updated_at = status, now
        if status == ItemStatus.PENDING:
            self.completed_by = self.completed_at = None
            self.decisions.all().delete()
        else:
            self.completed_by, self.completed_at = completed_by, now
            if completed_by:
                decision = Decision.DONE if status == ItemStatus.COMPLETE else Decision.SKIPPED
                self.decisions.update_or_create(
                    reviewer=completed_by, defaults={"status": decision, "updated_at": now}
                )
        self.save(update_fields=["status", "completed_by", "completed_at", "updated_at"])

    @transaction.atomic
    def decide(self, reviewer: str, decision: str | None) -> None:
        """One reviewer's decision from the review pages (None: back to pending). The item
        closes, MLflow-wise, once every assigned reviewer has decided (the first decision, in
        a queue with no assigned users): complete if anyone marked it done, else declined."""
        if decision is None:
            self.decisions.filter(reviewer=reviewer).delete()
            if self.status != ItemStatus.PENDING:
                self.set_status(ItemStatus.PENDING, None)
            return
        self.decisions.update_or_create(
            reviewer=reviewer, defaults={"status": decision, "updated_at": now_ms()}
        )
        decided = dict(self.decisions.values_list("reviewer", "status"))
        if not set(self.queue.users) <= set(decided):
            return
        done = Decision.DONE in decided.values()
        closed = ItemStatus.COMPLETE if done else ItemStatus.DECLINED
        if self.status != closed:
            self.status, self.completed_by, self.completed_at = closed, reviewer, now_ms()
            self.updated_at = self.completed_at
            self.save(update_fields=["status", "completed_by", "completed_at", "updated_at"])

    def as_mlflow(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "queue_id": self.queue.queue_id,
            "item_type": self.item_type.upper(),
            "item_id": self.item_id,
            "status": self.status.upper(),
            "creation_time_ms": to_ms(self.created_at),
            "last_update_time_ms": to_ms(self.updated_at),
        }
        if self.completed_by is not None:
            data["completed_by"] = self.completed_by
        if self.completed_at is not None:
            data["completed_time_ms"] = to_ms(self.completed_at)
        return data


class ReviewerStatus(models.Model):
    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="decisions")
    reviewer = models.CharField(max_length=USER_MAX_CHARS)
    status = models.CharField(max_length=8, choices=Decision.choices)
    updated_at = models.DateTimeField(default=now_ms)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "reviewer"], name="reviewer_status_unique")
        ]

    def __str__(self) -> str:
        return f"{self.reviewer}: {self.status}"
