from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import call_command

from tracking import demo
from tracking.models import Experiment, LoggedModel, Metric, Span, Trace

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
    counts = (
        Trace.objects.count(),
        Span.objects.count(),
        LoggedModel.objects.count(),
        Metric.objects.count(),
        Experiment.objects.count(),
    )

    load_demo(force=True)

    assert (
        Trace.objects.count(),
        Span.objects.count(),
        LoggedModel.objects.count(),
        Metric.objects.count(),
        Experiment.objects.count(),
    ) == counts


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
