from __future__ import annotations

import json
import math
import re
from datetime import timedelta
from typing import Any

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from rest_framework.test import APIClient

from tests import rows
from tests.rows import T0, make_model
from tracking import api
from tracking.models import (
    Experiment,
    LoggedModelStatus,
    Metric,
    Run,
    Span,
    Trace,
    TraceState,
)
from tracking.storage import traces_json_path

T0_NS = int(T0.timestamp()) * 1_000_000_000

pytestmark = pytest.mark.django_db


@pytest.fixture
def client() -> APIClient:
    return APIClient()


def make_trace(experiment: Experiment, n: int = 0, **fields: Any) -> Trace:
    """tests.rows.make_trace with the values these tests read back through the API."""
    defaults = {
        "duration_ns": 1_500_000_000,
        "span_count": 0,
        "total_tokens": None,
        "metadata": {"mlflow.trace.sizeBytes": "1234"},
    }
    return rows.make_trace(experiment, n, **{**defaults, **fields})


def make_span(trace: Trace, n: int, parent: str = "", **fields: Any) -> Span:
    defaults = {
        "name": f"span {n}",
        "span_type": "CHAIN",
        "start_ns": T0_NS + n * 1000,
        "end_ns": T0_NS + n * 1000 + 500,
        "status": "OK",
    }
    return Span.objects.create(
        trace=trace, span_id=f"{n:016x}", parent_span_id=parent, **{**defaults, **fields}
    )


def span_dict(trace_hex: str, n: int, parent: int | None = None, **fields: Any) -> dict:
    return {
        "trace_id": trace_hex,
        "span_id": f"{n:016x}",
        "parent_span_id": None if parent is None else f"{parent:016x}",
        "name": f"step {n}",
        "start_time_unix_nano": T0_NS + n * 1000,
        "end_time_unix_nano": T0_NS + n * 1000 + 500,
        "status": {"code": "STATUS_CODE_OK", "message": ""},
        "attributes": {
            "mlflow.spanType": '"LLM"',
            "mlflow.spanInputs": json.dumps({"question": n}),
            "mlflow.spanOutputs": '"an answer"',
            "model": '"gpt-test"',
        },
        "events": [],
        **fields,
    }


def trace_body(n: int = 1, spans: int = 3, experiment_id: str = "0", **info: Any) -> dict:
    """A POST body in MLflow's shapes: a TraceInfoV3 and `traces.json` span dicts."""
    trace_hex = f"{n:032x}"
    return {
        "trace_info": {
            "trace_id": f"tr-{trace_hex}",
            "trace_location": {
                "type": "MLFLOW_EXPERIMENT",
                "mlflow_experiment": {"experiment_id": experiment_id},
            },
            "request_time": "2025-06-01T12:00:00Z",
            "execution_duration": "1.5s",
            "state": "OK",
            "request_preview": '{"question": "hi"}',
            "trace_metadata": {"mlflow.modelId": "m-" + "a" * 32},
            "tags": {"mlflow.traceName": "answer"},
            **info,
        },
        "spans": [span_dict(trace_hex, i, None if i == 1 else 1) for i in range(1, spans + 1)],
    }


def trace_ids(response) -> list[str]:
    return [row["trace_id"] for row in response.json()["results"]]


# --- Experiments ----------------------------------------------------------------------------


def test_experiments_list_newest_first_with_default_last(client):
    Experiment.objects.create(name="older", created_at=T0)
    Experiment.objects.create(name="newer", created_at=T0 + timedelta(days=1))
    Experiment.objects.filter(pk=0).update(created_at=T0 - timedelta(days=1))

    response = client.get("/api/v1/experiments/")

    assert response.status_code == 200
    rows = response.json()["results"]
    assert [r["name"] for r in rows] == ["newer", "older", "Default"]
    assert rows[-1]["experiment_id"] == "0"


def test_experiments_filter_by_name(client, experiment):
    response = client.get("/api/v1/experiments/", {"name": "support"})

    assert [r["experiment_id"] for r in response.json()["results"]] == [str(experiment.pk)]


