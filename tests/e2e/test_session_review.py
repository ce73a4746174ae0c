"""Issue 17's loop in Chromium: a three-turn session is opened, its last turn goes to a review
queue, a reviewer answers it with the keyboard, and the answer shows on the trace page and as
a trace list column."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.tracking.test_session_pages import add_turn
from tracking.models import Experiment, Trace
from tracking.reviews import LabelSchema, ReviewItem, ReviewQueue

pytestmark = pytest.mark.e2e


def test_the_last_turn_of_a_session_reviewed_with_the_keyboard(page, server):
    experiment = Experiment.objects.create(name="support")
    turns = [
        add_turn(experiment, "conv-7", n, question=f"question {n}", answer=f"answer {n}")
        for n in (1, 2, 3)
    ]
    correct = LabelSchema.objects.create(
        experiment=experiment, name="correct", type="feedback", input_kind="pass_fail"
    )
    queue = ReviewQueue.objects.create(
        experiment=experiment, name="last turns", queue_type="custom"
    )
    queue.schemas.set([correct])

    page.goto(f"{server}/sessions/conv-7/?experiment={experiment.pk}")
    expect(page.locator(".turns > li")).to_have_count(3)
    expect(page.locator(".turns")).to_contain_text("question 3")

    # The last turn to the queue, as "Add to review queue" on the trace list does it.
    ReviewItem.objects.create(queue=queue, item_type="trace", item_id=turns[2])
    page.goto(f"{server}/review/")
    page.get_by_role("link", name="last turns").click()
    expect(page.locator(".review-content")).to_contain_text("question 3")
    expect(page.locator("body[data-review-keys=on]")).to_have_count(1)
    page.keyboard.press("2")  # correct: the negative answer
    page.keyboard.press("Enter")
    expect(page.locator("body")).to_contain_text("Nothing left")

    trace = Trace.objects.get(trace_id=turns[2])
    page.goto(f"{server}/traces/{trace.trace_id}/")
    expect(page.locator("#feedback-" + trace.trace_id)).to_contain_text("correct")

    page.goto(f"{server}/traces/")
    page.locator(".column-chooser summary").click()
    chooser = page.locator(".column-chooser form")
    chooser.get_by_label("correct").check()
    chooser.get_by_role("button", name="Save").click()
    expect(page.locator("th.assessment-column")).to_have_text("correct")
    expect(page.locator(f"#trace-{trace.trace_id} .assessment-cell .badge")).to_have_text("Fail")
