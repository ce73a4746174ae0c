"""Sessions in Chromium: from the sessions list, open a three-turn conversation, read it turn
by turn, unfold a tool call and follow a turn to its waterfall."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.tracking.test_session_pages import add_turn
from tracking.models import Experiment

pytestmark = pytest.mark.e2e


@pytest.fixture
def conversation(server) -> str:
    experiment = Experiment.objects.create(name="support")
    add_turn(experiment, "conv-e2e", 1, user="alice", question="Where is my order?",
             answer="It ships **tomorrow**.", tool="lookup_order")  # fmt: skip
    add_turn(experiment, "conv-e2e", 2, user="alice", question="Can I change the address?",
             answer="Yes, until it ships.", state="ERROR")  # fmt: skip
    last = add_turn(experiment, "conv-e2e", 3, user="alice", question="Thanks!", answer="Bye.")
    add_turn(experiment, "other", 4, user="bob")
    return last


def test_open_a_three_turn_session_and_read_it(page, server, conversation):
    page.goto(server + "/sessions/")
    row = page.locator("#session-rows tr", has_text="conv-e2e")
    expect(row).to_contain_text("alice")
    expect(row.locator("td.num").first).to_have_text("3")

    row.get_by_role("link", name="conv-e2e").click()

    page.wait_for_url(re.compile(r"/sessions/conv-e2e/\?experiment="))
    turns = page.locator("ol.turns > li")
    expect(turns).to_have_count(3)
    expect(turns.nth(0).locator(".message-user")).to_contain_text("Where is my order?")
    expect(turns.nth(0).locator(".message-assistant strong")).to_have_text("tomorrow")
    expect(turns.nth(1).locator(".badge")).to_have_text("Error")
    expect(turns.nth(2).locator(".message-user")).to_contain_text("Thanks!")

    tool = turns.nth(0).locator("details.tool-calls")
    expect(tool.locator(".tool-call")).to_be_hidden()
    tool.locator("summary").click()
    expect(tool.locator(".tool-call")).to_contain_text("Paris")

    turns.nth(2).get_by_role("link", name="Turn 3").click()
    page.wait_for_url(re.compile(r"/traces/tr-"))
    expect(page.locator("#trace-id")).to_have_text(conversation)
