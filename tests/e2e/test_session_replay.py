"""Replaying a session in Chromium: open a three-turn session, replay it against the echo
agent from its page, and watch the three answers arrive in the new conversation. The live
server enqueues on an embedded Celery worker."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from playground.models import Agent
from tests.playground.conftest import sqlite_reads_without_table_locks
from tests.tracking.test_session_pages import add_turn
from tracking.models import Experiment

pytestmark = pytest.mark.e2e

QUESTIONS = ("Where is my order?", "Can I change the address?", "Thanks!")


@pytest.fixture
def replaying(server, memory_celery_app, monkeypatch) -> Iterator[str]:
    """The live server with an embedded worker, the echo agent, and a three-turn session."""
    from playground import runs, session_replay
    from webapp import embedded_worker as embedded

    monkeypatch.setattr(runs, "default_app", memory_celery_app)
    monkeypatch.setattr(session_replay, "default_app", memory_celery_app)
    Agent.objects.create(name="Echo", kind="builtin",
                         config={"agent": "echo", "word_delay_ms": 20})  # fmt: skip
    experiment = Experiment.objects.create(name="support")
    for n, question in enumerate(QUESTIONS, start=1):
        add_turn(experiment, "conv-replay", n, question=question, answer=f"Recorded {n}.")
    with sqlite_reads_without_table_locks():
        worker = embedded.start(memory_celery_app, concurrency=1)
        yield server
        embedded.stop(worker)


def test_replay_a_three_turn_session_against_the_echo_agent(page, replaying):
    page.goto(f"{replaying}/sessions/")
    page.locator("#session-rows tr", has_text="conv-replay").get_by_role(
        "link", name="conv-replay"
    ).click()
    page.wait_for_url(re.compile(r"/sessions/conv-replay/\?experiment="))
    expect(page.locator("ol.turns > li")).to_have_count(3)

    form = page.locator("#replay-form")
    form.get_by_label("Echo").check()
    form.get_by_role("button", name="Replay in playground").click()

    page.wait_for_url(re.compile(r"/playground/c/\d+/"))
    pane = page.locator("[data-pane=Echo]")
    expect(pane.locator("article[data-status=done]")).to_have_count(3, timeout=15_000)
    answers = pane.locator("article[data-status=done] [data-answer]")
    for n, question in enumerate(QUESTIONS):
        expect(answers.nth(n)).to_have_text(f"You said: {question}")
    expect(page.locator("[data-replay]")).to_contain_text("all 3 turns answered")
    expect(pane).not_to_contain_text("Recorded")
