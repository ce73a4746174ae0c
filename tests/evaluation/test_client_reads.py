"""An evaluation launched here, read back by the unmodified mlflow client as if
`mlflow.genai.evaluate` had made it: two agents on a real local HTTP server and in process,
20 rows, code scorers and an LLM judge on a local OpenAI-compatible server, the embedded
worker; then `search_runs`, `search_traces(run_id=...)` and `get_trace(...).info.assessments`."""

from __future__ import annotations

import pytest

from evaluation import runner
from evaluation.models import EvaluationJob, JobState
from playground.models import Agent
from tests.playground.conftest import wait_for
from tracking.models import EvaluationDataset, Experiment

ROWS = 20

READ_SCRIPT = """
import mlflow
from mlflow import MlflowClient

runs = mlflow.search_runs(
    experiment_ids=[EXPERIMENT],
    filter_string="tags.`mlflow.runType` = 'genai_evaluate'",
    output_format="list",
)
found = {}
for run in runs:
    traces = mlflow.search_traces(
        locations=[EXPERIMENT], run_id=run.info.run_id, return_type="list"
    )
    first = MlflowClient().get_trace(traces[0].info.trace_id)
    found[run.info.run_name] = {
        "metrics": run.data.metrics,
        "status": run.info.status,
        "traces": len(traces),
        "assessments": sorted(
            (a.name, type(a).__name__, getattr(a.source, "source_type", None))
            for a in first.info.assessments
        ),
        "model_ids": sorted({m.model_id for m in (run.inputs.model_inputs or [])}),
        "datasets": [d.dataset.name for d in run.inputs.dataset_inputs],
    }
result(found)
"""


@pytest.fixture
def evaluation_worker(worker_app, monkeypatch):
    monkeypatch.setattr(runner, "default_app", worker_app)
    return worker_app


def test_the_client_reads_an_evaluation_launched_here(
    run_mlflow, evaluation_worker, http_agent, echo_agent, agent_server
):
    experiment = Experiment.objects.create(name="launched")
    dataset = EvaluationDataset.create(name="questions", tags={}, experiment_ids=[experiment.pk])
    dataset.merge_records(
        [
            {"inputs": {"question": f"q{i}"}, "expectations": {"expected_response": f"Echo: q{i}"}}
            for i in range(ROWS)
        ]
    )
    served = http_agent("plain")
    served.model_id = "m-" + "a" * 32
    served.save()
    Agent.objects.create(
        name="echo-judge", kind="openai", config={"url": f"{agent_server.url}/judge-echo/v1"}
    )
    judge = {
        "kind": "judge",
        "name": "echoes",
        "config": {"instructions": "Answer: {{ outputs }}", "agent": "echo-judge"},
    }
    scorers = [{"kind": "exact_match", "name": "exact", "config": {}}, judge]
    job = runner.launch(
        dataset=dataset,
        experiment=experiment,
        agents=[runner.AgentChoice(served), runner.AgentChoice(echo_agent)],
        scorer_specs=scorers,
        name="nightly",
    )
    wait_for(lambda: EvaluationJob.objects.get(pk=job.pk).ended, 60, "the evaluation to end")
    job.refresh_from_db()
    assert job.state == JobState.FINISHED, job.error

    (found,) = run_mlflow(READ_SCRIPT.replace("EXPERIMENT", repr(str(experiment.pk))))
    served_run, echo_run = found[f"nightly · {served.name}"], found["nightly · echo"]
    assert served_run["metrics"] == {"exact/mean": 1.0, "echoes/mean": 1.0}
    assert echo_run["metrics"] == {"exact/mean": 0.0, "echoes/mean": 0.0}
    for run in (served_run, echo_run):
        assert run["status"] == "FINISHED"
        assert run["traces"] == ROWS
        assert run["datasets"] == ["questions"]
        assert run["assessments"] == [
            ["echoes", "Feedback", "LLM_JUDGE"],
            ["exact", "Feedback", "CODE"],
            ["expected_response", "Expectation", "HUMAN"],
        ]
    assert served_run["model_ids"] == [served.model_id]
