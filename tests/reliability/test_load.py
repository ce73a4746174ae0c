"""8 concurrent clients send 2,000 traces over HTTP to a real gunicorn: mixed sizes, both
paths, some sent twice, some spans-first, some split across requests. Every trace and span
is stored exactly once, on the suite's database (SQLite or PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from tests.reliability.conftest import query, server_env
from tests.reliability.load import COUNT_SQL, MISCOUNTED_SQL, SPANS_SQL, plan, send_all

TRACES = 2_000
CLIENTS = 8


def test_concurrent_mixed_ingest_stores_every_trace_and_span_once(
    tmp_path: Path, gunicorn, database_url: str
) -> None:
    server = gunicorn(server_env(tmp_path, database_url))
    planned = plan(TRACES)

    outcome = send_all(server.host, server.port, planned, CLIENTS)

    assert outcome.failures == []
    expected_spans = sum(p.size for p in planned)
    assert query(database_url, COUNT_SQL) == [(TRACES, expected_spans)]
    assert query(database_url, SPANS_SQL) == [(expected_spans,)]
    assert query(database_url, MISCOUNTED_SQL) == [(0,)]
