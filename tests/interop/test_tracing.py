"""Traces through the real mlflow client: export (StartTraceV3 + traces.json), read back,
tags, filters, deletes; and traces stored by other paths read back by the client."""

from __future__ import annotations

import base64
import json
import os
import urllib.request

from tracking import ingest
from tracking.models import Experiment, Span, Trace

TRACING_SCRIPT = """
    from mlflow.entities import SpanType

    mlflow.set_experiment("tracing")

    @mlflow.trace
    def inner(x):
        return x * 2

    @mlflow.trace(attributes={"custom.attr": "v1"})
    def outer(question, n):
        return {"answer": question + "!", "y": inner(n)}

    @mlflow.trace(span_type=SpanType.LLM)
    def boom():
        raise ValueError("kaboom")

    outer("hello", 21)
    with mlflow.start_span("Audit Agent", span_type=SpanType.AGENT) as span:
        span.set_inputs({"messages": [{"role": "user", "content": "audit please"}]})
        span.set_attributes({"agent.version": "1.2", "agent.tools": ["search", "calc"]})
        with mlflow.start_span("tool_call", span_type=SpanType.TOOL) as tool:
            tool.set_inputs({"q": "x"})
            tool.set_outputs("tool-result")
        span.set_outputs({"verdict": "ok"})
    try:
        boom()
    except ValueError:
        pass
    mlflow.flush_trace_async_logging()

    def spans(trace):
        return sorted(
            [s.name, s.span_type, s.inputs, s.outputs, s.status.status_code.value,
             s.parent_id is None, s.attributes.get("agent.tools")]
            for s in trace.data.spans
        )

    traces = mlflow.search_traces(return_type="list")
    result({t.info.tags["mlflow.traceName"]: spans(t) for t in traces})
    error = next(t for t in traces if t.info.state == "ERROR")
    fetched = mlflow.get_trace(error.info.trace_id)
    result({"state": fetched.info.state, "spans": spans(fetched),
            "events": [e.name for e in fetched.data.spans[0].events]})

    mlflow.set_trace_tag(error.info.trace_id, "reviewed", "yes")
    tagged = mlflow.get_trace(error.info.trace_id).info.tags.get("reviewed")
    mlflow.delete_trace_tag(error.info.trace_id, "reviewed")
    untagged = mlflow.get_trace(error.info.trace_id).info.tags.get("reviewed")
    ok = mlflow.search_traces(filter_string="trace.status = 'OK'", order_by=["timestamp_ms DESC"],
                              max_results=1, return_type="list", include_spans=False)
    named = mlflow.search_traces(filter_string="tags.`mlflow.traceName` = 'Audit Agent'",
                                 return_type="list")
    result({"tagged": tagged, "untagged": untagged,
            "newest_ok": [t.info.tags["mlflow.traceName"] for t in ok],
            "named": [len(t.data.spans) for t in named]})
"""


def test_traces_are_stored_and_read_back_with_every_span(run_mlflow):
    by_name, error, tags = run_mlflow(TRACING_SCRIPT)

    assert by_name == {
        "outer": [
            ["inner", "UNKNOWN", {"x": 21}, 42, "OK", False, None],
            ["outer", "UNKNOWN", {"question": "hello", "n": 21}, {"answer": "hello!", "y": 42},
             "OK", True, None],
        ],
        "Audit Agent": [
            ["Audit Agent", "AGENT", {"messages": [{"role": "user", "content": "audit please"}]},
             {"verdict": "ok"}, "OK", True, ["search", "calc"]],
            ["tool_call", "TOOL", {"q": "x"}, "tool-result", "OK", False, None],
        ],
        "boom": [["boom", "LLM", {}, None, "ERROR", True, None]],
    }  # fmt: skip
    assert error == {"state": "ERROR", "spans": by_name["boom"], "events": ["exception"]}
    assert tags == {"tagged": "yes", "untagged": None, "newest_ok": ["Audit Agent"],
                    "named": [2]}  # fmt: skip

    experiment = Experiment.objects.get(name="tracing")
    traces = {t.name: t for t in Trace.objects.filter(experiment=experiment)}
    assert set(traces) == {"outer", "Audit Agent", "boom"}
    assert traces["boom"].state == "ERROR"
    assert traces["outer"].span_count == 2
    assert traces["Audit Agent"].request_preview == "audit please"
    boom = Span.objects.get(trace=traces["boom"])
    assert boom.status == "ERROR" and boom.status_message == "ValueError: kaboom"
    (event,) = boom.events
    assert event["name"] == "exception"
    assert event["attributes"]["exception.message"] == "kaboom"
    audit = Span.objects.get(trace=traces["Audit Agent"], name="Audit Agent")
    assert audit.inputs == {"messages": [{"role": "user", "content": "audit please"}]}
    assert audit.outputs == {"verdict": "ok"}
    assert audit.attributes["agent.tools"] == ["search", "calc"]


