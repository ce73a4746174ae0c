"""The MLflow REST API with Django's test client: error paths, what a bad request leaves
untouched, query counts of the list endpoints, and the wire shapes the mlflow client reads.
The happy paths with the real client are in tests/interop/."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.payloads import mlflow_client_trace
from tracking import ingest
from tracking.models import Experiment, LoggedModel, Metric, Run, Span, Trace

T0 = 1_795_294_591_376_191_837


@pytest.fixture
def experiment(db) -> Experiment:
    return Experiment.objects.create(name="demo")


@pytest.fixture
def run(experiment: Experiment) -> Run:
    return Run.objects.create(experiment=experiment, name="a-run", params={"alpha": "0.5"})


def post(client, path: str, body: Any, method: str = "post"):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return getattr(client, method)(path, data=data, content_type="application/json")


def error_of(response) -> tuple[int, str]:
    return response.status_code, response.json()["error_code"]


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def make_trace(experiment_id: int, n_spans: int = 2) -> tuple[dict, list[dict]]:
    return mlflow_client_trace(
        experiment_id,
        tuple(f"span-{i}" for i in range(n_spans)),
        trace_metadata={"mlflow.modelId": "m-" + "a" * 32},
    )


# --- Malformed requests --------------------------------------------------------------------


@pytest.mark.django_db
def test_malformed_json_is_a_400_that_says_so(client):
    response = post(client, "/api/2.0/mlflow/experiments/create", "{not json")

    assert error_of(response) == (400, "INVALID_PARAMETER_VALUE")
    assert "not valid JSON" in response.json()["message"]


@pytest.mark.django_db
def test_a_json_body_that_is_not_an_object_is_refused(client):
    response = post(client, "/api/2.0/mlflow/experiments/create", "[1, 2]")

    assert error_of(response) == (400, "INVALID_PARAMETER_VALUE")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/2.0/mlflow/experiments/create", {"name": 42}, "name"),
        ("/api/2.0/mlflow/experiments/create", {"name": "x", "tags": {"a": "b"}}, "tags"),
        ("/api/2.0/mlflow/experiments/search", {"max_results": "many"}, "max_results"),
        ("/api/2.0/mlflow/experiments/search", {"view_type": "SOME"}, "view_type"),
        ("/api/2.0/mlflow/runs/create", {"experiment_id": "0", "start_time": True}, "start_time"),
        ("/api/2.0/mlflow/logged-models/search", {"experiment_ids": "0"}, "experiment_ids"),
        ("/api/3.0/mlflow/traces/search", {"locations": [{"type": "UC_SCHEMA"}]}, "locations"),
    ],
)
def test_wrong_types_are_a_400_naming_the_field(client, path, body, field):
    response = post(client, path, body)

    assert error_of(response) == (400, "INVALID_PARAMETER_VALUE")
    assert field in response.json()["message"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/2.0/mlflow/experiments/create", {"name": "nul\u0000name"}),
        ("/api/2.0/mlflow/experiments/create", {"name": "surrogate\ud800"}),
        ("/api/2.0/mlflow/runs/create", {"experiment_id": "0", "start_time": 2**62}),
        ("/api/2.0/mlflow/runs/search", {"experiment_ids": ["0"], "order_by": ["tags.a\u0000"]}),
    ],
)
def test_values_a_database_would_choke_on_are_a_400_not_a_500(client, path, body):
    response = post(client, path, json.dumps(body))

    assert error_of(response) == (400, "INVALID_PARAMETER_VALUE")
    assert not Run.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/api/2.0/mlflow/experiments/get?experiment_id=abc",
        "/api/2.0/mlflow/runs/get?run_id=xyz",
        "/api/2.0/mlflow/logged-models/m-123",
        "/api/3.0/mlflow/traces/tr-nothex",
        "/api/3.0/mlflow/traces/tr-" + "0" * 32 + "%0A",
        "/api/3.0/mlflow/traces/get?trace_id=12345",
        "/api/3.0/mlflow/traces/batchGet?trace_ids=tr-1",
    ],
)
def test_ids_of_the_wrong_shape_are_a_400(client, path):
    assert error_of(client.get(path)) == (400, "INVALID_PARAMETER_VALUE")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/api/2.0/mlflow/experiments/get?experiment_id=99999",
         "No Experiment with id=99999 exists"),
        ("/api/2.0/mlflow/experiments/get-by-name?experiment_name=demo",
         "Could not find experiment with name 'demo'"),
        ("/api/2.0/mlflow/runs/get?run_uuid=" + "0" * 32 + "&run_id=" + "0" * 32,
         "Run with id=" + "0" * 32 + " not found"),
        ("/api/2.0/mlflow/logged-models/m-" + "0" * 32,
         "Logged model with ID 'm-" + "0" * 32 + "' not found."),
        ("/api/3.0/mlflow/traces/tr-" + "0" * 32 + "?trace_id=tr-" + "0" * 32,
         "Trace with ID 'tr-" + "0" * 32 + "' not found."),
        ("/api/2.0/mlflow-artifacts/artifacts/1/x/artifacts/model", "No such artifact"),
    ],
)  # fmt: skip
def test_unknown_resources_are_404_resource_does_not_exist(client, path, message):
    response = client.get(path)

    assert error_of(response) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert message in response.json()["message"]


@pytest.mark.django_db
def test_unknown_endpoints_answer_endpoint_not_found_json(client):
    response = post(client, "/api/2.0/mlflow/runs/log-nothing", {"run_id": "x"})

    assert error_of(response) == (404, "ENDPOINT_NOT_FOUND")


@pytest.mark.django_db
def test_log_inputs_keeps_datasets_and_models_on_the_run_once(client, experiment):
    run = post(client, "/api/2.0/mlflow/runs/create", {"experiment_id": str(experiment.pk)})
    run_id = run.json()["run"]["info"]["run_id"]
    dataset = {"name": "evals", "digest": "abc123", "source_type": "local", "source": "{}"}
    body = {
        "run_id": run_id,
        "datasets": [
            {"tags": [{"key": "mlflow.data.context", "value": "eval"}], "dataset": dataset}
        ],
        "models": [{"model_id": "m-" + "a" * 32}],
    }

    for _ in range(2):
        assert post(client, "/api/2.0/mlflow/runs/log-inputs", body).status_code == 200

    inputs = client.get(f"/api/2.0/mlflow/runs/get?run_id={run_id}").json()["run"]["inputs"]
    assert inputs["model_inputs"] == [{"model_id": "m-" + "a" * 32}]
    assert [d["dataset"]["digest"] for d in inputs["dataset_inputs"]] == ["abc123"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {"run_id": "0" * 32, "models": [{"model_id": "m-" + "a" * 32}]},
        {"models": [{"model_id": "m-1"}]},
        {"datasets": [{"dataset": {"digest": "no name"}}]},
    ],
)
def test_log_inputs_refuses_bad_bodies_with_mlflow_errors(client, experiment, body):
    run = post(client, "/api/2.0/mlflow/runs/create", {"experiment_id": str(experiment.pk)})
    body = {"run_id": run.json()["run"]["info"]["run_id"], **body}

    response = post(client, "/api/2.0/mlflow/runs/log-inputs", body)

    assert response.status_code in (400, 404)
    assert response.json()["error_code"] in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST")


@pytest.mark.django_db
def test_a_wrong_method_is_405_not_a_server_error(client):
    assert client.get("/api/2.0/mlflow/experiments/create").status_code == 405


def test_version_is_not_served_so_the_client_uses_one_span_path(client):
    # See tracking/mlflow_api/urls.py: serving it would switch the client's OTLP export on.
    assert client.get("/version").status_code == 404


def test_server_info_disables_multipart_and_presigned_uploads(client):
    info = client.get("/api/3.0/mlflow/server-info").json()

    assert info["multipart_uploads_enabled"] is False
    assert info["presigned_upload_run_id_supported"] is False
    assert client.get("/health").content == b"OK"


# --- Request limits ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_body_over_the_upload_limit_is_a_413_and_creates_nothing(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100

    response = post(client, "/api/2.0/mlflow/experiments/create", {"name": "x" * 200})

    assert error_of(response) == (413, "RESOURCE_LIMIT_EXCEEDED")
    assert not Experiment.objects.filter(name="x" * 200).exists()


@pytest.mark.django_db
def test_an_artifact_over_the_cap_is_a_413_and_not_stored(client, settings, artifact_root):
    settings.SPYGLASS_MAX_ARTIFACT_BYTES = 10
    path = "/api/2.0/mlflow-artifacts/artifacts/1/run/artifacts/big.bin"

    response = client.put(path, data=b"x" * 11, content_type="application/octet-stream")

    assert error_of(response) == (413, "RESOURCE_LIMIT_EXCEEDED")
    assert not (artifact_root / "1/run/artifacts/big.bin").exists()


# --- Experiments and runs ------------------------------------------------------------------


@pytest.mark.django_db
def test_a_duplicate_experiment_is_resource_already_exists(client, experiment):
    response = post(client, "/api/2.0/mlflow/experiments/create", {"name": "demo"})

    assert error_of(response) == (400, "RESOURCE_ALREADY_EXISTS")
    assert Experiment.objects.filter(name="demo").count() == 1


@pytest.mark.django_db
def test_experiments_carry_mlflow_artifact_locations(client, experiment):
    body = client.get(f"/api/2.0/mlflow/experiments/get?experiment_id={experiment.pk}").json()

    assert body["experiment"]["artifact_location"] == f"mlflow-artifacts:/{experiment.pk}"
    assert body["experiment"]["lifecycle_stage"] == "active"


@pytest.mark.django_db
def test_a_batch_with_one_bad_metric_changes_nothing(client, run):
    response = post(
        client,
        "/api/2.0/mlflow/runs/log-batch",
        {
            "run_id": run.run_id,
            "params": [{"key": "beta", "value": "1"}],
            "tags": [{"key": "t", "value": "x"}],
            "metrics": [
                {"key": "loss", "value": 0.5, "timestamp": 1, "step": 0},
                {"key": "loss", "value": "lots", "timestamp": 2, "step": 1},
            ],
        },
    )

    assert error_of(response) == (400, "INVALID_PARAMETER_VALUE")
    assert "metrics[1].value" in response.json()["message"]
    run.refresh_from_db()
    assert run.params == {"alpha": "0.5"}
    assert "t" not in run.tags
    assert not Metric.objects.exists()


@pytest.mark.django_db
def test_a_param_cannot_change_its_value(client, run):
    body = {"run_id": run.run_id, "run_uuid": run.run_id, "key": "alpha", "value": "0.9"}

    response = post(client, "/api/2.0/mlflow/runs/log-parameter", body)

    assert error_of(response) == (400, "INVALID_PARAMETER_VALUE")
    run.refresh_from_db()
    assert run.params == {"alpha": "0.5"}
    same = {**body, "value": "0.5"}
    assert post(client, "/api/2.0/mlflow/runs/log-parameter", same).status_code == 200


@pytest.mark.django_db
def test_a_run_reads_legacy_and_new_id_names_and_reports_latest_metrics(client, run):
    for step, value in [(0, 0.5), (2, 0.1), (1, 0.3)]:
        body = {"run_uuid": run.run_id, "key": "loss", "value": value, "timestamp": 5, "step": step}
        assert post(client, "/api/2.0/mlflow/runs/log-metric", body).status_code == 200

    body = client.get(f"/api/2.0/mlflow/runs/get?run_uuid={run.run_id}&run_id={run.run_id}").json()

    assert body["run"]["data"]["metrics"] == [
        {"key": "loss", "value": 0.1, "timestamp": 5, "step": 2}
    ]
    assert body["run"]["info"]["artifact_uri"] == (
        f"mlflow-artifacts:/{run.experiment_id}/{run.run_id}/artifacts"
    )


@pytest.mark.django_db
def test_metric_history_pages_with_tokens(client, run):
    Metric.objects.bulk_create(
        Metric(run=run, key="m", value=i, timestamp_ms=i, step=i) for i in range(5)
    )
    url = f"/api/2.0/mlflow/metrics/get-history?run_id={run.run_id}&metric_key=m&max_results=2"

    steps, token = [], ""
    while True:
        body = client.get(url + (f"&page_token={token}" if token else "")).json()
        steps.append([m["step"] for m in body["metrics"]])
        if not (token := body.get("next_page_token")):
            break

    assert steps == [[0, 1], [2, 3], [4]]


@pytest.mark.django_db
def test_a_forged_page_token_is_a_400(client, run):
    url = f"/api/2.0/mlflow/metrics/get-history?run_id={run.run_id}&metric_key=m&page_token=xx"

    assert error_of(client.get(url)) == (400, "INVALID_PARAMETER_VALUE")


@pytest.mark.django_db
def test_run_search_filters_and_orders(client, experiment):
    for i in range(3):
        r = Run.objects.create(experiment=experiment, name=f"r{i}", params={"p1": str(i % 2)})
        Metric.objects.create(run=r, key="m", value=i / 2, timestamp_ms=0)
    body = {
        "experiment_ids": [str(experiment.pk)],
        "filter": "params.p1 = '0' AND metrics.m >= 0",
        "order_by": ["metrics.m DESC"],
    }

    runs = post(client, "/api/2.0/mlflow/runs/search", body).json()["runs"]

    assert [r["info"]["run_name"] for r in runs] == ["r2", "r0"]


@pytest.mark.django_db
def test_search_endpoints_use_a_constant_number_of_queries(
    client, experiment, django_assert_max_num_queries
):
    for i in range(20):
        r = Run.objects.create(experiment=experiment, name=f"r{i}", params={"p": "1"})
        Metric.objects.create(run=r, key="m", value=i, timestamp_ms=0)
        model = LoggedModel.objects.create(experiment=experiment, name=f"m{i}", source_run=r)
        Metric.objects.create(logged_model=model, key="acc", value=i, timestamp_ms=0)
        info, spans = make_trace(experiment.pk)
        ingest.store_trace(info, spans)
    exp = str(experiment.pk)
    location = {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": exp}}
    trace_ids = list(Trace.objects.values_list("trace_id", flat=True)[:10])
    batch = "&".join(f"trace_ids={t}" for t in trace_ids)

    with django_assert_max_num_queries(1):
        post(client, "/api/2.0/mlflow/experiments/search", {"max_results": 1000})
    with django_assert_max_num_queries(3):
        runs = post(client, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp]}).json()
    with django_assert_max_num_queries(2):
        models = post(client, "/api/2.0/mlflow/logged-models/search", {"experiment_ids": [exp]})
    # Traces: the page, then the page's assessments.
    with django_assert_max_num_queries(2):
        traces = post(client, "/api/3.0/mlflow/traces/search", {"locations": [location]}).json()
    with django_assert_max_num_queries(3):
        batch_body = client.get(f"/api/3.0/mlflow/traces/batchGet?{batch}").json()

    assert len(runs["runs"]) == 20
    assert all(r["outputs"]["model_outputs"] for r in runs["runs"])
    assert all(m["data"]["metrics"] for m in models.json()["models"])
    assert len(traces["traces"]) == 20
    assert [len(t["spans"]) for t in batch_body["traces"]] == [2] * 10


# --- Logged models -------------------------------------------------------------------------


@pytest.mark.django_db
def test_logged_model_search_pages_newest_first(client, experiment):
    for i in range(3):
        LoggedModel.objects.create(experiment=experiment, name=f"v{i}")
    body = {"experiment_ids": [str(experiment.pk)], "max_results": 2}

    first = post(client, "/api/2.0/mlflow/logged-models/search", body).json()
    body["page_token"] = first["next_page_token"]
    second = post(client, "/api/2.0/mlflow/logged-models/search", body).json()

    assert [m["info"]["name"] for m in first["models"]] == ["v2", "v1"]
    assert [m["info"]["name"] for m in second["models"]] == ["v0"]
    assert "next_page_token" not in second


@pytest.mark.django_db
def test_a_bad_logged_model_filter_is_a_400_that_points_at_it(client, experiment):
    body = {"experiment_ids": [str(experiment.pk)], "filter": "name = agent"}

    response = post(client, "/api/2.0/mlflow/logged-models/search", body)

    assert error_of(response) == (400, "INVALID_PARAMETER_VALUE")
    assert "name = agent" in response.json()["message"]


@pytest.mark.django_db
def test_finalize_refuses_an_unknown_status_and_keeps_the_model(client, experiment):
    model = LoggedModel.objects.create(experiment=experiment, name="v1")

    response = post(
        client, f"/api/2.0/mlflow/logged-models/{model.model_id}", {"status": "DONE"}, "patch"
    )

    assert error_of(response) == (400, "INVALID_PARAMETER_VALUE")
    model.refresh_from_db()
    assert model.status == "LOGGED_MODEL_PENDING"


@pytest.mark.django_db
def test_an_mlmodel_upload_copies_the_agent_config(client, experiment, artifact_root):
    model = LoggedModel.objects.create(experiment=experiment, name="agent")
    mlmodel = (
        "flavors:\n  python_function:\n    config:\n      llm: gpt-4o-mini\n"
        "      models:\n        judge: {temperature: 0.5}\n    loader_module: x\n"
    )
    path = f"{experiment.pk}/models/{model.model_id}/artifacts/MLmodel"

    response = client.put(
        f"/api/2.0/mlflow-artifacts/artifacts/{path}", data=mlmodel, content_type="text/plain"
    )

    assert response.status_code == 200
    model.refresh_from_db()
    assert model.model_config == {"llm": "gpt-4o-mini", "models": {"judge": {"temperature": 0.5}}}
    assert (artifact_root / path).read_text() == mlmodel


# --- Traces --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_start_trace_stores_the_info_and_answers_the_artifact_location(client, experiment):
    info, _ = make_trace(experiment.pk)

    response = post(client, "/api/3.0/mlflow/traces", {"trace": {"trace_info": info}})

    echoed = response.json()["trace"]["trace_info"]
    assert echoed["tags"] == {
        "mlflow.traceName": "span-0",
        "mlflow.artifactLocation": f"mlflow-artifacts:/{experiment.pk}/traces/"
        f"{info['trace_id']}/artifacts",
    }
    assert echoed["request_time"] == "2026-11-21T20:56:31.290Z"
    assert echoed["execution_duration"] == "0.085s"
    assert Trace.objects.get().model_id == "m-" + "a" * 32


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"), [("state", "FINE"), ("trace_id", "tr-" + "0" * 32 + "\n")]
)
def test_a_bad_trace_info_is_a_400_and_stores_nothing(client, experiment, field, value):
    info, _ = make_trace(experiment.pk)
    info[field] = value

    response = post(client, "/api/3.0/mlflow/traces", {"trace": {"trace_info": info}})

    assert error_of(response) == (400, "INVALID_PARAMETER_VALUE")
    assert not Trace.objects.exists()


@pytest.mark.django_db
def test_a_traces_json_with_a_foreign_span_is_refused_whole(client, experiment, artifact_root):
    info, spans = make_trace(experiment.pk)
    _, foreign = make_trace(experiment.pk)
    ingest.store_trace(info)
    path = f"{experiment.pk}/traces/{info['trace_id']}/artifacts/traces.json"

    response = client.put(
        f"/api/2.0/mlflow-artifacts/artifacts/{path}",
        data=json.dumps({"spans": [spans[0], foreign[0]]}),
        content_type="text/plain",
    )

    assert error_of(response) == (400, "INVALID_PARAMETER_VALUE")
    assert not Span.objects.exists()
    assert not (artifact_root / path).exists()


@pytest.mark.django_db
def test_traces_json_is_written_from_rows_when_none_was_uploaded(client, experiment, artifact_root):
    info, spans = make_trace(experiment.pk, n_spans=3)
    spans[1]["events"] = [{"name": "exception", "time_unix_nano": T0 + 5,
                           "attributes": {"exception.message": "kaboom"}}]  # fmt: skip
    ingest.store_trace(info, spans)
    path = f"{experiment.pk}/traces/{info['trace_id']}/artifacts/traces.json"

    document = json.loads(b"".join(client.get(f"/api/2.0/mlflow-artifacts/artifacts/{path}")))

    def decoded(span: dict) -> dict:
        return {**span, "attributes": {k: json.loads(v) for k, v in span["attributes"].items()}}

    assert [decoded(s) for s in document["spans"]] == [decoded(s) for s in spans]


@pytest.mark.django_db
def test_an_uploaded_traces_json_becomes_rows_not_a_file(client, experiment, artifact_root):
    info, spans = make_trace(experiment.pk, n_spans=3)
    ingest.store_trace(info)
    updated_at = Trace.objects.get().updated_at
    path = f"{experiment.pk}/traces/{info['trace_id']}/artifacts/traces.json"
    url = f"/api/2.0/mlflow-artifacts/artifacts/{path}"

    response = client.put(url, data=json.dumps({"spans": spans}), content_type="text/plain")

    assert response.status_code == 200
    assert not (artifact_root / path).exists()
    trace = Trace.objects.get()
    assert trace.span_count == 3
    # Spans after their info change nothing else on the trace row.
    assert trace.updated_at == updated_at
    document = json.loads(b"".join(client.get(url)))
    assert [s["span_id"] for s in document["spans"]] == [s["span_id"] for s in spans]


@pytest.mark.django_db
def test_traces_get_answers_otlp_spans_from_the_rows(client, experiment):
    info, spans = make_trace(experiment.pk)
    ingest.store_trace(info, spans)

    body = client.get(f"/api/3.0/mlflow/traces/get?trace_id={info['trace_id']}&allow_partial=False")

    root = body.json()["trace"]["spans"][0]
    assert root["span_id"] == spans[0]["span_id"]
    assert "parent_span_id" not in root
    attributes = {a["key"]: a["value"] for a in root["attributes"]}
    assert attributes["mlflow.spanInputs"] == {
        "kvlist_value": {"values": [{"key": "i", "value": {"int_value": 0}}]}
    }
    assert attributes["mlflow.traceRequestId"] == {"string_value": info["trace_id"]}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("", ["slow", "fast"]),
        ("request_metadata.`mlflow.modelId` = 'm-" + "b" * 32 + "'", ["slow"]),
        ("metadata.`mlflow.sourceRun` = 'r1'", ["fast"]),
        ("attribute.run_id = 'r1'", ["fast"]),
        ("trace.execution_time_ms > 50", ["slow"]),
        ("trace.status = 'OK' AND tags.`mlflow.traceName` LIKE 'f%'", ["fast"]),
        ("tags.team = 'cs'", ["slow"]),
        ("tags.team != 'cs'", []),
        ("span.name = 'lookup'", ["fast"]),
        ("trace.timestamp_ms < 1795294591000", ["fast"]),
    ],
)
def test_trace_search_filters(client, experiment, filter_string, expected):
    fast, fast_spans = make_trace(experiment.pk)
    fast.update(
        request_time="2026-11-21T20:56:30.010Z",
        execution_duration="0.010s",
        tags={"mlflow.traceName": "fast"},
        trace_metadata={"mlflow.sourceRun": "r1"},
    )
    fast_spans[1]["name"] = "lookup"
    slow, slow_spans = make_trace(experiment.pk)
    slow.update(
        request_time="2026-11-21T20:56:31.090Z",
        execution_duration="0.090s",
        tags={"mlflow.traceName": "slow", "team": "cs"},
        trace_metadata={"mlflow.modelId": "m-" + "b" * 32},
    )
    ingest.store_traces([(fast, fast_spans), (slow, slow_spans)])
    location = {
        "type": "MLFLOW_EXPERIMENT",
        "mlflow_experiment": {"experiment_id": str(experiment.pk)},
    }

    response = post(
        client, "/api/3.0/mlflow/traces/search", {"locations": [location], "filter": filter_string}
    )

    assert [t["tags"]["mlflow.traceName"] for t in response.json()["traces"]] == expected


@pytest.mark.django_db
def test_trace_search_orders_and_pages(client, experiment):
    for second in (3, 1, 2):
        info, spans = make_trace(experiment.pk)
        info["request_time"] = f"2026-11-21T20:56:0{second}.000Z"
        info["tags"] = {"mlflow.traceName": f"t{second}"}
        ingest.store_trace(info, spans)
    location = {
        "type": "MLFLOW_EXPERIMENT",
        "mlflow_experiment": {"experiment_id": str(experiment.pk)},
    }
    body = {"locations": [location], "order_by": ["timestamp_ms ASC"], "max_results": 2}

    first = post(client, "/api/3.0/mlflow/traces/search", body).json()
    second = post(
        client, "/api/3.0/mlflow/traces/search", {**body, "page_token": first["next_page_token"]}
    ).json()

    assert [t["tags"]["mlflow.traceName"] for t in first["traces"]] == ["t1", "t2"]
    assert [t["tags"]["mlflow.traceName"] for t in second["traces"]] == ["t3"]
    assert "next_page_token" not in second


@pytest.mark.django_db
def test_trace_tags_are_set_and_deleted_with_a_json_delete_body(client, experiment):
    info, _ = make_trace(experiment.pk)
    ingest.store_trace(info)
    path = f"/api/2.0/mlflow/traces/{info['trace_id']}/tags"

    assert post(client, path, {"key": "reviewed", "value": "yes"}, "patch").status_code == 200
    assert Trace.objects.get().tags["reviewed"] == "yes"
    assert post(client, path, {"key": "reviewed"}, "delete").status_code == 200
    assert "reviewed" not in Trace.objects.get().tags
    assert error_of(post(client, path, {"key": "reviewed"}, "delete")) == (
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )


@pytest.mark.django_db
def test_delete_traces_by_age_takes_the_oldest_first(client, experiment, artifact_root):
    infos = []
    for minute in range(3):
        info, spans = make_trace(experiment.pk)
        info["request_time"] = f"2026-11-21T20:5{minute}:00.000Z"
        ingest.store_trace(info, spans)
        infos.append(info)
    body = {
        "experiment_id": str(experiment.pk),
        "max_timestamp_millis": 1795294260000,  # 2026-11-21T20:51:00Z
        "max_traces": 1,
    }

    response = post(client, "/api/2.0/mlflow/traces/delete-traces", body)

    assert response.json() == {"traces_deleted": 1}
    remaining = set(Trace.objects.values_list("trace_id", flat=True))
    assert remaining == {infos[1]["trace_id"], infos[2]["trace_id"]}
    assert Span.objects.count() == 4


@pytest.mark.django_db
def test_delete_traces_needs_exactly_one_selector(client, experiment):
    body = {"experiment_id": str(experiment.pk)}

    response = post(client, "/api/2.0/mlflow/traces/delete-traces", body)

    assert error_of(response) == (400, "INVALID_PARAMETER_VALUE")


# --- Artifacts -----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    ["1/../../etc/passwd", "1/%2e%2e/%2e%2e/secret", "1/a\\..\\b", "1/a%00b", "/etc/passwd",
     "1//a", "1/./a"],
)  # fmt: skip
def test_artifact_paths_that_could_escape_the_root_are_refused(client, artifact_root, path):
    url = f"/api/2.0/mlflow-artifacts/artifacts/{path}"

    response = client.put(url, data=b"x", content_type="application/octet-stream")

    assert error_of(response) == (400, "INVALID_PARAMETER_VALUE")
    assert error_of(client.get(url)) == (400, "INVALID_PARAMETER_VALUE")
    assert not artifact_root.exists() or not any(artifact_root.rglob("*"))


@pytest.mark.django_db
def test_listing_refuses_traversal_too(client, artifact_root):
    response = client.get("/api/2.0/mlflow-artifacts/artifacts?path=../")

    assert error_of(response) == (400, "INVALID_PARAMETER_VALUE")


@pytest.mark.django_db
def test_artifacts_upload_list_download_replace_and_delete(client, artifact_root):
    files = "/api/2.0/mlflow-artifacts/artifacts/1/models/m-1/artifacts"
    listing = "/api/2.0/mlflow-artifacts/artifacts?path=1/models/m-1/artifacts"
    for name, content in [("MLmodel", b"v1"), ("sub/a.txt", b"aaa"), ("MLmodel", b"v2!")]:
        response = client.put(f"{files}/{name}", data=content, content_type="text/plain")
        assert response.status_code == 200

    assert client.get(listing).json() == {
        "files": [
            {"path": "MLmodel", "is_dir": False, "file_size": 3},
            {"path": "sub", "is_dir": True},
        ]
    }
    assert b"".join(client.get(f"{files}/MLmodel").streaming_content) == b"v2!"
    assert client.get(f"{listing}/MLmodel").json() == {}  # a file, not a directory
    assert client.get("/api/2.0/mlflow-artifacts/artifacts?path=1/nothing").json() == {}

    assert client.delete(f"{files}/sub").status_code == 200
    assert [f["path"] for f in client.get(listing).json()["files"]] == ["MLmodel"]
    assert error_of(client.delete(f"{files}/sub")) == (404, "RESOURCE_DOES_NOT_EXIST")


BAD_FILTERS = ["name =", "name 'x'", "name = 'x' OR name = 'y'", "name = 'x' name = 'y'",
               "bogus.k = '1'", "name = 'unterminated", "name IN 'x'", "(name = 'x')"]  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize("text", BAD_FILTERS)
def test_bad_filter_strings_are_a_400_invalid_parameter_value(client, experiment, text):
    body = {"experiment_ids": [str(experiment.pk)], "filter": text}

    response = post(client, "/api/2.0/mlflow/runs/search", body)

    assert error_of(response) == (400, "INVALID_PARAMETER_VALUE")
