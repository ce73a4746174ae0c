from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from tests.payloads import T0, mlflow_trace
from tracking import ingest
from tracking.models import Experiment, Span, Trace


@pytest.mark.django_db
def test_the_same_1000_span_trace_sent_three_times_is_stored_once():
    trace = mlflow_trace(1000)

    for _ in range(3):
        ingest.store_trace(trace["info"], trace["spans"])

    stored = Trace.objects.get(trace_id=trace["trace_id"])
    assert Trace.objects.count() == 1
    assert Span.objects.filter(trace=stored).count() == 1000
    assert stored.span_count == 1000


@pytest.mark.django_db
def test_ingest_uses_a_constant_number_of_queries(django_assert_max_num_queries):
    small, large = mlflow_trace(10), mlflow_trace(1000)

    with django_assert_max_num_queries(12) as small_queries:
        ingest.store_trace(small["info"], small["spans"])
    with django_assert_max_num_queries(12) as large_queries:
        ingest.store_trace(large["info"], large["spans"])

    assert len(large_queries.captured_queries) == len(small_queries.captured_queries)


@pytest.mark.django_db
def test_many_traces_in_one_call_cost_no_more_queries(django_assert_max_num_queries):
    traces = [mlflow_trace(20) for _ in range(50)]

    with django_assert_max_num_queries(12):
        result = ingest.store_traces([(t["info"], t["spans"]) for t in traces])

    assert result.traces_created == 50
    assert Span.objects.count() == 1000


@pytest.mark.django_db
def test_trace_info_columns_are_copied_out_for_lists():
    trace = mlflow_trace(3)

    ingest.store_trace(trace["info"], trace["spans"])

    stored = Trace.objects.get(trace_id=trace["trace_id"])
    assert stored.experiment_id == 0
    assert stored.name == "agent"
    assert stored.state == "OK"
    assert stored.request_time == datetime(2026, 11, 21, 20, 56, 31, 376000, tzinfo=UTC)
    assert stored.duration_ns == 85_000_000
    assert stored.model_id == "m-" + "a" * 32
    assert stored.total_tokens == 15
    assert stored.tags == {"mlflow.traceName": "agent", "session": "s-1"}
    assert stored.has_info


@pytest.mark.django_db
def test_span_attributes_are_decoded_into_columns():
    trace = mlflow_trace(2)

    ingest.store_trace(None, trace["spans"])

    root, child = Span.objects.filter(trace__trace_id=trace["trace_id"]).order_by("start_ns")
    assert root.parent_span_id == ""
    assert child.parent_span_id == root.span_id
    assert len(root.span_id) == 16
    assert root.span_type == "AGENT"
    assert child.span_type == "LLM"
    assert root.inputs == {"messages": [{"role": "user", "content": "question 0"}]}
    assert root.outputs == {"answer": "answer 0"}
    # Decoded values; the ones with columns of their own are not kept twice.
    assert root.attributes == {"mlflow.spanLogLevel": 20, "agent.version": "1.2"}
    assert root.start_ns == T0
    assert root.status == "OK"


@pytest.mark.django_db
def test_spans_before_info_create_the_trace_and_the_info_then_wins():
    trace = mlflow_trace(5)

    ingest.store_trace(None, trace["spans"])
    derived = Trace.objects.get(trace_id=trace["trace_id"])
    assert not derived.has_info
    assert derived.state == "OK"
    assert derived.name == "agent"
    assert derived.duration_ns == 5 * 1_000 + 500
    assert derived.span_count == 5

    ingest.store_trace(trace["info"], None)

    stored = Trace.objects.get(trace_id=trace["trace_id"])
    assert stored.has_info
    assert stored.duration_ns == 85_000_000
    assert stored.span_count == 5
    assert stored.request_preview == "question 0"


@pytest.mark.django_db
def test_spans_after_info_do_not_overwrite_it():
    trace = mlflow_trace(5)

    ingest.store_trace(trace["info"], None)
    ingest.store_trace(None, trace["spans"])

    stored = Trace.objects.get(trace_id=trace["trace_id"])
    assert stored.duration_ns == 85_000_000
    assert stored.tags["session"] == "s-1"
    assert stored.span_count == 5


