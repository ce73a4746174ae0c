"""The home page (tracking/views/home.py): counts and the newest models and traces."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.rows import T0, XSS, XSS_ESCAPED, make_trace
from tracking.models import CANCELLED_TAG, LoggedModel, TraceState


@pytest.mark.django_db
def test_home_points_an_empty_install_at_demo_data_and_the_tracking_uri(client):
    response = client.get("/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Nothing logged yet" in html
    assert "make run" in html
    assert "export MLFLOW_TRACKING_URI=http://testserver" in html


@pytest.mark.django_db
def test_home_shows_recent_models_and_traces(client, experiment):
    LoggedModel.objects.create(experiment=experiment, name="support-agent", created_at=T0)
    newest = LoggedModel.objects.create(
        experiment=experiment, name="support-agent", created_at=T0 + timedelta(hours=1)
    )
    make_trace(
        experiment,
        1,
        name="answer question",
        model_id=newest.model_id,
        state=TraceState.ERROR,
        total_tokens=4321,
        duration_ns=45_000_000,
    )

    response = client.get("/")

    html = response.content.decode()
    (summary,) = response.context["models"]
    assert summary["name"] == "support-agent"
    assert summary["versions"] == 2
    assert summary["newest_model_id"] == newest.model_id
    assert f'href="/models/{newest.model_id}/"' in html
    assert 'href="/traces/tr-00000000000000000000000000000001/"' in html
    assert "answer question" in html
    assert "badge state-error" in html
    assert "45.0 ms" in html
    assert "4,321" in html
    assert response.context["model_count"] == 1
    assert response.context["version_count"] == 2
    assert response.context["trace_count"] == 1


@pytest.mark.django_db
def test_home_shows_the_twenty_most_recent_traces(client, experiment):
    for n in range(25):
        make_trace(experiment, n)

    response = client.get("/")

    assert [t.name for t in response.context["traces"]] == [f"trace {n}" for n in range(24, 4, -1)]


@pytest.mark.django_db
def test_home_escapes_user_content(client, experiment):
    LoggedModel.objects.create(experiment=experiment, name=XSS)
    make_trace(experiment, 1, name=XSS, request_preview=XSS)

    html = client.get("/").content.decode()

    assert XSS_ESCAPED in html
    assert XSS not in html


@pytest.mark.django_db
def test_home_runs_a_fixed_number_of_queries(client, experiment, django_assert_max_num_queries):
    for i in range(5):
        model = LoggedModel.objects.create(experiment=experiment, name=f"agent-{i}")
        for n in range(4):
            make_trace(experiment, i * 10 + n, model_id=model.model_id)

    # 6 + the busiest experiment of the last day (none here: the overview strip is not drawn).
    with django_assert_max_num_queries(7):
        response = client.get("/")

    assert len(response.context["traces"]) == 20


@pytest.mark.django_db
def test_home_shows_a_cancelled_answer_as_cancelled(client, experiment):
    make_trace(experiment, 1, name="stopped answer", tags={CANCELLED_TAG: "true"})

    html = client.get("/").content.decode()

    assert 'class="badge state-cancelled"' in html
    assert "badge state-ok" not in html
