"""Feedback in a real Chromium: given on the trace page with htmx, then chosen as a trace
list column and seen there as a badge."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

from tracking.models import Assessment, Experiment, Trace, TraceState

pytestmark = pytest.mark.e2e


@pytest.fixture
def trace(server):
    experiment = Experiment.objects.create(name="support")
    return Trace.objects.create(
        experiment=experiment,
        trace_id="tr-" + "cd" * 16,
        name="answer_question",
        state=TraceState.OK,
        request_time=datetime(2025, 6, 1, 12, 0, tzinfo=UTC),
        span_count=0,
    )


def test_feedback_given_on_the_trace_page_shows_as_a_trace_list_column(
    page_with_refusals, server, trace
):
    page = page_with_refusals
    page.goto(f"{server}/traces/{trace.trace_id}/")

    page.get_by_text("Give feedback", exact=True).click()
    form = page.locator(".feedback-new form").first
    form.get_by_label("Name").fill("correct")
    form.get_by_label("Number, label or text").fill("x")  # ignored: pass / fail is chosen
    form.get_by_label("Fail").check()
    form.get_by_label("Rationale").fill("Cited the wrong policy.")
    form.get_by_role("button", name="Save feedback").click()

    item = page.locator("section.assessments li.assessment").first
    expect(item).to_contain_text("correct")
    expect(item.locator(".badge")).to_have_text("Fail")
    expect(item).to_contain_text("Cited the wrong policy.")
    assert Assessment.objects.get().value is False

    # A bad value answers inline, without leaving the page.
    page.get_by_text("Give feedback", exact=True).click()
    form = page.locator(".feedback-new form").first
    form.get_by_label("Name").fill("score")
    form.get_by_label("Kind of value").select_option("number")
    form.get_by_label("Number, label or text").fill("lots")
    form.get_by_role("button", name="Save feedback").click()
    expect(page.get_by_role("alert").first).to_contain_text("Not a number")
    assert Assessment.objects.count() == 1

    page.goto(f"{server}/traces/")
    page.locator(".column-chooser summary").click()
    chooser = page.locator(".column-chooser form")
    chooser.get_by_label("correct").check()
    chooser.get_by_role("button", name="Save").click()

    expect(page.locator("th.assessment-column")).to_have_text("correct")
    row = page.locator(f"#trace-{trace.trace_id}")
    expect(row.locator(".assessment-cell .badge")).to_have_text("Fail")
