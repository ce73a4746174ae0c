"""The trace, run, metric and artifact endpoints that complete mlflow's handler table: what
they store and answer, and MLflow's error JSON (4xx, or its 501 for what a local artifact
store cannot do) for bad input, with nothing changed. The real client: tests/interop/."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.rows import make_model, make_trace
from tests.tracking.test_mlflow_api import error_of, post
from tracking.correlation import npmi_from_counts
from tracking.models import Experiment, Metric, Run, Trace

V2, V3 = "/api/2.0/mlflow/", "/api/3.0/mlflow/"


@pytest.fixture
def experiment(db) -> Experiment:
    return Experiment.objects.create(name="demo")


@pytest.fixture
def run(experiment: Experiment) -> Run:
    return Run.objects.create(experiment=experiment, name="eval")


def search_ids(client, experiment: Experiment, filter_string: str) -> set[str]:
    body = {"locations": [{"mlflow_experiment": {"experiment_id": str(experiment.pk)}}]}
    response = post(client, V3 + "traces/search", {**body, "filter": filter_string})
    return {t["trace_id"] for t in response.json().get("traces", [])}


def test_linked_traces_are_found_by_run_id(client, experiment, run):
    linked, _other = make_trace(experiment, 1), make_trace(experiment, 2)
    sourced = make_trace(experiment, 3, metadata={"mlflow.sourceRun": run.run_id})
    body = {"run_id": run.run_id, "trace_ids": [linked.trace_id, "tr-" + "f" * 32]}
    assert post(client, V2 + "traces/link-to-run", body).status_code == 200
    assert post(client, V2 + "traces/link-to-run", body).status_code == 200  # again: no-op
    assert run.linked_traces.count() == 1
    found = search_ids(client, experiment, f"attributes.run_id = '{run.run_id}'")
    assert found == {linked.trace_id, sourced.trace_id}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"trace_ids": ["tr-" + "0" * 32]}, "INVALID_PARAMETER_VALUE"),
        ({"run_id": "0" * 32}, "INVALID_PARAMETER_VALUE"),
        ({"run_id": "0" * 32, "trace_ids": "tr-1"}, "INVALID_PARAMETER_VALUE"),
        ({"run_id": "0" * 32, "trace_ids": ["nope"]}, "INVALID_PARAMETER_VALUE"),
        ({"run_id": "0" * 32, "trace_ids": ["tr-" + "0" * 32] * 101}, "INVALID_PARAMETER_VALUE"),
        ({"run_id": "f" * 32, "trace_ids": []}, "RESOURCE_DOES_NOT_EXIST"),
    ],
)
def test_link_to_run_refuses_bad_input(client, run, body, code):
    if body.get("run_id") == "0" * 32:
        body = {**body, "run_id": run.run_id}
    response = post(client, V2 + "traces/link-to-run", body)
    assert error_of(response)[1] == code and 400 <= response.status_code < 500
    assert run.linked_traces.count() == 0


def test_prompts_are_linked_once_in_the_tag(client, experiment):
    trace = make_trace(experiment, 1)
    body = {"trace_id": trace.trace_id, "prompt_versions": [{"name": "qa", "version": "2"}]}
    for _ in range(2):
        assert post(client, V2 + "traces/link-prompts", body).status_code == 200
    trace.refresh_from_db()
    assert json.loads(trace.tags["mlflow.linkedPrompts"]) == [{"name": "qa", "version": "2"}]


@pytest.mark.parametrize(
    "body",
    [
        {"prompt_versions": [{"name": "qa", "version": "1"}]},
        {"trace_id": "tr-" + "0" * 32},
        {"trace_id": "tr-" + "0" * 32, "prompt_versions": [{"name": "qa", "version": "x"}]},
        {"trace_id": "tr-" + "0" * 32, "prompt_versions": ["qa"]},
    ],
)
def test_link_prompts_refuses_bad_input(client, experiment, body):
    make_trace(experiment, 0)
    response = post(client, V2 + "traces/link-prompts", body)
    assert error_of(response) == (400, "INVALID_PARAMETER_VALUE")
    assert Trace.objects.get().tags == {}


def test_v3_trace_tags_set_and_delete(client, experiment):
    trace = make_trace(experiment, 1)
    path = V3 + f"traces/{trace.trace_id}/tags"
    assert post(client, path, {"key": "k", "value": "v"}, "patch").status_code == 200
    trace.refresh_from_db()
    assert trace.tags["k"] == "v"
    assert post(client, path, {"key": "k"}, "delete").status_code == 200
    assert error_of(post(client, path, {"key": "k"}, "delete")) == (404, "RESOURCE_DOES_NOT_EXIST")
    refused = post(client, path, {"key": "mlflow.trace.spansLocation", "value": "X"}, "patch")
    assert error_of(refused) == (400, "INVALID_PARAMETER_VALUE")


def test_filter_correlation_counts_and_npmi(client, experiment):
    for n in range(4):
        make_trace(experiment, n, state="ERROR" if n < 2 else "OK", tags={"slow": str(n < 2)})
    body = {
        "experiment_ids": [str(experiment.pk)],
        "filter_string1": "status = 'ERROR'",
        "filter_string2": "tags.slow = 'True'",
    }
    got = post(client, V3 + "traces/calculate-filter-correlation", body).json()
    assert got == {
        "npmi": pytest.approx(1.0),
        "npmi_smoothed": pytest.approx(npmi_from_counts(2, 2, 2, 4).npmi_smoothed),
        "filter1_count": 2,
        "filter2_count": 2,
        "joint_count": 2,
        "total_count": 4,
    }
    body["base_filter"] = "status = 'OK'"
    got = post(client, V3 + "traces/calculate-filter-correlation", body).json()
    assert (got["total_count"], got["npmi"]) == (2, "NaN")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"experiment_ids": ["1"]},
        {"experiment_ids": ["1"], "filter_string1": "a", "filter_string2": "nope nope"},
    ],
)
def test_filter_correlation_refuses_bad_input(client, experiment, body):
    body = {**body, "experiment_ids": [str(experiment.pk)]} if body else body
    if body:
        body.setdefault("filter_string1", "status = 'OK'")
    response = post(client, V3 + "traces/calculate-filter-correlation", body)
    assert error_of(response) == (400, "INVALID_PARAMETER_VALUE")


def test_npmi_matches_mlflow():
    from mlflow.store.analytics.trace_correlation import calculate_npmi_from_counts

    for counts in [(10, 20, 15, 100), (0, 5, 5, 20), (5, 5, 5, 5), (0, 0, 3, 10), (3, 4, 9, 10)]:
        ours, theirs = npmi_from_counts(*counts), calculate_npmi_from_counts(*counts)
        for a, b in [(ours.npmi, theirs.npmi), (ours.npmi_smoothed, theirs.npmi_smoothed)]:
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b)


def test_bulk_interval_samples_steps_of_each_run(client, experiment, run):
    other = Run.objects.create(experiment=experiment)
    for step in range(10):
        Metric.objects.create(run=run, key="loss", value=step, timestamp_ms=step, step=step)
    Metric.objects.create(run=other, key="loss", value=1.0, timestamp_ms=1, step=3)
    query = f"run_ids={run.run_id}&run_ids={other.run_id}&metric_key=loss&max_results=4"
    got = client.get(V2 + "metrics/get-history-bulk-interval?" + query).json()["metrics"]
    steps = [(m["run_id"] == run.run_id, m["step"]) for m in got]
    # Evenly spaced over 0..9 (0, 2, 5, 7), the last step and each run's first and last.
    assert steps == [(True, s) for s in (0, 2, 3, 5, 7, 9)] + [(False, 3)]
    ranged = client.get(
        V2 + "metrics/get-history-bulk-interval?" + query + "&start_step=4&end_step=5"
    )
    assert [m["step"] for m in ranged.json()["metrics"]] == [4, 5]


@pytest.mark.parametrize(
    "query",
    [
        "metric_key=loss",
        "run_ids=RUN",
        "run_ids=RUN&metric_key=loss&max_results=0",
        "run_ids=RUN&metric_key=loss&max_results=2501",
        "run_ids=RUN&metric_key=loss&start_step=3",
        "run_ids=RUN&metric_key=loss&start_step=3&end_step=1",
        "run_ids=nope&metric_key=loss",
    ],
)
def test_bulk_interval_refuses_bad_input(client, run, query):
    response = client.get(
        V2 + "metrics/get-history-bulk-interval?" + query.replace("RUN", run.run_id)
    )
    assert error_of(response) == (400, "INVALID_PARAMETER_VALUE")


def test_log_model_appends_to_the_history_tag(client, run):
    model = {
        "artifact_path": "m",
        "flavors": {"pyfunc": {"config": {"x": 1}, "loader": "l"}},
        "utc_time_created": "2025",
        "run_id": run.run_id,
        "signature": {},
    }
    for _ in range(2):
        body = {"run_id": run.run_id, "model_json": json.dumps(model)}
        assert post(client, V2 + "runs/log-model", body).status_code == 200
    run.refresh_from_db()
    history = json.loads(run.tags["mlflow.log-model.history"])
    assert history == 2 * [
        {
            "artifact_path": "m",
            "flavors": {"pyfunc": {"loader": "l"}},
            "utc_time_created": "2025",
            "run_id": run.run_id,
        }
    ]


@pytest.mark.parametrize("model_json", ["{", "[]", json.dumps({"artifact_path": "m"}), None])
def test_log_model_refuses_bad_input(client, run, model_json):
    body = {"run_id": run.run_id, "model_json": model_json}
    assert error_of(post(client, V2 + "runs/log-model", body)) == (400, "INVALID_PARAMETER_VALUE")
    run.refresh_from_db()
    assert "mlflow.log-model.history" not in run.tags


def test_run_and_model_artifact_listings(client, experiment, run, artifact_root: Path):
    run_dir = artifact_root / f"{experiment.pk}/{run.run_id}/artifacts"
    (run_dir / "model").mkdir(parents=True)
    (run_dir / "model/MLmodel").write_bytes(b"abc")
    (run_dir / "a.txt").write_bytes(b"a")
    got = client.get(V2 + f"artifacts/list?run_id={run.run_id}").json()
    assert got == {
        "root_uri": f"mlflow-artifacts:/{experiment.pk}/{run.run_id}/artifacts",
        "files": [
            {"path": "a.txt", "is_dir": False, "file_size": 1},
            {"path": "model", "is_dir": True},
        ],
    }
    got = client.get(V2 + f"artifacts/list?run_uuid={run.run_id}&path=model").json()
    assert got["files"] == [{"path": "model/MLmodel", "is_dir": False, "file_size": 3}]
    model = make_model(experiment)
    (artifact_root / f"{experiment.pk}/models/{model.model_id}/artifacts").mkdir(parents=True)
    got = client.get(V2 + f"logged-models/{model.model_id}/artifacts/directories").json()
    assert got == {
        "root_uri": f"mlflow-artifacts:/{experiment.pk}/models/{model.model_id}/artifacts"
    }


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("artifacts/list", 400),
        ("artifacts/list?run_id=RUN&path=../x", 400),
        ("artifacts/list?run_id=" + "0" * 32, 404),
        ("logged-models/m-" + "0" * 32 + "/artifacts/directories", 404),
        ("logged-models/nope/artifacts/directories", 400),
    ],
)
def test_artifact_listings_refuse_bad_input(client, run, artifact_root, path, status):
    assert client.get(V2 + path.replace("RUN", run.run_id)).status_code == status


def test_cloud_only_artifact_endpoints_answer_as_mlflow(client, experiment, run):
    upload = {"run_id": run.run_id, "path": "a.txt"}
    response = post(client, V2 + "artifacts/presigned-upload-url", upload)
    assert error_of(response) == (400, "INVALID_PARAMETER_VALUE")
    assert "proxied artifact storage" in response.json()["message"]
    both = {**upload, "model_id": "m-" + "0" * 32}
    assert error_of(post(client, V2 + "artifacts/presigned-upload-url", both))[0] == 400
    missing = {"run_id": "0" * 32, "path": "a.txt"}
    assert error_of(post(client, V2 + "artifacts/presigned-download-url", missing))[0] == 404
    path = f"{experiment.pk}/{run.run_id}/artifacts/big.bin"
    response = post(client, f"/api/2.0/mlflow-artifacts/mpu/create/{path}", {"path": path})
    # The client falls back to a plain upload on exactly this message.
    assert error_of(response) == (501, "NOT_IMPLEMENTED")
    assert response.json()["message"] == (
        "Multipart upload is not supported for the current artifact repository"
    )
    assert client.get(f"/api/2.0/mlflow-artifacts/presigned/{path}").status_code == 501
    bad = client.get("/api/2.0/mlflow-artifacts/presigned/a/../b")
    assert bad.status_code in (400, 404)
