"""Evaluation datasets over the MLflow REST API with Django's test client: MLflow's merge rule,
digests, tags, experiment links, paged record reads, searches, and what each endpoint answers
to a bad request (MLflow error JSON, a 4xx, nothing stored)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.users import PASSWORD
from tracking.models import (
    DatasetExperiment,
    DatasetRecord,
    EvaluationDataset,
    Experiment,
    Run,
)

V3 = "/api/3.0/mlflow/datasets/"
UNKNOWN = "d-" + "f" * 32


def send(client, path: str, body: Any, method: str = "post", **headers: str):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.generic(method.upper(), path, data, "application/json", headers=headers)


def error_of(response) -> tuple[int, str]:
    return response.status_code, response.json()["error_code"]


def create(client, experiment: Experiment, name: str = "qa", **fields: Any) -> dict[str, Any]:
    body = {"name": name, "experiment_ids": [str(experiment.pk)], **fields}
    response = send(client, V3 + "create", body)
    assert response.status_code == 200, response.content
    return response.json()["dataset"]


def merge(client, dataset_id: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    response = send(client, f"{V3}{dataset_id}/records", {"records": json.dumps(records)})
    assert response.status_code == 200, response.content
    return response.json()


def read(client, dataset_id: str, **params: Any) -> tuple[list[dict[str, Any]], str | None]:
    response = client.get(f"{V3}{dataset_id}/records", params)
    assert response.status_code == 200, response.content
    data = response.json()
    return json.loads(data["records"]), data.get("next_page_token")


def stored() -> tuple:
    """Everything a refused request could have changed."""
    return (
        list(EvaluationDataset.objects.order_by("pk").values_list("pk", "tags", "digest")),
        list(
            DatasetRecord.objects.order_by("pk").values_list(
                "pk", "inputs", "outputs", "expectations", "tags"
            )
        ),
        list(DatasetExperiment.objects.order_by("pk").values_list("dataset_id", "experiment_id")),
    )


@pytest.fixture
def dataset(client, experiment: Experiment) -> dict[str, Any]:
    made = create(client, experiment, tags=json.dumps({"team": "ml", "mlflow.user": "alice"}))
    merge(client, made["dataset_id"], [{"inputs": {"q": "a"}, "outputs": "A"}])
    return made


def test_it_creates_and_gets_a_dataset(client, experiment):
    made = create(client, experiment, tags=json.dumps({"team": "ml", "mlflow.user": "alice"}))
    assert made["dataset_id"].startswith("d-")
    assert json.loads(made["tags"]) == {"team": "ml", "mlflow.user": "alice"}
    assert made["created_by"] == "alice"
    assert made["experiment_ids"] == [str(experiment.pk)]
    assert len(made["digest"]) == 8
    got = client.get(f"{V3}{made['dataset_id']}").json()["dataset"]
    assert got == made


def test_it_merges_records_by_their_inputs(client, dataset):
    dataset_id = dataset["dataset_id"]
    counts = merge(
        client,
        dataset_id,
        [
            {
                "inputs": {"q": "a"},
                "expectations": {"x": 1},
                "tags": {"k": "v"},
                "source": {"source_type": "human", "source_data": {"source_id": "s"}},
            },
            {
                "inputs": {"q": "b"},
                "source": {"source_type": "TRACE", "source_data": {"trace_id": "tr-1"}},
            },
            {"inputs": {"q": "b"}, "expectations": {"y": 2}},
        ],
    )
    assert counts == {"inserted_count": 1, "updated_count": 2}
    merge(client, dataset_id, [{"inputs": {"q": "a"}, "expectations": {"z": 3}, "outputs": None}])
    records, token = read(client, dataset_id)
    assert token is None
    a, b = sorted(records, key=lambda r: r["inputs"]["q"])
    # Outputs replaced, expectations and tags merged key by key; the first source stays.
    assert "outputs" not in a and a["expectations"] == {"x": 1, "z": 3} and a["tags"] == {"k": "v"}
    assert "source" not in a
    assert b["source"] == {"source_type": "TRACE", "source_data": {"trace_id": "tr-1"}}
    assert (b["source_type"], b["source_id"], b["expectations"]) == ("TRACE", "tr-1", {"y": 2})
    assert b["outputs"] == {}  # as MLflow stores a new record's missing outputs
    got = client.get(f"{V3}{dataset_id}").json()["dataset"]
    assert got["digest"] != dataset["digest"]
    assert json.loads(got["profile"]) == {"num_records": 2}
    assert json.loads(got["schema"]) == {
        "inputs": {"q": "string"},
        "outputs": "string",
        "expectations": {"x": "integer", "y": "integer", "z": "integer"},
        "version": "1.0",
    }


def test_it_pages_records_with_mlflow_tokens(client, dataset):
    dataset_id = dataset["dataset_id"]
    merge(client, dataset_id, [{"inputs": {"q": str(i)}} for i in range(6)])
    seen, token, pages = [], None, 0
    while True:
        params = {"max_results": 3, **({"page_token": token} if token else {})}
        records, token = read(client, dataset_id, **params)
        seen += [r["dataset_record_id"] for r in records]
        pages += 1
        if token is None:
            break
        millis, record_id = base64.b64decode(token).decode().split(":")
        assert (int(millis), record_id) == (records[-1]["created_time"], seen[-1])
    assert pages == 3
    assert sorted(seen) == sorted(DatasetRecord.objects.values_list("record_id", flat=True))
    assert len(set(seen)) == 7


def test_a_page_ends_at_the_byte_cap(client, dataset, settings):
    merge(client, dataset["dataset_id"], [{"inputs": {"q": "x" * 600 + str(i)}} for i in range(4)])
    settings.SPYGLASS_MAX_PAGE_BYTES = 1000
    records, token = read(client, dataset["dataset_id"])
    assert 1 <= len(records) < 5 and token


def test_it_sets_and_deletes_tags(client, dataset):
    dataset_id = dataset["dataset_id"]
    response = send(
        client, f"{V3}{dataset_id}/tags", {"tags": '{"stage": "gold", "n": 2}'}, "patch"
    )
    assert response.status_code == 200
    assert send(client, f"{V3}{dataset_id}/tags/team", "", "delete").status_code == 200
    assert send(client, f"{V3}{dataset_id}/tags/missing", "", "delete").status_code == 200
    tags = EvaluationDataset.objects.get().tags
    assert tags == {"stage": "gold", "n": "2", "mlflow.user": "alice"}


def test_it_links_and_unlinks_experiments(client, dataset, experiment):
    other = Experiment.objects.create(name="other")
    dataset_id = dataset["dataset_id"]
    response = send(
        client, f"{V3}{dataset_id}/add-experiments", {"experiment_ids": [str(other.pk)]}
    )
    assert sorted(response.json()["dataset"]["experiment_ids"]) == sorted(
        [str(experiment.pk), str(other.pk)]
    )
    ids = client.get(f"{V3}{dataset_id}/experiment-ids").json()["experiment_ids"]
    assert sorted(ids) == sorted([str(experiment.pk), str(other.pk)])
    body = {"experiment_ids": [str(other.pk), "999"]}  # an unlinked one is no error
    response = send(client, f"{V3}{dataset_id}/remove-experiments", body)
    assert response.json()["dataset"]["experiment_ids"] == [str(experiment.pk)]


def test_it_searches_datasets(client, experiment):
    other = Experiment.objects.create(name="other")
    for name in ("alpha", "beta", "gamma"):
        create(client, experiment, name)
    create(client, other, "alpha-other")
    response = send(
        client, V3 + "search", {"filter_string": "name LIKE 'a%'", "order_by": ["name"]}
    )
    assert [d["name"] for d in response.json()["datasets"]] == ["alpha", "alpha-other"]
    body = {"experiment_ids": [str(experiment.pk)], "max_results": 2, "order_by": ["name DESC"]}
    first = send(client, V3 + "search", body).json()
    second = send(client, V3 + "search", {**body, "page_token": first["next_page_token"]}).json()
    names = [d["name"] for d in first["datasets"] + second["datasets"]]
    assert names == ["gamma", "beta", "alpha"] and "next_page_token" not in second
    response = client.get(V3 + "search", {"filter_string": "tags.team = 'x'"})
    assert response.json() == {"datasets": []}


def test_a_search_reads_its_datasets_experiments_in_one_query(
    client, experiment, django_assert_num_queries
):
    for name in ("alpha", "beta", "gamma", "delta"):
        create(client, experiment, name)
    with CaptureQueriesContext(connection) as one:
        send(client, V3 + "search", {"max_results": 1})

    with django_assert_num_queries(len(one)):  # as many queries for four datasets as for one
        response = send(client, V3 + "search", {"max_results": 4})

    assert [d["experiment_ids"] for d in response.json()["datasets"]] == [[str(experiment.pk)]] * 4


def test_it_deletes_a_dataset_and_its_records(client, dataset):
    dataset_id = dataset["dataset_id"]
    record_id = DatasetRecord.objects.get().record_id
    response = send(
        client, f"{V3}{dataset_id}/records", {"dataset_record_ids": [record_id]}, "delete"
    )
    assert response.json() == {"deleted_count": 1}
    assert send(client, f"{V3}{dataset_id}", "", "delete").status_code == 200
    assert not EvaluationDataset.objects.exists() and not DatasetExperiment.objects.exists()
    # As MLflow: deleting what is not there is no error; reading it is.
    assert send(client, f"{V3}{dataset_id}", "", "delete").status_code == 200
    assert error_of(client.get(f"{V3}{dataset_id}")) == (404, "RESOURCE_DOES_NOT_EXIST")


def test_search_datasets_lists_the_datasets_runs_logged(client, experiment):
    logged = {
        "dataset": {"name": "eval", "digest": "abc", "source_type": "code", "source": "{}"},
        "tags": [{"key": "mlflow.data.context", "value": "evaluation"}],
    }
    for _ in range(2):
        Run.objects.create(experiment=experiment, inputs={"dataset_inputs": [logged]})
    path = "/api/2.0/mlflow/experiments/search-datasets"
    response = send(client, path, {"experiment_ids": [str(experiment.pk)]})
    assert response.json() == {
        "dataset_summaries": [
            {
                "experiment_id": str(experiment.pk),
                "name": "eval",
                "digest": "abc",
                "context": "evaluation",
            }
        ]
    }
    assert error_of(send(client, path, {})) == (400, "INVALID_PARAMETER_VALUE")
    too_many = {"experiment_ids": [str(i) for i in range(21)]}
    assert error_of(send(client, path, too_many)) == (400, "INVALID_PARAMETER_VALUE")


TEN_MB = "x" * (10 * 1024 * 1024)
BAD_RECORDS = [
    ("missing", None, 400),
    ("not json", "[{", 400),
    ("not a list", '{"inputs": {}}', 400),
    ("a record not an object", "[1]", 400),
    ("unknown field", '[{"inputs": {"q": 1}, "answer": 2}]', 400),
    ("inputs not an object", '[{"inputs": "q"}]', 400),
    ("expectations not an object", '[{"inputs": {}, "expectations": [1]}]', 400),
    ("tags nested", '[{"inputs": {}, "tags": {"k": {"x": 1}}}]', 400),
    ("bad source type", '[{"inputs": {}, "source": {"source_type": "ROBOT"}}]', 400),
    ("source extra key", '[{"inputs": {}, "source": {"source_type": "CODE", "x": 1}}]', 400),
    ("NUL", '[{"inputs": {"q": "a\\u0000b"}}]', 400),
    ("10 MB record", json.dumps([{"inputs": {"q": TEN_MB}}]), 400),
    ("wrong type", 5, 400),
    (
        "long source id",
        json.dumps(
            [
                {
                    "inputs": {},
                    "source": {"source_type": "DOCUMENT", "source_data": {"source_id": "d" * 300}},
                }
            ]
        ),
        400,
    ),
]


@pytest.mark.parametrize(
    ("case", "records", "status"), BAD_RECORDS, ids=[c[0] for c in BAD_RECORDS]
)
def test_bad_records_change_nothing(client, dataset, case, records, status):
    before = stored()
    body = {} if records is None else {"records": records}
    response = send(client, f"{V3}{dataset['dataset_id']}/records", body)
    assert error_of(response) == (status, "INVALID_PARAMETER_VALUE"), response.content[:300]
    assert stored() == before


def test_a_later_bad_record_changes_nothing(client, dataset):
    before = stored()
    records = [{"inputs": {"q": "new"}}, {"inputs": {"q": "a"}, "outputs": "B"}, {"inputs": 1}]
    response = send(
        client, f"{V3}{dataset['dataset_id']}/records", {"records": json.dumps(records)}
    )
    assert error_of(response) == (400, "INVALID_PARAMETER_VALUE")
    assert stored() == before


def test_a_long_user_name_is_cut_for_its_column(client, experiment):
    user = "u" * 1000
    made = create(client, experiment, tags=json.dumps({"mlflow.user": user}))
    merge(client, made["dataset_id"], [{"inputs": {"q": 1}, "tags": {"mlflow.user": user}}])
    merge(client, made["dataset_id"], [{"inputs": {"q": 1}, "tags": {"mlflow.user": user + "x"}}])
    row = EvaluationDataset.objects.get()
    assert row.created_by == row.last_updated_by == user[:255] and row.tags["mlflow.user"] == user
    assert DatasetRecord.objects.get().last_updated_by == user[:255]


def test_a_body_past_the_upload_limit_is_413(client, dataset, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    body = {"records": json.dumps([{"inputs": {"q": TEN_MB}}])}
    response = send(client, f"{V3}{dataset['dataset_id']}/records", body)
    assert error_of(response) == (413, "RESOURCE_LIMIT_EXCEEDED")


BAD_REQUESTS = [
    ("create: no name", "post", "create", {"experiment_ids": []}, 400),
    ("create: name a number", "post", "create", {"name": 5}, 400),
    ("create: blank name", "post", "create", {"name": "  "}, 400),
    ("create: tags not json", "post", "create", {"name": "n", "tags": "{"}, 400),
    ("create: tags a list", "post", "create", {"name": "n", "tags": "[1]"}, 400),
    ("create: tags an object", "post", "create", {"name": "n", "tags": {"a": "b"}}, 400),
    ("create: bad experiment id", "post", "create", {"name": "n", "experiment_ids": ["x"]}, 400),
    ("create: unknown experiment", "post", "create", {"name": "n", "experiment_ids": ["99"]}, 404),
    ("create: ids not a list", "post", "create", {"name": "n", "experiment_ids": "1"}, 400),
    ("get: unknown", "get", UNKNOWN, None, 404),
    ("get: malformed", "get", "d-1", None, 400),
    ("delete: malformed", "delete", "nope", None, 400),
    ("tags: missing", "patch", "{id}/tags", {}, 400),
    ("tags: not json", "patch", "{id}/tags", {"tags": "{"}, 400),
    ("tags: unknown dataset", "patch", f"{UNKNOWN}/tags", {"tags": "{}"}, 404),
    ("records: unknown dataset", "post", f"{UNKNOWN}/records", {"records": "[]"}, 404),
    ("records: bad token", "get", "{id}/records?page_token=zz", None, 400),
    ("records: forged token", "get", "{id}/records?page_token=MTox", None, 400),
    ("records: max_results text", "get", "{id}/records?max_results=x", None, 400),
    ("records: bad record id", "delete", "{id}/records", {"dataset_record_ids": ["x"]}, 400),
    ("records: ids not a list", "delete", "{id}/records", {"dataset_record_ids": 1}, 400),
    ("experiment-ids: unknown", "get", f"{UNKNOWN}/experiment-ids", None, 404),
    ("add: unknown experiment", "post", "{id}/add-experiments", {"experiment_ids": ["99"]}, 404),
    ("add: unknown dataset", "post", f"{UNKNOWN}/add-experiments", {"experiment_ids": []}, 404),
    ("remove: bad id", "post", "{id}/remove-experiments", {"experiment_ids": [1]}, 400),
    ("search: bad filter", "post", "search", {"filter_string": "name ="}, 400),
    ("search: unknown field", "post", "search", {"filter_string": "size = 1"}, 400),
    ("search: bad order", "post", "search", {"order_by": ["size"]}, 400),
    ("search: bad token", "post", "search", {"page_token": "zz"}, 400),
    ("search: max_results text", "post", "search", {"max_results": "many"}, 400),
]


@pytest.mark.parametrize(
    ("case", "method", "path", "body", "status"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_requests_answer_mlflow_errors(client, dataset, case, method, path, body, status):
    before = stored()
    url = V3 + path.replace("{id}", dataset["dataset_id"])
    if method == "get":
        response = client.get(url)
    else:
        response = send(client, url, body if body is not None else "", method)
    code = "RESOURCE_DOES_NOT_EXIST" if status == 404 else "INVALID_PARAMETER_VALUE"
    assert error_of(response) == (status, code), response.content[:300]
    assert stored() == before


def _basic(user) -> str:
    return "Basic " + base64.b64encode(f"{user.username}:{PASSWORD}".encode()).decode()


def test_linking_needs_edit_on_the_added_experiment(client, dataset, auth_on, bob, alice):
    from access.models import ExperimentGrant, Level

    private = Experiment.objects.create(name="private")
    ExperimentGrant.objects.create(experiment=private, level=Level.NONE)
    before = stored()
    path = f"{V3}{dataset['dataset_id']}/add-experiments"
    body = {"experiment_ids": [str(private.pk)]}
    response = send(client, path, body, Authorization=_basic(bob))
    assert error_of(response) == (403, "PERMISSION_DENIED")
    assert stored() == before
    assert send(client, path, body, Authorization=_basic(alice)).status_code == 200
    # Linked to an experiment bob may not read, the dataset is now hidden from him.
    response = send(client, V3 + "search", {}, Authorization=_basic(bob))
    assert response.json() == {"datasets": []}
    response = client.get(f"{V3}{dataset['dataset_id']}", headers={"Authorization": _basic(bob)})
    assert error_of(response) == (403, "PERMISSION_DENIED")
