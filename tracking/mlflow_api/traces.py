"""Traces: StartTraceV3, trace info, search, spans (`traces/get`, `batchGet`), tags, deletes,
and the `traces.json` span document.

The client exports a finished trace as StartTraceV3 (the info) and then, because Spyglass never
tags a trace `mlflow.trace.spansLocation=TRACKING_STORE`, PUTs its spans as `traces.json`
under the trace's `mlflow.artifactLocation` (mlflow-protocol.md §4 path 3). Both go through
`ingest`, so they may arrive in any order and more than once. Reading spans back, the client
GETs that `traces.json`: Spyglass serves the stored upload, or, for a trace whose spans came
another way (OTLP, the playground, the native API), one written from the span rows.
`traces/get` and `batchGet` answer from the rows too, for traces that another writer tagged
TRACKING_STORE.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import orjson
from django.db import transaction
from django.db.models import Count, Prefetch, QuerySet
from django.http import HttpRequest, JsonResponse

from access.rules import access_for
from tracking import filters, genai_logs, ingest
from tracking.correlation import npmi_from_counts
from tracking.mlflow_api import ids, pages
from tracking.mlflow_api.entities import number_json, otel_span_json, span_dict, trace_info_json
from tracking.mlflow_api.errors import invalid, mlflow_endpoint, not_found
from tracking.mlflow_api.requests import Message, check_key, check_value, to_datetime
from tracking.models import (
    TRACE_TAG_KEY_MAX_CHARS,
    TRACE_TAG_VALUE_MAX_CHARS,
    Assessment,
    Span,
    Trace,
)
from tracking.storage import TRACES_JSON
from webapp import json_limits

SEARCH_DEFAULT = 100
ARCHIVAL_FAILURE = "mlflow.trace.archivalFailure"  # deleting it is how a client retries
SYSTEM_TAGS = {"mlflow.trace.spansLocation", "mlflow.trace.archiveLocation", ARCHIVAL_FAILURE}
SEARCH_MAX = 500
BATCH_MAX = 100


# --- The traces.json document --------------------------------------------------------------


def store_spans_document(experiment_pk: int, trace_id: str, content: bytes) -> None:
    """Parse an uploaded `traces.json` into span rows. Every span must belong to the trace
    whose path it was uploaded to, and the trace (if known) to the path's experiment; a trace
    not seen yet is filed under that experiment until its info arrives."""
    try:  # Python's json, which the client writes with, allows NaN; so does this
        document = json_limits.loads(content, allow_nan=True)
    except json_limits.JsonError as error:
        raise invalid(f"{TRACES_JSON} is {error.message}.") from None
    if not isinstance(document, dict) or not isinstance(document.get("spans"), list):
        raise invalid(f"{TRACES_JSON} must be a JSON object with a list of 'spans'.")
    spans = [ingest.parse_span(s, f"spans[{i}]") for i, s in enumerate(document["spans"])]
    for i, span in enumerate(spans):
        if span.trace_id != trace_id:
            raise invalid(f"spans[{i}] belongs to trace {span.trace_id}, not {trace_id}.")
    known = Trace.objects.filter(trace_id=trace_id).values_list("experiment_id", flat=True)
    if (stored_in := known.first()) is not None and stored_in != experiment_pk:
        raise invalid(f"Trace {trace_id} belongs to experiment {stored_in}, not {experiment_pk}.")
    ingest.store(spans=spans, default_experiment_id=experiment_pk)
    # GenAI log records (/v1/logs) kept for these spans join them (again).
    genai_logs.join((s.trace_id, s.span_id) for s in spans)


def spans_document(trace: Trace) -> bytes:
    """`traces.json` written from the span rows, root spans first, then in start order."""
    spans = Span.objects.filter(trace=trace).order_by("start_ns", "pk")
    ordered = sorted(spans, key=lambda s: bool(s.parent_span_id))
    document = {"spans": [span_dict(s, trace.trace_id) for s in ordered]}
    return orjson.dumps(document)


# --- Views ---------------------------------------------------------------------------------


def _with_assessments(traces: QuerySet[Trace]) -> QuerySet[Trace]:
    """The traces with their assessments: one more query for a whole page of infos."""
    return traces.prefetch_related(Prefetch("assessments", queryset=Assessment.objects.in_order()))


def _info_json(trace: Trace) -> dict[str, Any]:
    """TraceInfoV3 of a trace loaded through `_with_assessments`."""
    return trace_info_json(trace, list(trace.assessments.all()))


def _trace(trace_id: str, field: str = "trace_id") -> Trace:
    """`ids.trace`, with the trace's assessments."""
    ids.check_trace_id(trace_id, field)
    found = _with_assessments(Trace.objects.filter(trace_id=trace_id)).first()
    if found is None:
        raise not_found(f"Trace with ID '{trace_id}' not found.")
    return found


