"""Evaluation datasets at scale: merging records through the MLflow endpoint, and reading
them back in pages.

    .venv/bin/python bench/datasets.py [--records 10000] [--repeat 3]

The database is DATABASE_URL when it names PostgreSQL (emptied and migrated first; the
database must exist: `createdb -h 127.0.0.1 -U postgres spyglass_bench_datasets`), else a
fresh SQLite file in a temporary directory. Requests go through Django's test Client (the
whole view: parsing, checks, the merge; no HTTP server), the records in one call as
`ds.merge_records(...)` sends them: first all new (inserts), then the same inputs again
(every record merged into its stored one). Then every record is read back in pages of 1,000
as `ds.to_df()` reads them. `--repeat` runs each on a fresh dataset; the best is printed.
(QueryTraceMetrics, the issue's other figure, comes with that endpoint.)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
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
        runs = [run_once(client, args.records) for _ in range(args.repeat)]
        EvaluationDataset.objects.all().delete()
        print(f"{connection.vendor}: {args.records} records per dataset, best of {args.repeat}")
        for key in runs[0]:
            best = (min if key.startswith("ms") else max)(r[key] for r in runs)
            target = f"  (goal >= {TARGET_RECORDS_PER_S})" if key == "insert records/s" else ""
            print(f"  {key:>22}: {best:,.0f}{target}")


if __name__ == "__main__":
    main()
