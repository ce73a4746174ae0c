"""Trace assessments over the MLflow REST API with Django's test client: each endpoint, what a
bad request answers and leaves untouched, trace infos carrying them, and the trace page."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.rows import XSS, XSS_ESCAPED, make_trace
from tracking.models import Assessment, Experiment, Trace

BASE = "/api/3.0/mlflow/traces/"
TRACE_ID = f"tr-{1:032x}"
UNKNOWN_TRACE = "tr-" + "f" * 32
UNKNOWN_ASSESSMENT = "a-" + "f" * 32


@pytest.fixture
def trace(experiment: Experiment) -> Trace:
    return make_trace(experiment, 1)


def send(client, path: str, body: Any, method: str = "post"):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return getattr(client, method)(path, data=data, content_type="application/json")


def feedback(value: Any = True, **fields: Any) -> dict[str, Any]:
    """A CreateAssessment body as `mlflow.log_feedback` sends it."""
    return {
        "assessment": {
            "assessment_name": "correct",
            "trace_id": TRACE_ID,
            "source": {"source_type": "HUMAN", "source_id": "alice"},
            "create_time": "2026-11-21T20:56:31.378Z",
            "last_update_time": "2026-11-21T20:56:31.378Z",
            "feedback": {"value": value},
            "rationale": "It answered the question.",
            "metadata": {"project": "demo"},
            "valid": True,
            **fields,
        }
    }


def create(client, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = send(client, f"{BASE}{TRACE_ID}/assessments", body or feedback())
    assert response.status_code == 200, response.content
    return response.json()["assessment"]


def error_of(response) -> tuple[int, str]:
    return response.status_code, response.json()["error_code"]


def stored() -> list[tuple]:
    return list(
        Assessment.objects.order_by("pk").values_list(
            "assessment_id", "name", "kind", "value", "rationale", "metadata", "valid"
        )
    )


# --- Create, get, update, delete -----------------------------------------------------------


@pytest.mark.django_db
def test_log_feedback_stores_it_and_answers_the_assessment(client, trace):
    created = create(client)

    row = Assessment.objects.get()
    assert row.trace == trace
    assert (row.name, row.kind, row.value, row.source_type, row.source_id) == (
        "correct",
        "feedback",
        True,
        "HUMAN",
        "alice",
    )
    assert created == {
        "assessment_id": row.assessment_id,
        "assessment_name": "correct",
        "trace_id": TRACE_ID,
        "source": {"source_type": "HUMAN", "source_id": "alice"},
        "create_time": "2026-11-21T20:56:31.378Z",
        "last_update_time": "2026-11-21T20:56:31.378Z",
        "valid": True,
        "feedback": {"value": True},
        "rationale": "It answered the question.",
        "metadata": {"project": "demo"},
    }
    assert row.assessment_id.startswith("a-") and len(row.assessment_id) == 34


@pytest.mark.django_db
def test_expectations_keep_scalars_as_values_and_the_rest_as_json_text(client, trace):
    scalar = {"assessment_name": "expected", "expectation": {"value": "Paris"}}
    serialized = {
        "assessment_name": "expected_facts",
        "expectation": {
            "serialized_value": {"serialization_format": "JSON_FORMAT", "value": '{"a": [1, 2]}'}
        },
    }
    first = create(client, {"assessment": scalar})
    second = create(client, {"assessment": serialized})

    assert first["expectation"] == {"value": "Paris"}
    assert second["expectation"] == serialized["expectation"] | {
        "serialized_value": {"serialization_format": "JSON_FORMAT", "value": '{"a": [1, 2]}'}
    }
    assert [a.value for a in Assessment.objects.order_by("pk")] == ["Paris", {"a": [1, 2]}]
    assert first["source"] == {"source_type": "SOURCE_TYPE_UNSPECIFIED"}


@pytest.mark.django_db
def test_a_failed_judge_is_stored_with_its_error(client, trace):
    body = feedback(None)
    body["assessment"]["feedback"]["error"] = {"error_code": "ValueError", "error_message": "boom"}

    created = create(client, body)

    assert created["feedback"] == {
        "value": None,
        "error": {"error_code": "ValueError", "error_message": "boom"},
    }


@pytest.mark.django_db
def test_get_answers_the_stored_assessment(client, trace):
    created = create(client)

    response = client.get(f"{BASE}{TRACE_ID}/assessments/{created['assessment_id']}")

    assert response.status_code == 200
    assert response.json() == {"assessment": created}


@pytest.mark.django_db
def test_update_changes_only_the_masked_fields_and_merges_metadata(client, trace):
    created = create(client)
    path = f"{BASE}{TRACE_ID}/assessments/{created['assessment_id']}"
    body = {
        "assessment": {
            "assessment_id": created["assessment_id"],
            "trace_id": TRACE_ID,
            "assessment_name": "renamed",
            "feedback": {"value": 0.25},
            "rationale": "ignored: not in the mask",
            "metadata": {"reviewer": "bob"},
        },
        "update_mask": "assessmentName,feedback,metadata",
    }

    response = send(client, path, body, "patch")

    assert response.status_code == 200, response.content
    updated = response.json()["assessment"]
    assert updated["assessment_name"] == "renamed"
    assert updated["feedback"] == {"value": 0.25}
    assert updated["rationale"] == "It answered the question."
    assert updated["metadata"] == {"project": "demo", "reviewer": "bob"}
    assert updated["source"] == created["source"]
    assert updated["last_update_time"] != created["last_update_time"]
    assert client.get(path).json()["assessment"] == updated


@pytest.mark.django_db
def test_override_marks_the_old_feedback_invalid_and_deleting_it_restores_it(client, trace):
    old = create(client)
    new = create(client, feedback(False, overrides=old["assessment_id"]))

    assert new["overrides"] == old["assessment_id"]
    assert Assessment.objects.get(assessment_id=old["assessment_id"]).valid is False
    assert Assessment.objects.get(assessment_id=new["assessment_id"]).valid is True

    response = send(client, f"{BASE}{TRACE_ID}/assessments/{new['assessment_id']}", {}, "delete")

    assert (response.status_code, response.json()) == (200, {})
    assert list(Assessment.objects.values_list("assessment_id", "valid")) == [
        (old["assessment_id"], True)
    ]


@pytest.mark.django_db
def test_deleting_an_assessment_twice_is_not_an_error(client, trace):
    created = create(client)
    path = f"{BASE}{TRACE_ID}/assessments/{created['assessment_id']}"

    assert send(client, path, {}, "delete").status_code == 200
    assert send(client, path, {}, "delete").status_code == 200
    assert not Assessment.objects.exists()


@pytest.mark.django_db
def test_deleting_a_trace_deletes_its_assessments(client, trace):
    create(client)
    body = {"experiment_id": str(trace.experiment_id), "request_ids": [TRACE_ID]}

    response = send(client, "/api/2.0/mlflow/traces/delete-traces", body)

    assert response.json() == {"traces_deleted": 1}
    assert not Assessment.objects.exists()


# --- Refused requests ----------------------------------------------------------------------


def _assessment(**fields: Any) -> dict[str, Any]:
    body = feedback()
    body["assessment"].update(fields)
    return body


def _without(name: str) -> dict[str, Any]:
    body = feedback()
    del body["assessment"][name]
    return body


BAD_CREATES = [
    pytest.param({}, id="no-assessment"),
    pytest.param({"assessment": "yes"}, id="assessment-not-an-object"),
    pytest.param(_without("assessment_name"), id="no-name"),
    pytest.param(_assessment(assessment_name=""), id="empty-name"),
    pytest.param(_assessment(assessment_name=7), id="name-not-a-string"),
    pytest.param(_assessment(assessment_name="x" * 251), id="name-too-long"),
    pytest.param(_assessment(assessment_name="a\x00b"), id="nul-in-name"),
    pytest.param(_without("feedback"), id="neither-feedback-nor-expectation"),
    pytest.param(_assessment(expectation={"value": 1}), id="both-feedback-and-expectation"),
    pytest.param(_assessment(feedback="good"), id="feedback-not-an-object"),
    pytest.param(_assessment(feedback={"value": "a\x00b"}), id="nul-in-value"),
    pytest.param(_assessment(feedback={"value": {"k\x00": 1}}), id="nul-in-a-key"),
    pytest.param(_assessment(feedback={"value": True, "error": "x"}), id="error-not-an-object"),
    pytest.param(
        {"assessment": {"assessment_name": "e", "expectation": {"value": None}}},
        id="expectation-without-value",
    ),
    pytest.param(
        {
            "assessment": {
                "assessment_name": "e",
                "expectation": {"serialized_value": {"value": "{not json"}},
            }
        },
        id="serialized-value-not-json",
    ),
    pytest.param(_assessment(rationale=["r"]), id="rationale-not-a-string"),
    pytest.param(_assessment(rationale="a\x00"), id="nul-in-rationale"),
    pytest.param(_assessment(metadata={"k": 1}), id="metadata-value-not-a-string"),
    pytest.param(_assessment(metadata=["k"]), id="metadata-not-an-object"),
    pytest.param(_assessment(source={"source_type": "ROBOT"}), id="unknown-source-type"),
    pytest.param(_assessment(source={"source_id": 5}), id="source-id-not-a-string"),
    pytest.param(_assessment(span_id="not-a-span"), id="span-id-of-the-wrong-shape"),
    pytest.param(_assessment(overrides="12"), id="overrides-of-the-wrong-shape"),
    pytest.param(_assessment(trace_id=UNKNOWN_TRACE), id="trace-id-not-the-paths"),
    pytest.param(_assessment(create_time="yesterday"), id="create-time-not-a-timestamp"),
    pytest.param(_assessment(issue={"issue_name": "x"}), id="issue-reference"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("body", BAD_CREATES)
def test_bad_creates_are_invalid_parameter_values_and_store_nothing(client, trace, body):
    response = send(client, f"{BASE}{TRACE_ID}/assessments", body)

    assert error_of(response) == (400, "INVALID_PARAMETER_VALUE")
    assert response.json()["message"]
    assert not Assessment.objects.exists()


@pytest.mark.django_db
def test_values_over_the_span_field_cap_are_refused(client, trace, settings):
    settings.SPYGLASS_MAX_SPAN_FIELD_BYTES = 1000

    response = send(client, f"{BASE}{TRACE_ID}/assessments", feedback("x" * 2000))

    assert error_of(response) == (400, "INVALID_PARAMETER_VALUE")
    assert not Assessment.objects.exists()


@pytest.mark.django_db
def test_bodies_that_are_not_json_or_hold_nan_are_refused(client, trace):
    path = f"{BASE}{TRACE_ID}/assessments"
    nan = '{"assessment": {"assessment_name": "n", "feedback": {"value": NaN}}}'

    assert error_of(send(client, path, "{not json")) == (400, "INVALID_PARAMETER_VALUE")
    assert error_of(send(client, path, nan)) == (400, "INVALID_PARAMETER_VALUE")
    assert not Assessment.objects.exists()


@pytest.mark.django_db
def test_unknown_traces_and_assessments_are_resource_does_not_exist(client, trace):
    created = create(client)
    known = f"{BASE}{TRACE_ID}/assessments/{created['assessment_id']}"
    before = stored()

    assert error_of(send(client, f"{BASE}{UNKNOWN_TRACE}/assessments", feedback())) == (
        400,
        "INVALID_PARAMETER_VALUE",  # the body names another trace than the path
    )
    body = feedback()
    del body["assessment"]["trace_id"]
    assert error_of(send(client, f"{BASE}{UNKNOWN_TRACE}/assessments", body)) == (
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    for path in (
        f"{BASE}{UNKNOWN_TRACE}/assessments/{created['assessment_id']}",
        f"{BASE}{TRACE_ID}/assessments/{UNKNOWN_ASSESSMENT}",
    ):
        assert error_of(client.get(path)) == (404, "RESOURCE_DOES_NOT_EXIST")
        patch = {"assessment": {"assessment_name": "x"}, "update_mask": "assessmentName"}
        assert error_of(send(client, path, patch, "patch")) == (404, "RESOURCE_DOES_NOT_EXIST")
    gone = f"{BASE}{UNKNOWN_TRACE}/assessments/{created['assessment_id']}"
    assert error_of(send(client, gone, {}, "delete")) == (404, "RESOURCE_DOES_NOT_EXIST")
    overriding = feedback(False, overrides=UNKNOWN_ASSESSMENT)
    assert error_of(send(client, f"{BASE}{TRACE_ID}/assessments", overriding)) == (
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    assert client.get(known).status_code == 200
    assert stored() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        f"{BASE}tr-nope/assessments/{UNKNOWN_ASSESSMENT}",
        f"{BASE}{TRACE_ID}/assessments/a-123",
        f"{BASE}{TRACE_ID}/assessments/{UNKNOWN_ASSESSMENT.upper()}",
    ],
)
def test_ids_of_the_wrong_shape_are_invalid(client, trace, path):
    for method in ("get", "patch", "delete"):
        response = send(client, path, {}, method) if method != "get" else client.get(path)
        assert error_of(response) == (400, "INVALID_PARAMETER_VALUE"), method


BAD_UPDATES = [
    pytest.param({"assessment": {"assessment_name": "x"}}, id="no-update-mask"),
    pytest.param({"assessment": {"assessment_name": "x"}, "update_mask": "source"}, id="immutable"),
    pytest.param({"update_mask": "assessmentName"}, id="no-assessment"),
    pytest.param(
        {"assessment": {"assessment_name": ""}, "update_mask": "assessmentName"}, id="empty-name"
    ),
    pytest.param(
        {"assessment": {"expectation": {"value": 1}}, "update_mask": "expectation"},
        id="feedback-to-expectation",
    ),
    pytest.param(
        {"assessment": {"feedback": {"value": "a\x00"}}, "update_mask": "feedback"},
        id="nul-in-value",
    ),
    pytest.param(
        {"assessment": {"metadata": {"k": 1}}, "update_mask": "metadata"}, id="bad-metadata"
    ),
    pytest.param(
        {"assessment": {"assessment_id": UNKNOWN_ASSESSMENT}, "update_mask": "rationale"},
        id="assessment-id-not-the-paths",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize("body", BAD_UPDATES)
def test_bad_updates_are_refused_and_change_nothing(client, trace, body):
    created = create(client)
    before = stored()

    path = f"{BASE}{TRACE_ID}/assessments/{created['assessment_id']}"
    response = send(client, path, body, "patch")

    assert error_of(response) == (400, "INVALID_PARAMETER_VALUE")
    assert stored() == before


@pytest.mark.django_db
def test_other_methods_are_refused(client, trace):
    assert client.get(f"{BASE}{TRACE_ID}/assessments").status_code == 405
    assert client.post(f"{BASE}{TRACE_ID}/assessments/{UNKNOWN_ASSESSMENT}").status_code == 405


# --- Trace infos ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_trace_infos_carry_every_assessment_overridden_ones_too(client, trace):
    old = create(client)
    new = create(client, feedback(False, overrides=old["assessment_id"]))
    old = client.get(f"{BASE}{TRACE_ID}/assessments/{old['assessment_id']}").json()["assessment"]
    location = {
        "type": "MLFLOW_EXPERIMENT",
        "mlflow_experiment": {"experiment_id": str(trace.experiment_id)},
    }

    info = client.get(f"{BASE}{TRACE_ID}").json()["trace"]["trace_info"]
    found = send(client, f"{BASE}search", {"locations": [location]}).json()["traces"]
    infos = client.get(f"{BASE}batchGetInfos?trace_ids={TRACE_ID}").json()["trace_infos"]
    batch = client.get(f"{BASE}batchGet?trace_ids={TRACE_ID}").json()["traces"]

    assert info["assessments"] == [old, new]
    assert old["valid"] is False
    assert found[0]["assessments"] == infos[0]["assessments"] == [old, new]
    assert batch[0]["trace_info"]["assessments"] == [old, new]


@pytest.mark.django_db
def test_a_trace_without_assessments_sends_none(client, trace):
    info = client.get(f"{BASE}{TRACE_ID}").json()["trace"]["trace_info"]

    assert "assessments" not in info


@pytest.mark.django_db
def test_trace_search_queries_do_not_grow_with_assessments(
    client, experiment, django_assert_max_num_queries
):
    for n in range(20):
        trace = make_trace(experiment, n)
        for name in ("correct", "relevant"):
            Assessment.objects.create(trace=trace, name=name, kind="feedback", value=n)
    location = {
        "type": "MLFLOW_EXPERIMENT",
        "mlflow_experiment": {"experiment_id": str(experiment.pk)},
    }
    batch = "&".join(f"trace_ids=tr-{n:032x}" for n in range(10))

    # The traces, then their assessments in one query.
    with django_assert_max_num_queries(2):
        found = send(client, f"{BASE}search", {"locations": [location]}).json()["traces"]
    with django_assert_max_num_queries(3):
        traces = client.get(f"{BASE}batchGet?{batch}").json()["traces"]
    with django_assert_max_num_queries(2):
        client.get(f"{BASE}tr-{3:032x}")

    assert len(found) == 20
    assert all(len(t["assessments"]) == 2 for t in found)
    assert all(len(t["trace_info"]["assessments"]) == 2 for t in traces)


# --- The trace page ------------------------------------------------------------------------


@pytest.mark.django_db
def test_trace_page_lists_assessments_with_their_values_and_sources(client, trace):
    Assessment.objects.create(
        trace=trace,
        name="correct",
        kind="feedback",
        value=True,
        source_type="HUMAN",
        source_id="alice",
        rationale="Spot on.",
    )
    Assessment.objects.create(trace=trace, name="wrong", kind="feedback", value=False)
    Assessment.objects.create(
        trace=trace, name="relevance", kind="feedback", value=0.75, source_type="LLM_JUDGE"
    )
    Assessment.objects.create(
        trace=trace,
        name="expected_facts",
        kind="expectation",
        value={"capital": "Paris"},
        span_id="00000000000000aa",
    )

    html = client.get(f"/traces/{TRACE_ID}/").content.decode()

    assert "Assessments" in html
    assert "correct" in html and "Pass" in html and "alice" in html and "Spot on." in html
    assert "Fail" in html
    assert "0.75" in html and "LLM_JUDGE" in html
    assert "&quot;capital&quot;: &quot;Paris&quot;" in html
    assert "?span=00000000000000aa" in html


@pytest.mark.django_db
def test_trace_page_folds_overridden_assessments_away(client, trace):
    old = Assessment.objects.create(
        trace=trace, name="judge-said", kind="feedback", value="meh", valid=False
    )
    Assessment.objects.create(
        trace=trace, name="human-said", kind="feedback", value="great", overrides=old.assessment_id
    )

    html = client.get(f"/traces/{TRACE_ID}/").content.decode()

    assert "1 overridden assessment" in html
    assert "<s>judge-said</s>" in html
    assert html.index("human-said") < html.index("judge-said")


@pytest.mark.django_db
def test_trace_page_without_assessments_has_no_block(client, trace):
    assert 'id="assessments-title"' not in client.get(f"/traces/{TRACE_ID}/").content.decode()


@pytest.mark.django_db
def test_trace_page_escapes_assessment_names_values_and_rationales(client, trace):
    for n, value in enumerate([XSS, {"k": XSS}]):
        Assessment.objects.create(
            trace=trace,
            name=f"{XSS}{n}",
            kind="feedback",
            value=value,
            rationale=XSS,
            source_id=XSS,
            error={"error_code": XSS, "error_message": XSS} if n else None,
        )

    html = client.get(f"/traces/{TRACE_ID}/").content.decode()

    assert XSS not in html
    assert XSS_ESCAPED in html


@pytest.mark.django_db
def test_trace_page_loads_assessments_in_one_query(client, trace, django_assert_max_num_queries):
    for n in range(20):
        Assessment.objects.create(trace=trace, name=f"a{n}", kind="feedback", value=n)

    # The trace, its assessments (no model id here, so no model lookup), and whether its root
    # holds chat messages (the Conversation tab).
    with django_assert_max_num_queries(3):
        response = client.get(f"/traces/{TRACE_ID}/")

    assert response.status_code == 200