def test_experiment_create_returns_it(client):
    response = client.post(
        "/api/v1/experiments/", {"name": "evals", "tags": {"team": "search"}}, format="json"
    )

    assert response.status_code == 201
    experiment = Experiment.objects.get(name="evals")
    assert response.json()["experiment_id"] == str(experiment.pk)
    assert experiment.tags == {"team": "search"}


def test_experiment_create_trims_the_name(client):
    response = client.post("/api/v1/experiments/", {"name": "  evals \n"}, format="json")

    assert response.status_code == 201
    assert response.json()["name"] == "evals"


def test_text_filters_compare_what_is_sent(client, experiment):
    padded = client.get("/api/v1/experiments/", {"name": " support"})
    too_long = client.get("/api/v1/experiments/", {"name": "x" * 499 + "  "})

    assert padded.json()["results"] == []  # exact: " support" is not "support"
    assert too_long.status_code == 400
    assert "name" in too_long.json()


def test_experiment_create_with_a_taken_name_is_409_naming_it(client, experiment):
    response = client.post("/api/v1/experiments/", {"name": "support"}, format="json")

    assert response.status_code == 409  # a conflict with what is stored, not a bad request
    assert response.json() == {"name": ["An experiment named 'support' already exists."]}
    assert Experiment.objects.filter(name="support").count() == 1


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "name"),
        ({"name": "  "}, "name"),
        ({"name": "\x1c\u3000"}, "name"),  # whitespace to str.strip(), not to JSON Schema's \s
        ({"name": " " + "x" * 500}, "name"),  # 501 characters sent, though 500 once trimmed
        ({"name": "x", "tags": {"": "v"}}, "tags"),
        ({"name": "x", "tags": {"k": ["v"]}}, "tags"),
        # Found by schemathesis: PostgreSQL refused the key, a 500.
        ({"name": "x", "tags": {"a\u0000b": "v"}}, "tags"),
    ],
)
def test_experiment_create_with_a_bad_body_is_400(client, body, field):
    response = client.post("/api/v1/experiments/", body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert not Experiment.objects.filter(name="x").exists()


def test_a_tag_key_with_an_unpaired_surrogate_is_400(client):
    body = '{"name": "x", "tags": {"a\\ud856": "v"}}'  # valid JSON, not valid Unicode

    response = client.post("/api/v1/experiments/", body, content_type="application/json")

    assert response.status_code == 400
    # The parser (orjson) refuses it, before the serializer's check of tag keys.
    assert "no low surrogate" in response.json()["detail"]
    assert not Experiment.objects.filter(name="x").exists()


def test_experiment_retrieve(client, experiment):
    response = client.get(f"/api/v1/experiments/{experiment.pk}/")

    assert response.status_code == 200
    assert response.json()["name"] == "support"


@pytest.mark.parametrize("experiment_id", ["424242", "abc", "9" * 30])
def test_experiment_retrieve_of_unknown_id_is_404(client, experiment_id):
    assert client.get(f"/api/v1/experiments/{experiment_id}/").status_code == 404


# --- Trace list -----------------------------------------------------------------------------


def test_trace_list_is_newest_first_with_light_rows(client, experiment):
    make_trace(experiment, 1)
    make_trace(experiment, 2, tags={"env": "prod"}, model_id="m-1", total_tokens=42, cost=0.25)

    response = client.get("/api/v1/traces/")

    assert response.status_code == 200
    body = response.json()
    assert body["next"] is None and body["previous"] is None
    newest = body["results"][0]
    assert newest == {
        "trace_id": f"tr-{2:032x}",
        "url": f"http://testserver/api/v1/traces/tr-{2:032x}/",
        "experiment_id": str(experiment.pk),
        "name": "trace 2",
        "state": "OK",
        "request_time": "2025-06-01T12:00:02Z",
        "duration_ms": 1500.0,
        "span_count": 0,
        "total_tokens": 42,
        "cost": 0.25,
        "model_id": "m-1",
        "request_preview": '{"question": "hi"}',
        "response_preview": "",
        "tags": {"env": "prod"},
    }
    assert trace_ids(response) == [f"tr-{2:032x}", f"tr-{1:032x}"]


def test_trace_list_runs_one_query_for_a_full_page(
    client, experiment, django_assert_max_num_queries
):
    for n in range(60):
        make_trace(experiment, n, tags={"k": "v"})

    with django_assert_max_num_queries(1):
        response = client.get("/api/v1/traces/", {"experiment": experiment.pk, "tag": "k:v"})

    assert len(response.json()["results"]) == 50


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"state": "ERROR"}, [3]),
        ({"model": "m-b"}, [2, 3]),
        ({"name": "trace 2"}, [2]),
        ({"name__contains": "TRACE"}, [1, 2, 3]),
        ({"name__contains": "ce 3"}, [3]),
        ({"since": "2025-06-01T12:00:02Z"}, [2, 3]),
        ({"until": "2025-06-01T12:00:02Z"}, [1]),
        ({"since": "2025-06-01T14:00:01 02:00"}, [1, 2, 3]),  # an unencoded "+" is a space
        ({"since": "2025-06-02"}, []),
        ({"until": "2025-06-01T12:00:02"}, [1]),  # naive is UTC
        ({"min_duration_ms": "2000"}, [2, 3]),
        ({"max_duration_ms": "1000.5"}, [1]),
        ({"min_duration_ms": "1500", "max_duration_ms": "2500"}, [2]),
        ({"tag": "env:prod"}, [2, 3]),
        ({"tag": ["env:prod", "mlflow.user:al:ice"]}, [3]),
        ({"state": "", "model": ""}, [1, 2, 3]),  # blank means "not given"
    ],
)
def test_trace_list_filters(client, experiment, params, expected):
    make_trace(experiment, 1, duration_ns=1_000_000_000)
    make_trace(experiment, 2, duration_ns=2_000_000_000, model_id="m-b", tags={"env": "prod"})
    make_trace(
        experiment,
        3,
        state=TraceState.ERROR,
        duration_ns=3_000_000_000,
        model_id="m-b",
        tags={"env": "prod", "mlflow.user": "al:ice"},
    )

    response = client.get("/api/v1/traces/", params)

    assert response.status_code == 200, response.json()
    assert trace_ids(response) == [f"tr-{n:032x}" for n in reversed(expected)]


