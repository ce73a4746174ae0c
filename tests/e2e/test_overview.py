"""The overview in Chromium: open it, switch the range (htmx swaps the charts and pushes the
URL), click a latency point of one version and land on the trace list showing exactly that
bucket's traces of that version."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tracking.models import Experiment, LoggedModel, Trace

pytestmark = pytest.mark.e2e


@pytest.fixture
def versions(server) -> dict[str, object]:
    experiment = Experiment.objects.create(name="support")
    v1 = LoggedModel.objects.create(experiment=experiment, name="agent-v1")
    v2 = LoggedModel.objects.create(experiment=experiment, name="agent-v2")
    # Three v1 traces in one UTC hour three hours ago, v2 an hour later, and one v1 trace
    # three days ago (in the 7-day range, not in the 24-hour one).
    hour = (timezone.now() - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    for n, (model, at) in enumerate(
        [
            (v1, hour + timedelta(minutes=5)),
            (v1, hour + timedelta(minutes=20)),
            (v1, hour + timedelta(minutes=40)),
            (v2, hour + timedelta(hours=1, minutes=5)),
            (v1, hour - timedelta(days=3)),
        ]
    ):
        Trace.objects.create(
            experiment=experiment,
            trace_id=f"tr-{n:032x}",
            name=f"answer-{n}",
            state="OK",
            request_time=at,
            duration_ns=(n + 1) * 200_000_000,
            model_id=model.model_id,
        )
    return {"experiment": experiment, "v1": v1, "v2": v2}


def test_switch_range_then_open_a_latency_bucket(page, server, versions):
    experiment, v1 = versions["experiment"], versions["v1"]
    page.goto(f"{server}/overview/?experiment={experiment.pk}&range=7d")
    expect(page.locator(".range-link.active")).to_have_text("7d")
    expect(page.locator(".version-legend")).to_contain_text("agent-v1")
    v1_points = page.locator(f'#chart-latency-p95 g[data-series="{v1.model_id}"] a')
    expect(v1_points).to_have_count(2)  # this week: three days ago and three hours ago

    page.locator(".range-link", has_text="24h").click()

    page.wait_for_url(re.compile(r"range=24h"))
    expect(page.locator(".range-link.active")).to_have_text("24h")
    expect(page.locator(".overview-scope-line")).to_contain_text("buckets of 1 hour")
    expect(v1_points).to_have_count(1)  # the old trace left the range
    title = v1_points.first.locator("title")
    expect(title).to_contain_text("agent-v1")

    v1_points.first.click()

    page.wait_for_url(re.compile(r"/traces/\?"))
    expect(page.get_by_label("Filter query")).to_have_value(re.compile(rf"model = {v1.model_id}"))
    rows = page.locator("#trace-list tbody a.trace-link")
    expect(rows).to_have_count(3)
    assert sorted(rows.all_inner_texts()) == ["answer-0", "answer-1", "answer-2"]


def test_charts_follow_the_theme(page, server, versions):
    page.goto(f"{server}/overview/?experiment={versions['experiment'].pk}&range=24h")
    bar = page.locator("#chart-traces rect").first
    line = page.locator("#chart-latency path").first

    def colours() -> tuple[str, str]:
        return (
            bar.evaluate("e => getComputedStyle(e).fill"),
            line.evaluate("e => getComputedStyle(e).stroke"),
        )

    light = colours()
    page.locator("[data-theme-toggle]").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    dark = colours()

    assert "none" not in light + dark
    assert light[0] != dark[0] and light[1] != dark[1]
