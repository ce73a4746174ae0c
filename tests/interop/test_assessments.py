"""Assessments through the real mlflow client: log_feedback, log_expectation, get, update,
override and delete, and trace infos (get_trace, search_traces) carrying them."""

from __future__ import annotations

from tracking.models import Assessment

ASSESSMENTS_SCRIPT = """
    from mlflow.entities import AssessmentSource, Expectation, Feedback

    mlflow.set_experiment("assessments")

    @mlflow.trace
    def answer(question):
        return "Paris"

    answer("capital of France?")
    mlflow.flush_trace_async_logging()
    trace_id = mlflow.search_traces(return_type="list")[0].info.trace_id
    root_span = mlflow.get_trace(trace_id).data.spans[0].span_id

    human = AssessmentSource(source_type="HUMAN", source_id="alice")
    judge = AssessmentSource(source_type="LLM_JUDGE", source_id="gpt-judge")
    correct = mlflow.log_feedback(trace_id=trace_id, name="correct", value=True,
                                  rationale="Right city.", source=human)
    score = mlflow.log_feedback(trace_id=trace_id, name="relevance", value=0.5, source=judge,
                                span_id=root_span, metadata={"judge": "v1"})
    expected = mlflow.log_expectation(trace_id=trace_id, name="expected_answer",
                                      value={"city": "Paris", "aliases": ["City of Light"]})

    def brief(a):
        return {"name": a.name, "value": a.value, "type": type(a).__name__,
                "source": [a.source.source_type, a.source.source_id], "valid": a.valid,
                "rationale": a.rationale, "span_id": a.span_id, "overrides": a.overrides,
                "metadata": a.metadata}

    fetched = mlflow.get_assessment(trace_id, correct.assessment_id)
    result([brief(correct), brief(score), brief(expected), brief(fetched),
            fetched.assessment_id == correct.assessment_id])

    updated = mlflow.update_assessment(
        trace_id=trace_id, assessment_id=expected.assessment_id,
        assessment=Expectation(name="expected_answer", value="Paris"))
    overriding = mlflow.override_feedback(
        trace_id=trace_id, assessment_id=score.assessment_id, value=0.9,
        rationale="The judge was harsh.", source=human)
    result([brief(updated), brief(overriding),
            mlflow.get_assessment(trace_id, score.assessment_id).valid])

    info = mlflow.get_trace(trace_id).info
    found = mlflow.search_traces(return_type="list")[0].info
    result([sorted([a.name, a.valid, a.value] for a in info.assessments),
            sorted([a.name, a.valid, a.value] for a in found.assessments)])

    mlflow.delete_assessment(trace_id=trace_id, assessment_id=overriding.assessment_id)
    mlflow.delete_assessment(trace_id=trace_id, assessment_id=correct.assessment_id)
    left = mlflow.get_trace(trace_id).info.assessments
    result(sorted([a.name, a.valid, a.value] for a in left))
"""


def test_feedback_and_expectations_round_trip_through_the_client(run_mlflow):
    logged, changed, infos, left = run_mlflow(ASSESSMENTS_SCRIPT)

    correct, score, expected, fetched, same_id = logged
    assert correct == {
        "name": "correct",
        "value": True,
        "type": "Feedback",
        "source": ["HUMAN", "alice"],
        "valid": True,
        "rationale": "Right city.",
        "span_id": None,
        "overrides": None,
        "metadata": None,
    }
    assert fetched == correct and same_id
    assert score["value"] == 0.5 and score["source"] == ["LLM_JUDGE", "gpt-judge"]
    assert score["span_id"] and score["metadata"] == {"judge": "v1"}
    assert expected["type"] == "Expectation"
    assert expected["value"] == {"city": "Paris", "aliases": ["City of Light"]}

    updated, overriding, old_still_valid = changed
    assert updated["value"] == "Paris" and updated["type"] == "Expectation"
    assert overriding["value"] == 0.9 and overriding["overrides"]
    assert overriding["span_id"] == score["span_id"]
    assert old_still_valid is False

    # The client reads `valid` only on feedback (Expectation.from_proto leaves it None).
    everything = [
        ["correct", True, True],
        ["expected_answer", None, "Paris"],
        ["relevance", False, 0.5],
        ["relevance", True, 0.9],
    ]
    assert infos == [everything, everything]
    assert left == [["expected_answer", None, "Paris"], ["relevance", True, 0.5]]
    assert sorted(Assessment.objects.values_list("name", "valid")) == [
        ("expected_answer", True),
        ("relevance", True),
    ]
