"""The playground's Celery tasks: answer one run, and reap runs nobody will finish.

`answer` claims its run with a conditional UPDATE (queued -> running): a redelivered message
finds it claimed and does nothing. It streams the agent's chunks into the row (throttled:
one write per interval, not per token), records the trace through `tracking.ingest`, and
ends the row done or failed with the reason. The page reads the row, never a result backend.

A cancel is a stop: the row turns cancelled at once (`Run.cancel`, from the page) and a cancel
signal is set (`cancel_signal`); the task's watcher thread, which looks for the signal every
CANCEL_POLL_S (and reads the row every ROW_CHECK_S), requests the agent call's
`Stop`: an HTTP call is aborted (its socket shut down), streaming or not, and an in-process
model stops at its next boundary. The partial trace is stored with its spans marked
cancelled (not failed), and the worker is free for the next answer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from datetime import UTC, datetime

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from playground import cancel_signal, checks, session_replay
from playground.agents.base import (
    AgentError,
    Answer,
    ChatRequest,
    Stop,
    Stopped,
    Stream,
    client_for,
    consume,
)
from playground.models import UNFINISHED, AgentCheck, Run, RunStatus
from playground.runs import reap_stale_runs
from playground.tracing import Span, TraceRecorder, agent_version, trace_id_for_task, trace_name
from tracking.ingest import SESSION_METADATA, USER_METADATA, TraceInfo, store
from tracking.models import CANCELLED_TAG, TRACE_NAME_TAG, Experiment

logger = logging.getLogger(__name__)

PLAYGROUND_EXPERIMENT = "Playground"
# How often a running answer looks for a cancel signal (a cache GET): a stop within this, plus
# the time to tear the call down.
CANCEL_POLL_S = 0.25
# How often it reads its row instead (one primary-key SELECT): what stops a call whose signal
# was lost, or a run the reaper failed.
ROW_CHECK_S = 1.0


class Cancelled(Exception):
    """The run left the running state (cancelled or reaped) while the agent was answering."""


# ignore_result: the row is the outcome and nobody reads a result. It also keeps sending
# off the result backend: with one, publishing first subscribes to the result in Redis, and
# while Redis is down that retried for 19 s and then raised past the broker error handling.
@shared_task(name="playground.answer", ignore_result=True)
def answer(run_id: int) -> str:
    return answer_run(run_id)


# A check's call stops itself at CHECK_TIMEOUT_S; the limits only catch what cannot be
# interrupted (a logged model's predict), so a check never holds a worker for long.
@shared_task(
    name=checks.CHECK_TASK,
    ignore_result=True,
    soft_time_limit=checks.CHECK_TIMEOUT_S + 10,
    time_limit=checks.CHECK_TIMEOUT_S + 20,
)
def check_agent(check_id: int) -> str:
    try:
        return checks.run(check_id)
    except SoftTimeLimitExceeded:
        AgentCheck(pk=check_id).fail(
            f"The check took longer than {checks.CHECK_TIMEOUT_S + 10:g} s and was stopped."
        )
        return "failed"


# A replay answers turn after turn in one task (session_replay.run); its time limit is set
# when it is enqueued, from its answer count, since each answer may take the default limit.
@shared_task(name=session_replay.REPLAY_TASK, ignore_result=True)
def replay(replay_id: int) -> str:
    return session_replay.run(replay_id)


@shared_task(name="playground.reap_stale_runs", acks_late=False)
def reap() -> int:
    # Runs first: a replay is lost once the answer its worker was giving is reaped.
    return reap_stale_runs() + session_replay.reap_stale_replays()


class _Writer:
    """Appends chunks to the run's content, writing at most once per interval."""

    def __init__(self, run_id: int, interval: float) -> None:
        self.run_id = run_id
        self.interval = interval
        self.parts: list[str] = []
        self.written = 0
        self.last_write = 0.0  # the first chunk is written at once: it is what users wait for

    def add(self, chunk: str) -> None:
        self.parts.append(chunk)
        if time.monotonic() - self.last_write >= self.interval:
            self.flush()

    def flush(self) -> None:
        if len(self.parts) == self.written:
            return
        updated = Run.objects.filter(pk=self.run_id, status=RunStatus.RUNNING).update(
            content="".join(self.parts), heartbeat_at=timezone.now(), seq=F("seq") + 1
        )
        self.written = len(self.parts)
        self.last_write = time.monotonic()
        if not updated:
            raise Cancelled


