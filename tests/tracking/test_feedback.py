"""Feedback and expectations given on the pages (tracking/views/feedback.py): each kind of
value, overrides and their history, who may write, and inline errors for bad input."""

from __future__ import annotations

import pytest

from tests.rows import make_span, make_trace
from tests.xss import CORPUS, injected_markup
from tracking.models import Assessment

HTMX = {"HX-Request": "true"}


@pytest.fixture
def trace(experiment):
    return make_trace(experiment, 1)


def _add(client, trace, headers=HTMX, **fields):
    return client.post(f"/traces/{trace.trace_id}/feedback/", fields, headers=headers)


def _only(trace, **filters) -> Assessment:
    return Assessment.objects.get(trace=trace, **filters)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("value_type", "field", "typed", "stored"),
    [
        ("pass_fail", "verdict", "pass", True),
        ("pass_fail", "verdict", "fail", False),
        ("number", "value", "4", 4),
        ("number", "value", "0.75", 0.75),
        ("label", "value", "too long", "too long"),
        (
            "text",
            "value",
            "It cited the wrong policy.\nTwice.",
            "It cited the wrong policy.\nTwice.",
        ),
    ],
)
def test_it_records_each_kind_of_feedback_as_the_signed_in_human(
    client, bob, trace, value_type, field, typed, stored
):
    client.force_login(bob)

    response = _add(
        client,
        trace,
        kind="feedback",
        name="verdict",
        value_type=value_type,
        rationale="Checked by hand.",
        **{field: typed},
    )

    assert response.status_code == 200
    saved = _only(trace, name="verdict")
    assert saved.value == stored and type(saved.value) is type(stored)
    assert (saved.kind, saved.source_type, saved.source_id) == ("feedback", "HUMAN", "bob")
    assert saved.rationale == "Checked by hand." and saved.valid
    assert f'id="assessment-{saved.assessment_id}"' in response.content.decode()


@pytest.mark.django_db
def test_it_records_expectations_as_json_or_text(client, trace):
    _add(
        client,
        trace,
        kind="expectation",
        name="expected_facts",
        value_type="json",
        value='{"facts": ["refund in 30 days"]}',
    )
    _add(
        client,
        trace,
        kind="expectation",
        name="expected_response",
        value_type="text",
        value="Refunds take 30 days.",
    )

    assert _only(trace, name="expected_facts").value == {"facts": ["refund in 30 days"]}
    answer = _only(trace, name="expected_response")
    assert (answer.kind, answer.value) == ("expectation", "Refunds take 30 days.")


@pytest.mark.django_db
def test_feedback_on_a_span_is_kept_on_the_span_and_shown_in_its_details(client, trace):
    make_span(trace, "00000000000000aa", 1_000)

    _add(
        client,
        trace,
        kind="feedback",
        name="tool_ok",
        value_type="pass_fail",
        verdict="fail",
        span_id="00000000000000aa",
        panel_span="00000000000000aa",
    )
    details = client.get(f"/traces/{trace.trace_id}/spans/00000000000000aa/").content.decode()

    assert _only(trace, name="tool_ok").span_id == "00000000000000aa"
    assert "tool_ok" in details and "Give feedback on this span" in details


@pytest.mark.django_db
def test_an_override_keeps_the_old_feedback_as_history(client, trace):
    judge = Assessment.objects.create(
        trace=trace,
        name="correct",
        kind="feedback",
        value=True,
        source_type="LLM_JUDGE",
        span_id="00000000000000aa",
    )

    response = _add(
        client,
        trace,
        overrides=judge.assessment_id,
        name="ignored",
        value_type="pass_fail",
        verdict="fail",
        rationale="Wrong policy.",
    )

    html = response.content.decode()
    judge.refresh_from_db()
    human = _only(trace, valid=True)
    assert not judge.valid
    assert (human.name, human.value, human.overrides) == ("correct", False, judge.assessment_id)
    assert human.span_id == "00000000000000aa"  # as override_feedback keeps it
    assert "1 overridden assessment" in html and "<s>correct</s>" in html
    assert html.index(f"assessment-{human.assessment_id}") < html.index(judge.assessment_id)


@pytest.mark.django_db
def test_deleting_an_override_makes_the_old_feedback_valid_again(client, trace):
    old = Assessment.objects.create(trace=trace, name="q", kind="feedback", value=1, valid=False)
    new = Assessment.objects.create(
        trace=trace, name="q", kind="feedback", value=5, overrides=old.assessment_id
    )

    response = client.post(
        f"/traces/{trace.trace_id}/feedback/{new.assessment_id}/", {"action": "delete"}
    )

    assert response.status_code == 302 and response["Location"] == trace.get_absolute_url()
    old.refresh_from_db()
    assert old.valid and not Assessment.objects.filter(pk=new.pk).exists()


