"""Evaluation data at scale: merging dataset records through the MLflow endpoint and reading
them back in pages, then QueryTraceMetrics over a million traces.

    .venv/bin/python bench/datasets.py [--records 10000] [--repeat 3]
                                       [--traces 1000000] [--versions 20] [--days 90]
                                       [--queries 30] [--skip-records] [--skip-metrics]

The database is DATABASE_URL when it names PostgreSQL (emptied and migrated first; the
database must exist: `createdb -h 127.0.0.1 -U postgres spyglass_bench_datasets`), else a
fresh SQLite file in a temporary directory. Requests go through Django's test Client (the
whole view: parsing, checks, the query; no HTTP server).

Records: the records in one call as `ds.merge_records(...)` sends them: first all new
(inserts), then the same inputs again (every record merged into its stored one). Then every
record is read back in pages of 1,000 as `ds.to_df()` reads them. `--repeat` runs each on a
fresh dataset; the best is printed.

Trace metrics: `--traces` traces spread over `--days` days and `--versions` model versions are
written straight into the table (executemany / COPY, with every trigger in place, as ingest
would leave them), then each query is asked `--queries` times and p50/p95 printed: per day
and version over the whole range as a dashboard asks it (now - N days .. now, so both ends
are partial hours), trace count, latency, tokens, cost, and a latency percentile (which reads
the rows, not the hourly rollups). The first query after the fill, which computes every
hour's rollup, is timed apart, and so is a query right after 1,000 new traces arrive.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

from harness import scratch  # noqa: E402
from models import migrate  # noqa: E402

TARGET_RECORDS_PER_S = 2_000
TARGET_METRICS_P95_MS = 300
METRICS = "/api/3.0/mlflow/traces/metrics"
BATCH = 20_000
V3 = "/api/3.0/mlflow/datasets/"


def records(n: int, variant: str) -> str:
    return json.dumps(
        [
            {
                "inputs": {"question": f"question {i}?", "context": {"user": i % 97}},
                "expectations": {"answer": f"answer {i} {variant}"},
                "tags": {"batch": variant},
                "source": {"source_type": "HUMAN", "source_data": {"source_id": "bench"}},
            }
            for i in range(n)
        ]
    )


def timed(call) -> tuple[float, object]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def run_once(client, n: int) -> dict[str, float]:
    made = client.post(
        V3 + "create", {"name": "bench", "experiment_ids": ["0"]}, content_type="application/json"
    ).json()["dataset"]
    path = f"{V3}{made['dataset_id']}/records"
    figures: dict[str, float] = {}
    for label, variant in (("insert", "a"), ("merge", "b")):
        body = json.dumps({"records": records(n, variant)})
        seconds, response = timed(
            lambda body=body: client.post(path, body, content_type="application/json")
        )
        assert response.status_code == 200, response.content[:300]
        figures[f"{label} records/s"] = n / seconds
    pages, token, seen = 0, None, 0
    start = time.perf_counter()
    while True:
        params = {"max_results": 1000, **({"page_token": token} if token else {})}
        data = client.get(path, params).json()
        seen += len(json.loads(data["records"]))
        pages += 1
        token = data.get("next_page_token")
        if not token:
            break
    seconds = time.perf_counter() - start
    assert seen == n, (seen, n)
    figures["read records/s"] = n / seconds
    figures["ms per page of 1000"] = seconds / pages * 1000
    return figures


def fill_traces(experiment_id: int, total: int, versions: int, days: int, now_ms: int) -> None:
    """`total` traces at even steps over the last `days` days, of `versions` model versions."""
    import random
    from datetime import UTC, datetime

    from django.db import connection, transaction

    rng = random.Random(7)
    step = days * 86_400_000 / total
    columns = (
        "trace_id, experiment_id, name, state, request_time, duration_ns, request_preview, "
        "response_preview, metadata, tags, model_id, total_tokens, input_tokens, output_tokens, "
        "cost, span_count, has_info, created_at, updated_at"
    )
    now = datetime.now(UTC)
    for start in range(0, total, BATCH):
        rows = []
        for n in range(start, min(start + BATCH, total)):
            at = now_ms - days * 86_400_000 + int(n * step)
            tokens_in, tokens_out = rng.randrange(50, 2_000), rng.randrange(10, 800)
            rows.append(
                (
                    f"tr-{n:032x}",
                    experiment_id,
                    "answer_question" if n % 3 else "triage_ticket",
                    "ERROR" if n % 17 == 0 else "OK",
                    datetime.fromtimestamp(at / 1000, tz=UTC),
                    rng.randrange(200, 9_000) * 1_000_000,
                    "{}",
                    "",
                    "{}",
                    "{}",
                    f"m-{n % versions:032x}",
                    tokens_in + tokens_out,
                    tokens_in,
                    tokens_out,
                    (tokens_in * 0.15 + tokens_out * 0.6) / 1e6,
                    3,
                    True,
                    now,
                    now,
                )
            )
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                with cursor.cursor.copy(f"COPY tracking_trace ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                marks = ", ".join(["%s"] * len(rows[0]))
                cursor.executemany(f"INSERT INTO tracking_trace ({columns}) VALUES ({marks})", rows)
        if (start // BATCH) % 10 == 9:
            print(f"  {start + len(rows):,} traces", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def metrics_query(experiment_id: int, now_ms: int, days: int, metric: str, aggregations) -> dict:
    return {
        "experiment_ids": [str(experiment_id)],
        "view_type": "TRACES",
        "metric_name": metric,
        "aggregations": [
            {"aggregation_type": a} if isinstance(a, str) else a for a in aggregations
        ],
        "dimensions": ["model_id"],
        "time_interval_seconds": 86_400,
        "start_time_ms": now_ms - days * 86_400_000,
        "end_time_ms": now_ms,
        "max_results": 10_000,  # 91 days x 20 versions: past MLflow's default of 1,000
    }


def ask(client, body: dict) -> tuple[float, list]:
    seconds, response = timed(
        lambda: client.post(METRICS, json.dumps(body), content_type="application/json")
    )
    assert response.status_code == 200, response.content[:300]
    return seconds * 1000, response.json()["data_points"]


def run_metrics(client, args: argparse.Namespace) -> None:
    import statistics

    from django.db import connection

    from tracking.models import Experiment

    experiment = Experiment.objects.create(name="bench-metrics")
    now_ms = int(time.time() * 1000)
    started = time.perf_counter()
    fill_traces(experiment.pk, args.traces, args.versions, args.days, now_ms)
    fill_s = time.perf_counter() - started
    count = metrics_query(experiment.pk, now_ms, args.days, "trace_count", ["COUNT"])
    first_ms, points = ask(client, count)
    assert sum(p["values"]["COUNT"] for p in points) == args.traces, "counts do not add up"
    print(
        f"{connection.vendor}: QueryTraceMetrics over {args.traces:,} traces, "
        f"{args.versions} versions, {args.days} days, per day and version "
        f"({len(points)} data points); fill {fill_s:.0f} s"
    )
    print(f"  {'first query (every hour rolled up)':>44}: {first_ms:,.0f} ms")
    cases = {
        "trace_count COUNT": ("trace_count", ["COUNT"]),
        "latency AVG, MIN, MAX": ("latency", ["AVG", "MIN", "MAX"]),
        "total_tokens SUM, AVG": ("total_tokens", ["SUM", "AVG"]),
        "total_cost SUM": ("total_cost", ["SUM"]),
    }
    worst_p95 = 0.0
    for label, (metric, aggregations) in cases.items():
        body = metrics_query(experiment.pk, now_ms, args.days, metric, aggregations)
        times = sorted(ask(client, body)[0] for _ in range(args.queries))
        p95 = times[max(0, int(len(times) * 0.95) - 1)]
        worst_p95 = max(worst_p95, p95)
        print(
            f"  {label:>44}: p50 {statistics.median(times):,.1f} ms, p95 {p95:,.1f} ms "
            f"(goal < {TARGET_METRICS_P95_MS})"
        )
    # Percentiles cannot be summed from hours: they read every trace of the range.
    body = metrics_query(
        experiment.pk,
        now_ms,
        args.days,
        "latency",
        [{"aggregation_type": "PERCENTILE", "percentile_value": 95}],
    )
    times = sorted(ask(client, body)[0] for _ in range(max(3, args.queries // 10)))
    print(f"  {'latency P95 (reads the rows)':>44}: p50 {statistics.median(times):,.0f} ms")
    fill_traces_after(experiment.pk, now_ms)
    after_ms, _ = ask(client, count)
    print(f"  {'after 1,000 new traces (their hour redone)':>44}: {after_ms:,.1f} ms")
    print(f"metrics_p95_ms={worst_p95:.1f}")


def fill_traces_after(experiment_id: int, now_ms: int) -> None:
    """1,000 traces in the last hour, through the ORM (triggers mark their hour)."""
    from datetime import UTC, datetime

    from tracking.models import Trace

    Trace.objects.bulk_create(
        [
            Trace(
                trace_id=f"tr-{10**12 + n:032x}",
                experiment_id=experiment_id,
                name="answer_question",
                state="OK",
                request_time=datetime.fromtimestamp((now_ms - n * 1000) / 1000, tz=UTC),
                duration_ns=10**9,
                model_id=f"m-{0:032x}",
            )
            for n in range(1_000)
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--traces", type=int, default=1_000_000)
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--skip-records", action="store_true")
    parser.add_argument("--skip-metrics", action="store_true")
    args = parser.parse_args()
    with scratch("spyglass-bench-datasets-") as tmp:
        migrate(tmp)
        import django

        django.setup()
        from django.db import connection
        from django.test import Client

        from tracking.models import EvaluationDataset, Experiment

        Experiment.objects.get_or_create(pk=0, defaults={"name": "Default"})
        client = Client(SERVER_NAME="localhost")
        if not args.skip_records:
            runs = [run_once(client, args.records) for _ in range(args.repeat)]
            EvaluationDataset.objects.all().delete()
            print(f"{connection.vendor}: {args.records} records per dataset, best of {args.repeat}")
            for key in runs[0]:
                best = (min if key.startswith("ms") else max)(r[key] for r in runs)
                target = f"  (goal >= {TARGET_RECORDS_PER_S})" if key == "insert records/s" else ""
                print(f"  {key:>22}: {best:,.0f}{target}")
        if not args.skip_metrics:
            run_metrics(client, args)


if __name__ == "__main__":
    main()
