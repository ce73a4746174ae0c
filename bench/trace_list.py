"""Trace list server time at a million traces: first page, a deep page, filters, free text.

    .venv/bin/python bench/trace_list.py [--traces 1000000] [--spans 10] [--repeat 200]
                                         [--pages 50] [--keep DIR [--no-fill]]

The database is DATABASE_URL when it names PostgreSQL (migrated first; the database must
exist: `createdb -h 127.0.0.1 -U postgres spyglass_bench_list`; its traces are replaced),
else a fresh SQLite file in a temporary directory. Rows are written straight into the tables
(executemany on SQLite, COPY on PostgreSQL) in big batches, not through HTTP: this measures
reading. The SQLite FTS triggers and the PostgreSQL trigram indexes stay in place while
filling, as they would under ingest. A million traces take about 18 minutes to fill on SQLite
and 11 on PostgreSQL on two shared cores: `--keep DIR` keeps the SQLite file, and
`--no-fill` measures again what a previous run left (in DIR, or in the PostgreSQL database).

Each case times the Django view through the test Client (middleware, query, template) many
times and prints p50/p95 in milliseconds next to its target:

- first page:   /traces/
- deep page:    a cursor reached by following `Older` links, then one 90% of the way down
- filter:       state = ERROR and duration > 2s
- span filter:  span.name = search_orders and span.status = ERROR
- text:         a word in ~10% of the previews, and one in ~0.01% of them
"""

from __future__ import annotations

import argparse
import html
import os
import random
import re
import secrets
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

from harness import database_url, scratch  # noqa: E402

BATCH = 20_000
NOW = datetime.now(UTC)
SPAN_WINDOW = timedelta(days=30)
TARGETS_MS = {"first page": 100, "deep page": 100, "text": 500}
# Common words fill previews; COMMON is in about 10% of them, RARE in about 0.01%.
VOCABULARY = """
    order shipping invoice account password delivery address payment card subscription
    plan upgrade cancel return package tracking warranty discount coupon email phone
    login billing receipt balance transfer schedule meeting calendar weather flight
    hotel booking reservation menu recipe translate summarize explain compare
"""
WORDS = VOCABULARY.split()
COMMON = "refund"
RARE = "zeppelin"
OLDER_LINK = re.compile(r'rel="next" href="\?([^"]+)"')
SPAN_NAMES = ("chat_completion", "search_orders", "lookup_customer", "retrieve_docs", "rerank")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--traces", type=int, default=1_000_000)
    parser.add_argument("--spans", type=int, default=10, help="spans per trace")
    parser.add_argument("--repeat", type=int, default=200, help="timed requests per case")
    parser.add_argument("--pages", type=int, default=50, help="Older links followed")
    parser.add_argument(
        "--keep", type=Path, help="SQLite: keep the database file in this directory"
    )
    parser.add_argument("--no-fill", action="store_true", help="measure the rows a --keep run left")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        run(args, args.keep.resolve())
        return
    with scratch("spyglass-bench-list-") as tmp:
        run(args, tmp)


def run(args: argparse.Namespace, tmp: Path) -> None:
    env = {
        "DATABASE_URL": database_url(tmp),
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(32),
        "SPYGLASS_AUTH": "0",
        "SPYGLASS_VAR_DIR": str(tmp / "var"),
        "SPYGLASS_ARTIFACT_ROOT": str(tmp / "artifacts"),
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=REPO,
        env={**os.environ, **env},
        check=True,
    )
    import django

    django.setup()
    from django.db import connection

    print(f"database: {connection.vendor} ({env['DATABASE_URL'].split('@')[-1]})")
    print(f"{args.traces:,} traces x {args.spans} spans; {os.cpu_count()} CPUs")
    if not args.no_fill:
        started = time.perf_counter()
        fill(args.traces, args.spans)
        print(f"filled in {time.perf_counter() - started:.0f} s")
    measure(args)


# --- Filling --------------------------------------------------------------------------------


def preview_words(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=8)
    roll = rng.random()
    if roll < 0.10:
        words[rng.randrange(8)] = COMMON
    if roll > 0.9999:
        words[rng.randrange(8)] = RARE
    return " ".join(words)


def trace_rows(start: int, count: int, total: int, experiment_id: int, rng: random.Random):
    step = SPAN_WINDOW / total
    for n in range(start, start + count):
        state = rng.choices(("OK", "ERROR", "IN_PROGRESS"), (90, 8, 2))[0]
        duration = None if state == "IN_PROGRESS" else int(rng.lognormvariate(20.5, 1.0))
        request = f'{{"messages": [{{"role": "user", "content": "{preview_words(rng)}"}}]}}'
        response = f'{{"content": "Sure. {preview_words(rng)}"}}'
        yield (
            f"tr-{n:032x}",
            experiment_id,
            "answer_question" if n % 3 else "triage_ticket",
            state,
            NOW - SPAN_WINDOW + step * n,
            duration,
            request,
            response,
            "{}",
            '{"env": "prod"}' if n % 2 else '{"env": "staging"}',
            "",
            rng.randrange(50, 5_000) if duration else None,
            0,
            True,
            NOW,
            NOW,
        )