@pytest.mark.django_db
def test_an_expectation_is_edited_in_place(client, trace):
    expected = Assessment.objects.create(
        trace=trace, name="expected_response", kind="expectation", value="old"
    )

    response = client.post(
        f"/traces/{trace.trace_id}/feedback/{expected.assessment_id}/",
        {"value_type": "json", "value": '["a", "b"]', "rationale": "fixed"},
        headers=HTMX,
    )

    assert response.status_code == 200
    expected.refresh_from_db()
    assert (expected.value, expected.rationale) == (["a", "b"], "fixed")
    assert Assessment.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "expectation", "value_type": "json", "value": "{oops"}, "Not valid JSON"),
        ({"kind": "expectation", "value_type": "json", "value": "null"}, "needs a value"),
        ({"kind": "feedback", "value_type": "number", "value": "1e400"}, "Out of range"),
        ({"kind": "feedback", "value_type": "number", "value": "lots"}, "Not a number"),
        ({"kind": "feedback", "value_type": "pass_fail"}, "Choose pass or fail"),
        ({"kind": "feedback", "value_type": "label", "value": "x" * 101}, "A label is one line"),
        ({"kind": "feedback", "value_type": "text", "value": "a\x00b"}, "NUL"),
        ({"kind": "feedback", "value_type": "text", "value": "ok", "name": " "}, "Give the"),
        ({"kind": "feedback", "value_type": "text", "value": "ok", "span_id": "zz"}, "16 hex"),
    ],
)
def test_bad_input_is_an_inline_error_and_changes_nothing(client, trace, fields, message):
    fields = {"name": "q", **fields}

    htmx = _add(client, trace, **fields)
    plain = _add(client, trace, headers={}, **fields)

    assert htmx.status_code == 422 and plain.status_code == 422
    assert message in htmx.content.decode() and message in plain.content.decode()
    assert 'aria-invalid="true"' in htmx.content.decode() or 'role="alert"' in htmx.content.decode()
    assert "<html" in plain.content.decode() and "<html" not in htmx.content.decode()
    assert not Assessment.objects.exists()


@pytest.mark.django_db
def test_a_feedback_is_overridden_not_edited(client, trace):
    given = Assessment.objects.create(trace=trace, name="q", kind="feedback", value=1)

    response = client.post(
        f"/traces/{trace.trace_id}/feedback/{given.assessment_id}/",
        {"value_type": "number", "value": "3"},
        headers=HTMX,
    )

    assert response.status_code == 422 and "override it" in response.content.decode()
    given.refresh_from_db()
    assert given.value == 1


@pytest.mark.django_db
def test_overriding_an_expectation_or_an_unknown_id_is_refused(client, trace):
    expected = Assessment.objects.create(trace=trace, name="e", kind="expectation", value="x")

    for overrides in (expected.assessment_id, "a-" + "0" * 32, "junk"):
        response = _add(
            client,
            trace,
            overrides=overrides,
            name="e",
            kind="feedback",
            value_type="number",
            value="2",
        )
        assert response.status_code == 422, overrides

    assert Assessment.objects.count() == 1 and Assessment.objects.get().valid


@pytest.mark.django_db
def test_a_viewer_sees_the_values_but_no_forms_and_may_not_write(
    client, auth_on, charlie, bob, trace
):
    Assessment.objects.create(trace=trace, name="correct", kind="feedback", value=True)
    client.force_login(charlie)

    page = client.get(f"/traces/{trace.trace_id}/").content.decode()
    refused = _add(client, trace, name="q", kind="feedback", value_type="number", value="1")

    assert "correct" in page and "Pass" in page
    assert "Give feedback" not in page and "/feedback/" not in page
    assert refused.status_code == 404
    assert Assessment.objects.count() == 1

    client.force_login(bob)
    assert "Give feedback" in client.get(f"/traces/{trace.trace_id}/").content.decode()


@pytest.mark.django_db
def test_the_corpus_in_names_values_and_rationales_stays_text(client, trace):
    for item in CORPUS:
        _add(
            client,
            trace,
            kind="feedback",
            name=item[:250],
            value_type="text",
            value=item,
            rationale=item,
        )
        _add(
            client,
            trace,
            kind="expectation",
            name=item[:250],
            value_type="json",
            value=f'{{"k": {__import__("json").dumps(item)}}}',
            rationale=item,
        )

    html = client.get(f"/traces/{trace.trace_id}/").content.decode()

    assert Assessment.objects.count() == 2 * len(CORPUS)
    assert injected_markup(html) == []


@pytest.mark.django_db
def test_the_trace_page_adds_no_query_for_the_forms(
    client, experiment, django_assert_max_num_queries
):
    trace = make_trace(experiment, 1)
    for i in range(5):
        Assessment.objects.create(trace=trace, name=f"q{i}", kind="feedback", value=i)

    with django_assert_max_num_queries(3):
        assert client.get(f"/traces/{trace.trace_id}/").status_code == 200
