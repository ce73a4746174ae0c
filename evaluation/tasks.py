"""The evaluation runner's Celery tasks (evaluation/runner.py holds the work)."""

from __future__ import annotations

from celery import shared_task

from evaluation import runner


# ignore_result: the rows are the outcome. A task that a killed worker never acknowledged is
# delivered again (acks_late); the reaper restarts a job's workers sooner than that, and a
# second worker on a job only claims other rows.
@shared_task(name=runner.DRAIN_TASK, ignore_result=True)
def drain(job_id: int) -> int:
    return runner.drain(job_id)


@shared_task(name="evaluation.reap", ignore_result=True, acks_late=False)
def reap() -> int:
    return runner.reap()
