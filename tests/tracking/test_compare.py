"""The config flattener and differ, and the compare page."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

import pytest

from access.models import ExperimentGrant, Level
from tests.rows import T0, XSS, XSS_ESCAPED, make_model, make_trace
from tracking.compare import (
    MISSING,
    best_index,
    diff_rows,
    direction,
    flatten,
    git_commit_url,
    git_compare_url,
    match_answers,
    request_key,
    same,
)
from tracking.models import CANCELLED_TAG, Experiment, Metric, TraceState
from tracking.views import model_compare

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


# --- answers (pure) -------------------------------------------------------------------------


@dataclass
class Answered:
    trace_id: str
    request_preview: str
    response_preview: str
    request_time: datetime
    state: str = "OK"
    duration_ns: int | None = 1_000_000
    cancelled: bool = False


def answered(n: int, request: str, answer: str, **fields) -> Answered:
    return Answered(f"tr-{n}", request, answer, T0 + timedelta(minutes=n), **fields)


def chat_request(text: str) -> str:
    return json.dumps([{"role": "user", "content": text, "refusal": None}])


def test_a_request_is_the_same_whichever_client_logged_it():
    # The playground stores the text, MLflow's client extracts it, OTLP sends the messages.
    same_question = {
        request_key("Where is my order?"),
        request_key(" Where is\nmy order? "),
        request_key(chat_request("Where is my order?")),
        request_key(json.dumps({"messages": [{"role": "user", "content": "Where is my order?"}]})),
        request_key(json.dumps({"input": "Where is my order?"})),
    }
    assert same_question == {"Where is my order?"}
    assert request_key('{"b": 1, "a": 2}') == request_key('{"a": 2,  "b": 1}')
    assert request_key('{"a": 1}') != request_key('{"a": 2}')
    assert request_key("") == ""


def test_answers_line_up_the_requests_several_versions_answered_latest_first():
    old = [
        answered(3, "Refund?", "No refunds."),
        answered(1, chat_request("Hours?"), "9 to 5."),
        answered(0, "Only asked the old one", "Sure."),
    ]
    new = [
        answered(4, chat_request("Hours?"), json.dumps(
            {"choices": [{"message": {"role": "assistant", "content": "9 to 6."}}]}
        )),
        answered(2, "Refund?", "No refunds.", state="ERROR", duration_ns=None),
    ]  # fmt: skip

    answers = match_answers([old, new])

    assert [row.request for row in answers.rows] == ["Hours?", "Refund?"]  # asked at 4, then 3
    hours, refund = answers.rows
    assert [a.text for a in hours.answers] == ["9 to 5.", "9 to 6."]
    assert [a.changed for a in hours.answers] == [False, True]
    assert hours.changed
    assert [a.trace_id for a in refund.answers] == ["tr-3", "tr-2"]
    assert [a.state for a in refund.answers] == ["OK", "ERROR"]
    assert not refund.changed
    assert answers.single == 1
    assert answers.more == 0


def test_each_version_shows_its_newest_answer_to_a_request():
    old = [answered(5, "Hours?", "9 to 5, today"), answered(1, "Hours?", "9 to 5")]
    new = [answered(2, "Hours?", "9 to 6")]

    (row,) = match_answers([old, new]).rows

    assert [a.trace_id for a in row.answers] == ["tr-5", "tr-2"]


def test_a_version_that_did_not_answer_a_request_has_an_empty_cell():
    a = [answered(1, "Hours?", "9 to 5")]
    b: list[Answered] = []
    c = [answered(2, "Hours?", "9 to 5")]

    (row,) = match_answers([a, b, c]).rows

    assert row.answers[1] is None
    assert not row.changed


def test_answers_are_bounded_and_say_how_many_more():
    a = [answered(n, f"Question {n}", "A") for n in range(30)]
    b = [answered(n, f"Question {n}", "B") for n in range(30)]

    answers = match_answers([a, b], limit=20)

    assert len(answers.rows) == 20
    assert answers.rows[0].request == "Question 29"
    assert answers.more == 10


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


# --- /models/compare/: answers, commits, short ids -----------------------------------------


def answer_trace(experiment, n: int, model, request: str, answer: str, **fields):
    return make_trace(
        experiment,
        n,
        model_id=model.model_id,
        request_preview=request,
        response_preview=answer,
        **fields,
    )


@pytest.mark.django_db
def test_compare_shows_the_versions_answers_to_the_same_requests(client, experiment):
    a, b = versions(experiment, 2)
    completion = {"choices": [{"message": {"role": "assistant", "content": "9 to 6."}}]}
    answer_trace(experiment, 1, a, "Hours?", "9 to 5.")
    answer_trace(experiment, 2, b, chat_request("Hours?"), json.dumps(completion))
    answer_trace(experiment, 3, a, "Refund?", "No.", duration_ns=2_000_000_000)
    answer_trace(experiment, 4, b, "Refund?", "No.", state=TraceState.ERROR)
    answer_trace(experiment, 5, b, "Asked once", "Once.")
    other = make_model(experiment, name="other")  # not compared: its answers stay out
    answer_trace(experiment, 6, other, "Hours?", "Never.")

    response = client.get(f"/models/compare/answers/?ids={a.model_id},{b.model_id}")

    assert response.status_code == 200
    rows = response.context["answer_rows"]
    assert [row.request for row in rows] == ["Refund?", "Hours?"]
    assert [a.text for a in rows[1].answers] == ["9 to 5.", "9 to 6."]
    html = response.content.decode()
    assert html.count('class="answer-row') == 2
    assert 'href="/traces/tr-00000000000000000000000000000002/"' in html
    assert "2.00 s" in html
    assert "1 request answered by one version only" in html
    assert "Never." not in html

    only_diff = client.get(f"/models/compare/answers/?ids={a.model_id},{b.model_id}&diff=1")

    assert [row.request for row in only_diff.context["answer_rows"]] == ["Hours?"]
    assert "1 identical row hidden" in only_diff.content.decode()


@pytest.mark.django_db
def test_compare_shows_a_cancelled_answer_as_cancelled(client, experiment):
    a, b = versions(experiment, 2)
    answer_trace(experiment, 1, a, "Hours?", "9 to", tags={CANCELLED_TAG: "true"})
    answer_trace(experiment, 2, b, "Hours?", "9 to 6.")

    response = client.get(f"/models/compare/answers/?ids={a.model_id},{b.model_id}")

    (row,) = response.context["answer_rows"]
    assert [answer.cancelled for answer in row.answers] == [True, False]
    assert response.content.decode().count('class="badge state-cancelled"') == 1


@pytest.mark.django_db
def test_compare_says_when_no_request_was_answered_by_two_versions(client, experiment):
    a, b = versions(experiment, 2)
    answer_trace(experiment, 1, a, "Hours?", "9 to 5.")

    response = client.get(f"/models/compare/answers/?ids={a.model_id},{b.model_id}")

    assert "No request was answered by two of these versions yet" in response.content.decode()


@pytest.mark.django_db
def test_compare_reads_only_the_newest_traces_of_each_version(client, experiment, monkeypatch):
    monkeypatch.setattr(model_compare, "ANSWER_TRACES", 2)
    a, b = versions(experiment, 2)
    answer_trace(experiment, 1, a, "Old question", "Old answer.")
    answer_trace(experiment, 2, b, "Old question", "Old answer.")
    answer_trace(experiment, 3, a, "Question 1", "A")
    answer_trace(experiment, 4, b, "Question 1", "B")
    answer_trace(experiment, 5, a, "Question 2", "A")
    answer_trace(experiment, 6, b, "Question 2", "B")

    response = client.get(f"/models/compare/answers/?ids={a.model_id},{b.model_id}")

    assert [row.request for row in response.context["answer_rows"]] == ["Question 2", "Question 1"]


@pytest.mark.django_db
def test_compare_answers_render_user_content_inert(client, experiment):
    a, b = versions(experiment, 2)
    answer_trace(experiment, 1, a, XSS, XSS)
    answer_trace(experiment, 2, b, chat_request(XSS), XSS)

    response = client.get(f"/models/compare/answers/?ids={a.model_id},{b.model_id}")

    html = response.content.decode()
    assert XSS not in html
    assert html.count(XSS_ESCAPED) >= 3


@pytest.mark.django_db
def test_compare_highlights_the_git_commit_only_when_it_differs(client, experiment):
    a, b = versions(experiment, 2)
    c = make_model(experiment, tags={"mlflow.source.git.commit": a.git_commit})

    response = client.get(f"/models/compare/?ids={a.model_id},{b.model_id}")

    assert [v.commit_changed for v in response.context["versions"]] == [False, True]
    html = response.content.decode()
    commit_row = html[
        html.rindex("<tr", 0, html.index(">git commit<")) : html.index(">source run<")
    ]
    assert 'class="row-changed"' in commit_row
    assert commit_row.count('class="cell-changed"') == 1

    same = client.get(f"/models/compare/?ids={a.model_id},{c.model_id}")

    assert not same.context["commit_changed"]
    html = same.content.decode()
    commit_row = html[
        html.rindex("<tr", 0, html.index(">git commit<")) : html.index(">source run<")
    ]
    assert 'class="row-same"' in commit_row
    assert "cell-changed" not in commit_row


@pytest.mark.django_db
def test_compare_takes_the_short_ids_the_pages_show(client, experiment):
    a = make_model(experiment, model_id="m-" + "a1" * 16, created_at=T0)
    b = make_model(experiment, model_id="m-" + "b2" * 16, created_at=T0 + timedelta(hours=1))
    listed = client.get("/models/").context["groups"][0].versions
    short = {v.model_id: v.short_id for v in listed}

    response = client.get(f"/models/compare/?ids={short[a.model_id]},{short[b.model_id]}")

    assert response.status_code == 200
    assert [v.model_id for v in response.context["versions"]] == [a.model_id, b.model_id]
    assert response.context["ids_param"] == f"{a.model_id},{b.model_id}"
    # The trace list cuts ids with an ellipsis; a copied one still works.
    truncated = client.get(f"/models/compare/?ids={a.model_id[:11]}…,{b.model_id}")
    assert truncated.status_code == 200


@pytest.mark.django_db
def test_compare_refuses_a_short_id_that_starts_several_versions(client, experiment):
    a = make_model(experiment, model_id="m-" + "c" * 32)
    make_model(experiment, model_id="m-" + "c" * 31 + "d")
    b = make_model(experiment)

    response = client.get(f"/models/compare/?ids=m-ccc,{b.model_id}")

    assert response.status_code == 400
    html = response.content.decode()
    assert "m-ccc starts more than one version&#x27;s id" in html
    assert a.model_id in html
    assert client.get(f"/models/compare/?ids=m-ccc,{a.model_id}").status_code == 400


@pytest.mark.django_db
def test_compare_refuses_one_version_named_twice(client, experiment):
    a, _ = versions(experiment, 2)

    response = client.get(f"/models/compare/?ids={a.model_id[:14]},{a.model_id}")

    assert response.status_code == 400
    assert "the same version more than once" in response.content.decode()


@pytest.mark.django_db
def test_compare_with_answers_runs_a_fixed_number_of_queries(
    client, experiment, django_assert_num_queries
):
    models = versions(experiment, 4)
    for i, model in enumerate(models):
        for n in range(30):
            answer_trace(experiment, i * 100 + n, model, f"Question {n}", f"Answer {i}")
    ids = ",".join(m.model_id for m in models)
    short_ids = ",".join(m.model_id[:14] for m in models)

    with django_assert_num_queries(2):
        response = client.get(f"/models/compare/answers/?ids={ids}")
    assert len(response.context["answer_rows"]) == 20

    with django_assert_num_queries(2 + 4):  # one more per shortened id
        assert client.get(f"/models/compare/answers/?ids={short_ids}").status_code == 200


@pytest.mark.django_db
def test_the_compare_page_leaves_the_answers_to_a_fragment_it_loads_after(client, experiment):
    a, b = versions(experiment, 2)
    answer_trace(experiment, 1, a, "Hours?", "9 to 5.")
    answer_trace(experiment, 2, b, "Hours?", "9 to 6.")
    ids = f"{a.model_id},{b.model_id}"

    page = client.get(f"/models/compare/?ids={ids}&diff=1")

    html = page.content.decode()
    assert "answer_rows" not in page.context
    assert "9 to 5." not in html
    assert f'hx-get="/models/compare/answers/?ids={quote(ids)}&amp;diff=1"' in html
    # Without htmx, the link shows them inline.
    assert f'href="/models/compare/?ids={quote(ids)}&amp;diff=1&amp;answers=1"' in html
    inline = client.get(f"/models/compare/?ids={ids}&answers=1").content.decode()
    assert "9 to 5." in inline
    assert 'hx-trigger="load"' not in inline


@pytest.mark.django_db
def test_compare_resolves_short_ids_and_answers_among_readable_rows_only(
    client, experiment, auth_on, charlie
):
    hidden = Experiment.objects.create(name="private")
    ExperimentGrant.objects.create(experiment=hidden, level=Level.NONE)
    a = make_model(experiment, model_id="m-" + "e" * 32, created_at=T0)
    b = make_model(experiment, model_id="m-" + "f" * 32, created_at=T0 + timedelta(hours=1))
    secret = make_model(hidden, model_id="m-" + "e" * 16 + "0" * 16)
    answer_trace(experiment, 1, a, "Hours?", "9 to 5.")
    answer_trace(experiment, 2, b, "Hours?", "9 to 6.")
    answer_trace(hidden, 3, b, "Secret question", "Secret answer.")
    answer_trace(hidden, 4, a, "Secret question", "Secret answer.")
    client.force_login(charlie)

    response = client.get("/models/compare/answers/?ids=m-eee,m-fff")

    assert response.status_code == 200  # the private version does not make m-eee ambiguous
    assert [row.request for row in response.context["answer_rows"]] == ["Hours?"]
    html = response.content.decode()
    assert secret.model_id not in html
    assert "Secret" not in html
    only_private = client.get(f"/models/compare/?ids={secret.model_id[:19]},m-fff")
    assert only_private.status_code == 404
