"""MLflow's deprecated V2 trace calls through the real client's RestStore: it parses what
StartTrace and EndTrace answer into TraceInfoV2, and reads the trace back through V3."""

from __future__ import annotations

from tracking.models import Trace

SCRIPT = """
    from mlflow.entities.trace_status import TraceStatus
    from mlflow.tracking._tracking_service.utils import _get_store

    store = _get_store()
    experiment = mlflow.set_experiment("v2-traces")
    started = store.deprecated_start_trace_v2(
        experiment_id=experiment.experiment_id,
        timestamp_ms=1767225600000,
        request_metadata={"mlflow.sourceRun": "r1"},
        tags={"t": "1"},
    )
    result(started.to_dict())
    ended = store.deprecated_end_trace_v2(
        request_id=started.request_id,
        timestamp_ms=1767225600250,
        status=TraceStatus.ERROR,
        request_metadata={"more": "yes"},
        tags={"t": "2", "mlflow.traceName": "v2"},
    )
    result(ended.to_dict())
    info = store.get_trace_info(started.request_id)
    result({"state": str(info.state), "duration": info.execution_duration})
"""


def test_the_clients_v2_calls_read_the_answers(run_mlflow):
    started, ended, v3 = run_mlflow(SCRIPT)

    assert started["status"] == "IN_PROGRESS"
    assert (started["timestamp_ms"], started["execution_time_ms"]) == (1767225600000, 0)
    assert ended["request_id"] == started["request_id"]
    assert ended["experiment_id"] == started["experiment_id"]
    assert (ended["status"], ended["execution_time_ms"]) == ("ERROR", 250)
    assert ended["request_metadata"] == {"mlflow.sourceRun": "r1", "more": "yes"}
    assert {k: ended["tags"][k] for k in ("t", "mlflow.traceName")} == {
        "t": "2",
        "mlflow.traceName": "v2",
    }
    assert v3 == {"state": "ERROR", "duration": 250}
    trace = Trace.objects.get(trace_id=started["request_id"])
    assert (trace.state, trace.duration_ns, trace.name) == ("ERROR", 250_000_000, "v2")