def _trace_response(trace: Trace) -> JsonResponse:
    return JsonResponse({"trace": {"trace_info": _info_json(trace)}})


@mlflow_endpoint(["POST"])
def start_trace(request: HttpRequest) -> JsonResponse:
    """StartTraceV3, which the client calls once the trace has ended: store the info, and
    answer it back with the location the client uploads `traces.json` to."""
    info = Message.of(request).object("trace").get("trace_info")
    if not isinstance(info, dict):
        raise invalid("Missing value for required parameter 'trace.trace_info'.")
    # Checked whole here: ingest's pattern lets a trailing newline through.
    ids.check_trace_id(info.get("trace_id"), "trace.trace_info.trace_id")
    result = ingest.store_trace(info)
    return _trace_response(_trace(result.trace_ids[0]))


@mlflow_endpoint(["GET"])
def trace_info(request: HttpRequest, trace_id: str) -> JsonResponse:
    return _trace_response(_trace(trace_id))


def _with_spans(traces: list[Trace]) -> list[dict[str, Any]]:
    """Traces with their spans as OTLP proto-JSON, in one span query for all of them."""
    spans: dict[int, list[Span]] = defaultdict(list)
    if traces:
        rows = Span.objects.filter(trace__in=[t.pk for t in traces]).order_by("start_ns", "pk")
        for span in rows:
            spans[span.trace_id].append(span)
    return [
        {
            "trace_info": _info_json(t),
            "spans": [otel_span_json(s, t.trace_id) for s in spans[t.pk]],
        }
        for t in traces
    ]


@mlflow_endpoint(["GET"])
def get_trace(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    trace = _trace(message.string("trace_id", required=True))
    if not message.boolean("allow_partial") and trace.span_count == 0:
        # As MLflow answers for spans still on their way; the client then skips the trace.
        raise not_found(f"Trace with ID {trace.trace_id} is not fully exported yet.")
    return JsonResponse({"trace": _with_spans([trace])[0]})


def _traces_by_ids(request: HttpRequest) -> list[Trace]:
    """The named traces that exist and the caller may read, in the order named."""
    message = Message.of(request)
    trace_ids = [ids.check_trace_id(t) for t in message.strings("trace_ids", BATCH_MAX)]
    traces = access_for(request).readable(Trace.objects.filter(trace_id__in=trace_ids))
    traces = _with_assessments(traces)
    if experiment_ids := message.strings("experiment_ids"):
        traces = traces.filter(experiment__in=[ids.experiment_pk(e) for e in experiment_ids])
    found = {t.trace_id: t for t in traces}
    return [found[t] for t in dict.fromkeys(trace_ids) if t in found]


@mlflow_endpoint(["GET"])
def batch_get(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"traces": _with_spans(_traces_by_ids(request))})


@mlflow_endpoint(["POST", "GET"])
def batch_get_infos(request: HttpRequest) -> JsonResponse:
    traces = _traces_by_ids(request)
    return JsonResponse({"trace_infos": [_info_json(t) for t in traces]})


