"""`manage.py backfill_costs`: traces stored before cost at ingest get the costs ingest would
have given them, once, however often it runs."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from tracking import cost, ingest
from tracking.models import Experiment, Span, Trace

T0 = 1_780_000_000_000_000_000
MS = 1_000_000
GPT = {"input_tokens": 1200, "output_tokens": 300, "total_tokens": 1500}
GENAI = {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 90,
         "gen_ai.usage.output_tokens": 10}  # fmt: skip
SENT = {"input_cost": 1.0, "output_cost": 2.0, "total_cost": 3.0}  # a client's own cost


def trace_spans(n: int) -> list[ingest.SpanData]:
    """A trace of every kind of span ingest prices or passes over: MLflow usage with the model
    in the request, OpenTelemetry gen_ai, a priced parent around a priced child (counted
    once), a client-sent cost, an unknown model, and spans without usage."""
    trace_id = f"tr-{n:032x}"

    def span(span_id: str, parent: str, attributes: dict, **fields) -> ingest.SpanData:
        return ingest.make_span(trace_id=trace_id, span_id=span_id * 8, parent_span_id=parent,
                                name=span_id, start_ns=T0 + n * MS, end_ns=T0 + (n + 9) * MS,
                                span_type="LLM", status="OK", attributes=attributes,
                                **fields)  # fmt: skip

    root = "a0" * 8
    return [
        span("a0", "", {}),
        span("b1", root, {cost.USAGE_ATTRIBUTE: GPT}, inputs={"model": "gpt-4o-mini"}),
        span("b2", root, GENAI),
        span("b3", root, {cost.USAGE_ATTRIBUTE: GPT, cost.MODEL_ATTRIBUTE: "gpt-4.1"}),
        span("c3", "b3" * 8, {cost.USAGE_ATTRIBUTE: GPT, cost.MODEL_ATTRIBUTE: "gpt-4.1-mini"}),
        span("b4", root, {cost.USAGE_ATTRIBUTE: GPT, cost.COST_ATTRIBUTE: SENT}),
        span("b5", root, {cost.USAGE_ATTRIBUTE: GPT}, inputs={"model": "my-own-llama"}),
        span("b6", root, {"retrieved": 3}, inputs={"model": "gpt-4o-mini"}),
    ]


def stored_costs(experiment: Experiment) -> dict:
    traces = Trace.objects.filter(experiment=experiment).order_by("trace_id")
    spans = Span.objects.filter(trace__experiment=experiment).order_by("trace_id", "span_id")
    return {
        "traces": [(t.trace_id, t.cost, t.metadata.get(cost.TRACE_COST_METADATA)) for t in traces],
        "spans": [(s.span_id, s.attributes) for s in spans],
    }


def forget_costs(experiment: Experiment) -> None:
    """What a trace stored before cost at ingest looks like: no cost on its spans (but the
    one its client sent), none in its metadata or cost column."""
    for span in Span.objects.filter(trace__experiment=experiment):
        if span.attributes.get(cost.COST_ATTRIBUTE, {}).get("total_cost") != 3.0:
            span.attributes.pop(cost.COST_ATTRIBUTE, None)
            if span.span_id in ("b1" * 8, "b2" * 8, "b5" * 8):
                span.attributes.pop(cost.MODEL_ATTRIBUTE, None)  # set by ingest, not the client
            span.save(update_fields=["attributes"])
    for trace in Trace.objects.filter(experiment=experiment):
        trace.metadata.pop(cost.TRACE_COST_METADATA)
        trace.cost = None
        trace.save(update_fields=["metadata", "cost"])


def backfill(*args: str) -> str:
    out = io.StringIO()
    call_command("backfill_costs", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def old_traces(db) -> Experiment:
    """Three traces as ingest stores them today, then stripped of their costs."""
    experiment = Experiment.objects.create(name="before-costs")
    for n in range(3):
        ingest.store(spans=trace_spans(n), default_experiment_id=experiment.pk)
    experiment.as_ingested = stored_costs(experiment)
    forget_costs(experiment)
    return experiment


def test_it_prices_old_traces_exactly_as_ingest_does(old_traces):
    assert Trace.objects.filter(cost__isnull=False).count() == 0

    output = backfill("--batch", "2")

    assert stored_costs(old_traces) == old_traces.as_ingested
    assert "3 traces without a cost" in output
    assert "2/3 traces: 8 spans priced, 2 traces costed." in output
    assert "3/3 traces: 12 spans priced, 3 traces costed." in output


def test_the_trace_cost_counts_each_span_once(old_traces):
    backfill()

    trace = Trace.objects.get(trace_id=f"tr-{0:032x}")
    by_id = {s.span_id[:2]: s.attributes.get(cost.COST_ATTRIBUTE) for s in trace.spans.all()}
    # b3 rolls up c3: the child is not added again; the client's b4 cost is kept as sent.
    expected = sum(by_id[s]["total_cost"] for s in ("b1", "b2", "b3", "b4"))
    assert by_id["b4"]["total_cost"] == 3.0
    assert by_id["b5"] is None and by_id["a0"] is None
    assert trace.cost == pytest.approx(expected)
    assert json.loads(trace.metadata[cost.TRACE_COST_METADATA])["total_cost"] == trace.cost


def test_running_it_again_changes_nothing(old_traces):
    backfill("--batch", "1")
    first = stored_costs(old_traces)

    output = backfill()

    assert stored_costs(old_traces) == first
    assert "0 traces without a cost" in output


def test_a_trace_without_priced_spans_is_looked_at_again_and_left_without_cost(db):
    experiment = Experiment.objects.create(name="unpriced")
    unknown = trace_spans(7)[6]  # my-own-llama: no price anywhere
    ingest.store(spans=[unknown], default_experiment_id=experiment.pk)

    assert "1/1 traces: 0 spans priced, 0 traces costed." in backfill()
    assert "1/1 traces: 0 spans priced, 0 traces costed." in backfill()
    assert Trace.objects.get().cost is None


def test_it_keeps_to_one_experiment_when_asked(old_traces):
    other = Experiment.objects.create(name="other")
    ingest.store(spans=trace_spans(5), default_experiment_id=other.pk)
    forget_costs(other)

    output = backfill("--experiment", str(other.pk))

    assert "1/1 traces: 4 spans priced, 1 traces costed." in output
    assert Trace.objects.get(experiment=other).cost is not None
    assert not Trace.objects.filter(experiment=old_traces, cost__isnull=False).exists()


def test_bad_arguments_are_refused(db):
    with pytest.raises(CommandError, match="No experiment with id 999"):
        backfill("--experiment", "999")
    with pytest.raises(CommandError, match="--batch"):
        backfill("--batch", "0")
