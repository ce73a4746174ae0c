"""QueryTraceMetrics through the real mlflow client: traces logged by `@mlflow.trace` with
sessions, token usage and a model version, feedback logged with `log_feedback`, then the
client's own `query_trace_metrics` (its REST store, as MLflow's UI and `mlflow.genai` call it)
reads counts, latency, tokens, sessions, span costs and assessment values back."""

from __future__ import annotations

import pytest

from tracking.models import Trace

SCRIPT = """
import time
from mlflow.entities.trace_metrics import AggregationType, MetricAggregation, MetricViewType
from mlflow.tracking._tracking_service.utils import _get_store

experiment_id = mlflow.set_experiment("metrics").experiment_id
mlflow.set_active_model(name="agent-v1")

@mlflow.trace(span_type="CHAT_MODEL")
def llm(question):
    span = mlflow.get_current_active_span()
    span.set_attribute(
        "mlflow.chat.tokenUsage", {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
    )
    span.set_attribute("mlflow.llm.model", "gpt-4o-mini")
    return "four"

@mlflow.trace
def agent(question, n):
    mlflow.update_current_trace(metadata={"mlflow.trace.session": f"session-{n % 2}"})
    if n == 3:
        raise ValueError("boom")
    return llm(question)

for n in range(5):
    try:
        agent("what is two plus two", n)
    except ValueError:
        pass
mlflow.flush_trace_async_logging()
traces = mlflow.search_traces(experiment_ids=[experiment_id], return_type="list")
ok = [t for t in traces if t.info.state.value == "OK"]
mlflow.log_feedback(trace_id=ok[0].info.trace_id, name="correct", value=True)
mlflow.log_feedback(trace_id=ok[1].info.trace_id, name="correct", value=False)
mlflow.log_feedback(trace_id=ok[2].info.trace_id, name="correct", value=True)

store = _get_store()
now = int(time.time() * 1000)

def ask(view, metric, aggregations, **kwargs):
    points = store.query_trace_metrics(
        experiment_ids=[experiment_id],
        view_type=view,
        metric_name=metric,
        aggregations=[MetricAggregation(*a) for a in aggregations],
        **kwargs,
    )
    return [{"dimensions": p.dimensions, "values": p.values} for p in points]

COUNT = (AggregationType.COUNT,)
result({
    "by_status": ask(MetricViewType.TRACES, "trace_count", [COUNT], dimensions=["trace_status"]),
    "per_hour": ask(
        MetricViewType.TRACES, "trace_count", [COUNT],
        time_interval_seconds=3600, start_time_ms=now - 3_600_000, end_time_ms=now,
    ),
    "latency": ask(
        MetricViewType.TRACES, "latency",
        [(AggregationType.MAX,), (AggregationType.PERCENTILE, 50.0)],
        dimensions=["trace_name"],
    ),
    "tokens": ask(MetricViewType.TRACES, "input_tokens", [(AggregationType.SUM,)]),
    "sessions": ask(MetricViewType.TRACES, "session_count", [COUNT]),
    "span_cost": ask(
        MetricViewType.SPANS, "total_cost", [(AggregationType.SUM,)],
        dimensions=["span_model_name"],
    ),
    "correct": ask(
        MetricViewType.ASSESSMENTS, "assessment_value", [(AggregationType.AVG,)],
        dimensions=["assessment_name"],
    ),
    # Spyglass's `model_id` dimension (MLflow's server has none): per version.
    "by_version": ask(MetricViewType.TRACES, "trace_count", [COUNT], dimensions=["model_id"]),
    "filtered": ask(
        MetricViewType.TRACES, "trace_count", [COUNT], filters=["trace.status = 'ERROR'"]
    ),
})
"""


def test_the_client_reads_trace_metrics(run_mlflow):
    (found,) = run_mlflow(SCRIPT)
    by_status = {p["dimensions"]["trace_status"]: p["values"]["COUNT"] for p in found["by_status"]}
    assert by_status == {"OK": 4.0, "ERROR": 1.0}
    (hour,) = found["per_hour"]
    assert hour["values"] == {"COUNT": 5.0}
    assert hour["dimensions"]["time_bucket"].endswith(":00:00+00:00")
    durations = sorted(t.duration_ns / 1e6 for t in Trace.objects.all())
    (latency,) = found["latency"]
    assert latency["dimensions"] == {"trace_name": "agent"}
    assert latency["values"]["MAX"] == pytest.approx(durations[-1])
    assert latency["values"]["P50.0"] == pytest.approx(durations[2])
    # The client sums each trace's token usage from its spans: 10 input tokens per LLM call.
    assert found["tokens"] == [{"dimensions": {}, "values": {"SUM": 40.0}}]
    assert found["sessions"] == [{"dimensions": {}, "values": {"COUNT": 2.0}}]
    (cost,) = found["span_cost"]
    assert cost["dimensions"] == {"span_model_name": "gpt-4o-mini"}
    assert cost["values"]["SUM"] > 0  # priced at ingest (tracking/cost.py)
    assert found["correct"] == [
        {"dimensions": {"assessment_name": "correct"}, "values": {"AVG": pytest.approx(2 / 3)}}
    ]
    assert found["filtered"] == [{"dimensions": {}, "values": {"COUNT": 1.0}}]
    (model_id,) = {t.model_id for t in Trace.objects.all()}
    assert model_id.startswith("m-")
    assert found["by_version"] == [{"dimensions": {"model_id": model_id}, "values": {"COUNT": 5.0}}]
