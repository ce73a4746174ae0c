"""The waterfall in a real Chromium: tree, find, details, keyboard, and a large trace."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

from tracking.models import Experiment, LoggedModel, Span, Trace, TraceState

pytestmark = pytest.mark.e2e

MS = 1_000_000
CHAT_INPUTS = {
    "messages": [
        {"role": "system", "content": "You help with orders."},
        {"role": "user", "content": "Where is **order 42**?"},
    ]
}
CHAT_OUTPUTS = {"choices": [{"message": {"role": "assistant", "content": "It has *shipped*."}}]}


def make_trace(experiment, trace_id, spans, **fields):
    trace = Trace.objects.create(
        experiment=experiment,
        trace_id=trace_id,
        name=fields.pop("name", "answer_question"),
        state=fields.pop("state", TraceState.OK),
        request_time=datetime(2025, 6, 1, 12, 0, tzinfo=UTC),
        duration_ns=1_500 * MS,
        span_count=len(spans),
        **fields,
    )
    Span.objects.bulk_create(Span(trace=trace, **span) for span in spans)
    return trace


@pytest.fixture
def agent_trace(server):
    experiment = Experiment.objects.create(name="support")
    model = LoggedModel.objects.create(experiment=experiment, name="support-agent")
    spans = [
        {"span_id": "a" * 16, "name": "answer_question", "span_type": "AGENT",
         "start_ns": 0, "end_ns": 1_500 * MS, "status": "OK", "inputs": CHAT_INPUTS},
        {"span_id": "b" * 16, "parent_span_id": "a" * 16, "name": "search_orders",
         "span_type": "TOOL", "start_ns": 10 * MS, "end_ns": 300 * MS, "status": "OK",
         "inputs": {"order_id": 42}, "outputs": {"status": "shipped"}},
        {"span_id": "c" * 16, "parent_span_id": "b" * 16, "name": "orders_db_query",
         "span_type": "RETRIEVER", "start_ns": 20 * MS, "end_ns": 250 * MS, "status": "OK"},
        {"span_id": "d" * 16, "parent_span_id": "a" * 16, "name": "chat_completion",
         "span_type": "LLM", "start_ns": 310 * MS, "end_ns": 1_400 * MS, "status": "OK",
         "inputs": CHAT_INPUTS, "outputs": CHAT_OUTPUTS},
        {"span_id": "e" * 16, "parent_span_id": "a" * 16, "name": "flaky_tool",
         "span_type": "TOOL", "start_ns": 1_400 * MS, "end_ns": 1_450 * MS, "status": "ERROR",
         "status_message": "TimeoutError: too slow"},
    ]  # fmt: skip
    trace = make_trace(experiment, "tr-" + "ab" * 16, spans, model_id=model.model_id)
    return {"trace": trace, "model": model}


def open_waterfall(page, url):
    # A chat trace opens on its Conversation tab (tests/e2e/test_trace_conversation.py);
    # these tests are about the waterfall.
    page.goto(url if "?" in url else url + "?view=waterfall")
    page.wait_for_selector("#waterfall[data-ready='1']")


def row(page, name):
    return page.locator(".wf-row:not([hidden])", has_text=name)


def test_it_shows_the_tree_and_collapses_and_expands(page, server, agent_trace):
    trace = agent_trace["trace"]
    open_waterfall(page, f"{server}/traces/{trace.trace_id}/")

    assert page.locator("h1").inner_text() == "answer_question"
    assert page.locator(".wf-row:not([hidden])").count() == 5
    assert "is-error" in row(page, "flaky_tool").get_attribute("class")
    assert row(page, "search_orders").get_attribute("aria-level") == "2"

    row(page, "search_orders").locator(".wf-toggle").click()
    assert page.locator(".wf-row:not([hidden])").count() == 4
    assert "+1 collapsed" in row(page, "search_orders").inner_text()

    page.get_by_role("button", name="Collapse all").click()
    assert page.locator(".wf-row:not([hidden])").count() == 1
    page.get_by_role("button", name="Expand all").click()
    assert page.locator(".wf-row:not([hidden])").count() == 5

    page.get_by_role("button", name="Critical path").click()
    critical = page.locator(".wf-row.is-critical .wf-label").all_inner_texts()
    assert critical == ["answer_question", "search_orders", "orders_db_query",
                        "chat_completion", "flaky_tool"]  # fmt: skip


def test_it_finds_spans_and_filters_by_status(page, server, agent_trace):
    trace = agent_trace["trace"]
    open_waterfall(page, f"{server}/traces/{trace.trace_id}/")

    page.locator("#wf-find").fill("order")
    expect(page.locator("#wf-find-count")).to_have_text("1 of 2")
    assert page.locator(".wf-row.is-match").count() == 2
    assert page.locator(".wf-row.is-current-match mark").inner_text() == "order"
    page.get_by_role("button", name="Next match").click()
    assert page.locator("#wf-find-count").inner_text() == "2 of 2"
    assert "orders_db_query" in page.locator(".wf-row.is-selected").inner_text()

    page.locator("#wf-status").select_option("2")  # errors only
    names = page.locator(".wf-row:not([hidden]) .wf-label").all_inner_texts()
    assert names == ["answer_question", "flaky_tool"]  # the match keeps its ancestor


def test_it_opens_span_details_with_chat_inputs_and_outputs(page, server, agent_trace):
    trace = agent_trace["trace"]
    open_waterfall(page, f"{server}/traces/{trace.trace_id}/")

    row(page, "chat_completion").click()

    panel = page.locator("#span-panel")
    panel.locator(".span-detail-name", has_text="chat_completion").wait_for()
    assert "span=" + "d" * 16 in page.url
    chat = panel.get_by_role("tabpanel", name="Chat")
    assert chat.locator("strong").inner_text() == "order 42"
    assert "shipped" in chat.locator(".from-outputs").inner_text()

    panel.get_by_role("tab", name="Inputs").click()
    inputs = panel.get_by_role("tabpanel", name="Inputs")
    assert inputs.is_visible() and not chat.is_visible()
    assert "You help with orders." in inputs.inner_text()
    panel.get_by_role("tab", name="Outputs").click()
    assert "It has *shipped*." in panel.get_by_role("tabpanel", name="Outputs").inner_text()
    page.keyboard.press("ArrowRight")  # arrows on a tab move between the tabs
    assert panel.get_by_role("tabpanel", name="Attributes").is_visible()


def test_it_moves_with_the_keyboard(page, server, agent_trace):
    trace = agent_trace["trace"]
    open_waterfall(page, f"{server}/traces/{trace.trace_id}/")
    page.locator("#wf-viewport").focus()

    page.keyboard.press("j")
    page.keyboard.press("j")
    assert "search_orders" in page.locator(".wf-row.is-selected").inner_text()
    page.keyboard.press("ArrowLeft")  # collapses it
    assert page.locator(".wf-row:not([hidden])").count() == 4
    page.keyboard.press("ArrowRight")
    assert page.locator(".wf-row:not([hidden])").count() == 5
    page.keyboard.press("k")
    assert "answer_question" in page.locator(".wf-row.is-selected").inner_text()
    page.keyboard.press("Enter")
    page.locator("#span-panel .span-detail-name", has_text="answer_question").wait_for()

    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "wf-find"
    page.keyboard.press("Escape")
    page.keyboard.press("?")
    assert page.locator("#wf-keys").is_visible()
    page.keyboard.press("Escape")


def test_the_selected_span_in_the_url_is_opened(page, server, agent_trace):
    trace = agent_trace["trace"]
    open_waterfall(page, f"{server}/traces/{trace.trace_id}/?span={'c' * 16}")

    assert "orders_db_query" in page.locator(".wf-row.is-selected").inner_text()
    page.locator("#span-panel .span-detail-name", has_text="orders_db_query").wait_for()


def test_the_model_link_opens_the_model(page, server, agent_trace):
    trace, model = agent_trace["trace"], agent_trace["model"]
    open_waterfall(page, f"{server}/traces/{trace.trace_id}/")

    page.get_by_role("link", name="support-agent").click()

    page.wait_for_url(f"{server}/models/{model.model_id}/")
    assert page.locator("h1").inner_text() == "support-agent"


def test_a_trace_of_thousands_of_spans_keeps_few_rows_in_the_dom(page, server):
    experiment = Experiment.objects.create(name="big")
    count = 5_000
    spans = [
        {"span_id": f"{i + 1:016x}", "parent_span_id": f"{(i - 1) // 4 + 1:016x}" if i else "",
         "name": f"step {i}", "span_type": "TOOL" if i % 7 else "LLM",
         "start_ns": i * 1000, "end_ns": i * 1000 + 900 if i else count * 1000, "status": "OK"}
        for i in range(count)
    ]  # fmt: skip
    trace = make_trace(experiment, "tr-" + "cd" * 16, spans, name="big")
    open_waterfall(page, f"{server}/traces/{trace.trace_id}/")

    rows_in_dom = [page.locator(".wf-row").count()]
    for fraction in (0.25, 0.5, 0.75, 1.0):
        page.evaluate(
            "f => { const v = document.getElementById('wf-viewport');"
            " v.scrollTop = f * (v.scrollHeight - v.clientHeight); }",
            fraction,
        )
        page.wait_for_timeout(50)
        rows_in_dom.append(page.locator(".wf-row").count())

    assert max(rows_in_dom) < 120
    # The last row in display order: the last child of the last child ... of the root.
    assert page.locator(".wf-row:not([hidden])", has_text="step 1364").count() == 1

    page.locator("#wf-find").fill("step 4321")
    expect(page.locator("#wf-find-count")).to_have_text("1 of 1")
    assert "step 4321" in page.locator(".wf-row.is-selected").inner_text()


def test_collapse_to_depth_keeps_that_many_levels(page, server, agent_trace):
    trace = agent_trace["trace"]
    open_waterfall(page, f"{server}/traces/{trace.trace_id}/")

    page.locator("#wf-depth").select_option("2")

    names = page.locator(".wf-row:not([hidden]) .wf-label").all_inner_texts()
    assert names == ["answer_question", "search_orders", "chat_completion", "flaky_tool"]
    assert "+1 collapsed" in row(page, "search_orders").inner_text()


def test_an_in_progress_trace_shows_new_spans_while_open(page, server):
    experiment = Experiment.objects.create(name="live")
    root = {"span_id": "1" * 16, "name": "agent", "span_type": "AGENT", "start_ns": 0,
            "end_ns": None, "status": "UNSET"}  # fmt: skip
    trace = make_trace(experiment, "tr-" + "ef" * 16, [root], state=TraceState.IN_PROGRESS)
    open_waterfall(page, f"{server}/traces/{trace.trace_id}/")
    assert page.locator(".wf-row:not([hidden])").count() == 1
    assert "is-running" in row(page, "agent").get_attribute("class")

    Span.objects.create(trace=trace, span_id="2" * 16, parent_span_id="1" * 16,
                        name="late_tool", span_type="TOOL", start_ns=5, end_ns=10)  # fmt: skip
    Trace.objects.filter(pk=trace.pk).update(span_count=2, state=TraceState.OK)

    row(page, "late_tool").wait_for(timeout=8_000)  # the page polls every few seconds
    assert page.locator(".wf-row:not([hidden])").count() == 2
    assert page.locator("[data-trace-state] .badge").inner_text() == "OK"


def test_a_trace_without_spans_says_so(page, server):
    experiment = Experiment.objects.create(name="empty")
    trace = make_trace(experiment, "tr-" + "01" * 16, [], state=TraceState.IN_PROGRESS)

    open_waterfall(page, f"{server}/traces/{trace.trace_id}/")

    expect(page.locator("#wf-status-line")).to_contain_text("No spans received for this trace yet")
    assert page.locator(".wf-row:not([hidden])").count() == 0


HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)"> [x](javascript:alert(3))'


def test_hostile_span_contents_stay_inert_in_the_details(page, server):
    experiment = Experiment.objects.create(name="hostile")
    event = {"name": HOSTILE, "attributes": {"exception.type": HOSTILE,
                                             "exception.stacktrace": HOSTILE}}  # fmt: skip
    span = {
        "span_id": "9" * 16, "name": HOSTILE, "span_type": HOSTILE[:32], "start_ns": 0,
        "end_ns": 10, "status": "ERROR", "status_message": HOSTILE,
        "inputs": {"messages": [{"role": "user", "content": HOSTILE, "name": HOSTILE}]},
        "outputs": {HOSTILE: HOSTILE * 50}, "attributes": {HOSTILE: HOSTILE}, "events": [event],
    }  # fmt: skip
    trace = make_trace(experiment, "tr-" + "99" * 16, [span], name=HOSTILE, tags={"t": HOSTILE})
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    open_waterfall(page, f"{server}/traces/{trace.trace_id}/")

    page.locator(".wf-row").first.click()
    panel = page.locator("#span-panel")
    panel.locator(".span-detail").wait_for()
    for tab in ("Inputs", "Outputs", "Attributes", "Events", "Chat"):
        panel.get_by_role("tab", name=tab).click()

    assert HOSTILE in page.locator(".wf-row .wf-label").first.inner_text()
    assert page.locator("script:not([src]), img, [onerror]").count() == 0
    assert page.locator("a[href^='javascript:']").count() == 0
    assert "[x](javascript:alert(3))" in panel.get_by_role("tabpanel", name="Chat").inner_text()
    assert dialogs == []


def test_escape_in_find_empties_it_with_its_count_and_outlines(page, server, agent_trace):
    trace = agent_trace["trace"]
    open_waterfall(page, f"{server}/traces/{trace.trace_id}/")
    page.locator("#wf-find").fill("order")
    expect(page.locator("#wf-find-count")).to_have_text("1 of 2")
    page.locator("#wf-only-matches").check()
    expect(page.locator(".wf-row:not([hidden])")).to_have_count(3)

    page.locator("#wf-find").press("Escape")

    assert page.locator("#wf-find").input_value() == ""
    expect(page.locator("#wf-find-count")).to_have_text("")
    expect(page.locator(".wf-row.is-match")).to_have_count(0)
    expect(page.locator(".wf-row.is-current-match")).to_have_count(0)
    expect(page.locator(".wf-row:not([hidden])")).to_have_count(5)
    assert page.evaluate("document.activeElement.id") == "wf-viewport"


def test_an_error_trace_opens_on_its_first_failed_span(page, server):
    experiment = Experiment.objects.create(name="support")
    spans = [
        {"span_id": "a" * 16, "name": "answer_question", "span_type": "AGENT",
         "start_ns": 0, "end_ns": 900 * MS, "status": "ERROR"},
        {"span_id": "b" * 16, "parent_span_id": "a" * 16, "name": "plan", "span_type": "LLM",
         "start_ns": 10 * MS, "end_ns": 100 * MS, "status": "OK"},
        {"span_id": "c" * 16, "parent_span_id": "b" * 16, "name": "ranker", "span_type": "TOOL",
         "start_ns": 20 * MS, "end_ns": 90 * MS, "status": "ERROR",
         "status_message": "TimeoutError: ranker timed out"},
    ]  # fmt: skip
    trace = make_trace(experiment, "tr-" + "ef" * 16, spans, state=TraceState.ERROR)
    open_waterfall(page, f"{server}/traces/{trace.trace_id}/")

    # The agent failed because its tool did: the tool is where the reader starts.
    expect(page.locator(".wf-row.is-selected")).to_have_count(1)
    assert "ranker" in page.locator(".wf-row.is-selected").inner_text()
    page.locator("#span-panel .span-detail-name", has_text="ranker").wait_for()
    assert "span=" + "c" * 16 in page.url
    assert "ranker timed out" in page.locator("#span-panel").inner_text()


def test_an_ok_trace_opens_with_nothing_selected(page, server, agent_trace):
    trace = agent_trace["trace"]  # OK, although one of its tools failed (and was retried)
    open_waterfall(page, f"{server}/traces/{trace.trace_id}/")

    expect(page.locator(".wf-row.is-selected")).to_have_count(0)


def test_a_span_without_inputs_says_so(page, server, agent_trace):
    trace = agent_trace["trace"]
    open_waterfall(page, f"{server}/traces/{trace.trace_id}/")

    row(page, "orders_db_query").click()
    panel = page.locator("#span-panel")
    panel.locator(".span-detail-name", has_text="orders_db_query").wait_for()

    inputs = panel.get_by_role("tabpanel", name="Inputs")
    assert inputs.inner_text().strip() == "No inputs."
    panel.get_by_role("tab", name="Outputs").click()
    outputs = panel.get_by_role("tabpanel", name="Outputs")
    assert outputs.inner_text().strip() == "No outputs."
    assert "null" not in panel.inner_text()
