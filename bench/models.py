"""Model pages at scale: the version list and the compare page over 200 versions and 200,000
linked traces.

    .venv/bin/python bench/models.py [--repeat 60] [--traces 200000] [--index model_id,state,...]

The database is DATABASE_URL when it names PostgreSQL (emptied and migrated first; the
database must exist: `createdb -h 127.0.0.1 -U postgres spyglass_bench_models`), else a fresh
SQLite file in a temporary directory. Rows are bulk-inserted: 5 model names x 40 versions
(params, a nested model_config, git tags, metrics at 3 steps) and the traces spread evenly
over the versions, with log-normal durations, token counts and 5 % errors.

Each page is requested through Django's test Client (the whole view, template included, no
HTTP server) `--repeat` times after a warm-up; p50/p95 are printed beside the target.
`--index model_id,state,...` adds an index on those trace columns before timing, to measure
what it would buy; it is not part of the schema unless a migration adds it.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

from harness import database_url, scratch  # noqa: E402

TARGET_P95_MS = 150
NAMES = ["support-agent", "billing-agent", "triage-agent", "search-agent", "sales-agent"]
VERSIONS_PER_NAME = 40
T0 = datetime(2025, 6, 1, tzinfo=UTC)
BATCH = 5_000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=60, help="timed requests per page")
    parser.add_argument("--traces", type=int, default=200_000, help="traces linked in all")
    parser.add_argument(
        "--index",
        default="",
        help="comma-separated trace columns of an index to add before timing "
        "(e.g. model_id,state,duration_ns,total_tokens)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    with scratch("spyglass-bench-models-") as tmp:
        run(args, tmp)


def migrate(tmp: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(tmp),
        "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0",
        "SECRET_KEY": "bench-only-not-secret",
        "SPYGLASS_AUTH": "0",
        "SPYGLASS_VAR_DIR": str(tmp / "var"),
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    if env["DATABASE_URL"].startswith("sqlite"):
        command = ["migrate", "--noinput", "-v", "0"]
        subprocess.run([sys.executable, "manage.py", *command], cwd=REPO, env=env, check=True)
        return
    # PostgreSQL: a database kept between runs, so empty it (flush) after migrating.
    for command in (["migrate", "--noinput", "-v", "0"], ["flush", "--noinput", "-v", "0"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=REPO, env=env, check=True)


def fill(total_traces: int) -> list[list[str]]:
    """Bulk-insert the versions, metrics and traces; returns the model ids per name."""
    from tracking.models import Experiment, LoggedModel, Metric, Trace

    rng = random.Random(7)
    experiment, _ = Experiment.objects.get_or_create(name="bench-models")
    models = []
    for n, name in enumerate(NAMES):
        for v in range(VERSIONS_PER_NAME):
            models.append(
                LoggedModel(
                    experiment=experiment,
                    name=name,
                    status="LOGGED_MODEL_READY",
                    created_at=T0 + timedelta(days=v, minutes=n),
                    params={
                        "temperature": f"{rng.choice([0.0, 0.2, 0.4, 0.7]):.1f}",
                        "llm": rng.choice(["gpt-4o", "gpt-4o-mini", "claude-sonnet"]),
                        "top_k": str(rng.choice([3, 5, 8])),
                        "prompt_version": str(v),
                        "retriever": rng.choice(["bm25", "dense", "hybrid"]),
                    },
                    model_config={
                        "llm": {
                            "endpoint": rng.choice(["gpt-4o", "gpt-4o-mini"]),
                            "temperature": rng.choice([0.0, 0.2, 0.4]),
                            "max_tokens": rng.choice([512, 768, 1024]),
                        },
                        "retriever": {"index": f"help-{v // 5}", "top_k": rng.choice([3, 5])},
                        "tools": ["lookup_order", "refund_policy"][: 1 + v % 2],
                        "instructions": f"You are {name}, prompt revision {v}.",
                    },
                    tags={
                        "mlflow.source.git.commit": f"{rng.getrandbits(160):040x}",
                        "mlflow.source.git.branch": "main",
                        "mlflow.source.git.repoURL": f"https://github.com/acme/{name}",
                    },
                )
            )
    LoggedModel.objects.bulk_create(models, batch_size=BATCH)
    models = list(LoggedModel.objects.filter(experiment=experiment).order_by("pk"))
    Metric.objects.bulk_create(
        [
            Metric(logged_model=m, key=key, value=rng.random(), timestamp_ms=step, step=step)
            for m in models
            for key in ("accuracy", "faithfulness", "latency_p95_ms")
            for step in range(3)
        ],
        batch_size=BATCH,
    )
    batch: list[Trace] = []
    for i in range(total_traces):
        model = models[i % len(models)]
        batch.append(
            Trace(
                trace_id=f"tr-{i:032x}",
                experiment=experiment,
                name="answer",
                state="ERROR" if rng.random() < 0.05 else "OK",
                request_time=model.created_at + timedelta(seconds=i // len(models)),
                duration_ns=int(rng.lognormvariate(20.5, 0.6)),  # ~800 ms median
                total_tokens=rng.randint(200, 4000),
                span_count=5,
                has_info=True,
                model_id=model.model_id,
            )
        )
        if len(batch) == BATCH:
            Trace.objects.bulk_create(batch)
            batch = []
    Trace.objects.bulk_create(batch)
    by_name: dict[str, list[str]] = {}
    for m in sorted(models, key=lambda m: m.created_at, reverse=True):
        by_name.setdefault(m.name, []).append(m.model_id)
    return [by_name[name] for name in NAMES]


def timed(client, url: str, repeat: int) -> tuple[float, float]:
    for _ in range(3):  # warm-up: connections, template and page caches
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.95 * len(samples)))]


def run(args: argparse.Namespace, tmp: Path) -> None:
    migrate(tmp)
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test import Client, override_settings

    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX IF EXISTS bench_trace_stats")  # a kept PostgreSQL database's
    ids = fill(args.traces)
    with connection.cursor() as cursor:
        if args.index:
            columns = ", ".join(c.strip() for c in args.index.split(","))
            cursor.execute(f"CREATE INDEX bench_trace_stats ON tracking_trace ({columns})")
        # Fresh statistics (and, on PostgreSQL, a visibility map for index-only scans), as
        # autovacuum would have after a bulk load.
        cursor.execute("ANALYZE" if connection.vendor == "sqlite" else "VACUUM ANALYZE")
    print(
        f"database: {connection.vendor}; {len(NAMES) * VERSIONS_PER_NAME} versions of "
        f"{len(NAMES)} models, {args.traces:,} traces linked, filled in "
        f"{time.perf_counter() - start:.1f} s; {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}; " + (f"index on trace ({args.index})" if args.index else "")
    )
    support = ids[0]
    pages = [
        ("list", "/models/"),
        ("list, search", "/models/?q=params.llm+%3D+%27gpt-4o%27"),
        ("compare 2", f"/models/compare/?ids={support[0]},{support[1]}"),
        ("compare 4", "/models/compare/?ids=" + ",".join(support[:4])),
        ("compare 4, diff", "/models/compare/?ids=" + ",".join(support[:4]) + "&diff=1"),
        # The answers section, which the compare page loads as its own fragment.
        ("compare 4, answers", "/models/compare/answers/?ids=" + ",".join(support[:4])),
        ("version traces", f"/models/{support[0]}/traces/"),
    ]
    # DEBUG off (no query log) but plain static URLs: the manifest needs a collectstatic.
    override_settings(
        STORAGES={
            **settings.STORAGES,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        }
    ).enable()
    client = Client(SERVER_NAME="localhost")
    print(f"{'page':<18}{'p50 ms':>9}{'p95 ms':>9}   target p95 < {TARGET_P95_MS} ms")
    for label, url in pages:
        p50, p95 = timed(client, url, args.repeat)
        verdict = "ok" if p95 < TARGET_P95_MS else "OVER"
        print(f"{label:<18}{p50:>9.1f}{p95:>9.1f}   {verdict}")


if __name__ == "__main__":
    main()
