"""Cost shown wherever tokens are: the trace list (a column, sortable), the trace header, an
LLM span's facts, the model list, a version's traces page and the compare page. An unknown
cost is a dash, never $0."""

from __future__ import annotations

import pytest

from tests.rows import make_model, make_span, make_trace, trace_names_on_every_page
from tracking.templatetags.tracking_format import dollars
from tracking.views import trace_list

START_NS = 1_748_779_200_000_000_000
GPT_CALL = {
    "mlflow.chat.tokenUsage": {"input_tokens": 1200, "output_tokens": 300, "total_tokens": 1500},
    "mlflow.llm.model": "gpt-4o-mini",
    "mlflow.llm.cost": {"input_cost": 0.00018, "output_cost": 0.00018, "total_cost": 0.00036},
}


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (None, "—"),
        (0, "$0.00"),
        (0.00036, "$0.00036"),
        (0.0123, "$0.0123"),
        (0.5, "$0.50"),
        (1234.567, "$1,234.57"),
    ],
)
def test_dollars_keep_sensible_precision_and_unknown_is_a_dash(amount, text):
    assert dollars(amount) == text


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("-cost", ["c3", "c2a", "c2b", "c1", "none"]),
        ("cost", ["none", "c1", "c2b", "c2a", "c3"]),
    ],
)
def test_trace_list_sorts_by_cost_across_pages(client, experiment, monkeypatch, sort, expected):
    monkeypatch.setattr(trace_list, "TRACES_PER_PAGE", 2)
    make_trace(experiment, 1, name="c1", cost=0.000123)
    make_trace(experiment, 2, name="c2b", cost=0.1 + 0.2)  # a float with a long repr
    make_trace(experiment, 3, name="c2a", cost=0.1 + 0.2)
    make_trace(experiment, 4, name="c3", cost=12.5)
    make_trace(experiment, 5, name="none", cost=None)

    assert trace_names_on_every_page(client, f"/traces/?sort={sort}") == expected


@pytest.mark.django_db
def test_trace_list_shows_cost_and_a_dash_for_an_unknown_one(client, experiment):
    make_trace(experiment, 1, name="priced", cost=0.00036)
    make_trace(experiment, 2, name="unpriced", cost=None)

    html = client.get("/traces/").content.decode()
    assert "Cost" in html and "$0.00036" in html and "$0.00" not in html.replace("$0.00036", "")
    assert client.get("/traces/?q=cost+>+0.0003").context["traces"][0].name == "priced"
    assert client.get("/traces/?sort=cost&before=abc|1").status_code == 400


@pytest.mark.django_db
def test_trace_header_and_llm_span_show_cost(client, experiment):
    trace = make_trace(experiment, 1, cost=0.00036)
    make_span(trace, "a", START_NS, span_type="CHAT_MODEL", attributes=GPT_CALL)
    make_span(trace, "b", START_NS, span_type="CHAT_MODEL",
              attributes={"mlflow.chat.tokenUsage": {"input_tokens": 5, "output_tokens": 2}},
              inputs={"model": "my-own-llama"})  # fmt: skip
    make_span(trace, "c", START_NS, span_type="TOOL")

    assert "$0.00036" in client.get(f"/traces/{trace.trace_id}/").content.decode()
    span = client.get(f"/traces/{trace.trace_id}/spans/a/").content.decode()
    assert "1,500" in span and "$0.00036" in span and "gpt-4o-mini" in span
    unpriced = client.get(f"/traces/{trace.trace_id}/spans/b/").content.decode()
    assert "my-own-llama" in unpriced and "<dt>Cost</dt><dd>—" in unpriced
    assert "<dt>Cost</dt>" not in client.get(f"/traces/{trace.trace_id}/spans/c/").content.decode()


@pytest.mark.django_db
def test_model_pages_show_cost_per_version(client, experiment):
    priced, unpriced = make_model(experiment, name="agent"), make_model(experiment, name="agent")
    make_trace(experiment, 1, model_id=priced.model_id, cost=0.25)
    make_trace(experiment, 2, model_id=priced.model_id, cost=0.75)
    make_trace(experiment, 3, model_id=priced.model_id, cost=None)
    make_trace(experiment, 4, model_id=unpriced.model_id, cost=None)

    listing = client.get("/models/").content.decode()
    assert "$1.00" in listing  # the priced version's traces together
    version = client.get(f"/models/{priced.model_id}/traces/").content.decode()
    assert "$0.50" in version and "Cost per trace" in version and "$1.00 in all" in version
    compare = client.get(f"/models/compare/?ids={priced.model_id}&ids={unpriced.model_id}")
    html = compare.content.decode()
    assert "Cost per trace" in html and "$0.50" in html
