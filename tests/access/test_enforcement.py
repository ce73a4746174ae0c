"""The rules where one request touches more than one experiment, or leaves a grant behind:
what the route matrix (test_matrix.py) cannot see from one target experiment."""

from __future__ import annotations

import json
import uuid

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from access.models import ExperimentGrant, Level, Role, UserRole
from tracking.models import Experiment, LoggedModel, Run, Span, Trace
from webapp.models import ApiToken

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("auth_on")]
V2, V3 = "/api/2.0/mlflow/", "/api/3.0/mlflow/"


@pytest.fixture
def alice() -> User:
    user = User.objects.create_user("alice")
    UserRole.objects.create(user=user, role=Role.EDITOR)
    return user


@pytest.fixture
def token(alice) -> str:
    return ApiToken.issue(alice, name="ci", scope="write")[1]


@pytest.fixture
def mine(alice) -> Experiment:
    experiment = Experiment.objects.create(name="mine")
    ExperimentGrant.objects.create(experiment=experiment, user=alice, level=Level.MANAGE)
    return experiment


@pytest.fixture
def private() -> Experiment:
    """Private to bob."""
    experiment = Experiment.objects.create(name="bobs")
    bob = User.objects.create_user("bob")
    ExperimentGrant.objects.create(experiment=experiment, level=Level.NONE)
    ExperimentGrant.objects.create(experiment=experiment, user=bob, level=Level.MANAGE)
    return experiment


def post(client, path: str, body: dict, token: str, **headers: str):
    return client.post(
        path, json.dumps(body), content_type="application/json",
        headers={"Authorization": f"Bearer {token}", **headers},
    )  # fmt: skip


def bobs_trace(private: Experiment) -> Trace:
    return Trace.objects.create(
        trace_id="tr-" + uuid.uuid4().hex, experiment=private, request_time=timezone.now()
    )


def test_otlp_spans_may_not_join_a_trace_of_an_experiment_the_caller_may_not_edit(
    client, token, mine, private
):
    trace = bobs_trace(private)
    span = {"traceId": trace.trace_id.removeprefix("tr-"), "spanId": "00f067aa0ba902b7",
            "name": "sneaky", "startTimeUnixNano": "1", "endTimeUnixNano": "2"}  # fmt: skip
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    response = post(client, "/v1/traces", body, token, **{"x-mlflow-experiment-id": str(mine.pk)})
    assert response.status_code == 403
    assert response.json()["code"] == 7  # google.rpc.Code PERMISSION_DENIED
    assert not Span.objects.filter(trace=trace).exists()


def test_otlp_into_an_editable_experiment_is_stored(client, token, mine):
    span = {"traceId": uuid.uuid4().hex, "spanId": "00f067aa0ba902b7", "name": "ok",
            "startTimeUnixNano": "1", "endTimeUnixNano": "2"}  # fmt: skip
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    response = post(client, "/v1/traces", body, token, **{"x-mlflow-experiment-id": str(mine.pk)})
    assert response.status_code == 200
    assert Trace.objects.get(trace_id="tr-" + span["traceId"]).experiment_id == mine.pk


def test_start_trace_may_not_refile_a_trace_of_an_experiment_the_caller_may_not_edit(
    client, token, mine, private
):
    trace = bobs_trace(private)
    info = {"trace_id": trace.trace_id, "request_time": "2025-06-01T12:00:00Z", "state": "OK",
            "trace_location": {"type": "MLFLOW_EXPERIMENT",
                               "mlflow_experiment": {"experiment_id": str(mine.pk)}}}  # fmt: skip
    response = post(client, V3 + "traces", {"trace": {"trace_info": info}}, token)
    assert response.status_code == 403
    assert response.json()["error_code"] == "PERMISSION_DENIED"
    trace.refresh_from_db()
    assert trace.experiment_id == private.pk


def test_traces_json_may_not_be_uploaded_into_a_private_experiment(client, token, private):
    trace_id = "tr-" + uuid.uuid4().hex
    path = (
        f"/api/2.0/mlflow-artifacts/artifacts/{private.pk}/traces/{trace_id}/artifacts/traces.json"
    )
    response = client.generic(
        "PUT", path, b'{"spans": []}', "application/json",
        headers={"Authorization": f"Bearer {token}"},
    )  # fmt: skip
    assert response.status_code == 403
    assert not Trace.objects.filter(trace_id=trace_id).exists()


def test_a_run_may_not_adopt_or_log_to_a_model_of_a_private_experiment(
    client, token, mine, private
):
    run = Run.objects.create(experiment=mine, name="r")
    theirs = LoggedModel.objects.create(experiment=private, name="theirs")
    body = {"run_id": run.run_id, "models": [{"model_id": theirs.model_id}]}
    assert post(client, V2 + "runs/outputs", body, token).status_code == 403
    metric = {"run_id": run.run_id, "key": "m", "value": 1, "timestamp": 1,
              "model_id": theirs.model_id}  # fmt: skip
    assert post(client, V2 + "runs/log-metric", metric, token).status_code == 403
    theirs.refresh_from_db()
    assert theirs.source_run_id is None
    assert not theirs.metrics.exists()


def test_experiment_creators_manage_what_they_create(client, token, alice):
    response = post(client, V2 + "experiments/create", {"name": "fresh"}, token)
    assert response.status_code == 200
    pk = int(response.json()["experiment_id"])
    assert ExperimentGrant.objects.get(experiment_id=pk, user=alice).level == Level.MANAGE
    response = client.post(
        "/api/v1/experiments/", {"name": "fresh-too"}, content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )  # fmt: skip
    assert response.status_code == 201
    experiment = Experiment.objects.get(name="fresh-too")
    assert ExperimentGrant.objects.get(experiment=experiment, user=alice).level == Level.MANAGE


def test_a_read_token_of_an_owner_only_reads(client, alice, mine):
    read_token = ApiToken.issue(alice, name="ro", scope="read")[1]
    response = post(client, V2 + "runs/create", {"experiment_id": str(mine.pk)}, read_token)
    assert response.status_code == 403
    assert not Run.objects.exists()
    response = post(client, V2 + "runs/search", {"experiment_ids": [str(mine.pk)]}, read_token)
    assert response.status_code == 200


def test_the_trace_list_costs_no_query_per_row_for_an_editor(
    client, alice, mine, private, django_assert_max_num_queries
):
    for _ in range(30):
        Trace.objects.create(
            trace_id="tr-" + uuid.uuid4().hex, experiment=mine, request_time=timezone.now()
        )
    hidden = bobs_trace(private)
    client.force_login(alice)
    # Session, user, column choice, then the page's own (traces, experiment and model
    # choices): the rules add two, the role and the grants, read once for the request.
    with django_assert_max_num_queries(8):
        response = client.get("/traces/")
    assert response.status_code == 200
    assert response.content.count(b"/traces/tr-") >= 30
    assert hidden.trace_id.encode() not in response.content


def test_a_trace_row_does_not_name_a_model_of_a_hidden_experiment(client, alice, mine, private):
    secret = LoggedModel.objects.create(experiment=private, name="bobs-secret-agent")
    Trace.objects.create(
        trace_id="tr-" + uuid.uuid4().hex, experiment=mine, model_id=secret.model_id,
        request_time=timezone.now(), state="OK",
    )  # fmt: skip
    client.force_login(alice)

    for page in ("/traces/", "/"):
        response = client.get(page)
        assert response.status_code == 200
        assert b"bobs-secret-agent" not in response.content, page

    ExperimentGrant.objects.create(experiment=private, user=alice, level=Level.READ)
    assert b"bobs-secret-agent" in client.get("/traces/").content
