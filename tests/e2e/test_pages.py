from __future__ import annotations

from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

from tracking.models import Experiment, LoggedModel, Span, Trace, TraceState

pytestmark = pytest.mark.e2e


@pytest.fixture
def logged(server) -> dict[str, object]:
    """One model version and one trace of it, with two spans."""
    experiment = Experiment.objects.create(name="support")
    model = LoggedModel.objects.create(
        experiment=experiment, name="support-agent", params={"temperature": "0.2"}
    )
    trace = Trace.objects.create(
        experiment=experiment,
        trace_id="tr-" + "ab" * 16,
        name="answer_question",
        state=TraceState.OK,
        request_time=datetime(2025, 6, 1, 12, 0, tzinfo=UTC),
        duration_ns=1_500_000_000,
        model_id=model.model_id,
        span_count=2,
        request_preview='{"question": "Where is my order?"}',
    )
    Span.objects.create(
        trace=trace,
        span_id="a" * 16,
        name="answer_question",
        span_type="AGENT",
        start_ns=0,
        end_ns=1_500_000_000,
        status="OK",
    )
    Span.objects.create(
        trace=trace,
        span_id="b" * 16,
        parent_span_id="a" * 16,
        name="search_orders",
        span_type="TOOL",
        start_ns=10,
        end_ns=900_000,
        status="OK",
    )
    return {"model": model, "trace": trace}


def test_home_shows_a_logged_model_and_trace(page, server, logged):
    page.goto(server + "/")

    assert page.locator("h1").inner_text() == "Home"
    models = page.locator("section", has=page.get_by_role("heading", name="Models"))
    assert "support-agent" in models.inner_text()
    traces = page.locator("section", has=page.get_by_role("heading", name="Recent traces"))
    assert "answer_question" in traces.inner_text()
    assert "1.50 s" in traces.inner_text()


def test_navigation_links_open_each_section(page, server):
    page.goto(server + "/")

    for label, heading, path in [
        ("Models", "Models", "/models/"),
        ("Traces", "Traces", "/traces/"),
        ("Playground", "Playground", "/playground/"),
    ]:
        page.get_by_role("navigation", name="Main").get_by_role("link", name=label).click()
        page.wait_for_url(server + path)
        assert page.locator("h1").inner_text() == heading
        current = page.locator('.nav-link[aria-current="page"]')
        assert current.inner_text() == label

    page.get_by_role("link", name="Spyglass").click()
    page.wait_for_url(server + "/")
    assert page.locator("h1").inner_text() == "Home"


def body_background(page) -> str:
    return page.evaluate("getComputedStyle(document.body).backgroundColor")


def test_theme_toggle_switches_and_remembers_the_theme(page, server):
    page.goto(server + "/")
    html = page.locator("html")
    light_background = body_background(page)
    assert html.get_attribute("data-theme") is None  # follows the (light) system preference

    page.get_by_role("button", name="Switch to dark theme").click()

    assert html.get_attribute("data-theme") == "dark"
    assert body_background(page) != light_background
    page.reload()
    assert html.get_attribute("data-theme") == "dark"  # stored in localStorage

    page.get_by_role("button", name="Switch to light theme").click()

    assert html.get_attribute("data-theme") == "light"
    assert body_background(page) == light_background


def test_a_trace_link_opens_the_trace_detail(page, server, logged):
    trace = logged["trace"]
    page.goto(server + "/traces/")

    page.get_by_role("link", name="answer_question").click()

    page.wait_for_url(f"{server}/traces/{trace.trace_id}/")
    assert page.locator("h1").inner_text() == "answer_question"
    page.wait_for_selector("#waterfall[data-ready='1']")
    spans = page.locator(".wf-row:not([hidden])")
    assert spans.count() == 2
    assert "search_orders" in spans.nth(1).inner_text()
    assert "type-tool" in spans.nth(1).get_attribute("class")
    page.get_by_role("link", name="support-agent").click()
    page.wait_for_url(f"{server}/models/{logged['model'].model_id}/")
    assert page.locator("h1").inner_text() == "support-agent"


def test_the_links_the_mlflow_client_prints_open_the_matching_pages(page, server, logged):
    trace, model = logged["trace"], logged["model"]
    experiment = trace.experiment_id
    run_id = "c" * 32
    Trace.objects.filter(pk=trace.pk).update(metadata={"mlflow.sourceRun": run_id})
    Trace.objects.create(
        experiment_id=experiment,
        trace_id="tr-" + "cd" * 16,
        name="another_run",
        state=TraceState.OK,
        request_time=datetime(2025, 6, 1, 13, 0, tzinfo=UTC),
    )

    page.goto(f"{server}/#/experiments/{experiment}/runs/{run_id}")  # "View run ... at:"
    page.wait_for_url(f"{server}/traces/?**")
    rows = page.locator("tbody tr")
    assert rows.count() == 1
    assert "answer_question" in rows.first.inner_text()

    page.goto(f"{server}/#/experiments/{experiment}")  # "View experiment at:"
    page.wait_for_url(f"{server}/traces/?experiment={experiment}")
    assert page.locator("tbody tr").count() == 2

    page.goto(f"{server}/#/experiments/{experiment}/models/{model.model_id}")
    page.wait_for_url(f"{server}/models/{model.model_id}/")
    assert page.locator("h1").inner_text() == "support-agent"

    page.goto(f"{server}/#/no-such-route")
    assert page.locator("h1").inner_text() == "Home"


def test_the_api_docs_render_without_a_policy_violation(page, server):
    page.goto(server + "/api/docs/")

    page.get_by_text("/api/v1/traces/", exact=True).first.wait_for()
    # The page fixture fails the test on any console error, CSP reports included.


def signed_in(page, server, username: str) -> None:
    """The browser carries a session of `username` (logins are off in these tests, so the
    login form is not the point here)."""
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client()
    client.force_login(User.objects.create_user(username))
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": server}]
    )


def test_a_new_token_is_copied_with_one_click(page, server):
    signed_in(page, server, "alice")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
    page.goto(f"{server}/settings/tokens/")
    card = page.locator("#new-token")
    padding = card.evaluate("el => parseFloat(getComputedStyle(el).paddingLeft)")
    assert padding >= 12

    page.get_by_label("Name").fill("ci-evals")
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#issued-token").inner_text().strip()
    page.get_by_role("button", name="Copy token").click()

    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == token
    page.locator("[data-copy-target=issued-env]").click()
    assert page.evaluate("navigator.clipboard.readText()").endswith(f"TRACKING_TOKEN={token}")


def test_with_logins_off_the_tokens_page_explains_instead_of_redirecting(page, server):
    page.goto(f"{server}/settings/tokens/")

    assert page.url == f"{server}/settings/tokens/"
    assert "Logins are off" in page.locator("#logins-off").inner_text()
