"""The QuerySet methods of tracking/models.py that the pages and the APIs read through."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.rows import T0, make_model, make_trace
from tracking.models import LoggedModel, Metric, Trace


@pytest.mark.django_db
def test_versions_are_numbered_per_name_even_when_filtered(experiment):
    for n in range(3):
        make_model(experiment, "a", created_at=T0 + timedelta(minutes=n))
    make_model(experiment, "b", created_at=T0)
    newest = LoggedModel.objects.filter(name="a").order_by("-created_at")[:1]

    numbered = LoggedModel.objects.filter(pk__in=newest).numbered()

    assert [v.number for v in numbered] == [3]
    assert [v.number for v in LoggedModel.objects.filter(name="b").numbered()] == [1]


@pytest.mark.django_db
def test_name_summaries_count_versions_and_point_at_the_newest(experiment):
    make_model(experiment, "a", created_at=T0)
    newest_a = make_model(experiment, "a", created_at=T0 + timedelta(minutes=5))
    b = make_model(experiment, "b", created_at=T0 + timedelta(minutes=1))

    summaries = list(LoggedModel.objects.name_summaries())

    assert [(s["name"], s["versions"], s["newest_model_id"]) for s in summaries] == [
        ("a", 2, newest_a.model_id),
        ("b", 1, b.model_id),
    ]


@pytest.mark.django_db
def test_grouped_keeps_the_newest_versions_of_the_newest_names(
    experiment, django_assert_num_queries
):
    for n in range(4):
        make_model(experiment, "a", created_at=T0 + timedelta(minutes=n))
    make_model(experiment, "b", created_at=T0 + timedelta(minutes=9))
    make_model(experiment, "c", created_at=T0 - timedelta(minutes=9))

    with django_assert_num_queries(2):
        groups, more = LoggedModel.objects.grouped(limit=2, per_name=2)

    assert more
    assert [(g.name, g.version_count, g.hidden_versions) for g in groups] == [
        ("b", 1, 0),
        ("a", 4, 2),
    ]
    assert [v.number for v in groups[1].versions] == [4, 3]


@pytest.mark.django_db
def test_name_traces_names_only_from_the_given_versions(experiment):
    shown, hidden = make_model(experiment, "shown"), make_model(experiment, "hidden")
    traces = [
        make_trace(experiment, 1, model_id=shown.model_id),
        make_trace(experiment, 2, model_id=hidden.model_id),
        make_trace(experiment, 3),
    ]

    LoggedModel.objects.exclude(pk=hidden.pk).name_traces(traces)

    assert [t.model_name for t in traces] == ["shown", "", ""]


@pytest.mark.django_db
def test_capped_count_says_when_there_are_more(experiment):
    for n in range(3):
        make_trace(experiment, n)

    assert Trace.objects.capped_count(cap=5) == (3, False)
    assert Trace.objects.capped_count(cap=2) == (2, True)


@pytest.mark.django_db
def test_for_list_defers_the_large_columns_unless_shown(experiment):
    make_trace(experiment, 1)
    make_trace(experiment, 2)

    plain = Trace.objects.for_list().first()
    with_tags = Trace.objects.for_list(shown=["tags"]).first()

    assert plain.trace_id == f"tr-{2:032x}"  # newest first
    assert plain.get_deferred_fields() == {"metadata", "tags", "response_preview"}
    assert with_tags.get_deferred_fields() == {"metadata", "response_preview"}


@pytest.mark.django_db
def test_latest_metrics_per_key_and_dataset(experiment):
    a, b = make_model(experiment), make_model(experiment)
    Metric.objects.create(logged_model=a, key="acc", value=0.1, timestamp_ms=1, step=0)
    Metric.objects.create(logged_model=a, key="acc", value=0.5, timestamp_ms=1, step=3)
    Metric.objects.create(logged_model=a, key="acc", value=0.4, timestamp_ms=9, step=1)
    Metric.objects.create(
        logged_model=a, key="acc", value=0.9, timestamp_ms=1, step=0, dataset_name="eval"
    )
    Metric.objects.create(logged_model=b, key="acc", value=0.7, timestamp_ms=1)

    latest = Metric.objects.latest_of_models([a.pk, b.pk])

    assert {k: m.value for k, m in latest[a.pk].items()} == {("acc", ""): 0.5, ("acc", "eval"): 0.9}
    assert latest[b.pk][("acc", "")].value == 0.7
