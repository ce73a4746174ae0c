"""Evaluation runs made by the real client's `mlflow.genai.evaluate`: two versions of an agent
evaluated on one dataset are found as "the evaluation of V1 on D" and "of V2 on D", with their
scores and their rows, and the client still reads the runs as it wrote them."""

from __future__ import annotations

from tests.interop.conftest import serial_evaluation
from tracking.evaluations import SOURCE_RUN_KEY
from tracking.models import Assessment, EvaluationDataset, Run

SCRIPT = """
    from mlflow.genai.datasets import create_dataset
    from mlflow.genai.scorers import scorer

    experiment_id = mlflow.set_experiment("evaluations").experiment_id
    dataset = create_dataset(name="capitals", experiment_id=experiment_id)
    dataset.merge_records([
        {"inputs": {"question": "capital of France?"}, "expectations": {"answer": "Paris"}},
        {"inputs": {"question": "capital of Peru?"}, "expectations": {"answer": "Lima"}},
    ])

    @scorer
    def exact(outputs, expectations):
        return outputs == expectations["answer"]

    answers = {"v1": {"capital of France?": "Paris"},
               "v2": {"capital of France?": "Paris", "capital of Peru?": "Lima"}}
    found = {"dataset_id": dataset.dataset_id}
    for version, known in answers.items():
        model = mlflow.create_external_model(name="capitals-agent")

        @mlflow.trace
        def agent(question):
            return known.get(question, "unknown")

        evaluation = mlflow.genai.evaluate(
            data=dataset, predict_fn=agent, scorers=[exact], model_id=model.model_id
        )
        run = mlflow.get_run(evaluation.run_id)
        found[version] = {
            "model_id": model.model_id, "run_id": evaluation.run_id,
            "inputs": [d.dataset.name for d in run.inputs.dataset_inputs],
            "models": [m.model_id for m in run.inputs.model_inputs],
        }
    result(found)
"""


def test_two_versions_evaluated_on_one_dataset_are_found_by_version_and_dataset(run_mlflow):
    (found,) = run_mlflow(SCRIPT, **serial_evaluation())
    dataset = EvaluationDataset.objects.get(dataset_id=found["dataset_id"])

    evaluated = {}
    for version in ("v1", "v2"):
        sent = found[version]
        assert sent["inputs"] == ["capitals"]  # GetRun answers the inputs as logged
        assert sent["models"] == [sent["model_id"]]
        (run,) = Run.objects.evaluations().of_model(sent["model_id"]).on_dataset(dataset)
        assert run.run_id == sent["run_id"]
        assert (run.dataset_name, run.evaluation_dataset_id) == ("capitals", dataset.dataset_id)
        assert (run.model_name, run.row_count) == ("capitals-agent", 2)
        rows = sorted(run.evaluation_rows(), key=lambda row: row.inputs["question"])
        evaluated[version] = (
            run.scores,
            [
                (row.inputs["question"], row.outputs, row.feedback["exact"].value,
                 row.expectations["answer"].value)
                for row in rows
            ],
        )  # fmt: skip

    assert evaluated == {
        "v1": (
            {"exact": {"mean": 0.5}},
            [
                ("capital of France?", "Paris", True, "Paris"),
                ("capital of Peru?", "unknown", False, "Lima"),
            ],
        ),
        "v2": (
            {"exact": {"mean": 1.0}},
            [
                ("capital of France?", "Paris", True, "Paris"),
                ("capital of Peru?", "Lima", True, "Lima"),
            ],
        ),
    }
    newest_first = [r.run_id for r in Run.objects.evaluations().on_dataset(dataset)]
    assert newest_first == [found["v2"]["run_id"], found["v1"]["run_id"]]


OVERRIDE = """
    mlflow.override_feedback(
        trace_id={trace_id!r}, assessment_id={assessment_id!r}, value=True,
        rationale="Lima was fine after all",
    )
    result("ok")
"""


def test_the_pages_show_a_client_made_evaluation_and_then_the_clients_override(run_mlflow, client):
    (found,) = run_mlflow(SCRIPT, **serial_evaluation())
    v1, v2 = found["v1"]["run_id"], found["v2"]["run_id"]
    compare = f"/evaluations/compare/?runs={v1},{v2}"
    assert "1 improvement" in client.get(compare).content.decode()
    assert "50.0 %" in client.get(f"/evaluations/{v1}/").content.decode()

    (failed,) = [a for a in Assessment.objects.filter(name="exact", kind="feedback")
                 if a.metadata.get(SOURCE_RUN_KEY) == v1 and a.value is False]  # fmt: skip
    run_mlflow(OVERRIDE.format(trace_id=failed.trace.trace_id, assessment_id=failed.assessment_id))

    run_page = client.get(f"/evaluations/{v1}/").content.decode()
    assert "100.0 %" in run_page and "Lima was fine after all" in run_page
    assert "0 improvements" in client.get(compare).content.decode()
