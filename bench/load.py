"""Sustained mixed ingest through a real gunicorn, and the count check after it.

    .venv/bin/python bench/load.py [--traces 20000] [--clients 8,32]

The load of tests/reliability/test_load.py, bigger: traces of 1, 3, 10 and 40 spans by OTLP
and by the mlflow client's two requests, some sent twice, some spans-first, some split over
two requests. For each client count it prints traces/s and spans/s sustained, p50/p95
latency per request, and sent vs stored (lost and duplicated must both be zero).

The database is DATABASE_URL when it names PostgreSQL (a fresh database is created beside
it and dropped afterwards), else a fresh SQLite file. Target on a 2-core machine: zero lost,
zero duplicated, and at least 1,000 spans/s sustained on PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from harness import answers, free_port, server  # noqa: E402

from tests.reliability.conftest import GUNICORN, migrate, query, server_env  # noqa: E402
from tests.reliability.load import (  # noqa: E402
    COUNT_SQL,
    MISCOUNTED_SQL,
    SPANS_SQL,
    plan,
    send_all,
)

TARGET_SPANS_PER_SECOND = 1_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=20_000)
    parser.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")], default=[8, 32])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="spyglass-bench-load-"))
    try:
        for clients in args.clients:
            with database(tmp / str(clients)) as url:
                run(args, clients, url, tmp / str(clients))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class database:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.admin = ""
        self.name = ""

    def __enter__(self) -> str:
        self.tmp.mkdir(parents=True, exist_ok=True)
        suite = os.environ.get("DATABASE_URL", "")
        if not suite.startswith(("postgres://", "postgresql://")):
            url = f"sqlite:///{self.tmp / 'spyglass.sqlite3'}"
        else:
            import psycopg

            base = suite.rpartition("/")[0]
            self.admin = f"{base}/postgres".replace("postgres://", "postgresql://", 1)
            self.name = f"spyglass_load_{secrets.token_hex(4)}"
            with psycopg.connect(self.admin, autocommit=True) as db:
                db.execute(f'CREATE DATABASE "{self.name}"')
            url = f"{base}/{self.name}"
        migrate(server_env(self.tmp, url))
        return url

    def __exit__(self, *exc: object) -> None:
        if self.name:
            import psycopg

            with psycopg.connect(self.admin, autocommit=True) as db:
                db.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def run(args: argparse.Namespace, clients: int, url: str, tmp: Path) -> None:
    env = server_env(tmp, url)
    port = free_port()
    command = [str(GUNICORN), "webapp.wsgi", "-w", str(args.workers), "--threads",
               str(args.threads), "-b", f"127.0.0.1:{port}"]  # fmt: skip
    planned = plan(args.traces)
    vendor = "postgresql" if url.startswith("postgres") else "sqlite"
    probe = {"Content-Type": "application/x-protobuf"}
    ready = lambda: answers(port, "POST", "/v1/traces", b"", probe)  # noqa: E731
    with server(command, env, tmp / "gunicorn.log", ready):
        outcome = send_all("127.0.0.1", port, planned, clients)
    sent_spans = sum(p.size for p in planned)
    ((traces, summed),) = query(url, COUNT_SQL)
    ((spans,),) = query(url, SPANS_SQL)
    ((miscounted,),) = query(url, MISCOUNTED_SQL)
    lost = args.traces - traces
    print(
        f"{vendor}: {clients} clients, {args.traces:,} traces ({sent_spans:,} spans, "
        f"{outcome.requests:,} requests) in {outcome.seconds:.1f} s: "
        f"{args.traces / outcome.seconds:,.0f} traces/s, {sent_spans / outcome.seconds:,.0f} "
        f"spans/s; request p50 {outcome.percentile(0.5) * 1000:.1f} ms, "
        f"p95 {outcome.percentile(0.95) * 1000:.1f} ms"
    )
    print(
        f"  stored {traces:,}/{args.traces:,} traces, {spans:,}/{sent_spans:,} spans; "
        f"lost {lost}, duplicated {max(0, spans - sent_spans)}, counts off {miscounted}, "
        f"failed requests {len(outcome.failures)}"
        + (f" (first: {outcome.failures[0]})" if outcome.failures else "")
    )
    ok = lost == 0 and spans == sent_spans and summed == sent_spans and not outcome.failures
    if vendor == "postgresql":
        rate = sent_spans / outcome.seconds
        verdict = "met" if ok and rate >= TARGET_SPANS_PER_SECOND else "MISSED"
        print(
            f"  target: none lost or duplicated, >= {TARGET_SPANS_PER_SECOND:,} spans/s: {verdict}"
        )
    else:
        print(f"  none lost or duplicated: {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    main()
