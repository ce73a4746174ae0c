"""An evaluation whose worker process is SIGKILLed mid-run loses no finished row, and ends
finished once another worker takes over: real Redis, real `celery -A webapp worker`
processes, an agent on a real local HTTP server that takes 100 ms a row."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from evaluation import runner
from evaluation.models import EvaluationJob, JobRow, JobState, Lease, RowState
from tests.reliability.conftest import fast_failing_app, start_worker, stop_worker
from tracking.models import EvaluationDataset, Experiment, RunStatus

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("sqlite_shared_reads"),
]
ROWS = 30


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_worker_killed_mid_evaluation_loses_no_finished_row(
    private_redis, http_agent, monkeypatch
):
    queue = f"eval-kill-{uuid.uuid4().hex[:8]}"
    app = fast_failing_app(private_redis.url)
    monkeypatch.setattr(runner, "default_app", app)
    experiment = Experiment.objects.create(name="killed")
    dataset = EvaluationDataset.create(name="qs", tags={}, experiment_ids=[experiment.pk])
    dataset.merge_records([{"inputs": {"question": f"q{i}"}} for i in range(ROWS)])
    agent = http_agent("fixed-100ms", kind="openai", stream=False)
    first = start_worker(private_redis.url, queue)
    second = None
    try:
        job = runner.launch(
            dataset=dataset,
            experiment=experiment,
            agents=[runner.AgentChoice(agent)],
            scorer_specs=[{"kind": "latency", "name": "fast", "config": {"max_ms": 5000}}],
            name="nightly",
            chunk_size=5,
            concurrency=2,
            queue=queue,
        )
        runner.start_workers(job)  # the launch's on_commit has no commit to follow here
        rows = JobRow.objects.filter(agent__job=job)
        _wait(lambda: rows.filter(state=RowState.DONE).count() >= 6, 60, "rows to finish")

        _wait(lambda: rows.filter(state=RowState.RUNNING).exists(), 30, "a chunk in hand")
        first.kill()  # SIGKILL mid-run: its lease stops beating, its rows stay RUNNING
        first.wait()
        finished = dict(rows.filter(state=RowState.DONE).values_list("pk", "trace_id"))
        # Read once the process is gone (nothing moves them now). Almost always a chunk is in
        # hand; the kill may land in the instant between one chunk's write and the next claim.
        held = set(rows.filter(state=RowState.RUNNING).values_list("pk", flat=True))

        # What the beat does once the lease is stale: the rows go back and workers restart.
        later = timezone.now() + timedelta(seconds=runner.LEASE_TIMEOUT_S + 1)
        EvaluationJob.objects.filter(pk=job.pk).update(
            created_at=timezone.now() - timedelta(minutes=5)
        )
        assert runner.reap(now=later) > 0
        assert not Lease.objects.filter(job=job).exists()
        second = start_worker(private_redis.url, queue)
        _wait(lambda: EvaluationJob.objects.get(pk=job.pk).ended, 90, "the job to end")
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                stop_worker(worker)
        app.close()

    job.refresh_from_db()
    assert job.state == JobState.FINISHED, job.error
    assert rows.filter(state=RowState.DONE).count() == ROWS
    # The rows finished before the kill kept their traces; none was answered twice.
    assert dict(rows.filter(pk__in=finished).values_list("pk", "trace_id")) == finished
    run = job.agents.get().run
    run.refresh_from_db()
    assert run.status == RunStatus.FINISHED
    assert run.linked_traces.count() == ROWS
    # The rows the dead worker held were done again, each once more.
    assert set(rows.filter(pk__in=held).values_list("attempts", flat=True)) <= {2}
