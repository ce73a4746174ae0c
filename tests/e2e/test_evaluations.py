"""The evaluation compare page in a real browser: two MLflow-shaped evaluation runs of the
same questions (as bench/evaluation_pages.py stores them), the regressed row first, and its
two traces one click away."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from bench.evaluation_pages import fill

pytestmark = pytest.mark.e2e


def test_the_regressed_row_comes_first_and_opens_both_traces(server, page):
    base, other = fill(12, 2)
    page.goto(f"{server}/evaluations/compare/?runs={base},{other}")

    first = page.locator("tbody tr").first
    expect(first).to_have_attribute("data-category", "regression")
    expect(first.locator("th")).to_contain_text("question 1?")
    links = first.locator("a[data-trace-link]")
    expect(links).to_have_count(2)

    first.locator("a[data-trace-link]").nth(1).click()
    page.wait_for_url(f"{server}/traces/tr-*/")
    expect(page.locator("h1")).to_be_visible()

    page.go_back()
    page.get_by_role("switch", name="Only changes").click()
    # rows 1 and 11 regressed, row 2 improved (the fill changes every tenth row)
    expect(page.locator("tbody tr")).to_have_count(3)
