"""Faults around a running answer, with real processes.

On a Redis server of the test's own (the suite's shared one stays up): a message sent while
Redis is down is kept and its run explains why it did not start; sending again once Redis
is back is answered; work queued before a restart is answered after it (Redis with its
append-only file, as production runs it). A worker killed mid-answer leaves a run that the
reaper fails with an explanation within seconds (its heartbeat stopped), never a stuck one.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from playground import runs
from playground.models import Message, Run, RunStatus
from tests.conftest import (
    REPO,
    database_url_for_another_process,
    make_celery_app,
    service_unavailable,
)
from tests.playground.conftest import chat, wait_until_finished

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("sqlite_shared_reads"),
]


class PrivateRedis:
    """A redis-server on a free port, with its append-only file in a folder of its own."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.folder = folder
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()  # SIGTERM: Redis writes its append-only file and exits
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        service_unavailable("redis-server is not installed (apt-get install redis-server)")
    redis = PrivateRedis(tmp_path)
    redis.start()
    yield redis
    redis.stop()


def start_worker(broker: str, queue: str) -> subprocess.Popen:
    """A `celery -A webapp worker` process on `broker`, on the test database."""
    database_url = database_url_for_another_process()
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": broker,
           "CELERY_BROKER_URL": broker, "CELERY_RESULT_BACKEND": ""}  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "webapp", "worker", "--pool", "threads",
         "--concurrency", "1", "--queues", queue, "--hostname", f"{queue}@%h",
         "--without-gossip", "--without-mingle", "--loglevel", "WARNING"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def stop_worker(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def fast_failing_app(broker: str):
    app = make_celery_app(broker, "")
    app.conf.broker_connection_timeout = 0.5
    app.conf.task_publish_retry_policy = {"max_retries": 0}
    return app


def test_a_message_sent_while_redis_is_down_is_kept_and_can_be_sent_again(
    private_redis, echo_agent
):
    queue = f"outage-{uuid.uuid4().hex[:8]}"
    conversation = chat(echo_agent)
    private_redis.stop()
    app = fast_failing_app(private_redis.url)
    try:
        message = runs.send(conversation, "are you there?", app=app, queue=queue)

        run = Run.objects.get(message=message)
        assert run.status == RunStatus.FAILED
        assert "broker is unreachable" in run.error
        assert "send it again" in run.error
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
