"""The trace page, its layout JSON, and the span details partial."""

from __future__ import annotations

import gzip
import json
from html.parser import HTMLParser

import pytest

from tests.rows import XSS, XSS_ESCAPED, make_model, make_span, make_trace
from tracking.models import CANCELLED_TAG

IMG_XSS = '<img src=x onerror="alert(1)">'
XSS_PAYLOADS = [XSS, IMG_XSS]


class _Markup(HTMLParser):
    """Collects what a browser would make of the page: elements and their attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def assert_inert(html: str) -> None:
    """No payload became markup: no foreign script or image, handler or javascript: link."""
    parser = _Markup()
    parser.feed(html)
    for tag, attrs in parser.tags:
        assert not (tag == "script" and "src" not in attrs), "an inline <script>"
        assert tag != "img", "an <img>"
        assert not any(name.startswith("on") for name in attrs), f"a handler on <{tag}>"
        for name in ("href", "src", "action"):
            assert not (attrs.get(name) or "").strip().lower().startswith("javascript:")


# --- /traces/<trace_id>/ --------------------------------------------------------------------


@pytest.mark.django_db
def test_trace_page_shows_the_header_and_links_the_model(client, experiment):
    model = make_model(experiment, name="support-agent")
    trace = make_trace(
        experiment,
        1,
        model_id=model.model_id,
        tags={"env": "prod"},
        metadata={"mlflow.modelId": model.model_id},
    )

    response = client.get(f"/traces/{trace.trace_id}/")

    assert response.status_code == 200
    html = response.content.decode()
    assert trace.trace_id in html
    assert 'data-copy-target="trace-id"' in html
    assert "1.23 s" in html
    assert "1,234" in html  # tokens
    assert f'href="/models/{model.model_id}/"' in html
    assert "support-agent" in html
    assert "env" in html and "prod" in html
    assert f'data-layout-url="/traces/{trace.trace_id}/layout/"' in html
    assert "js/waterfall.js" in html and "css/waterfall.css" in html
    assert "<noscript>" in html


@pytest.mark.django_db
def test_trace_page_ships_no_span_contents(client, experiment):
    trace = make_trace(experiment, 1)
    make_span(trace, "a", 1, name="root", inputs={"secret": "in-value"}, outputs="out-value")

    html = client.get(f"/traces/{trace.trace_id}/").content.decode()
    layout = client.get(f"/traces/{trace.trace_id}/layout/").content.decode()

    for body in (html, layout):
        assert "in-value" not in body and "out-value" not in body


@pytest.mark.django_db
def test_trace_page_selects_the_span_named_in_the_url(client, experiment):
    trace = make_trace(experiment, 1)

    html = client.get(f"/traces/{trace.trace_id}/?span=00ab").content.decode()

    assert 'data-selected="00ab"' in html


@pytest.mark.django_db
def test_trace_page_escapes_names_tags_and_metadata(client, experiment):
    trace = make_trace(
        experiment, 1, name=XSS, tags={"note": IMG_XSS}, metadata={XSS: "x"}, request_preview=XSS
    )

    html = client.get(f"/traces/{trace.trace_id}/").content.decode()

    assert XSS_ESCAPED in html
    assert_inert(html)


@pytest.mark.django_db
def test_layout_names_a_cancelled_trace_cancelled_for_the_live_badge(client, experiment):
    trace = make_trace(experiment, 1, span_count=1, tags={CANCELLED_TAG: "true"})
    make_span(trace, "a", 1, name="playground")

    data = json.loads(client.get(f"/traces/{trace.trace_id}/layout/").content)
    known = client.get(f"/traces/{trace.trace_id}/layout/?known=1:CANCELLED")

    assert data["state"] == "CANCELLED"
    assert known.status_code == 204
    html = client.get(f"/traces/{trace.trace_id}/").content.decode()
    assert 'class="badge state-cancelled"' in html


@pytest.mark.django_db
def test_trace_page_404s_for_an_unknown_trace(client):
    assert client.get("/traces/tr-00000000000000000000000000000000/").status_code == 404
    assert client.get("/traces/tr-00000000000000000000000000000000/layout/").status_code == 404


@pytest.mark.django_db
def test_trace_page_runs_a_fixed_number_of_queries(
    client, experiment, django_assert_max_num_queries
):
    model = make_model(experiment)
    trace = make_trace(experiment, 1, model_id=model.model_id)
    for i in range(30):
        make_span(trace, f"s{i:02d}", 1_000 + i, parent="s00" if i else "")

    # The trace, its model, its assessments (one query however many), and its root span's
    # inputs and outputs (a chat trace opens on its conversation).
    with django_assert_max_num_queries(4):
        response = client.get(f"/traces/{trace.trace_id}/")

    assert response.status_code == 200


# --- /traces/<trace_id>/layout/ -------------------------------------------------------------


@pytest.mark.django_db
def test_layout_is_the_tree_in_display_order(client, experiment):
    trace = make_trace(experiment, 1, span_count=3)
    make_span(trace, "b", 2_000, parent="a", name="retrieve docs", span_type="RETRIEVER")
    make_span(trace, "a", 1_000, name="agent", span_type="AGENT", end_ns=1_000 + 2_500_000_000)
    make_span(trace, "c", 3_000, parent="zz", name="orphan", status="ERROR")

    response = client.get(f"/traces/{trace.trace_id}/layout/")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    data = json.loads(response.content)
    assert data["ids"] == ["a", "b", "c"]
    assert data["names"] == ["agent", "retrieve docs", "orphan"]
    assert data["depth"] == [0, 1, 0]
    assert data["parent"] == [-1, 0, -1]
    assert [data["type_names"][t] for t in data["types"]] == ["AGENT", "RETRIEVER", "CHAIN"]
    assert data["status"] == [0, 0, 2]
    assert data["start"] == [0, 1_000, 2_000]
    assert data["total"] == 2_500_000_000
    assert data["orphans"] == [2]
    assert data["critical"] == [0, 1]
    assert data["span_count"] == 3


@pytest.mark.django_db
def test_layout_of_a_trace_without_spans_is_empty(client, experiment):
    trace = make_trace(experiment, 1, span_count=0, state="IN_PROGRESS")

    data = json.loads(client.get(f"/traces/{trace.trace_id}/layout/").content)

    assert data["ids"] == [] and data["critical"] == [] and data["total"] == 0


@pytest.mark.django_db
def test_layout_is_gzipped_for_clients_that_accept_it(client, experiment):
    trace = make_trace(experiment, 1)
    for i in range(100):
        make_span(trace, f"s{i:02d}", 1_000 + i, parent="s00" if i else "")

    response = client.get(f"/traces/{trace.trace_id}/layout/", headers={"Accept-Encoding": "gzip"})

    assert response["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(response.content))["ids"][0] == "s00"


@pytest.mark.django_db
def test_layout_answers_204_while_nothing_is_new(client, experiment):
    trace = make_trace(experiment, 1, span_count=1, state="IN_PROGRESS")
    make_span(trace, "a", 1)
    url = f"/traces/{trace.trace_id}/layout/"

    assert client.get(url, {"known": "1:IN_PROGRESS"}).status_code == 204
    assert client.get(url, {"known": "0:IN_PROGRESS"}).status_code == 200
    trace.state = "OK"
    trace.save(update_fields=["state"])
    assert client.get(url, {"known": "1:IN_PROGRESS"}).status_code == 200


@pytest.mark.django_db
def test_layout_runs_a_fixed_number_of_queries(client, experiment, django_assert_max_num_queries):
    trace = make_trace(experiment, 1)
    for i in range(50):
        make_span(trace, f"s{i:02d}", 1_000 + i, parent="s00" if i else "")

    with django_assert_max_num_queries(2):
        response = client.get(f"/traces/{trace.trace_id}/layout/")

    assert len(json.loads(response.content)["ids"]) == 50


@pytest.mark.django_db
def test_layout_keeps_span_names_as_data(client, experiment):
    trace = make_trace(experiment, 1)
    make_span(trace, "a", 1, name=XSS)

    response = client.get(f"/traces/{trace.trace_id}/layout/")

    # JSON for fetch(), never HTML: the name is text that waterfall.js puts in text nodes.
    assert response["Content-Type"] == "application/json"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert json.loads(response.content)["names"] == [XSS]


# --- /traces/<trace_id>/spans/<span_id>/ ----------------------------------------------------


CHAT_INPUTS = {
    "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Where is **order 42**?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup_order", "arguments": '{"order_id": 42}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "shipped"}'},
    ]
}
CHAT_OUTPUTS = {
    "choices": [{"message": {"role": "assistant", "content": "It has *shipped*."}}],
}


@pytest.mark.django_db
def test_span_details_show_inputs_outputs_attributes_and_chat(client, experiment):
    trace = make_trace(experiment, 1)
    make_span(
        trace,
        "a",
        1,
        name="llm",
        span_type="LLM",
        inputs=CHAT_INPUTS,
        outputs=CHAT_OUTPUTS,
        attributes={"model": "gpt-4o"},
    )

    response = client.get(f"/traces/{trace.trace_id}/spans/a/", headers={"HX-Request": "true"})

    assert response.status_code == 200
    assert "HX-Request" in response["Vary"]  # and Cookie: the feedback forms hold a CSRF token
    html = response.content.decode()
    assert "<html" not in html  # the partial only
    assert 'data-tab="chat" aria-selected="true"' in html
    assert "<strong>order 42</strong>" in html  # markdown rendered
    assert "<em>shipped</em>" in html
    assert "lookup_order" in html and "call_1" in html
    assert "&quot;order_id&quot;: 42" in html  # tool arguments pretty-printed
    assert 'data-tab-panel="inputs"' in html and 'data-tab-panel="outputs"' in html
    assert f'href="/traces/{trace.trace_id}/spans/a/inputs/"' in html  # the raw JSON
    assert "gpt-4o" in html


@pytest.mark.django_db
def test_span_details_say_no_inputs_rather_than_null(client, experiment):
    trace = make_trace(experiment, 1)
    make_span(trace, "a", 1, name="tool", inputs=None, outputs=0, attributes={})

    html = client.get(f"/traces/{trace.trace_id}/spans/a/", headers={"HX-Request": "true"})
    html = html.content.decode()

    assert "No inputs." in html and "No attributes." in html
    assert f'href="/traces/{trace.trace_id}/spans/a/inputs/"' not in html
    assert "null" not in html
    assert "No outputs." not in html  # 0 is a value, shown as one
    assert f'href="/traces/{trace.trace_id}/spans/a/outputs/"' in html


@pytest.mark.django_db
def test_span_details_without_htmx_are_a_whole_page(client, experiment):
    trace = make_trace(experiment, 1)
    make_span(trace, "a", 1, name="llm", inputs={"q": "hi"})

    html = client.get(f"/traces/{trace.trace_id}/spans/a/").content.decode()

    assert "<html" in html
    assert f'href="/traces/{trace.trace_id}/?span=a"' in html
    assert 'role="tablist"' not in html  # every section shown, no script needed


@pytest.mark.django_db
def test_span_details_show_exceptions_with_their_stack_trace(client, experiment):
    trace = make_trace(experiment, 1)
    event = {
        "name": "exception",
        "time_unix_nano": 2_000_001,
        "attributes": {
            "exception.type": "TimeoutError",
            "exception.message": "ranker timed out",
            "exception.stacktrace": 'Traceback (most recent call last):\n  File "a.py"',
        },
    }
    make_span(trace, "a", 1, status="ERROR", status_message="TimeoutError", events=[event])

    html = client.get(f"/traces/{trace.trace_id}/spans/a/").content.decode()

    assert "span-event is-exception" in html
    assert "TimeoutError" in html and "ranker timed out" in html
    assert "Traceback (most recent call last):" in html
    assert "+2.00 ms" in html


@pytest.mark.django_db
def test_span_details_cap_long_strings_and_say_so(client, experiment):
    trace = make_trace(experiment, 1)
    make_span(trace, "a", 1, outputs={"text": "x" * 30_000})

    html = client.get(f"/traces/{trace.trace_id}/spans/a/").content.decode()

    assert "expand (30,000 characters)" in html
    assert "10,000 more characters not shown" in html
    assert f'href="/traces/{trace.trace_id}/spans/a/outputs/"' in html
    assert "x" * 30_000 not in html


@pytest.mark.django_db
def test_span_value_serves_the_whole_field_as_json(client, experiment):
    trace = make_trace(experiment, 1)
    make_span(trace, "a", 1, outputs={"text": "x" * 30_000})

    response = client.get(f"/traces/{trace.trace_id}/spans/a/outputs/")

    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {"text": "x" * 30_000}
    assert client.get(f"/traces/{trace.trace_id}/spans/a/status/").status_code == 404


@pytest.mark.django_db
def test_span_details_render_xss_payloads_inert(client, experiment):
    trace = make_trace(experiment, 1, tags={"t": XSS})
    event = {"name": XSS, "attributes": {"exception.message": IMG_XSS, XSS: IMG_XSS}}
    make_span(
        trace,
        "a",
        1,
        name=XSS,
        span_type=XSS[:30],
        status="ERROR",
        status_message=IMG_XSS,
        inputs={
            "messages": [{"role": "user", "content": XSS + IMG_XSS + "[x](javascript:alert(1))"}]
        },
        outputs={XSS: IMG_XSS, "long": IMG_XSS * 200},
        attributes={IMG_XSS: [XSS]},
        events=[event],
    )

    for headers in ({}, {"HX-Request": "true"}):
        html = client.get(f"/traces/{trace.trace_id}/spans/a/", headers=headers).content.decode()
        assert XSS_ESCAPED in html
        assert_inert(html)
        assert "[x](javascript:alert(1))" in html  # a refused link stays visible as text


@pytest.mark.django_db
def test_span_details_404_for_a_bad_span_id(client, experiment):
    trace = make_trace(experiment, 1)
    make_span(trace, "a", 1)

    assert client.get(f"/traces/{trace.trace_id}/spans/nope/").status_code == 404
    assert client.get(f"/traces/{trace.trace_id}/spans/nope/inputs/").status_code == 404


@pytest.mark.django_db
def test_span_details_404_for_a_span_of_another_trace(client, experiment):
    mine = make_trace(experiment, 1)
    other = make_trace(experiment, 2)
    make_span(other, "b", 1, inputs={"secret": "theirs"})

    response = client.get(f"/traces/{mine.trace_id}/spans/b/")

    assert response.status_code == 404
    assert client.get(f"/traces/{mine.trace_id}/spans/b/inputs/").status_code == 404


@pytest.mark.django_db
def test_span_details_run_two_queries(client, experiment, django_assert_max_num_queries):
    trace = make_trace(experiment, 1)
    make_span(trace, "a", 1, inputs=CHAT_INPUTS, outputs=CHAT_OUTPUTS, events=[{"name": "e"}])

    # The span with its trace, and the span's assessments (the feedback panel).
    with django_assert_max_num_queries(2):
        response = client.get(f"/traces/{trace.trace_id}/spans/a/", headers={"HX-Request": "true"})

    assert response.status_code == 200


@pytest.mark.django_db
def test_span_details_say_which_values_were_truncated_when_stored(client, experiment, settings):
    from tracking import ingest

    settings.SPYGLASS_MAX_SPAN_FIELD_BYTES = 100
    trace = make_trace(experiment, 1)
    marker = ingest.truncation_marker(json.dumps({"doc": "y" * 500}))
    make_span(trace, "a", 1, inputs=marker, attributes={"big": marker, "small": 1})

    html = client.get(f"/traces/{trace.trace_id}/spans/a/").content.decode()

    assert "Truncated when stored" in html
    assert '<span class="mono">inputs</span> (511' in html
    assert '<span class="mono">attributes.big</span>' in html
    assert "attributes.small" not in html


@pytest.mark.django_db
def test_a_chat_trace_opens_in_the_playground(client, experiment):
    chat = make_trace(experiment, 1, request_preview='{"messages": [{"role": "user"}]}')
    plain = make_trace(experiment, 2, request_preview='{"question": "hi"}')

    assert (
        f'href="/playground/?replay={chat.trace_id}"'
        in client.get(f"/traces/{chat.trace_id}/").content.decode()
    )
    assert "Open in playground" not in client.get(f"/traces/{plain.trace_id}/").content.decode()
