"""Registered scorers over the MLflow REST API with Django's test client: versions, the latest
per scorer in lists, deletes of one version or all, online configs, and what each endpoint
answers to a bad request (MLflow error JSON, a 4xx, nothing stored). The wording and statuses
are those a real `mlflow server` 3.17.2 gave to the same requests. The real client's flow is in
tests/interop/test_scorers.py."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from django.db import connection, connections
from django.test import Client

from tests.rows import XSS
from tracking.models import Experiment, LifecycleStage, OnlineConfig, Scorer, ScorerVersion

V3 = "/api/3.0/mlflow/scorers/"
JUDGE = json.dumps(
    {
        "name": "judge",
        "instructions_judge_pydantic_data": {"model": "openai:/gpt-4o-mini", "instructions": "x"},
    }
)


def send(client, path: str, body: Any, method: str = "post"):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.generic(method.upper(), V3 + path, data, "application/json")


def register(client, experiment: Experiment, name: str, serialized: str = JUDGE) -> dict:
    body = {"experiment_id": str(experiment.pk), "name": name, "serialized_scorer": serialized}
    response = send(client, "register", body)
    assert response.status_code == 200, response.content
    return response.json()


def get(client, path: str, **params: Any) -> Any:
    response = client.get(V3 + path, params)
    assert response.status_code == 200, response.content
    return response.json()


def stored() -> tuple:
    """Everything a refused request could have changed."""
    return (
        list(Scorer.objects.order_by("pk").values_list("pk", "name", "experiment_id")),
        list(ScorerVersion.objects.order_by("pk").values_list("pk", "version")),
        list(OnlineConfig.objects.order_by("pk").values_list("config_id", "sample_rate")),
    )


def test_registering_again_adds_a_version_and_answers_what_was_sent(client, experiment):
    first = register(client, experiment, "judge")
    serialized = JUDGE.replace('"x"', '"y"')
    second = register(client, experiment, "judge", serialized)
    assert (first["version"], second["version"]) == (1, 2)
    assert first["scorer_id"] == second["scorer_id"]
    assert second["experiment_id"] == str(experiment.pk)
    assert second["name"] == "judge"
    assert second["serialized_scorer"] == serialized  # verbatim, never re-serialized
    assert second["creation_time"] > 0


def test_a_list_holds_the_latest_version_of_each_scorer(client, experiment):
    other = Experiment.objects.create(name="other")
    register(client, experiment, "b")
    register(client, experiment, "a")
    register(client, experiment, "b", JUDGE.replace('"x"', '"newest"'))
    register(client, other, "c")
    listed = get(client, "list", experiment_id=str(experiment.pk))["scorers"]
    assert [(s["scorer_name"], s["scorer_version"]) for s in listed] == [("a", 1), ("b", 2)]
    assert "newest" in listed[1]["serialized_scorer"]
    assert listed[0]["experiment_id"] == experiment.pk  # an int32 in MLflow's Scorer message
    everywhere = get(client, "list")["scorers"]
    assert [s["scorer_name"] for s in everywhere] == ["a", "b", "c"]
    several = client.get(V3 + "list", {"experiment_ids": [str(other.pk)]}).json()["scorers"]
    assert [s["scorer_name"] for s in several] == ["c"]


def test_a_deleted_experiment_lists_no_scorers_and_takes_none(client, experiment):
    register(client, experiment, "a")
    experiment.lifecycle_stage = LifecycleStage.DELETED
    experiment.save(update_fields=["lifecycle_stage"])
    assert get(client, "list")["scorers"] == []
    response = client.get(V3 + "list", {"experiment_id": str(experiment.pk)})
    assert response.status_code == 400
    body = {"experiment_id": str(experiment.pk), "name": "b", "serialized_scorer": JUDGE}
    assert send(client, "register", body).status_code == 400


def test_versions_come_oldest_first_and_get_picks_one_or_the_latest(client, experiment):
    for instructions in ("one", "two", "three"):
        register(client, experiment, "judge", JUDGE.replace('"x"', f'"{instructions}"'))
    e = str(experiment.pk)
    versions = get(client, "versions", experiment_id=e, name="judge")["scorers"]
    assert [v["scorer_version"] for v in versions] == [1, 2, 3]
    assert (
        "two"
        in get(client, "get", experiment_id=e, name="judge", version=2)["scorer"][
            "serialized_scorer"
        ]
    )
    assert get(client, "get", experiment_id=e, name="judge")["scorer"]["scorer_version"] == 3


def test_deleting_one_version_keeps_the_others_and_numbering_restarts_when_none_is_left(
    client, experiment
):
    register(client, experiment, "judge")
    register(client, experiment, "judge")
    e = str(experiment.pk)
    for version in (1, 2):
        body = {"experiment_id": e, "name": "judge", "version": version}
        assert send(client, "delete", body, "delete").status_code == 200
        if version == 1:
            latest = get(client, "get", experiment_id=e, name="judge")["scorer"]
            assert latest["scorer_version"] == 2
    assert get(client, "list", experiment_id=e)["scorers"] == []
    assert register(client, experiment, "judge")["version"] == 1  # as MLflow's max + 1


def test_deleting_without_a_version_removes_the_scorer_and_its_config(client, experiment):
    register(client, experiment, "judge")
    register(client, experiment, "judge")
    e = str(experiment.pk)
    send(client, "online-config", {"experiment_id": e, "name": "judge", "sample_rate": 0.5}, "put")
    assert send(client, "delete", {"experiment_id": e, "name": "judge"}, "delete").json() == {}
    assert not Scorer.objects.exists()
    assert not ScorerVersion.objects.exists()
    assert not OnlineConfig.objects.exists()
    again = send(client, "delete", {"experiment_id": e, "name": "judge"}, "delete")
    assert (again.status_code, again.json()["message"]) == (
        404,
        f"Scorer with name 'judge' not found for experiment {e}.",
    )


def test_an_online_config_is_replaced_on_every_upsert(client, experiment):
    scorer_id = register(client, experiment, "judge")["scorer_id"]
    e = str(experiment.pk)
    body = {"experiment_id": e, "name": "judge", "sample_rate": 0.5}
    first = send(client, "online-config", body, "put").json()["config"]
    assert first == {
        "online_scoring_config_id": first["online_scoring_config_id"],
        "scorer_id": scorer_id,
        "sample_rate": 0.5,
        "experiment_id": e,
    }
    body.update(sample_rate="0.25", filter_string="trace.status = 'OK'")
    second = send(client, "online-config", body, "put").json()["config"]
    assert second["online_scoring_config_id"] != first["online_scoring_config_id"]
    assert (second["sample_rate"], second["filter_string"]) == (0.25, "trace.status = 'OK'")
    configs = client.get(V3 + "online-configs", {"scorer_ids": [scorer_id, "unknown"]}).json()
    assert configs == {"configs": [second]}
    assert OnlineConfig.objects.count() == 1


def test_xss_in_a_scorer_name_is_stored_and_answered_as_json_text(client, experiment):
    made = register(client, experiment, XSS)
    assert made["name"] == XSS
    response = client.get(V3 + "get", {"experiment_id": str(experiment.pk), "name": XSS})
    assert response["Content-Type"] == "application/json"
    assert response.json()["scorer"]["scorer_name"] == XSS


def _bad_requests(e: str) -> list[tuple[str, str, Any, int, str]]:
    """(method, path, body or query, status, message start) for requests MLflow refuses."""
    judge = {"experiment_id": e, "name": "judge"}
    bad_model = json.dumps({"builtin_scorer_pydantic_data": {"model": 3}})
    return [
        ("post", "register", {**judge, "name": " ", "serialized_scorer": JUDGE}, 400, "Scorer"),
        ("post", "register", {**judge, "serialized_scorer": "nope"}, 400, "serialized_scorer must"),
        ("post", "register", {**judge, "serialized_scorer": "[1]"}, 400, "serialized_scorer must"),
        ("post", "register", {**judge, "serialized_scorer": 7}, 400, "Parameter"),
        ("post", "register", judge, 400, "Missing value for required parameter"),
        ("post", "register", {**judge, "name": "n" * 257, "serialized_scorer": JUDGE}, 400, ""),
        (
            "post",
            "register",
            {**judge, "serialized_scorer": bad_model},
            400,
            "Scorer model must be a string",
        ),
        (
            "post",
            "register",
            {**judge, "serialized_scorer": json.dumps({"p": "x" * 1024 * 1024})},
            400,
            "serialized_scorer is larger",
        ),
        ("post", "register", {**judge, "name": "a\x00b", "serialized_scorer": JUDGE}, 400, ""),
        ("post", "register", {**judge, "experiment_id": "x", "serialized_scorer": JUDGE}, 400, ""),
        (
            "post",
            "register",
            {**judge, "experiment_id": "999999", "serialized_scorer": JUDGE},
            404,
            "No Experiment",
        ),
        ("post", "register", "{not json", 400, ""),
        ("get", "list", {"experiment_id": e, "experiment_ids": e}, 400, "Cannot specify both"),
        ("get", "list", {"experiment_id": "x"}, 400, ""),
        ("get", "versions", {"experiment_id": e, "name": "nobody"}, 404, "Scorer with name"),
        ("get", "versions", {"experiment_id": e}, 400, "Missing value"),
        ("get", "get", {**judge, "version": "x"}, 400, "Parameter 'version'"),
        ("get", "get", {**judge, "version": "0"}, 400, "Parameter 'version'"),
        ("get", "get", {**judge, "version": str(2**31)}, 400, "Parameter 'version'"),
        ("get", "get", {**judge, "version": "7"}, 404, "Scorer with name 'judge' and version 7"),
        ("delete", "delete", {**judge, "version": 5}, 404, "Scorer with name 'judge' and version"),
        ("delete", "delete", {**judge, "version": "x"}, 400, ""),
        ("delete", "delete", {**judge, "name": "nobody"}, 404, "Scorer with name 'nobody'"),
        ("put", "online-config", {**judge, "sample_rate": 2}, 400, "sample_rate must be between"),
        ("put", "online-config", {**judge, "sample_rate": "NaN"}, 400, "sample_rate must be"),
        ("put", "online-config", {**judge, "sample_rate": True}, 400, "sample_rate must be"),
        ("put", "online-config", {**judge, "sample_rate": "half"}, 400, "sample_rate must be"),
        ("put", "online-config", judge, 400, "Missing value for required parameter"),
        ("put", "online-config", {**judge, "sample_rate": 0.5, "filter_string": 3}, 400, ""),
        (
            "put",
            "online-config",
            {**judge, "sample_rate": 0.5, "filter_string": "bogus((("},
            400,
            "",
        ),
        ("put", "online-config", {**judge, "name": "nobody", "sample_rate": 0}, 404, "Scorer"),
        ("get", "online-configs", {}, 400, "Missing value for required parameter 'scorer_ids'"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_requests("1"))))
def test_a_bad_request_gets_mlflow_error_json_and_changes_nothing(client, experiment, case):
    register(client, experiment, "judge")
    e = str(experiment.pk)
    send(client, "online-config", {"experiment_id": e, "name": "judge", "sample_rate": 0.1}, "put")
    method, path, body, status, message = _bad_requests(e)[case]
    before = stored()
    get_it = method == "get"
    response = client.get(V3 + path, body) if get_it else send(client, path, body, method)
    assert response.status_code == status, response.content
    error = response.json()
    assert error["error_code"] == (
        "RESOURCE_DOES_NOT_EXIST" if status == 404 else "INVALID_PARAMETER_VALUE"
    )
    assert error["message"].startswith(message), error["message"]
    assert stored() == before


@pytest.mark.django_db(transaction=True)
def test_concurrent_registrations_of_a_new_name_make_one_scorer_with_consecutive_versions():
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip(
            "threads cannot write to one in-memory SQLite test database at once "
            "(SPYGLASS_SQLITE_TEST_FILE=1 puts it in a file, as CI does)"
        )
    experiment = Experiment.objects.create(name="race")
    writers = 6
    barrier = threading.Barrier(writers)
    answers: list[tuple[int, Any]] = []

    def write() -> None:
        try:
            barrier.wait()
            body = {"experiment_id": str(experiment.pk), "name": "j", "serialized_scorer": JUDGE}
            response = send(Client(), "register", body)
            answers.append((response.status_code, response.json().get("version")))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(answers) == [(200, v) for v in range(1, writers + 1)]
    assert Scorer.objects.count() == 1


def test_the_wrong_method_is_refused(client, experiment):
    assert client.post(V3 + "list").status_code == 405
    assert send(client, "delete", {}, "post").status_code == 405
