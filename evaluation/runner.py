"""Running an evaluation job: launching it, the workers' loop, cancelling, finishing, and
reaping what dead workers left.

A worker's loop (`drain`): take a lease, claim a chunk of pending rows, ask the agents, score
the answers, and write every finished row in one transaction (its trace through `ingest`, its
assessments, the row), at least once a second, so that a worker killed mid-chunk loses only
the rows it had not written. The last worker to find nothing left finishes the job: each
agent's run gets its `<scorer>/mean` metrics and its final status, as `mlflow.genai.evaluate`
leaves them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from evaluation.models import (
    ENDED,
    EvaluationJob,
    JobAgent,
    JobRow,
    JobState,
    Lease,
    RowState,
)
from evaluation.scorers import JUDGE, Row, Score, Scorer, ScorerSpec, SpecError, build
from playground.agents.base import AgentError, ChatRequest, Stop, Stopped, client_for, consume
from playground.models import Agent
from playground.tracing import TraceRecorder, agent_version
from tracking import cost, ingest
from tracking.evaluations import GENAI_EVALUATE, RUN_TYPE_TAG, SOURCE_RUN_KEY, dataset_input
from tracking.ingest import storable_text
from tracking.models import (
    Assessment,
    AssessmentKind,
    AssessmentSourceType,
    EvaluationDataset,
    Experiment,
    LoggedModel,
    Metric,
    ModelVersion,
    RegisteredModel,
    Run,
    RunStatus,
    Trace,
    TraceState,
)
from webapp.celery import app as default_app

logger = logging.getLogger(__name__)

MAX_AGENTS = 4
MAX_ROWS = 10_000
MAX_ATTEMPTS = 3  # workers a row may lose before it fails
HEARTBEAT_S = 2.0
LEASE_TIMEOUT_S = 20.0  # a lease that has not beaten for this long belongs to a dead worker
FLUSH_S = 1.0  # finished rows are written at least this often
CANCEL_POLL_S = 0.5  # how soon a worker sees a cancel
REQUEUE_AFTER_S = 300.0  # a job nobody works on gets new workers after this long
JOB_TAG = "spyglass.evaluation.job"
OUTPUT_MAX_CHARS = 20_000
DRAIN_TASK = "evaluation.drain"
DRAIN_BUDGET_S = 120.0  # a drain task hands on to a fresh one after this long


class LaunchError(ValueError):
    """What is wrong with an evaluation that cannot start, for the form to show."""


# --- Launching -------------------------------------------------------------------------------


@dataclass
class AgentChoice:
    agent: Agent
    rate_limit: float | None = None


def launch(
    *,
    dataset: EvaluationDataset,
    experiment: Experiment,
    agents: list[AgentChoice],
    scorer_specs: list[dict[str, Any]],
    name: str,
    user: Any = None,
    chunk_size: int = 25,
    concurrency: int | None = None,
    queue: str = "",
) -> EvaluationJob:
    """Create the job, one MLflow run per agent and the rows; the workers start once it
    commits. LaunchError for anything that would make it fail before its first row."""
    if not 1 <= len(agents) <= MAX_AGENTS:
        raise LaunchError(f"Choose between 1 and {MAX_AGENTS} agents.")
    build_scorers(scorer_specs)  # refuse a bad scorer now, not in every row
    records = list(dataset.records.order_by("pk").values("record_id", "inputs", "expectations"))
    if not records:
        raise LaunchError(f"The dataset {dataset.name!r} has no records.")
    if len(records) > MAX_ROWS:
        raise LaunchError(f"At most {MAX_ROWS:,} records per evaluation ({len(records):,} here).")
    user_name = getattr(user, "get_username", lambda: "")() or "spyglass"
    now = timezone.now()
    with transaction.atomic():
        job = EvaluationJob.objects.create(
            experiment=experiment,
            dataset=dataset,
            dataset_name=dataset.name,
            name=name,
            scorers=scorer_specs,
            total_rows=len(records) * len(agents),
            chunk_size=chunk_size,
            concurrency=concurrency or settings.SPYGLASS_EVALUATION_CONCURRENCY,
            queue=queue,
            created_by=user if getattr(user, "pk", None) else None,
        )
        rows = []
        for position, choice in enumerate(agents):
            model_id, model_uri = _pinned_model(choice.agent)
            run = Run.objects.start(
                experiment,
                name=f"{name} · {choice.agent.name}",
                user_id=user_name,
                start_time=now,
                tags={RUN_TYPE_TAG: GENAI_EVALUATE, JOB_TAG: str(job.pk)},
            )
            run.log_inputs([dataset_input(dataset)], [model_id] if model_id else [])
            arm = JobAgent.objects.create(
                job=job,
                position=position,
                agent=choice.agent,
                agent_name=choice.agent.name,
                model_id=model_id,
                model_uri=model_uri,
                run=run,
                rate_limit=choice.rate_limit,
            )
            rows += [
                JobRow(
                    agent=arm,
                    index=i,
                    record_id=record["record_id"],
                    inputs=record["inputs"],
                    expectations=record["expectations"] or {},
                )
                for i, record in enumerate(records)
            ]
        JobRow.objects.bulk_create(rows, batch_size=1000)
        transaction.on_commit(lambda: start_workers(job))
    return job


def _pinned_model(agent: Agent) -> tuple[str, str]:
    """(model id, model URI) the agent answers as for the whole job: a logged-model agent
    whose URI follows an alias (`models:/name@alias`) is pinned to the version the alias
    names now, so that moving the alias mid-run does not mix two versions in one run."""
    uri = str((agent.config or {}).get("model_uri") or "")
    if agent.kind == "logged-model" and uri.startswith("models:/") and "@" in uri:
        name, alias = uri.removeprefix("models:/").rsplit("@", 1)
        registered = RegisteredModel.objects.named(name)
        number = (registered.aliases or {}).get(alias) if registered else None
        version = (
            ModelVersion.objects.filter(registered_model=registered, version=number).first()
            if number is not None
            else None
        )
        if version is None:
            raise LaunchError(f"The alias {alias!r} of {name!r} names no version.")
        return version.model_id or "", f"models:/{name}/{version.version}"
    model_id, _label = agent_version(agent)
    return model_id, uri


def start_workers(job: EvaluationJob, count: int | None = None) -> None:
    """Enqueue one drain task per worker slot that has rows to take: chunks spread across
    the available workers; an extra task finds nothing and ends. A broker that cannot take
    them now is retried by the reaper, which finds the job with nobody on it."""
    if count is None:
        chunks = math.ceil(job.total_rows / max(1, job.chunk_size))
        count = max(1, min(chunks, worker_slots()))
    task = default_app.tasks[DRAIN_TASK]
    options: dict[str, Any] = {"queue": job.queue} if job.queue else {}
    EvaluationJob.objects.filter(pk=job.pk).update(workers_queued_at=timezone.now())
    try:
        for _ in range(count):
            task.apply_async((job.pk,), **options)
    except Exception:
        logger.exception("Could not queue the workers of evaluation %s", job.pk)


def worker_slots() -> int:
    return max(1, int(settings.SPYGLASS_EVALUATION_WORKERS))


def build_scorers(specs: list[dict[str, Any]], stop: Stop | None = None) -> list[Scorer]:
    """The job's scorers, built once per worker; LaunchError names a bad one."""
    try:
        return [build(ScorerSpec.from_config(spec), stop) for spec in specs]
    except SpecError as error:
        raise LaunchError(str(error)) from None


