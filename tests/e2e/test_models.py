"""The model pages in a real browser: pick two versions, compare them, show only the
differences, and follow a version to its traces and artifacts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from tracking.models import (
    Experiment,
    LoggedModel,
    Metric,
    ModelVersion,
    RegisteredModel,
    Trace,
    TraceState,
)

pytestmark = pytest.mark.e2e

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def versions(server) -> list[LoggedModel]:
    experiment = Experiment.objects.create(name="support")
    made = []
    for i, (temperature, max_tokens) in enumerate([("0.2", 512), ("0.4", 768)]):
        model = LoggedModel.objects.create(
            experiment=experiment,
            name="support-agent",
            created_at=T0 + timedelta(days=i),
            status="LOGGED_MODEL_READY",
            params={"temperature": temperature, "llm": "gpt-4o-mini"},
            model_config={"llm": {"endpoint": "gpt-4o-mini", "max_tokens": max_tokens}},
            tags={
                "mlflow.source.git.commit": f"{i + 1:040x}",
                "mlflow.source.git.repoURL": "https://github.com/acme/support-agent",
            },
        )
        Metric.objects.create(
            logged_model=model, key="accuracy", value=0.7 + i / 10, timestamp_ms=1
        )
        for n in range(6):
            Trace.objects.create(
                experiment=experiment,
                trace_id=f"tr-{i:02x}{n:030x}",
                name=f"answer v{i + 1} #{n}",
                state=TraceState.ERROR if n == 0 and i == 0 else TraceState.OK,
                request_time=T0 + timedelta(days=i, minutes=n),
                duration_ns=(n + 1) * (300 - 100 * i) * 1_000_000,
                total_tokens=100 * (n + 1),
                model_id=model.model_id,
            )
        made.append(model)
    return made


def test_compare_two_versions_from_the_list(page, server, versions):
    old, new = versions
    page.goto(server + "/models/")
    compare = page.get_by_role("button", name="Compare selected")
    assert compare.is_disabled()  # models.js: 2 to 4 versions

    page.get_by_label("Compare v1 of support-agent").check()
    page.get_by_label("Compare v2 of support-agent").check()
    assert page.locator("[data-compare-count]").inner_text() == "2 selected"
    compare.click()

    page.wait_for_url("**/models/compare/?ids=*")
    assert page.locator("h1").inner_text() == "Compare versions"
    assert page.locator("th.compare-version").count() == 2
    table = page.locator("table.compare")
    assert "llm.max_tokens" in table.inner_text()
    assert (
        page.locator("tr.row-changed", has_text="llm.max_tokens").locator(".cell-changed").count()
        == 1
    )
    assert page.locator("tr", has_text="Latency p50").locator(".cell-best").count() == 1
    assert page.locator(".histogram svg").count() == 2
    assert page.locator("tr.row-same", has_text="llm.endpoint").count() == 1

    page.get_by_role("switch", name="Only differences").click()

    page.wait_for_url("**diff=1")
    assert page.locator("tr.row-same", has_text="llm.endpoint").count() == 0
    assert page.locator("tr.row-changed", has_text="llm.max_tokens").count() == 1
    assert page.get_by_role("switch").get_attribute("aria-checked") == "true"
    page.reload()  # the URL is the state: shareable
    assert page.locator("tr.row-same", has_text="llm.endpoint").count() == 0

    page.locator("th.compare-version").nth(1).get_by_role("link", name="traces").click()
    page.wait_for_url(f"{server}/models/{new.model_id}/traces/")
    assert "support-agent" in page.locator("h1").inner_text()
    assert page.locator(".stat", has_text="Traces").locator(".stat-value").inner_text() == "6"
    assert page.locator(".histogram rect").count() > 0
    assert "answer v2 #5" in page.locator("table.traces").inner_text()

    page.locator(".model-tabs").get_by_role("link", name="Artifacts").click()
    page.wait_for_url(f"{server}/models/{new.model_id}/artifacts/")
    assert "No artifacts stored for this version" in page.locator("main").inner_text()
    assert page.locator(".breadcrumbs").inner_text().endswith("/ v2")
    assert page.locator(".page-header .version-tag").inner_text() == "v2"

    page.locator(".model-tabs").get_by_role("link", name="Overview").click()
    page.wait_for_url(f"{server}/models/{new.model_id}/")
    assert "max_tokens" in page.locator(".config-card").inner_text()
    assert old.model_id in page.locator(".version-list").inner_text()


def test_compare_shows_the_versions_answers_side_by_side(page, server, versions):
    old, new = versions
    experiment = old.experiment
    questions = ["Where is my order?", "Can I get a refund?"]
    for i, model in enumerate(versions):
        for n, question in enumerate(questions):
            # The old version logged through OTLP (the messages' JSON), the new one through the
            # playground (the text): the same question either way.
            request = json.dumps([{"role": "user", "content": question}]) if i == 0 else question
            Trace.objects.create(
                experiment=experiment,
                trace_id=f"tr-{i + 10:02x}{n:030x}",
                name="playground",
                state=TraceState.OK,
                request_time=T0 + timedelta(days=3, minutes=10 * n + i),
                duration_ns=(i + 1) * 1_000_000_000,
                model_id=model.model_id,
                request_preview=request,
                response_preview="Within 30 days." if n == 1 else f"Answer of v{i + 1}.",
            )
    page.goto(server + "/models/")
    shown = (
        page.get_by_title(old.model_id).inner_text(),
        page.get_by_title(new.model_id).inner_text(),
    )
    assert shown[0] != old.model_id  # the list shows short ids: compare takes them

    page.goto(f"{server}/models/compare/?ids={shown[0]},{shown[1]}")

    rows = page.locator("tr.answer-row")
    expect(rows).to_have_count(2)  # the answers arrive as their own fragment, after the page
    first = rows.nth(0)
    assert first.locator("th").inner_text() == "Can I get a refund?"  # most recently asked
    assert first.locator("td").all_inner_texts()[0].startswith("Within 30 days.")
    assert "row-same" in first.get_attribute("class")
    second = rows.nth(1)
    cells = second.locator("td.answer")
    assert cells.nth(0).locator(".answer-text").inner_text() == "Answer of v1."
    assert cells.nth(1).locator(".answer-text").inner_text() == "Answer of v2."
    assert "cell-changed" in cells.nth(1).get_attribute("class")
    assert "2.00 s" in cells.nth(1).inner_text()
    commit = page.locator("tr", has=page.locator("th", has_text="git commit"))
    assert "row-changed" in commit.get_attribute("class")
    assert commit.locator("td.cell-changed").count() == 1

    cells.nth(1).get_by_role("link", name="trace", exact=True).click()

    page.wait_for_url(f"{server}/traces/tr-{11:02x}{0:030x}/")


def test_model_list_param_columns_fit_their_card(page, server, versions):
    long = "You are a helpful support agent who answers questions about orders. " * 3
    for model in versions:
        model.params = {
            **model.params,
            "system_prompt": long,
            "retriever_endpoint_url": "https://retriever.example.com/" + "a-long-path/" * 6,
        }
        model.save()
    other = LoggedModel.objects.create(
        experiment=versions[0].experiment, name="router", params={"routes": "3"}
    )
    page.set_viewport_size({"width": 1100, "height": 800})

    page.goto(server + "/models/?cols=1&col=param:system_prompt&col=param:retriever_endpoint_url")

    for wrap in page.locator(".model-group .table-wrap").all():
        assert wrap.evaluate("e => e.scrollWidth <= e.clientWidth")
    router = page.locator("section.model-group", has_text=other.name)
    assert "system_prompt" not in router.locator("thead").inner_text()


def test_group_by_switches_between_registered_model_experiment_and_name(page, server):
    experiment = Experiment.objects.create(name="customer-support")
    for i, commit in enumerate(["aaa1111", "bbb2222"]):
        LoggedModel.objects.create(
            experiment=experiment,
            name=f"customer_support_agent-{commit}",
            created_at=T0 + timedelta(days=i),
            tags={"mlflow.source.git.commit": commit + "0" * 33},
        )
    registered = RegisteredModel.objects.create(name="support_chat_agent", aliases={"champion": 1})
    ModelVersion.objects.create(
        registered_model=registered,
        version=1,
        model_id=LoggedModel.objects.get(name="customer_support_agent-bbb2222").model_id,
    )

    page.goto(server + "/models/")
    grouping = page.get_by_role("navigation", name="Group versions by")
    assert "chosen because each logged-model name has one version" in grouping.inner_text()
    assert page.get_by_role("heading", level=2).all_inner_texts() == ["customer-support"]
    assert "bbb2222" in page.locator("tbody tr").first.inner_text()

    grouping.get_by_role("link", name="Registered model").click()
    page.wait_for_url("**/models/?by=registered")
    assert page.get_by_role("heading", level=2).all_inner_texts() == ["support_chat_agent"]
    assert "@champion → v1" in page.locator(".model-group-header").inner_text()
    assert (
        grouping.get_by_role("link", name="Registered model").get_attribute("aria-current")
        == "true"
    )

    page.get_by_label("Search models").fill("model = 'support_chat_agent@champion'")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/models/?q=*")
    assert "by=registered" in page.url  # the search keeps the grouping

    grouping.get_by_role("link", name="Logged-model name").click()
    page.wait_for_url("**/models/?by=name*")
    assert page.get_by_role("heading", level=2).all_inner_texts() == [
        "customer_support_agent-bbb2222"
    ]


def test_a_versions_description_is_written_on_its_page_and_shown_in_the_list(
    page, server, versions
):
    old, _ = versions
    page.goto(f"{server}/models/{old.model_id}/")
    assert "No description." in page.locator("#description").inner_text()

    page.locator("#description summary").click()
    page.get_by_label("Description (markdown)").fill(
        "Retrieval **top 5**.\n\n<script>window.pwned = 1</script>"
    )
    page.locator("#description").get_by_role("button", name="Save").click()

    # htmx swapped the section: rendered markdown, the script inert, nothing reloaded.
    page.locator("#description .description-text strong").wait_for()
    assert page.locator("#description .description-text strong").inner_text() == "top 5"
    assert page.evaluate("() => window.pwned") is None
    old.refresh_from_db()
    assert old.tags["mlflow.note.content"].startswith("Retrieval **top 5**.")
    page.goto(f"{server}/models/?by=name")
    excerpt = page.locator(".description-excerpt").first
    assert excerpt.inner_text().startswith("Retrieval top 5.")
