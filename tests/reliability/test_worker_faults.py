"""A Celery worker process outlives a Redis outage that happens while it runs a task.

Real processes: a redis-server of the test's own (stopped and started again), a
`celery -A webapp worker` process, a playground run whose answer is still streaming when
Redis goes away. The same worker process must answer a ping afterwards.
"""

from __future__ import annotations

import socket
import time
import uuid

import pytest

from playground import runs
from playground.models import Agent, Run, RunStatus
from tests.playground.conftest import chat, wait_until_finished
from tests.reliability.conftest import fast_failing_app, start_worker, stop_worker
from webapp import health

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("sqlite_shared_reads"),
]


def _wait_for_ping(app, hostname: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if app.control.ping(destination=[hostname], timeout=0.5):
                return True
        except Exception:  # Redis still coming back: ask again
            time.sleep(0.2)
    return False


@pytest.mark.parametrize("production_shape", [True, False], ids=["prefork", "threads"])
def test_a_worker_survives_redis_restarting_while_it_answers(
    private_redis, tmp_path, production_shape, client, monkeypatch
):
    queue = f"survive-{uuid.uuid4().hex[:8]}"
    hostname = f"{queue}@{socket.gethostname()}"
    # Twenty words, 0.25 s apart: five seconds of answer, Redis goes away in the middle.
    slow = Agent.objects.create(
        name=f"slow-echo-{queue}", kind="builtin", config={"agent": "echo", "word_delay_ms": 250}
    )
    log = tmp_path / "worker.log"
    app = fast_failing_app(private_redis.url)
    # Results in Redis too, as compose.yaml runs it.
    worker = start_worker(private_redis.url, queue, log=log, result_backend=private_redis.url,
                          production_shape=production_shape)  # fmt: skip
    try:
        assert _wait_for_ping(app, hostname, 30), log.read_text()
        text = " ".join(f"w{i}" for i in range(18))
        message = runs.send(chat(slow), text, app=app, queue=queue)
        run_id = message.runs.get().pk
        deadline = time.monotonic() + 20
        while Run.objects.get(pk=run_id).status != RunStatus.RUNNING:
            assert time.monotonic() < deadline, "the worker never started the run"
            time.sleep(0.05)
        # Let the consumer go back to waiting on Redis for the next message (a BRPOP in
        # flight): the crash needed Redis to go away during that wait.
        time.sleep(1.5)

        private_redis.stop()
        time.sleep(2.0)
        private_redis.start()

        # The run the worker had in hand ends (done), and nobody answers it twice.
        run = wait_until_finished(run_id, timeout=60)
        assert run.status == RunStatus.DONE, run.error
        assert run.content == f"You said: {text}"
        # The same process, not a restarted one, answers a ping once Redis is back.
        assert _wait_for_ping(app, hostname, 30), log.read_text()[-4000:]
        time.sleep(1.0)  # what follows the ack (a crash came a moment after it)
        assert worker.poll() is None, log.read_text()[-4000:]
        assert _wait_for_ping(app, hostname, 10), log.read_text()[-4000:]
        assert "Unrecoverable error" not in log.read_text()
        # /healthz, asked through this Redis, finds the worker.
        monkeypatch.setattr(health, "celery_app", app)
        response = client.get("/healthz")
        assert response.status_code == 200, response.json()
        assert hostname in response.json()["checks"]["worker"]["workers"]
        # And it still takes new work.
        again = runs.send(chat(slow), "again", app=app, queue=queue)
        answered = wait_until_finished(again.runs.get().pk, timeout=30)
        assert answered.status == RunStatus.DONE, answered.error
    finally:
        stop_worker(worker)
        app.close()
