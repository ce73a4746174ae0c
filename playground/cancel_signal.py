"""A cancel's fast path to the task answering it: a key in the cache (Redis when there is one,
shared by the web servers and the workers; in-process with the embedded worker).

The task's watcher asks for the key several times a second, which costs Redis a GET and the
database nothing; it still reads the run row now and then (tasks.ROW_CHECK_S), so a cancel
whose key was lost (Redis down or flushed, a cache not shared) stops the call a little later.
"""

from __future__ import annotations

import logging

from django.core.cache import cache

logger = logging.getLogger(__name__)

# Longer than any answer may run (the task's time limit): the key outlives its task.
TTL_S = 3600


def _key(run_id: int, task_id: str) -> str:
    # The task id too: run ids come back after a database is reset (and in tests), task ids
    # are random, so an old key never stops a new run.
    return f"playground:cancelled:{run_id}:{task_id}"


def send(run_id: int, task_id: str) -> None:
    if not task_id:
        return
    try:
        cache.set(_key(run_id, task_id), 1, TTL_S)
    except Exception:  # the row says cancelled already: the watcher's row check finds it
        logger.warning("Cancel of run %s not signalled through the cache", run_id, exc_info=True)


def received(run_id: int, task_id: str) -> bool:
    if not task_id:
        return False
    try:
        return cache.get(_key(run_id, task_id)) is not None
    except Exception:
        return False
