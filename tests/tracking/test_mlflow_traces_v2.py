"""MLflow's V2 trace-info endpoints (StartTrace, EndTrace, GetTraceInfo, SearchTraces): a
trace started, ended, read and searched over real HTTP, and bad input answered 4xx with
MLflow's error JSON, leaving the rows as they were. The real client's V2 calls are in
tests/interop/test_traces_v2.py."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import requests
from django.forms.models import model_to_dict

from tracking import ingest
from tracking.models import Experiment, LifecycleStage, Trace

V2 = "/api/2.0/mlflow/traces"
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
UNKNOWN = "tr-" + "0" * 32


def kv(mapping: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in mapping.items()]


def as_dict(items: list[dict[str, str]]) -> dict[str, str]:
    return {item["key"]: item["value"] for item in items}


@pytest.fixture
def server(live_server, transactional_db) -> str:
    return live_server.url


@pytest.fixture
def http_experiment(server: str) -> Experiment:
    return Experiment.objects.create(name="v2-traces")


def start(server: str, experiment: Experiment, at_ms: int, **fields: Any) -> dict[str, Any]:
    body = {"experiment_id": str(experiment.pk), "timestamp_ms": at_ms, **fields}
    response = requests.post(server + V2, json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["trace_info"]


def end(server: str, request_id: str, at_ms: int, status: str, **fields: Any) -> dict[str, Any]:
    body = {"request_id": request_id, "timestamp_ms": at_ms, "status": status, **fields}
    response = requests.patch(f"{server}{V2}/{request_id}", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["trace_info"]


def test_a_trace_is_started_ended_and_read_back(server, http_experiment):
    started = start(
        server,
        http_experiment,
        T0_MS,
        request_metadata=kv({"mlflow.sourceRun": "r1", "mlflow.modelId": "m-" + "a" * 32}),
        tags=kv({"env": "staging"}),
    )

    request_id = started["request_id"]
    assert re.fullmatch(r"tr-[0-9a-f]{32}", request_id)
    assert started["experiment_id"] == str(http_experiment.pk)
    assert (started["timestamp_ms"], started["execution_time_ms"]) == (T0_MS, 0)
    assert started["status"] == "IN_PROGRESS"
    assert as_dict(started["request_metadata"]) == {
        "mlflow.sourceRun": "r1",
        "mlflow.modelId": "m-" + "a" * 32,
    }
    assert as_dict(started["tags"]) == {
        "env": "staging",
        "mlflow.artifactLocation": f"mlflow-artifacts:/{http_experiment.pk}/traces/{request_id}"
        "/artifacts",
    }

    ended = end(
        server,
        request_id,
        T0_MS + 1500,
        "OK",
        request_metadata=kv({"mlflow.trace.tokenUsage": '{"total_tokens": 42}'}),
        tags=kv({"mlflow.traceName": "answer", "env": "prod"}),
    )

    assert (ended["timestamp_ms"], ended["execution_time_ms"]) == (T0_MS, 1500)
    assert ended["status"] == "OK"
    assert as_dict(ended["request_metadata"])["mlflow.sourceRun"] == "r1"  # merged, not replaced
    assert as_dict(ended["tags"])["env"] == "prod"
    info = requests.get(f"{server}{V2}/{request_id}/info", timeout=10).json()["trace_info"]
    assert info == ended
    trace = Trace.objects.get(trace_id=request_id)
    assert (trace.state, trace.duration_ns, trace.name) == ("OK", 1_500_000_000, "answer")
    assert (trace.model_id, trace.total_tokens) == ("m-" + "a" * 32, 42)
    v3 = requests.get(f"{server}/api/3.0/mlflow/traces/{request_id}", timeout=10).json()
    assert v3["trace"]["trace_info"]["execution_duration"] == "1.500s"


def test_search_filters_orders_and_pages(server, http_experiment):
    other = Experiment.objects.create(name="elsewhere")
    ids = {}
    for i, (name, status) in enumerate([("a", "OK"), ("b", "ERROR"), ("c", "OK"), ("d", "OK")]):
        request_id = start(server, http_experiment, T0_MS + i * 1000)["request_id"]
        end(server, request_id, T0_MS + i * 1000 + 100 * (4 - i), status,
            tags=kv({"mlflow.traceName": name}))  # fmt: skip
        ids[name] = request_id
    start(server, other, T0_MS)  # another experiment's trace: never found below

    def search(**params: Any) -> dict[str, Any]:
        query = {"experiment_ids": [str(http_experiment.pk)], **params}
        response = requests.get(server + V2, params=query, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def names(body: dict[str, Any]) -> list[str]:
        return [as_dict(t["tags"])["mlflow.traceName"] for t in body["traces"]]

    assert names(search()) == ["d", "c", "b", "a"]  # newest first
    assert names(search(filter="status = 'OK'", order_by="timestamp_ms ASC")) == ["a", "c", "d"]
    assert names(search(order_by="execution_time_ms ASC")) == ["d", "c", "b", "a"]
    not_b = "tags.`mlflow.traceName` != 'b' AND execution_time_ms > 150"
    assert names(search(filter=not_b)) == ["c", "a"]
    pages, token = [], None
    while True:
        paging = {"page_token": token} if token else {}
        body = search(max_results=3, order_by="timestamp_ms ASC", **paging)
        pages.append(names(body))
        token = body.get("next_page_token")
        if not token:
            break
    assert pages == [["a", "b", "c"], ["d"]]
    both = search(experiment_ids=[str(http_experiment.pk), str(other.pk)])
    assert len(both["traces"]) == 5


# --- Without a live server -------------------------------------------------------------------


def send(client, method: str, path: str, body: Any = None):
    data = body if isinstance(body, str) else json.dumps(body if body is not None else {})
    if method == "GET":
        return client.get(path, body or {})
    return client.generic(method, path, data, content_type="application/json")


@pytest.fixture
def stored(experiment: Experiment) -> str:
    """An ended trace: what a bad request must leave as it was."""
    started = ingest.TraceInfo(
        trace_id="tr-" + "b" * 32,
        experiment_id=experiment.pk,
        request_time=ingest.timestamp(T0_MS, "t"),
        duration_ns=5_000_000,
        state="OK",
        tags={"env": "staging"},
    )
    ingest.store([started])
    return started.trace_id


def snapshot() -> list[dict[str, Any]]:
    return [model_to_dict(t) for t in Trace.objects.order_by("pk")]


def _bad_requests(experiment: int, trace_id: str) -> list[tuple[str, str, Any, int, str]]:
    e = str(experiment)
    ok_start = {"experiment_id": e, "timestamp_ms": T0_MS}
    ok_end = {"timestamp_ms": T0_MS + 10, "status": "OK"}
    end_path = f"{V2}/{trace_id}"
    bad, missing = "INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"
    return [
        # StartTrace
        ("POST", V2, {}, 400, bad),
        ("POST", V2, {"timestamp_ms": T0_MS}, 400, bad),
        ("POST", V2, {**ok_start, "experiment_id": 7}, 400, bad),
        ("POST", V2, {**ok_start, "experiment_id": "seven"}, 400, bad),
        ("POST", V2, {**ok_start, "experiment_id": "987654"}, 404, missing),
        ("POST", V2, {"experiment_id": e}, 400, bad),
        ("POST", V2, {**ok_start, "timestamp_ms": "soon"}, 400, bad),
        ("POST", V2, {**ok_start, "timestamp_ms": -1}, 400, bad),
        ("POST", V2, {**ok_start, "timestamp_ms": 2**62}, 400, bad),
        ("POST", V2, {**ok_start, "timestamp_ms": [1]}, 400, bad),
        ("POST", V2, {**ok_start, "tags": {"k": "v"}}, 400, bad),
        ("POST", V2, {**ok_start, "tags": [{"value": "v"}]}, 400, bad),
        ("POST", V2, {**ok_start, "tags": [{"key": "k", "value": 5}]}, 400, bad),
        ("POST", V2, {**ok_start, "tags": [{"key": "k", "value": "v" * 8001}]}, 400, bad),
        ("POST", V2, {**ok_start, "request_metadata": ["k"]}, 400, bad),
        ("POST", V2, {**ok_start, "request_metadata": [{"key": "k\x00", "value": ""}]}, 400, bad),
        ("POST", V2, "[1, 2]", 400, bad),
        ("POST", V2, "{not json", 400, bad),
        # EndTrace
        ("PATCH", f"{V2}/{UNKNOWN}", ok_end, 404, missing),
        ("PATCH", f"{V2}/not-a-trace", ok_end, 400, bad),
        ("PATCH", end_path, {}, 400, bad),
        ("PATCH", end_path, {"status": "OK"}, 400, bad),
        ("PATCH", end_path, {"timestamp_ms": T0_MS + 10}, 400, bad),
        ("PATCH", end_path, {**ok_end, "status": "DONE"}, 400, bad),
        ("PATCH", end_path, {**ok_end, "status": 9}, 400, bad),
        ("PATCH", end_path, {**ok_end, "status": ["OK"]}, 400, bad),
        ("PATCH", end_path, {**ok_end, "status": True}, 400, bad),
        ("PATCH", end_path, {**ok_end, "timestamp_ms": 250_000_000_000_000}, 400, bad),
        ("PATCH", end_path, {**ok_end, "tags": [{"key": "", "value": "v"}]}, 400, bad),
        ("PATCH", end_path, {**ok_end, "request_metadata": "k=v"}, 400, bad),
        # GetTraceInfo
        ("GET", f"{V2}/{UNKNOWN}/info", None, 404, missing),
        ("GET", f"{V2}/{UNKNOWN.upper()}/info", None, 400, bad),
        # SearchTraces
        ("GET", V2, None, 400, bad),
        ("GET", V2, {"experiment_ids": "one"}, 400, bad),
        ("GET", V2, {"experiment_ids": e, "max_results": 501}, 400, bad),
        ("GET", V2, {"experiment_ids": e, "max_results": -1}, 400, bad),
        ("GET", V2, {"experiment_ids": e, "max_results": "many"}, 400, bad),
        ("GET", V2, {"experiment_ids": e, "filter": "status === 'OK'"}, 400, bad),
        ("GET", V2, {"experiment_ids": e, "filter": "nothing.here = 1"}, 400, bad),
        ("GET", V2, {"experiment_ids": e, "order_by": "colour DESC"}, 400, bad),
        ("GET", V2, {"experiment_ids": e, "page_token": "not-a-token"}, 400, bad),
    ]


def test_bad_input_is_a_4xx_that_changes_nothing(client, experiment, stored):
    before = snapshot()
    failures = []
    for method, path, body, status, code in _bad_requests(experiment.pk, stored):
        response = send(client, method, path, body)
        got = (response.status_code, response.json().get("error_code"))
        if got != (status, code) or not response.json().get("message"):
            failures.append(f"{method} {path} {str(body)[:80]}: {got}, {response.content[:200]}")
    assert not failures, "\n".join(failures)
    assert snapshot() == before


def test_a_deleted_experiment_takes_no_new_trace(client, experiment):
    experiment.lifecycle_stage = LifecycleStage.DELETED
    experiment.save(update_fields=["lifecycle_stage"])

    body = {"experiment_id": str(experiment.pk), "timestamp_ms": T0_MS}
    response = send(client, "POST", V2, body)

    assert (response.status_code, response.json()["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    assert not Trace.objects.exists()


@pytest.mark.parametrize(
    ("status", "state"),
    [("ERROR", "ERROR"), (1, "OK"), ("2", "ERROR"), ("TRACE_STATUS_UNSPECIFIED", "IN_PROGRESS")],
)
def test_the_end_status_is_taken_by_name_or_number(client, stored, status, state):
    body = {"timestamp_ms": T0_MS + 10, "status": status}

    info = send(client, "PATCH", f"{V2}/{stored}", body).json()["trace_info"]

    assert info["status"] == state
    assert Trace.objects.get(trace_id=stored).state == state


def test_an_end_before_the_start_lasts_no_time(client, stored):
    body = {"timestamp_ms": T0_MS - 5000, "status": "ERROR"}

    info = send(client, "PATCH", f"{V2}/{stored}", body).json()["trace_info"]

    assert (info["execution_time_ms"], info["status"]) == (0, "ERROR")
    assert Trace.objects.get(trace_id=stored).duration_ns == 0


def test_an_end_keeps_tags_it_does_not_name(client, stored):
    body = {"timestamp_ms": T0_MS + 10, "status": "OK", "tags": kv({"reviewed": "yes"})}

    info = send(client, "PATCH", f"{V2}/{stored}", body).json()["trace_info"]

    assert as_dict(info["tags"])["env"] == "staging"
    assert Trace.objects.get(trace_id=stored).tags == {"env": "staging", "reviewed": "yes"}