def test_trace_list_filters_by_experiment(client, experiment):
    make_trace(experiment, 1)
    make_trace(Experiment.objects.get(pk=0), 2)

    response = client.get("/api/v1/traces/", {"experiment": experiment.pk})

    assert trace_ids(response) == [f"tr-{1:032x}"]


@pytest.mark.parametrize(
    "params, parameter",
    [
        ({"experiment": "support"}, "experiment"),
        ({"experiment": "9" * 30}, "experiment"),
        ({"state": "DONE"}, "state"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2025-13-01T00:00:00Z"}, "until"),
        ({"min_duration_ms": "-1"}, "min_duration_ms"),
        ({"max_duration_ms": "nan"}, "max_duration_ms"),
        ({"max_duration_ms": "1e300"}, "max_duration_ms"),
        ({"tag": "env"}, "tag"),
        ({"tag": ":prod"}, "tag"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "many"}, "page_size"),
        ({"page_size": "100000"}, "page_size"),
        ({"status": "ERROR"}, "status"),  # the trace filter is `state`
    ],
)
def test_trace_list_with_a_bad_parameter_is_400_naming_it(client, experiment, params, parameter):
    make_trace(experiment, 1)

    response = client.get("/api/v1/traces/", params)

    assert response.status_code == 400
    assert list(response.json()) == [parameter]


