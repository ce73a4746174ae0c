"""Pairwise review in a real Chromium: two agents (two versions of one model) answer in the
playground, their answers are compared, B is picked with the keyboard and a rationale, and
the summary for the two versions says so. The live server enqueues on an embedded worker."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from playground.models import Agent
from tests.playground.conftest import sqlite_reads_without_table_locks
from tracking.models import Assessment, Experiment, LoggedModel

pytestmark = pytest.mark.e2e


@pytest.fixture
def versions(server) -> tuple[LoggedModel, LoggedModel]:
    experiment = Experiment.objects.create(name="support")
    return (
        LoggedModel.objects.create(experiment=experiment, name="support-agent"),
        LoggedModel.objects.create(experiment=experiment, name="support-agent"),
    )


@pytest.fixture
def playground(server, versions, memory_celery_app, monkeypatch) -> Iterator[str]:
    """The live server with an embedded worker and the two built-in agents, each answering
    as a version of support-agent."""
    from playground import runs
    from webapp import embedded_worker as embedded

    monkeypatch.setattr(runs, "default_app", memory_celery_app)
    Agent.objects.create(name="Echo", kind="builtin", model_id=versions[0].model_id,
                         config={"agent": "echo", "word_delay_ms": 5})  # fmt: skip
    Agent.objects.create(name="Oracle/judge", kind="builtin", model_id=versions[1].model_id,
                         config={"agent": "oracle-judge", "word_delay_ms": 5})  # fmt: skip
    with sqlite_reads_without_table_locks():
        worker = embedded.start(memory_celery_app, concurrency=1)
        yield server
        embedded.stop(worker)


def test_a_playground_compare_judged_b_shows_in_the_summary(page, playground, versions):
    page.goto(f"{playground}/playground/")
    page.get_by_label("Echo").check()
    page.get_by_label("Oracle/judge").check()
    page.get_by_placeholder("Ask something…").fill("How do I find slow agent calls?")
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(re.compile(r"/playground/c/\d+/$"))
    for name in ("Echo", "Oracle/judge"):
        page.locator(f'[data-pane="{name}"] [data-status=done]').wait_for(timeout=20_000)

    page.get_by_role("link", name="Compare these answers").click()
    page.wait_for_url(re.compile(r"/review/pairwise/\?a=tr-[0-9a-f]{32}&b=tr-[0-9a-f]{32}$"))
    pair_url = page.url
    expect(page.locator("[data-question]")).to_have_text("How do I find slow agent calls?")
    expect(page.locator('[data-side="A"]')).to_contain_text("You said: How do I find slow")
    expect(page.locator('[data-side="B"]')).to_contain_text("Improved answer:")
    expect(page.locator('[data-side="B"]')).to_contain_text("support-agent v2")

    page.keyboard.press("2")
    expect(page.get_by_label("B is better")).to_be_checked()
    page.get_by_label("Rationale").fill("B actually answers; A only repeats the question.")
    page.get_by_label("Rationale").press("Control+Enter")
    expect(page.locator("[data-saved]")).to_have_text("Saved: B is better.")
    expect(page.locator('[data-side="B"]')).to_have_class(re.compile(r"\bpw-chosen\b"))

    page.get_by_role("link", name="Summary for these versions").click()
    expect(page.locator("[data-result]")).to_have_text("B preferred in 1 of 1")
    judged = Assessment.objects.filter(name="pairwise_preference", valid=True)
    assert sorted(judged.values_list("trace__model_id", "value")) == sorted(
        [(versions[0].model_id, "worse"), (versions[1].model_id, "better")]
    )
    assert set(judged.values_list("rationale", flat=True)) == {
        "B actually answers; A only repeats the question."
    }

    # Enter alone submits outside the rationale: a tie now overrides B.
    page.goto(pair_url)
    page.keyboard.press("3")
    page.keyboard.press("Enter")
    expect(page.locator("[data-saved]")).to_have_text("Saved: a tie.")
    assert Assessment.objects.filter(name="pairwise_preference").count() == 4
    assert set(judged.values_list("value", flat=True)) == {"tie"}
