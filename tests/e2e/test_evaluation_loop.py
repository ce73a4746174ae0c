"""The whole evaluation loop in a real browser: three traces from the trace list become a new
dataset, an evaluation of two versions is launched from it, its progress bar runs to the end
(the embedded worker answers through a real HTTP agent and the built-in one), the comparison
shows the regressed row first, and both of its traces open."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from evaluation import runner
from playground.models import Agent
from tests.evaluation.test_datasets import make_trace
from tests.playground.conftest import _agent_server, agent_server, sqlite_reads_without_table_locks  # noqa: F401
from tracking.models import Experiment, LoggedModel

pytestmark = pytest.mark.e2e


@pytest.fixture
def worker(server, memory_celery_app, monkeypatch) -> Iterator[str]:
    from webapp import embedded_worker as embedded

    monkeypatch.setattr(runner, "default_app", memory_celery_app)
    with sqlite_reads_without_table_locks():
        started = embedded.start(memory_celery_app, concurrency=1)
        yield server
        embedded.stop(started)


def test_dataset_to_evaluation_to_comparison(page, worker, agent_server):  # noqa: F811
    server = worker
    experiment = Experiment.objects.create(name="support")
    # The traces' answers are what the first version says: "Echo: <question>".
    traces = [make_trace(experiment, n, f"question {n}", f"Echo: question {n}") for n in (1, 2, 3)]
    v1, v2 = (LoggedModel.objects.create(experiment=experiment, name="agent") for _ in range(2))
    Agent.objects.create(
        name="agent v1",
        kind="openai",
        model_id=v1.model_id,
        config={"url": f"{agent_server.url}/plain/v1", "stream": False},
    )
    # The second version answers differently ("You said: ..."): every row regresses.
    Agent.objects.create(
        name="agent v2", kind="builtin", model_id=v2.model_id, config={"agent": "echo"}
    )

    page.goto(server + "/traces/")
    for trace in traces:
        page.locator(f'#trace-{trace.trace_id} input[name="trace"]').check()
    page.get_by_role("button", name="Add to dataset…").click()
    page.get_by_role("textbox", name="New dataset name").fill("golden questions")
    page.get_by_label("Use outputs as expected_response").check()
    page.get_by_role("button", name="Add to dataset", exact=True).click()
    expect(page.get_by_role("heading", name="golden questions")).to_be_visible()

    page.locator("[data-evaluate]").click()
    expect(page.get_by_role("heading", name="New evaluation")).to_be_visible()
    page.get_by_label("Agent 1", exact=True).select_option(label="agent v1")
    page.get_by_label("Agent 2", exact=True).select_option(label="agent v2")
    page.locator("[data-launch]").click()

    expect(page.locator("#job-progress")).to_have_attribute(
        "data-job-state", "FINISHED", timeout=30_000
    )
    expect(page.locator("progress.ev-bar")).to_have_attribute("value", "6")
    page.locator("[data-compare-link]").click()

    first = page.locator("tbody tr").first
    expect(first).to_have_attribute("data-category", "regression")
    links = first.locator("a[data-trace-link]")
    expect(links).to_have_count(2)
    compare_url = page.url
    for i in range(2):
        page.goto(compare_url)
        page.locator("tbody tr").first.locator("a[data-trace-link]").nth(i).click()
        page.wait_for_url(f"{server}/traces/tr-*/")
        expect(page.locator("h1")).to_be_visible()
