"""Dataset records made from traces, as MLflow's client makes them (`merge_records` of a
`search_traces` result): the root span's inputs and outputs, the trace's expectations, and a
TRACE source naming the trace. Merged by inputs through `EvaluationDataset.merge_records`."""

from __future__ import annotations

from typing import Any

from tracking.models import Assessment, Span, Trace

EXPECTED_RESPONSE = "expected_response"  # the key MLflow's built-in judges read
SESSION_KEY = "mlflow.trace.session"


def records_from_traces(traces: list[Trace], outputs_as_expected: bool) -> list[dict[str, Any]]:
    """One record per trace, in the given order; three queries whatever their number."""
    pks = [trace.pk for trace in traces]
    roots: dict[int, tuple[Any, Any]] = {}
    # The earliest span without a parent is the root (a trace sent in parts may hold more).
    rows = Span.objects.filter(trace_id__in=pks, parent_span_id="").order_by("-start_ns", "-pk")
    for trace_pk, inputs, outputs in rows.values_list("trace_id", "inputs", "outputs"):
        roots[trace_pk] = (inputs, outputs)
    expectations: dict[int, dict[str, Any]] = {pk: {} for pk in pks}
    found = Assessment.objects.filter(trace_id__in=pks, kind="expectation", valid=True)
    for trace_pk, name, value in found.order_by("created_at", "pk").values_list(
        "trace_id", "name", "value"
    ):
        expectations[trace_pk][name] = value
    records = []
    for trace in traces:
        inputs, outputs = roots.get(trace.pk, (None, None))
        expected = dict(expectations[trace.pk])
        if outputs_as_expected and outputs is not None:
            expected[EXPECTED_RESPONSE] = outputs
        source_data = {"trace_id": trace.trace_id}
        if session := (trace.metadata or {}).get(SESSION_KEY):
            source_data["session_id"] = session
        records.append(
            {
                "inputs": _as_inputs(inputs),
                "outputs": outputs,
                "expectations": expected,
                "source": {"source_type": "TRACE", "source_data": source_data},
            }
        )
    return records


def _as_inputs(value: Any) -> dict[str, Any]:
    # A record's inputs are keyword arguments (mlflow.genai.evaluate calls predict_fn(**inputs));
    # a root span that took one bare value (OpenTelemetry spans often do) keeps it under a name.
    if value is None:
        return {}
    return value if isinstance(value, dict) else {"request": value}
