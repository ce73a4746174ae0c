"""`feedback.<name>` and `expectation.<name>` in the trace list's query language
(tracking/assessment_search.py). Run on SQLite and, with DATABASE_URL, on PostgreSQL: the
JSON functions differ per database."""

from __future__ import annotations

import pytest

from tests.rows import make_trace
from tracking import search
from tracking.models import Assessment, Experiment, Trace


def _matching(query: str) -> set[str]:
    return set(Trace.objects.filter(search.compile_query(query)).values_list("name", flat=True))


@pytest.fixture
def judged(experiment):
    """good: correct, 4.5 and friendly; bad: wrong, 2 and 'rude'; text: score "4" as text;
    overridden: its `correct = true` was overridden by a false; bare: no assessments."""
    rows = {}
    for n, name in enumerate(("good", "bad", "text", "overridden", "bare")):
        rows[name] = make_trace(experiment, n, name=name)

    def add(trace_name, name, value, kind="feedback", **fields):
        return Assessment.objects.create(
            trace=rows[trace_name], name=name, kind=kind, value=value, **fields
        )

    add("good", "correct", True)
    add("good", "score", 4.5)
    add("good", "tone", "friendly")
    add("good", "expected_response", "Refunds take 30 days.", kind="expectation")
    add("bad", "correct", False)
    add("bad", "score", 2)
    add("bad", "tone", "rude")
    add("bad", "expected_facts", {"facts": ["x"]}, kind="expectation")
    add("text", "score", "4")
    old = add("overridden", "correct", True, valid=False)
    add("overridden", "correct", False, overrides=old.assessment_id)
    return rows


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("feedback.correct = true", {"good"}),
        ("feedback.correct = false", {"bad", "overridden"}),
        ("feedback.correct = FALSE", {"bad", "overridden"}),
        ("feedback.correct != false", {"good"}),
        ("not feedback.correct = false", {"good", "text", "bare"}),
        ("feedback.score > 3", {"good"}),
        ("feedback.score >= 2", {"good", "bad"}),
        ("feedback.score < 4.5", {"bad"}),
        ("feedback.score = 2", {"bad"}),
        ("feedback.score = 4", {"text"}),
        ("feedback.score = 4.5", {"good"}),
        ("feedback.tone = friendly", {"good"}),
        ("feedback.tone in (friendly, rude)", {"good", "bad"}),
        ("feedback.tone not in (friendly)", {"bad"}),
        ("feedback.tone ~ RUD", {"bad"}),
        ('expectation.expected_response = "Refunds take 30 days."', {"good"}),
        ("expectation.expected_response ~ refund", {"good"}),
        ("feedback.expected_response ~ refund", set()),  # an expectation, not a feedback
        ("expectation.correct = true", set()),
        ("feedback.correct = true or feedback.score = 4", {"good", "text"}),
        ("feedback.correct = false and feedback.score < 3", {"bad"}),
        ("feedback.`no such` = 1", set()),
    ],
)
def test_assessment_queries(judged, query, expected):
    assert _matching(query) == expected


@pytest.mark.django_db
def test_an_overridden_feedback_no_longer_matches(judged):
    assert "overridden" not in _matching("feedback.correct = true")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("feedback.score > high", "> compares numbers, found 'high'"),
        ("feedback. = 1", "feedback.<key> needs a key"),
        ("expectation. = 1", "expectation.<key> needs a key"),
    ],
)
def test_assessment_query_errors_say_where(query, message):
    with pytest.raises(search.SearchError) as raised:
        search.compile_query(query)
    assert message in raised.value.message


@pytest.mark.django_db
def test_the_trace_list_filters_by_feedback(client, judged):
    response = client.get("/traces/", {"q": "feedback.correct = false"})

    assert {t.name for t in response.context["traces"]} == {"bad", "overridden"}


# --- The trace list's assessment columns ---------------------------------------------------


@pytest.mark.django_db
def test_the_chooser_offers_the_assessment_names_of_the_listed_experiments(client, judged):
    other = Trace.objects.create(
        experiment=Experiment.objects.create(name="other"),
        trace_id="tr-" + "f" * 32,
        name="elsewhere",
        request_time=judged["good"].request_time,
    )
    Assessment.objects.create(trace=other, name="only_there", kind="feedback", value=1)
    experiment = judged["good"].experiment_id

    everywhere = client.get("/traces/columns/assessments/").content.decode()
    here = client.get(f"/traces/columns/assessments/?experiment={experiment}").content.decode()

    assert 'value="assessment:only_there"' in everywhere
    assert 'value="assessment:only_there"' not in here
    for name in ("correct", "score", "tone", "expected_response"):
        assert f'value="assessment:{name}"' in here


@pytest.mark.django_db
def test_chosen_assessment_columns_show_badges_numbers_and_labels(
    client, judged, django_assert_max_num_queries
):
    client.post("/traces/columns/", {"column": ["time", "assessment:correct", "assessment:score"]})

    # traces, model names, model and experiment choices, the session, the assessment cells
    with django_assert_max_num_queries(6):
        response = client.get("/traces/")

    html = response.content.decode()
    assert '<th scope="col" class="assessment-column">correct</th>' in html
    rows = {t.name: t.assessment_cells for t in response.context["traces"]}
    assert [a.value for a in rows["good"]] == [True, 4.5]
    assert rows["overridden"][0].value is False and rows["overridden"][1] is None
    assert rows["bare"] == [None, None]
    good_row = html[html.index(f'id="trace-{judged["good"].trace_id}"') :]
    good_row = good_row[: good_row.index("</tr>")]
    assert "Pass" in good_row and "4.5" in good_row


@pytest.mark.django_db
def test_the_list_without_assessment_columns_queries_no_assessment(
    client, judged, django_assert_max_num_queries
):
    with django_assert_max_num_queries(4) as captured:
        client.get("/traces/")
    assert not any("tracking_assessment" in q["sql"] for q in captured.captured_queries)