def _post(url: str, body: bytes, method: str = "POST") -> int:
    request = urllib.request.Request(
        url, data=body, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def test_the_same_trace_sent_twice_is_stored_once(run_mlflow, mlflow_server):
    run_mlflow(
        """
        mlflow.set_experiment("twice")
        with mlflow.start_span("root") as span:
            span.set_inputs({"q": 1})
            with mlflow.start_span("child") as child:
                child.set_outputs("done")
        mlflow.flush_trace_async_logging()
        """,
        MLFLOW_ENABLE_ASYNC_TRACE_LOGGING="false",
    )
    trace = Trace.objects.get()
    info = {
        "trace": {
            "trace_info": {
                "trace_id": trace.trace_id,
                "trace_location": {
                    "type": "MLFLOW_EXPERIMENT",
                    "mlflow_experiment": {"experiment_id": str(trace.experiment_id)},
                },
                "request_time": "2026-11-21T20:56:31.290Z",
                "execution_duration": "0.085s",
                "state": "OK",
                "tags": {"mlflow.traceName": "root"},
            }
        }
    }
    path = f"{trace.experiment_id}/traces/{trace.trace_id}/artifacts/traces.json"
    url = f"{mlflow_server}/api/2.0/mlflow-artifacts/artifacts/{path}"
    with urllib.request.urlopen(url, timeout=10) as response:  # as the client downloads it
        document = response.read()

    for _ in range(2):
        assert _post(f"{mlflow_server}/api/3.0/mlflow/traces", json.dumps(info).encode()) == 200
        assert _post(url, document, method="PUT") == 200

    assert Trace.objects.count() == 1
    assert Span.objects.filter(trace=trace).count() == 2
    assert Trace.objects.get().span_count == 2


def test_traces_stored_by_other_paths_are_read_back_by_the_client(run_mlflow):
    experiment = Experiment.objects.create(name="native")
    spans = []
    otel_trace_id = os.urandom(16)
    trace_id = f"tr-{otel_trace_id.hex()}"
    span_ids = [os.urandom(8) for _ in range(3)]
    for i, span_id in enumerate(span_ids):
        spans.append(
            {
                "trace_id": _b64(otel_trace_id),
                "span_id": _b64(span_id),
                "parent_span_id": None if i == 0 else _b64(span_ids[0]),
                "name": ["agent", "retrieve", "llm"][i],
                "start_time_unix_nano": 1_795_294_591_376_191_837 + i * 1000,
                "end_time_unix_nano": 1_795_294_591_376_191_837 + 10_000 - i,
                "events": [],
                "status": {"code": "STATUS_CODE_OK", "message": ""},
                "attributes": {
                    "mlflow.traceRequestId": json.dumps(trace_id),
                    "mlflow.spanType": json.dumps(["AGENT", "RETRIEVER", "LLM"][i]),
                    "mlflow.spanInputs": json.dumps({"question": f"q{i}", "k": i}),
                    "mlflow.spanOutputs": json.dumps([{"doc": "ü", "score": 0.5}]),
                    "mlflow.chat.tokenUsage": json.dumps({"total_tokens": 7}),
                },
                "links": [],
            }
        )
    info = {
        "trace_id": trace_id,
        "trace_location": {
            "type": "MLFLOW_EXPERIMENT",
            "mlflow_experiment": {"experiment_id": str(experiment.pk)},
        },
        "request_time": "2026-11-21T20:56:31.376Z",
        "execution_duration": "0.010s",
        "state": "OK",
        "tags": {"mlflow.traceName": "agent"},
    }
    ingest.store_trace(info, spans)
    # A second trace as a writer that keeps spans in the tracking store would tag it: the
    # client then reads it through traces/get and batchGet instead of traces.json.
    other_tags = {"mlflow.traceName": "other", "mlflow.trace.spansLocation": "TRACKING_STORE"}
    other = {**info, "trace_id": f"tr-{os.urandom(16).hex()}", "tags": other_tags}
    other_spans = [
        {**s, "trace_id": _b64(bytes.fromhex(other["trace_id"][3:])),
         "attributes": {**s["attributes"], "mlflow.traceRequestId": json.dumps(other["trace_id"])}}
        for s in spans
    ]  # fmt: skip
    ingest.store_trace(other, other_spans)

    (found,) = run_mlflow(
        f"""
        def spans(trace):
            return sorted([s.name, s.span_type, s.inputs, s.outputs, s.parent_id is None]
                          for s in trace.data.spans)

        result({{
            "get": spans(mlflow.get_trace("{trace_id}")),
            "get_other": spans(mlflow.get_trace("{other["trace_id"]}")),
            "search": sorted(spans(t) for t in mlflow.search_traces(
                locations=["{experiment.pk}"], return_type="list")),
        }})
        mlflow.MlflowClient().delete_traces("{experiment.pk}", trace_ids=["{trace_id}"])
        """
    )

    expected = sorted(
        [s["name"], json.loads(s["attributes"]["mlflow.spanType"]),
         json.loads(s["attributes"]["mlflow.spanInputs"]),
         json.loads(s["attributes"]["mlflow.spanOutputs"]), s["parent_span_id"] is None]
        for s in spans
    )  # fmt: skip
    assert found == {"get": expected, "get_other": expected, "search": [expected, expected]}
    assert list(Trace.objects.values_list("trace_id", flat=True)) == [other["trace_id"]]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
