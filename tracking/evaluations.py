"""Evaluation runs: what `mlflow.genai.evaluate` leaves behind, read back as "an evaluation of
model version V on dataset D".

What the mlflow 3 client sends for one evaluation (captured against this server):
- CreateRun, then LogInputs with the dataset (name, digest, source_type
  `mlflow_evaluation_dataset`, source `{"dataset_id": "d-..."}`) and the model it was given;
  `log_metrics(..., dataset=...)` sends LogInputs again with the active model, if any;
- SetTag `mlflow.runType = genai_evaluate` (unless the run already had a run type);
- one trace per row, with `mlflow.sourceRun` and `mlflow.modelId` metadata, then
  LinkTracesToRun for all of them;
- per row, a feedback per scorer and an expectation per dataset expectation, both with
  `mlflow.assessment.sourceRunId` metadata;
- LogBatch with the aggregates, `<scorer>/<aggregation>` (`exact/mean`), naming the dataset
  and the model.

Run.inputs keeps LogInputs as the client sent it (GetRun answers it verbatim); the two tables
here hold the same inputs as rows, written in the same transaction, so that "the evaluations
of this version" and "the evaluations on this dataset" are indexed joins instead of scans of
JSON. A dataset input is linked to the EvaluationDataset its source names; the digest alone
does not identify one (the client may send a digest from before the dataset's last merge).

Imported by tracking/models.py, so these are tracking's models.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from django.db import models

if TYPE_CHECKING:
    from tracking.models import Assessment, Run, Trace

RUN_TYPE_TAG = "mlflow.runType"
GENAI_EVALUATE = "genai_evaluate"
SOURCE_RUN_KEY = "mlflow.assessment.sourceRunId"
TRACE_INPUTS_KEY = "mlflow.traceInputs"


def dataset_input(dataset: Any) -> dict[str, Any]:
    """An EvaluationDataset as `mlflow.genai.evaluate` logs it (a LogInputs dataset input),
    for runs made here: the evaluation runner's and the demo's."""
    return {
        "dataset": {
            "name": dataset.name,
            "digest": dataset.digest,
            "source_type": "mlflow_evaluation_dataset",
            "source": json.dumps({"dataset_id": dataset.dataset_id}),
        },
        "tags": [{"key": "mlflow.data.context", "value": "evaluation"}],
    }


def dataset_id_in(dataset: dict[str, Any]) -> str:
    """The managed dataset's id in a dataset input's `source` (a JSON object as text), or ""."""
    try:
        source = json.loads(dataset.get("source") or "{}")
    except (TypeError, ValueError):
        return ""
    found = source.get("dataset_id") if isinstance(source, dict) else None
    return found if isinstance(found, str) else ""


def input_rows(
    datasets: Iterable[dict[str, Any]],
) -> list[dict[str, str]]:
    """The columns of RunDataset rows for LogInputs' dataset inputs. Pure, so that the
    migration that backfills the rows uses it too."""
    rows = []
    for item in datasets:
        dataset = item.get("dataset") or {}
        rows.append(
            {
                "name": str(dataset.get("name", ""))[:500],
                "digest": str(dataset.get("digest", ""))[:64],
                "source_type": str(dataset.get("source_type", ""))[:64],
                "source_dataset_id": dataset_id_in(dataset)[:36],
            }
        )
    return rows


class RunDataset(models.Model):
    """A dataset a run read (one of LogInputs' dataset inputs), linked to the evaluation
    dataset it came from when Spyglass holds it."""

    # db_index=False: run_dataset_uniq starts with this column.
    run = models.ForeignKey(
        "tracking.Run", on_delete=models.CASCADE, related_name="dataset_rows", db_index=False
    )
    name = models.CharField(max_length=500)
    digest = models.CharField(max_length=64, blank=True)
    source_type = models.CharField(max_length=64, blank=True)
    # Kept even when the dataset is gone, so that a page can say which one it was.
    source_dataset_id = models.CharField(max_length=36, blank=True)
    dataset = models.ForeignKey(
        "tracking.EvaluationDataset",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="run_inputs",
    )

    class Meta:
        constraints = [
            # Run.log_inputs' own rule: the same name and digest again adds nothing.
            models.UniqueConstraint(fields=["run", "name", "digest"], name="run_dataset_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.name}@{self.digest}"


class RunModel(models.Model):
    """A model version a run used (LogInputs' model inputs, `LoggedModelInput`)."""

    # db_index=False: run_model_uniq starts with this column.
    run = models.ForeignKey(
        "tracking.Run", on_delete=models.CASCADE, related_name="model_rows", db_index=False
    )
    # The id as sent: LogInputs does not require the model to exist, and it may be deleted.
    model_id = models.CharField(max_length=64)
    logged_model = models.ForeignKey(
        "tracking.LoggedModel",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="run_inputs",
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "model_id"], name="run_model_uniq")]
        indexes = [models.Index(fields=["model_id", "run"], name="run_model_idx")]

    def __str__(self) -> str:
        return self.model_id


