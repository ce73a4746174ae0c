from __future__ import annotations

from datetime import timedelta

import pytest

from tests.tracking.rows import T0, XSS, XSS_ESCAPED, make_model, make_trace
from tracking.models import Metric
from tracking.views import logged_models

# --- /models/ -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_model_list_groups_versions_by_name_newest_first(client, experiment):
    v1 = make_model(experiment, created_at=T0, params={"temperature": "0.2"})
    v2 = make_model(
        experiment,
        created_at=T0 + timedelta(hours=1),
        tags={"mlflow.source.git.commit": "0123456789abcdef"},
        params={"temperature": "0.7", "a": "1", "b": "2", "c": "3", "d": "4"},
        status="LOGGED_MODEL_READY",
    )
    make_model(experiment, name="billing-agent", created_at=T0 - timedelta(days=1))
    make_trace(experiment, 1, model_id=v2.model_id)
    make_trace(experiment, 2, model_id=v2.model_id)

    response = client.get("/models/")

    assert response.status_code == 200
    groups = response.context["groups"]
    assert [g.name for g in groups] == ["support-agent", "billing-agent"]
    assert [v.model_id for v in groups[0].versions] == [v2.model_id, v1.model_id]
    assert [v.trace_count for v in groups[0].versions] == [2, 0]
    html = response.content.decode()
    assert ">0123456<" in html  # short commit
    assert "temperature" in html and "+1" in html  # four key params, then how many more
    assert f'href="/traces/?model={v2.model_id}"' in html
    assert "Ready" in html


@pytest.mark.django_db
def test_model_list_says_how_many_versions_it_does_not_list(client, experiment, monkeypatch):
    monkeypatch.setattr(logged_models, "VERSIONS_PER_NAME", 2)
    for hour in range(5):
        make_model(experiment, created_at=T0 + timedelta(hours=hour))

    response = client.get("/models/")

    (group,) = response.context["groups"]
    assert len(group.versions) == 2
    assert "3 older versions not listed." in response.content.decode()


@pytest.mark.django_db
def test_model_list_escapes_model_names(client, experiment):
    make_model(experiment, name=XSS, params={XSS: XSS})

    html = client.get("/models/").content.decode()

    assert XSS_ESCAPED in html
    assert XSS not in html


@pytest.mark.django_db
def test_model_list_says_when_there_are_no_models(client):
    assert "No logged models yet" in client.get("/models/").content.decode()


@pytest.mark.django_db
def test_model_list_queries_do_not_grow_with_rows(
    client, experiment, django_assert_max_num_queries
):
    for i in range(4):
        for hour in range(3):
            model = make_model(experiment, name=f"agent-{i}", created_at=T0 + timedelta(hours=hour))
            make_trace(experiment, i * 10 + hour, model_id=model.model_id)

    with django_assert_max_num_queries(3):
        response = client.get("/models/")

    assert sum(len(g.versions) for g in response.context["groups"]) == 12


# --- /models/<model_id>/ --------------------------------------------------------------------


@pytest.mark.django_db
def test_model_detail_shows_the_version(client, experiment):
    model = make_model(
        experiment,
        params={"temperature": "0.2"},
        tags={"mlflow.source.git.commit": "abcdef0123456789", "team": "support"},
        model_config={"endpoint": "https://llm.example/v1", "max_tokens": 512},
    )
    other = make_model(experiment, created_at=T0)
    Metric.objects.create(logged_model=model, key="accuracy", value=0.5, timestamp_ms=1, step=0)
    Metric.objects.create(logged_model=model, key="accuracy", value=0.75, timestamp_ms=2, step=1)
    make_trace(experiment, 1, name="linked trace", model_id=model.model_id)
    make_trace(experiment, 2, name="other trace", model_id=other.model_id)

    response = client.get(f"/models/{model.model_id}/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "temperature" in html
    assert "&quot;max_tokens&quot;: 512" in html  # pretty JSON, escaped in the <pre>
    assert "abcdef0" in html
    assert [(m.key, m.value) for m in response.context["metrics"]] == [("accuracy", 0.75)]
    assert "linked trace" in html
    assert "other trace" not in html
    assert response.context["trace_count"] == 1
    assert f'href="/models/{other.model_id}/"' in html  # the other version of this name


@pytest.mark.django_db
def test_model_detail_escapes_user_content(client, experiment):
    model = make_model(experiment, name=XSS, model_config={"instructions": XSS}, tags={"x": XSS})

    html = client.get(f"/models/{model.model_id}/").content.decode()

    assert XSS not in html
    assert XSS_ESCAPED in html


@pytest.mark.django_db
def test_model_detail_404s_for_an_unknown_model(client):
    assert client.get("/models/m-00000000000000000000000000000000/").status_code == 404


@pytest.mark.django_db
def test_model_detail_runs_a_fixed_number_of_queries(
    client, experiment, django_assert_max_num_queries
):
    model = make_model(experiment, params={"a": "1"})
    for n in range(10):
        make_trace(experiment, n, model_id=model.model_id)
        Metric.objects.create(logged_model=model, key=f"m{n}", value=n, timestamp_ms=n)

    with django_assert_max_num_queries(5):
        response = client.get(f"/models/{model.model_id}/")

    assert response.status_code == 200
