"""Answers going through a real broker to a real worker: in-process (`make run`) and Redis."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from playground import cancel_signal, runs, tasks
from playground.models import Message, Run, RunStatus
from tests.conftest import database_url_for_another_process, make_celery_app
from tests.playground.conftest import chat, wait_for, wait_until_finished
from tracking.models import Trace

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("sqlite_shared_reads"),
]


def test_a_message_is_answered_by_the_worker_app(worker_app, echo_agent):
    message = runs.send(chat(echo_agent), "hello worker", app=worker_app)

    run = wait_until_finished(message.runs.get().pk)

    assert run.status == RunStatus.DONE
    assert run.content == "You said: hello worker"
    assert Trace.objects.filter(trace_id=run.trace_id).exists()


def test_three_agents_answer_the_same_message_each_on_its_own(worker_app, echo_agent,
                                                              http_agent):  # fmt: skip
    chat_agent = http_agent("chat-agent", "mlflow-serving")
    responses = http_agent("responses", "mlflow-serving")
    message = runs.send(chat(echo_agent, chat_agent, responses), "same prompt",
                        custom_inputs={"k": 1}, app=worker_app)  # fmt: skip

    answers = {r.agent_id: wait_until_finished(r.pk) for r in message.runs.all()}

    assert answers[echo_agent.pk].content == "You said: same prompt"
    assert answers[chat_agent.pk].content == "Echo: same prompt"
    assert answers[responses.pk].custom_outputs == {"received_custom_inputs": {"k": 1}}
    assert len({a.trace_id for a in answers.values()}) == 3


def test_cancel_stops_an_answer_mid_stream(worker_app, http_agent, agent_server):
    message = runs.send(chat(http_agent("slow-stream")), "go", app=worker_app)
    run = message.runs.get()
    wait_for(lambda: Run.objects.get(pk=run.pk).content, what="first chunk")

    assert Run.objects.get(pk=run.pk).cancel()

    wait_for(lambda: Run.objects.get(pk=run.pk).trace_id, what="the trace of the cancelled run")
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert 0 < len(run.content.split()) < 40  # stopped part-way
    trace = Trace.objects.get(trace_id=run.trace_id)
    # A cancel is not an error: the partial trace is kept, marked cancelled.
    assert trace.state == "OK" and "Cancelled" in trace.response_preview
    assert trace.cancelled
    assert not trace.spans.filter(status="ERROR").exists()


@pytest.mark.parametrize(
    ("kind", "config"),
    [("openai", {"stream": False}), ("openai", {}), ("mlflow-serving", {})],
    ids=["openai-json", "openai-asked-to-stream", "mlflow-invocations"],
)
def test_cancel_aborts_an_answer_that_does_not_stream_and_frees_the_worker(
    worker_app, http_agent, agent_server, echo_agent, kind, config
):
    message = runs.send(chat(http_agent("slow-answer", kind, **config)), "take your time",
                        app=worker_app)  # fmt: skip
    run = message.runs.get()
    wait_for(lambda: agent_server.requests, what="the agent called")

    assert Run.objects.get(pk=run.pk).cancel()
    cancelled_at = time.monotonic()

    # The task ends (it writes the trace's id last) and the agent sees the call hung up.
    wait_for(lambda: Run.objects.get(pk=run.pk).trace_id, timeout=2, what="the task's end")
    wait_for(lambda: agent_server.hangups, timeout=2 - (time.monotonic() - cancelled_at),
             what="the HTTP call aborted")  # fmt: skip
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and run.error == "Cancelled."
    assert run.content == ""
    trace = Trace.objects.get(trace_id=run.trace_id)
    assert trace.state == "OK" and trace.cancelled
    spans = {s.name: s for s in trace.spans.all()}
    path = "/slow-answer/v1/chat/completions" if kind == "openai" else "/slow-answer/invocations"
    call = spans[f"POST {path}"]
    assert call.status == "UNSET" and call.attributes["spyglass.cancelled"] is True
    assert call.end_ns is not None
    root = spans["playground"]
    assert root.status == "UNSET" and root.status_message == "Cancelled."
    assert not trace.spans.filter(status="ERROR").exists()

    # The worker (one thread on in-memory SQLite) is free for the next answer.
    after = runs.send(chat(echo_agent), "next", app=worker_app)
    assert wait_until_finished(after.runs.get().pk, timeout=5).status == RunStatus.DONE


@pytest.mark.parametrize("path", ["signal", "row"])
def test_a_cancel_reaches_the_task_by_its_signal_and_without_it_by_the_row(
    worker_app, http_agent, agent_server, monkeypatch, path
):
    if path == "signal":  # the row alone would take a minute
        monkeypatch.setattr(tasks, "ROW_CHECK_S", 60.0)
    else:  # the signal is lost (Redis flushed, a cache not shared): the row check stops it
        monkeypatch.setattr(cancel_signal, "send", lambda run_id, task_id: None)
    message = runs.send(chat(http_agent("slow-answer", "openai", stream=False)), "wait",
                        app=worker_app)  # fmt: skip
    run = message.runs.get()
    wait_for(lambda: agent_server.requests, what="the agent called")

    assert Run.objects.get(pk=run.pk).cancel()

    wait_for(lambda: agent_server.hangups, timeout=tasks.ROW_CHECK_S + 1 if path == "row" else 1,
             what="the HTTP call aborted")  # fmt: skip
    wait_for(lambda: Run.objects.get(pk=run.pk).trace_id, what="the task's end")
    assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED


def test_an_unreachable_broker_fails_the_run_and_keeps_the_message(echo_agent):
    app = make_celery_app("redis://127.0.0.1:1/0", "")
    app.conf.broker_connection_timeout = 0.2
    app.conf.task_publish_retry_policy = {"max_retries": 0}
    try:
        message = runs.send(chat(echo_agent), "keep me", app=app)
    finally:
        app.close()

    run = Run.objects.get(message=message)
    assert run.status == RunStatus.FAILED
    assert "broker is unreachable" in run.error
    assert Message.objects.get(pk=message.pk).content == "keep me"


def test_a_worker_lost_mid_run_leaves_a_run_the_reaper_fails(worker_app, echo_agent):
    # The first worker claimed the run and died; its message is redelivered (acks late).
    conversation = chat(echo_agent)
    message = Message.objects.create(conversation=conversation, content="lost")
    run = runs._queued_run(conversation, message, echo_agent)
    Run.objects.claim(run.pk)

    worker_app.tasks[runs.ANSWER_TASK].apply_async((run.pk,), task_id=run.task_id)
    time.sleep(0.3)  # the redelivered task runs, finds the run claimed, and does nothing

    assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING
    assert runs.reap_stale_runs(running_for=timedelta(0)) == 1
    run = Run.objects.get(pk=run.pk)
    assert run.status == RunStatus.FAILED and "worker stopped" in run.error


@pytest.fixture
def redis_playground_worker(request, transactional_db, monkeypatch):
    """The Redis worker process, on the test database."""
    monkeypatch.setenv("DATABASE_URL", database_url_for_another_process())
    return request.getfixturevalue("redis_worker")


@pytest.mark.services
def test_a_message_is_answered_by_a_worker_process_on_redis(redis_playground_worker, http_agent):
    app, queue = redis_playground_worker
    agent = http_agent("openai")

    message = runs.send(chat(agent), "over redis", custom_inputs={"a": [1]}, app=app,
                        queue=queue)  # fmt: skip

    run = wait_until_finished(message.runs.get().pk, timeout=20)
    assert run.status == RunStatus.DONE, run.error
    assert run.content == "Echo: over redis"
    assert run.custom_outputs == {"received_custom_inputs": {"a": [1]}}
    assert Trace.objects.filter(trace_id=run.trace_id).exists()


@pytest.mark.services
def test_cancel_aborts_a_slow_answer_in_a_worker_process_on_redis(
    redis_playground_worker, http_agent, agent_server
):
    app, queue = redis_playground_worker
    message = runs.send(chat(http_agent("slow-answer", stream=False)), "slow", app=app,
                        queue=queue)  # fmt: skip
    run = message.runs.get()
    wait_for(lambda: agent_server.requests, timeout=20, what="the agent called")

    assert Run.objects.get(pk=run.pk).cancel()

    wait_for(lambda: Run.objects.get(pk=run.pk).trace_id, timeout=2, what="the task's end")
    assert agent_server.hangups
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert Trace.objects.get(trace_id=run.trace_id).cancelled


def test_the_reaper_runs_every_minute_from_beat(settings, worker_app):
    entry = settings.CELERY_BEAT_SCHEDULE["reap-stale-playground-runs"]

    assert entry["task"] in worker_app.tasks
    assert entry["schedule"] <= 60