def _experiment_pks(message: Message) -> list[int]:
    pks = [ids.experiment_pk(e) for e in message.strings("experiment_ids")]
    for i, location in enumerate(message.objects("locations", max_items=100)):
        kind = location.get("type", "MLFLOW_EXPERIMENT")
        experiment = location.get("mlflow_experiment")
        if kind != "MLFLOW_EXPERIMENT" or not isinstance(experiment, dict):
            raise invalid(f"locations[{i}]: only MLFLOW_EXPERIMENT locations are stored here.")
        pks.append(ids.experiment_pk(experiment.get("experiment_id")))
    return pks


def searched(message: Message, experiment_pks: list[int]) -> QuerySet[Trace]:
    """The traces of the experiments that match the message's `filter`, in its `order_by`
    (newest first by default); shared by the V3 and the V2 search."""
    ordering = filters.TRACES.order_by(message.strings("order_by", max_items=10))
    return (
        Trace.objects.filter(experiment__in=experiment_pks)
        .filter(filters.TRACES.q(message.string("filter")))
        .order_by(*ordering, *([] if ordering else ["-request_time"]), "-pk")
    )


@mlflow_endpoint(["POST"])
def search(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    traces = _with_assessments(searched(message, _experiment_pks(message)))
    rows, token = pages.requested_page(traces, message, SEARCH_DEFAULT, SEARCH_MAX)
    return JsonResponse(pages.listing("traces", [_info_json(t) for t in rows], token))


@mlflow_endpoint(["PATCH", "DELETE"])
def tags(request: HttpRequest, trace_id: str) -> JsonResponse:
    """PATCH sets one tag (`set_trace_tag`), DELETE removes one (its body names the key)."""
    message = Message.of(request)
    key = check_key(message.string("key", required=True), "key", TRACE_TAG_KEY_MAX_CHARS)
    value = check_value(message.string("value"), "value", TRACE_TAG_VALUE_MAX_CHARS)
    deleting = request.method == "DELETE"
    if key in SYSTEM_TAGS and not (deleting and key == ARCHIVAL_FAILURE):
        # As MLflow's handlers: where a trace's spans live is the server's to say.
        raise invalid(
            f"Tag '{key}' is immutable and cannot be {'deleted' if deleting else 'set'} on a trace."
        )
    with transaction.atomic():
        trace = ids.trace(trace_id, for_update=True)
        if request.method == "DELETE" and key not in (trace.tags or {}):
            raise not_found(f"No trace tag with key '{key}' for trace with ID '{trace_id}'")
        trace.change_tags({key: None if request.method == "DELETE" else value})
    return JsonResponse({})


@mlflow_endpoint(["POST"])
def delete_traces(request: HttpRequest) -> JsonResponse:
    """By ids (`request_ids`), or the oldest up to `max_traces` older than
    `max_timestamp_millis`; either way within one experiment. Uploaded span documents go too."""
    message = Message.of(request)
    trace_ids = [ids.check_trace_id(t) for t in message.strings("request_ids", 10_000)]
    max_ms = message.integer("max_timestamp_millis")
    if (max_ms is None) == (not trace_ids):
        raise invalid("Specify exactly one of 'request_ids' or 'max_timestamp_millis'.")
    experiment = ids.experiment(message.string("experiment_id", required=True))
    traces = Trace.objects.filter(experiment=experiment)
    if trace_ids:
        traces = traces.filter(trace_id__in=trace_ids)
    else:
        oldest_first = traces.filter(request_time__lte=to_datetime(max_ms, "max_timestamp_millis"))
        traces = oldest_first.order_by("request_time", "pk")
        if max_traces := message.integer("max_traces"):
            traces = traces[:max_traces]
    return JsonResponse({"traces_deleted": traces.delete_with_documents()})


# --- Links and analytics -------------------------------------------------------------------

LINK_MAX = 100  # MLflow's MAX_TRACE_LINKS_PER_REQUEST
LINKED_PROMPTS = "mlflow.linkedPrompts"
PROMPT_VERSION_RE = re.compile(r"[0-9]{1,18}")


@mlflow_endpoint(["POST"])
def link_to_run(request: HttpRequest) -> JsonResponse:
    """LinkTracesToRun (`mlflow.genai.evaluate` links its traces to its run): afterwards
    `search_traces(run_id=...)` finds them. Unknown or unreadable trace ids are skipped, as
    MLflow's store skips ids it does not hold; linking twice is a no-op."""
    message = Message.of(request)
    if message.raw("trace_ids")["trace_ids"] is None:
        raise invalid("Missing value for required parameter 'trace_ids'.")
    trace_ids = [ids.check_trace_id(t, "trace_ids") for t in message.strings("trace_ids", 10_000)]
    if len(trace_ids) > LINK_MAX:
        raise invalid(
            f"Cannot link more than {LINK_MAX} traces to a run in a single request. "
            f"Provided {len(trace_ids)} traces."
        )
    run = ids.run(message.string("run_id", required=True))
    traces = access_for(request).readable(Trace.objects.filter(trace_id__in=trace_ids))
    run.linked_traces.add(*traces)
    return JsonResponse({})


@mlflow_endpoint(["POST"])
def link_prompts(request: HttpRequest) -> JsonResponse:
    """LinkPromptsToTrace: the prompt versions join the trace's `mlflow.linkedPrompts` tag
    (a JSON list of {name, version}), the form the client writes and reads."""
    message = Message.of(request)
    trace_id = message.string("trace_id", required=True)
    if message.raw("prompt_versions")["prompt_versions"] is None:
        raise invalid("Missing value for required parameter 'prompt_versions'.")
    wanted = []
    for i, ref in enumerate(message.objects("prompt_versions", max_items=LINK_MAX)):
        name, version = ref.get("name"), str(ref.get("version"))
        # ASCII digits only, and few of them: str.isdigit() also passes "²", which int()
        # refuses, and int() refuses text of more than 4,300 digits (both were 500s).
        if not isinstance(name, str) or not name or not PROMPT_VERSION_RE.fullmatch(version):
            raise invalid(f"prompt_versions[{i}] needs a 'name' and an integer 'version'.")
        wanted.append({"name": name, "version": str(int(version))})
    with transaction.atomic():
        trace = ids.trace(trace_id, for_update=True)
        linked = _linked_prompts(trace)
        added = [p for i, p in enumerate(wanted) if p not in linked and p not in wanted[:i]]
        if added:
            value = orjson.dumps(linked + added).decode()
            check_value(value, LINKED_PROMPTS, TRACE_TAG_VALUE_MAX_CHARS)
            trace.change_tags({LINKED_PROMPTS: value})
    return JsonResponse({})


def _linked_prompts(trace: Trace) -> list[Any]:
    current = (trace.tags or {}).get(LINKED_PROMPTS)
    if current is None:
        return []
    try:
        parsed = orjson.loads(current)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, list):
        raise invalid(f"Invalid format for '{LINKED_PROMPTS}' tag: {current}")
    return parsed