class _Heartbeat:
    """Marks the run alive every few seconds from a thread of its own while the agent
    answers, streaming or not. A run whose heartbeat stops (its worker was killed) is failed
    by the reaper within SPYGLASS_PLAYGROUND_STALE_AFTER_S instead of after the task's whole
    time limit. The beat never bumps `seq`: pollers see nothing new in it.

    Between beats it watches for a cancel signal, and the row: once the run is cancelled, or
    no longer running (reaped), it requests `stop`, which aborts the agent call the task
    thread is blocked in."""

    def __init__(self, run_id: int, every: float, stop: Stop) -> None:
        self.run_id = run_id
        self.task_id = Run.objects.filter(pk=run_id).values_list("task_id", flat=True).first()
        self.every = every
        self.stop = stop
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"heartbeat-{run_id}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join()

    def _beat(self) -> None:
        next_beat = time.monotonic() + self.every
        next_row_check = time.monotonic() + ROW_CHECK_S
        try:
            while not self.stopped.wait(min(CANCEL_POLL_S, self.every)):
                if cancel_signal.received(self.run_id, self.task_id or ""):
                    self.stop.request()
                    return
                now = time.monotonic()
                if now < next_beat and now < next_row_check:
                    continue
                next_row_check = now + ROW_CHECK_S
                run = Run.objects.filter(pk=self.run_id)
                try:
                    if now >= next_beat:
                        next_beat = now + self.every
                        run.filter(status=RunStatus.RUNNING).update(heartbeat_at=timezone.now())
                    status = run.values_list("status", flat=True).first()
                except Exception:  # a busy database: the next beat tries again
                    logger.warning("Heartbeat of run %s not written", self.run_id, exc_info=True)
                    continue
                # Only a run seen finished: a row this connection cannot see (deleted, or not
                # committed yet) stops nothing; the task's own writes notice a deleted one.
                if status is not None and status not in UNFINISHED:
                    self.stop.request()
                    return
        finally:
            connection.close()  # this thread's own connection


def answer_run(run_id: int) -> str:
    """Answer one run; the outcome is in the row. Answers a word for logs and tests."""
    if not Run.objects.claim(run_id):
        return "not-queued"
    stop = Stop()
    try:
        with _Heartbeat(run_id, settings.SPYGLASS_PLAYGROUND_HEARTBEAT_S, stop):
            return _answer_claimed(run_id, stop)
    except Exception as exc:
        # Whatever broke (the database, a bug), the run must not stay "running" until the
        # reaper: say so now if the database lets us.
        logger.exception("Run %s failed outside the agent call", run_id)
        Run(pk=run_id).fail(f"Internal error while answering: {type(exc).__name__}: {exc}")
        raise


def _answer_claimed(run_id: int, stop: Stop) -> str:
    run = Run.objects.select_related("agent").get(pk=run_id)
    agent = run.agent
    request = ChatRequest(**run.request)
    trace = TraceRecorder(trace_id_for_task(run.task_id))
    root = trace.root("playground", "CHAIN", inputs=request.body())
    root.attributes.update({"spyglass.playground.run_id": run.pk, "spyglass.agent": agent.name})
    call = root.child(agent.name, "AGENT", inputs=request.body())
    call.attributes["spyglass.agent.kind"] = agent.kind
    _record_started(trace, run, root)
    writer = _Writer(run_id, settings.SPYGLASS_PLAYGROUND_WRITE_INTERVAL_S)
    started = time.monotonic()
    result: Answer | None = None
    error = ""
    stream = None

    def on_chunk(chunk: str) -> None:
        stop.check()
        writer.add(chunk)

    try:
        stream = client_for(agent, stop).stream(request, call)
        # No last flush: the finishing UPDATE writes the whole answer anyway.
        result = consume(stream, on_chunk)
    except (Cancelled, Stopped):
        _stop(stream)
        ended = Run.objects.filter(pk=run_id).values_list("status", "error").first()
        if ended is None or ended[0] == RunStatus.CANCELLED:
            call.cancel()
            root.cancel()
            error = "Cancelled."
        else:  # reaped meanwhile: the trace says what the row says
            error = ended[1] or "The answer was stopped."
            call.fail(error)
            root.fail(error)
        latency_ms = int((time.monotonic() - started) * 1000)
        return _record_and_finish(trace, run, root, call, None, error, latency_ms)
    except AgentError as exc:
        error = str(exc)
    except SoftTimeLimitExceeded:
        _close(stream)
        error = (
            f"The answer took longer than the task's time limit "
            f"({settings.CELERY_TASK_SOFT_TIME_LIMIT} s) and was stopped."
        )
    except Exception as exc:
        logger.exception("Run %s failed", run_id)
        error = f"Unexpected error while calling the agent: {type(exc).__name__}: {exc}"
    latency_ms = int((time.monotonic() - started) * 1000)
    if result is None:
        call.fail(error)
        root.fail(error)
    else:
        call.set_usage(result.usage())
        call.end(result.as_output())
        root.end(result.as_output())
    return _record_and_finish(trace, run, root, call, result, error, latency_ms)


