"""Playground overhead: how long beyond the agent's own time an answer takes to be stored, and
to be seen by a client polling the run's fragment, with the embedded worker and with Redis.

    .venv/bin/python bench/playground.py [--runs 50] [--redis redis://127.0.0.1:6379/14]

The agent is the built-in echo agent with a fixed latency of 100 ms, so the agent's own time is
exactly 100 ms and everything beyond it is overhead: the view, the broker, the worker's claim,
the writes, the trace stored through tracking.ingest. Each run is sent through the real send
view (an htmx POST, as the page sends it) into a new conversation, one at a time.

- stored: from the send request to the run row's `finished_at` (answer, tokens, trace id);
- visible: from the send request until a client polling the fragment as the page does (every
  250 ms, passing the `seq` it has, 204 while nothing is new) receives the finished answer.

Database: DATABASE_URL, else a fresh SQLite file in a temporary directory. With --redis (or
REDIS_URL), a `celery -A webapp worker` process on a private queue answers the Redis runs.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
os.environ["SPYGLASS_AUTH"] = "0"  # the bench drives pages without logging in
if not os.environ.get("DATABASE_URL"):
    os.environ["SPYGLASS_VAR_DIR"] = tempfile.mkdtemp(prefix="spyglass-bench-playground-")

import django  # noqa: E402

django.setup()

from celery import Celery  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from playground import runs  # noqa: E402
from playground.models import Agent, Conversation, Run  # noqa: E402
from webapp import embedded_worker  # noqa: E402

AGENT_MS = 100
POLL_S = 0.25  # the page's hx-trigger="every 250ms"
TARGETS = {"stored p50": 50, "stored p95": 150, "visible p50": 300}


def make_app(broker_url: str, queue: str | None = None) -> Celery:
    """A Celery app configured like webapp.celery.app, on the given broker."""
    app = Celery(f"bench-{uuid.uuid4().hex[:8]}", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    options = dict(app.conf.broker_transport_options or {})
    if broker_url.startswith("memory://"):
        options["polling_interval"] = 0.01
    app.conf.update(broker_url=broker_url, result_backend=None,
                    broker_transport_options=options)  # fmt: skip
    if queue:
        app.conf.task_default_queue = queue
    app.finalize()
    return app


def measure(app: Celery, agent: Agent, count: int) -> tuple[list[float], list[float]]:
    """Overheads in ms beyond the agent's 100 ms: (stored, visible), one pair per run."""
    runs.default_app = app
    client = Client(HTTP_HOST="127.0.0.1", HTTP_HX_REQUEST="true")
    stored: list[float] = []
    visible: list[float] = []
    for i in range(count + 2):  # two warm-up runs, not counted
        conversation = Conversation.objects.create(title=f"bench {i}")
        conversation.agents.set([agent])
        started = time.time()
        response = client.post(f"/playground/c/{conversation.pk}/send", {"message": f"hi {i}"})
        assert response.status_code == 200, response.status_code
        run = Run.objects.filter(conversation=conversation).values("pk", "seq").get()
        seen_at = _poll_until_done(client, run["pk"], run["seq"], started)
        finished = Run.objects.get(pk=run["pk"])
        assert finished.status == "done", finished.error
        if i >= 2:
            stored.append((finished.finished_at.timestamp() - started) * 1000 - AGENT_MS)
            visible.append((seen_at - started) * 1000 - AGENT_MS)
    return stored, visible


def _poll_until_done(client: Client, run_id: int, seq: int, started: float) -> float:
    tick = started
    while time.time() - started < 30:
        tick += POLL_S
        time.sleep(max(0.0, tick - time.time()))
        response = client.get(f"/playground/runs/{run_id}/?seq={seq}")
        if response.status_code == 204:
            continue
        html = response.content.decode()
        if 'data-status="done"' in html or 'data-status="failed"' in html:
            return time.time()
        seq = Run.objects.values_list("seq", flat=True).get(pk=run_id)
    run = Run.objects.get(pk=run_id)
    raise RuntimeError(f"run {run_id} did not finish in 30 s: {run.status} {run.error}")


def start_redis_worker(redis_url: str, queue: str) -> subprocess.Popen:
    env = {**os.environ, "REDIS_URL": redis_url, "CELERY_BROKER_URL": redis_url}
    hostname = f"{queue}@{socket.gethostname()}"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "webapp", "worker", "--pool", "threads",
         "--concurrency", "2", "--queues", queue, "--hostname", hostname,
         "--without-gossip", "--without-mingle", "--loglevel", "WARNING"],
        cwd=REPO, env=env,
    )  # fmt: skip
    probe = make_app(redis_url)
    deadline = time.monotonic() + 60
    while not probe.control.ping(destination=[hostname], timeout=0.5):
        if worker.poll() is not None or time.monotonic() > deadline:
            worker.kill()
            raise RuntimeError("the Celery worker on Redis did not start")
    probe.close()
    return worker


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(name: str, stored: list[float], visible: list[float]) -> list[str]:
    rows = {"stored": stored, "visible": visible}
    misses = []
    for kind, values in rows.items():
        p50, p95 = percentile(values, 0.5), percentile(values, 0.95)
        print(f"{name:9} {kind:8} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms   "
              f"mean {statistics.fmean(values):7.1f} ms   max {max(values):7.1f} ms")  # fmt: skip
        for stat, value in (("p50", p50), ("p95", p95)):
            target = TARGETS.get(f"{kind} {stat}")
            if target is not None and value >= target:
                misses.append(f"{name} {kind} {stat} {value:.0f} ms >= {target} ms")
    return misses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument(
        "--redis",
        default=os.environ.get("REDIS_URL", ""),
        help="Redis URL for the worker-process variant (skipped without one)",
    )
    args = parser.parse_args()

    call_command("migrate", "--noinput", verbosity=0)
    agent, _ = Agent.objects.update_or_create(
        name="bench: echo in 100 ms", defaults={"kind": "builtin",
        "config": {"agent": "echo", "latency_ms": AGENT_MS, "word_delay_ms": 0}},
    )  # fmt: skip
    print(f"database: {connection.vendor}; {args.runs} runs each; overhead beyond the agent's "
          f"{AGENT_MS} ms; polling every {POLL_S * 1000:.0f} ms\n")  # fmt: skip
    misses: list[str] = []

    app = make_app("memory://")
    worker = embedded_worker.start(app, concurrency=4)
    try:
        misses += report("embedded", *measure(app, agent, args.runs))
    finally:
        embedded_worker.stop(worker)
        app.close()

    if args.redis:
        queue = f"bench-{uuid.uuid4().hex[:8]}"
        process = start_redis_worker(args.redis, queue)
        app = make_app(args.redis, queue)
        try:
            misses += report("redis", *measure(app, agent, args.runs))
        finally:
            process.terminate()
            process.wait(timeout=15)
            app.close()
    else:
        print("redis     (skipped: pass --redis or set REDIS_URL)")

    Conversation.objects.filter(title__startswith="bench ").delete()
    print("\ntargets: stored p50 < 50 ms, p95 < 150 ms; visible p50 < 300 ms: "
          + ("all met" if not misses else "MISSED: " + "; ".join(misses)))  # fmt: skip


if __name__ == "__main__":
    main()
