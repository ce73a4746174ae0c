"""The real mlflow client against Spyglass with SPYGLASS_AUTH on: Basic (username/password)
and Bearer (MLFLOW_TRACKING_TOKEN) credentials work for tracking and tracing; wrong ones are
refused with MLflow's error."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from tracking.models import Run, Trace
from webapp.models import ApiToken

LOG_SCRIPT = """
    mlflow.set_experiment("secured")
    with mlflow.start_run():
        mlflow.log_param("alpha", "0.5")

    @mlflow.trace
    def answer(question):
        return question + "!"

    answer("hello")
    mlflow.flush_trace_async_logging()
    traces = mlflow.search_traces(return_type="list")
    result([t.data.spans[0].outputs for t in traces])
"""

REFUSED_SCRIPT = """
    try:
        mlflow.search_experiments()
    except Exception as exc:
        result(str(exc))
    else:
        result("accepted")
"""


@pytest.fixture
def alice(mlflow_server, settings):
    settings.SPYGLASS_AUTH = True
    return User.objects.create_user("alice", password="wonder-land-42")


def test_username_and_password_work_for_runs_and_traces(run_mlflow, alice):
    [outputs] = run_mlflow(
        LOG_SCRIPT, MLFLOW_TRACKING_USERNAME="alice", MLFLOW_TRACKING_PASSWORD="wonder-land-42"
    )

    assert outputs == ["hello!"]
    assert Run.objects.get().params == {"alpha": "0.5"}
    assert Trace.objects.get().span_count == 1


def test_a_token_works_for_runs_and_traces(run_mlflow, alice):
    _, token = ApiToken.issue(alice, "ci")

    [outputs] = run_mlflow(LOG_SCRIPT, MLFLOW_TRACKING_TOKEN=token)

    assert outputs == ["hello!"]
    assert Trace.objects.count() == 1


@pytest.mark.parametrize(
    "credentials",
    [
        {},
        {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "guess"},
        {"MLFLOW_TRACKING_TOKEN": "sg_not-a-real-token"},
    ],
    ids=["none", "wrong-password", "wrong-token"],
)
def test_wrong_credentials_are_refused(run_mlflow, alice, credentials):
    [message] = run_mlflow(REFUSED_SCRIPT, **credentials)

    # The client raises MlflowException built from the error JSON of a 401.
    assert message.startswith("UNAUTHENTICATED: ")
