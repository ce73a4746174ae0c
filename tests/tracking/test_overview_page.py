"""The overview page (tracking/views/overview.py): ranges, scopes, bad input, escaping, the
bucket links (each one opens the trace list on exactly the traces its bucket counted) and
charts that carry classes, never colours."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from access.models import ExperimentGrant, Level
from tests.rows import XSS, XSS_ESCAPED, make_model, make_span, make_trace
from tests.xss import injected_markup
from tracking import charts, ingest, overview_charts, search
from tracking.models import Assessment, Experiment, LifecycleStage, Trace, TraceState

REPO = Path(__file__).resolve().parents[2]


def _ago(**delta) -> timezone.datetime:
    return timezone.now() - timedelta(**delta)


def _counted(mark: charts.Mark) -> int:
    """The number a bar's hover text shows: "<label> · <bucket>: 1,234"."""
    return int(mark.title.rsplit(": ", 1)[1].replace(",", ""))


def _shown_trace_ids(client, url: str) -> set[str]:
    ids: set[str] = set()
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content[:300]
        assert "error" not in response.context or not response.context["error"], url
        ids |= {t.trace_id for t in response.context["traces"]}
        older = response.context["older_query"]
        url = f"/traces/?{older}" if older else None
    return ids


@pytest.fixture
def seven_versions(experiment) -> list[str]:
    """Seven versions with 7, 6, ... 1 traces in the last day (top five + "other"), two
    traces with no version, and one trace of v0 three days ago."""
    ids = []
    n = 0
    for j in range(7):
        model = make_model(experiment, f"agent-{j}")
        ids.append(model.model_id)
        for k in range(7 - j):
            n += 1
            make_trace(
                experiment,
                n,
                model_id=model.model_id,
                request_time=_ago(hours=1 + (3 * k + j) % 20, minutes=10),
                duration_ns=(j + 1) * 100_000_000,
                state=TraceState.ERROR if k == 0 else TraceState.OK,
            )
    make_trace(experiment, 100, request_time=_ago(hours=2, minutes=20))
    make_trace(experiment, 101, request_time=_ago(hours=5, minutes=20))
    make_trace(experiment, 102, model_id=ids[0], request_time=_ago(days=3))
    return ids


@pytest.mark.django_db
def test_overview_switches_range(client, experiment, seven_versions):
    day = client.get(f"/overview/?experiment={experiment.pk}&range=24h")
    week = client.get(f"/overview/?experiment={experiment.pk}&range=7d")

    assert day.status_code == week.status_code == 200

    def total(response) -> int:
        return sum(
            _counted(m) for s in response.context["charts"]["traces"].series for m in s.marks
        )

    assert total(day) == Trace.objects.count() - 1  # not the one three days ago
    assert total(week) == Trace.objects.count()
    assert day.context["current_range"] == "24h"
    assert week.context["current_range"] == "7d"
    html = day.content.decode()
    assert 'class="range-link active" href="?experiment=' in html
    assert 'hx-get="?experiment=' in html and "range=7d" in html


