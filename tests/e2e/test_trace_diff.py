"""The trace diff in a real Chromium: two runs of one agent, sent through the real
OpenTelemetry SDK to /v1/traces, where version 2 added a stock check and answered differently.
The added span and the changed answer are marked, `n` walks the changes, and the span pair's
panel shows the answer's word diff."""

from __future__ import annotations

import json
import time

import pytest
from django.utils import timezone
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from playwright.sync_api import expect

from tests.xss import CORPUS
from tracking.models import Experiment, LoggedModel, Span, Trace

pytestmark = pytest.mark.e2e

PAYLOAD = " ".join(CORPUS)
MS = 1_000_000
QUESTION = "When does order 42 ship?"
ANSWERS = {
    1: "Order 42 ships on Monday from the Lyon warehouse.",
    2: "Order 42 ships on Tuesday from the Lyon warehouse.",
}


def _attributes(span_type: str, inputs, outputs=None) -> dict[str, str]:
    # MLflow's span attributes, as an MLflow-instrumented agent exporting over OTLP sets them.
    attributes = {"mlflow.spanType": span_type, "mlflow.spanInputs": json.dumps(inputs)}
    if outputs is not None:
        attributes["mlflow.spanOutputs"] = json.dumps(outputs)
    return attributes


def answer_question(tracer, version: int) -> None:
    """The support agent: version 2 checks the stock before it answers. Spans have fixed
    times: only what the versions do differently may differ, never a duration that a loaded
    machine stretched (the diff flags a change of 25% and 1 ms)."""
    t0 = time.time_ns()

    def step(name: str, start_ms: int, end_ms: int, span_type: str, inputs, outputs) -> None:
        span = tracer.start_span(name, start_time=t0 + start_ms * MS)
        span.set_attributes(_attributes(span_type, inputs, outputs))
        span.end(end_time=t0 + end_ms * MS)

    later = 100 if version == 2 else 0  # the stock check's time
    answer = ANSWERS[version]
    chat = {"messages": [{"role": "user", "content": QUESTION}]}
    root = tracer.start_span("support_agent", start_time=t0)
    with trace.use_span(root, end_on_exit=False):
        step("plan", 10, 110, "LLM", {"question": QUESTION}, {"plan": "look it up"})
        step("lookup_order", 120, 220, "TOOL", {"order_id": 42}, {"status": "packed"})
        if version == 2:
            step("check_stock", 230, 330, "TOOL", {"sku": "A-1"}, {"in_stock": True})
        outputs = {"choices": [{"message": {"role": "assistant", "content": answer}}]}
        step("write_answer", 230 + later, 490 + later, "CHAT_MODEL", chat, outputs)
    root.set_attributes(_attributes("AGENT", chat, answer))
    root.end(end_time=t0 + (500 + later) * MS)


@pytest.fixture
def two_versions(server) -> tuple[str, str]:
    """Version 1's and version 2's traces, ingested by the live server from the OTel SDK."""
    Experiment.objects.get_or_create(
        pk=0, defaults={"name": "Default", "artifact_location": "mlflow-artifacts:/0"}
    )
    ids = []
    for version in (1, 2):
        # A provider of the test's own (never the global one); SimpleSpanProcessor exports each
        # span as it ends, so the trace is stored when shutdown() returns.
        provider = TracerProvider(resource=Resource.create({"service.name": "support"}))
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=server + "/v1/traces"))
        )
        answer_question(provider.get_tracer("support"), version)
        provider.shutdown()
        ids.append(Trace.objects.order_by("-request_time", "-pk").first().trace_id)
    assert ids[0] != ids[1] and Trace.objects.get(trace_id=ids[1]).span_count == 5
    return ids[0], ids[1]


def row(page, name):
    return page.locator(".td-row:not([hidden])", has_text=name)


