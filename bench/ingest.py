"""Ingest throughput: spans a second through `tracking.ingest.store_trace`, by trace size.

    .venv/bin/python bench/ingest.py [--sizes 10,100,1000,10000] [--seconds 2.5]

It uses the configured database (DATABASE_URL, else the SQLite file under var/) and a
dedicated experiment, "bench-ingest", whose traces it deletes at the end. Payloads are the
demo's batch-evaluation traces (MLflow `traces.json` span dicts with chat messages and token
usage), built before the clock starts. Each timed call stores one trace with fresh ids in its
own transaction, as one client request does; "re-send" stores a trace that is already there
again (the idempotent path a retrying client takes).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from tracking import demo, ingest  # noqa: E402
from tracking.models import Experiment, Trace  # noqa: E402

EXPERIMENT_NAME = "bench-ingest"
TARGET_SIZE = 1_000
TARGET_SPANS_PER_SECOND = 20_000  # for 1,000-span traces on SQLite
MAX_TRACES_PER_SIZE = 5_000  # keeps memory bounded when a size stores very fast


@dataclass
class Measurement:
    size: int
    path: str  # "new" or "re-send"
    traces: int
    seconds: float

    @property
    def spans_per_second(self) -> float:
        return self.size * self.traces / self.seconds

    @property
    def ms_per_trace(self) -> float:
        return self.seconds * 1000 / self.traces


def main() -> None:
    args = parse_args()
    # The configured database, brought up to date first (a fresh clone has no tables yet).
    call_command("migrate", "--noinput", verbosity=0)
    experiment, created = Experiment.objects.get_or_create(name=EXPERIMENT_NAME)
    nonce = os.urandom(4).hex()  # fresh trace ids even if an earlier run was interrupted
    print(describe_database())
    results: list[Measurement] = []
    try:
        store(payload(experiment, nonce, "warm-up", 0, 10))  # connect, warm caches
        for size in args.sizes:
            results += bench_size(experiment, nonce, size, args.seconds)
            print_row(results[-2])
            print_row(results[-1])
    finally:
        Trace.objects.filter(experiment=experiment).delete()
        if created:
            experiment.delete()
    print_target(results)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(size) for size in text.split(",")],
        default=[10, 100, 1_000, 10_000],
        help="spans per trace, comma-separated (default: 10,100,1000,10000)",
    )
    parser.add_argument(
        "--seconds", type=float, default=2.5, help="time to spend per size (default: 2.5)"
    )
    return parser.parse_args()


def bench_size(experiment: Experiment, nonce: str, size: int, seconds: float) -> list[Measurement]:
    # Three untimed calls tell how many traces fill the time budget.
    probes = [payload(experiment, nonce, "probe", i, size) for i in range(3)]
    per_trace = statistics.median(store(probe) for probe in probes)
    count = max(3, min(MAX_TRACES_PER_SIZE, math.ceil(seconds / per_trace)))
    payloads = [payload(experiment, nonce, "new", i, size) for i in range(count)]
    # Frozen, the prebuilt payloads are out of the garbage collector's way: scanning them
    # again and again is no cost of ingest's, whose own garbage is still collected.
    gc.collect()
    gc.freeze()
    try:
        new = Measurement(size, "new", count, sum(store(p) for p in payloads))
        # Re-sending rewrites every row in place; a fifth as many calls shows its cost.
        resends = max(1, count // 5)
        resend = Measurement(
            size, "re-send", resends, sum(store(probes[0]) for _ in range(resends))
        )
    finally:
        gc.unfreeze()
    return [new, resend]


def payload(
    experiment: Experiment, nonce: str, kind: str, index: int, size: int
) -> demo.TracePayload:
    rng = random.Random(f"bench:{nonce}:{kind}:{size}:{index}")
    start_ns = time.time_ns() - 3_600_000_000_000
    return demo.batch_evaluation_trace(
        rng, experiment_id=experiment.pk, start_ns=start_ns, n_spans=max(size, 1)
    )


def store(trace: demo.TracePayload) -> float:
    """Store one trace as a client request would; returns the seconds it took."""
    started = time.perf_counter()
    ingest.store_trace(trace.info, trace.spans)
    return time.perf_counter() - started


def describe_database() -> str:
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        import sqlite3

        version = f"SQLite {sqlite3.sqlite_version}"
        where = str(settings["NAME"])
    else:
        with connection.cursor() as cursor:
            cursor.execute("SELECT version()")
            version = cursor.fetchone()[0].split(" on ")[0]
        where = f"{settings.get('HOST') or 'localhost'}:{settings.get('PORT') or ''}"
        where += f"/{settings['NAME']}"
    sample = payload_size()
    return (
        f"Database: {connection.vendor} ({version}), {where}\n"
        f"Payload: MLflow traces.json spans of a batch-evaluation agent, ~{sample} bytes a span "
        "as JSON; built before timing; one store_trace call (one transaction) per trace.\n\n"
        f"{'spans/trace':>11}  {'path':<8} {'traces':>7} {'seconds':>8} {'spans/s':>10} "
        f"{'ms/trace':>9}"
    )


def payload_size() -> int:
    sample = demo.batch_evaluation_trace(random.Random(0), experiment_id=0, start_ns=0, n_spans=101)
    return len(json.dumps(sample.spans)) // len(sample.spans)


def print_row(m: Measurement) -> None:
    print(
        f"{m.size:>11,}  {m.path:<8} {m.traces:>7,} {m.seconds:>8.2f} "
        f"{m.spans_per_second:>10,.0f} {m.ms_per_trace:>9.1f}",
        flush=True,
    )


def print_target(results: list[Measurement]) -> None:
    goal = (
        f"Target: >= {TARGET_SPANS_PER_SECOND:,} spans/s for {TARGET_SIZE:,}-span traces on SQLite"
    )
    measured = [m for m in results if m.size == TARGET_SIZE and m.path == "new"]
    if not measured:
        print(f"\n{goal} (not measured: add {TARGET_SIZE} to --sizes).")
    elif connection.vendor != "sqlite":
        rate = measured[0].spans_per_second
        print(f"\n{goal}; this run is on {connection.vendor}: {rate:,.0f} spans/s.")
    else:
        rate = measured[0].spans_per_second
        verdict = "met" if rate >= TARGET_SPANS_PER_SECOND else "NOT met"
        print(f"\n{goal}: {rate:,.0f} spans/s, {verdict}.")


if __name__ == "__main__":
    main()