def test_trace_list_pages_through_ties_with_no_duplicates_or_skips(client, experiment):
    # Traces stored by one bulk ingest share a request time: the cursor must order within it.
    for n in range(47):
        make_trace(experiment, n, request_time=T0 + timedelta(seconds=n // 10))
    expected = list(
        Trace.objects.order_by("-request_time", "-pk").values_list("trace_id", flat=True)
    )

    pages, url = [], "/api/v1/traces/?page_size=10"
    while url:
        body = client.get(url).json()
        pages.append([row["trace_id"] for row in body["results"]])
        url = body["next"]

    assert [len(page) for page in pages] == [10, 10, 10, 10, 7]
    assert [trace_id for page in pages for trace_id in page] == expected

    # ...and back again through the `previous` links.
    back, url = [], body["previous"]
    while url:
        body = client.get(url).json()
        back.append([row["trace_id"] for row in body["results"]])
        url = body["previous"]
    assert back == pages[-2::-1]


def test_trace_list_next_link_keeps_the_filters(client, experiment):
    for n in range(5):
        make_trace(experiment, n, state=TraceState.ERROR if n % 2 else TraceState.OK)

    first = client.get("/api/v1/traces/", {"state": "OK", "page_size": 2}).json()
    second = client.get(first["next"]).json()

    assert "state=OK" in first["next"]
    assert [r["trace_id"] for r in first["results"] + second["results"]] == [
        f"tr-{n:032x}" for n in (4, 2, 0)
    ]
    assert second["next"] is None


def test_trace_list_renders_in_the_browsable_api(client, experiment):
    make_trace(experiment, 1)

    response = client.get("/api/v1/traces/", HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    assert f"tr-{1:032x}" in response.content.decode()


# --- Trace detail ---------------------------------------------------------------------------


def test_trace_detail_has_metadata_tags_and_spans_in_start_order(
    client, experiment, django_assert_max_num_queries
):
    trace = make_trace(experiment, 1, tags={"env": "prod"})
    make_span(trace, 2, parent=f"{1:016x}", inputs={"q": "hi"}, attributes={"model": "x"})
    make_span(trace, 1, span_type="AGENT", outputs="hello", events=[{"name": "retry"}])

    with django_assert_max_num_queries(2):
        response = client.get(f"/api/v1/traces/{trace.trace_id}/")

    assert response.status_code == 200
    body = response.json()
    assert body["metadata"] == {"mlflow.trace.sizeBytes": "1234"}
    assert body["tags"] == {"env": "prod"}
    assert body["spans_truncated"] is False
    assert body["spans_url"] == f"http://testserver/api/v1/traces/{trace.trace_id}/spans/"
    assert [s["span_id"] for s in body["spans"]] == [f"{1:016x}", f"{2:016x}"]
    root, child = body["spans"]
    assert root["parent_span_id"] is None
    assert root["outputs"] == "hello"
    assert root["events"] == [{"name": "retry"}]
    assert child == {
        "span_id": f"{2:016x}",
        "parent_span_id": f"{1:016x}",
        "name": "span 2",
        "span_type": "CHAIN",
        "status": "OK",
        "status_message": "",
        "start_time_ns": T0_NS + 2000,
        "end_time_ns": T0_NS + 2500,
        "duration_ms": 0.0005,
        "inputs": {"q": "hi"},
        "outputs": None,
        "attributes": {"model": "x"},
        "events": [],
    }


def test_trace_detail_caps_its_spans(client, experiment, monkeypatch):
    monkeypatch.setattr(api, "SPANS_INLINE_MAX", 3)
    trace = make_trace(experiment, 1)
    for n in range(5):
        make_span(trace, n)

    body = client.get(f"/api/v1/traces/{trace.trace_id}/").json()

    assert len(body["spans"]) == 3
    assert body["spans_truncated"] is True


def test_trace_detail_of_unknown_trace_is_404(client):
    response = client.get(f"/api/v1/traces/tr-{9:032x}/")

    assert response.status_code == 404
    assert "detail" in response.json()


# --- Ingest ---------------------------------------------------------------------------------


def test_post_trace_stores_it_through_ingest(client):
    response = client.post("/api/v1/traces/", trace_body(1, spans=3), format="json")

    assert response.status_code == 201
    trace_id = f"tr-{1:032x}"
    assert response["Location"] == f"http://testserver/api/v1/traces/{trace_id}/"
    body = response.json()
    assert body["trace_id"] == trace_id
    assert body["name"] == "answer"
    assert body["duration_ms"] == 1500.0
    assert body["model_id"] == "m-" + "a" * 32
    assert body["span_count"] == 3
    assert [s["span_type"] for s in body["spans"]] == ["LLM"] * 3
    assert body["spans"][0]["inputs"] == {"question": 1}
    assert body["spans"][0]["attributes"] == {"model": "gpt-test"}


def test_post_trace_runs_as_many_queries_for_300_spans_as_for_one(
    client, django_assert_max_num_queries
):
    with django_assert_max_num_queries(10):
        client.post("/api/v1/traces/", trace_body(1, spans=1), format="json")
    with django_assert_max_num_queries(10):
        response = client.post("/api/v1/traces/", trace_body(2, spans=300), format="json")

    assert response.json()["span_count"] == 300


def test_post_same_trace_twice_is_idempotent(client):
    first = client.post("/api/v1/traces/", trace_body(1, spans=3), format="json")
    again = client.post("/api/v1/traces/", trace_body(1, spans=3), format="json")

    assert (first.status_code, again.status_code) == (201, 200)
    assert Trace.objects.count() == 1
    assert Span.objects.count() == 3
    assert again.json()["span_count"] == 3


def test_post_trace_later_version_updates_it(client):
    client.post("/api/v1/traces/", trace_body(1, spans=1, state="IN_PROGRESS"), format="json")

    response = client.post("/api/v1/traces/", trace_body(1, spans=4), format="json")

    assert response.status_code == 200
    assert response.json()["state"] == "OK"
    assert Trace.objects.get().span_count == 4


def _bad_span_body() -> dict:
    body = trace_body(1)
    body["spans"][1]["start_time_unix_nano"] = "soon"
    return body


@pytest.mark.parametrize(
    "body, message",
    [
        ({"spans": []}, "trace_info"),
        ({"trace_info": "tr-1"}, "trace_info"),
        ({"trace_info": trace_body(1)["trace_info"], "spans": {}}, "spans"),
        (trace_body(1, trace_id="tr-123"), "trace_info.trace_id"),
        (trace_body(1, state="DONE"), "trace_info.state"),
        (trace_body(1, experiment_id="4242"), "Experiment 4242 does not exist"),
        (_bad_span_body(), "spans[1].start_time_unix_nano"),
        ({**trace_body(1), "spans": ["span"]}, "spans[0] must be a JSON object"),
    ],
)
def test_post_bad_trace_is_400_with_a_message_and_stores_nothing(client, body, message):
    response = client.post("/api/v1/traces/", body, format="json")

    assert response.status_code == 400
    assert message in json.dumps(response.json())
    assert not Trace.objects.exists()
    assert not Span.objects.exists()


def test_post_spans_are_spans_of_the_posted_trace_whatever_trace_id_they_carry(client):
    body = trace_body(1, spans=1)
    body["spans"] += [
        span_dict(f"{2:032x}", 2, parent=1),  # another trace's id
        {k: v for k, v in span_dict(f"{1:032x}", 3, parent=1).items() if k != "trace_id"},
    ]
    body["spans"][1]["attributes"]["mlflow.traceRequestId"] = json.dumps(f"tr-{3:032x}")

    response = client.post("/api/v1/traces/", body, format="json")

    assert response.status_code == 201
    assert [s["span_id"] for s in response.json()["spans"]] == [f"{n:016x}" for n in (1, 2, 3)]
    assert list(Trace.objects.values_list("trace_id", flat=True)) == [f"tr-{1:032x}"]
    assert Span.objects.filter(trace__trace_id=f"tr-{1:032x}").count() == 3


def test_post_span_ending_before_it_starts_is_kept_lasting_no_time(client):
    body = trace_body(1, spans=2)
    start = body["spans"][1]["start_time_unix_nano"]
    body["spans"][1]["end_time_unix_nano"] = start - 10**9  # the clock stepped back

    response = client.post("/api/v1/traces/", body, format="json")

    assert response.status_code == 201
    late = response.json()["spans"][1]
    assert (late["start_time_ns"], late["end_time_ns"], late["duration_ms"]) == (start, start, 0)


def test_post_malformed_json_is_400(client):
    response = client.post("/api/v1/traces/", "{not json", content_type="application/json")

    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def test_post_form_data_is_415(client):
    response = client.post("/api/v1/traces/", {"trace_info": "x"})

    assert response.status_code == 415


# --- Delete and tags ------------------------------------------------------------------------


def test_delete_trace_removes_it_its_spans_and_its_uploaded_spans(
    client,
    experiment,
    settings,
    tmp_path,
    django_assert_max_num_queries,
    django_capture_on_commit_callbacks,
):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path},
        },
    }
    trace = make_trace(experiment, 1)
    make_span(trace, 1)
    other = make_trace(experiment, 2)
    make_span(other, 1)
    document = default_storage.save(
        traces_json_path(experiment.pk, trace.trace_id), ContentFile(b"{}")
    )

    # The trace, then its spans, its assessments, its run links, its GenAI log records and its
    # row deleted; the document on commit.
    with django_assert_max_num_queries(6), django_capture_on_commit_callbacks(execute=True):
        response = client.delete(f"/api/v1/traces/{trace.trace_id}/")

    assert response.status_code == 204
    assert list(Trace.objects.values_list("trace_id", flat=True)) == [other.trace_id]
    assert list(Span.objects.values_list("trace", flat=True)) == [other.pk]
    assert not default_storage.exists(document)
    assert client.delete(f"/api/v1/traces/{trace.trace_id}/").status_code == 404


