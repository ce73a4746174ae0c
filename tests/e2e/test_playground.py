"""The playground in a real Chromium: the built-in oracle/judge agent streams an answer,
custom_inputs are refused inline until they are a JSON object, the answer's trace opens, and
two agents answer side by side. The live server enqueues on an embedded Celery worker."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from playground.models import Agent, Run
from tests.playground.conftest import sqlite_reads_without_table_locks

pytestmark = pytest.mark.e2e


@pytest.fixture
def page(page_with_refusals):
    """These tests provoke 422s on purpose (refusals shown in place)."""
    return page_with_refusals


@pytest.fixture
def playground(server, memory_celery_app, monkeypatch) -> Iterator[str]:
    """The live server with an embedded worker, and the two demo agents (paced so that the
    stream is long enough to be seen)."""
    from playground import runs
    from webapp import embedded_worker as embedded

    monkeypatch.setattr(runs, "default_app", memory_celery_app)
    Agent.objects.create(name="Echo", kind="builtin",
                         config={"agent": "echo", "word_delay_ms": 20})  # fmt: skip
    Agent.objects.create(name="Oracle/judge", kind="builtin",
                         config={"agent": "oracle-judge", "word_delay_ms": 80})  # fmt: skip
    with sqlite_reads_without_table_locks():
        worker = embedded.start(memory_celery_app, concurrency=1)
        yield server
        embedded.stop(worker)


def test_the_oracle_judge_answer_streams_in_with_custom_inputs_and_a_trace(page, playground):
    page.goto(f"{playground}/playground/")
    page.get_by_label("Echo").uncheck()
    page.get_by_label("Oracle/judge").check()
    page.get_by_placeholder("Ask something…").fill("How do I find slow agent calls?")
    page.get_by_label("custom_inputs", exact=True).check()

    page.locator("textarea[name=custom_inputs]").fill('{"session": "s-1",}')
    page.get_by_role("button", name="Send").click()
    error = page.locator("[data-custom-inputs-error]")
    error.wait_for()
    assert "not valid JSON" in error.inner_text() and "line 1, column 19" in error.inner_text()
    assert Run.objects.count() == 0

    page.locator("textarea[name=custom_inputs]").fill("[1, 2]")
    page.get_by_role("button", name="Send").click()
    page.get_by_text("must be a JSON object").wait_for()

    page.locator("textarea[name=custom_inputs]").fill('{"session": "s-1", "tier": "gold"}')
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(re.compile(r"/playground/c/\d+/$"))

    streaming = page.locator("[data-status=running] .pg-streaming")
    streaming.wait_for()
    partial = streaming.inner_text()
    done = page.locator("[data-status=done]")
    done.wait_for(timeout=15_000)
    answer = done.locator("[data-answer]").inner_text()
    assert partial and len(partial) < len(answer)
    assert "Improved answer:" in answer
    assert '"tier": "gold"' in done.locator("[data-custom-outputs]").inner_text()
    assert re.fullmatch(r"\d+ ms", done.locator("[data-latency]").inner_text())
    assert "tokens" in done.locator("[data-tokens]").inner_text()

    done.get_by_role("link", name="Trace", exact=True).click()
    page.wait_for_url(re.compile(r"/traces/tr-[0-9a-f]{32}/$"))
    # The waterfall loads its spans after the page: wait for their names.
    expect(page.locator("body")).to_contain_text("oracle")
    expect(page.locator("body")).to_contain_text("judge")


def test_two_agents_answer_side_by_side(page, playground):
    page.goto(f"{playground}/playground/")
    page.get_by_label("Echo").check()
    page.get_by_label("Oracle/judge").check()
    page.get_by_placeholder("Ask something…").fill("Compare these")
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(re.compile(r"/playground/c/\d+/$"))

    panes = page.locator(".pg-pane")
    assert panes.count() == 2
    for name in ("Echo", "Oracle/judge"):
        pane = page.locator(f'[data-pane="{name}"]')
        pane.locator("[data-status=done]").wait_for(timeout=15_000)
        assert pane.get_by_role("link", name="Trace", exact=True).count() == 1
    echo = page.locator('[data-pane="Echo"]')
    assert "You said: Compare these" in echo.inner_text()

    echo.get_by_text("Waterfall").click()
    waterfall = echo.locator("[data-waterfall]")
    waterfall.wait_for()
    assert waterfall.locator("li").count() == 4
    assert "LLM" in waterfall.inner_text()


def test_cancel_stops_a_slow_answer_that_does_not_stream(page, playground):
    from tests.playground.agent_server import AgentServer

    agent_server = AgentServer().start()
    try:
        Agent.objects.create(name="Slow", kind="openai", config={
            "url": f"{agent_server.url}/slow-answer/v1", "stream": False})  # fmt: skip
        page.goto(f"{playground}/playground/")
        page.get_by_label("Echo").uncheck()
        page.get_by_label("Slow").check()
        page.get_by_placeholder("Ask something…").fill("Take your time")
        page.get_by_role("button", name="Send").click()
        page.wait_for_url(re.compile(r"/playground/c/\d+/$"))
        page.locator("[data-status=running]").wait_for()

        page.locator("[data-cancel]").click()
        cancelled = page.locator("[data-status=cancelled]")
        cancelled.wait_for(timeout=2_000)
        # The worker let go of the agent: the call is hung up and the trace stored.
        run = Run.objects.get()
        deadline = time.monotonic() + 2
        while not (agent_server.hangups and Run.objects.get(pk=run.pk).trace_id):
            assert time.monotonic() < deadline, "the agent call was not stopped within 2 s"
            time.sleep(0.05)
    finally:
        agent_server.stop()

    badge = cancelled.locator("[data-run-status]")
    assert badge.inner_text() == "Cancelled"
    assert "stopped" in cancelled.locator("[data-cancelled]").inner_text()
    assert cancelled.locator("[data-error]").count() == 0
    # Its own colour: neither the error's nor the done answer's.
    error_colour = page.evaluate(
        "() => getComputedStyle(document.body).getPropertyValue('--error-fg').trim()"
    )
    colour = badge.evaluate("b => getComputedStyle(b).color")
    assert colour not in ("rgb(180, 35, 35)", error_colour)

    page.reload()
    cancelled = page.locator("[data-status=cancelled]")
    cancelled.get_by_role("link", name="Trace", exact=True).click()
    page.wait_for_url(re.compile(r"/traces/tr-[0-9a-f]{32}/$"))
    assert page.locator("[data-trace-state]").inner_text() == "Cancelled"

    # The trace list shows it as cancelled too, and its State filter finds it.
    trace_id = Run.objects.get(pk=run.pk).trace_id
    page.goto(f"{playground}/traces/")
    page.get_by_role("group", name="State").get_by_role("link", name="Cancelled").click()
    page.wait_for_url(re.compile(r"q=state\+%3D\+CANCELLED"))
    assert page.locator("#trace-list a.trace-link").count() == 1
    assert page.locator(f"#trace-{trace_id} .badge").inner_text() == "Cancelled"


def padding_of(locator) -> list[float]:
    style = "getComputedStyle(el)"
    return locator.evaluate(f"el => ['paddingTop', 'paddingLeft'].map(p => parseFloat({style}[p]))")


def test_the_agents_page_shows_urls_pads_its_cards_and_deletes_an_agent(page, server):
    Agent.objects.create(name="served", kind="mlflow-serving",
                         config={"url": "http://127.0.0.1:5001/invocations"})  # fmt: skip
    echo = Agent.objects.create(name="Echo", kind="builtin", config={"agent": "echo"})
    page.goto(f"{server}/playground/agents/")

    where = page.locator("[data-where]").all_inner_texts()
    assert where == ["built-in: echo", "http://127.0.0.1:5001/invocations"]
    form_card = page.locator("section.card", has_text="Add an agent")
    assert all(p >= 12 for p in padding_of(form_card))

    page.get_by_role("link", name="Echo").click()
    page.get_by_text("Delete this agent").click()
    page.get_by_role("button", name="Delete Echo").click()
    page.wait_for_url(f"{server}/playground/agents/")

    assert page.locator("[data-where]").all_inner_texts() == ["http://127.0.0.1:5001/invocations"]
    assert not Agent.objects.filter(pk=echo.pk).exists()


def test_a_conversation_is_renamed_and_deleted(page, playground):
    page.goto(f"{playground}/playground/")
    page.get_by_label("Echo").check()
    page.get_by_placeholder("Ask something…").fill("first words")
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(re.compile(r"/playground/c/\d+/$"))
    page.locator("[data-status=done]").wait_for(timeout=15_000)

    page.get_by_text("Rename or delete").click()
    page.get_by_label("Title").fill("Scones plan")
    page.get_by_role("button", name="Rename").click()

    expect(page.locator("h1")).to_have_text("Scones plan")
    expect(page.locator(".pg-conversations li.current")).to_contain_text("Scones plan")
    page.get_by_text("Rename or delete").click()
    page.get_by_role("button", name="Delete this conversation").click()
    page.wait_for_url(f"{playground}/playground/")
    assert "Scones plan" not in page.locator(".pg-sidebar").inner_text()
