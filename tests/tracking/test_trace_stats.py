"""Trace statistics computed by the database, against hand-computed values."""

from __future__ import annotations

import pytest

from tests.rows import make_model, make_trace
from tracking import svg
from tracking.models import TraceState
from tracking.trace_stats import rank_offsets, trace_counts, trace_stats

MS = 1_000_000


def test_rank_offsets_interpolate_like_percentile_cont():
    assert rank_offsets(10, 0.5) == (4, 5, pytest.approx(0.5))
    assert rank_offsets(1, 0.99) == (0, 0, 0)
    low, high, fraction = rank_offsets(101, 0.95)
    assert (low, high, fraction) == (95, 96, pytest.approx(0.0))


@pytest.mark.django_db
def test_percentiles_match_a_hand_computed_set(experiment):
    model = make_model(experiment)
    # 10 durations, deliberately out of order: 10, 20, ..., 100 ms.
    for n, ms in enumerate([70, 10, 100, 40, 20, 90, 30, 60, 50, 80]):
        make_trace(experiment, n, model_id=model.model_id, duration_ns=ms * MS)

    stats = trace_stats([model.model_id])[model.model_id]

    # percentile_cont: position q*(n-1) between sorted values, linearly interpolated.
    assert stats.p50 == pytest.approx(55 * MS)  # between 50 and 60 at 0.5
    assert stats.p95 == pytest.approx(95.5 * MS)  # 8.55 -> 90 + 0.55 * 10
    assert stats.p99 == pytest.approx(99.1 * MS)  # 8.91 -> 90 + 0.91 * 10
    assert stats.count == 10
    assert stats.max_ns == 100 * MS


@pytest.mark.django_db
def test_stats_count_errors_tokens_and_skip_unfinished_traces_in_percentiles(experiment):
    model = make_model(experiment)
    make_trace(experiment, 1, model_id=model.model_id, duration_ns=10 * MS, total_tokens=100)
    make_trace(experiment, 2, model_id=model.model_id, duration_ns=30 * MS, total_tokens=300)
    make_trace(
        experiment, 3, model_id=model.model_id, state=TraceState.ERROR, duration_ns=20 * MS,
        total_tokens=None,
    )  # fmt: skip
    make_trace(
        experiment, 4, model_id=model.model_id, state=TraceState.IN_PROGRESS, duration_ns=None,
        total_tokens=None,
    )  # fmt: skip

    stats = trace_stats([model.model_id])[model.model_id]

    assert (stats.count, stats.errors, stats.timed) == (4, 1, 3)
    assert stats.error_rate == 0.25
    assert stats.avg_tokens == pytest.approx(200)  # traces without a count are left out
    assert stats.p50 == pytest.approx(20 * MS)
    assert sum(stats.histogram) == 3


@pytest.mark.django_db
def test_stats_of_several_models_come_apart_and_share_a_histogram_scale(experiment):
    fast, slow, idle = make_model(experiment), make_model(experiment), make_model(experiment)
    for n in range(5):
        make_trace(experiment, n, model_id=fast.model_id, duration_ns=(n + 1) * MS)
        make_trace(experiment, 10 + n, model_id=slow.model_id, duration_ns=(n + 1) * 100 * MS)

    stats = trace_stats([fast.model_id, slow.model_id, idle.model_id])

    assert stats[fast.model_id].p50 == pytest.approx(3 * MS)
    assert stats[slow.model_id].p50 == pytest.approx(300 * MS)
    assert stats[idle.model_id].count == 0 and stats[idle.model_id].p50 is None
    assert stats[fast.model_id].bucket_ns == stats[slow.model_id].bucket_ns
    assert stats[fast.model_id].histogram[0] == 5  # all fast traces in the first bucket
    assert stats[slow.model_id].histogram[-1] >= 1  # the slowest lands in the last bucket
    assert sum(stats[slow.model_id].histogram) == 5


@pytest.mark.django_db
def test_stats_with_no_ids_or_no_traces(experiment, django_assert_num_queries):
    model = make_model(experiment)
    with django_assert_num_queries(0):
        assert trace_stats([]) == {}
    with django_assert_num_queries(1):
        stats = trace_stats([model.model_id])
    assert stats[model.model_id].count == 0 and stats[model.model_id].histogram == []


@pytest.mark.django_db
def test_stats_take_three_queries_whatever_the_number_of_models(
    experiment, django_assert_num_queries
):
    models = [make_model(experiment) for _ in range(4)]
    for i, model in enumerate(models):
        for n in range(6):
            make_trace(experiment, i * 10 + n, model_id=model.model_id, duration_ns=n * MS + 1)

    with django_assert_num_queries(3):
        stats = trace_stats(m.model_id for m in models)

    assert all(s.count == 6 for s in stats.values())


@pytest.mark.django_db
def test_trace_counts_count_errors_per_model(experiment):
    model = make_model(experiment)
    make_trace(experiment, 1, model_id=model.model_id)
    make_trace(experiment, 2, model_id=model.model_id, state=TraceState.ERROR)

    counts = trace_counts([model.model_id, "m-unknown"])

    assert (counts[model.model_id].count, counts[model.model_id].errors) == (2, 1)
    assert "m-unknown" not in counts


def test_histogram_geometry_scales_bars_to_the_tallest():
    chart = svg.histogram([0, 5, 10, 2], 1_000_000, width=100, height=50)

    assert [bar.height for bar in chart.bars] == [0, 25.0, 50.0, 10.0]
    assert [bar.y for bar in chart.bars] == [50, 25.0, 0.0, 40.0]
    assert chart.bars[1].x == 25.0
    assert chart.bars[1].label == "1.00 ms to 2.00 ms: 5 traces"
    assert chart.bars[3].label.startswith("≥ 3.00 ms")
    assert chart.total == 17
