"""One trace from several sources: the playground's record (info + its spans) and the spans an
agent exports over OTLP with the traceparent it was given, arriving in any order, some twice."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tracking import ingest
from tracking.models import Experiment, Span, Trace

pytestmark = pytest.mark.django_db

TRACE_ID = "tr-" + "4b" * 16
T0 = 1_700_000_000_000_000_000
MS = 1_000_000
ROOT, CALL, POST = "a1" * 8, "a2" * 8, "a3" * 8
PREDICT, LOOKUP = "b1" * 8, "b2" * 8


def playground_spans(finished: bool) -> list[ingest.SpanData]:
    end = (lambda ns: ns) if finished else (lambda ns: None)
    status = "OK" if finished else "UNSET"
    output = {"choices": [{"message": {"role": "assistant", "content": "Paris."}}]}
    return [
        ingest.make_span(trace_id=TRACE_ID, span_id=ROOT, parent_span_id="", name="playground",
                         start_ns=T0, end_ns=end(T0 + 100 * MS), span_type="CHAIN",
                         status=status, inputs={"messages": [{"role": "user", "content": "hi"}]},
                         outputs=output if finished else None),
        ingest.make_span(trace_id=TRACE_ID, span_id=CALL, parent_span_id=ROOT, name="support",
                         start_ns=T0 + 1 * MS, end_ns=end(T0 + 99 * MS), span_type="AGENT",
                         status=status),
        ingest.make_span(trace_id=TRACE_ID, span_id=POST, parent_span_id=CALL,
                         name="POST /invocations", start_ns=T0 + 2 * MS,
                         end_ns=end(T0 + 98 * MS), span_type="AGENT", status=status),
    ]  # fmt: skip


def playground_info(experiment: Experiment, finished: bool) -> ingest.TraceInfo:
    return ingest.TraceInfo(
        trace_id=TRACE_ID,
        experiment_id=experiment.pk,
        state="OK" if finished else "IN_PROGRESS",
        request_time=datetime.fromtimestamp(T0 / 1e9, tz=UTC),
        duration_ns=100 * MS if finished else None,
        request_preview="hi",
        response_preview="Paris." if finished else "",
        metadata={"mlflow.modelId": "m-" + "c" * 32, "spyglass.playground.run": "1"},
        tags={"mlflow.traceName": "playground: support", "spyglass.agent": "support"},
    )


def agent_spans() -> list[ingest.SpanData]:
    """What the agent exports: a root-less subtree whose top span's parent is the POST span
    named in the traceparent it received."""
    return [
        ingest.make_span(trace_id=TRACE_ID, span_id=PREDICT, parent_span_id=POST, name="predict",
                         start_ns=T0 + 10 * MS, end_ns=T0 + 90 * MS, span_type="AGENT",
                         status="OK", inputs={"messages": []}, outputs={"answer": "Paris."}),
        ingest.make_span(trace_id=TRACE_ID, span_id=LOOKUP, parent_span_id=PREDICT,
                         name="lookup_sources", start_ns=T0 + 20 * MS, end_ns=T0 + 40 * MS,
                         span_type="RETRIEVER", status="OK"),
    ]  # fmt: skip


def from_agent() -> None:
    # As tracking/otlp.py stores a batch: no info, the resource's service.name as a tag.
    ingest.store(spans=agent_spans(), trace_tags={TRACE_ID: {"service.name": "support-agent"}})


def from_playground(experiment: Experiment, finished: bool = True) -> None:
    ingest.store([playground_info(experiment, finished)], playground_spans(finished),
                 default_experiment_id=experiment.pk)  # fmt: skip


@pytest.fixture
def playground() -> Experiment:
    return Experiment.objects.create(name="Playground")


def assert_one_merged_trace(playground: Experiment) -> None:
    trace = Trace.objects.get()
    assert trace.trace_id == TRACE_ID
    assert trace.experiment_id == playground.pk
    assert trace.name == "playground: support"
    assert trace.state == "OK"
    assert trace.request_time == datetime.fromtimestamp(T0 / 1e9, tz=UTC)
    assert trace.duration_ns == 100 * MS
    assert (trace.request_preview, trace.response_preview) == ("hi", "Paris.")
    assert trace.model_id == "m-" + "c" * 32
    assert trace.tags["service.name"] == "support-agent"
    assert trace.span_count == 5
    spans = {s.span_id: s for s in Span.objects.filter(trace=trace)}
    assert len(spans) == 5
    roots = [s for s in spans.values() if not s.parent_span_id]
    assert [r.span_id for r in roots] == [ROOT]
    assert spans[PREDICT].parent_span_id == POST and spans[POST].parent_span_id == CALL
    assert spans[PREDICT].outputs == {"answer": "Paris."}
    assert spans[ROOT].outputs["choices"][0]["message"]["content"] == "Paris."


def test_agent_spans_after_the_playground_record_join_its_trace(playground):
    from_playground(playground)
    from_agent()

    assert_one_merged_trace(playground)


def test_agent_spans_before_the_playground_record_join_its_trace(playground):
    from_agent()
    assert Trace.objects.get().name == ""  # no root yet: nothing to name it by

    from_playground(playground)

    assert_one_merged_trace(playground)


def test_agent_spans_between_the_started_and_finished_records(playground):
    from_playground(playground, finished=False)
    from_agent()
    assert Trace.objects.get().state == "IN_PROGRESS"

    from_playground(playground)

    assert_one_merged_trace(playground)


def test_a_span_sent_twice_and_a_record_sent_twice_are_stored_once(playground):
    from_agent()
    from_playground(playground)
    from_agent()
    from_playground(playground)

    assert_one_merged_trace(playground)


def test_the_playground_record_leaves_the_agent_spans_as_they_were(playground):
    from_agent()
    before = {s.span_id: (s.name, s.start_ns, s.end_ns, s.outputs) for s in Span.objects.all()}

    from_playground(playground)

    after = {
        s.span_id: (s.name, s.start_ns, s.end_ns, s.outputs)
        for s in Span.objects.filter(span_id__in=before)
    }
    assert after == before
