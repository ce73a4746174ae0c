"""Replaying a logged session: its user turns answered again, in order, by other agents.

`start` makes a conversation with the chosen agents and a Replay row holding the session's
user turns (with each turn's custom_inputs and parameters), and enqueues one task. The task
(`run`) goes turn by turn: it saves the user message and a queued run per agent exactly as a
message sent from the page (`runs.save_turn`, so each agent's history is its own earlier
answers, not the recorded ones), then answers those runs itself with `tasks.answer_run`. One
task answering one turn after the other means no task waits on another's result, a single
worker thread suffices, and the order of the turns is the order of the session.

A cancel (`Replay.cancel`) ends the row and cancels the answers under way; the task sees the
row before each turn and each answer, and stops. A replay whose worker died is failed by the
reaper (`reap_stale_replays`, from the runs' reaper task), so it never stays "running".
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta
from typing import Any

from celery import Celery
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from kombu.exceptions import OperationalError

from playground import runs
from playground.models import Agent, Conversation, Replay, Run, RunStatus
from playground.replay import chat_of
from tracking.models import Span, TraceSession
from webapp.celery import app as default_app

logger = logging.getLogger(__name__)

REPLAY_TASK = "playground.replay"


def recorded_turns(session: TraceSession) -> list[dict[str, Any]]:
    """The session's user turns, oldest first: each one's message, and the custom_inputs and
    parameters its request carried (from the turn's root span, as a trace's replay reads)."""
    from tracking import sessions  # tracking imports nothing from here; keep it one-way

    turns = [t for t in sessions.turns(session) if t.user_message]
    roots = dict(
        Span.objects.filter(trace_id__in=[t.trace.pk for t in turns], parent_span_id="")
        .order_by("start_ns")
        .values_list("trace_id", "inputs")
    )
    recorded = []
    for turn in turns:
        _, custom_inputs, params = chat_of(roots.get(turn.trace.pk))
        recorded.append(
            {"content": turn.user_message, "custom_inputs": custom_inputs, "params": params}
        )
    return recorded


def start(
    session: TraceSession,
    agents: QuerySet[Agent] | list[Agent],
    owner: Any = None,
    app: Celery | None = None,
    queue: str | None = None,
) -> Replay:
    """A new conversation with `agents` and its replay, enqueued once committed."""
    turns = recorded_turns(session)
    with transaction.atomic():
        conversation = Conversation.objects.create(
            title=f"Replay of session {session.session_id}"[:200], owner=owner
        )
        conversation.agents.set(agents)
        replay = Replay.objects.create(
            conversation=conversation, session_id=session.session_id,
            experiment_id=session.experiment_id, turns=turns, task_id=str(uuid.uuid4()),
        )  # fmt: skip
        if not turns:
            replay.fail(f"Session {session.session_id} holds no user messages.")
            return replay
        task = (app or default_app).tasks[REPLAY_TASK]
        # The default limits are one answer's; a replay gives each of its answers as much.
        answers = len(turns) * max(len(list(agents)), 1)
        options: dict[str, Any] = {
            "soft_time_limit": answers * settings.CELERY_TASK_SOFT_TIME_LIMIT + 30,
            "time_limit": answers * settings.CELERY_TASK_TIME_LIMIT + 60,
        }
        if queue:
            options["queue"] = queue
        transaction.on_commit(lambda: _publish(task, replay, options))
    return replay


def _publish(task: Any, replay: Replay, options: dict[str, Any]) -> None:
    # As runs._publish: a broker that refuses the task fails the replay now, with the reason.
    try:
        task.apply_async((replay.pk,), task_id=replay.task_id, **options)
    except (OperationalError, OSError) as exc:
        logger.warning("Could not queue replay %s: %s", replay.pk, exc)
        replay.fail(f"Could not queue the replay: the task broker is unreachable ({exc}).")
    except Exception as exc:
        logger.exception("Could not queue replay %s", replay.pk)
        replay.fail(f"Could not queue the replay ({type(exc).__name__}: {exc}).")


def run(replay_id: int) -> str:
    """Answer every turn of the replay, in order; the outcome is in the rows. Answers a word
    for logs and tests."""
    from playground.tasks import answer_run  # tasks imports runs, which this module imports

    if not Replay.objects.claim(replay_id):
        return "not-queued"
    replay = Replay.objects.select_related("conversation").get(pk=replay_id)
    # Each answer may take the answer task's own limit, no more in all.
    answers = len(replay.turns) * max(replay.conversation.agents.count(), 1)
    deadline = time.monotonic() + answers * settings.CELERY_TASK_SOFT_TIME_LIMIT
    try:
        for index, turn in enumerate(replay.turns):
            if time.monotonic() > deadline:
                replay.fail(f"The replay took longer than {answers} answers may, and stopped.")
                return "failed"
            if not replay.start_turn(index):
                return "stopped"
            _, queued = runs.save_turn(
                replay.conversation, turn["content"], turn.get("params") or {},
                turn.get("custom_inputs"),
            )  # fmt: skip
            for answer in queued:
                # The beat also tells whether the replay was cancelled meanwhile: then the
                # rest of the turn is not answered.
                if not replay.beat():
                    Run(pk=answer.pk, task_id=answer.task_id).cancel()
                    continue
                answer_run(answer.pk)
                replay.beat()
    except Exception as exc:
        logger.exception("Replay %s failed", replay_id)
        replay.fail(f"Internal error while replaying: {type(exc).__name__}: {exc}")
        raise
    return "done" if replay.finish() else "stopped"


def reap_stale_replays() -> int:
    """Fail the replays no worker will finish (Replay.objects.stale); answers how many."""
    stale = Replay.objects.stale(
        timedelta(seconds=settings.SPYGLASS_PLAYGROUND_STALE_AFTER_S),
        timedelta(seconds=settings.SPYGLASS_PLAYGROUND_QUEUED_TIMEOUT_S),
    )
    now = timezone.now()
    lost = stale.filter(status=RunStatus.RUNNING).update(
        status=RunStatus.FAILED, finished_at=now, heartbeat_at=now,
        error="The worker stopped while replaying: it was restarted or lost. Replay again.",
    )  # fmt: skip
    never = stale.filter(status=RunStatus.QUEUED).update(
        status=RunStatus.FAILED, finished_at=now, heartbeat_at=now,
        error="No worker picked this replay up. Is a Celery worker running? Replay again.",
    )  # fmt: skip
    return lost + never