def record_inputs(run: Run, datasets: list[dict[str, Any]], model_ids: list[str]) -> None:
    """The rows for inputs just added to `run.inputs` (the caller holds the run locked)."""
    from tracking.models import EvaluationDataset, LoggedModel

    rows = input_rows(datasets)
    wanted = {row["source_dataset_id"] for row in rows if row["source_dataset_id"]}
    found = dict(
        EvaluationDataset.objects.filter(dataset_id__in=wanted).values_list("dataset_id", "pk")
        if wanted
        else ()
    )
    RunDataset.objects.bulk_create(
        [RunDataset(run=run, dataset_id=found.get(r["source_dataset_id"]), **r) for r in rows],
        ignore_conflicts=True,
    )
    if model_ids:
        models_found = dict(
            LoggedModel.objects.filter(model_id__in=model_ids).values_list("model_id", "pk")
        )
        RunModel.objects.bulk_create(
            [RunModel(run=run, model_id=m, logged_model_id=models_found.get(m)) for m in model_ids],
            ignore_conflicts=True,
        )


def scores_of(metrics: Iterable[Any]) -> dict[str, dict[str, float]]:
    """{scorer: {aggregation: value}} from an evaluation's metrics (`exact/mean` is scorer
    `exact`, aggregation `mean`); metrics without an aggregation are not scores."""
    scores: dict[str, dict[str, float]] = defaultdict(dict)
    for metric in metrics:
        scorer, slash, aggregation = metric.key.rpartition("/")
        if slash and scorer:
            scores[scorer][aggregation] = metric.value
    return dict(scores)


@dataclass
class EvaluationRow:
    """One row of an evaluation: its trace, the root span's inputs and outputs, and the
    assessments that belong to this evaluation, by name."""

    trace: Trace
    inputs: Any
    outputs: Any
    feedback: dict[str, Assessment] = field(default_factory=dict)
    expectations: dict[str, Assessment] = field(default_factory=dict)

    @property
    def inputs_key(self) -> str:
        """The inputs' hash as a dataset record's (`input_hash`): the same question asked in
        two evaluations, or in the dataset, has the same key."""
        from tracking.datasets import input_hash

        return input_hash(self.inputs)


def _belongs(assessments: Sequence[Assessment], run_id: str) -> list[Assessment]:
    """The valid assessments of a trace that this evaluation shows, weakest first so that a
    later one of the same name wins: ones nobody attributed to a run (ground truth or
    feedback given on the trace), then the run's own, then people's overrides of those.
    Another evaluation's assessments on the same trace are left out."""
    own = {a.assessment_id for a in assessments if a.metadata.get(SOURCE_RUN_KEY) == run_id}
    loose, mine, overrides = [], [], []
    for a in assessments:
        if not a.valid:
            continue
        source = a.metadata.get(SOURCE_RUN_KEY)
        if source == run_id:
            mine.append(a)
        elif source is None and a.overrides in own:
            overrides.append(a)
        elif source is None and not a.overrides:
            loose.append(a)
    return [*loose, *mine, *overrides]