@pytest.mark.parametrize("method", ["patch", "post"])
def test_tags_are_set_and_deleted(client, experiment, method, django_assert_max_num_queries):
    trace = make_trace(experiment, 1, tags={"keep": "1", "drop": "2"})

    with django_assert_max_num_queries(4):  # with the savepoint and its release
        response = getattr(client, method)(
            f"/api/v1/traces/{trace.trace_id}/tags/",
            {"tags": {"reviewed": "yes", "drop": None, "never-there": None}},
            format="json",
        )

    assert response.status_code == 200
    assert response.json() == {"tags": {"keep": "1", "reviewed": "yes"}}
    trace.refresh_from_db()
    assert trace.tags == {"keep": "1", "reviewed": "yes"}


def test_setting_the_trace_name_tag_renames_the_trace(client, experiment):
    trace = make_trace(experiment, 1)

    client.patch(
        f"/api/v1/traces/{trace.trace_id}/tags/",
        {"tags": {"mlflow.traceName": "renamed"}},
        format="json",
    )

    assert trace_ids(client.get("/api/v1/traces/", {"name": "renamed"})) == [trace.trace_id]


@pytest.mark.parametrize(
    "body",
    [{"tags": "reviewed"}, {"tags": {"": "x"}}, {"tags": {"k": True}}, {"tags": {"k": ["x"]}}],
)
def test_bad_tag_changes_are_400(client, experiment, body):
    trace = make_trace(experiment, 1, tags={"keep": "1"})

    response = client.patch(f"/api/v1/traces/{trace.trace_id}/tags/", body, format="json")

    assert response.status_code == 400
    assert "tags" in response.json()
    trace.refresh_from_db()
    assert trace.tags == {"keep": "1"}


