"""The Celery app. Its settings are the CELERY_* names in webapp/settings.py."""

from __future__ import annotations

import os
from typing import Any

import redis
from celery import Celery
from kombu.transport import redis as kombu_redis

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("spyglass")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# A worker must outlive a Redis restart that happens while it runs a task (kombu 5.7.0,
# celery 5.7.0, redis-py 8.2.0; no newer release fixes it). When Redis drops, the consumer
# collects the broken connection: closing its channel reads the pending BRPOP reply, that
# read fails, and the connection's transport is detached (`transport.client = None`) with
# the channel still open. Whatever then uses that channel, the second close that restores
# the unacknowledged message or the late ack of the task that was running, builds a Redis
# pool from `transport.client.hostname` and raises AttributeError, which no caller expects:
# the worker logs "Unrecoverable error" and exits (tests/reliability/test_worker_faults.py).
# Raising the connection error those callers do handle instead keeps the worker alive: the
# restore and the ack are skipped with a log line, the message stays in Redis's unacked set
# and is handed out again after the visibility timeout, where the task's claim makes the
# second delivery a no-op.
_connparams = kombu_redis.Channel._connparams


def _connparams_of_an_open_connection(self: Any, asynchronous: bool = False) -> dict:
    if getattr(self.connection, "client", None) is None:
        raise redis.exceptions.ConnectionError(
            "this Redis channel belongs to a connection that was closed after a broker outage"
        )
    return _connparams(self, asynchronous=asynchronous)


kombu_redis.Channel._connparams = _connparams_of_an_open_connection
