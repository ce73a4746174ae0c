"""MLflow's V2 trace-info endpoints: StartTrace, EndTrace, GetTraceInfo and SearchTraces.

MLflow deprecated them for the V3 API but its server still answers them: a client falls back
to them on a server without V3 (mlflow-protocol.md §2), and clients from before V3 speak
nothing else. They read and write the same rows as V3, through `ingest` and the same search;
only the shape differs (`entities.trace_info_v2_json`): epoch milliseconds, `status` for
`state`, and key/value lists for `request_metadata` (V3's trace_metadata) and tags.

Where MLflow's server takes a missing field as its protobuf default (a start time of 0, an
end status of TRACE_STATUS_UNSPECIFIED), this refuses the request instead: such a trace would
start in 1970 or end without ending.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.http import HttpRequest, JsonResponse

from tracking import ingest
from tracking.mlflow_api import ids, pages
from tracking.mlflow_api.entities import trace_info_v2_json
from tracking.mlflow_api.errors import invalid, mlflow_endpoint
from tracking.mlflow_api.requests import Message, enum_choices
from tracking.mlflow_api.traces import SEARCH_DEFAULT, SEARCH_MAX, searched
from tracking.models import TRACE_TAG_KEY_MAX_CHARS, TRACE_TAG_VALUE_MAX_CHARS, TraceState

# The proto's TraceStatus, by name or number. UNSPECIFIED is filed as IN_PROGRESS, as ingest
# files V3's STATE_UNSPECIFIED: Spyglass has no state for it.
STATUSES = enum_choices("TRACE_STATUS_UNSPECIFIED", "OK", "ERROR", "IN_PROGRESS", start=0)
UNSPECIFIED = "TRACE_STATUS_UNSPECIFIED"
# What ingest takes as a V3 execution_duration (9 digits of seconds): the column is int64.
MAX_DURATION = timedelta(seconds=10**9 - 1)


def _required_time(message: Message, name: str) -> datetime:
    moment = message.time_ms(name)
    if moment is None:
        raise invalid(f"Missing value for required parameter '{name}'.")
    return moment


def _key_values(message: Message) -> tuple[dict[str, str], dict[str, str]]:
    """`request_metadata` and `tags`, with MLflow's limits for a trace tag."""
    limits = {"max_key": TRACE_TAG_KEY_MAX_CHARS, "max_value": TRACE_TAG_VALUE_MAX_CHARS}
    return message.key_values("request_metadata", **limits), message.key_values("tags", **limits)


def _info_response(trace_id: str) -> JsonResponse:
    return JsonResponse({"trace_info": trace_info_v2_json(ids.trace(trace_id))})


@mlflow_endpoint(["GET", "POST"])
def search_or_start(request: HttpRequest) -> JsonResponse:
    """`/api/2.0/mlflow/traces`: GET is SearchTraces, POST is StartTrace."""
    return _search(request) if request.method == "GET" else _start(request)


def _start(request: HttpRequest) -> JsonResponse:
    """StartTrace: a new trace, IN_PROGRESS, whose id the server makes (V3's shape, so that
    every other endpoint takes it)."""
    message = Message.of(request)
    experiment = ids.active_experiment(message.string("experiment_id", required=True))
    started = _required_time(message, "timestamp_ms")
    metadata, tags = _key_values(message)
    info = ingest.TraceInfo(
        trace_id=f"tr-{uuid.uuid4().hex}",
        experiment_id=experiment.pk,
        state=TraceState.IN_PROGRESS,
        request_time=started,
        metadata=metadata,
        tags=tags,
    )
    ingest.store([info])
    return _info_response(info.trace_id)


@mlflow_endpoint(["PATCH"])
def end_trace(request: HttpRequest, trace_id: str) -> JsonResponse:
    """EndTrace: the status, the execution time up to `timestamp_ms`, and metadata and tags
    merged into those the trace has."""
    message = Message.of(request)
    ended = _required_time(message, "timestamp_ms")
    if message.raw("status")["status"] in (None, ""):
        raise invalid("Missing value for required parameter 'status'.")
    status = message.enum("status", STATUSES, default=UNSPECIFIED)
    state = TraceState.IN_PROGRESS if status == UNSPECIFIED else status
    metadata, tags = _key_values(message)
    trace = ids.trace(trace_id)
    # An end before the start (a clock stepped back) lasts no time, as spans do in ingest.
    elapsed = max(ended - trace.request_time, timedelta(0))
    if elapsed > MAX_DURATION:
        raise invalid(f"Parameter 'timestamp_ms' is {elapsed.days:,} days after the trace began.")
    info = ingest.TraceInfo(
        trace_id=trace.trace_id,
        experiment_id=trace.experiment_id,
        state=state,
        request_time=trace.request_time,
        duration_ns=elapsed // timedelta(microseconds=1) * 1000,
        metadata=metadata,
        tags=tags,
    )
    ingest.store([info])
    return _info_response(trace.trace_id)


@mlflow_endpoint(["GET"])
def trace_info(request: HttpRequest, trace_id: str) -> JsonResponse:
    """GetTraceInfo."""
    return _info_response(trace_id)


def _search(request: HttpRequest) -> JsonResponse:
    """SearchTraces: V3's search over `experiment_ids`, which are required. A `max_results`
    past the cap is refused, as MLflow's V2 handler does (V3 answers a smaller page)."""
    message = Message.of(request)
    experiment_ids = message.strings("experiment_ids")
    if not experiment_ids:
        raise invalid("Missing value for required parameter 'experiment_ids'.")
    if (message.integer("max_results") or 0) > SEARCH_MAX:
        raise invalid(f"Parameter 'max_results' may be at most {SEARCH_MAX}.")
    experiment_pks = [ids.experiment_pk(e) for e in experiment_ids]
    rows, token = pages.requested_page(
        searched(message, experiment_pks), message, SEARCH_DEFAULT, SEARCH_MAX
    )
    return JsonResponse(pages.listing("traces", [trace_info_v2_json(t) for t in rows], token))