def test_tags_of_unknown_trace_is_404(client):
    response = client.patch(
        f"/api/v1/traces/tr-{9:032x}/tags/", {"tags": {"a": "b"}}, format="json"
    )

    assert response.status_code == 404


# --- Spans ----------------------------------------------------------------------------------


def test_spans_are_paged_in_start_order(client, experiment, django_assert_max_num_queries):
    trace = make_trace(experiment, 1)
    for n in (5, 3, 1, 4, 2):
        make_span(trace, n)
    make_span(make_trace(experiment, 2), 9)

    seen, url = [], f"/api/v1/traces/{trace.trace_id}/spans/?page_size=2"
    while url:
        with django_assert_max_num_queries(2):
            body = client.get(url).json()
        seen += [s["name"] for s in body["results"]]
        url = body["next"]

    assert seen == ["span 1", "span 2", "span 3", "span 4", "span 5"]


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"span_type": "LLM"}, ["span 2"]),
        ({"status": "ERROR"}, ["span 3"]),
        ({"name": "span 1"}, ["span 1"]),
        ({"span_type": "CHAIN", "status": "OK"}, ["span 1"]),
    ],
)
def test_spans_filters(client, experiment, params, expected):
    trace = make_trace(experiment, 1)
    make_span(trace, 1)
    make_span(trace, 2, span_type="LLM")
    make_span(trace, 3, status="ERROR", status_message="boom")

    response = client.get(f"/api/v1/traces/{trace.trace_id}/spans/", params)

    assert [s["name"] for s in response.json()["results"]] == expected


