"""The config flattener and differ, and the compare page."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from tests.rows import T0, XSS, XSS_ESCAPED, make_model, make_trace
from tracking.compare import (
    MISSING,
    best_index,
    diff_rows,
    direction,
    flatten,
    git_commit_url,
    git_compare_url,
    same,
)
from tracking.models import Metric, TraceState

# --- flatten / diff (pure) ------------------------------------------------------------------


def test_flatten_turns_nested_dicts_and_lists_into_dotted_paths():
    config = {
        "llm": {"endpoint": "gpt-4o", "temperature": 0.2},
        "tools": ["lookup_order", {"name": "refund", "timeout": 3}],
        "empty": {},
        "none": [],
        "flag": None,
    }

    assert flatten(config) == {
        "empty": {},
        "flag": None,
        "llm.endpoint": "gpt-4o",
        "llm.temperature": 0.2,
        "none": [],
        "tools[0]": "lookup_order",
        "tools[1].name": "refund",
        "tools[1].timeout": 3,
    }


def test_flatten_of_nothing_is_empty():
    assert flatten({}) == {}
    assert flatten(None) == {}


def test_same_tells_types_apart():
    assert same(1, 1)
    assert not same(1, 1.0)
    assert not same(1, True)
    assert not same("1", 1)
    assert not same(None, MISSING)
    assert same(MISSING, MISSING)


def test_diff_marks_changed_missing_and_type_changed_values_against_the_first_column():
    a = flatten({"llm": {"temperature": 0.2, "max_tokens": 512}, "tools": ["a", "b"]})
    b = flatten({"llm": {"temperature": "0.2", "max_tokens": 512}, "tools": ["a"]})
    c = flatten({"llm": {"temperature": 0.2, "max_tokens": 1024, "top_p": 0.9}})

    rows = {row.key: row for row in diff_rows([a, b, c])}

    assert list(rows) == ["llm.max_tokens", "llm.temperature", "llm.top_p", "tools[0]", "tools[1]"]
    assert not rows["llm.temperature"].cells[0].changed
    assert [c.changed for c in rows["llm.temperature"].cells] == [False, True, False]
    assert rows["llm.temperature"].cells[1].text == "0.2"  # a string now, shown as it is
    assert rows["llm.temperature"].changed
    assert [c.changed for c in rows["llm.max_tokens"].cells] == [False, False, True]
    assert [c.missing for c in rows["llm.top_p"].cells] == [True, True, False]
    assert [c.missing for c in rows["tools[1]"].cells] == [False, True, True]
    assert rows["tools[0]"].cells[2].changed


def test_diff_of_identical_columns_has_no_changed_row():
    config = flatten({"a": 1, "b": {"c": [1, 2]}})

    rows = diff_rows([config, dict(config), dict(config), dict(config)])

    assert [row.changed for row in rows] == [False, False, False]


def test_direction_knows_latency_and_scores():
    assert direction("latency_p95") == -1
    assert direction("cost") == -1
    assert direction("error_rate") == -1
    assert direction("accuracy") == 1
    assert direction("faithfulness/v1") == 1
    assert direction("temperature") == 0


def test_best_index_marks_one_winner_only():
    assert best_index([0.7, 0.9, 0.8], 1) == 1
    assert best_index([120, 90, 100], -1) == 1
    assert best_index([0.9, 0.9], 1) is None  # a tie has no winner
    assert best_index([0.9, MISSING], 1) is None  # nothing to compare with
    assert best_index([0.1, 0.2], 0) is None
    assert best_index([True, 0.5, 0.2], 1) == 1  # booleans are not scores


def test_git_links_for_known_hosts():
    repo = "https://github.com/acme/agent.git"
    assert git_commit_url(repo, "abc") == "https://github.com/acme/agent/commit/abc"
    assert git_compare_url(repo, "abc", "def") == "https://github.com/acme/agent/compare/abc...def"
    assert git_compare_url("git@gitlab.com:acme/agent.git", "a", "b") == (
        "https://gitlab.com/acme/agent/-/compare/a...b"
    )
    assert git_compare_url(repo, "abc", "abc") == ""
    assert git_commit_url("javascript:alert(1)", "abc") == ""
    assert git_commit_url("", "abc") == ""


# --- /models/compare/ -----------------------------------------------------------------------


def versions(experiment, n: int):
    return [
        make_model(
            experiment,
            created_at=T0 + timedelta(hours=i),
            params={"temperature": f"0.{i}", "llm": "gpt-4o"},
            model_config={"llm": {"max_tokens": 512 * (i + 1), "endpoint": "gpt-4o"}},
            tags={
                "mlflow.source.git.commit": f"{i:040x}",
                "mlflow.source.git.repoURL": "https://github.com/acme/support-agent",
            },
        )
        for i in range(n)
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("n", [2, 3, 4])
def test_compare_shows_one_column_per_version_oldest_first(client, experiment, n):
    models = versions(experiment, n)
    ids = ",".join(m.model_id for m in reversed(models))

    response = client.get(f"/models/compare/?ids={ids}")

    assert response.status_code == 200
    assert [v.model_id for v in response.context["versions"]] == [m.model_id for m in models]
    sections = {s.title: {r.key: r for r in s.rows} for s in response.context["sections"]}
    assert sections["Params"]["temperature"].changed
    assert not sections["Params"]["llm"].changed
    assert sections["Config"]["llm.max_tokens"].changed
    assert [c.text for c in sections["Config"]["llm.max_tokens"].cells] == [
        str(512 * (i + 1)) for i in range(n)
    ]
    html = response.content.decode()
    assert html.count('class="compare-version"') == n
    compare = f"https://github.com/acme/support-agent/compare/{0:040x}...{1:040x}"
    assert compare in html


@pytest.mark.django_db
def test_compare_accepts_repeated_ids_as_the_list_form_sends_them(client, experiment):
    a, b = versions(experiment, 2)

    response = client.get(f"/models/compare/?ids={a.model_id}&ids={b.model_id}")

    assert response.status_code == 200
    assert len(response.context["versions"]) == 2


@pytest.mark.django_db
def test_compare_only_differences_hides_unchanged_rows(client, experiment):
    a, b = versions(experiment, 2)

    response = client.get(f"/models/compare/?ids={a.model_id},{b.model_id}&diff=1")

    sections = {s.title: s for s in response.context["sections"]}
    assert [r.key for r in sections["Params"].rows] == ["temperature"]
    assert sections["Params"].hidden == 1
    assert [r.key for r in sections["Config"].rows] == ["llm.max_tokens"]
    assert "1 unchanged row hidden" in response.content.decode()


@pytest.mark.django_db
def test_compare_htmx_request_gets_only_the_table(client, experiment):
    a, b = versions(experiment, 2)

    response = client.get(
        f"/models/compare/?ids={a.model_id},{b.model_id}&diff=1", headers={"HX-Request": "true"}
    )

    html = response.content.decode()
    assert html.lstrip().startswith('<div id="compare-body">')
    assert "<html" not in html
    assert response["Vary"] == "HX-Request"


@pytest.mark.django_db
def test_compare_marks_the_better_metric_and_trace_statistics(client, experiment):
    a, b = versions(experiment, 2)
    Metric.objects.create(logged_model=a, key="accuracy", value=0.7, timestamp_ms=1)
    Metric.objects.create(logged_model=b, key="accuracy", value=0.9, timestamp_ms=1)
    Metric.objects.create(
        logged_model=b, key="accuracy", value=0.8, timestamp_ms=1, dataset_name="eval"
    )
    for n in range(4):
        make_trace(experiment, n, model_id=a.model_id, duration_ns=(n + 1) * 1_000_000_000)
        make_trace(experiment, 10 + n, model_id=b.model_id, duration_ns=(n + 1) * 100_000_000)
    make_trace(experiment, 20, model_id=a.model_id, state=TraceState.ERROR, duration_ns=None)

    response = client.get(f"/models/compare/?ids={a.model_id},{b.model_id}")

    sections = {s.title: {r.key: r for r in s.rows} for s in response.context["sections"]}
    accuracy = sections["Metrics"]["accuracy"]
    assert [c.best for c in accuracy.cells] == [False, True]
    assert [c.missing for c in sections["Metrics"]["accuracy (eval)"].cells] == [True, False]
    stats = sections["Trace statistics"]
    assert [c.text for c in stats["Traces"].cells] == ["5", "4"]
    assert [c.text for c in stats["Error rate"].cells] == ["20.0 %", "0.0 %"]
    assert [c.best for c in stats["Error rate"].cells] == [False, True]
    assert [c.text for c in stats["Latency p50"].cells] == ["2.50 s", "250 ms"]
    assert [c.best for c in stats["Latency p95"].cells] == [False, True]
    html = response.content.decode()
    assert html.count("<svg viewBox") == 2  # one distribution per version


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("", 400, "Pick 2 to 4 versions"),
        ("?ids=m-1", 400, "Pick 2 to 4 versions"),
        ("?ids=a,b,c,d,e", 400, "Pick 2 to 4 versions"),
        ("?ids=m-00000000000000000000000000000000,nope", 404, "No such model version"),
        ("?ids=" + "x" * 5000 + ",y", 404, "No such model version"),
    ],
)
def test_compare_explains_bad_ids_inline(client, experiment, query, status, message):
    response = client.get(f"/models/compare/{query}")

    assert response.status_code == status
    assert message in response.content.decode()


@pytest.mark.django_db
def test_compare_with_one_known_and_one_unknown_id_names_the_unknown(client, experiment):
    (a,) = versions(experiment, 1)

    response = client.get(f"/models/compare/?ids={a.model_id},m-{XSS}")

    assert response.status_code == 404
    html = response.content.decode()
    assert XSS not in html
    assert f"m-{XSS_ESCAPED}" in html


@pytest.mark.django_db
def test_compare_renders_user_content_inert(client, experiment):
    a = make_model(
        experiment,
        name=XSS,
        params={XSS: XSS},
        model_config={XSS: {XSS: [XSS]}},
        tags={XSS: XSS, "mlflow.source.git.commit": XSS, "mlflow.source.git.repoURL": XSS},
    )
    b = make_model(experiment, name=XSS, created_at=T0, params={XSS: "other"})
    Metric.objects.create(logged_model=a, key=XSS, value=1, timestamp_ms=1, dataset_name=XSS)

    response = client.get(f"/models/compare/?ids={a.model_id},{b.model_id}")

    assert response.status_code == 200
    html = response.content.decode()
    assert XSS not in html
    assert XSS_ESCAPED in html


@pytest.mark.django_db
def test_compare_runs_a_fixed_number_of_queries(client, experiment, django_assert_max_num_queries):
    models = versions(experiment, 4)
    for i, model in enumerate(models):
        for n in range(5):
            make_trace(experiment, i * 10 + n, model_id=model.model_id, total_tokens=100 * n)
            Metric.objects.create(logged_model=model, key=f"m{n}", value=n, timestamp_ms=n)
    ids = ",".join(m.model_id for m in models)

    with django_assert_max_num_queries(6):
        response = client.get(f"/models/compare/?ids={ids}")

    assert response.status_code == 200


@pytest.mark.django_db
def test_compare_shows_a_version_whose_id_cannot_be_routed(client, experiment):
    a = make_model(experiment, model_id="m-odd/id")
    b = make_model(experiment)

    response = client.get(f"/models/compare/?ids={a.model_id},{b.model_id}")

    assert response.status_code == 200
    assert f'href="/models/{b.model_id}/traces/"' in response.content.decode()


@pytest.mark.django_db
def test_a_nan_metric_is_shown_and_never_the_better_value(client, experiment):
    a, b, c = versions(experiment, 3)
    for version, value in ((a, math.nan), (b, 0.9), (c, 0.7)):
        Metric.objects.create(logged_model=version, key="accuracy", value=value, timestamp_ms=1)

    response = client.get(f"/models/compare/?ids={a.model_id},{b.model_id},{c.model_id}")

    sections = {s.title: {r.key: r for r in s.rows} for s in response.context["sections"]}
    accuracy = sections["Metrics"]["accuracy"]
    assert [c.text for c in accuracy.cells] == ["NaN", "0.9", "0.7"]
    assert [c.best for c in accuracy.cells] == [False, True, False]
    for url in ("/models/", f"/models/{a.model_id}/"):
        assert client.get(url, {"cols": "1", "col": "metric:accuracy"}).status_code == 200