@mlflow_endpoint(["POST"])
def filter_correlation(request: HttpRequest) -> JsonResponse:
    """CalculateTraceFilterCorrelation: how two search filters co-occur over the traces of
    the experiments (within `base_filter` if given), as counts and NPMI."""
    message = Message.of(request)
    if not message.strings("experiment_ids"):
        raise invalid("Missing value for required parameter 'experiment_ids'.")
    first = message.string("filter_string1", required=True)
    second = message.string("filter_string2", required=True)
    experiments = _experiment_pks(message)
    base = access_for(request).readable(Trace.objects.filter(experiment__in=experiments))
    base = base.filter(filters.TRACES.q(message.string("base_filter")))
    q1, q2 = filters.TRACES.q(first), filters.TRACES.q(second)
    counts = base.aggregate(
        total=Count("pk"),
        first=Count("pk", filter=q1),
        second=Count("pk", filter=q2),
        joint=Count("pk", filter=q1 & q2),
    )
    npmi = npmi_from_counts(counts["joint"], counts["first"], counts["second"], counts["total"])
    return JsonResponse(
        {
            "npmi": number_json(npmi.npmi),
            "npmi_smoothed": number_json(npmi.npmi_smoothed),
            "filter1_count": counts["first"],
            "filter2_count": counts["second"],
            "joint_count": counts["joint"],
            "total_count": counts["total"],
        }
    )