@pytest.mark.django_db
def test_a_more_complete_version_updates_the_trace():
    trace = mlflow_trace(6)
    open_root = dict(trace["spans"][0], end_time_unix_nano=None)
    in_progress = {**trace["info"], "state": "IN_PROGRESS"}
    del in_progress["execution_duration"]

    ingest.store_trace(in_progress, [open_root, *trace["spans"][1:3]])
    first = Trace.objects.get(trace_id=trace["trace_id"])
    assert (first.state, first.span_count, first.duration_ns) == ("IN_PROGRESS", 3, None)
    assert Span.objects.get(trace=first, parent_span_id="").end_ns is None

    ingest.store_trace(trace["info"], trace["spans"])

    final = Trace.objects.get(trace_id=trace["trace_id"])
    assert (final.state, final.span_count, final.duration_ns) == ("OK", 6, 85_000_000)
    assert Span.objects.get(trace=final, parent_span_id="").end_ns is not None


@pytest.mark.django_db
def test_tags_added_later_survive_a_resent_info():
    trace = mlflow_trace(1)
    ingest.store_trace(trace["info"], trace["spans"])
    Trace.objects.filter(trace_id=trace["trace_id"]).update(
        tags={"mlflow.traceName": "agent", "session": "s-1", "reviewed": "yes"}
    )

    ingest.store_trace(trace["info"], trace["spans"])

    assert Trace.objects.get(trace_id=trace["trace_id"]).tags["reviewed"] == "yes"


@pytest.mark.django_db
def test_an_error_trace_keeps_its_exception_event():
    trace = mlflow_trace(3, error=True)

    ingest.store_trace(None, trace["spans"])

    stored = Trace.objects.get(trace_id=trace["trace_id"])
    root = stored.spans.get(parent_span_id="")
    assert stored.state == "ERROR"
    assert root.status == "ERROR"
    assert root.status_message == "ValueError: kaboom"
    assert root.events[0]["name"] == "exception"
    assert root.events[0]["attributes"]["exception.type"] == "ValueError"


@pytest.mark.django_db
def test_hex_ids_are_accepted_like_base64_ones():
    trace = mlflow_trace(2)
    for span in trace["spans"]:
        span["trace_id"] = base64.b64decode(span["trace_id"]).hex()
        span["span_id"] = base64.b64decode(span["span_id"]).hex().upper()
        del span["attributes"]["mlflow.traceRequestId"]

    ingest.store_trace(None, trace["spans"])

    assert Trace.objects.get(trace_id=trace["trace_id"]).span_count == 2


@pytest.mark.django_db
def test_hostile_values_are_stored_without_breaking_the_batch():
    trace = mlflow_trace(2)
    trace["spans"][1]["name"] = "nul\x00byte" + "x" * 5000
    trace["spans"][1]["attributes"]["mlflow.spanOutputs"] = '{"score": NaN, "t": "a\\u0000b"}'
    trace["spans"][1]["attributes"]["not-json"] = "{oops"

    ingest.store_trace(None, trace["spans"])

    span = Span.objects.get(name__startswith="nul")
    assert "\x00" not in span.name
    assert len(span.name) == ingest.NAME_MAX_CHARS
    assert span.outputs == {"score": None, "t": "ab"}
    assert span.attributes["not-json"] == "{oops"


@pytest.mark.django_db
def test_trace_info_for_another_experiment():
    experiment = Experiment.objects.create(name="support")
    trace = mlflow_trace(1)
    trace["info"]["trace_location"]["mlflow_experiment"]["experiment_id"] = str(experiment.pk)

    ingest.store_trace(trace["info"], trace["spans"])

    assert Trace.objects.get(trace_id=trace["trace_id"]).experiment == experiment


@pytest.mark.django_db
def test_a_span_ending_before_it_starts_is_kept_lasting_no_time():
    trace = mlflow_trace(2)
    trace["spans"][1]["end_time_unix_nano"] = 1  # a wall clock stepped back

    ingest.store_trace(trace["info"], trace["spans"])

    late = Span.objects.get(name="step-1")
    assert late.end_ns == late.start_ns == T0 + 1_000
    assert Trace.objects.get().span_count == 2


