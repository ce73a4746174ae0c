"""The agent forms in a real Chromium: an agent of each kind is added from its own fields
(openai and mlflow-serving against the real test agent server, built-in), and its "Test
connection" answers ok through the embedded worker; a logged-model agent, off on this server
unless SPYGLASS_PLAYGROUND_LOGGED_MODELS is on, says so and which setting turns it on, and
with it on is added and answers its test from the model loaded in the worker."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.conf import settings
from playwright.sync_api import expect

from playground.models import Agent
from tests.playground.agent_server import AgentServer
from tests.playground.conftest import sqlite_reads_without_table_locks
from tests.playground.test_logged_model_spans import (  # noqa: F401 (fixtures)
    mlflow_to_live_server,
    saved_agent,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def agent_server() -> Iterator[AgentServer]:
    server = AgentServer().start()
    yield server
    server.stop()


@pytest.fixture
def live(server, memory_celery_app, monkeypatch) -> Iterator[str]:
    """The live server, its checks run by an embedded worker."""
    from playground import checks
    from webapp import embedded_worker as embedded

    monkeypatch.setattr(checks, "default_app", memory_celery_app)
    with sqlite_reads_without_table_locks():
        worker = embedded.start(memory_celery_app, concurrency=1)
        yield server
        embedded.stop(worker)


def add_agent(page, live: str, name: str, kind: str, fields: dict[str, str]) -> None:
    page.goto(f"{live}/playground/agents/")
    page.get_by_label("Name", exact=True).fill(name)
    # The change swaps in the kind's own fields (even for the kind shown first, which
    # select_option picks again): fill them only once the swap has settled.
    page.evaluate("""() => { window.kindSwapped = new Promise(settled =>
        document.body.addEventListener("htmx:afterSettle", settled, {once: true})) }""")
    page.get_by_label("Kind", exact=True).select_option(kind)
    page.evaluate("() => window.kindSwapped")
    expect(page.locator("#agent-kind-fields")).to_have_attribute("data-kind-fields", kind)
    for label, value in fields.items():
        field = page.get_by_label(label, exact=True)
        if field.evaluate("el => el.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(f"{live}/playground/agents/")


def test_an_agent_of_each_kind_is_added_from_its_form_and_its_connection_tested(
    page, live, agent_server
):
    add_agent(page, live, "vLLM", "openai",
              {"URL": f"{agent_server.url}/openai/v1", "Model name": "llama"})  # fmt: skip
    add_agent(page, live, "Served", "mlflow-serving",
              {"URL": f"{agent_server.url}/chat-agent/invocations"})  # fmt: skip
    add_agent(page, live, "Judge", "builtin", {"Built-in agent": "oracle-judge"})

    assert Agent.objects.get(name="vLLM").config == {
        "url": f"{agent_server.url}/openai/v1", "model": "llama", "stream": True}  # fmt: skip
    assert Agent.objects.get(name="Served").config["stream"] is False
    assert Agent.objects.get(name="Judge").config == {"agent": "oracle-judge"}
    for name in ("vLLM", "Served", "Judge"):
        row = page.locator(f'tr[data-agent="{name}"]')
        expect(row.locator("[data-check]")).to_contain_text("Not tested yet")
        row.get_by_role("button", name="Test connection").click()
        expect(row.locator("[data-check-status]")).to_have_text("ok")
        expect(row.locator("[data-check-latency]")).to_have_text(re.compile(r"^\d+ ms$"))
        assert row.locator("[data-check-answer]").inner_text().strip("“”")
    paths = [r["path"] for r in agent_server.requests]
    assert paths == ["/openai/v1/chat/completions", "/chat-agent/invocations"]

    page.reload()  # the last result is kept
    expect(page.locator('tr[data-agent="vLLM"] [data-check-answer]')).to_contain_text("Echo:")


def test_a_failing_agent_shows_the_error_it_raised(page, live, agent_server):
    agent = Agent.objects.create(name="Broken", kind="openai",
                                 config={"url": f"{agent_server.url}/fail/v1"})  # fmt: skip
    page.goto(f"{live}/playground/agents/{agent.pk}/")

    expect(page.get_by_label("URL", exact=True)).to_have_value(f"{agent_server.url}/fail/v1")
    page.locator(".pg-agent-test").get_by_role("button", name="Test connection").click()

    expect(page.locator("[data-check-status]")).to_have_text("failed")
    expect(page.locator("[data-check-error]")).to_contain_text(
        "The agent answered HTTP 500: the model crashed"
    )


def test_a_logged_model_agent_says_whether_its_kind_is_on(page_with_refusals, live):
    page = page_with_refusals
    page.goto(f"{live}/playground/agents/")
    page.get_by_label("Name", exact=True).fill("Support agent")
    page.get_by_label("Kind", exact=True).select_option("logged-model")
    expect(page.locator("#agent-kind-fields")).to_have_attribute("data-kind-fields",
                                                                 "logged-model")  # fmt: skip
    page.get_by_label("Model URI", exact=True).fill("models:/support_chat_agent@champion")
    page.get_by_role("button", name="Save").click()

    if settings.SPYGLASS_PLAYGROUND_LOGGED_MODELS:  # on: saved (its test needs a logged model)
        page.wait_for_url(f"{live}/playground/agents/")
        assert Agent.objects.get().kind == "logged-model"
        return
    expect(page.locator(".pg-kind-off")).to_contain_text("SPYGLASS_PLAYGROUND_LOGGED_MODELS=1")
    expect(page.locator('[data-field="kind"] [role=alert]')).to_contain_text(
        "Logged-model agents are off"
    )
    uri = page.get_by_label("Model URI", exact=True)
    expect(uri).to_have_value("models:/support_chat_agent@champion")
    assert not Agent.objects.exists()


@pytest.mark.usefixtures("mlflow_to_live_server")  # the kind on, the worker's mlflow at `live`
def test_a_logged_model_agent_is_added_from_its_form_and_its_connection_tested(page, live, request):
    model_dir = request.getfixturevalue("saved_agent")  # a model saved with its code
    add_agent(page, live, "Support", "logged-model", {"Model URI": str(model_dir)})

    assert Agent.objects.get(name="Support").config["model_uri"] == str(model_dir)
    row = page.locator('tr[data-agent="Support"]')
    row.get_by_role("button", name="Test connection").click()
    # The first load of a model in a worker takes seconds (mlflow imports, the model's code).
    expect(row.locator("[data-check-status]")).to_have_text("ok", timeout=60_000)
    expect(row.locator("[data-check-answer]")).to_contain_text("From the atlas")
