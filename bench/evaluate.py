"""Evaluations launched from the browser: rows per second through the same path the UI takes,
then the result pages' server time.

    .venv/bin/python bench/evaluate.py [--rows 1000] [--queries 30]

The evaluation is launched by POSTing the launch form (/evaluations/new/) through Django's test
Client, exactly as the page does, and answered by the default embedded worker (the threads
`make run` starts, SPYGLASS_EMBEDDED_CONCURRENCY of them, on the in-memory broker): 2 agents
that answer instantly (the built-in echo agent, in process, and an OpenAI-compatible HTTP
server on loopback, in a process of its own) over a dataset of `--rows` records, with 3 code
scorers (exact match, contains, latency). Timed from the POST until the job is finished, every
row's trace, assessments and the runs' metrics written.

Then the run page of one of the two runs and the compare page of both are timed
(bench/evaluation_pages.py's `measure`).

Database: DATABASE_URL when it names PostgreSQL (migrated first; the database must exist:
`createdb -h 127.0.0.1 -U postgres spyglass_bench_evaluate`), else a fresh SQLite file in a
temporary directory. Last line: `rows_per_s=<n> run_p95_ms=<n> compare_p95_ms=<n>`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

from harness import scratch  # noqa: E402
from models import migrate  # noqa: E402

TARGET_ROWS_PER_S = 200
SCORERS = {
    "use_exact_match": "on",
    "exact_match__expectation": "expected_response",
    "use_contains": "on",
    "contains__text": "q",
    "use_latency": "on",
    "latency__max_ms": "1000",
}


class InstantServer(ThreadingHTTPServer):
    # Several calls arrive at once: socketserver's backlog of 5 would drop SYNs (a second each).
    request_queue_size = 128


class Instant(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat-completions endpoint that answers at once."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        users = [m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"]
        answer = {
            "id": "x",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": f"Echo: {users[-1] if users else ''}",
                    },
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        }
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--serve-agent", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_agent:  # the agent runs in a process of its own, as agents do
        InstantServer(("127.0.0.1", args.serve_agent), Instant).serve_forever()
        return
    port = _free_port()
    agent_process = subprocess.Popen([sys.executable, __file__, "--serve-agent", str(port)])
    _wait_for_port(port)
    with scratch("spyglass-bench-evaluate-") as tmp:
        os.environ["SPYGLASS_AUTH"] = "0"  # the bench drives pages without logging in
        migrate(tmp)
        import django

        django.setup()
        import evaluation_pages
        from django.conf import settings
        from django.db import connection
        from django.test import Client

        from evaluation import runner
        from evaluation.models import EvaluationJob, JobRow
        from playground.models import Agent
        from tracking.models import EvaluationDataset, Experiment
        from webapp import embedded_worker

        experiment = Experiment.objects.create(name="bench-evaluate")
        dataset = EvaluationDataset.create("bench-questions", {}, [experiment.pk])
        dataset.merge_records(
            [
                {
                    "inputs": {"question": f"q{i}"},
                    "expectations": {"expected_response": f"Echo: q{i}"},
                }
                for i in range(args.rows)
            ]
        )
        echo = Agent.objects.create(
            name="echo", kind="builtin", config={"agent": "echo", "word_delay_ms": 0}
        )
        http = Agent.objects.create(
            name="instant-http",
            kind="openai",
            config={"url": f"http://127.0.0.1:{port}/v1", "stream": False},
        )
        app = _memory_app()
        runner.default_app = app
        worker = embedded_worker.start(app, concurrency=settings.SPYGLASS_EMBEDDED_CONCURRENCY)
        try:
            client = Client(SERVER_NAME="localhost")
            form = {
                "dataset": dataset.dataset_id,
                "experiment": experiment.pk,
                "name": "bench",
                "agent_0": http.pk,
                "agent_1": echo.pk,
                "judge_output": "pass_fail",
                **SCORERS,
            }
            started = time.perf_counter()
            response = client.post("/evaluations/new/", form)
            assert response.status_code == 302, response.content[:2000]
            job = EvaluationJob.objects.latest("pk")
            while not EvaluationJob.objects.get(pk=job.pk).ended:
                time.sleep(0.05)
            seconds = time.perf_counter() - started
            job.refresh_from_db()
            counts = JobRow.objects.filter(agent__job=job).progress()
            assert job.state == "FINISHED", (job.state, job.error, counts)
            rows = job.total_rows
            rows_per_s = rows / seconds
            print(
                f"{connection.vendor}: {args.rows:,} records x 2 agents = {rows:,} rows, "
                f"3 code scorers, {settings.SPYGLASS_EMBEDDED_CONCURRENCY} embedded worker threads"
            )
            print(f"  launch to finished: {seconds:.1f} s, {rows_per_s:,.0f} rows/s "
                  f"(goal >= {TARGET_ROWS_PER_S})")  # fmt: skip
            run_ids = [a.run.run_id for a in job.agents.select_related("run")]
        finally:
            embedded_worker.stop(worker)
        figures = evaluation_pages.measure(run_ids, repeat=args.queries)
        for name, value in figures.items():
            print(f"  {name}: {value:,.1f} ms")
        print(
            f"rows_per_s={rows_per_s:.0f} run_p95_ms={figures['run_p95_ms']:.1f} "
            f"compare_p95_ms={figures['compare_p95_ms']:.1f}"
        )
    agent_process.terminate()
    agent_process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("the agent server did not start")


def _memory_app():
    import uuid

    from celery import Celery

    app = Celery(f"bench-{uuid.uuid4().hex[:8]}", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    options = dict(app.conf.broker_transport_options or {})
    options["polling_interval"] = 0.01
    app.conf.update(broker_url="memory://", result_backend=None,
                    broker_transport_options=options)  # fmt: skip
    app.finalize()
    return app


if __name__ == "__main__":
    main()
