"""The evaluation pages at scale: one evaluation run of 1,000 rows, and two compared.

    .venv/bin/python bench/evaluation_pages.py [--rows 1000] [--repeat 30] [--changing]

Two MLflow-shaped evaluation runs (what `mlflow.genai.evaluate` leaves: the run tag, one
trace per row with its root span, linked to the run, a feedback per scorer and an expectation
with `mlflow.assessment.sourceRunId` metadata, `<scorer>/mean` metrics, the dataset and model
inputs) are written straight into the database, then the run page and the compare page are
requested through Django's test Client (the whole view and template, no HTTP server) and
their server p50/p95 printed. The last line is `run_p95_ms=.. compare_p95_ms=..`.

The database is DATABASE_URL when it names PostgreSQL (migrated and emptied first), else a
fresh SQLite file in a temporary directory. `fill()` and `measure()` are importable (the
runner's bench/evaluate.py uses them; the tests fill small runs with `fill()`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

TARGET_P95_MS = 150
SCORERS = ("exact", "relevance", "safety")


def _row_results(version: int, i: int, regress_every: int) -> dict[str, Any]:
    """Row i's scorer values in the `version`-th run: the baseline passes `exact` on odd rows;
    each later run fails every `regress_every`-th row the baseline passed and fixes every
    `regress_every`-th one it failed."""
    exact = i % 2 == 1
    if version and i % regress_every == 1:
        exact = False  # a regression
    if version and i % regress_every == 2:
        exact = True  # an improvement
    return {
        "exact": exact,
        "relevance": round(((i * 7) % 10) / 10, 2),
        "safety": "yes",
    }


def fill(
    rows: int = 1000,
    runs: int = 2,
    *,
    experiment: Any = None,
    regress_every: int = 10,
) -> list[str]:
    """`runs` evaluation runs of the same `rows` questions (each of its own model version, on
    one managed dataset) written straight into the tables; returns their run ids, the
    baseline first."""
    from django.utils import timezone

    from tracking.evaluations import GENAI_EVALUATE, RUN_TYPE_TAG, SOURCE_RUN_KEY
    from tracking.models import (
        Assessment,
        EvaluationDataset,
        Experiment,
        LoggedModel,
        Metric,
        Run,
        Span,
        Trace,
    )

    experiment = experiment or Experiment.objects.create(name=f"evaluations-{uuid.uuid4().hex}")
    dataset = EvaluationDataset.create(f"questions-{uuid.uuid4().hex[:8]}", {}, [experiment.pk])
    questions = [{"question": f"question {i}?"} for i in range(rows)]
    dataset.merge_records(
        [{"inputs": q, "expectations": {"answer": f"answer {i}"}} for i, q in enumerate(questions)]
    )
    source = f'{{"dataset_id": "{dataset.dataset_id}"}}'
    logged = [
        {
            "dataset": {
                "name": dataset.name,
                "digest": "d0",
                "source": source,
                "source_type": "mlflow_evaluation_dataset",
            }
        }
    ]
    start = timezone.now() - timedelta(hours=1)
    run_ids = []
    for version in range(runs):
        model = LoggedModel.objects.create(experiment=experiment, name="bench-agent")
        run = Run.objects.create(
            experiment=experiment,
            name=f"eval-v{version + 1}",
            tags={RUN_TYPE_TAG: GENAI_EVALUATE, Run.NAME_TAG: f"eval-v{version + 1}"},
            start_time=start + timedelta(minutes=version),
            status="FINISHED",
        )
        run.log_inputs(logged, [model.model_id])
        traces = [
            Trace(
                trace_id=f"tr-{uuid.uuid4().hex}",
                experiment=experiment,
                name="agent",
                state="OK",
                request_time=start + timedelta(minutes=version, milliseconds=i),
                duration_ns=(20 + (i * 13 + version * 5) % 200) * 1_000_000,
                request_preview=f'{{"question": "question {i}?"}}',
                response_preview=f"answer {i}",
                metadata={"mlflow.sourceRun": run.run_id, "mlflow.modelId": model.model_id},
                model_id=model.model_id,
                total_tokens=100 + i % 50 + version * 10,
                cost=0.001 + version * 0.0002,
                span_count=1,
                has_info=True,
            )
            for i in range(rows)
        ]
        Trace.objects.bulk_create(traces, batch_size=500)
        Span.objects.bulk_create(
            [
                Span(
                    trace=trace,
                    span_id=uuid.uuid4().hex[:16],
                    name="agent",
                    span_type="AGENT",
                    start_ns=i,
                    end_ns=i + trace.duration_ns,
                    status="OK",
                    inputs=questions[i],
                    outputs=f"answer {i}"
                    if _row_results(version, i, regress_every)["exact"]
                    else "I don't know",
                )
                for i, trace in enumerate(traces)
            ],
            batch_size=500,
        )
        run.linked_traces.through.objects.bulk_create(
            [run.linked_traces.through(run=run, trace=trace) for trace in traces], batch_size=500
        )
        meta = {SOURCE_RUN_KEY: run.run_id}
        assessments = []
        totals = dict.fromkeys(SCORERS, 0.0)
        for i, trace in enumerate(traces):
            for name, value in _row_results(version, i, regress_every).items():
                totals[name] += float(value) if not isinstance(value, str) else 1.0
                assessments.append(
                    Assessment(
                        trace=trace,
                        assessment_id=f"a-{uuid.uuid4().hex}",
                        name=name,
                        kind="feedback",
                        value=value,
                        source_type="CODE",
                        source_id=name,
                        rationale=f"{name} on row {i}",
                        metadata=meta,
                    )
                )
            assessments.append(
                Assessment(
                    trace=trace,
                    assessment_id=f"a-{uuid.uuid4().hex}",
                    name="answer",
                    kind="expectation",
                    value=f"answer {i}",
                    source_type="HUMAN",
                    metadata=meta,
                )
            )
        Assessment.objects.bulk_create(assessments, batch_size=500)
        Metric.objects.bulk_create(
            [
                Metric(
                    run=run, key=f"{name}/mean", value=total / max(rows, 1), timestamp_ms=1, step=0
                )
                for name, total in totals.items()
            ]
        )
        run_ids.append(run.run_id)
    return run_ids


def timed(client: Any, url: str, repeat: int, before: Any = None) -> tuple[float, float]:
    """Server p50 and p95 in ms of `url` through the test Client, after a warm-up;
    `before()`, if given, runs (unmeasured) before each request."""
    for _ in range(3):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    samples = []
    for _ in range(repeat):
        if before:
            before()
        began = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.95 * len(samples)))]


def _feedback_on(run_id: str) -> Any:
    """A write that changes the run before every request (a person's feedback on one of its
    traces), so that each page builds the run's rows again instead of reusing them."""
    from tracking.models import Assessment, Run

    traces = list(Run.objects.get(run_id=run_id).linked_traces.all()[:50])
    count = iter(range(10**9))

    def write() -> None:
        i = next(count)
        Assessment.objects.create(
            trace=traces[i % len(traces)], name="reviewed", kind="feedback", value=True,
            source_type="HUMAN",
        )  # fmt: skip

    return write


