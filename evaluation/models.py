"""Evaluations launched from the browser: a job asks 1-4 agents every record of a dataset and
scores their answers. Each agent's part (`JobAgent`) is one MLflow evaluation run, exactly as
`mlflow.genai.evaluate` would leave it (tracking's Run, traces, assessments, metrics), so the
client and every page read it like any other; the rows here are the work list that workers
claim, and what the progress bar counts.

Workers claim rows in chunks under a `Lease` they keep alive from a heartbeat thread. A worker
that dies stops beating; the reaper (a beat task) puts its rows back for another worker, and
fails a row that lost three workers, with that reason. Nothing is ever left "running".
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Count, Q
from django.utils import timezone


class JobState(models.TextChoices):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


ENDED = (JobState.FINISHED, JobState.FAILED, JobState.CANCELLED)


class RowState(models.TextChoices):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class EvaluationJob(models.Model):
    experiment = models.ForeignKey(
        "tracking.Experiment", on_delete=models.CASCADE, related_name="evaluation_jobs"
    )
    # SET_NULL: the runs it made stay readable after the dataset is deleted.
    dataset = models.ForeignKey(
        "tracking.EvaluationDataset",
        on_delete=models.SET_NULL,
        null=True,
        related_name="evaluation_jobs",
    )
    dataset_name = models.CharField(max_length=500)
    name = models.CharField(max_length=250)
    # The scorers' specs as launched (evaluation/scorers.py), judges by name and version.
    scorers = models.JSONField(default=list)
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.QUEUED)
    error = models.TextField(blank=True)
    total_rows = models.IntegerField(default=0)
    chunk_size = models.IntegerField(default=25)
    # Agent calls each worker keeps in flight (a logged model in the worker: one at a time).
    concurrency = models.IntegerField(default=8)
    # The Celery queue its workers take tasks from ("": the default one).
    queue = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Set by cancel: workers stop, and rows still held or given back end cancelled.
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    # When drain tasks were last enqueued: the reaper re-enqueues a job nobody works on only
    # once they have had time to start (a busy broker is not a lost message).
    workers_queued_at = models.DateTimeField(null=True, blank=True)
    # It could not go on (its scorers cannot run any more): it ends FAILED, with `error`.
    failed = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["state"], name="evaluation_job_state_idx")]

    def __str__(self) -> str:
        return self.name

    @property
    def ended(self) -> bool:
        return self.state in ENDED


class JobAgent(models.Model):
    """One agent of a job, and the MLflow run that holds its results."""

    job = models.ForeignKey(EvaluationJob, on_delete=models.CASCADE, related_name="agents")
    position = models.SmallIntegerField()
    agent = models.ForeignKey(
        "playground.Agent", on_delete=models.SET_NULL, null=True, related_name="+"
    )
    agent_name = models.CharField(max_length=200)
    # The logged model version it answered as: the agent's own, or the one an alias named
    # when the job was launched (pinned, so that every row asks the same version).
    model_id = models.CharField(max_length=64, blank=True)
    model_uri = models.CharField(max_length=500, blank=True)
    run = models.OneToOneField(
        "tracking.Run", on_delete=models.SET_NULL, null=True, related_name="evaluation_agent"
    )
    # Calls per second to its endpoint, across every worker (None: as fast as it answers).
    rate_limit = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["job", "position"]
        constraints = [
            models.UniqueConstraint(fields=["job", "position"], name="job_agent_position")
        ]

    def __str__(self) -> str:
        return self.agent_name


class Lease(models.Model):
    """A worker's hold on the rows it claimed, alive while `beat_at` moves."""

    job = models.ForeignKey(EvaluationJob, on_delete=models.CASCADE, related_name="leases")
    worker = models.CharField(max_length=200)
    beat_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.worker} on job {self.job_id}"


class JobRowQuerySet(models.QuerySet["JobRow"]):
    def progress(self) -> dict[int, dict[str, int]]:
        """{job agent pk: {state: rows}} in one query."""
        counts: dict[int, dict[str, int]] = {}
        for agent_pk, state, n in (
            self.order_by().values_list("agent", "state").annotate(n=Count("pk"))
        ):
            counts.setdefault(agent_pk, {})[state] = n
        return counts


class JobRow(models.Model):
    """One record asked of one agent. Inputs and expectations are copied at launch: a record
    edited or deleted meanwhile does not change what the evaluation asked."""

    agent = models.ForeignKey(JobAgent, on_delete=models.CASCADE, related_name="rows")
    index = models.IntegerField()  # the record's place in the dataset
    record_id = models.CharField(max_length=64, blank=True)
    inputs = models.JSONField()
    expectations = models.JSONField(default=dict)
    state = models.CharField(max_length=16, choices=RowState.choices, default=RowState.PENDING)
    lease = models.ForeignKey(Lease, on_delete=models.SET_NULL, null=True, related_name="rows")
    attempts = models.SmallIntegerField(default=0)
    trace_id = models.CharField(max_length=64, blank=True)
    output = models.TextField(blank=True)
    # {scorer: value} as the assessments hold them, for the live page without a join.
    scores = models.JSONField(default=dict)
    latency_ms = models.IntegerField(null=True)
    error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = JobRowQuerySet.as_manager()

    class Meta:
        indexes = [
            # Claiming: the next pending rows of a job's agents, in dataset order.
            models.Index(
                fields=["agent", "index"],
                condition=Q(state="PENDING"),
                name="job_row_pending_idx",
            ),
            models.Index(fields=["agent", "state"], name="job_row_state_idx"),
            models.Index(fields=["lease"], name="job_row_lease_idx"),
        ]

    def __str__(self) -> str:
        return f"row {self.index} of {self.agent_id}"
