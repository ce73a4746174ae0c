"""Faults around a running answer, with real processes.

On a Redis server of the test's own (the suite's shared one stays up): a message sent while
Redis is down is kept and its run explains why it did not start; sending again once Redis
is back is answered; work queued before a restart is answered after it (Redis with its
append-only file, as production runs it). A worker killed mid-answer leaves a run that the
reaper fails with an explanation within seconds (its heartbeat stopped), never a stuck one.
"""

from __future__ import annotations

import time
import uuid

import pytest

from playground import runs, tracing
from playground.models import Message, Run, RunStatus
from tests.conftest import make_celery_app
from tests.playground.conftest import chat, wait_until_finished
from tests.reliability.conftest import fast_failing_app, start_worker, stop_worker
from tracking.models import Trace

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("sqlite_shared_reads"),
]


def test_a_message_sent_while_redis_is_down_is_kept_and_can_be_sent_again(
    private_redis, echo_agent
):
    queue = f"outage-{uuid.uuid4().hex[:8]}"
    conversation = chat(echo_agent)
    private_redis.stop()
    # Configured as production is: Redis is the broker and the result backend.
    app = make_celery_app(private_redis.url, private_redis.url)
    try:
        started = time.monotonic()
        message = runs.send(conversation, "are you there?", app=app, queue=queue)
        took = time.monotonic() - started

        run = Run.objects.get(message=message)
        assert run.status == RunStatus.FAILED  # at once, not after the reaper's 10 minutes
        assert "broker is unreachable" in run.error
        assert "send it again" in run.error
        assert took < 2.0, f"sending took {took:.1f} s while Redis was down"
        assert Message.objects.get(pk=message.pk).content == "are you there?"

        private_redis.start()
        worker = start_worker(private_redis.url, queue)
        try:
            again = runs.send(conversation, "are you there?", app=app, queue=queue)
            answered = wait_until_finished(again.runs.get().pk, timeout=30)
        finally:
            stop_worker(worker)
    finally:
        app.close()

    assert answered.status == RunStatus.DONE, answered.error
    assert answered.content == "You said: are you there?"


def test_work_queued_before_a_redis_restart_is_answered_after_it(private_redis, echo_agent):
    queue = f"restart-{uuid.uuid4().hex[:8]}"
    app = fast_failing_app(private_redis.url)
    try:
        # No worker yet: the run waits in Redis.
        message = runs.send(chat(echo_agent), "still queued?", app=app, queue=queue)
        assert Run.objects.get(message=message).status == RunStatus.QUEUED

        private_redis.stop()
        private_redis.start()
        worker = start_worker(private_redis.url, queue)
        try:
            run = wait_until_finished(message.runs.get().pk, timeout=30)
        finally:
            stop_worker(worker)
    finally:
        app.close()

    assert run.status == RunStatus.DONE, run.error
    assert run.content == "You said: still queued?"


def test_a_worker_killed_mid_answer_ends_failed_and_explained_not_stuck(
    private_redis, http_agent, monkeypatch, settings
):
    queue = f"kill-{uuid.uuid4().hex[:8]}"
    # A beat every 0.2 s in the worker; silent for 0.8 s counts as lost.
    monkeypatch.setenv("SPYGLASS_PLAYGROUND_HEARTBEAT_S", "0.2")
    settings.SPYGLASS_PLAYGROUND_STALE_AFTER_S = 0.8
    app = fast_failing_app(private_redis.url)
    worker = start_worker(private_redis.url, queue)
    try:
        message = runs.send(chat(http_agent("hang")), "slow one", app=app, queue=queue)
        run_id = message.runs.get().pk
        deadline = time.monotonic() + 20
        while Run.objects.get(pk=run_id).status != RunStatus.RUNNING:
            assert time.monotonic() < deadline, "the worker never started the run"
            time.sleep(0.05)
        # The agent says nothing for 2 s; past the stale window the heartbeat keeps it alive.
        time.sleep(1.0)
        assert runs.reap_stale_runs() == 0

        worker.kill()  # SIGKILL mid-answer
        worker.wait()
        time.sleep(1.5)
        assert runs.reap_stale_runs() == 1
    finally:
        if worker.poll() is None:
            stop_worker(worker)
        app.close()

    run = Run.objects.get(pk=run_id)
    assert run.status == RunStatus.FAILED
    assert "worker stopped while answering" in run.error
    assert run.content == ""  # no half answer presented as one
    assert Run.objects.filter(message=message).count() == 1  # and no second answer
    # Its trace was stored when the answer started, and ends as an error with the reason.
    trace = Trace.objects.get(trace_id=tracing.trace_id_for_task(run.task_id))
    assert trace.state == "ERROR"
    assert "worker stopped while answering" in trace.response_preview
    spans = {span.name: span for span in trace.spans.all()}
    assert spans["playground"].status == "ERROR"
    assert "worker stopped while answering" in spans["playground"].status_message
    assert spans["playground"].end_ns is not None
    assert spans[run.agent.name].end_ns is not None  # the agent call, open when it died