def _safe_score(scorer: Scorer, row: Row) -> Score:
    try:
        return scorer.score(row)
    except Exception as exc:  # a scorer's bug is that row's scorer error, not a crash
        logger.exception("Scorer %s failed", scorer.name)
        return Score.failed_to_score(f"The scorer failed: {type(exc).__name__}: {exc}")


def as_number(value: Any) -> float | None:
    """A feedback value as `<scorer>/mean` averages it: pass/fail as 1/0, numbers as they are."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


# --- Cancelling -------------------------------------------------------------------------------


def cancel(job: EvaluationJob) -> None:
    """Stop the job: rows not started are cancelled now, rows being answered stop within a
    second (their agent call is interrupted), and the job ends CANCELLED with the scores of
    the rows that finished. Kept in the database: a worker's heartbeat reads it, and rows a
    dead worker held end cancelled when the reaper takes them back."""
    with transaction.atomic():
        locked = EvaluationJob.objects.select_for_update().get(pk=job.pk)
        if locked.state in ENDED:
            return
        now = timezone.now()
        JobRow.objects.filter(agent__job=job, state=RowState.PENDING).update(
            state=RowState.CANCELLED, finished_at=now
        )
        locked.error = "Cancelled."
        locked.cancel_requested_at = now
        locked.save(update_fields=["error", "cancel_requested_at"])
    finish_if_done(job.pk)


def cancel_requested(job_id: int) -> bool:
    return EvaluationJob.objects.filter(pk=job_id, cancel_requested_at__isnull=False).exists()


# --- The worker's loop ------------------------------------------------------------------------


def drain(job_id: int) -> int:
    """Answer rows of the job until none is left; answers how many this worker wrote."""
    job = EvaluationJob.objects.filter(pk=job_id).first()
    if job is None or job.state in ENDED:
        return 0
    EvaluationJob.objects.filter(pk=job_id, state=JobState.QUEUED).update(
        state=JobState.RUNNING, started_at=timezone.now()
    )
    lease = Lease.objects.create(job=job, worker=_worker_name())
    stop = Stop()
    beat = _Heartbeat(lease.pk, job_id, stop)
    beat.start()
    written = 0
    error = ""
    started: set[int] = set()  # rows whose agent was asked (set.add is thread-safe)
    try:
        try:
            scorers = build_scorers(job.scorers, stop)
        except LaunchError as exc:  # a saved judge's endpoint deleted since the launch, say
            _fail_job(job, f"The scorers cannot run: {exc}")
            stop.request()  # nothing to answer: straight to the end (finish_if_done below)
            scorers = []
        agents = {a.pk: a for a in job.agents.select_related("agent", "run")}
        callers: dict[int, _Caller] = {}
        deadline = time.monotonic() + DRAIN_BUDGET_S
        while not stop.requested:
            if time.monotonic() > deadline:
                # A fresh task goes on, so that no task outlives the worker's time limits.
                start_workers(job, count=1)
                break
            rows = _claim(job, lease)
            if not rows:
                break
            for row in rows:
                if row.agent_id not in callers:
                    callers[row.agent_id] = _Caller(agents[row.agent_id], stop)

            def answer(row: JobRow) -> _Answered:
                started.add(row.pk)
                caller = callers[row.agent_id]
                return _answer(row, caller.arm, caller, scorers, job)

            batch = _Batch(job, lease)
            for answered in _side_by_side(rows, answer, job.concurrency, stop, deadline):
                batch.add(answered)
                if batch.due():
                    written += batch.flush()
            written += batch.flush()
    except Exception as exc:
        # Not a row's failure (those are caught per row) but the worker's: a database error,
        # say. Its rows go back for another try; one tried MAX_ATTEMPTS times fails with it.
        logger.exception("Evaluation %s: a worker failed", job_id)
        error = f"{type(exc).__name__}: {exc}"
    finally:
        beat.stop()
        _release(lease, cancelled=stop.requested, error=error, started=started)
    finish_if_done(job_id)
    return written


def _side_by_side(
    rows: list[JobRow],
    answer: Callable[[JobRow], _Answered],
    size: int,
    stop: Stop,
    deadline: float = math.inf,
) -> Iterator[_Answered]:
    """Each row answered, `size` at a time, in the order they finish: agent calls wait on
    the network, so a worker keeps several in flight. Rows not started when a stop comes
    are left (the lease's release cancels them). Each thread closes the database
    connection it may have opened (a judge reads its endpoint's key)."""
    if size <= 1 or len(rows) <= 1:
        for row in rows:
            if stop.requested or time.monotonic() > deadline:
                return
            yield answer(row)
        return
    todo: queue.SimpleQueue[JobRow] = queue.SimpleQueue()
    for row in rows:
        todo.put(row)
    done: queue.SimpleQueue[_Answered | BaseException | None] = queue.SimpleQueue()
    # Set when the caller stops reading (its error, a close): no thread starts another row.
    halt = threading.Event()

    def work() -> None:
        try:
            while not (stop.requested or halt.is_set() or time.monotonic() > deadline):
                try:
                    row = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    done.put(answer(row))
                except BaseException as exc:  # re-raised in the worker's own thread
                    done.put(exc)
        finally:
            connection.close()
            done.put(None)

    threads = [
        threading.Thread(target=work, daemon=True, name="evaluation-answer")
        for _ in range(min(size, len(rows)))
    ]
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        while running:
            item = done.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        halt.set()
    for thread in threads:
        thread.join()


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def _claim(job: EvaluationJob, lease: Lease) -> list[JobRow]:
    """The next chunk of pending rows, now RUNNING under this lease. On PostgreSQL SKIP
    LOCKED lets several workers claim at once; SQLite has one writer anyway."""
    with transaction.atomic():
        pending = JobRow.objects.filter(agent__job=job, state=RowState.PENDING)
        if connection.features.has_select_for_update_skip_locked:
            pending = pending.select_for_update(skip_locked=True, of=("self",))
        ids = list(
            pending.order_by("index", "agent_id").values_list("pk", flat=True)[: job.chunk_size]
        )
        if not ids:
            return []
        JobRow.objects.filter(pk__in=ids).update(
            state=RowState.RUNNING, lease=lease, attempts=F("attempts") + 1
        )
    return list(JobRow.objects.filter(pk__in=ids).order_by("index", "agent_id"))


def _release(
    lease: Lease, cancelled: bool, error: str = "", started: set[int] | None = None
) -> None:
    """Rows this worker still holds go back to the others (or, cancelled, end so); after a
    worker's error, a row already tried MAX_ATTEMPTS times fails with it instead of being
    tried forever. A row it claimed but never started (its time ran out, a stop came) has
    not been tried: its attempt is given back."""
    held = JobRow.objects.filter(lease=lease, state=RowState.RUNNING)
    now = timezone.now()
    if cancelled or cancel_requested(lease.job_id):
        held.update(state=RowState.CANCELLED, lease=None, finished_at=now)
    else:
        held.exclude(pk__in=sorted(started or ())).update(
            state=RowState.PENDING, lease=None, attempts=F("attempts") - 1
        )
        if error:
            held.filter(attempts__gte=MAX_ATTEMPTS).update(
                state=RowState.FAILED,
                lease=None,
                finished_at=now,
                error=f"Tried {MAX_ATTEMPTS} times; the last: {error}"[:2000],
            )
        held.update(state=RowState.PENDING, lease=None)
    Lease.objects.filter(pk=lease.pk).delete()


def _fail_job(job: EvaluationJob, reason: str) -> None:
    """End a job that cannot go on: its unfinished rows fail with the reason."""
    JobRow.objects.filter(agent__job=job, state__in=[RowState.PENDING, RowState.RUNNING]).update(
        state=RowState.FAILED, lease=None, finished_at=timezone.now(), error=reason[:2000]
    )
    EvaluationJob.objects.filter(pk=job.pk).update(error=reason[:2000], failed=True)


class _Heartbeat(threading.Thread):
    """Keeps the lease alive while the worker works (a worker stuck in a slow agent call is
    still alive), and turns a cancel into a stop of the call in progress."""

    def __init__(self, lease_id: int, job_id: int, stop: Stop) -> None:
        super().__init__(daemon=True, name=f"evaluation-heartbeat-{lease_id}")
        self.lease_id, self.job_id, self.stop_call = lease_id, job_id, stop
        self.done = threading.Event()

    def run(self) -> None:
        try:
            last_beat = last_check = 0.0
            while not self.done.wait(0.25):
                # Each step on its own: a locked database or a dropped connection skips a
                # beat; the thread goes on (a dead heartbeat would let a live worker's rows
                # be taken from it).
                try:
                    if time.monotonic() - last_check >= CANCEL_POLL_S:
                        last_check = time.monotonic()
                        if cancel_requested(self.job_id):
                            self.stop_call.request()
                    if time.monotonic() - last_beat >= HEARTBEAT_S:
                        Lease.objects.filter(pk=self.lease_id).update(beat_at=timezone.now())
                        last_beat = time.monotonic()
                except Exception:
                    logger.exception("Evaluation heartbeat of lease %s skipped", self.lease_id)
                    connection.close()
        finally:
            connection.close()

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=5)


# --- Answering one row ------------------------------------------------------------------------


@dataclass
class _Answered:
    row: JobRow
    arm: JobAgent
    trace_info: ingest.TraceInfo
    spans: list[ingest.SpanData]
    scores: list[tuple[Scorer, Score]] = field(default_factory=list)
    output: str = ""
    error: str = ""
    latency_ms: int = 0
    cancelled: bool = False


class _Caller:
    """One agent's client for this worker, behind the agent's rate limit."""

    def __init__(self, arm: JobAgent, stop: Stop) -> None:
        self.arm = arm
        self.stop = stop
        self.lock: Any = contextlib.nullcontext()
        agent = arm.agent
        if agent is None:
            self.client = None
            return
        if arm.model_uri and agent.kind == "logged-model":
            # The version pinned at launch, not whatever the alias names now.
            agent = Agent(
                **{**_fields(agent), "config": {**agent.config, "model_uri": arm.model_uri}}
            )
        # The key is read (still sealed) once per worker's turn, not once per row: a query
        # per call was a fifth of an instant agent's row. egress.secret_for unseals it.
        sealed = agent.sealed_api_key()
        agent.sealed_api_key = lambda: sealed  # type: ignore[method-assign]
        self.client = client_for(agent, stop)
        # A logged model answers in this process: one call at a time (its predict may keep
        # state); an HTTP agent takes as many as the job's concurrency.
        self.lock = threading.Lock() if agent.kind == "logged-model" else contextlib.nullcontext()

    def cost(self, usage: dict[str, int]) -> float | None:
        """The answer's cost in dollars from its token usage and the agent's model, as ingest
        prices the trace; None when the model has no known price."""
        model = str(((self.arm.agent.config if self.arm.agent else {}) or {}).get("model") or "")
        if not model or not usage:
            return None
        priced = cost.price(model, usage)
        return None if priced is None else priced["total_cost"]

    def call(self, request: ChatRequest, parent: Any) -> Any:
        if self.client is None:
            raise AgentError("The agent was deleted after the evaluation started.")
        if self.arm.rate_limit:
            _wait_turn(f"evaluation:rate:{self.arm.agent_id}", self.arm.rate_limit, self.stop)
        with self.lock:
            return consume(self.client.stream(request, parent), _ignore)


def _fields(agent: Agent) -> dict[str, Any]:
    return {f.attname: getattr(agent, f.attname) for f in Agent._meta.concrete_fields}


def _ignore(chunk: str) -> None:
    pass


def _wait_turn(key: str, per_second: float, stop: Stop | None = None) -> None:
    """Block until this call fits the agent's rate, shared by every worker (the cache is
    Redis wherever there are several)."""
    # One call per window of 1/rate seconds: 1.9 calls/s is 1.9, not 1.
    window_s = 1.0 / per_second
    allowed = 1
    while True:
        now = time.time()
        window = int(now // window_s)
        slot = f"{key}:{window}"
        cache.add(slot, 0, timeout=int(window_s) + 5)
        try:
            taken = cache.incr(slot)
        except ValueError:  # expired between add and incr
            continue
        if taken <= allowed:
            return
        pause = (window + 1) * window_s - now
        if stop is not None:
            stop.sleep(pause)  # a cancel ends the wait (Stopped: the row is cancelled)
        else:
            time.sleep(pause)


def request_of(inputs: Any) -> ChatRequest:
    """A dataset record's inputs as a chat request: its `messages` when it has them, its one
    text field as the user's message, else the inputs as JSON; `custom_inputs` goes along."""
    custom = None
    if isinstance(inputs, dict):
        custom = (
            inputs.get("custom_inputs") if isinstance(inputs.get("custom_inputs"), dict) else None
        )
        rest = {k: v for k, v in inputs.items() if k != "custom_inputs"}
        messages = rest.get("messages")
        if isinstance(messages, list) and messages and all(isinstance(m, dict) for m in messages):
            return ChatRequest(messages=messages, custom_inputs=custom)
        texts = [v for v in rest.values() if isinstance(v, str)]
        if len(rest) == 1 and texts:
            return ChatRequest(
                messages=[{"role": "user", "content": texts[0]}], custom_inputs=custom
            )
        content = json.dumps(rest, ensure_ascii=False)
    else:
        content = inputs if isinstance(inputs, str) else json.dumps(inputs, ensure_ascii=False)
    return ChatRequest(messages=[{"role": "user", "content": content}], custom_inputs=custom)


def _answer(
    row: JobRow,
    arm: JobAgent,
    caller: _Caller,
    scorers: list[Scorer],
    job: EvaluationJob,
) -> _Answered:
    recorder = TraceRecorder()
    root = recorder.root(arm.agent_name, "AGENT", inputs=row.inputs)
    root.attributes[JOB_TAG] = job.pk
    started = time.monotonic()
    answer, error, cancelled = None, "", False
    try:
        answer = caller.call(request_of(row.inputs), root)
    except Stopped:
        cancelled, error = True, "Cancelled."
        root.cancel()
    except AgentError as exc:
        error = str(exc)
    except Exception as exc:  # an agent's bug fails its row, not the evaluation
        logger.exception("Evaluation row %s failed", row.pk)
        error = f"Unexpected error while calling the agent: {type(exc).__name__}: {exc}"
    latency_ms = int((time.monotonic() - started) * 1000)
    output = ""
    outputs: Any = None
    if answer is not None:
        output = answer.content[:OUTPUT_MAX_CHARS]
        outputs = output if answer.custom_outputs is None else {
            "content": output,
            "custom_outputs": answer.custom_outputs,
        }  # fmt: skip
        root.set_usage(answer.usage())
        root.end(outputs)
    elif not cancelled:
        root.fail(error)
    spans = recorder.span_data()
    usage = answer.usage() if answer is not None else {}
    done = _Answered(
        row=row,
        arm=arm,
        trace_info=_trace_info(recorder.trace_id, root, arm, job, usage, row.inputs, output, error),
        spans=spans,
        output=output,
        error=error,
        latency_ms=latency_ms,
        cancelled=cancelled,
    )
    if answer is not None:
        scored = Row(
            inputs=row.inputs if isinstance(row.inputs, dict) else {"inputs": row.inputs},
            outputs=outputs,
            expectations=row.expectations or {},
            custom_outputs=answer.custom_outputs,
            latency_ms=latency_ms,
            tokens=answer.total_tokens,
            cost=caller.cost(usage),
        )
        done.scores = [(scorer, _safe_score(scorer, scored)) for scorer in scorers]
    return done


def _trace_info(
    trace_id: str,
    root: Any,
    arm: JobAgent,
    job: EvaluationJob,
    usage: dict[str, int],
    inputs: Any,
    output: str,
    error: str,
) -> ingest.TraceInfo:
    metadata = {"mlflow.sourceRun": arm.run.run_id, JOB_TAG: str(job.pk)}
    if arm.model_id:
        metadata["mlflow.modelId"] = arm.model_id
    if usage:
        metadata["mlflow.trace.tokenUsage"] = json.dumps(usage)
    return ingest.TraceInfo(
        trace_id=trace_id,
        experiment_id=job.experiment_id,
        state=TraceState.ERROR if error else TraceState.OK,
        request_time=datetime.fromtimestamp(root.start_ns / 1e9, tz=UTC),
        duration_ns=None if root.end_ns is None else root.end_ns - root.start_ns,
        request_preview=json.dumps(inputs, ensure_ascii=False)[:1000],
        response_preview=(output or error)[:1000],
        metadata=metadata,
        tags={"mlflow.traceName": arm.agent_name},
    )


# --- Writing finished rows --------------------------------------------------------------------


class _Batch:
    """Finished rows waiting to be written together."""

    def __init__(self, job: EvaluationJob, lease: Lease) -> None:
        self.job, self.lease = job, lease
        self.items: list[_Answered] = []
        self.since = time.monotonic()

    def add(self, item: _Answered) -> None:
        self.items.append(item)

    def due(self) -> bool:
        return time.monotonic() - self.since >= FLUSH_S

    def flush(self) -> int:
        items, self.items, self.since = self.items, [], time.monotonic()
        if not items:
            return 0
        with transaction.atomic():
            # Rows the reaper took back (this worker looked dead) are another's now.
            # Locked (PostgreSQL), so that the reaper cannot take them back between this
            # check and the UPDATE below, which checks the lease again anyway.
            mine = set(
                JobRow.objects.select_for_update()
                .filter(pk__in=[i.row.pk for i in items], lease=self.lease, state=RowState.RUNNING)
                .values_list("pk", flat=True)
            )
            items = [i for i in items if i.row.pk in mine]
            if not items:
                return 0
            ingest.store([i.trace_info for i in items], [s for i in items for s in i.spans])
            traces = dict(
                Trace.objects.filter(
                    trace_id__in=[i.trace_info.trace_id for i in items]
                ).values_list("trace_id", "pk")
            )
            Run.linked_traces.through.objects.bulk_create(
                [
                    Run.linked_traces.through(
                        run_id=i.arm.run_id, trace_id=traces[i.trace_info.trace_id]
                    )
                    for i in items
                ],
                ignore_conflicts=True,
            )
            Assessment.objects.bulk_create(
                [a for i in items for a in _assessments(i, traces[i.trace_info.trace_id])]
            )
            _finish_rows(items, timezone.now(), self.lease)
        return len(items)


def _finish_rows(items: list[_Answered], now: datetime, lease: Lease) -> None:
    """One UPDATE per row, sent as one executemany: bulk_update's CASE per column and row
    took longer to compile than the rest of the batch."""
    table = JobRow._meta.db_table
    finished_at = connection.ops.adapt_datetimefield_value(now)
    params = []
    for i in items:
        state = RowState.FAILED if i.error else RowState.DONE
        if i.cancelled:
            state = RowState.CANCELLED
        scores = {s.name: score.value for s, score in i.scores if score.error is None}
        params.append(
            (
                state,
                i.trace_info.trace_id,
                storable_text(i.output),
                storable_text(i.error),
                i.latency_ms,
                json.dumps(_storable(scores)),
                finished_at,
                i.row.pk,
                lease.pk,
            )
        )
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET state = %s, trace_id = %s, output = %s, error = %s, "
            "latency_ms = %s, scores = %s, finished_at = %s, lease_id = NULL "
            "WHERE id = %s AND lease_id = %s",
            params,
        )


def _storable(value: Any) -> Any:
    """A JSON value both databases store: agent and judge answers are untrusted text, and
    PostgreSQL refuses NUL in jsonb (one such answer would fail its whole batch)."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable_text(str(k)): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def _assessments(item: _Answered, trace_pk: int) -> Iterable[Assessment]:
    metadata = {SOURCE_RUN_KEY: item.arm.run.run_id}
    now = timezone.now()
    for scorer, score in item.scores:
        yield Assessment(
            trace_id=trace_pk,
            name=scorer.name,
            kind=AssessmentKind.FEEDBACK,
            value=_storable(score.value) if score.error is None else None,
            error=None
            if score.error is None
            else {
                "error_code": "SCORER_ERROR",
                "error_message": storable_text(score.error[:2000]),
            },
            rationale=storable_text((score.rationale or "")[:10_000]),
            source_type=(
                AssessmentSourceType.LLM_JUDGE
                if scorer.kind == JUDGE
                else AssessmentSourceType.CODE
            ),
            source_id=scorer.name,
            metadata=metadata,
            created_at=now,
            updated_at=now,
        )
    for name, value in (item.row.expectations or {}).items():
        yield Assessment(
            trace_id=trace_pk,
            name=str(name)[:250],
            kind=AssessmentKind.EXPECTATION,
            value=value,
            source_type=AssessmentSourceType.HUMAN,
            source_id="dataset",
            metadata=metadata,
            created_at=now,
            updated_at=now,
        )


# --- Finishing --------------------------------------------------------------------------------


def finish_if_done(job_id: int) -> bool:
    """End the job once no row is pending or running: each agent's run gets its scores'
    means and its status, the job its state. Safe to call from every worker at once."""
    if JobRow.objects.filter(
        agent__job_id=job_id, state__in=[RowState.PENDING, RowState.RUNNING]
    ).exists():
        return False
    with transaction.atomic():
        job = EvaluationJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.state in ENDED:
            return False
        counts = JobRow.objects.filter(agent__job=job).progress()
        done = sum(c.get(RowState.DONE, 0) for c in counts.values())
        if job.cancel_requested_at is not None:
            job.state = JobState.CANCELLED
        elif job.failed:
            job.state = JobState.FAILED  # it could not go on (_fail_job), whatever finished
        elif done == 0:
            job.state = JobState.FAILED
            first = JobRow.objects.filter(agent__job=job).exclude(error="").order_by("index")
            job.error = "Every row failed" + (
                f"; the first: {first.values_list('error', flat=True)[0]}"
                if first.exists()
                else "."
            )
        else:
            job.state = JobState.FINISHED
        job.finished_at = timezone.now()
        job.save(update_fields=["state", "error", "finished_at"])
        for arm in job.agents.select_related("run"):
            _close_run(arm, job, counts.get(arm.pk, {}))
    return True


def _close_run(arm: JobAgent, job: EvaluationJob, counts: dict[str, int]) -> None:
    run = arm.run
    if run is None:
        return
    means = partial_scores(arm)
    now_ms = int(time.time() * 1000)
    model = LoggedModel.objects.filter(model_id=arm.model_id).first() if arm.model_id else None
    dataset = job.dataset
    metrics = [
        Metric(
            run=run,
            logged_model=model,
            key=f"{name}/mean",
            value=mean,
            timestamp_ms=now_ms,
            step=0,
            dataset_name=job.dataset_name,
            dataset_digest=dataset.digest if dataset else "",
        )
        for name, mean in means.items()
    ]
    run.log_batch(metrics)
    if job.state == JobState.CANCELLED:
        status = RunStatus.KILLED
    elif counts.get(RowState.DONE) and job.state != JobState.FAILED:
        status = RunStatus.FINISHED
    else:
        status = RunStatus.FAILED
    run.update_info(status=status, end_time=timezone.now())


# --- Reaping ----------------------------------------------------------------------------------


def reap(now: datetime | None = None) -> int:
    """Give the rows of dead workers back (or fail them, once they lost MAX_ATTEMPTS
    workers), restart workers for jobs that have rows and nobody on them, and finish jobs
    with nothing left. Answers how many rows it moved."""
    now = now or timezone.now()
    moved = 0
    dead = list(Lease.objects.filter(beat_at__lt=now - timedelta(seconds=LEASE_TIMEOUT_S)))
    orphaned = set()
    for lease in dead:
        with transaction.atomic():
            held = JobRow.objects.filter(lease=lease, state=RowState.RUNNING)
            orphaned.add(lease.job_id)
            if cancel_requested(lease.job_id):  # nobody answers a cancelled job's rows
                moved += held.update(state=RowState.CANCELLED, lease=None, finished_at=now)
                lease.delete()
                continue
            moved += held.filter(attempts__gte=MAX_ATTEMPTS).update(
                state=RowState.FAILED,
                lease=None,
                finished_at=now,
                error=f"The worker answering this row was lost {MAX_ATTEMPTS} times.",
            )
            moved += held.update(state=RowState.PENDING, lease=None)
            lease.delete()
    alive = set(Lease.objects.values_list("job_id", flat=True))
    grace = now - timedelta(seconds=LEASE_TIMEOUT_S)
    stale = now - timedelta(seconds=REQUEUE_AFTER_S)
    waiting = EvaluationJob.objects.filter(
        Q(pk__in=orphaned) | Q(created_at__lt=grace),
        state__in=[JobState.QUEUED, JobState.RUNNING],
    ).exclude(pk__in=alive)
    for job in waiting:
        if finish_if_done(job.pk) or job.cancel_requested_at is not None:
            continue
        # A dead worker's job at once; one whose tasks may still wait in a busy broker only
        # once they have had time to start, so that waiting tasks do not pile up.
        if job.pk in orphaned or job.workers_queued_at is None or job.workers_queued_at < stale:
            start_workers(job)
    return moved


# --- Reading progress -------------------------------------------------------------------------


@dataclass
class Progress:
    total: int
    done: int
    failed: int
    cancelled: int
    running: int
    eta_s: float | None

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.cancelled

    @property
    def percent(self) -> int:
        return int(100 * self.finished / self.total) if self.total else 100


def progress_of(counts: dict[str, int], total: int, job: EvaluationJob | None = None) -> Progress:
    """Progress from {row state: rows}; the ETA from the pace so far, while it runs."""
    done, failed = counts.get(RowState.DONE, 0), counts.get(RowState.FAILED, 0)
    cancelled, running = counts.get(RowState.CANCELLED, 0), counts.get(RowState.RUNNING, 0)
    finished = done + failed + cancelled
    eta = None
    if job is not None and job.started_at and finished and job.state == JobState.RUNNING:
        elapsed = (timezone.now() - job.started_at).total_seconds()
        eta = elapsed / finished * (total - finished)
    return Progress(total, done, failed, cancelled, running, eta)


def progress(job: EvaluationJob, counts: dict[int, dict[str, int]] | None = None) -> Progress:
    """The whole job's progress (`counts`: JobRow.objects...progress(), if read already)."""
    counts = counts if counts is not None else JobRow.objects.filter(agent__job=job).progress()
    summed: dict[str, int] = {}
    for per_agent in counts.values():
        for state, n in per_agent.items():
            summed[state] = summed.get(state, 0) + n
    return progress_of(summed, job.total_rows, job)


def partial_scores(arm: JobAgent) -> dict[str, float]:
    """Each scorer's mean over the agent's rows finished so far (what the run's
    `<scorer>/mean` will be if nothing else finishes)."""
    values: dict[str, list[float]] = {}
    for scores in JobRow.objects.filter(agent=arm, state=RowState.DONE).values_list(
        "scores", flat=True
    ):
        for name, value in (scores or {}).items():
            number = as_number(value)
            if number is not None:
                values.setdefault(name, []).append(number)
    return {name: sum(v) / len(v) for name, v in sorted(values.items())}
