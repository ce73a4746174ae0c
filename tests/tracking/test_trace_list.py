from __future__ import annotations

import pytest

from tests.tracking.rows import T0, make_model, make_trace
from tracking.models import Experiment
from tracking.views import trace_list

# --- /traces/ -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_trace_list_shows_newest_first(client, experiment):
    make_trace(experiment, 1, name="older one")
    make_trace(experiment, 2, name="newer one")

    response = client.get("/traces/")

    assert response.status_code == 200
    html = response.content.decode()
    assert html.index("newer one") < html.index("older one")
    assert "1.23 s" in html  # duration_ns formatted
    assert "1,234" in html  # tokens
    assert 'href="/traces/tr-00000000000000000000000000000002/"' in html


@pytest.mark.django_db
def test_trace_list_pages_with_a_keyset_cursor(client, experiment, django_assert_max_num_queries):
    for n in range(55):
        make_trace(experiment, n)

    with django_assert_max_num_queries(3) as captured:
        first = client.get("/traces/")
    sql = " ".join(q["sql"] for q in captured.captured_queries).upper()
    assert "OFFSET" not in sql
    assert "COUNT(" not in sql

    page = first.context["traces"]
    assert [t.name for t in page] == [f"trace {n}" for n in range(54, 4, -1)]
    older = first.context["older_query"]
    assert older and "before=" in older
    assert f'href="?{older}"'.replace("&", "&amp;") in first.content.decode()

    second = client.get(f"/traces/?{older}")

    assert [t.name for t in second.context["traces"]] == [f"trace {n}" for n in range(4, -1, -1)]
    assert second.context["older_query"] is None
    assert "← Newest" in second.content.decode()


@pytest.mark.django_db
def test_trace_list_cursor_breaks_ties_on_the_primary_key(client, experiment, monkeypatch):
    monkeypatch.setattr(trace_list, "TRACES_PER_PAGE", 2)
    traces = [make_trace(experiment, n, request_time=T0) for n in range(5)]

    seen = []
    url = "/traces/"
    while url:
        response = client.get(url)
        seen += [t.pk for t in response.context["traces"]]
        older = response.context["older_query"]
        url = f"/traces/?{older}" if older else None

    assert seen == sorted((t.pk for t in traces), reverse=True)


@pytest.mark.django_db
def test_trace_list_scopes_to_an_experiment(client, experiment):
    other = Experiment.objects.create(name="billing")
    make_trace(experiment, 1, name="support trace")
    make_trace(other, 2, name="billing trace")

    response = client.get(f"/traces/?experiment={other.pk}")

    html = response.content.decode()
    assert "billing trace" in html
    assert "support trace" not in html
    assert "of experiment <strong>billing</strong>" in html


@pytest.mark.django_db
def test_trace_list_scopes_to_a_model_version_and_keeps_the_scope_when_paging(
    client, experiment, monkeypatch
):
    monkeypatch.setattr(trace_list, "TRACES_PER_PAGE", 1)
    model = make_model(experiment)
    make_trace(experiment, 1, name="v1 a", model_id=model.model_id)
    make_trace(experiment, 2, name="unlinked")
    make_trace(experiment, 3, name="v1 b", model_id=model.model_id)

    first = client.get(f"/traces/?model={model.model_id}")
    second = client.get(f"/traces/?{first.context['older_query']}")

    assert [t.name for t in first.context["traces"]] == ["v1 b"]
    assert [t.name for t in second.context["traces"]] == ["v1 a"]
    assert second.context["older_query"] is None


@pytest.mark.django_db
def test_trace_list_rejects_a_malformed_cursor(client):
    assert client.get("/traces/?before=yesterday").status_code == 400
    assert client.get("/traces/?before=2025-01-01T00:00:00|x").status_code == 400
    # A naive time would compare against stored UTC times ambiguously.
    assert client.get("/traces/?before=2025-01-01T00:00:00|3").status_code == 400


@pytest.mark.django_db
def test_trace_list_404s_for_an_unknown_experiment(client):
    assert client.get("/traces/?experiment=999").status_code == 404
    assert client.get("/traces/?experiment=abc").status_code == 404


@pytest.mark.django_db
def test_trace_list_says_when_there_are_no_traces(client):
    response = client.get("/traces/")

    assert response.status_code == 200
    assert "No traces yet" in response.content.decode()


@pytest.mark.django_db
def test_trace_list_queries_do_not_grow_with_rows(
    client, experiment, django_assert_max_num_queries
):
    for i in range(3):
        model = make_model(experiment, name=f"agent-{i}")
        for n in range(4):
            make_trace(experiment, i * 10 + n, model_id=model.model_id)

    with django_assert_max_num_queries(3):
        response = client.get("/traces/")

    assert response.content.decode().count("agent-") >= 12


@pytest.mark.django_db
def test_trace_list_survives_a_model_id_that_is_not_routable(client, experiment):
    # model_id is copied from client-sent metadata; a "/" in it must not break the page.
    make_trace(experiment, 1, model_id="team/agent")

    response = client.get("/traces/")

    assert response.status_code == 200
    assert "team/agent" in response.content.decode()
