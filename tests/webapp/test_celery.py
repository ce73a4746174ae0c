"""Tasks go through a real broker to a real worker: in-process (`make run`) or on Redis."""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings

from tests.conftest import RECORDED


def test_a_task_round_trips_through_the_embedded_worker(embedded_worker):
    key = uuid.uuid4().hex

    embedded_worker.tasks["tests.record"].delay(key)

    assert RECORDED[key].wait(timeout=10)


def test_the_embedded_worker_runs_many_tasks(embedded_worker):
    keys = [uuid.uuid4().hex for _ in range(20)]

    for key in keys:
        embedded_worker.tasks["tests.record"].delay(key)

    assert all(RECORDED[key].wait(timeout=10) for key in keys)


@pytest.mark.services
def test_a_task_round_trips_through_redis_to_a_worker_process(redis_worker):
    app, queue = redis_worker

    result = app.tasks["webapp.ping"].apply_async(queue=queue)

    assert "pong" in result.get(timeout=30)


def test_celery_settings_make_tasks_survive_a_lost_worker():
    # A redelivered message must find its task idempotent; these make redelivery happen.
    assert settings.CELERY_TASK_ACKS_LATE is True
    assert settings.CELERY_TASK_REJECT_ON_WORKER_LOST is True
    assert settings.CELERY_WORKER_PREFETCH_MULTIPLIER == 1
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert visibility > settings.CELERY_TASK_TIME_LIMIT > settings.CELERY_TASK_SOFT_TIME_LIMIT
