"""Evaluation runs read back as "an evaluation of version V on dataset D": the inputs as rows,
Run.objects.evaluations() and its filters, a run's rows with their assessments, the rows of
several evaluations side by side, and the migration that backfills the inputs' rows."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.rows import make_model, make_span, make_trace
from tracking.evaluations import GENAI_EVALUATE, RUN_TYPE_TAG, SOURCE_RUN_KEY, aligned
from tracking.evaluations import evaluation_rows as rows_of_runs
from tracking.models import (
    Assessment,
    AssessmentKind,
    EvaluationDataset,
    Experiment,
    LifecycleStage,
    Metric,
    Run,
    RunDataset,
    RunModel,
)

pytestmark = pytest.mark.django_db


def dataset_input(dataset: EvaluationDataset, digest: str = "") -> dict:
    """A dataset input as `mlflow.genai.evaluate` sends it for a managed dataset."""
    return {
        "dataset": {
            "name": dataset.name,
            "digest": digest or dataset.digest,
            "source_type": "mlflow_evaluation_dataset",
            "source": json.dumps({"dataset_id": dataset.dataset_id}),
        }
    }


def evaluation(experiment, dataset, model, scores: dict[str, float], **fields) -> Run:
    run = Run.objects.create(experiment=experiment, tags={RUN_TYPE_TAG: GENAI_EVALUATE}, **fields)
    run.log_inputs([dataset_input(dataset)], [])
    run.log_inputs([dataset_input(dataset)], [model.model_id])  # log_metrics' second call
    for step, (key, value) in enumerate(scores.items()):
        Metric.objects.create(run=run, key=key, value=value, timestamp_ms=step)
    return run


def feedback(trace, run: Run | None, name: str, value, **fields) -> Assessment:
    metadata = {SOURCE_RUN_KEY: run.run_id} if run else {}
    return Assessment.objects.create(
        trace=trace, name=name, kind=AssessmentKind.FEEDBACK, value=value, metadata=metadata,
        **fields,
    )  # fmt: skip


@pytest.fixture
def dataset(experiment) -> EvaluationDataset:
    return EvaluationDataset.create("qa", {}, [experiment.pk])


def test_log_inputs_writes_rows_linked_to_the_dataset_and_the_model(experiment, dataset):
    model = make_model(experiment)
    run = Run.objects.create(experiment=experiment)

    run.log_inputs([dataset_input(dataset)], [model.model_id, "m-" + "0" * 32])
    run.log_inputs([dataset_input(dataset)], [model.model_id])

    (row,) = RunDataset.objects.filter(run=run)
    assert (row.name, row.digest, row.dataset) == ("qa", dataset.digest, dataset)
    assert row.source_type == "mlflow_evaluation_dataset"
    models = RunModel.objects.filter(run=run).order_by("pk")
    assert [(m.model_id, m.logged_model) for m in models] == [
        (model.model_id, model),
        ("m-" + "0" * 32, None),  # LogInputs takes ids Spyglass does not hold
    ]


def test_a_dataset_input_that_names_no_managed_dataset_is_kept_unlinked(experiment):
    run = Run.objects.create(experiment=experiment)
    frame = {"dataset": {"name": "dataset", "digest": "abc", "source_type": "code"}}
    bad_source = {"dataset": {"name": "d", "digest": "x", "source": "not json"}}

    run.log_inputs([frame, bad_source], [])

    rows = RunDataset.objects.filter(run=run).order_by("pk")
    assert [(r.name, r.source_dataset_id, r.dataset) for r in rows] == [
        ("dataset", "", None),
        ("d", "", None),
    ]


def test_get_run_answers_the_inputs_as_sent(client, experiment, dataset):
    run = Run.objects.create(experiment=experiment)
    sent = {**dataset_input(dataset), "tags": [{"key": "mlflow.data.context", "value": "eval"}]}
    body = {"run_id": run.run_id, "datasets": [sent], "models": [{"model_id": "m-" + "a" * 32}]}

    client.post("/api/2.0/mlflow/runs/log-inputs", body, content_type="application/json")

    inputs = client.get(f"/api/2.0/mlflow/runs/get?run_id={run.run_id}").json()["run"]["inputs"]
    assert inputs == {"dataset_inputs": [sent], "model_inputs": [{"model_id": "m-" + "a" * 32}]}
    assert RunDataset.objects.get(run=run).dataset == dataset


def test_evaluations_name_their_version_dataset_rows_and_scores(
    experiment, dataset, django_assert_num_queries
):
    v1, v2 = make_model(experiment), make_model(experiment)
    first = evaluation(experiment, dataset, v1, {"exact/mean": 0.5, "short/mean": 1.0})
    second = evaluation(experiment, dataset, v2, {"exact/mean": 1.0})
    first.linked_traces.add(make_trace(experiment, 1), make_trace(experiment, 2))
    second.linked_traces.add(make_trace(experiment, 3))
    Run.objects.create(experiment=experiment, name="training")  # not an evaluation
    gone = evaluation(experiment, dataset, v1, {})
    gone.soft_delete()

    with django_assert_num_queries(2):  # the runs, their latest metrics
        found = list(Run.objects.evaluations().filter(experiment=experiment))
        shown = [
            (r.run_id, r.model_id, r.model_name, r.dataset_name, r.evaluation_dataset_id,
             r.row_count, r.scores)
            for r in found
        ]  # fmt: skip

    assert shown == [
        (second.run_id, v2.model_id, v2.name, "qa", dataset.dataset_id, 1,
         {"exact": {"mean": 1.0}}),
        (first.run_id, v1.model_id, v1.name, "qa", dataset.dataset_id, 2,
         {"exact": {"mean": 0.5}, "short": {"mean": 1.0}}),
    ]  # fmt: skip
    assert found[0].dataset_digest == dataset.digest


def test_an_evaluation_of_a_version_on_a_dataset_is_found_by_both(experiment, dataset):
    other_dataset = EvaluationDataset.create("other", {}, [experiment.pk])
    v1, v2 = make_model(experiment), make_model(experiment)
    wanted = evaluation(experiment, dataset, v1, {})
    evaluation(experiment, dataset, v2, {})
    evaluation(experiment, other_dataset, v1, {})

    found = Run.objects.evaluations().of_model(v1.model_id).on_dataset(dataset)

    assert [r.run_id for r in found] == [wanted.run_id]


def test_the_latest_value_of_a_score_counts(experiment, dataset):
    run = evaluation(experiment, dataset, make_model(experiment), {"exact/mean": 0.2})
    Metric.objects.create(run=run, key="exact/mean", value=0.9, timestamp_ms=5, step=1)
    Metric.objects.create(run=run, key="loss", value=3.0, timestamp_ms=5)

    (found,) = Run.objects.evaluations()

    assert found.scores == {"exact": {"mean": 0.9}}
    assert Run.objects.get(pk=run.pk).scores == found.scores  # unprefetched: one query


def test_a_run_with_no_inputs_is_an_evaluation_of_nothing_yet(experiment):
    run = Run.objects.create(experiment=experiment, tags={RUN_TYPE_TAG: GENAI_EVALUATE})

    (found,) = Run.objects.evaluations()

    assert (found.pk, found.model_id, found.dataset_name, found.row_count) == (
        run.pk, None, None, 0,
    )  # fmt: skip
    assert found.scores == {}


def test_rows_carry_their_inputs_outputs_and_this_evaluations_assessments(
    experiment, dataset, django_assert_num_queries
):
    model = make_model(experiment)
    run = evaluation(experiment, dataset, model, {})
    other = evaluation(experiment, dataset, model, {})
    france = make_trace(experiment, 1)
    peru = make_trace(experiment, 2, metadata={"mlflow.traceInputs": '{"question": "hi"}'})
    make_span(france, "a1", 1, inputs={"question": "France?"}, outputs="Paris")
    make_span(france, "a2", 2, parent="a1", inputs={"not": "the root"})
    run.linked_traces.add(peru, france)
    other.linked_traces.add(france)
    wrong = feedback(france, run, "exact", False)
    feedback(france, None, "exact", True, overrides=wrong.assessment_id)  # a person's fix
    Assessment.objects.filter(pk=wrong.pk).update(valid=False)
    feedback(france, other, "exact", "other run's")
    feedback(france, run, "short", True)
    feedback(france, None, "thumbs", "up")  # given on the trace page
    Assessment.objects.create(
        trace=france, name="answer", kind=AssessmentKind.EXPECTATION, value="Paris",
        metadata={SOURCE_RUN_KEY: run.run_id},
    )  # fmt: skip

    with django_assert_num_queries(3):  # links with traces, assessments, root spans
        rows = run.evaluation_rows()

    assert [row.trace.trace_id for row in rows] == [france.trace_id, peru.trace_id]
    first, second = rows
    assert (first.inputs, first.outputs) == ({"question": "France?"}, "Paris")
    assert {k: a.value for k, a in first.feedback.items()} == {
        "exact": True, "short": True, "thumbs": "up",
    }  # fmt: skip
    assert {k: a.value for k, a in first.expectations.items()} == {"answer": "Paris"}
    assert (second.inputs, second.feedback) == ({"question": "hi"}, {})  # from its metadata
    # The other evaluation of the same trace sees its own score, not this one's nor the fix.
    (theirs,) = other.evaluation_rows()
    assert {k: a.value for k, a in theirs.feedback.items()} == {
        "exact": "other run's", "thumbs": "up",
    }  # fmt: skip
    assert theirs.expectations == {}


def test_rows_of_many_runs_take_three_queries(experiment, dataset, django_assert_num_queries):
    model = make_model(experiment)
    runs = [evaluation(experiment, dataset, model, {}) for _ in range(3)]
    for n, run in enumerate(runs):
        trace = make_trace(experiment, n)
        make_span(trace, "root", 1, inputs={"n": n})
        feedback(trace, run, "exact", True)
        run.linked_traces.add(trace)

    with django_assert_num_queries(3):
        rows = rows_of_runs(runs)

    assert [[r.inputs for r in rows[run.pk]] for run in runs] == [
        [{"n": 0}],
        [{"n": 1}],
        [{"n": 2}],
    ]


def test_rows_of_evaluations_line_up_on_their_inputs(experiment, dataset):
    v1, v2 = make_model(experiment), make_model(experiment)
    first = evaluation(experiment, dataset, v1, {})
    second = evaluation(experiment, dataset, v2, {})
    for n, (run, question) in enumerate(
        [(first, "France?"), (first, "Peru?"), (second, "Peru?"), (second, "Spain?")]
    ):
        trace = make_trace(experiment, n)
        make_span(trace, "root", 1, inputs={"question": question})
        run.linked_traces.add(trace)
    rows = rows_of_runs([first, second])

    table = aligned([rows[first.pk], rows[second.pk]])

    def question(row):
        return row and row.inputs["question"]

    assert [[question(row) for row in line] for line in table] == [
        ["France?", None],
        ["Peru?", "Peru?"],
        [None, "Spain?"],
    ]


@pytest.mark.django_db(transaction=True)
def test_the_migration_backfills_rows_from_the_inputs_already_logged():
    executor = MigrationExecutor(connection)
    executor.migrate([("tracking", "0014_trace_metrics_rollups")])
    apps = executor.loader.project_state([("tracking", "0014_trace_metrics_rollups")]).apps
    experiment = apps.get_model("tracking", "Experiment").objects.create(name="old")
    dataset = apps.get_model("tracking", "EvaluationDataset").objects.create(
        dataset_id="d-" + "1" * 32, name="qa", digest="abc"
    )
    model = apps.get_model("tracking", "LoggedModel").objects.create(
        experiment=experiment, name="agent", model_id="m-" + "1" * 32
    )
    source = json.dumps({"dataset_id": dataset.dataset_id})
    inputs = {
        "dataset_inputs": [{"dataset": {"name": "qa", "digest": "abc", "source": source}}],
        "model_inputs": [{"model_id": model.model_id}, {"model_id": "m-" + "2" * 32}],
    }
    apps.get_model("tracking", "Run").objects.create(
        experiment=experiment, run_id="f" * 32, inputs=inputs,
        lifecycle_stage=LifecycleStage.ACTIVE,
    )  # fmt: skip
    apps.get_model("tracking", "Run").objects.create(experiment=experiment, run_id="e" * 32)

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    run = Run.objects.get(run_id="f" * 32)
    assert [(r.name, r.dataset_id) for r in run.dataset_rows.all()] == [("qa", dataset.pk)]
    assert sorted((m.model_id, m.logged_model_id) for m in run.model_rows.all()) == [
        (model.model_id, model.pk),
        ("m-" + "2" * 32, None),
    ]
    assert not RunDataset.objects.filter(run__run_id="e" * 32).exists()
    assert Experiment.objects.filter(name="old").exists()
