"""A review queue worked with the keyboard: open it from the queue list, answer the questions
with number keys, submit with Enter, see the next item, then the answer on the trace page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.evaluation.test_review_pages import _chat_trace
from tracking.models import Assessment, Experiment
from tracking.reviews import LabelSchema, ReviewItem, ReviewQueue

pytestmark = pytest.mark.e2e


def keys_ready(page) -> None:
    # review.js is deferred: a key pressed before it runs would go nowhere.
    expect(page.locator("body[data-review-keys=on]")).to_have_count(1)


def test_a_reviewer_answers_with_the_keyboard_and_sees_the_answer_on_the_trace(page, server):
    experiment = Experiment.objects.create(name="support")
    traces = [_chat_trace(experiment, n, f"question {n}", f"answer {n}") for n in (1, 2)]
    helpful = LabelSchema.objects.create(
        experiment=experiment,
        name="helpful",
        type="feedback",
        input_kind="pass_fail",
        input_config={"positive_label": "Helpful", "negative_label": "Not helpful"},
    )
    tone = LabelSchema.objects.create(
        experiment=experiment,
        name="tone",
        type="feedback",
        input_kind="categorical",
        input_config={"options": ["warm", "neutral", "cold"]},
    )
    queue = ReviewQueue.objects.create(experiment=experiment, name="refunds", queue_type="custom")
    queue.schemas.set([helpful, tone])
    for trace in traces:
        ReviewItem.objects.create(queue=queue, item_type="trace", item_id=trace.trace_id)

    page.goto(server + "/review/")
    page.get_by_role("link", name="refunds").click()
    expect(page.locator(".review-content")).to_contain_text("question 1")
    keys_ready(page)

    page.keyboard.press("?")
    expect(page.get_by_role("dialog")).to_contain_text("next / previous item")
    page.keyboard.press("?")
    expect(page.get_by_role("dialog")).to_be_hidden()
    # Focus is back on the page, not on the closed dialog's button (Enter would press that).
    in_dialog = "document.getElementById('review-keys').contains(document.activeElement)"
    assert not page.evaluate(in_dialog)

    page.keyboard.press("1")  # helpful: Helpful, then tone is the current question
    expect(page.get_by_role("radio", name="1 Helpful")).to_be_checked()
    page.keyboard.press("3")  # tone: cold
    expect(page.get_by_role("radio", name="3 cold")).to_be_checked()
    page.keyboard.press("Enter")

    expect(page.locator(".review-content")).to_contain_text("question 2")
    expect(page.locator("[data-position]")).to_have_text("Item 2 of 2")
    keys_ready(page)
    answers = Assessment.objects.filter(trace=traces[0]).order_by("name")
    assert [(a.name, a.value, a.source_type) for a in answers] == [
        ("helpful", True, "HUMAN"),
        ("tone", "cold", "HUMAN"),
    ]

    page.keyboard.press("k")  # back to the first item: its answers are kept
    expect(page.get_by_role("radio", name="3 cold")).to_be_checked()
    page.get_by_role("link", name=traces[0].trace_id).click()
    assessments = page.locator(".assessments")
    expect(assessments).to_contain_text("helpful")
    expect(assessments).to_contain_text("Pass")
    expect(assessments).to_contain_text("cold")
