"""A dataset made in the browser: three traces selected on the trace list, added to a new
dataset, which opens with their three records."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.evaluation.test_datasets import make_trace
from tracking.models import Experiment

pytestmark = pytest.mark.e2e


def test_three_selected_traces_become_a_new_dataset(page, server):
    experiment = Experiment.objects.create(name="support")
    traces = [make_trace(experiment, n, f"question {n}", f"answer {n}") for n in (1, 2, 3)]
    page.goto(server + "/traces/")

    for trace in traces:
        page.locator(f'#trace-{trace.trace_id} input[name="trace"]').check()
    page.get_by_role("button", name="Add to dataset…").click()
    expect(page.get_by_role("heading", name="Add 3 traces to a dataset")).to_be_visible()
    page.get_by_role("textbox", name="New dataset name").fill("refund questions")
    page.get_by_role("button", name="Add to dataset", exact=True).click()

    expect(page.get_by_role("heading", name="refund questions")).to_be_visible()
    expect(page.locator("#record-rows tr.record")).to_have_count(3)
    expect(page.locator("#record-rows")).to_contain_text("question 2")
