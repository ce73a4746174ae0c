"""The trace page's Conversation tab in a real Chromium: the default for a chat trace, its
items linked to their spans in the waterfall; a trace without chat opens on the waterfall."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.test_trace_detail import CHAT_INPUTS, CHAT_OUTPUTS, MS, make_trace
from tests.xss import CORPUS
from tracking.models import Experiment

pytestmark = pytest.mark.e2e

THINKING = {"choices": [{"message": {
    "role": "assistant", "content": "Checking the order.", "reasoning_content": "Look it up first.",
    "tool_calls": [{"id": "c1", "function": {"name": "lookup_order", "arguments": '{"id": 42}'}}],
}}]}  # fmt: skip
DOCS = [{"page_content": "Orders ship in two days.",
         "metadata": {"doc_uri": "https://docs.example/shipping", "score": 0.87}}]  # fmt: skip


@pytest.fixture
def chat_trace(server):
    experiment = Experiment.objects.create(name="support")
    spans = [
        {"span_id": "a" * 16, "name": "answer_question", "span_type": "AGENT", "start_ns": 0,
         "end_ns": 1_500 * MS, "status": "OK", "inputs": CHAT_INPUTS, "outputs": CHAT_OUTPUTS},
        {"span_id": "b" * 16, "parent_span_id": "a" * 16, "name": "search_docs",
         "span_type": "RETRIEVER", "start_ns": 10 * MS, "end_ns": 100 * MS, "status": "OK",
         "inputs": {"query": "shipping"}, "outputs": DOCS},
        {"span_id": "c" * 16, "parent_span_id": "a" * 16, "name": "plan",
         "span_type": "CHAT_MODEL", "start_ns": 110 * MS, "end_ns": 400 * MS, "status": "OK",
         "inputs": CHAT_INPUTS, "outputs": THINKING},
        {"span_id": "d" * 16, "parent_span_id": "a" * 16, "name": "lookup_order",
         "span_type": "TOOL", "start_ns": 410 * MS, "end_ns": 600 * MS, "status": "OK",
         "inputs": {"id": 42}, "outputs": {"status": "shipped"}},
        {"span_id": "e" * 16, "parent_span_id": "a" * 16, "name": "write_answer",
         "span_type": "LLM", "start_ns": 610 * MS, "end_ns": 1_400 * MS, "status": "OK",
         "inputs": CHAT_INPUTS, "outputs": CHAT_OUTPUTS},
    ]  # fmt: skip
    return make_trace(experiment, "tr-" + "ab" * 16, spans)


def test_a_chat_trace_opens_on_its_conversation(page, server, chat_trace):
    page.goto(f"{server}/traces/{chat_trace.trace_id}/")

    conversation = page.locator("#conversation")
    expect(conversation.locator(".convo-items")).to_be_visible()
    expect(page.get_by_role("tab", name="Conversation")).to_have_attribute("aria-selected", "true")
    assert page.locator("#waterfall").is_hidden()
    items = conversation.locator(".convo-item")
    texts = items.all_inner_texts()
    assert "order 42" in texts[1] and "search_docs" in texts[2] and "lookup_order" in texts[4]
    assert "It has shipped." in texts[-1]
    card = conversation.locator(".doc-card")
    assert "score 0.870" in card.inner_text()
    assert card.get_by_role("link").get_attribute("href") == "https://docs.example/shipping"
    reasoning = conversation.locator("details.convo-reasoning")
    assert not reasoning.get_attribute("open") and reasoning.locator("summary").is_visible()
    assert not reasoning.get_by_text("Look it up first.").is_visible()
    reasoning.locator("summary").click()
    expect(reasoning.get_by_text("Look it up first.")).to_be_visible()
    # The waterfall loaded behind the tab, with nothing selected in the URL.
    page.wait_for_selector("#waterfall[data-ready='1']", state="attached")
    assert "span=" not in page.url


def test_a_tool_call_opens_its_span_in_the_waterfall(page, server, chat_trace):
    page.goto(f"{server}/traces/{chat_trace.trace_id}/")
    tool = page.locator(".convo-tool")

    tool.get_by_role("link", name="span").click()

    expect(page.locator("#waterfall")).to_be_visible()
    assert page.locator("#conversation").is_hidden()
    expect(page.get_by_role("tab", name="Waterfall")).to_have_attribute("aria-selected", "true")
    expect(page.locator(".wf-row.is-selected")).to_contain_text("lookup_order")
    panel = page.locator("#span-panel")
    expect(panel.locator(".span-detail-name")).to_have_text("lookup_order")
    expect(panel.get_by_role("tabpanel", name="Call")).to_contain_text('"status": "shipped"')
    assert f"span={'d' * 16}" in page.url and "view=waterfall" in page.url
    # The keyboard moves in the tree again, and the URL reopens the same view.
    page.keyboard.press("k")
    expect(page.locator(".wf-row.is-selected")).to_contain_text("plan")
    page.reload()
    expect(page.locator(".wf-row.is-selected")).to_contain_text("plan")
    assert page.locator("#conversation").is_hidden()

    page.get_by_role("tab", name="Conversation").click()
    expect(page.locator(".convo-items")).to_be_visible()
    assert "view=conversation" in page.url and "span=" not in page.url


def test_the_conversation_tab_ignores_the_tree_keys(page, server, chat_trace):
    page.goto(f"{server}/traces/{chat_trace.trace_id}/")
    page.wait_for_selector("#waterfall[data-ready='1']", state="attached")
    expect(page.locator(".convo-items")).to_be_visible()

    page.keyboard.press("j")

    assert "span=" not in page.url
    page.get_by_role("tab", name="Waterfall").click()
    expect(page.locator(".wf-row:not([hidden])")).to_have_count(5)
    expect(page.locator(".wf-row.is-selected")).to_have_count(0)


def test_a_trace_without_chat_opens_on_the_waterfall(page, server):
    experiment = Experiment.objects.create(name="batch")
    spans = [{"span_id": "1" * 16, "name": "etl", "span_type": "CHAIN", "start_ns": 0,
              "end_ns": 10 * MS, "status": "OK", "inputs": {"rows": 3},
              "outputs": "done"}]  # fmt: skip
    trace = make_trace(experiment, "tr-" + "12" * 16, spans)

    page.goto(f"{server}/traces/{trace.trace_id}/")

    page.wait_for_selector("#waterfall[data-ready='1']")
    assert page.locator("#waterfall").is_visible()
    assert page.get_by_role("tab", name="Conversation").count() == 0
    assert page.locator("#conversation").count() == 0


def test_hostile_contents_stay_inert_in_the_conversation(page, server):
    text = "\n\n".join(CORPUS)
    experiment = Experiment.objects.create(name="hostile")
    inputs = {"messages": [{"role": "user", "content": text}]}
    spans = [
        {"span_id": "1" * 16, "name": CORPUS[0], "span_type": "AGENT", "start_ns": 0,
         "end_ns": 10 * MS, "status": "OK", "inputs": inputs, "outputs": text},
        {"span_id": "2" * 16, "parent_span_id": "1" * 16, "name": CORPUS[1], "span_type": "TOOL",
         "start_ns": 1, "end_ns": 5, "status": "OK", "inputs": {c: c for c in CORPUS},
         "outputs": text},
        {"span_id": "3" * 16, "parent_span_id": "1" * 16, "name": CORPUS[2],
         "span_type": "RETRIEVER", "start_ns": 2, "end_ns": 6, "status": "OK",
         "outputs": [{"page_content": c, "metadata": {"doc_uri": c}} for c in CORPUS]},
    ]  # fmt: skip
    trace = make_trace(experiment, "tr-" + "66" * 16, spans)
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    page.goto(f"{server}/traces/{trace.trace_id}/")
    expect(page.locator(".convo-items")).to_be_visible()
    page.locator(".convo-tool").get_by_role("link", name="span").click()
    expect(page.locator("#span-panel .tool-call")).to_be_visible()

    assert page.locator("script:not([src]), img, iframe, [onerror], [onload]").count() == 0
    assert page.locator("a[href^='javascript:']").count() == 0
    assert dialogs == []
