"""Test connection: call an agent once, through the worker like every playground call, with
a tiny message, and keep what came back (ok + latency + the first words, or the client's
error) on an AgentCheck row, which the agents' page reads.

A check never hangs: the call has its own timeout (CHECK_TIMEOUT_S, below any longer one in
the agent's config) and a timer that stops it (`Stop`: an HTTP call's socket is shut down) at
that deadline, and the task has soft and hard time limits beyond it. A check that no worker
picks up, or whose worker died, is failed with that reason when the page next looks at it
(`expire`). Its spans are not stored: a check is not a conversation, and it would crowd the
trace list.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

from celery import Celery
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from playground.agents.base import AgentError, ChatRequest, Stop, Stopped, client_for, consume
from playground.models import Agent, AgentCheck, CheckStatus
from playground.tracing import TraceRecorder
from webapp.celery import app as default_app

logger = logging.getLogger(__name__)

CHECK_TASK = "playground.check_agent"
CHECK_MESSAGE = "Reply with one short sentence: is this connection working?"
# The call's deadline; the task's soft and hard time limits come after it (tasks.py).
CHECK_TIMEOUT_S = 20.0
# A check still queued after this found no worker; one running after this lost its worker.
QUEUED_FOR_S = 60
RUNNING_FOR_S = 90
ANSWER_WORDS = 12


def start(agent: Agent, app: Celery | None = None, queue: str | None = None) -> AgentCheck:
    """A queued check of `agent`, published once committed; its older checks are dropped."""
    with transaction.atomic():
        AgentCheck.objects.filter(agent=agent).delete()
        check = AgentCheck.objects.create(agent=agent, task_id=str(uuid.uuid4()))
        transaction.on_commit(lambda: _publish(check, app, queue))
    return check


def _publish(check: AgentCheck, app: Celery | None, queue: str | None) -> None:
    task = (app or default_app).tasks[CHECK_TASK]
    options = {"queue": queue} if queue else {}
    try:
        task.apply_async((check.pk,), task_id=check.task_id, **options)
    except (OperationalError, OSError) as exc:
        logger.warning("Could not queue check %s: %s", check.pk, exc)
        check.fail(f"Could not queue the check: the task broker is unreachable ({exc}).")
    except Exception as exc:  # a failed check must say so now, never stay queued
        logger.exception("Could not queue check %s", check.pk)
        check.fail(f"Could not queue the check ({type(exc).__name__}: {exc}).")


def run(check_id: int) -> str:
    """Run one check; the outcome is in its row. Answers a word for logs and tests."""
    if not AgentCheck.objects.claim(check_id):
        return "not-queued"  # redelivered, replaced by a newer check, or its agent deleted
    check = AgentCheck.objects.select_related("agent").filter(pk=check_id).first()
    if check is None:
        return "gone"  # its agent was deleted, or a newer check replaced it, meanwhile
    started = time.monotonic()
    try:
        text = _call(check.agent)
    except Stopped:
        check.fail(f"The agent did not answer within {CHECK_TIMEOUT_S:g} s.", _ms(started))
        return "failed"
    except AgentError as exc:
        check.fail(str(exc), _ms(started))
        return "failed"
    except Exception as exc:
        logger.exception("Check %s failed", check_id)
        check.fail(f"Unexpected error while calling the agent: {type(exc).__name__}: {exc}",
                   _ms(started))  # fmt: skip
        return "failed"
    check.finish(first_words(text), _ms(started))
    return "ok"


def _call(agent: Agent) -> str:
    stop = Stop()
    timer = threading.Timer(CHECK_TIMEOUT_S, stop.request)
    timer.daemon = True
    timer.start()
    try:
        stream = client_for(_for_check(agent), stop).stream(
            ChatRequest([{"role": "user", "content": CHECK_MESSAGE}], {"max_tokens": 32}),
            TraceRecorder().root("check", "AGENT"),
        )
        return consume(stream, lambda _chunk: stop.check()).content
    finally:
        timer.cancel()


def _for_check(agent: Agent) -> Agent:
    """The agent as saved, with the check's shorter timeout and no demo pacing (a copy: the
    row is never written). Same primary key: its stored key is found as for an answer."""
    config: dict[str, Any] = dict(agent.config or {})
    try:
        timeout = float(config.get("timeout", CHECK_TIMEOUT_S))
    except (TypeError, ValueError):
        timeout = CHECK_TIMEOUT_S
    config["timeout"] = min(timeout, CHECK_TIMEOUT_S) if timeout > 0 else CHECK_TIMEOUT_S
    config["word_delay_ms"] = 0
    config.pop("latency_ms", None)
    checked = copy.copy(agent)
    checked.config = config
    return checked


def first_words(text: str, words: int = ANSWER_WORDS) -> str:
    parts = text.split()
    shown = " ".join(parts[:words])
    return (shown + " …" if len(parts) > words else shown)[:300]


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def expire(check: AgentCheck) -> AgentCheck:
    """Fail a check nobody will finish (never picked up, or its worker died), so the page
    stops waiting; answers the check as it is now."""
    now = timezone.now()
    if check.status == CheckStatus.QUEUED and check.created_at < now - timedelta(
        seconds=QUEUED_FOR_S
    ):
        check.fail(f"No worker picked the check up within {QUEUED_FOR_S} s. "
                   "Is a Celery worker running?")  # fmt: skip
    elif (check.status == CheckStatus.RUNNING and check.started_at is not None
          and check.started_at < now - timedelta(seconds=RUNNING_FOR_S)):  # fmt: skip
        check.fail(f"The worker stopped while checking (no result after {RUNNING_FOR_S} s).")
    return check