def _record_and_finish(trace: TraceRecorder, run: Run, root: Span, call: Span,
                       result: Answer | None, error: str, latency_ms: int) -> str:  # fmt: skip
    # One transaction, one commit: the trace and the finished row appear together, and the
    # answer waits for one durable write instead of two.
    with transaction.atomic():
        trace_id = _record(trace, run, root, call, result)
        return _finish(run.pk, result, error, latency_ms, trace_id, cancelled=root.cancelled)


def _stop(stream: Stream | None) -> None:
    # Raising Stopped where the generator waits unwinds it as a cancel: its spans end
    # cancelled, its connection closes. A stream that stopped itself has ended already.
    if stream is not None:
        with contextlib.suppress(Stopped, StopIteration, AgentError):
            stream.throw(Stopped())
        stream.close()


def _close(stream: object) -> None:
    # Closing the generator runs its `finally`s: the HTTP connection closes, spans end.
    close = getattr(stream, "close", None)
    if close is not None:
        close()


def _finish(run_id: int, result: Answer | None, error: str, latency_ms: int, trace_id: str,
            cancelled: bool = False) -> str:  # fmt: skip
    now = timezone.now()
    fields: dict[str, object] = {
        "finished_at": now, "heartbeat_at": now, "latency_ms": latency_ms,
        "trace_id": trace_id, "seq": F("seq") + 1,
    }  # fmt: skip
    if result is None:
        fields.update(status=RunStatus.CANCELLED if cancelled else RunStatus.FAILED, error=error)
    else:
        fields.update(
            status=RunStatus.DONE, content=result.content, custom_outputs=result.custom_outputs,
            prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
            total_tokens=result.total_tokens,
        )  # fmt: skip
    # Only a running run: one cancelled or reaped meanwhile keeps that state.
    updated = Run.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(**fields)
    if not updated:
        # Cancelled or reaped meanwhile: that state stays, with a link to what happened.
        Run.objects.filter(pk=run_id).update(trace_id=trace_id, seq=F("seq") + 1)
        return "cancelled"
    return "done" if result is not None else "failed"


def _record_started(trace: TraceRecorder, run: Run, root: Span) -> None:
    """Store the trace as in progress before the agent is called: a worker killed mid-answer
    leaves it for the reaper to end as an error (runs.py), not nothing. The row names the
    trace once it is finished, as before. A failure here is logged; the answer goes on."""
    try:
        experiment, _ = Experiment.objects.get_or_create(name=PLAYGROUND_EXPERIMENT)
        info = _trace_info(trace, run, root, None, experiment.pk, "IN_PROGRESS")
        store([info], trace.span_data(close_open=False), default_experiment_id=experiment.pk)
    except Exception:
        logger.exception("Could not store the start of the trace of run %s", run.pk)


def _trace_info(trace: TraceRecorder, run: Run, root: Span, result: Answer | None,
                experiment_id: int, state: str) -> TraceInfo:  # fmt: skip
    usage = result.usage() if result else {}
    metadata = {
        "spyglass.playground.run": str(run.pk),
        # A playground conversation is a session: its turns group on /sessions/.
        SESSION_METADATA: f"playground-{run.conversation_id}",
    }
    if run.conversation.owner_id:
        metadata[USER_METADATA] = run.conversation.owner.get_username()
    model_id, version = agent_version(run.agent)
    if model_id:
        metadata["mlflow.modelId"] = model_id
    if usage:
        metadata["mlflow.trace.tokenUsage"] = json.dumps(usage)
    users = [m.get("content", "") for m in run.request["messages"] if m.get("role") == "user"]
    last_user = users[-1] if users else ""
    return TraceInfo(
        trace_id=trace.trace_id,
        experiment_id=experiment_id,
        state=state,
        request_time=datetime.fromtimestamp(root.start_ns / 1e9, tz=UTC),
        duration_ns=None if root.end_ns is None else root.end_ns - root.start_ns,
        request_preview=str(last_user)[:1000],
        response_preview=(result.content if result else root.status_message)[:1000],
        metadata=metadata,
        tags={
            TRACE_NAME_TAG: trace_name(run.agent.name, version),
            "spyglass.agent": run.agent.name,
        },
    )


def _record(trace: TraceRecorder, run: Run, root: Span, call: Span, result: Answer | None) -> str:
    """Store the trace; answers its id, or "" when it could not be stored (logged)."""
    root.end()
    call.end()
    try:
        experiment, _ = Experiment.objects.get_or_create(name=PLAYGROUND_EXPERIMENT)
        # A cancelled answer failed in nothing: its trace is not an error, its tag says why
        # it ends early.
        state = "OK" if root.status == "OK" or root.cancelled else "ERROR"
        info = _trace_info(trace, run, root, result, experiment.pk, state)
        if root.cancelled:
            info.tags[CANCELLED_TAG] = "true"
        store([info], trace.span_data(), default_experiment_id=experiment.pk)
    except Exception:
        # The answer matters more than its trace: the run still ends done or failed.
        logger.exception("Could not store the trace of run %s", run.pk)
        return ""
    return trace.trace_id
