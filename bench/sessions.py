"""Sessions pages at a million traces in 100,000 sessions: /sessions/ and a 50-turn session.

    .venv/bin/python bench/sessions.py [--traces 1000000] [--sessions 100000] [--repeat 100]
                                       [--pages 20] [--keep DIR [--no-fill]]

The database is DATABASE_URL when it names PostgreSQL (migrated first; the database must
exist: `createdb -h 127.0.0.1 -U postgres spyglass_bench_sessions`; its traces are replaced),
else a fresh SQLite file in a temporary directory. Rows are written straight into the tables
(executemany on SQLite, COPY on PostgreSQL), as bench/trace_list.py fills them: one root span
per trace holding the chat (and a tool span on every third), a feedback on 1% of the traces,
and the TraceSession rows summed by one INSERT ... SELECT, as migration 0017 backfills them.
Sessions are runs of consecutive traces; the newest 50 traces are one session, `sess-long`.

Each case times the Django view through the test Client (middleware, queries, template) and
prints p50/p95 in milliseconds; the goal is a p95 under 150 ms on SQLite and PostgreSQL.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import random
import re
import secrets
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

from harness import bench_env, manage, scratch  # noqa: E402
from trace_list import copy_rows  # noqa: E402

BATCH = 20_000
NOW = datetime.now(UTC)
WINDOW = timedelta(days=30)
TARGET_MS = 150
LONG_SESSION = "sess-long"
LONG_TURNS = 50
USERS = 5_000
OLDER_LINK = re.compile(r'rel="next" href="\?([^"]+)"')

TRACE_COLUMNS = (
    "trace_id, experiment_id, name, state, request_time, duration_ns, request_preview, "
    "response_preview, metadata, tags, model_id, total_tokens, cost, span_count, has_info, "
    "session_id, user_id, created_at, updated_at"
)
SPAN_COLUMNS = (
    "trace_id, span_id, parent_span_id, name, span_type, start_ns, end_ns, status, "
    "status_message, inputs, outputs, attributes, events"
)
ASSESSMENT_COLUMNS = (
    "trace_id, assessment_id, name, kind, value, rationale, source_type, source_id, span_id, "
    "metadata, overrides, valid, created_at, updated_at"
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--traces", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=100, help="timed requests per case")
    parser.add_argument("--pages", type=int, default=20, help="Older links followed")
    parser.add_argument("--keep", type=Path, help="SQLite: keep the database file here")
    parser.add_argument("--no-fill", action="store_true", help="measure what --keep left")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        run(args, args.keep.resolve())
        return
    with scratch("spyglass-bench-sessions-") as tmp:
        run(args, tmp)


def run(args: argparse.Namespace, tmp: Path) -> None:
    env = bench_env(tmp)  # what a measured Spyglass process runs with (bench/harness.py)
    os.environ.update(env)
    manage(env, "migrate")
    import django

    django.setup()
    from django.db import connection

    print(f"database: {connection.vendor} ({env['DATABASE_URL'].split('@')[-1]})")
    print(f"{args.traces:,} traces in {args.sessions:,} sessions; {os.cpu_count()} CPUs")
    if not args.no_fill:
        started = time.perf_counter()
        fill(args.traces, args.sessions)
        print(f"filled in {time.perf_counter() - started:.0f} s")
    measure(args)


# --- Filling --------------------------------------------------------------------------------


def _session_of(n: int, total: int, sessions: int) -> str:
    if n >= total - LONG_TURNS:
        return LONG_SESSION
    return f"sess-{n * sessions // total:07d}"


def trace_rows(start: int, count: int, total: int, sessions: int, experiment_id: int, model_ids,
               rng: random.Random):  # fmt: skip
    step = WINDOW / total
    for n in range(start, start + count):
        session = _session_of(n, total, sessions)
        state = rng.choices(("OK", "ERROR"), (95, 5))[0]
        duration = int(rng.lognormvariate(20.5, 1.0))
        question = f"question {n}: where is my order?"
        yield (
            f"tr-{n:032x}",
            experiment_id,
            "answer_question",
            state,
            NOW - WINDOW + step * n,
            duration,
            question,
            f"answer {n}: it ships tomorrow.",
            json.dumps({"mlflow.trace.session": session}),
            "{}",
            model_ids[n % len(model_ids)],
            rng.randrange(50, 5_000),
            rng.random() / 100,
            1 + (n % 3 == 0),
            True,
            session,
            f"user-{(n * sessions // total) % USERS}",
            NOW,
            NOW,
        )


def span_rows(trace_pks: list[int], numbers: list[int]):
    for pk, n in zip(trace_pks, numbers, strict=True):
        inputs = {"messages": [{"role": "user", "content": f"question {n}: where is my order?"}]}
        outputs = {"choices": [{"message": {"role": "assistant", "content": f"answer {n}"}}]}
        yield (pk, f"{1:016x}", "", "agent", "AGENT", 0, 900_000, "OK", "",
               json.dumps(inputs), json.dumps(outputs), "{}", "[]")  # fmt: skip
        if n % 3 == 0:
            yield (pk, f"{2:016x}", f"{1:016x}", "lookup_order", "TOOL", 1_000, 800_000, "OK",
                   "", '{"order": 42}', '"shipped"', "{}", "[]")  # fmt: skip


def fill(total: int, sessions: int) -> None:
    from django.db import connection, transaction

    from tracking.models import Experiment, LoggedModel

    rng = random.Random(7)
    experiment = Experiment.objects.create(name=f"bench-{secrets.token_hex(3)}")
    model_ids = [
        LoggedModel.objects.create(experiment=experiment, name="agent").model_id for _ in range(3)
    ]
    with connection.cursor() as cursor:  # a rerun replaces the traces
        for table in ("tracesession", "assessment", "span", "trace"):
            cursor.execute(f"DELETE FROM tracking_{table}")
    for start in range(0, total, BATCH):
        count = min(BATCH, total - start)
        rows = list(trace_rows(start, count, total, sessions, experiment.pk, model_ids, rng))
        with transaction.atomic(), connection.cursor() as cursor:
            _insert(cursor, "tracking_trace", TRACE_COLUMNS, rows)
            cursor.execute(
                "SELECT id, trace_id FROM tracking_trace WHERE trace_id >= %s AND trace_id <= %s "
                "ORDER BY id",
                [rows[0][0], rows[-1][0]],
            )
            pks, trace_ids = zip(*cursor.fetchall(), strict=True)
            numbers = [int(t[3:], 16) for t in trace_ids]
            _insert(cursor, "tracking_span", SPAN_COLUMNS, list(span_rows(list(pks), numbers)))
            feedback = [
                (
                    pk,
                    f"a-{pk}",
                    "helpful",
                    "feedback",
                    json.dumps(n % 7 != 0),
                    "",
                    "HUMAN",
                    "bench",
                    "",
                    "{}",
                    "",
                    True,
                    NOW,
                    NOW,
                )
                for pk, n in zip(pks, numbers, strict=True)
                if n % 100 == 0
            ]
            if feedback:
                _insert(cursor, "tracking_assessment", ASSESSMENT_COLUMNS, feedback)
        if (start // BATCH) % 10 == 9:
            print(f"  {start + count:,} traces", flush=True)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO tracking_tracesession (experiment_id, session_id, user_id, first_time, "
            "last_time, turns, duration_ns, total_tokens, cost, error_count) "
            "SELECT experiment_id, session_id, MAX(user_id), MIN(request_time), "
            "MAX(request_time), COUNT(*), SUM(duration_ns), SUM(total_tokens), SUM(cost), "
            "SUM(CASE WHEN state = 'ERROR' THEN 1 ELSE 0 END) FROM tracking_trace "
            "WHERE session_id IS NOT NULL GROUP BY experiment_id, session_id"
        )
        cursor.execute("ANALYZE")


def _insert(cursor, table: str, columns: str, rows: list[tuple]) -> None:
    from django.db import connection

    if connection.vendor == "postgresql":
        copy_rows(cursor, table, columns, rows)
    else:
        marks = ", ".join(["%s"] * len(rows[0]))
        cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)


# --- Measuring ------------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> None:
    from django.conf import settings
    from django.test import Client, override_settings

    from tracking.models import LoggedModel, TraceSession

    storages = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    override_settings(STORAGES=storages).enable()
    client = Client(HTTP_HOST="localhost")

    def get(url: str):
        response = client.get(url)
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}")
        return response

    url = "/sessions/"
    for _ in range(args.pages):
        older = OLDER_LINK.search(get(url).content.decode())
        if not older:
            break
        url = "/sessions/?" + html.unescape(older.group(1))
    long = TraceSession.objects.get(session_id=LONG_SESSION)
    assert long.turns == LONG_TURNS, long.turns
    model_id = LoggedModel.objects.order_by("pk").values_list("model_id", flat=True).first()
    cases = [
        ("/sessions/ first page", "/sessions/"),
        (f"/sessions/ {args.pages} pages deep", url),
        ("/sessions/?errors=1", "/sessions/?errors=1"),
        ("/sessions/?user=user-7", "/sessions/?user=user-7"),
        ("/sessions/?model=<version>", f"/sessions/?model={model_id}"),
        ("/sessions/?since=24h", "/sessions/?since=24h"),
        (f"session page, {LONG_TURNS} turns", f"/sessions/{LONG_SESSION}/"),
        ("trace list: session = <id>", f"/traces/?q=session+%3D+{LONG_SESSION}"),
    ]
    print(f"\n{'case':<40} {'p50 ms':>8} {'p95 ms':>8}  target p95")
    for label, url in cases:
        get(url)  # warm: caches and the first compile of each template
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            get(url)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        p50 = statistics.median(times)
        p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
        verdict = f"< {TARGET_MS} {'ok' if p95 < TARGET_MS else 'MISSED'}"
        print(f"{label:<40} {p50:8.1f} {p95:8.1f}  {verdict}", flush=True)


if __name__ == "__main__":
    main()
