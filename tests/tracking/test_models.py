"""The QuerySet methods of tracking/models.py that the pages and the APIs read through."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.rows import T0, make_model, make_trace
from tracking.models import (
    Experiment,
    LoggedModel,
    Metric,
    ModelGrouping,
    ModelVersion,
    RegisteredModel,
    Trace,
    VersionShape,
)


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


# --- Version histories: shape, grouping by experiment and by registered model ---------------


def register(name: str, *models: LoggedModel, aliases: dict[str, int] | None = None) -> None:
    registered = RegisteredModel.objects.create(name=name, aliases=aliases or {})
    for number, model in enumerate(models, start=1):
        ModelVersion.objects.create(
            registered_model=registered, version=number, model_id=model.model_id
        )


@pytest.mark.parametrize(
    ("versions", "names", "registered", "grouping"),
    [
        (3, 3, 3, ModelGrouping.REGISTERED),  # `name="agent"` each time, all registered
        (3, 1, 3, ModelGrouping.REGISTERED),
        (3, 3, 1, ModelGrouping.EXPERIMENT),  # `agent-<commit>`: no name has two versions
        (3, 3, 0, ModelGrouping.EXPERIMENT),
        (3, 2, 0, ModelGrouping.NAME),  # names shared: today's history by name
        (1, 1, 0, ModelGrouping.NAME),
        (0, 0, 0, ModelGrouping.NAME),
    ],
)
def test_the_default_grouping_follows_how_versions_are_named(versions, names, registered, grouping):
    assert VersionShape(versions, names, registered).grouping == grouping


@pytest.mark.django_db
def test_shape_counts_versions_names_and_registered_versions_in_one_query(
    experiment, django_assert_num_queries
):
    a = make_model(experiment, "agent")
    make_model(experiment, "agent")
    make_model(experiment, "other")
    register("support_chat_agent", a)
    ModelVersion.objects.create(  # a version of no logged model counts for nothing
        registered_model=RegisteredModel.objects.create(name="files"), version=1, source="s3://x"
    )

    with django_assert_num_queries(1):
        shape = LoggedModel.objects.shape()

    assert shape == VersionShape(versions=3, names=2, registered=1)


@pytest.mark.django_db
def test_grouped_by_experiment_makes_one_history_of_commit_named_versions(
    experiment, django_assert_num_queries
):
    other = Experiment.objects.create(name="billing")
    for n, commit in enumerate(["aaa1111", "bbb2222", "ccc3333"]):
        make_model(experiment, f"agent-{commit}", created_at=T0 + timedelta(minutes=n))
    make_model(other, "billing-agent", created_at=T0 - timedelta(days=1))

    with django_assert_num_queries(2):
        groups, more = LoggedModel.objects.grouped_by_experiment(limit=5, per_group=2)

    assert not more
    assert [(g.name, g.key, g.version_count, g.hidden_versions) for g in groups] == [
        ("support", str(experiment.pk), 3, 1),
        ("billing", str(other.pk), 1, 0),
    ]
    assert [v.name for v in groups[0].versions] == ["agent-ccc3333", "agent-bbb2222"]
    assert [v.experiment_number for v in groups[0].versions] == [3, 2]  # the app's history
    assert [v.number for v in groups[0].versions] == [1, 1]  # each the first of its name


@pytest.mark.django_db
def test_grouped_by_registered_model_numbers_versions_as_the_registry_does(
    experiment, django_assert_num_queries
):
    first = make_model(experiment, "agent", created_at=T0)
    second = make_model(experiment, "agent", created_at=T0 + timedelta(minutes=1))
    third = make_model(experiment, "model", created_at=T0 + timedelta(minutes=2))
    register("support_chat_agent", first, second, third, aliases={"champion": 2})
    register("scratch", second)
    make_model(experiment, "unregistered")

    with django_assert_num_queries(3):
        groups, more = LoggedModel.objects.grouped_by_registered_model(limit=5, per_group=2)

    assert not more
    by_name = {g.name: g for g in groups}
    assert set(by_name) == {"support_chat_agent", "scratch"}
    support = by_name["support_chat_agent"]
    assert (support.version_count, support.hidden_versions, support.aliases) == (
        3, 1, {"champion": 2}
    )  # fmt: skip
    assert [(v.model_id, v.registry_version) for v in support.versions] == [
        (third.model_id, 3),
        (second.model_id, 2),
    ]
    assert [v.number for v in support.versions] == [1, 2]  # numbered by logged-model name too
    # The same logged model is a version of both, each group numbering it its own way.
    assert [(v.model_id, v.registry_version) for v in by_name["scratch"].versions] == [
        (second.model_id, 1)
    ]


@pytest.mark.django_db
def test_grouped_by_registered_model_lists_only_the_given_versions(experiment):
    shown, hidden = make_model(experiment, "agent"), make_model(experiment, "agent")
    register("support_chat_agent", shown, hidden)

    (group,) = LoggedModel.objects.exclude(pk=hidden.pk).grouped_by_registered_model(5, 5)[0]

    assert group.version_count == 1
    assert [v.model_id for v in group.versions] == [shown.model_id]


@pytest.mark.django_db
def test_referenced_resolves_names_aliases_and_version_numbers(experiment):
    first, second = make_model(experiment, "agent"), make_model(experiment, "agent")
    register("support_chat_agent", first, second, aliases={"champion": 1, "challenger": 2})
    register("a@b", second)
    ModelVersion.objects.create(  # no logged model: never matches a trace without one
        registered_model=RegisteredModel.objects.create(name="files"), version=1, model_id=""
    )

    def ids(*references):
        return sorted(
            ModelVersion.objects.referenced(*references).values_list("model_id", flat=True)
        )

    assert ids("support_chat_agent") == sorted([first.model_id, second.model_id])
    assert ids("support_chat_agent@champion") == [first.model_id]
    assert ids("models:/support_chat_agent@challenger") == [second.model_id]
    assert ids("support_chat_agent/2") == [second.model_id]
    assert ids("models:/support_chat_agent/1") == [first.model_id]
    assert ids("a@b") == [second.model_id]  # a name with @ is still a name
    assert ids("support_chat_agent@nobody", "support_chat_agent/9", "nobody", "files") == []
    assert ids("support_chat_agent/99999999999999999999", "support_chat_agent@it's\"$.x") == []
    assert ids() == []