def test_spans_with_a_bad_status_is_400(client, experiment):
    trace = make_trace(experiment, 1)

    response = client.get(f"/api/v1/traces/{trace.trace_id}/spans/", {"status": "FAILED"})

    assert response.status_code == 400
    assert list(response.json()) == ["status"]


def test_spans_of_unknown_trace_is_404(client):
    assert client.get(f"/api/v1/traces/tr-{9:032x}/spans/").status_code == 404


# --- Logged models --------------------------------------------------------------------------


def test_models_list_newest_first_with_filters(client, experiment, django_assert_max_num_queries):
    run = Run.objects.create(experiment=experiment)
    make_model(experiment, created_at=T0, status=LoggedModelStatus.READY, source_run=run)
    newest = make_model(experiment, created_at=T0 + timedelta(hours=1))
    make_model(Experiment.objects.get(pk=0), name="other", created_at=T0 - timedelta(hours=1))

    with django_assert_max_num_queries(1):
        rows = client.get("/api/v1/models/").json()["results"]

    assert [r["name"] for r in rows] == ["support-agent", "support-agent", "other"]
    assert rows[0]["model_id"] == newest.model_id
    assert rows[0]["source_run_id"] is None
    assert rows[1]["source_run_id"] == run.run_id
    assert "params" not in rows[0]

    def names(params):
        return [r["model_id"] for r in client.get("/api/v1/models/", params).json()["results"]]

    assert len(names({"name": "support-agent"})) == 2
    assert len(names({"experiment": experiment.pk})) == 2
    assert len(names({"status": "LOGGED_MODEL_READY"})) == 1
    response = client.get("/api/v1/models/", {"status": "READY"})
    assert response.status_code == 400
    assert list(response.json()) == ["status"]


def test_model_detail_has_params_config_latest_metrics_and_trace_count(
    client, experiment, django_assert_max_num_queries
):
    model = make_model(
        experiment,
        params={"temperature": "0.2"},
        tags={"mlflow.source.git.commit": "abc123"},
        model_config={"endpoint": "gpt-test", "tools": ["search"]},
    )
    for step, value in [(0, 0.5), (2, 0.9), (1, 0.7)]:
        Metric.objects.create(
            logged_model=model, key="accuracy", value=value, step=step, timestamp_ms=step
        )
    Metric.objects.create(logged_model=model, key="latency", value=1.2, timestamp_ms=0)
    for n in range(3):
        make_trace(experiment, n, model_id=model.model_id)
    make_trace(experiment, 9)

    with django_assert_max_num_queries(3):
        response = client.get(f"/api/v1/models/{model.model_id}/")

    assert response.status_code == 200
    body = response.json()
    assert body["params"] == {"temperature": "0.2"}
    assert body["git_commit"] == "abc123"
    assert body["model_config"] == {"endpoint": "gpt-test", "tools": ["search"]}
    assert [(m["key"], m["value"], m["step"]) for m in body["metrics"]] == [
        ("accuracy", 0.9, 2),
        ("latency", 1.2, 0),
    ]
    assert body["trace_count"] == 3
    assert body["traces_url"] == f"http://testserver/api/v1/traces/?model={model.model_id}"


