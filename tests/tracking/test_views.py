from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tracking.models import Experiment, LoggedModel, Metric, Span, Trace, TraceState
from tracking.views import logged_models, trace_detail, trace_list

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
XSS = "<script>alert(1)</script>"
XSS_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture
def experiment() -> Experiment:
    return Experiment.objects.create(name="support")


def make_trace(experiment: Experiment, n: int = 0, **fields) -> Trace:
    defaults = {
        "trace_id": f"tr-{n:032x}",
        "name": f"trace {n}",
        "state": TraceState.OK,
        "request_time": T0 + timedelta(seconds=n),
        "duration_ns": 1_230_000_000,
        "span_count": 3,
        "total_tokens": 1234,
        "request_preview": '{"question": "hi"}',
    }
    return Trace.objects.create(experiment=experiment, **{**defaults, **fields})


def make_model(experiment: Experiment, name: str = "support-agent", **fields) -> LoggedModel:
    return LoggedModel.objects.create(experiment=experiment, name=name, **fields)


def make_span(trace: Trace, span_id: str, start_ns: int, parent: str = "", **fields) -> Span:
    defaults = {"name": f"span {span_id}", "span_type": "CHAIN", "end_ns": start_ns + 5_000_000}
    return Span.objects.create(
        trace=trace,
        span_id=span_id,
        parent_span_id=parent,
        start_ns=start_ns,
        **{**defaults, **fields},
    )


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

    with django_assert_max_num_queries(2) as captured:
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

    with django_assert_max_num_queries(2):
        response = client.get("/traces/")

    assert response.content.decode().count("agent-") >= 12


@pytest.mark.django_db
def test_trace_list_survives_a_model_id_that_is_not_routable(client, experiment):
    # model_id is copied from client-sent metadata; a "/" in it must not break the page.
    make_trace(experiment, 1, model_id="team/agent")

    response = client.get("/traces/")

    assert response.status_code == 200
    assert "team/agent" in response.content.decode()


# --- /traces/<trace_id>/ --------------------------------------------------------------------


@pytest.mark.django_db
def test_trace_detail_lists_spans_in_start_order_indented_by_depth(client, experiment):
    model = make_model(experiment, name="support-agent")
    trace = make_trace(
        experiment,
        1,
        model_id=model.model_id,
        tags={"env": "prod"},
        metadata={"mlflow.modelId": model.model_id},
    )
    make_span(trace, "b", 2_000, parent="a", name="retrieve docs", span_type="RETRIEVER")
    make_span(trace, "a", 1_000, name="agent", span_type="AGENT", end_ns=1_000 + 2_500_000_000)
    make_span(
        trace,
        "c",
        3_000,
        parent="b",
        name="rank",
        span_type="WEIRD",
        status="ERROR",
        status_message="ranker timed out",
    )

    response = client.get(f"/traces/{trace.trace_id}/")

    assert response.status_code == 200
    html = response.content.decode()
    assert html.index("agent</") < html.index("retrieve docs") < html.index("rank")
    assert [(s.name, s.depth) for s in response.context["spans"]] == [
        ("agent", 0),
        ("retrieve docs", 1),
        ("rank", 2),
    ]
    assert "span-name depth-2" in html
    assert "type-retriever" in html
    assert "type-other" in html  # unknown span types get the neutral badge
    assert "ranker timed out" in html
    assert "2.50 s" in html
    assert f'href="/models/{model.model_id}/"' in html
    assert "support-agent" in html
    assert "env" in html and "prod" in html


@pytest.mark.django_db
def test_trace_detail_says_how_many_spans_it_does_not_list(client, experiment, monkeypatch):
    monkeypatch.setattr(trace_detail, "SPAN_ROWS_MAX", 3)
    trace = make_trace(experiment, 1)
    for i in range(8):
        make_span(trace, f"s{i}", 1_000 + i)

    response = client.get(f"/traces/{trace.trace_id}/")

    html = response.content.decode()
    assert [s.span_id for s in response.context["spans"]] == ["s0", "s1", "s2"]
    assert response.context["hidden_spans"] == 5
    assert "Showing the first 3 spans in start order; 5 more spans" in html


@pytest.mark.django_db
def test_trace_detail_escapes_span_names_and_tags(client, experiment):
    trace = make_trace(experiment, 1, name=XSS, tags={"note": XSS}, metadata={XSS: "x"})
    make_span(trace, "a", 1, name=XSS, status_message=XSS, status="ERROR")

    html = client.get(f"/traces/{trace.trace_id}/").content.decode()

    assert XSS_ESCAPED in html
    assert XSS not in html


@pytest.mark.django_db
def test_trace_detail_404s_for_an_unknown_trace(client):
    assert client.get("/traces/tr-00000000000000000000000000000000/").status_code == 404


@pytest.mark.django_db
def test_trace_detail_runs_a_fixed_number_of_queries(
    client, experiment, django_assert_max_num_queries
):
    model = make_model(experiment)
    trace = make_trace(experiment, 1, model_id=model.model_id)
    for i in range(30):
        make_span(trace, f"s{i:02d}", 1_000 + i, parent="s00" if i else "")

    with django_assert_max_num_queries(3):
        response = client.get(f"/traces/{trace.trace_id}/")

    assert response.status_code == 200


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