def span_rows(trace_pks: list[int], spans: int, states: list[str], rng: random.Random):
    for pk, state in zip(trace_pks, states, strict=True):
        for i in range(spans):
            name = "agent" if i == 0 else SPAN_NAMES[(i + pk) % len(SPAN_NAMES)]
            kind = "AGENT" if i == 0 else ("LLM" if name == "chat_completion" else "TOOL")
            status = "ERROR" if state == "ERROR" and i == spans - 1 else "OK"
            yield (
                pk,
                f"{i + 1:016x}",
                "" if i == 0 else f"{1:016x}",
                name,
                kind,
                i * 1_000_000,
                i * 1_000_000 + 900_000,
                status,
                "",
                None,
                None,
                '{"llm.model_name": "gpt-4o-mini"}' if kind == "LLM" else "{}",
                "[]",
            )


TRACE_COLUMNS = (
    "trace_id, experiment_id, name, state, request_time, duration_ns, request_preview, "
    "response_preview, metadata, tags, model_id, total_tokens, span_count, has_info, "
    "created_at, updated_at"
)
SPAN_COLUMNS = (
    "trace_id, span_id, parent_span_id, name, span_type, start_ns, end_ns, status, "
    "status_message, inputs, outputs, attributes, events"
)


def fill(total: int, spans: int) -> None:
    from django.db import connection, transaction

    from tracking.models import Experiment

    rng = random.Random(7)
    experiment = Experiment.objects.create(name=f"bench-{secrets.token_hex(3)}")
    with connection.cursor() as cursor:  # a rerun replaces the traces
        cursor.execute("DELETE FROM tracking_span")
        cursor.execute("DELETE FROM tracking_trace")
    for start in range(0, total, BATCH):
        count = min(BATCH, total - start)
        rows = list(trace_rows(start, count, total, experiment.pk, rng))
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                copy_rows(cursor, "tracking_trace", TRACE_COLUMNS, rows)
            else:
                marks = ", ".join(["%s"] * len(rows[0]))
                cursor.executemany(
                    f"INSERT INTO tracking_trace ({TRACE_COLUMNS}) VALUES ({marks})", rows
                )
            cursor.execute(
                "SELECT id, state FROM tracking_trace WHERE trace_id >= %s AND trace_id <= %s "
                "ORDER BY id",
                [rows[0][0], rows[-1][0]],
            )
            pks, states = zip(*cursor.fetchall(), strict=True)
            span_batch = list(span_rows(list(pks), spans, list(states), rng))
            if connection.vendor == "postgresql":
                copy_rows(cursor, "tracking_span", SPAN_COLUMNS, span_batch)
            else:
                marks = ", ".join(["%s"] * len(span_batch[0]))
                cursor.executemany(
                    f"INSERT INTO tracking_span ({SPAN_COLUMNS}) VALUES ({marks})", span_batch
                )
        if (start // BATCH) % 10 == 9:
            print(f"  {start + count:,} traces", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def copy_rows(cursor, table: str, columns: str, rows: list[tuple]) -> None:
    raw = cursor.cursor  # psycopg's own cursor, for COPY
    with raw.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


# --- Measuring ------------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> None:
    from django.conf import settings
    from django.test import Client, override_settings

    from tracking.keyset import Sort
    from tracking.models import Trace

    # DEBUG off (no query log), but static URLs without a collectstatic manifest.
    storages = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    override_settings(STORAGES=storages).enable()
    client = Client(HTTP_HOST="localhost")

    def get(url: str) -> object:
        response = client.get(url)
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}")
        return response

    # Follow `Older` links down, as a reader would, to a cursor some pages deep...
    url = "/traces/"
    for _ in range(args.pages):
        older = OLDER_LINK.search(get(url).content.decode())
        if not older:
            break
        url = "/traces/?" + html.unescape(older.group(1))
    followed = url
    # ...and one 90% of the way down (found with OFFSET here, once, outside the clock).
    deep_row = Trace.objects.order_by("-request_time", "-pk").only("pk", "request_time")[
        int(args.traces * 0.9)
    ]
    deep = "/traces/?" + urlencode({"before": Sort("time", True).format_cursor(deep_row)})

    queries = [
        "state = ERROR and duration > 2s",
        "span.name = search_orders and span.status = ERROR",
        "tag.env = staging and tokens > 4000",
        # Cancelled playground answers: OK plus a tag, found through a partial index.
        "state = CANCELLED",
    ]
    cases = [
        ("first page", "/traces/"),
        (f"deep page ({args.pages} pages)", followed),
        ("deep page (90%)", deep),
        *((q, "/traces/?" + urlencode({"q": q})) for q in queries),
        (f"text: {COMMON} (~10%)", "/traces/?" + urlencode({"q": COMMON})),
        (f"text: {RARE} (~0.01%)", "/traces/?" + urlencode({"q": RARE})),
        ("sort by duration", "/traces/?sort=-duration"),
    ]
    print(f"\n{'case':<52} {'p50 ms':>8} {'p95 ms':>8}  target p95")
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
        kind = "text" if label.startswith("text") else label.split(" (")[0]
        target = TARGETS_MS.get(kind)
        verdict = "" if target is None else f"< {target} {'ok' if p95 < target else 'MISSED'}"
        print(f"{label:<52} {p50:8.1f} {p95:8.1f}  {verdict}", flush=True)


if __name__ == "__main__":
    main()
