"""`manage.py demo_data`: the support-agent demo, three logged versions and a week of traces,
plus the evaluation loop: the `support-golden` dataset, each version's evaluation on it, and
customers' feedback on some traces (tracking/demo_evaluation.py).

The traces go through `tracking.ingest`, the path every client takes. The experiment, runs and
logged models are rows made here, since ingest only handles traces. `make run` calls this on
every start, so it does nothing on a database that already holds traces unless `--force`.
Ids derive from the seed, so loading again updates the same rows rather than adding copies.

The evaluation runs are written here, with tracking's models, rather than by the evaluation
app's runner: the runner calls agents through workers, while the demo's answers are data, and
tracking may not import evaluation. They have the runner's shapes all the same (both are what
`mlflow.genai.evaluate` leaves), so every evaluation page shows them.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone

from tracking import demo, demo_evaluation, ingest
from tracking.datasets import digest_of
from tracking.evaluations import GENAI_EVALUATE, RUN_TYPE_TAG, dataset_input
from tracking.models import (
    Assessment,
    EvaluationDataset,
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
        now = timezone.now()
        with transaction.atomic():
            experiment = _experiment()
            data = demo.build(experiment_id=experiment.pk, seed=seed, now=now, trace_count=traces)
            evaluated = demo_evaluation.build(data, experiment_id=experiment.pk, seed=seed, now=now)
            models = [_logged_model(experiment, version) for version in data.versions]
            rows = [t for e in evaluated.evaluations for t in e.traces]
            stored = ingest.store_traces([(t.info, t.spans) for t in [*data.traces, *rows]])
            batch = ingest.store_trace(data.batch.info, data.batch.spans)
            dataset = _dataset(experiment, evaluated)
            runs = [_evaluation_run(experiment, dataset, e) for e in evaluated.evaluations]
            _store_assessments(
                [a for e in evaluated.evaluations for a in e.assessments] + evaluated.feedback
            )
        self._report(experiment, data, models, [stored, batch], time.perf_counter() - started)
        self._report_evaluations(dataset, runs, evaluated)

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

    def _report_evaluations(
        self, dataset: EvaluationDataset, runs: list[Run], evaluated: demo_evaluation.EvaluationDemo
    ) -> None:
        write = self.stdout.write
        write(f'Dataset "{dataset.name}" ({dataset.dataset_id}): {dataset.record_count} records')
        for run, evaluation in zip(runs, evaluated.evaluations, strict=True):
            scores = ", ".join(f"{k} {v:.2f}" for k, v in evaluation.metrics.items())
            write(f"  v{evaluation.version.version} evaluated in run {run.run_id}: {scores}")
        write(f"Feedback from customers on {len(evaluated.feedback)} traces")


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


def _dataset(
    experiment: Experiment, evaluated: demo_evaluation.EvaluationDemo
) -> EvaluationDataset:
    """The golden dataset, its records merged as the MLflow endpoint merges them. Only a new
    dataset gets them: merging again would move its digest away from the one its
    evaluations logged."""
    name = demo_evaluation.DATASET_NAME
    moment = evaluated.created_at.replace(
        microsecond=evaluated.created_at.microsecond // 1000 * 1000
    )
    dataset, created = EvaluationDataset.objects.get_or_create(
        dataset_id=evaluated.dataset_id,
        defaults={
            "name": name,
            "digest": digest_of(name, moment),
            "tags": {"mlflow.user": "maria", "purpose": "regression tests of support answers"},
            "created_by": "maria",
            "last_updated_by": "maria",
            "created_at": moment,
            "updated_at": moment,
        },
    )
    dataset.link([experiment.pk])
    if created:
        dataset.merge_records([record.as_dict() for record in evaluated.records])
        # The merge stamps everything with the load time; the demo's dataset is older.
        dataset.records.update(created_at=moment, updated_at=moment)
        EvaluationDataset.objects.filter(pk=dataset.pk).update(
            updated_at=moment, digest=digest_of(name, moment)
        )
        dataset.refresh_from_db()
    return dataset


def _evaluation_run(
    experiment: Experiment, dataset: EvaluationDataset, evaluation: demo_evaluation.Evaluation
) -> Run:
    """The run `mlflow.genai.evaluate` leaves for one version, with its traces linked (they
    were stored through ingest with the others)."""
    version = evaluation.version
    run, created = Run.objects.get_or_create(
        run_id=evaluation.run_id,
        defaults={
            "experiment": experiment,
            "name": evaluation.run_name,
            "user_id": "maria",
            "status": RunStatus.FINISHED,
            "start_time": evaluation.start,
            "end_time": evaluation.end,
            "tags": {
                RUN_TYPE_TAG: GENAI_EVALUATE,
                Run.NAME_TAG: evaluation.run_name,
                "mlflow.user": "maria",
                "mlflow.source.name": "evaluate.py",
                "mlflow.source.type": "LOCAL",
            },
        },
    )
    trace_pks = Trace.objects.filter(
        trace_id__in=[t.trace_id for t in evaluation.traces]
    ).values_list("pk", flat=True)
    Run.linked_traces.through.objects.bulk_create(
        [Run.linked_traces.through(run=run, trace_id=pk) for pk in trace_pks],
        ignore_conflicts=True,
    )
    if created:  # metrics have no natural key: only a new run gets them
        run.log_inputs([dataset_input(dataset)], [version.model_id])
        model = LoggedModel.objects.filter(model_id=version.model_id).first()
        logged_ms = int(evaluation.end.timestamp() * 1000)
        run.log_batch(
            Metric(
                run=run,
                logged_model=model,
                key=key,
                value=value,
                timestamp_ms=logged_ms,
                step=0,
                dataset_name=dataset.name,
                dataset_digest=dataset.digest,
            )
            for key, value in evaluation.metrics.items()
        )
    return run


def _store_assessments(assessments: list[demo_evaluation.AssessmentData]) -> None:
    """Assessments with their fixed ids: ones already stored are left as they are."""
    trace_pks = dict(
        Trace.objects.filter(trace_id__in={a.trace_id for a in assessments}).values_list(
            "trace_id", "pk"
        )
    )
    Assessment.objects.bulk_create(
        [
            Assessment(
                trace_id=trace_pks[a.trace_id],
                assessment_id=a.assessment_id,
                name=a.name,
                kind=a.kind,
                value=a.value,
                rationale=a.rationale,
                source_type=a.source_type,
                source_id=a.source_id,
                span_id=a.span_id,
                metadata=a.metadata,
                created_at=a.created_at,
                updated_at=a.created_at,
            )
            for a in assessments
        ],
        ignore_conflicts=True,
        batch_size=500,
    )
