from __future__ import annotations

import json
import random
import re
from collections import Counter
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import call_command

from tracking import demo, demo_evaluation
from tracking.models import (
    Assessment,
    DatasetRecord,
    EvaluationDataset,
    Experiment,
    LoggedModel,
    Metric,
    Run,
    Span,
    Trace,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def load_demo(**options) -> str:
    out = StringIO()
    call_command("demo_data", stdout=out, **options)
    return out.getvalue()


def all_payloads(data: demo.DemoData) -> list[demo.TracePayload]:
    return [*data.traces, data.batch]


def attribute(span: dict, key: str):
    return json.loads(span["attributes"][key])


# --- The command ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_logs_three_versions_of_support_agent_with_different_commits():
    load_demo()

    versions = list(LoggedModel.objects.versions_of("support-agent"))
    assert len(versions) == 3
    assert len({v.git_commit for v in versions}) == 3
    assert all(len(v.git_commit) == 40 for v in versions)
    assert {v.git_repo_url for v in versions} == {"https://github.com/acme/support-agent"}
    assert {v.params["temperature"] for v in versions} == {"0.2", "0.4", "0.7"}
    assert len({json.dumps(v.model_config, sort_keys=True) for v in versions}) == 3
    assert all(v.status == "LOGGED_MODEL_READY" and v.source_run for v in versions)
    assert Metric.objects.filter(logged_model__in=versions, key="eval/accuracy").count() == 3


@pytest.mark.django_db
def test_its_traces_are_linked_to_the_versions():
    load_demo()

    experiment = Experiment.objects.get(name="support-agent")
    model_ids = list(LoggedModel.objects.values_list("model_id", flat=True))
    linked = Trace.objects.filter(experiment=experiment, model_id__in=model_ids)
    assert linked.count() >= 50
    assert {t.model_id for t in linked} == set(model_ids)
    assert all(t.total_tokens for t in linked)


@pytest.mark.django_db
def test_its_spans_cover_the_agent_span_types():
    load_demo()

    types = set(Span.objects.values_list("span_type", flat=True))
    assert {"AGENT", "CHAIN", "LLM", "TOOL", "RETRIEVER"} <= types


@pytest.mark.django_db
def test_some_traces_fail_with_an_exception_event():
    load_demo()

    failed = Trace.objects.filter(state="ERROR")
    assert failed.exists()
    for trace in failed:
        error_spans = trace.spans.filter(status="ERROR")
        root = trace.spans.get(parent_span_id="")
        assert root.status == "ERROR"
        assert any(e["name"] == "exception" for s in error_spans for e in s.events)


@pytest.mark.django_db
def test_one_trace_has_over_five_thousand_spans():
    load_demo()

    big = Trace.objects.order_by("-span_count").first()
    assert big.span_count >= 5_000
    assert big.span_count == Span.objects.filter(trace=big).count()


@pytest.mark.django_db
def test_llm_spans_hold_chat_messages():
    load_demo()

    llm = Span.objects.filter(span_type="LLM", status="OK").first()
    assert {m["role"] for m in llm.inputs["messages"]} >= {"system", "user"}
    assert llm.outputs["choices"][0]["message"]["role"] == "assistant"
    assert "mlflow.chat.tokenUsage" in llm.attributes


@pytest.mark.django_db
def test_a_second_run_does_nothing():
    load_demo()
    counts = (Trace.objects.count(), Span.objects.count(), LoggedModel.objects.count())

    output = load_demo()

    assert "already holds traces" in output
    assert (Trace.objects.count(), Span.objects.count(), LoggedModel.objects.count()) == counts


@pytest.mark.django_db
def test_forcing_a_second_run_updates_rather_than_duplicates():
    load_demo()
    models = (Trace, Span, LoggedModel, Metric, Experiment, Run, Assessment)
    models += (EvaluationDataset, DatasetRecord, Run.linked_traces.through)
    counts = [model.objects.count() for model in models]
    digest = EvaluationDataset.objects.get().digest

    load_demo(force=True)

    assert [model.objects.count() for model in models] == counts
    assert EvaluationDataset.objects.get().digest == digest


# --- The builders (no database) -------------------------------------------------------------


def test_every_span_has_its_parent_in_the_same_trace():
    data = demo.build(experiment_id=1, now=NOW)

    for payload in all_payloads(data):
        span_ids = {s["span_id"] for s in payload.spans}
        roots = [s for s in payload.spans if s["parent_span_id"] is None]
        assert len(roots) == 1
        assert payload.spans[0] is roots[0]  # the client writes the root first
        assert all(s["parent_span_id"] in span_ids for s in payload.spans if s is not roots[0])
        assert len(span_ids) == len(payload.spans)


def test_children_lie_within_their_parents():
    data = demo.build(experiment_id=1, now=NOW)

    for payload in all_payloads(data):
        by_id = {s["span_id"]: s for s in payload.spans}
        for span in payload.spans:
            assert span["start_time_unix_nano"] <= span["end_time_unix_nano"]
            parent = by_id.get(span["parent_span_id"])
            if parent:
                assert parent["start_time_unix_nano"] <= span["start_time_unix_nano"]
                assert span["end_time_unix_nano"] <= parent["end_time_unix_nano"]


def test_spans_carry_their_mlflow_trace_id():
    data = demo.build(experiment_id=1, now=NOW)

    for payload in all_payloads(data):
        assert {attribute(s, "mlflow.traceRequestId") for s in payload.spans} == {payload.trace_id}


def test_a_failed_trace_marks_the_failing_span_and_its_ancestors():
    data = demo.build(experiment_id=1, now=NOW)
    failed = [p for p in data.traces if p.info["state"] == "ERROR"]

    assert 0.05 <= len(failed) / len(data.traces) <= 0.25
    for payload in failed:
        by_id = {s["span_id"]: s for s in payload.spans}
        errors = [s for s in payload.spans if s["status"]["code"] == "STATUS_CODE_ERROR"]
        assert "response_preview" not in payload.info
        for span in errors:
            assert span["events"][0]["name"] == "exception"
            assert "mlflow.spanOutputs" not in span["attributes"]
            parent = by_id.get(span["parent_span_id"])
            # A handled error (the carrier API's 404) stops at the tool; others reach the root.
            if parent and "CarrierAPIError" not in span["status"]["message"]:
                assert parent["status"]["code"] == "STATUS_CODE_ERROR"


def test_traces_link_every_version_and_spread_over_the_week():
    data = demo.build(experiment_id=1, now=NOW)

    model_ids = {p.info["trace_metadata"]["mlflow.modelId"] for p in data.traces}
    assert model_ids == {v.model_id for v in data.versions}
    days = {p.info["request_time"][:10] for p in data.traces}
    assert len(days) >= 6
    assert all(p.info["request_time"] < "2026-11-21T12:00" for p in data.traces)


def test_the_build_is_deterministic_for_a_seed():
    first = demo.build(experiment_id=1, now=NOW)
    again = demo.build(experiment_id=1, now=NOW)
    other = demo.build(experiment_id=1, now=NOW, seed=8)

    assert first == again
    assert {p.trace_id for p in first.traces}.isdisjoint(p.trace_id for p in other.traces)


def test_ids_do_not_depend_on_the_clock_or_the_trace_count():
    first = demo.build(experiment_id=1, now=NOW, trace_count=20)
    later = demo.build(experiment_id=1, now=datetime(2027, 1, 1, tzinfo=UTC), trace_count=64)

    assert [p.trace_id for p in later.traces[:20]] == [p.trace_id for p in first.traces]
    assert [v.model_id for v in later.versions] == [v.model_id for v in first.versions]


@pytest.mark.parametrize("n_spans", [1, 10, 100, 1_000])
def test_the_batch_trace_has_exactly_the_spans_asked_for(n_spans):
    payload = demo.batch_evaluation_trace(
        random.Random(n_spans), experiment_id=1, start_ns=1_795_294_591_376_191_837,
        n_spans=n_spans,
    )  # fmt: skip

    assert len(payload.spans) == n_spans
    assert attribute(payload.spans[0], "mlflow.spanType") == "AGENT"


# --- The evaluation loop --------------------------------------------------------------------


def _golden() -> EvaluationDataset:
    return EvaluationDataset.objects.get(name=demo_evaluation.DATASET_NAME)


def _evaluations_by_version() -> list[Run]:
    """The demo's evaluation runs, v1 first."""
    versions = list(LoggedModel.objects.versions_of("support-agent").order_by("created_at"))
    runs = {r.model_id: r for r in Run.objects.evaluations().on_dataset(_golden())}
    return [runs[v.model_id] for v in versions]


@pytest.mark.django_db
def test_it_loads_a_golden_dataset_linked_to_the_experiment_some_records_from_traces():
    load_demo()

    dataset = _golden()
    assert dataset.experiments.get().name == "support-agent"
    records = list(dataset.records.all())
    assert len(records) == dataset.record_count == 24
    assert all(isinstance(r.inputs["question"], str) for r in records)
    assert all(r.expectations["expected_response"] for r in records)
    assert sum("custom_inputs" in r.inputs for r in records) >= 3
    from_traces = [r for r in records if r.source_type == "TRACE"]
    assert len(from_traces) == 8
    assert Trace.objects.filter(trace_id__in=[r.source_id for r in from_traces]).count() == 8


@pytest.mark.django_db
def test_each_version_is_evaluated_on_the_dataset_as_mlflow_genai_evaluate_leaves_it():
    load_demo()

    runs = _evaluations_by_version()
    assert len(runs) == 3
    for run in runs:
        assert run.status == "FINISHED" and run.row_count == 24
        assert run.dataset_name == "support-golden" and run.evaluation_dataset_id
        assert set(run.scores) == {"correctness", "is_concise", "relevance_to_query"}
        traces = run.linked_traces.all()
        assert {t.metadata["mlflow.sourceRun"] for t in traces} == {run.run_id}
        assert {t.model_id for t in traces} == {run.model_id}
        assert all(t.cost for t in traces)  # priced by ingest from the LLM span
        mine = [
            a
            for a in Assessment.objects.filter(trace__in=traces)
            if a.metadata.get("mlflow.assessment.sourceRunId") == run.run_id
        ]
        assert len(mine) == 24 * 4  # three scorers and the expectation, per row
    v1, v2, v3 = (run.scores["correctness"]["mean"] for run in runs)
    assert v1 < v3 < v2
    metric = Metric.objects.get(run=runs[2], key="correctness/mean")
    assert (metric.dataset_name, metric.dataset_digest) == ("support-golden", _golden().digest)
    assert metric.logged_model.model_id == runs[2].model_id


@pytest.mark.django_db
def test_comparing_the_last_two_versions_shows_regressions_first(client):
    load_demo()
    _, v2, v3 = _evaluations_by_version()

    html = client.get(f"/evaluations/compare/?runs={v2.run_id},{v3.run_id}").content.decode()

    categories = re.findall(r'data-category="(\w+)"', html)
    assert len(categories) == 24
    assert categories[:4] == ["regression"] * 4
    assert categories[4:7] == ["improvement"] * 3
    assert set(categories[7:]) == {"unchanged"}
    first_row = html[html.index('data-category="regression"') :]
    assert first_row[: first_row.index("</tr>")].count("data-trace-link") == 2


@pytest.mark.django_db
def test_the_home_and_evaluation_pages_render_with_the_demo(client):
    load_demo()
    runs = _evaluations_by_version()
    dataset = _golden()

    for url in [
        "/",
        "/evaluations/",
        f"/evaluations/{runs[2].run_id}/",
        "/datasets/",
        f"/datasets/{dataset.dataset_id}/",
        f"/models/{runs[2].model_id}/",
        "/traces/",
    ]:
        response = client.get(url)
        assert response.status_code == 200, url
    model_page = client.get(f"/models/{runs[2].model_id}/").content.decode()
    assert f"/evaluations/{runs[2].run_id}/" in model_page
    assert "support-golden" in client.get("/evaluations/").content.decode()


@pytest.mark.django_db
def test_customers_leave_feedback_and_sessions_run_over_several_turns():
    load_demo()

    feedback = Assessment.objects.filter(name="user_satisfaction")
    assert feedback.count() >= 5
    assert set(feedback.values_list("source_type", flat=True)) == {"HUMAN"}
    assert {True, False} <= set(feedback.values_list("value", flat=True))
    turns = Counter(Trace.objects.exclude(session_id=None).values_list("session_id", flat=True))
    assert sum(n >= 2 for n in turns.values()) >= 3


def test_the_evaluation_demo_is_deterministic_and_its_rows_match_the_records():
    data = demo.build(experiment_id=1, now=NOW)
    first = demo_evaluation.build(data, experiment_id=1, seed=7, now=NOW)
    again = demo_evaluation.build(data, experiment_id=1, seed=7, now=NOW)

    assert first == again
    record_inputs = [r.inputs for r in first.records]
    for evaluation in first.evaluations:
        roots = [attribute(t.spans[0], "mlflow.spanInputs") for t in evaluation.traces]
        assert roots == record_inputs  # rows match across runs by their inputs