def _root_io(trace: Trace) -> tuple[Any, Any]:
    roots = trace.root_spans  # prefetched
    if roots:
        return roots[0].inputs, roots[0].outputs
    # A trace whose spans never arrived: the client's copy of its inputs, when it parses.
    try:
        return json.loads(trace.metadata.get(TRACE_INPUTS_KEY) or "null"), None
    except ValueError:
        return None, None


def evaluation_rows(runs: Sequence[Run]) -> dict[int, list[EvaluationRow]]:
    """Each run's rows, oldest trace first: {run pk: [EvaluationRow]}, in three queries
    however many runs and rows (the links with their traces, the traces' assessments, their
    root spans)."""
    from tracking.models import Assessment, Run, Span

    links = (
        Run.linked_traces.through.objects.filter(run__in=[run.pk for run in runs])
        .select_related("trace")
        .prefetch_related(
            models.Prefetch("trace__assessments", queryset=Assessment.objects.in_order()),
            models.Prefetch(
                "trace__spans",
                queryset=Span.objects.filter(parent_span_id="")
                .only("trace", "inputs", "outputs")
                .order_by("start_ns"),
                to_attr="root_spans",
            ),
        )
        .order_by("trace__request_time", "trace__pk")
    )
    run_ids = {run.pk: run.run_id for run in runs}
    rows: dict[int, list[EvaluationRow]] = {run.pk: [] for run in runs}
    for link in links:
        inputs, outputs = _root_io(link.trace)
        row = EvaluationRow(trace=link.trace, inputs=inputs, outputs=outputs)
        for assessment in _belongs(link.trace.assessments.all(), run_ids[link.run_id]):
            kind = row.feedback if assessment.is_feedback else row.expectations
            kind[assessment.name] = assessment
        rows[link.run_id].append(row)
    return rows


class Keyed(Protocol):
    @property
    def inputs_key(self) -> str: ...


KeyedRow = TypeVar("KeyedRow", bound=Keyed)


def aligned(rows_by_run: Sequence[Sequence[KeyedRow]]) -> list[list[KeyedRow | None]]:
    """Rows of several evaluations side by side, matched on their inputs: one list per
    distinct inputs (in the order they first appear), with None where an evaluation has no
    row for them. Any rows with an `inputs_key` (EvaluationRows, the pages' summaries). Pure."""
    table: dict[str, list[KeyedRow | None]] = {}
    for column, rows in enumerate(rows_by_run):
        for row in rows:
            line = table.setdefault(row.inputs_key, [None] * len(rows_by_run))
            if line[column] is None:  # a repeated question: its first row
                line[column] = row
    return list(table.values())


@dataclass
class DatasetScores:
    """The evaluations of several model versions on one dataset, side by side: each
    version's newest run there (None if it has none) and its scores per scorer."""

    name: str
    dataset_id: str | None
    runs: list[Run | None]
    scorers: list[tuple[str, list[float | None]]] = field(default_factory=list)

    @property
    def run_ids(self) -> list[str]:
        """The runs to compare on the evaluation compare page, in the versions' order."""
        return [run.run_id for run in self.runs if run is not None]


def scores_by_dataset(runs: Iterable[Run], model_ids: Sequence[str]) -> list[DatasetScores]:
    """From `Run.objects.evaluations()` runs (newest first) of these versions: per dataset,
    each version's newest evaluation and its `<scorer>/mean` scores. Pure."""
    found: dict[tuple[str | None, str], dict[str, Run]] = {}
    for run in runs:
        key = (run.evaluation_dataset_id, run.dataset_name or "")
        newest = found.setdefault(key, {})
        if run.model_id in model_ids and run.model_id not in newest:
            newest[run.model_id] = run
    tables = []
    for (dataset_id, name), newest in found.items():
        ordered = [newest.get(model_id) for model_id in model_ids]
        means = [
            {s: aggs["mean"] for s, aggs in run.scores.items() if "mean" in aggs} if run else {}
            for run in ordered
        ]
        table = DatasetScores(name or "(no dataset)", dataset_id, ordered)
        for scorer in sorted({s for m in means for s in m}):
            table.scorers.append((scorer, [m.get(scorer) for m in means]))
        tables.append(table)
    return tables