@pytest.mark.django_db
def test_overview_range_switch_from_htmx_is_the_charts_partial(client, experiment):
    response = client.get(f"/overview/?experiment={experiment.pk}&range=7d", HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert html.lstrip().startswith('<div id="overview-charts"')
    assert "<h1>" not in html
    assert "HX-Request" in response["Vary"]


@pytest.mark.parametrize(
    "query",
    [
        "range=2y",
        "start=yesterday&end=now",
        "start=2025-06-02T00:00&end=2025-06-01T00:00",  # end before start
        "start=2025-06-01T00:00",  # no end
        # Outside 1970..9998: before the epoch metrics count from, or past datetime's end once
        # moved to UTC or a bucket is added.
        "start=0001-01-01T00:00%2B01:00&end=0001-01-02",
        "start=9999-12-31T00:00&end=9999-12-31T23:59-01:00",
        "start=0001-01-01&end=0001-01-02",
        "start=1969-12-31T00:00Z&end=1970-01-02Z",
        "start=9999-12-30&end=9999-12-31T23:59:59",
    ],
)
@pytest.mark.django_db
def test_overview_refuses_a_bad_range_with_400(client, query):
    response = client.get(f"/overview/?{query}")

    assert response.status_code == 400
    assert response.content  # says what is wrong


@pytest.mark.parametrize("experiment_param", ["abc", "999999", "-1"])
@pytest.mark.django_db
def test_overview_of_an_unknown_experiment_is_404(client, experiment_param):
    assert client.get(f"/overview/?experiment={experiment_param}").status_code == 404


@pytest.mark.django_db
def test_overview_scopes_to_an_experiment_and_a_version(client, experiment, seven_versions):
    other = Experiment.objects.create(name="elsewhere")
    make_trace(other, 500, request_time=_ago(hours=1))

    everywhere = client.get("/overview/?range=24h").context["data"]
    here = client.get(f"/overview/?experiment={experiment.pk}&range=24h").context["data"]
    one = client.get(
        f"/overview/?experiment={experiment.pk}&model={seven_versions[2]}&range=24h"
    ).context["data"]

    def traces(data) -> int:
        return sum(v or 0 for s in data.traces for v in s.values)

    assert traces(everywhere) == traces(here) + 1
    assert traces(one) == 5
    assert [key for key, _ in one.versions] == [seven_versions[2]]


@pytest.mark.django_db
def test_overview_hides_experiments_the_user_may_not_read(auth_on, charlie):
    secret = Experiment.objects.create(name="secret-lab")
    ExperimentGrant.objects.create(experiment=secret, level=Level.NONE)  # "everyone": none
    model = make_model(secret, "hidden-agent")
    make_trace(secret, 1, model_id=model.model_id, request_time=_ago(hours=1))
    client = Client()
    client.force_login(charlie)

    assert client.get(f"/overview/?experiment={secret.pk}").status_code == 404
    response = client.get("/overview/?range=24h")
    assert response.status_code == 200
    html = response.content.decode()
    assert model.model_id not in html
    assert "secret-lab" not in html
    assert sum(v or 0 for s in response.context["data"].traces for v in s.values) == 0


@pytest.mark.django_db
def test_a_model_of_an_unreadable_experiment_is_not_named(auth_on, charlie):
    # A readable trace names a model logged in an experiment charlie may not read.
    mine = Experiment.objects.create(name="mine")
    secret = Experiment.objects.create(name="secret")
    ExperimentGrant.objects.create(experiment=secret, level=Level.NONE)  # "everyone": none
    ExperimentGrant.objects.create(experiment=mine, user=charlie, level=Level.READ)
    model = make_model(secret, "SECRET-MODEL-NAME")
    make_trace(mine, 1, model_id=model.model_id, request_time=_ago(hours=3))
    client = Client()
    client.force_login(charlie)

    response = client.get("/overview/?range=24h")
    assert response.status_code == 200
    assert b"SECRET-MODEL-NAME" not in response.content


@pytest.mark.django_db
def test_all_experiments_leaves_deleted_ones_out(client, experiment):
    gone = Experiment.objects.create(name="gone", lifecycle_stage=LifecycleStage.DELETED)
    make_trace(gone, 1, request_time=_ago(hours=3))
    make_trace(experiment, 2, request_time=_ago(hours=3))

    data = client.get("/overview/?range=24h").context["data"]
    assert sum(v or 0 for s in data.traces for v in s.values) == 1


@pytest.mark.django_db
def test_each_bucket_link_lists_the_traces_the_bucket_counted(client, experiment, seven_versions):
    response = client.get(f"/overview/?experiment={experiment.pk}&range=24h")
    data, drawn = response.context["data"], response.context["charts"]
    listed = [key for key, _ in data.versions]
    assert len(listed) == 6 and listed[-1] == "other"

    seen: Counter[str] = Counter()
    for series in drawn["traces"].series:
        for mark in series.marks:
            shown = _shown_trace_ids(client, mark.href)
            assert len(shown) == _counted(mark), (series.key, mark.title, mark.href)
            versions = set(
                Trace.objects.filter(trace_id__in=shown).values_list("model_id", flat=True)
            )
            if series.key == "other":
                assert not versions & set(listed)
            else:
                assert versions == {series.key}
            seen.update(shown)
    in_range = set(
        Trace.objects.filter(request_time__gte=data.range.start).values_list("trace_id", flat=True)
    )
    assert set(seen) == in_range
    assert max(seen.values()) == 1  # no trace in two buckets

    # Latency points over all versions link to the whole bucket.
    for series in drawn["latency_all"].series:
        for mark in series.marks:
            shown = _shown_trace_ids(client, mark.href)
            assert shown and shown <= in_range
            assert f"experiment={experiment.pk}" in mark.href


@pytest.mark.django_db
def test_top_errors_and_tools_link_to_their_spans(client, experiment):
    trace = make_trace(experiment, 1, request_time=_ago(hours=1), state=TraceState.ERROR)
    make_span(trace, "a" * 16, 0, name="lookup_order", span_type="TOOL", status="ERROR")
    make_trace(experiment, 2, request_time=_ago(hours=1))

    response = client.get(f"/overview/?experiment={experiment.pk}&range=24h")

    drawn = response.context["charts"]
    (error_href,) = [h for g, h in drawn["errors"] if g.span_name == "lookup_order"]
    assert _shown_trace_ids(client, error_href) == {trace.trace_id}
    ((tool, tool_href, _),) = drawn["tools"]
    assert tool.name == "lookup_order" and tool.calls == 1
    assert _shown_trace_ids(client, tool_href) == {trace.trace_id}


@pytest.mark.django_db
def test_overview_escapes_version_assessment_and_span_names(client, experiment):
    model = make_model(experiment, XSS)
    trace = make_trace(
        experiment, 1, model_id=model.model_id, request_time=_ago(hours=1), state=TraceState.ERROR
    )
    make_span(trace, "b" * 16, 0, name=XSS, span_type="TOOL", status="ERROR")
    Assessment.objects.create(trace=trace, name=XSS, kind="feedback", value=True)

    response = client.get(f"/overview/?experiment={experiment.pk}&range=24h")

    html = response.content.decode()
    assert XSS not in html
    assert XSS_ESCAPED in html
    assert injected_markup(html) == []


@pytest.mark.django_db
def test_charts_carry_series_classes_not_colours(client, experiment, seven_versions):
    response = client.get(f"/overview/?experiment={experiment.pk}&range=24h")

    html = response.content.decode()
    svgs = re.findall(r"<svg viewBox=.*?</svg>", html, re.S)
    assert len(svgs) >= 6
    for svg in svgs:
        assert not re.search(r'\b(fill|stroke|color|style)="', svg), svg[:200]
        assert "#" not in re.sub(r'href="[^"]*"', "", svg)
    assert 'class="chart-series series-0"' in html
    assert 'class="chart-series series-5"' in html  # "other"
    # Every series colour is defined for the light theme, the dark theme and dark by default.
    css = (REPO / "static/css/overview.css").read_text()
    blocks = re.findall(r"(:root[^{]*|\[data-theme=\"dark\"\])\s*\{([^}]*)\}", css)
    for selector in (":root ", '[data-theme="dark"]', ":root:not([data-theme]) "):
        body = next(b for s, b in blocks if s == selector)
        assert all(f"--series-{i}:" in body for i in range(charts.PALETTE)), selector
    assert "/css/overview.css" in html


@pytest.mark.django_db
def test_an_empty_overview_says_so(client):
    response = client.get("/overview/")

    assert response.status_code == 200
    assert "No data in this range." in response.content.decode()


@pytest.mark.django_db
def test_overview_queries_do_not_grow_with_versions(client, experiment, seven_versions):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    url = f"/overview/?experiment={experiment.pk}&range=24h"
    client.get(url)  # the first read brings the rollups up to date
    with CaptureQueriesContext(connection) as many:
        client.get(url)
    with CaptureQueriesContext(connection) as one:
        client.get(url + f"&model={seven_versions[0]}")
    assert len(many) <= len(one) + 1


@pytest.mark.django_db
def test_nav_links_to_the_overview(client):
    assert 'href="/overview/"' in client.get("/").content.decode()


# --- The home page's strip ------------------------------------------------------------------


@pytest.mark.django_db
def test_home_strip_shows_the_most_active_experiment_of_the_last_day(client, experiment):
    quiet = Experiment.objects.create(name="quiet")
    make_trace(quiet, 1, request_time=_ago(hours=2))
    for n in range(2, 6):  # last hour's three OK traces and an error, at 100 ms to 400 ms
        make_trace(
            experiment,
            n,
            request_time=_ago(minutes=10 * n),
            duration_ns=(n - 1) * 100_000_000,
            state=TraceState.ERROR if n == 2 else TraceState.OK,
            cost=0.25,
        )
    make_trace(experiment, 9, request_time=_ago(days=2))  # outside the day

    response = client.get("/")

    strip = response.context["strip"]
    assert strip.experiment == experiment
    assert strip.traces == 4
    assert strip.error_rate == pytest.approx(0.25)
    assert strip.cost == pytest.approx(1.0)
    assert strip.p95_ms == pytest.approx(385, rel=0.05)  # 100..400 ms, interpolated
    html = response.content.decode()
    assert f'href="/overview/?experiment={experiment.pk}&amp;range=24h"' in html
    assert 'class="sparkline"' in html and '<path d="M' in html


@pytest.mark.django_db
def test_home_strip_is_absent_without_recent_traces(client, experiment):
    make_trace(experiment, 1, request_time=_ago(days=3))

    response = client.get("/")

    assert response.context["strip"] is None
    assert "overview-strip" not in response.content.decode()


@pytest.mark.django_db
def test_a_custom_range_reads_and_writes_utc_whatever_the_display_zone(
    client, settings, experiment
):
    settings.TIME_ZONE = "Asia/Tokyo"
    make_trace(experiment, 1, request_time=timezone.datetime(2025, 6, 1, 10, 30, tzinfo=UTC))

    response = client.get(
        f"/overview/?experiment={experiment.pk}&start=2025-06-01T00:00&end=2025-06-02T00:00"
    )

    assert response.status_code == 200
    assert response.context["current_range"] == "custom"
    html = response.content.decode()
    assert 'name="start" value="2025-06-01T00:00"' in html
    assert 'name="end" value="2025-06-02T00:00"' in html
    (mark,) = [m for s in response.context["charts"]["traces"].series for m in s.marks]
    assert "time+%3E%3D+2025-06-01T10%3A00%3A00Z" in mark.href  # the UTC hour, in UTC
    assert "Jun 1 19:00" in mark.title  # shown in Tokyo time


@pytest.mark.django_db
def test_the_demo_data_fills_every_section_of_the_default_overview(client):
    from tests.tracking.test_demo import load_demo

    load_demo()

    response = client.get("/overview/")

    assert response.status_code == 200
    drawn = response.context["charts"]
    for name in (
        "traces",
        "sessions",
        "latency_all",
        "latency_p95",
        "error_rate",
        "tokens",
        "cost",
    ):
        assert not drawn[name].empty, name
    assert len(response.context["data"].versions) == 3  # v1, v2, v3 of support-agent
    assert drawn["errors"] and drawn["tools"] and drawn["quality"]
    assert "No data in this range." not in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("values", [[1.5e308], [1e308, 1e308], [1e300, -1e300, 1e299]])
def test_huge_assessment_values_do_not_break_the_overview(client, experiment, values):
    trace = make_trace(experiment, 1, request_time=_ago(hours=3))
    for n, value in enumerate(values):
        Assessment.objects.create(
            trace=trace, name="score", kind="FEEDBACK", value=value, assessment_id=f"a-{n}"
        )

    response = client.get(f"/overview/?experiment={experiment.pk}&range=24h")
    assert response.status_code == 200
    assert response.context["data"].quality == []  # out of bounds: left out, as non-numbers


@pytest.mark.django_db
def test_huge_trace_costs_sent_by_a_client_do_not_break_the_overview_or_home(client, experiment):
    moment = _ago(hours=3)
    infos = [
        ingest.TraceInfo(
            f"tr-{n:032x}",
            experiment.pk,
            "OK",
            moment,
            1_000_000,
            metadata={"mlflow.trace.cost": json.dumps({"total_cost": 1e308})},
        )
        for n in range(2)
    ]
    ingest.store(infos)

    assert list(Trace.objects.values_list("cost", flat=True)) == [None, None]
    assert client.get(f"/overview/?experiment={experiment.pk}&range=24h").status_code == 200
    assert client.get("/").status_code == 200


@pytest.mark.django_db
def test_huge_trace_costs_stored_before_the_bound_are_left_out_of_the_sums(client, experiment):
    for n in range(2):
        make_trace(experiment, n, request_time=_ago(hours=3), cost=1e308)
    make_trace(experiment, 3, request_time=_ago(hours=3), cost=0.5)

    response = client.get(f"/overview/?experiment={experiment.pk}&range=24h")
    assert response.status_code == 200
    assert sum(v or 0 for s in response.context["data"].cost for v in s.values) == 0.5
    assert client.get("/").status_code == 200


@pytest.mark.django_db
def test_a_bucket_link_keeps_the_milliseconds_of_the_range(experiment):
    # A preset range starts at now's millisecond: cut to the second, its first bucket's link
    # listed traces of the range's first second that the bucket did not count.
    start = timezone.datetime(2025, 6, 1, 12, 0, 0, 500_000, tzinfo=UTC)
    make_trace(experiment, 1, request_time=start - timedelta(milliseconds=400))
    inside = make_trace(experiment, 2, request_time=start + timedelta(milliseconds=100))
    clauses = overview_charts.time_clauses(start, start + timedelta(seconds=1))

    assert clauses[0] == "time >= 2025-06-01T12:00:00.500Z"
    listed = Trace.objects.filter(search.compile_query(" and ".join(clauses)))
    assert list(listed) == [inside]
