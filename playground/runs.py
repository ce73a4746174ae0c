"""Starting answers: one function saves the user's message and a queued Run per agent, then
enqueues their tasks once that is committed; and the reaper that fails runs nobody finishes.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from celery import Celery
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from kombu.exceptions import OperationalError

from playground import tracing
from playground.models import Agent, Conversation, Message, Role, Run, RunStatus
from webapp.celery import app as default_app

logger = logging.getLogger(__name__)

ANSWER_TASK = "playground.answer"


def history_for(conversation: Conversation, agent: Agent) -> list[dict[str, str]]:
    """The chat so far as this agent saw it: every user turn and this agent's own answers."""
    answers = dict(
        Run.objects.filter(conversation=conversation, agent=agent, status=RunStatus.DONE)
        .order_by("message_id", "pk")
        .values_list("message_id", "content")
    )
    history = []
    for message in conversation.messages.all():
        history.append({"role": message.role, "content": message.content})
        if message.role == Role.USER and message.pk in answers:
            history.append({"role": "assistant", "content": answers[message.pk]})
    return history


def send(
    conversation: Conversation,
    content: str,
    params: dict[str, Any] | None = None,
    custom_inputs: dict[str, Any] | None = None,
    history: Sequence[dict[str, str]] = (),
    app: Celery | None = None,
    queue: str | None = None,
) -> Message:
    """Save the message (after any replayed `history` turns) and start a run per agent.

    The message is committed before anything is enqueued: if the broker is down, the runs
    fail with that reason and the message stays, ready to be sent again.
    """
    with transaction.atomic():
        message, runs = save_turn(conversation, content, params, custom_inputs, history)
        enqueue(runs, app, queue)
    return message


def save_turn(
    conversation: Conversation,
    content: str,
    params: dict[str, Any] | None = None,
    custom_inputs: dict[str, Any] | None = None,
    history: Sequence[dict[str, str]] = (),
) -> tuple[Message, list[Run]]:
    """The message and a queued run per agent, each run's request built from that agent's
    own answers so far; nothing is enqueued (`send` does, a replay answers them itself)."""
    agents = list(conversation.agents.all())
    with transaction.atomic():
        for turn in history:
            Message.objects.create(conversation=conversation, role=turn["role"],
                                   content=turn["content"])  # fmt: skip
        message = Message.objects.create(
            conversation=conversation, content=content, params=params or {},
            custom_inputs=custom_inputs,
        )  # fmt: skip
        runs = [_queued_run(conversation, message, agent) for agent in agents]
        Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now())
    return message, runs


def _queued_run(conversation: Conversation, message: Message, agent: Agent) -> Run:
    messages = history_for(conversation, agent)
    if conversation.system_prompt:
        messages.insert(0, {"role": "system", "content": conversation.system_prompt})
    # The agent's default parameters, overridden by what the user set on this message.
    params = {**(agent.default_params or {}), **message.params}
    request = {"messages": messages, "params": params, "custom_inputs": message.custom_inputs}
    return Run.objects.create(
        conversation=conversation, message=message, agent=agent, request=request,
        task_id=str(uuid.uuid4()),
    )  # fmt: skip


def enqueue(runs: Iterable[Run], app: Celery | None = None, queue: str | None = None) -> None:
    """Publish a task per run when the current transaction commits (now, outside one).

    This is `delay_on_commit` (Django's on_commit, then apply_async) with two additions: the
    task id is chosen beforehand and stored on the run, so the row always names its message;
    and each publish handles its own broker error. With `delay_on_commit` itself, an
    unreachable broker would raise out of the request after the commit and skip the other
    runs' hooks, leaving them queued for nobody; here each run fails with the reason.
    """
    task = (app or default_app).tasks[ANSWER_TASK]
    runs = list(runs)
    options: dict[str, Any] = {"queue": queue} if queue else {}
    for run in runs:
        transaction.on_commit(lambda run=run: _publish(task, run, options))


def _publish(task: Any, run: Run, options: dict[str, Any]) -> None:
    try:
        task.apply_async((run.pk,), task_id=run.task_id, **options)
    except (OperationalError, OSError) as exc:
        logger.warning("Could not queue run %s: %s", run.pk, exc)
        run.fail(
            f"Could not queue the answer: the task broker is unreachable ({exc}). "
            "Your message is saved; send it again when the broker is back."
        )
    except Exception as exc:
        # Whatever else publishing raises (a result backend, a serializer), the run must say
        # so now rather than wait queued for the reaper, and the request must not fail.
        logger.exception("Could not queue run %s", run.pk)
        run.fail(
            f"Could not queue the answer ({type(exc).__name__}: {exc}). "
            "Your message is saved; send it again."
        )


def reap_stale_runs(
    running_for: timedelta | None = None, queued_for: timedelta | None = None
) -> int:
    """Fail runs that no worker will finish; answers how many.

    A running run's task beats every SPYGLASS_PLAYGROUND_HEARTBEAT_S seconds, streaming or
    not (tasks._Heartbeat), so a run silent for SPYGLASS_PLAYGROUND_STALE_AFTER_S lost its
    worker; a redelivered message for it is a no-op by design, so no answer is duplicated.
    A run queued for long was never picked up.
    """
    if running_for is None:
        running_for = timedelta(seconds=settings.SPYGLASS_PLAYGROUND_STALE_AFTER_S)
    if queued_for is None:
        queued_for = timedelta(seconds=settings.SPYGLASS_PLAYGROUND_QUEUED_TIMEOUT_S)
    now = timezone.now()
    stale = Run.objects.stale(running_for, queued_for)
    lost_error = (
        f"The worker stopped while answering (no progress for over "
        f"{int(running_for.total_seconds())} s): it was restarted or lost. Send again."
    )
    lost_tasks = stale.filter(status=RunStatus.RUNNING).values_list("task_id", flat=True)
    lost_traces = [t for t in map(tracing.trace_id_for_task, lost_tasks) if t]
    lost = stale.filter(status=RunStatus.RUNNING).update(
        status=RunStatus.FAILED, error=lost_error,
        finished_at=now, heartbeat_at=now, seq=F("seq") + 1,
    )  # fmt: skip
    # Their traces were stored when the answers started: they end as errors, not in progress.
    tracing.fail_unfinished(lost_traces, lost_error)
    never = stale.filter(status=RunStatus.QUEUED).update(
        status=RunStatus.FAILED,
        error=(
            f"No worker picked this answer up within {int(queued_for.total_seconds())} s. "
            "Is a Celery worker running? Send again."
        ),
        finished_at=now, heartbeat_at=now, seq=F("seq") + 1,
    )  # fmt: skip
    return lost + never
