"""Evaluation datasets through the real mlflow client: traces -> a dataset (records from dicts,
a pandas frame and search_traces' frame, merged by their inputs) -> get, search, tags, to_df
-> `mlflow.genai.evaluate(data=dataset)` with two code scorers -> its run, metrics and
per-trace assessments read back -> delete."""

from __future__ import annotations

import json

from tests.interop.conftest import serial_evaluation
from tracking.models import DatasetRecord, EvaluationDataset

FLOW_SCRIPT = """
    import pandas as pd
    from mlflow.exceptions import MlflowException
    from mlflow.genai.datasets import (
        add_dataset_to_experiments, create_dataset, delete_dataset, delete_dataset_tag,
        get_dataset, remove_dataset_from_experiments, search_datasets, set_dataset_tags,
    )
    from mlflow.genai.scorers import scorer

    experiment_id = mlflow.set_experiment("datasets").experiment_id

    @mlflow.trace
    def agent(question):
        return "Paris" if "France" in question else "unknown"

    agent("capital of France?")
    agent("capital of Peru?")
    mlflow.flush_trace_async_logging()
    traces = mlflow.search_traces(return_type="pandas")

    ds = create_dataset(name="qa <b>", experiment_id=experiment_id, tags={"team": "ml"})
    first_digest = ds.digest
    ds.merge_records([
        {"inputs": {"question": "capital of France?"}, "expectations": {"answer": "Paris"}},
    ])
    ds.merge_records(pd.DataFrame([
        {"inputs": {"question": "capital of Spain?"}, "expectations": {"answer": "Madrid"}},
    ]))
    ds.merge_records(traces)  # the France question again (merged) and Peru (new)
    ds.merge_records([
        {"inputs": {"question": "capital of France?"}, "expectations": {"level": "easy"}},
    ])
    set_dataset_tags(dataset_id=ds.dataset_id, tags={"stage": "gold"})
    delete_dataset_tag(dataset_id=ds.dataset_id, key="team")
    other = mlflow.create_experiment("other")
    linked = add_dataset_to_experiments(ds.dataset_id, [other]).experiment_ids
    unlinked = remove_dataset_from_experiments(ds.dataset_id, [other]).experiment_ids
    result([sorted(linked) == sorted([experiment_id, other]), unlinked == [experiment_id]])

    got = get_dataset(dataset_id=ds.dataset_id)
    df = got.to_df().sort_values("inputs", key=lambda s: s.map(lambda v: v["question"]))
    result({
        "name": got.name, "tags": got.tags, "experiment_ids": got.experiment_ids,
        "digest_changed": got.digest != first_digest, "profile": got.profile,
        "schema": got.schema,
        "rows": [
            [row["inputs"]["question"], row["expectations"], row["source_type"]]
            for _, row in df.iterrows()
        ],
        "columns": sorted(df.columns),
        "trace_sources": set(df[df["source_type"] == "TRACE"]["source_id"])
        <= set(traces["trace_id"]),
    })
    found = search_datasets(experiment_ids=[experiment_id], filter_string="name LIKE 'qa%'")
    result([d.dataset_id == ds.dataset_id for d in found])

    @scorer
    def exact(outputs, expectations):
        return outputs == (expectations or {}).get("answer")

    @scorer
    def short(outputs):
        return len(str(outputs)) < 8

    evaluation = mlflow.genai.evaluate(data=got, predict_fn=agent, scorers=[exact, short])
    run = mlflow.get_run(evaluation.run_id)
    scored = mlflow.search_traces(locations=[experiment_id], return_type="list")
    result({
        "metrics": {k: v for k, v in run.data.metrics.items() if k.endswith("/mean")},
        "inputs": [d.dataset.name for d in run.inputs.dataset_inputs],
        "assessments": sorted(
            [a.name, a.value] for t in scored for a in t.info.assessments
            if a.name in ("exact", "short")
        ),
    })

    delete_dataset(dataset_id=ds.dataset_id)
    try:
        get_dataset(dataset_id=ds.dataset_id)
    except MlflowException as error:
        result(error.error_code)
"""


def test_dataset_flow_and_evaluate(run_mlflow):
    found = run_mlflow(FLOW_SCRIPT, **serial_evaluation())
    links, made, searched, evaluated, after_delete = found
    assert links == [True, True]
    assert made["name"] == "qa <b>"
    assert made["tags"] == {"stage": "gold", "mlflow.user": made["tags"]["mlflow.user"]}
    assert made["digest_changed"] is True
    assert made["profile"] == '{"num_records":3}'
    assert made["rows"] == [
        # The client marks dict and frame records HUMAN; a merge keeps the first source.
        ["capital of France?", {"answer": "Paris", "level": "easy"}, "HUMAN"],
        ["capital of Peru?", {}, "TRACE"],
        ["capital of Spain?", {"answer": "Madrid"}, "HUMAN"],
    ]
    assert made["trace_sources"] is True
    assert json.loads(made["schema"]) == {
        "inputs": {"question": "string"},
        "outputs": "string",
        "expectations": {"answer": "string", "level": "string"},
        "version": "1.0",
    }
    assert searched == [True]
    assert evaluated["metrics"] == {"exact/mean": 1 / 3, "short/mean": 1.0}
    assert evaluated["inputs"] == ["qa <b>"]
    assert evaluated["assessments"] == sorted(
        [["exact", True], ["exact", False], ["exact", False]] + [["short", True]] * 3
    )
    assert after_delete == "RESOURCE_DOES_NOT_EXIST"
    assert not EvaluationDataset.objects.filter(name="qa <b>").exists()
    assert not DatasetRecord.objects.filter(inputs__question="capital of Peru?").exists()
