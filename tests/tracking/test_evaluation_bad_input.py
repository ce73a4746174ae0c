"""Bad input to every endpoint the evaluation issue added (datasets, search-datasets,
scorers, v3 trace tags, trace links, filter correlation, bulk metric history, log-model, the
artifact listings, presigned URLs and multipart uploads), one table: malformed JSON, wrong
types, missing fields, unknown ids and oversize values. Each case answers 4xx with MLflow's
error JSON ({"error_code", "message"}) and changes nothing stored. Run on SQLite and on
PostgreSQL, which refuses what SQLite lets through (NUL, numbers past 64 bits)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from tests.rows import make_model, make_trace
from tracking.models import (
    DatasetExperiment,
    DatasetRecord,
    EvaluationDataset,
    Experiment,
    LoggedModel,
    Metric,
    OnlineConfig,
    Run,
    Scorer,
    ScorerVersion,
    Trace,
)

pytestmark = pytest.mark.django_db

D = "/api/3.0/mlflow/datasets/"
S = "/api/3.0/mlflow/scorers/"
V2, V3 = "/api/2.0/mlflow/", "/api/3.0/mlflow/"
MPU = "/api/2.0/mlflow-artifacts/mpu/"
TEN_MB = "x" * (10 * 1024 * 1024)
DEEP = "[" * 5000 + "]" * 5000
UNKNOWN_DS = "d-" + "f" * 32
UNKNOWN_RUN = "f" * 32
UNKNOWN_TRACE = "tr-" + "f" * 32
UNKNOWN_MODEL = "m-" + "f" * 32
JUDGE = json.dumps(
    {"instructions_judge_pydantic_data": {"model": "openai:/x", "instructions": "x"}}
)
CODES = {400: "INVALID_PARAMETER_VALUE", 404: "RESOURCE_DOES_NOT_EXIST",
         413: "RESOURCE_LIMIT_EXCEEDED"}  # fmt: skip


@pytest.fixture(autouse=True)
def _artifacts_of_its_own(artifact_root: Path) -> Path:
    return artifact_root


@pytest.fixture
def world(client) -> dict[str, str]:
    """One of everything these endpoints touch, the dataset and scorer made through the API;
    the ids that the table's {placeholders} stand for."""
    experiment = Experiment.objects.create(name="eval")
    run = Run.objects.create(experiment=experiment, name="run", tags={"t": "v"})
    Metric.objects.create(run=run, key="loss", value=1.0, timestamp_ms=1, step=1)
    trace = make_trace(experiment, 1, tags={"k": "v"})
    model = make_model(experiment)
    made = {"name": "qa", "experiment_ids": [str(experiment.pk)], "tags": '{"team": "ml"}'}
    dataset_id = call(client, "post", D + "create", made).json()["dataset"]["dataset_id"]
    records = json.dumps([{"inputs": {"q": "a"}, "expectations": {"a": "A"}}])
    assert call(client, "post", f"{D}{dataset_id}/records", {"records": records}).status_code == 200
    scorer = {"experiment_id": str(experiment.pk), "name": "judge", "serialized_scorer": JUDGE}
    scorer_id = call(client, "post", S + "register", scorer).json()["scorer_id"]
    online = {"experiment_id": str(experiment.pk), "name": "judge", "sample_rate": 0.5}
    assert call(client, "put", S + "online-config", online).status_code == 200
    return {"{exp}": str(experiment.pk), "{run}": run.run_id, "{trace}": trace.trace_id,
            "{model}": model.model_id, "{ds}": dataset_id, "{scorer}": scorer_id}  # fmt: skip


def call(client: Client, method: str, path: str, body: Any = None):
    if method == "get":
        return client.get(path, body or {})
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.generic(method.upper(), path, data, "application/json")


def fill(value: Any, ids: dict[str, str]) -> Any:
    """`value` with each {placeholder} replaced by the world's id."""
    if isinstance(value, str):
        for placeholder, real in ids.items():
            value = value.replace(placeholder, real)
        return value
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {fill(k, ids): fill(v, ids) for k, v in value.items()}
    return value