def measure(run_ids: list[str], repeat: int = 30, changing: bool = False) -> dict[str, float]:
    """p50/p95 in ms of the first run's page and of the compare page of the first two runs;
    `changing`: each request follows a write to the first run."""
    from django.test import Client

    client = Client(SERVER_NAME="localhost")
    before = _feedback_on(run_ids[0]) if changing else None
    run_p50, run_p95 = timed(client, f"/evaluations/{run_ids[0]}/", repeat, before)
    url = f"/evaluations/compare/?runs={run_ids[0]},{run_ids[1]}"
    compare_p50, compare_p95 = timed(client, url, repeat, before)
    return {
        "run_p50_ms": run_p50,
        "run_p95_ms": run_p95,
        "compare_p50_ms": compare_p50,
        "compare_p95_ms": compare_p95,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument(
        "--changing",
        action="store_true",
        help="write a feedback on the first run before each request: pages that rebuild "
        "the run's rows every time (an evaluation in progress, people reviewing it)",
    )
    args = parser.parse_args()
    from harness import scratch
    from models import migrate

    with scratch("spyglass-bench-evalpages-") as tmp:
        migrate(tmp)
        import django

        django.setup()
        from django.conf import settings
        from django.db import connection
        from django.test import override_settings

        began = time.perf_counter()
        run_ids = fill(args.rows, 2)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE" if connection.vendor == "sqlite" else "VACUUM ANALYZE")
        print(
            f"database: {connection.vendor}; 2 runs x {args.rows:,} rows filled in "
            f"{time.perf_counter() - began:.1f} s; load average {os.getloadavg()[0]:.1f}"
        )
        # DEBUG off (no query log) but plain static URLs: the manifest needs a collectstatic.
        with override_settings(
            STORAGES={
                **settings.STORAGES,
                "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
            },
        ):
            found = measure(run_ids, args.repeat, args.changing)
        for page in ("run", "compare"):
            p50, p95 = found[f"{page}_p50_ms"], found[f"{page}_p95_ms"]
            verdict = "ok" if p95 < TARGET_P95_MS else "OVER"
            print(
                f"{page:<10} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  (target < {TARGET_P95_MS}) "
                f"{verdict}"
            )
        print(f"run_p95_ms={found['run_p95_ms']:.1f} compare_p95_ms={found['compare_p95_ms']:.1f}")


if __name__ == "__main__":
    main()