def _bad(mutate):
    trace = mlflow_trace(2)
    mutate(trace)
    return trace


BAD_INPUTS = {
    "info not an object": (lambda t: t.update(info=["x"]), "trace_info must be a JSON object"),
    "trace id shape": (lambda t: t["info"].update(trace_id="tr-xyz"), "trace_info.trace_id"),
    "state": (lambda t: t["info"].update(state="DONE"), "trace_info.state"),
    "timestamp": (lambda t: t["info"].update(request_time="yesterday"), "request_time"),
    "duration": (lambda t: t["info"].update(execution_duration="fast"), "execution_duration"),
    "experiment id": (
        lambda t: t["info"]["trace_location"]["mlflow_experiment"].update(experiment_id="abc"),
        "experiment_id must be a number",
    ),
    "unknown experiment": (
        lambda t: t["info"]["trace_location"]["mlflow_experiment"].update(experiment_id="999"),
        "Experiment 999 does not exist",
    ),
    "metadata type": (lambda t: t["info"].update(trace_metadata="x"), "trace_metadata"),
    "spans not a list": (lambda t: t.update(spans={"a": 1}), "spans must be a list"),
    "span id": (lambda t: t["spans"][1].update(span_id="nope"), "spans[1].span_id"),
    "parent id": (lambda t: t["spans"][1].update(parent_span_id="AAAA"), "parent_span_id"),
    "start missing": (
        lambda t: t["spans"][0].pop("start_time_unix_nano"),
        "spans[0].start_time_unix_nano is required",
    ),
    "start type": (
        lambda t: t["spans"][0].update(start_time_unix_nano="soon"),
        "spans[0].start_time_unix_nano must be an integer",
    ),
    "status": (lambda t: t["spans"][0].update(status={"code": "MEH"}), "status.code"),
    "status type": (lambda t: t["spans"][0].update(status={"code": ["OK"]}), "status.code"),
    "attributes": (lambda t: t["spans"][0].update(attributes=[1]), "spans[0].attributes"),
    "events": (lambda t: t["spans"][0].update(events=["boom"]), "spans[0].events"),
    "name": (lambda t: t["spans"][0].update(name=None), "spans[0].name must be a string"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_raises_one_clear_error_and_stores_nothing(case):
    good = mlflow_trace(3)
    ingest.store_trace(good["info"], good["spans"])
    mutate, message = BAD_INPUTS[case]
    bad = _bad(mutate)

    with pytest.raises(ingest.IngestError) as raised:
        ingest.store_trace(bad["info"], bad["spans"])

    assert message in raised.value.message
    assert list(Trace.objects.values_list("trace_id", flat=True)) == [good["trace_id"]]
    assert Span.objects.count() == 3


def test_parsing_needs_no_database():
    trace = mlflow_trace(1)

    info = ingest.parse_trace_info(trace["info"])
    span = ingest.parse_span(trace["spans"][0])

    assert info.duration_ns == 85_000_000
    assert span.trace_id == trace["trace_id"]
    assert span.span_type == "AGENT"


@pytest.mark.django_db
def test_tokens_of_a_trace_without_info_are_summed_from_its_spans_once():
    trace = mlflow_trace(3)
    for span in trace["spans"][1:]:
        span["attributes"]["mlflow.chat.tokenUsage"] = json.dumps(
            {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}
        )

    ingest.store_trace(None, trace["spans"])
    ingest.store_trace(None, trace["spans"])

    assert Trace.objects.get(trace_id=trace["trace_id"]).total_tokens == 20


@pytest.mark.django_db
def test_the_token_total_a_client_sent_wins_over_the_spans():
    trace = mlflow_trace(2)
    trace["spans"][1]["attributes"]["mlflow.chat.tokenUsage"] = json.dumps({"total_tokens": 99})

    ingest.store_trace(trace["info"], trace["spans"])

    assert Trace.objects.get(trace_id=trace["trace_id"]).total_tokens == 15


@pytest.mark.django_db
def test_trace_tags_merge_without_freezing_derived_columns():
    trace = mlflow_trace(2)
    spans = [ingest.parse_span(s) for s in trace["spans"]]

    ingest.store([], spans[1:], trace_tags={trace["trace_id"]: {"service.name": "agent-svc"}})
    ingest.store([], spans[:1])

    stored = Trace.objects.get(trace_id=trace["trace_id"])
    assert stored.tags["service.name"] == "agent-svc"
    assert stored.name == "agent"  # derived from the root span that came second
    assert not stored.has_info


@pytest.mark.django_db
@pytest.mark.parametrize("total", ["abc", 1.5, 2**64, True, -3])
def test_a_token_count_that_is_not_a_count_is_dropped_not_a_500(total):
    trace = mlflow_trace(2)
    trace["spans"][1]["attributes"]["mlflow.chat.tokenUsage"] = json.dumps(
        {"input_tokens": 1, "total_tokens": total}
    )

    ingest.store_trace(None, trace["spans"])

    stored = Trace.objects.get(trace_id=trace["trace_id"])
    assert stored.total_tokens is None
    assert stored.spans.get(name="step-1").attributes["mlflow.chat.tokenUsage"] == {
        "input_tokens": 1
    }


@pytest.mark.django_db
def test_values_over_the_cap_are_replaced_by_a_visible_marker(settings):
    settings.SPYGLASS_MAX_SPAN_FIELD_BYTES = 1000
    trace = mlflow_trace(2)
    root, child = trace["spans"]
    root["attributes"]["mlflow.spanInputs"] = json.dumps({"document": "é" * 2000})
    child["attributes"]["big"] = json.dumps("x" * 5000)
    child["attributes"]["mlflow.chat.tokenUsage"] = json.dumps({"total_tokens": 12})

    ingest.store_trace(None, trace["spans"])

    stored_root = Span.objects.get(parent_span_id="")
    marker = stored_root.inputs
    assert marker[ingest.TRUNCATED] is True
    assert marker["original_bytes"] == len('{"document":""}') + 2 * 2000  # é is 2 bytes
    assert marker["preview"].startswith('{"document":"ééé')
    stored_child = Span.objects.exclude(parent_span_id="").get()
    assert stored_child.attributes["big"][ingest.TRUNCATED] is True
    # Small values beside a huge one stay whole, and still count.
    assert stored_child.attributes["mlflow.chat.tokenUsage"] == {"total_tokens": 12}
    assert Trace.objects.get().total_tokens == 12


@pytest.mark.django_db
def test_request_times_are_stored_in_utc_whatever_their_offset():
    # Found by schemathesis: PostgreSQL refuses offsets past 15:59, which Python accepts.
    trace = mlflow_trace(1)
    trace["info"]["request_time"] = "2026-03-27T11:51:17-16:19"

    ingest.store_trace(trace["info"], trace["spans"])

    stored = Trace.objects.get().request_time
    assert stored == datetime(2026, 3, 28, 4, 10, 17, tzinfo=UTC)


@pytest.mark.parametrize("value", [10**30, -(10**20), float("inf")])
def test_an_epoch_time_out_of_range_is_a_clear_error(value):
    trace = mlflow_trace(1)
    trace["info"]["request_time"] = value

    with pytest.raises(ingest.IngestError, match="out of range"):
        ingest.parse_trace_info(trace["info"])


@pytest.mark.django_db
def test_an_info_built_in_process_may_carry_a_nul_in_its_previews():
    """The playground and the evaluation runner build TraceInfo from an agent's answer as it
    came; PostgreSQL refuses NUL in text, so ingest drops it rather than fail the batch."""
    info = ingest.TraceInfo(
        trace_id="tr-" + "ab" * 16,
        state="OK",
        request_time=datetime(2026, 1, 1, tzinfo=UTC),
        request_preview="ask\x00ed",
        response_preview="an\x00swer",
    )
    ingest.store([info])
    trace = Trace.objects.get()
    assert (trace.request_preview, trace.response_preview) == ("asked", "answer")