def test_the_added_step_and_the_changed_answer_are_marked_and_n_walks_the_changes(
    page, server, two_versions
):
    a, b = two_versions
    page.goto(f"{server}/traces/diff/?a={a}&b={b}")
    page.wait_for_selector("#trace-diff[data-diff-rows-drawn]")

    names = page.locator(".td-row:not([hidden]) .td-label").all_inner_texts()
    assert names == ["support_agent", "plan", "lookup_order", "check_stock", "write_answer"]
    added = row(page, "check_stock")
    expect(added).to_have_class("td-row kind-added type-tool")
    assert added.locator(".td-mark").inner_text() == "+"
    changed = row(page, "write_answer")
    expect(changed).to_have_class("td-row kind-changed type-chat-model")
    assert changed.locator(".td-mark").inner_text() == "~"
    assert changed.locator(".td-badge").all_inner_texts() == ["out"]
    for same in ("plan", "lookup_order"):
        expect(row(page, same)).to_have_class(
            f"td-row kind-same type-{'llm' if same == 'plan' else 'tool'}"
        )
    summary = page.locator("#td-summary")
    expect(summary.locator("[data-count=added]")).to_have_text("+ 1 added")
    expect(summary.locator("[data-summary=spans] td").nth(2)).to_have_text("+1")

    # n: the root (its answer changed), then the added step, then the changed answer.
    page.locator("#td-viewport").focus()
    page.keyboard.press("n")
    expect(page.locator(".td-row.is-selected .td-label")).to_have_text("support_agent")
    page.keyboard.press("n")
    expect(page.locator(".td-row.is-selected .td-label")).to_have_text("check_stock")
    expect(page.locator("#td-change-count")).to_have_text("change 2 of 3")
    page.keyboard.press("n")
    expect(page.locator(".td-row.is-selected .td-label")).to_have_text("write_answer")
    assert "is-current-change" in changed.get_attribute("class")

    # The pair's panel: the answer's word diff, Monday out, Tuesday in, the rest kept.
    panel = page.locator("#diff-panel")
    # The last pair asked for, though three were asked for in a row.
    expect(panel.locator(".diff-spans-name")).to_have_text("write_answer")
    expect(panel.locator("[data-field=outputs] .badge")).to_have_text("~ changed")
    expect(panel.locator("[data-field=inputs]")).to_contain_text("unchanged")
    expect(panel.locator("del", has_text="Monday").first).to_be_visible()
    expect(panel.locator("ins", has_text="Tuesday").first).to_be_visible()
    assert "Lyon warehouse" in panel.inner_text()

    page.keyboard.press("p")
    expect(page.locator(".td-row.is-selected .td-label")).to_have_text("check_stock")


def test_show_only_changes_hides_the_unchanged_steps(page, server, two_versions):
    a, b = two_versions
    page.goto(f"{server}/traces/diff/?a={a}&b={b}")
    page.wait_for_selector("#trace-diff[data-diff-rows-drawn]")
    page.get_by_label("Show only changes").check()
    names = page.locator(".td-row:not([hidden]) .td-label").all_inner_texts()
    assert names == ["support_agent", "check_stock", "write_answer"]
    page.get_by_label("Show only changes").uncheck()
    expect(page.locator(".td-row:not([hidden])")).to_have_count(5)


