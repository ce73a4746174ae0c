from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from tracking.models import Experiment, Span, Trace, TraceState

pytestmark = pytest.mark.e2e

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def make(experiment: Experiment, n: int, name: str, state: str, seconds: float) -> Trace:
    trace = Trace.objects.create(
        experiment=experiment,
        trace_id=f"tr-{n:032x}",
        name=name,
        state=state,
        request_time=T0 + timedelta(minutes=n),
        duration_ns=int(seconds * 1e9),
        span_count=1,
        request_preview=f'{{"question": "{name} question"}}',
    )
    Span.objects.create(
        trace=trace, span_id=f"{n:016x}", name=name, span_type="AGENT", start_ns=0,
        end_ns=int(seconds * 1e9), status="ERROR" if state == TraceState.ERROR else "OK",
    )  # fmt: skip
    return trace


@pytest.fixture
def traces(server) -> list[Trace]:
    experiment = Experiment.objects.create(name="support")
    return [
        make(experiment, 1, "quick_answer", TraceState.OK, 0.4),
        make(experiment, 2, "slow_failure", TraceState.ERROR, 3.5),
        make(experiment, 3, "fast_failure", TraceState.ERROR, 0.2),
        make(experiment, 4, "slow_answer", TraceState.OK, 4.0),
    ]


def row_names(page) -> list[str]:
    return page.locator("#trace-list tbody a.trace-link").all_inner_texts()


def test_a_query_typed_in_the_bar_filters_the_list(page, server, traces):
    page.goto(server + "/traces/")
    assert len(row_names(page)) == 4

    bar = page.get_by_label("Filter query")
    bar.fill("state = ERROR and duration > 2s")
    bar.press("Enter")

    page.wait_for_url(re.compile(r"q=state"))
    expect(page.locator("#trace-list a.trace-link")).to_have_count(1)
    assert row_names(page) == ["slow_failure"]
    assert page.get_by_label("Filter query").input_value() == "state = ERROR and duration > 2s"


def test_a_quick_filter_writes_the_query_into_the_bar(page, server, traces):
    page.goto(server + "/traces/?q=" + "duration+%3E+1s")

    page.get_by_role("group", name="State").get_by_role("link", name="Error").click()

    expect(page.locator("#trace-list a.trace-link")).to_have_count(1)
    assert page.get_by_label("Filter query").input_value() == "duration > 1s and state = ERROR"
    assert row_names(page) == ["slow_failure"]
    assert "state+%3D+ERROR" in page.url


def test_an_invalid_query_shows_where_it_went_wrong(page, server, traces):
    page.goto(server + "/traces/")

    bar = page.get_by_label("Filter query")
    bar.fill("state = ERROR and")
    bar.press("Enter")

    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "expected a filter, found the end of the query (at position 17)" in alert.inner_text()
    assert page.get_by_label("Filter query").get_attribute("aria-invalid") == "true"


def test_a_trace_opens_from_the_list(page, server, traces):
    page.goto(server + "/traces/")

    page.get_by_role("link", name="slow_failure").click()

    page.wait_for_url(f"**/traces/{traces[1].trace_id}/")
    assert "slow_failure" in page.locator("h1").inner_text()


def test_new_traces_appear_at_the_top_while_the_page_is_open(page, server, traces):
    page.goto(server + "/traces/")
    assert row_names(page)[0] == "slow_answer"

    make(Experiment.objects.get(name="support"), 9, "brand_new", TraceState.OK, 1.0)

    page.locator("#trace-list a.trace-link", has_text="brand_new").wait_for(timeout=12_000)
    assert row_names(page)[0] == "brand_new"
    assert len(row_names(page)) == 5


def test_new_traces_do_not_move_the_rows_being_read(page, server):
    experiment = Experiment.objects.create(name="busy")
    for n in range(40):
        make(experiment, n, f"trace_{n:02d}", TraceState.OK, 1.0)
    page.set_viewport_size({"width": 1200, "height": 600})
    page.goto(server + "/traces/")
    reading = page.get_by_role("link", name="trace_20")
    reading.scroll_into_view_if_needed()
    y_before = reading.bounding_box()["y"]

    make(experiment, 99, "brand_new", TraceState.OK, 1.0)
    page.locator("#trace-list a.trace-link", has_text="brand_new").wait_for(
        state="attached", timeout=12_000
    )

    assert abs(reading.bounding_box()["y"] - y_before) < 2


def test_a_hidden_tab_does_not_poll_and_catches_up_when_shown(page, server, traces):
    page.goto(server + "/traces/")
    polls: list[str] = []
    page.on("request", lambda request: "after=" in request.url and polls.append(request.url))
    page.evaluate("Object.defineProperty(document, 'hidden', {value: true, configurable: true})")

    make(Experiment.objects.get(name="support"), 9, "brand_new", TraceState.OK, 1.0)
    page.wait_for_timeout(6_000)  # more than one tick of the 5 s poll
    assert polls == []
    assert "brand_new" not in row_names(page)

    page.evaluate("Object.defineProperty(document, 'hidden', {value: false, configurable: true})")
    page.locator("#trace-list a.trace-link", has_text="brand_new").wait_for(timeout=12_000)
    assert polls


def test_a_chat_request_reads_as_text_in_the_list(page, server, traces):
    chat = make(traces[0].experiment, 5, "chat_answer", TraceState.OK, 0.3)
    chat.request_preview = json.dumps(
        [{"role": "user", "content": "Where is my order?", "refusal": None}]
    )
    chat.save()

    page.goto(server + "/traces/")

    row = page.locator("#trace-list tbody tr", has_text="chat_answer")
    assert row.locator("td.preview").first.inner_text() == "Where is my order?"
    assert "refusal" not in page.locator("#trace-list").inner_text()