def stored() -> dict[str, list[dict[str, Any]]]:
    """Every row these endpoints could write, every column (times included)."""
    models = (Experiment, Run, Metric, Trace, LoggedModel, EvaluationDataset, DatasetRecord,
              DatasetExperiment, Scorer, ScorerVersion, OnlineConfig,
              Run.linked_traces.through)  # fmt: skip
    return {m.__name__: list(m.objects.order_by("pk").values()) for m in models}


# --- Every endpoint that reads a JSON body -------------------------------------------------

BODY_ENDPOINTS = [
    ("post", D + "create"),
    ("post", D + "search"),
    ("patch", D + "{ds}/tags"),
    ("post", D + "{ds}/records"),
    ("delete", D + "{ds}/records"),
    ("post", D + "{ds}/add-experiments"),
    ("post", D + "{ds}/remove-experiments"),
    ("post", V2 + "experiments/search-datasets"),
    ("post", S + "register"),
    ("delete", S + "delete"),
    ("put", S + "online-config"),
    ("patch", V3 + "traces/{trace}/tags"),
    ("delete", V3 + "traces/{trace}/tags"),
    ("post", V2 + "traces/link-to-run"),
    ("post", V2 + "traces/link-prompts"),
    ("post", V3 + "traces/calculate-filter-correlation"),
    ("post", V2 + "runs/log-model"),
    ("post", V2 + "artifacts/presigned-upload-url"),
    ("post", V2 + "artifacts/presigned-download-url"),
]
MALFORMED = {
    "not JSON": "{not json",
    "an array": "[1, 2]",
    "a string": '"text"',
    "nested 5000 deep": '{"name": ' + DEEP + "}",
    "cut short": '{"name": "a',
}


@pytest.mark.parametrize(
    ("method", "path"), BODY_ENDPOINTS, ids=[f"{m} {p}" for m, p in BODY_ENDPOINTS]
)
@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_body_that_is_not_a_json_object_is_a_400(client, world, method, path, body):
    before = stored()

    response = call(client, method, fill(path, world), body)

    assert_refused(response, 400)
    assert stored() == before


@pytest.mark.parametrize(
    ("method", "path"), BODY_ENDPOINTS, ids=[f"{m} {p}" for m, p in BODY_ENDPOINTS]
)
def test_a_body_past_the_upload_limit_is_a_413(client, world, settings, method, path):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    before = stored()

    response = call(client, method, fill(path, world), {"name": "x" * 2 * 1024 * 1024})

    assert_refused(response, 413)
    assert stored() == before


# --- Field by field: wrong types, missing, unknown ids, oversize ---------------------------

NO_RECORDS = json.dumps([{"inputs": {"q": "n"}}] * 10_001)
BIG_RECORD = json.dumps([{"inputs": {"q": TEN_MB}}])
MODEL = {"artifact_path": "m", "flavors": {}, "utc_time_created": "2025", "run_id": "{run}"}
JUDGE_KEY = {"experiment_id": "{exp}", "name": "judge"}
TRACE_LINK = {"run_id": "{run}", "trace_ids": ["{trace}"]}
PROMPT = {"trace_id": "{trace}", "prompt_versions": [{"name": "p", "version": "1"}]}
CORRELATION = {"experiment_ids": ["{exp}"], "filter_string1": "state = 'OK'",
               "filter_string2": "state = 'ERROR'"}  # fmt: skip
BULK = {"run_ids": ["{run}"], "metric_key": "loss"}
UPLOAD = {"run_id": "{run}", "path": "a.txt"}
BIG_MODEL = json.dumps({**MODEL, "artifact_path": TEN_MB})

CORRELATE = V3 + "traces/calculate-filter-correlation"
BULK_PATH = V2 + "metrics/get-history-bulk-interval"
PRESIGNED_UPLOAD = V2 + "artifacts/presigned-upload-url"

