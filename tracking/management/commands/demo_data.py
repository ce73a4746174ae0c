"""`manage.py demo_data`: the support-agent demo, three logged versions and a week of traces.

The traces go through `tracking.ingest`, the path every client takes. The experiment, runs and
logged models are rows made here, since ingest only handles traces. `make run` calls this on
every start, so it does nothing on a database that already holds traces unless `--force`.
Ids derive from the seed, so loading again updates the same rows rather than adding copies.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone

from tracking import demo, ingest
from tracking.models import (
    Experiment,
    LoggedModel,
    LoggedModelStatus,
    Metric,
    Run,
    RunStatus,
    Trace,
)


class Command(BaseCommand):
    help = "Load demo data: the support-agent model in three versions and a week of its traces."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="Load even if the database already holds traces (existing demo rows are "
            "updated, not duplicated).",
        )
        parser.add_argument("--seed", type=int, default=demo.DEFAULT_SEED)
        parser.add_argument(
            "--traces",
            type=int,
            default=demo.DEFAULT_TRACE_COUNT,
            help="How many support-agent traces (besides the batch-evaluation trace).",
        )

    def handle(self, *args: Any, force: bool, seed: int, traces: int, **options: Any) -> None:
        if not force and Trace.objects.exists():
            self.stdout.write(
                "The database already holds traces; no demo data loaded (--force loads it)."
            )
            return
        started = time.perf_counter()
        with transaction.atomic():
            experiment = _experiment()
            data = demo.build(
                experiment_id=experiment.pk, seed=seed, now=timezone.now(), trace_count=traces
            )
            models = [_logged_model(experiment, version) for version in data.versions]
            stored = ingest.store_traces([(t.info, t.spans) for t in data.traces])
            batch = ingest.store_trace(data.batch.info, data.batch.spans)
        self._report(experiment, data, models, [stored, batch], time.perf_counter() - started)

    def _report(
        self,
        experiment: Experiment,
        data: demo.DemoData,
        models: list[tuple[LoggedModel, bool]],
        results: list[ingest.StoreResult],
        seconds: float,
    ) -> None:
        write = self.stdout.write
        write(f'Experiment "{experiment.name}" (id {experiment.pk})')
        new_models = sum(created for _, created in models)
        write(f"Logged model {demo.MODEL_NAME}: {len(models)} versions ({new_models} new)")
        for version, (model, _) in zip(data.versions, models, strict=True):
            write(
                f"  v{version.version}  {model.model_id}  commit {version.commit[:7]} "
                f"({model.git_branch}), {version.params['llm']}, "
                f"temperature {version.params['temperature']}"
            )
        errors = sum(t.info["state"] == "ERROR" for t in data.traces)
        write(
            f"Traces: {len(data.traces)} support conversations ({errors} ERROR) and 1 batch "
            f"evaluation of {len(data.batch.spans):,} spans ({data.batch.trace_id})"
        )
        created = sum(r.traces_created for r in results)
        spans = sum(r.spans_stored for r in results)
        write(f"  {created} new traces, {spans:,} spans stored through ingest")
        write(self.style.SUCCESS(f"Demo data loaded in {seconds:.1f} s."))


def _experiment() -> Experiment:
    experiment, created = Experiment.objects.get_or_create(
        name=demo.EXPERIMENT_NAME,
        defaults={"tags": {"mlflow.note.content": "Demo data from `manage.py demo_data`."}},
    )
    if created:  # MLflow's default location needs the id
        experiment.artifact_location = f"mlflow-artifacts:/{experiment.pk}"
        experiment.save(update_fields=["artifact_location"])
    return experiment


def _logged_model(experiment: Experiment, version: demo.ModelVersion) -> tuple[LoggedModel, bool]:
    """The version's LoggedModel, its source run and the run's evaluation metrics."""
    run, _ = Run.objects.get_or_create(
        run_id=version.run_id,
        defaults={
            "experiment": experiment,
            "name": version.run_name,
            "user_id": version.tags["mlflow.user"],
            "status": RunStatus.FINISHED,
            "start_time": version.created_at - timedelta(minutes=3),
            "end_time": version.created_at + timedelta(minutes=21),
            "params": version.run_params,
            "tags": {"mlflow.runName": version.run_name, **version.tags},
        },
    )
    model, created = LoggedModel.objects.get_or_create(
        model_id=version.model_id,
        defaults={
            "experiment": experiment,
            "name": demo.MODEL_NAME,
            "source_run": run,
            "status": LoggedModelStatus.READY,
            "model_type": "agent",
            "params": version.params,
            "tags": version.tags,
            "model_config": version.model_config,
            "artifact_location": (
                f"mlflow-artifacts:/{experiment.pk}/models/{version.model_id}/artifacts"
            ),
            "created_at": version.created_at,
        },
    )
    if created:  # metrics have no natural key: only a new model gets them
        _log_metrics(run, model, version)
    return model, created


def _log_metrics(run: Run, model: LoggedModel, version: demo.ModelVersion) -> None:
    # The evaluation ran after logging, so its metrics belong to both the run and the model.
    evaluated_ms = int(run.end_time.timestamp() * 1000)
    Metric.objects.bulk_create(
        Metric(
            run=run,
            logged_model=model,
            key=key,
            value=value,
            timestamp_ms=evaluated_ms,
            dataset_name="support-golden-v3",
            dataset_digest="5f0c2b7e",
        )
        for key, value in version.metrics.items()
    )
