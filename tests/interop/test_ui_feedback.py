"""Feedback given on the trace page, read back by the real mlflow client: what the UI writes
is an MLflow assessment (tracking/views/feedback.py)."""

from __future__ import annotations

from django.test import Client

LOG_SCRIPT = """
    mlflow.set_experiment("ui-feedback")

    @mlflow.trace
    def answer(question):
        return "Paris"

    answer("capital of France?")
    mlflow.flush_trace_async_logging()
    trace = mlflow.search_traces(return_type="list")[0]
    result([trace.info.trace_id, mlflow.get_trace(trace.info.trace_id).data.spans[0].span_id])
"""

READ_SCRIPT = """
    import os

    info = mlflow.get_trace(os.environ["TRACE_ID"]).info
    rows = [
        [type(a).__name__, a.name, a.value, a.valid, a.rationale, a.source.source_type,
         a.source.source_id, a.span_id, bool(a.overrides)]
        for a in info.assessments
    ]
    result(sorted(rows, key=lambda row: (row[1], str(row[3]))))
"""


def test_feedback_given_in_the_ui_is_read_back_by_the_client(run_mlflow, alice):
    [[trace_id, span_id]] = run_mlflow(LOG_SCRIPT)
    ui = Client()
    ui.force_login(alice)
    url = f"/traces/{trace_id}/feedback/"

    def give(**fields):
        response = ui.post(url, fields, headers={"HX-Request": "true"})
        assert response.status_code == 200, response.content[:500]

    give(kind="feedback", name="correct", value_type="pass_fail", verdict="pass", rationale="ok")
    give(kind="feedback", name="score", value_type="number", value="4", span_id=span_id)
    give(kind="expectation", name="expected", value_type="json", value='{"city": "Paris"}')
    from tracking.models import Assessment

    score = Assessment.objects.get(name="score")
    give(overrides=score.assessment_id, value_type="label", value="great")

    [read] = run_mlflow(READ_SCRIPT, TRACE_ID=trace_id)

    # The client reads `valid` only on feedback (Expectation.from_proto leaves it None).
    assert read == [
        ["Feedback", "correct", True, True, "ok", "HUMAN", "alice", None, False],
        ["Expectation", "expected", {"city": "Paris"}, None, None, "HUMAN", "alice", None, False],
        ["Feedback", "score", 4, False, None, "HUMAN", "alice", span_id, False],
        ["Feedback", "score", "great", True, None, "HUMAN", "alice", span_id, True],
    ]