def test_the_xss_corpus_in_both_sides_runs_nothing(page, server):
    """Names, inputs and outputs that differ between A and B, each holding the corpus: the
    rows, the summary's critical paths and every pair's panel show them as text. A payload
    that ran would open a dialog; one the CSP refused would log a console error (the `page`
    fixture fails on both)."""
    experiment = Experiment.objects.create(name="xss")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    traces = []
    for side, extra in (("a", []), ("b", [CORPUS[-1]])):
        trace = Trace.objects.create(
            experiment=experiment, trace_id=f"tr-{side * 32}", name=PAYLOAD[:200],
            request_time=timezone.now(), state="OK", span_count=len(CORPUS) + len(extra),
        )  # fmt: skip
        names = [*CORPUS, *extra] if side == "b" else CORPUS
        Span.objects.bulk_create(
            Span(
                trace=trace, span_id=f"{side}{i:015x}", name=name[:200],
                parent_span_id="" if i == 0 else f"{side}{0:015x}", span_type="LLM",
                start_ns=i * 1000, end_ns=i * 1000 + 900, status="OK",
                inputs={"messages": [{"role": "user", "content": f"{side} {PAYLOAD}"}]},
                outputs={"choices": [{"message": {"role": "assistant", "content": side + name}}]},
            )
            for i, name in enumerate(names)
        )  # fmt: skip
        traces.append(trace)
    page.goto(f"{server}/traces/diff/?a={traces[0].trace_id}&b={traces[1].trace_id}")
    page.wait_for_selector("#trace-diff[data-diff-rows-drawn]")
    labels = page.locator(".td-row:not([hidden]) .td-label").all_inner_texts()
    assert labels[:3] == [name[:200] for name in CORPUS[:3]]
    changes = int(page.locator("#td-change-count").inner_text().split()[0])
    assert changes == len(CORPUS) + 1  # every answer differs, and one span was added
    for _ in range(changes):
        page.keyboard.press("n")
        expect(page.locator("#diff-panel .diff-spans")).to_be_visible()
    expect(page.locator("#diff-panel .diff-spans-name")).to_have_text(CORPUS[-1][:200])
    assert page.locator("#trace-diff img, #trace-diff svg, #trace-diff script").count() == 0
    assert dialogs == []


def test_the_trace_list_diffs_two_selected_traces_older_as_a(page, server, two_versions):
    a, b = two_versions
    page.goto(f"{server}/traces/")
    diff = page.locator("[data-diff-selected]")
    expect(diff).to_be_disabled()
    page.locator(f"input[name=trace][value='{b}']").check()
    expect(diff).to_be_disabled()
    page.locator(f"input[name=trace][value='{a}']").check()
    expect(diff).to_be_enabled()
    diff.click()
    page.wait_for_selector("#trace-diff[data-diff-rows-drawn]")
    assert page.url == f"{server}/traces/diff/?a={a}&b={b}"
    expect(page.locator("[data-side=b] .mono")).to_have_text(b)


def test_the_trace_page_compares_with_a_trace_id(page, server, two_versions):
    a, b = two_versions
    page.goto(f"{server}/traces/{a}/")
    page.get_by_text("Compare with…").click()
    page.get_by_label("Trace id to compare with (B)").fill(b)
    page.get_by_role("button", name="Diff", exact=True).click()
    page.wait_for_selector("#trace-diff[data-diff-rows-drawn]")
    assert page.url == f"{server}/traces/diff/?a={a}&b={b}"
    expect(row(page, "check_stock")).to_have_class("td-row kind-added type-tool")


def test_the_trace_page_lists_the_same_input_on_another_version_and_diffs_it(
    page, server, two_versions
):
    """Both runs asked the same question; version 2's is listed when "Compare with…" opens
    (the list comes by htmx then), and its Diff link opens the diff of the two."""
    a, b = two_versions
    experiment = Experiment.objects.get(pk=0)
    for trace_id, name in ((a, "support v1"), (b, "support v2")):
        model = LoggedModel.objects.create(experiment=experiment, name=name)
        Trace.objects.filter(trace_id=trace_id).update(model_id=model.model_id)
    page.goto(f"{server}/traces/{a}/")
    page.get_by_text("Compare with…").click()
    listed = page.locator(f"[data-same-input-trace='{b}']")
    expect(listed).to_contain_text("support v2")
    expect(page.locator("[data-same-input-searched]")).to_contain_text("the last 5,000 traces")
    listed.get_by_role("link", name="Diff", exact=True).click()
    page.wait_for_selector("#trace-diff[data-diff-rows-drawn]")
    assert page.url == f"{server}/traces/diff/?a={a}&b={b}"
    expect(row(page, "check_stock")).to_have_class("td-row kind-added type-tool")