def test_a_nan_or_infinite_metric_is_null_in_the_api(client, experiment):
    model = make_model(experiment)
    for key, value in (("loss", math.nan), ("grad", math.inf), ("accuracy", 0.5)):
        Metric.objects.create(logged_model=model, key=key, value=value, timestamp_ms=0)

    response = client.get(f"/api/v1/models/{model.model_id}/")

    assert response.status_code == 200
    assert {m["key"]: m["value"] for m in response.json()["metrics"]} == {
        "accuracy": 0.5, "grad": None, "loss": None
    }  # fmt: skip


def test_model_detail_of_unknown_model_is_404(client):
    assert client.get("/api/v1/models/m-nope/").status_code == 404


# --- Schema and docs ------------------------------------------------------------------------


def test_schema_validates_without_warnings(tmp_path):
    path = tmp_path / "schema.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))

    schema = yaml.safe_load(path.read_text())
    assert {
        "/api/v1/experiments/",
        "/api/v1/experiments/{experiment_id}/",
        "/api/v1/traces/",
        "/api/v1/traces/{trace_id}/",
        "/api/v1/traces/{trace_id}/tags/",
        "/api/v1/traces/{trace_id}/spans/",
        "/api/v1/models/",
        "/api/v1/models/{model_id}/",
    } <= set(schema["paths"])
    list_params = {p["name"] for p in schema["paths"]["/api/v1/traces/"]["get"]["parameters"]}
    assert {"experiment", "state", "since", "tag", "min_duration_ms", "cursor"} <= list_params


def test_schema_is_served(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    assert "/api/v1/traces/{trace_id}/spans/" in response.json()["paths"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "name"),
    [("/api/v1/models/", "status"), ("/api/v1/traces/", "state"),
     ("/api/v1/traces/{trace_id}/spans/", "status")],
)  # fmt: skip
def test_a_blank_choice_filter_means_not_given_and_the_schema_says_so(client, path, name):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    params = {p["name"]: p["schema"] for p in schema["paths"][path]["get"]["parameters"]}

    assert "" in params[name]["enum"]
    if "{" not in path:
        assert client.get(f"{path}?{name}=").status_code == 200


def test_docs_render_from_local_static_files(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    sources = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html)
    assert sources
    assert not [s for s in sources if s.startswith(("http:", "https:", "//"))]
    assets = [s for s in sources if "swagger-ui" in s]
    assert assets
    for asset in assets:
        assert finders.find(asset.split("/static/", 1)[1].split("?")[0]), asset


def test_api_root_lists_the_endpoints(client):
    response = client.get("/api/v1/")

    assert response.status_code == 200
    assert set(response.json()) == {"experiments", "traces", "models"}


@pytest.mark.parametrize(
    "cursor",
    ["not-a-cursor", "eyJwIjpbbnVsbCwxXSwiciI6MH0"],  # {"p":[null,1],"r":0}
)
def test_a_cursor_that_no_link_gave_is_a_404_as_drf_answers(client, experiment, cursor):
    make_trace(experiment, 1)

    response = client.get("/api/v1/traces/", {"cursor": cursor})

    assert response.status_code == 404
    assert "Invalid cursor" in response.json()["detail"]


def test_a_tag_change_without_tags_changes_nothing(client, experiment):
    trace = make_trace(experiment, 1)
    before = Trace.objects.get(pk=trace.pk).tags

    response = client.patch(f"/api/v1/traces/{trace.trace_id}/tags/", {}, format="json")

    assert response.status_code == 200
    assert response.json() == {"tags": before}
    assert Trace.objects.get(pk=trace.pk).tags == before
