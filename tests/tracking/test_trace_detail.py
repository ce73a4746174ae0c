from __future__ import annotations

import pytest

from tests.tracking.rows import XSS, XSS_ESCAPED, make_model, make_span, make_trace
from tracking.views import trace_detail

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
