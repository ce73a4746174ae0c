"""The XSS corpus in every evaluation field (stored through the MLflow REST API), opened in
Chromium on every page that shows evaluation data: no script runs and no element of the
corpus exists. The `page` fixture fails the test on any console error, which is also how
Chromium reports a script or style that the CSP refused."""

from __future__ import annotations

import pytest
from django.test import Client
from playwright.sync_api import expect

from tests.xss import CORPUS, store_evaluation_corpus

pytestmark = pytest.mark.e2e

INJECTED = (
    "script:not([src]), img[onerror], svg[onload], iframe, details[ontoggle], body style, "
    "a[href^='javascript:'], img[src='x']"
)


def test_no_script_from_the_corpus_runs_where_evaluation_data_shows(page, server, artifact_root):
    corpus = store_evaluation_corpus(Client())
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    for path in corpus.pages():
        response = page.goto(server + path)
        assert response.status == 200, path
        page.wait_for_load_state("networkidle")  # fragments loaded after the page included
        expect(page.locator(INJECTED)).to_have_count(0)

    # The corpus was there to run: shown as text where evaluation data shows.
    first, second = corpus.model_ids
    page.goto(f"{server}/models/{first}/")
    expect(page.locator("table.metrics")).to_contain_text(f"{CORPUS[1]}/mean")
    expect(page.locator("table.metrics")).to_contain_text(CORPUS[2])
    page.goto(f"{server}/models/compare/?ids={first},{second}")
    expect(page.locator("main")).to_contain_text(f"{CORPUS[0]}/mean ({CORPUS[0]})")
    page.goto(f"{server}/traces/{corpus.trace_id}/")
    expect(page.locator("section.assessments")).to_contain_text(CORPUS[3])
    # A span's details, swapped into the trace page by htmx: the priced model's name.
    page.wait_for_selector("#waterfall[data-ready='1']")
    page.locator(".wf-row:not([hidden])", has_text="llm-1").click()
    panel = page.locator("#span-panel")
    expect(panel.locator(".span-facts")).to_contain_text(CORPUS[1])
    expect(page.locator(INJECTED)).to_have_count(0)
    assert dialogs == []