# {(method, path): [(what, body or query, status)]}
BAD = {
    ("post", D + "create"): [
        ("no name", {"experiment_ids": ["{exp}"]}, 400),
        ("name a list", {"name": ["qa"]}, 400),
        ("name 10 MB", {"name": TEN_MB}, 400),
        ("NUL in the name", {"name": "q\x00a"}, 400),
        ("tags an object, not JSON text", {"name": "n", "tags": {"a": "b"}}, 400),
        ("a tag value of 10 MB", {"name": "n", "tags": json.dumps({"k": TEN_MB})}, 400),
        ("a tag key of 10 KB", {"name": "n", "tags": json.dumps({"k" * 10_000: "v"})}, 400),
        ("unknown experiment", {"name": "n", "experiment_ids": ["987654"]}, 404),
        ("experiment id a number", {"name": "n", "experiment_ids": [5]}, 400),
        ("101 experiments", {"name": "n", "experiment_ids": ["{exp}"] * 101}, 400),
    ],
    ("get", D + UNKNOWN_DS): [("unknown dataset", None, 404)],
    ("get", D + "d-<script>"): [("malformed id", None, 400)],
    ("delete", D + "nope"): [("malformed id", None, 400)],
    ("delete", D + "nope/tags/team"): [("malformed id", None, 400)],
    ("post", D + "search"): [
        ("filter a number", {"filter_string": 5}, 400),
        ("filter 10 MB", {"filter_string": "name = '" + TEN_MB + "'"}, 400),
        ("unknown field", {"filter_string": "size = 1"}, 400),
        ("order_by a string", {"order_by": "name"}, 400),
        ("bad experiment id", {"experiment_ids": ["x"]}, 400),
        ("forged token", {"page_token": "bm9wZQ=="}, 400),
    ],
    ("get", D + "search"): [("max_results text", {"max_results": "many"}, 400)],
    ("patch", D + "{ds}/tags"): [
        ("tags missing", {}, 400),
        ("a nested value", {"tags": '{"k": {"x": 1}}'}, 400),
        ("a value of 10 MB", {"tags": json.dumps({"k": TEN_MB})}, 400),
        ("NUL in a key", {"tags": '{"k\\u0000": "v"}'}, 400),
    ],
    ("patch", D + UNKNOWN_DS + "/tags"): [("unknown dataset", {"tags": "{}"}, 404)],
    ("post", D + "{ds}/records"): [
        ("records missing", {}, 400),
        ("records a list, not JSON text", {"records": [{"inputs": {}}]}, 400),
        ("a 10 MB record", {"records": BIG_RECORD}, 400),
        ("10,001 records", {"records": NO_RECORDS}, 400),
        ("a NaN expectation", {"records": '[{"inputs": {}, "expectations": {"x": NaN}}]'}, 400),
    ],
    ("post", D + UNKNOWN_DS + "/records"): [("unknown dataset", {"records": "[]"}, 404)],
    ("get", D + "{ds}/records"): [
        ("page_token forged", {"page_token": "OTk5OmRyLXg="}, 400),
        ("max_results negative", {"max_results": "-1"}, 400),
    ],
    ("get", D + UNKNOWN_DS + "/records"): [("unknown dataset", None, 404)],
    ("delete", D + "{ds}/records"): [
        ("ids a string", {"dataset_record_ids": "dr-1"}, 400),
        ("a malformed id", {"dataset_record_ids": ["<b>"]}, 400),
        ("10,001 ids", {"dataset_record_ids": ["dr-" + "0" * 32] * 10_001}, 400),
    ],
    ("delete", D + UNKNOWN_DS + "/records"): [("unknown dataset", {"dataset_record_ids": []}, 404)],
    ("get", D + UNKNOWN_DS + "/experiment-ids"): [("unknown dataset", None, 404)],
    ("get", D + "x/experiment-ids"): [("malformed id", None, 400)],
    ("post", D + "{ds}/add-experiments"): [
        ("unknown experiment", {"experiment_ids": ["987654"]}, 404),
        ("ids a string", {"experiment_ids": "{exp}"}, 400),
        ("101 experiments", {"experiment_ids": ["{exp}"] * 101}, 400),
    ],
    ("post", D + UNKNOWN_DS + "/add-experiments"): [
        ("unknown dataset", {"experiment_ids": ["{exp}"]}, 404)
    ],
    ("post", D + "{ds}/remove-experiments"): [
        ("an id a number", {"experiment_ids": [1]}, 400),
        ("101 experiments", {"experiment_ids": ["1"] * 101}, 400),
    ],
    ("post", D + UNKNOWN_DS + "/remove-experiments"): [
        ("unknown dataset", {"experiment_ids": []}, 404)
    ],
    ("post", V2 + "experiments/search-datasets"): [
        ("no experiment", {}, 400),
        ("21 experiments", {"experiment_ids": ["{exp}"] * 21}, 400),
        ("a bad id", {"experiment_ids": ["x"]}, 400),
        ("ids a string", {"experiment_ids": "{exp}"}, 400),
    ],
    ("post", S + "register"): [
        ("no name", {"experiment_id": "{exp}", "serialized_scorer": JUDGE}, 400),
        ("name an object", {**JUDGE_KEY, "name": {"a": 1}, "serialized_scorer": JUDGE}, 400),
        ("name 10 MB", {**JUDGE_KEY, "name": TEN_MB, "serialized_scorer": JUDGE}, 400),
        ("scorer 10 MB", {**JUDGE_KEY, "serialized_scorer": json.dumps({"p": TEN_MB})}, 400),
        ("scorer not JSON", {**JUDGE_KEY, "serialized_scorer": "{"}, 400),
        ("scorer nested 5000 deep", {**JUDGE_KEY, "serialized_scorer": DEEP}, 400),
        ("experiment a number", {**JUDGE_KEY, "experiment_id": 1, "serialized_scorer": JUDGE}, 400),
        (
            "unknown experiment",
            {**JUDGE_KEY, "experiment_id": "987654", "serialized_scorer": JUDGE},
            404,
        ),
    ],
    ("get", S + "list"): [
        ("a bad experiment", {"experiment_id": "x"}, 400),
        ("unknown experiment", {"experiment_id": "987654"}, 404),
    ],
    ("get", S + "versions"): [
        ("no name", {"experiment_id": "{exp}"}, 400),
        ("unknown name", {**JUDGE_KEY, "name": "nobody"}, 404),
        ("name 10 KB", {**JUDGE_KEY, "name": "n" * 10_000}, 400),
    ],
    ("get", S + "get"): [
        ("version text", {**JUDGE_KEY, "version": "one"}, 400),
        ("version past int32", {**JUDGE_KEY, "version": str(2**31)}, 400),
        ("unknown version", {**JUDGE_KEY, "version": "9"}, 404),
    ],
    ("delete", S + "delete"): [
        ("version a list", {**JUDGE_KEY, "version": [1]}, 400),
        ("no experiment", {"name": "judge"}, 400),
        ("unknown name", {**JUDGE_KEY, "name": "nobody"}, 404),
    ],
    ("put", S + "online-config"): [
        ("no rate", JUDGE_KEY, 400),
        ("rate 2", {**JUDGE_KEY, "sample_rate": 2}, 400),
        ("rate a list", {**JUDGE_KEY, "sample_rate": [0.5]}, 400),
        ("filter 10 MB", {**JUDGE_KEY, "sample_rate": 0.5, "filter_string": TEN_MB}, 400),
        ("filter invalid", {**JUDGE_KEY, "sample_rate": 0.5, "filter_string": "a = = b"}, 400),
        ("unknown scorer", {**JUDGE_KEY, "name": "nobody", "sample_rate": 0}, 404),
    ],
    ("get", S + "online-configs"): [
        ("no ids", None, 400),
        ("1001 ids", {"scorer_ids": ["{scorer}"] * 1001}, 400),
    ],
    ("patch", V3 + "traces/{trace}/tags"): [
        ("no key", {"value": "v"}, 400),
        ("key a list", {"key": ["k"], "value": "v"}, 400),
        ("key 10 MB", {"key": TEN_MB, "value": "v"}, 400),
        ("value 10 MB", {"key": "k", "value": TEN_MB}, 400),
        ("value an object", {"key": "k", "value": {"a": 1}}, 400),
        ("NUL in the value", {"key": "k", "value": "a\x00b"}, 400),
        ("a system tag", {"key": "mlflow.trace.spansLocation", "value": "x"}, 400),
    ],
    ("patch", V3 + f"traces/{UNKNOWN_TRACE}/tags"): [
        ("unknown trace", {"key": "k", "value": "v"}, 404)
    ],
    ("patch", V3 + "traces/tr-nope/tags"): [("malformed id", {"key": "k", "value": "v"}, 400)],
    ("delete", V3 + "traces/{trace}/tags"): [
        ("no key", {}, 400),
        ("a key not set", {"key": "absent"}, 404),
    ],
    ("delete", V3 + f"traces/{UNKNOWN_TRACE}/tags"): [("unknown trace", {"key": "k"}, 404)],
    ("post", V2 + "traces/link-to-run"): [
        ("no trace ids", {"run_id": "{run}"}, 400),
        ("no run", {"trace_ids": ["{trace}"]}, 400),
        ("ids a string", {**TRACE_LINK, "trace_ids": "{trace}"}, 400),
        ("a bad trace id", {**TRACE_LINK, "trace_ids": ["<i>"]}, 400),
        ("101 traces", {**TRACE_LINK, "trace_ids": ["{trace}"] * 101}, 400),
        ("run a number", {**TRACE_LINK, "run_id": 7}, 400),
        ("unknown run", {**TRACE_LINK, "run_id": UNKNOWN_RUN}, 404),
    ],
    ("post", V2 + "traces/link-prompts"): [
        ("no trace", {"prompt_versions": PROMPT["prompt_versions"]}, 400),
        ("no versions", {"trace_id": "{trace}"}, 400),
        ("versions an object", {**PROMPT, "prompt_versions": {"name": "p"}}, 400),
        ("version '²'", {**PROMPT, "prompt_versions": [{"name": "p", "version": "²"}]}, 400),
        (
            "a version of 5000 digits",
            {**PROMPT, "prompt_versions": [{"name": "p", "version": "9" * 5000}]},
            400,
        ),
        ("version a list", {**PROMPT, "prompt_versions": [{"name": "p", "version": [1]}]}, 400),
        ("name 10 MB", {**PROMPT, "prompt_versions": [{"name": TEN_MB, "version": "1"}]}, 400),
        ("101 versions", {**PROMPT, "prompt_versions": PROMPT["prompt_versions"] * 101}, 400),
        ("unknown trace", {**PROMPT, "trace_id": UNKNOWN_TRACE}, 404),
    ],
    ("post", CORRELATE): [
        ("nothing", {}, 400),
        ("no second filter", {**CORRELATION, "filter_string2": None}, 400),
        ("a filter a number", {**CORRELATION, "filter_string1": 1}, 400),
        ("a filter invalid", {**CORRELATION, "filter_string2": "nope nope"}, 400),
        ("a filter of 10 MB", {**CORRELATION, "filter_string1": TEN_MB}, 400),
        ("base filter invalid", {**CORRELATION, "base_filter": "(("}, 400),
        ("a bad experiment", {**CORRELATION, "experiment_ids": ["x"]}, 400),
    ],
    ("get", BULK_PATH): [
        ("no runs", {"metric_key": "loss"}, 400),
        ("no key", {"run_ids": "{run}"}, 400),
        ("max_results text", {**BULK, "max_results": "x"}, 400),
        ("max_results 2501", {**BULK, "max_results": "2501"}, 400),
        ("start without end", {**BULK, "start_step": "1"}, 400),
        ("a step past int64", {**BULK, "start_step": "1", "end_step": str(2**64)}, 400),
        ("101 runs", {**BULK, "run_ids": ["{run}"] * 101}, 400),
        ("a bad run id", {**BULK, "run_ids": "<i>"}, 400),
        ("unknown run", {**BULK, "run_ids": UNKNOWN_RUN}, 404),
    ],
    ("post", V2 + "runs/log-model"): [
        ("no model", {"run_id": "{run}"}, 400),
        ("model an object, not JSON text", {"run_id": "{run}", "model_json": MODEL}, 400),
        ("model not JSON", {"run_id": "{run}", "model_json": "{"}, 400),
        ("model nested 100000 deep", {"run_id": "{run}", "model_json": "[" * 100_000}, 400),
        ("fields missing", {"run_id": "{run}", "model_json": "{}"}, 400),
        ("model 10 MB", {"run_id": "{run}", "model_json": BIG_MODEL}, 400),
        ("no run", {"model_json": json.dumps(MODEL)}, 400),
        ("unknown run", {"run_id": UNKNOWN_RUN, "model_json": json.dumps(MODEL)}, 404),
    ],
    ("get", V2 + "artifacts/list"): [
        ("no run", None, 400),
        ("a bad run id", {"run_id": "<i>"}, 400),
        ("unknown run", {"run_id": UNKNOWN_RUN}, 404),
        ("a path that escapes", {"run_id": "{run}", "path": "../../etc"}, 400),
        ("a path of 1 MB", {"run_id": "{run}", "path": "a/" * 500_000}, 400),
    ],
    ("get", V2 + "logged-models/nope/artifacts/directories"): [("malformed id", None, 400)],
    ("get", V2 + f"logged-models/{UNKNOWN_MODEL}/artifacts/directories"): [
        ("unknown model", None, 404)
    ],
    ("get", V2 + "logged-models/{model}/artifacts/directories"): [
        ("a path that escapes", {"artifact_directory_path": "a/../.."}, 400)
    ],
    ("post", PRESIGNED_UPLOAD): [
        ("run and model", {**UPLOAD, "model_id": "{model}"}, 400),
        ("neither", {"path": "a.txt"}, 400),
        ("no path", {"run_id": "{run}"}, 400),
        ("a path that escapes", {**UPLOAD, "path": "../x"}, 400),
        ("path a list", {**UPLOAD, "path": ["a"]}, 400),
        ("unknown run", {**UPLOAD, "run_id": UNKNOWN_RUN}, 404),
        ("unknown model", {"model_id": UNKNOWN_MODEL, "path": "a"}, 404),
    ],
    ("post", V2 + "artifacts/presigned-download-url"): [
        ("no run", {"path": "a.txt"}, 400),
        ("unknown run", {**UPLOAD, "run_id": UNKNOWN_RUN}, 404),
    ],
    ("post", MPU + "create/{exp}/../../x"): [("a path that escapes", {}, 400)],
    ("post", MPU + "complete/{exp}/" + "a" * 256): [("a segment past 255 bytes", {}, 400)],
    ("post", MPU + "abort/{exp}\\x"): [("a backslash", {}, 400)],
    ("get", "/api/2.0/mlflow-artifacts/presigned/{exp}/../../x"): [
        ("a path that escapes", None, 400)
    ],
}
CASES = [
    pytest.param(method, path, body, status, id=f"{method} {path[:60]}: {what}")
    for (method, path), cases in BAD.items()
    for what, body, status in cases
]


@pytest.mark.parametrize(("method", "path", "body", "status"), CASES)
def test_a_bad_field_is_refused_with_mlflow_error_json_and_nothing_changes(
    client, world, method, path, body, status
):
    before = stored()

    response = call(client, method, fill(path, world), fill(body, world))

    assert_refused(response, status)
    assert stored() == before


def assert_refused(response, status: int) -> None:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    error = response.json()
    assert set(error) == {"error_code", "message"}
    assert error["error_code"] == CODES[status]
    assert isinstance(error["message"], str) and error["message"]
