"""tracking/charts.py: the geometry of the overview's charts (pure, no database)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tracking import charts, overview_charts

HOUR_MS = 3_600_000
START = datetime(2025, 6, 1, tzinfo=UTC)
BUCKETS = [START + timedelta(hours=i) for i in range(4)]


@dataclass
class S:
    key: str
    label: str
    values: list[float | None]


def _href(i: int, key: str) -> str:
    return f"/traces/?bucket={i}&key={key}"


def test_a_line_breaks_where_a_bucket_has_no_value():
    chart = charts.line_chart(BUCKETS, HOUR_MS, [S("m-1", "v1", [1, None, 2, 5])], str, _href)

    (line,) = chart.series
    assert line.path.count("M") == 2  # a new stroke after the gap, no point drawn at 0
    assert [m.href for m in line.marks] == [_href(0, "m-1"), _href(2, "m-1"), _href(3, "m-1")]
    assert line.marks[-1].y == charts.TOP  # the top value reaches the top of the plot
    assert line.marks[0].title == "v1 · Jun 1 00:00: 1"


def test_bars_stack_the_series_of_a_bucket():
    series = [S("a", "A", [2, 0]), S("b", "B", [3, None])]

    chart = charts.stacked_bars(BUCKETS[:2], HOUR_MS, series, str, _href)

    a, b = chart.series
    assert len(a.marks) == 1 and b.marks[0].y + b.marks[0].height == a.marks[0].y
    assert b.marks[0].y == charts.TOP  # 5 is the axis top
    assert not chart.empty
    assert chart.y_ticks[-1][1] == "5"


def test_an_all_empty_chart_is_empty():
    chart = charts.line_chart(BUCKETS, HOUR_MS, [S("a", "A", [None] * 4)], str, _href)

    assert chart.empty


def test_a_version_keeps_its_colour_across_charts():
    keys = ["m-1", "m-2", "other"]

    chart = charts.line_chart(
        BUCKETS, HOUR_MS, [S("other", "Other", [1] * 4)], str, _href, keys=keys
    )

    assert chart.series[0].css == "series-2"
    assert charts.css_class(charts.ALL, 0) == "series-all"


def test_axis_tops_are_round_numbers():
    assert [charts._nice_max(v) for v in (0, 0.003, 1, 7, 12, 340, 1001)] == [
        1.0,
        0.005,
        1,
        10,
        20,
        500,
        2000,
    ]


def test_buckets_are_labelled_in_the_display_time_zone(settings):
    settings.TIME_ZONE = "Europe/Paris"
    from django.utils import timezone

    with timezone.override("Europe/Paris"):
        assert charts.bucket_label(START, HOUR_MS) == "Jun 1 02:00"
        assert charts.bucket_label(START, 86_400_000) == "Jun 1"


def test_bucket_links_write_the_trace_list_query():
    scope = overview_charts.Scope(7, "")
    clauses = overview_charts.model_clauses("other", ["m-1", "", "other"], scope)

    assert clauses == ['model not in (m-1, "")']
    assert overview_charts.model_clauses(charts.ALL, ["m-1"], scope) == []
    assert overview_charts.model_clauses(charts.ALL, ["m-1"], overview_charts.Scope(7, "m-1")) == [
        "model = m-1"
    ]
    assert overview_charts.iso(START) == "2025-06-01T00:00:00Z"
    url = overview_charts.trace_list_url(scope, ["model = m-1"])
    assert url == "/traces/?experiment=7&q=model+%3D+m-1"


def test_bucket_widths_in_words():
    assert overview_charts.bucket_text(HOUR_MS) == "1 hour"
    assert overview_charts.bucket_text(3 * HOUR_MS) == "3 hours"
    assert overview_charts.bucket_text(86_400_000) == "1 day"
    assert overview_charts.bucket_text(900_000) == "15 min"


def test_sparkline_is_a_path_across_the_width():
    path = charts.sparkline([0, 2, None, 1], width=30, height=10)

    assert path.startswith("M0.0 9") and path.count("M") == 2


def test_count_axes_keep_their_half_steps():
    chart = charts.stacked_bars(
        BUCKETS[:1], HOUR_MS, [S("a", "A", [1])], overview_charts._count, _href
    )

    assert [label for _, label in chart.y_ticks] == ["0", "0.5", "1"]


def test_huge_and_infinite_values_are_drawn_at_the_top_of_a_bounded_axis():
    # A sum of absurd stored numbers (inf on SQLite, 1.5e308 from one value) overflowed the
    # axis (int(inf), int -> float) and 500'd the page.
    for value in (float("inf"), 1.5e308, float("nan")):
        assert charts._nice_max(value) <= charts.AXIS_MAX * 10
    line = charts.line_chart(
        BUCKETS, HOUR_MS, [S("m", "v", [1, float("inf"), 1.5e308, 2])], str, _href
    )
    assert line.series[0].marks[1].y == charts.TOP
    bars = charts.stacked_bars(
        BUCKETS, HOUR_MS, [S("a", "a", [1e308, 0, 0, 0]), S("b", "b", [1e308, 0, 0, 1])], str, _href
    )
    assert bars.series[0].marks and bars.series[1].marks
    assert "nan" not in charts.sparkline([1.0, float("inf"), 2.0])
