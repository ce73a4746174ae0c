"""The one place that turns incoming traces and spans into rows.

Every client path ends here: the MLflow REST API (StartTraceV3 trace info, the `traces.json`
artifact), OTLP, the native API, the playground and the demo data. A call is one transaction
with a constant number of queries whatever the span count (bulk upserts), and idempotent: the
same trace or span sent again never duplicates a row, while a later, more complete version
(IN_PROGRESS -> OK, more spans, end times) updates what is there.

Input comes in two layers:
- `parse_trace_info()` / `parse_span()` validate MLflow's wire shapes (TraceInfoV3 and the
  span dicts of `traces.json`) into `TraceInfo` / `SpanData`;
- `store()` writes already-normalised records (other decoders, such as OTLP, produce the
  same dataclasses).
Bad input raises `IngestError` with a message that says what and where; the APIs answer 400.
"""

from __future__ import annotations

import binascii
import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from django.conf import settings
from django.db import IntegrityError, connection, transaction

from tracking import cost, overview_rollups
from tracking.models import (
    DEFAULT_EXPERIMENT_ID,
    TRACE_NAME_TAG,
    Experiment,
    Span,
    Trace,
    TraceSession,
    TraceState,
)
from webapp import json_limits

TRACE_ID_RE = re.compile(r"tr-[0-9a-f]{32}")
# A protobuf Duration in JSON, as MLflow writes it ("0.085s"); no sign, exponent or NaN.
DURATION_RE = re.compile(r"([0-9]{1,9}(?:\.[0-9]{1,9})?)s")  # under 32 years
_HEX_RE = re.compile(r"[0-9a-f]+")

PREVIEW_MAX_CHARS = 1000
NAME_MAX_CHARS = 500
SPAN_TYPE_MAX_CHARS = 32
INT64_MAX = 2**63 - 1  # the integer columns are signed 64-bit

# Attributes that have columns of their own, so they are not kept twice in `attributes`.
_ATTR_TYPE = "mlflow.spanType"
_ATTR_INPUTS = "mlflow.spanInputs"
_ATTR_OUTPUTS = "mlflow.spanOutputs"
_ATTR_TRACE_ID = "mlflow.traceRequestId"
TOKEN_USAGE_ATTRIBUTE = cost.USAGE_ATTRIBUTE
# The keys of `mlflow.trace.tokenUsage`, each copied to the trace column of the same name.
USAGE_COLUMNS = (
    "total_tokens",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)
SESSION_METADATA = "mlflow.trace.session"
SESSION_MAX_CHARS = 250
USER_METADATA = "mlflow.trace.user"
# Where OpenTelemetry instrumentations put them, on a span or the resource (which OTLP ingest
# keeps as trace tags): copied into the MLflow metadata, so that MLflow clients see them too.
SESSION_ATTRIBUTES = ("session.id", "gen_ai.conversation.id")
USER_ATTRIBUTES = ("user.id",)

_STATUS_CODES = {
    "STATUS_CODE_UNSET": "UNSET",
    "STATUS_CODE_OK": "OK",
    "STATUS_CODE_ERROR": "ERROR",
    "UNSET": "UNSET",
    "OK": "OK",
    "ERROR": "ERROR",
    0: "UNSET",
    1: "OK",
    2: "ERROR",
}
_TRACE_STATES = {s.value for s in TraceState} | {"STATE_UNSPECIFIED"}


class IngestError(ValueError):
    """Input that cannot be stored. `message` is safe to show to the client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(slots=True)
class TraceInfo:
    trace_id: str
    experiment_id: int = DEFAULT_EXPERIMENT_ID
    state: str = TraceState.IN_PROGRESS
    request_time: datetime | None = None
    duration_ns: int | None = None
    request_preview: str = ""
    response_preview: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class SpanData:
    trace_id: str  # tr-<32 hex>
    span_id: str  # 16 hex
    parent_span_id: str  # 16 hex, or "" for a root span
    name: str
    start_ns: int
    end_ns: int | None = None
    span_type: str = "UNKNOWN"
    status: str = "UNSET"
    status_message: str = ""
    inputs: Any = None
    outputs: Any = None
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class StoreResult:
    trace_ids: list[str]
    traces_created: int = 0
    spans_stored: int = 0


# --- Parsing MLflow's wire shapes -----------------------------------------------------------


def parse_trace_info(data: Any) -> TraceInfo:
    """Validate a TraceInfoV3 dict (as in StartTraceV3) into a TraceInfo."""
    if not isinstance(data, Mapping):
        raise IngestError("trace_info must be a JSON object.")
    trace_id = data.get("trace_id")
    if not isinstance(trace_id, str) or not TRACE_ID_RE.fullmatch(trace_id):
        raise IngestError(f"trace_info.trace_id must look like 'tr-<32 hex>', got {trace_id!r}.")

    location = data.get("trace_location") or {}
    experiment = location.get("mlflow_experiment") if isinstance(location, Mapping) else None
    if not isinstance(experiment, Mapping):
        experiment = {}
    experiment_id = _experiment_id(experiment.get("experiment_id", DEFAULT_EXPERIMENT_ID))

    state = data.get("state")
    if state is None or state == "":  # unset; a 0 or a false is no state
        state = TraceState.IN_PROGRESS
    if not isinstance(state, str) or state not in _TRACE_STATES:
        raise IngestError(f"trace_info.state must be OK, ERROR or IN_PROGRESS, got {state!r}.")
    if state == "STATE_UNSPECIFIED":
        state = TraceState.IN_PROGRESS

    return TraceInfo(
        trace_id=trace_id,
        experiment_id=experiment_id,
        state=state,
        request_time=timestamp(data.get("request_time"), "trace_info.request_time"),
        duration_ns=_duration_ns(data.get("execution_duration"), "trace_info.execution_duration"),
        request_preview=_text(data.get("request_preview"), "trace_info.request_preview")[
            :PREVIEW_MAX_CHARS
        ],
        response_preview=_text(data.get("response_preview"), "trace_info.response_preview")[
            :PREVIEW_MAX_CHARS
        ],
        metadata=_string_map(data.get("trace_metadata"), "trace_info.trace_metadata"),
        tags=_string_map(data.get("tags"), "trace_info.tags"),
    )


def parse_span(data: Any, where: str = "span") -> SpanData:
    """Validate one span dict of MLflow's `traces.json` ("v3" span-dict schema).

    This runs once per span on every client path, so the common case is kept lean: error
    messages are only formatted when there is an error.
    """
    if not isinstance(data, dict):
        raise IngestError(f"{where} must be a JSON object.")
    attributes = data.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise IngestError(f"{where}.attributes must be a JSON object.")
    # Every attribute value is JSON-encoded in this format; a value that is not valid JSON is
    # kept as the plain string the client sent rather than refused.
    attrs = {k: _json_value(v) if type(v) is str else v for k, v in attributes.items()}

    raw_trace_id = _hex_id(data.get("trace_id"), 16, where, "trace_id")
    trace_id = attrs.pop(_ATTR_TRACE_ID, None)
    if type(trace_id) is not str or not TRACE_ID_RE.fullmatch(trace_id):
        trace_id = f"tr-{raw_trace_id}"

    start_ns = _nanos(data.get("start_time_unix_nano"), where, "start_time_unix_nano")
    if start_ns is None:
        raise IngestError(f"{where}.start_time_unix_nano is required.")
    end_ns = _nanos(data.get("end_time_unix_nano"), where, "end_time_unix_nano")

    status = data.get("status") or {}
    if isinstance(status, dict):
        code, message = status.get("code", "UNSET"), status.get("message") or ""
    else:
        code, message = status, ""
    if type(code) not in (str, int) or code not in _STATUS_CODES:
        raise IngestError(f"{where}.status.code {code!r} is not a span status code.")

    events = data.get("events") or []
    if type(events) is not list or not all(type(e) is dict for e in events):
        raise IngestError(f"{where}.events must be a list of objects.")

    name = data.get("name")
    if type(name) is not str:
        raise IngestError(f"{where}.name must be a string.")

    parent = data.get("parent_span_id")
    span_type = attrs.pop(_ATTR_TYPE, None)
    span = SpanData(
        trace_id=trace_id,
        span_id=_hex_id(data.get("span_id"), 8, where, "span_id"),
        parent_span_id=_hex_id(parent, 8, where, "parent_span_id") if parent else "",
        name=name,
        start_ns=start_ns,
        end_ns=end_ns,
        span_type=span_type if type(span_type) is str else "UNKNOWN",
        status=_STATUS_CODES[code],
        status_message=message if type(message) is str else json_text(message),
        inputs=attrs.pop(_ATTR_INPUTS, None),
        outputs=attrs.pop(_ATTR_OUTPUTS, None),
        attributes=attrs,
        events=events,
    )
    return _limit(span, where)


def make_span(*, where: str = "span", **values: Any) -> SpanData:
    """Build a SpanData from decoded values, enforcing the limits every decoder shares."""
    return _limit(SpanData(**values), where)


def _limit(span: SpanData, where: str) -> SpanData:
    if span.end_ns is not None and span.end_ns < span.start_ns:
        # A wall clock stepped back between start and end (NTP): the span happened, and
        # refusing it would refuse its whole batch (OTLP exporters drop a 400 for good).
        # Kept, as lasting no time, rather than with a negative duration.
        span.end_ns = span.start_ns
    # Checked inline first: this runs for every span, and nearly every text is plain ASCII.
    name, message, span_type = span.name, span.status_message, span.span_type or "UNKNOWN"
    if len(name) > NAME_MAX_CHARS or "\x00" in name or not name.isascii():
        span.name = storable_text(name)[:NAME_MAX_CHARS]
    if message and ("\x00" in message or not message.isascii()):
        span.status_message = storable_text(message)
    if len(span_type) > SPAN_TYPE_MAX_CHARS or "\x00" in span_type or not span_type.isascii():
        span_type = storable_text(span_type)[:SPAN_TYPE_MAX_CHARS]
    span.span_type = span_type
    usage = span.attributes.get(TOKEN_USAGE_ATTRIBUTE)
    if isinstance(usage, dict) and "total_tokens" in usage:
        total = usage["total_tokens"]
        # The trace total is summed in SQL with a cast to bigint; PostgreSQL refuses the
        # whole statement for "abc", 1.5 or 2**64, so only a count that fits is kept.
        if type(total) is not int or not 0 <= total < 2**62:
            span.attributes[TOKEN_USAGE_ATTRIBUTE] = {
                k: v for k, v in usage.items() if k != "total_tokens"
            }
    return span


# --- Storing --------------------------------------------------------------------------------


def store_trace(trace_info: Any = None, spans: Any = None) -> StoreResult:
    """Store one trace as MLflow sends it: a TraceInfoV3 dict and/or `traces.json` spans."""
    return store_traces([(trace_info, spans or [])])


def store_traces(items: Iterable[tuple[Any, Any]]) -> StoreResult:
    """Store several (trace_info, spans) pairs in one transaction."""
    infos: list[TraceInfo] = []
    spans: list[SpanData] = []
    for info, span_dicts in items:
        if info is not None:
            infos.append(parse_trace_info(info))
        if not isinstance(span_dicts, list):
            raise IngestError("spans must be a list.")
        spans.extend(parse_span(s, f"spans[{i}]") for i, s in enumerate(span_dicts))
    return store(infos, spans)


def store(
    infos: Iterable[TraceInfo] = (),
    spans: Iterable[SpanData] = (),
    default_experiment_id: int = DEFAULT_EXPERIMENT_ID,
    trace_tags: Mapping[str, Mapping[str, str]] | None = None,
) -> StoreResult:
    """Upsert trace infos and spans. Spans of a trace without an info (yet) create the trace,
    filed under `default_experiment_id`, with its columns derived from the spans.

    `trace_tags` ({trace_id: {key: value}}) merges tags into traces without making them
    "sent" infos, e.g. OTLP resource attributes such as `service.name`.
    """
    info_by_id = {i.trace_id: i for i in infos}  # a later copy in the same call wins
    span_by_key = {(s.trace_id, s.span_id): s for s in spans}
    spans_by_trace: dict[str, list[SpanData]] = {}
    for span in span_by_key.values():
        spans_by_trace.setdefault(span.trace_id, []).append(span)
    trace_ids = sorted(info_by_id.keys() | spans_by_trace.keys())
    if not trace_ids:
        return StoreResult(trace_ids=[])

    for span in span_by_key.values():
        # Priced here, before the transaction: on SQLite every other writer waits during it.
        cost.annotate_span(span.attributes, span.inputs, span.outputs, span.start_ns)

    needed = {i.experiment_id for i in info_by_id.values()}
    if spans_by_trace.keys() - info_by_id.keys():
        needed.add(default_experiment_id)
    # Checked before the transaction: on SQLite only one writer at a time holds it, so
    # what can be read without it is. A concurrent delete still fails the foreign key.
    _check_experiments(needed)
    try:
        with transaction.atomic():
            created, span_count = _store_locked(
                trace_ids,
                info_by_id,
                spans_by_trace,
                span_by_key,
                default_experiment_id,
                trace_tags,
            )
    except IntegrityError:
        _check_experiments(needed)  # an experiment deleted meanwhile: a clear error
        raise

    return StoreResult(trace_ids=trace_ids, traces_created=created, spans_stored=span_count)


def _store_locked(
    trace_ids: list[str],
    info_by_id: dict[str, TraceInfo],
    spans_by_trace: dict[str, list[SpanData]],
    span_by_key: dict[tuple[str, str], SpanData],
    default_experiment_id: int,
    trace_tags: Mapping[str, Mapping[str, str]] | None,
) -> tuple[int, int]:
    """The writes of `store`, inside its transaction; answers (traces created, spans stored).

    Kept to as few statements as possible: on SQLite every other writer waits meanwhile.
    """
    # Lock the rows we are about to merge into, so that two requests for the same trace
    # (spans and info arrive concurrently) apply one after the other.
    sql = _locked_traces_sql(connection.vendor).replace("{ids}", ", ".join(["%s"] * len(trace_ids)))
    existing = {t.trace_id: t for t in Trace.objects.raw(sql, trace_ids)}
    before = {trace_id: _trace_values(t) for trace_id, t in existing.items()}
    to_update: list[Trace] = []
    new_with_info: list[Trace] = []
    new_from_spans: list[Trace] = []
    for trace_id in trace_ids:
        trace = existing.get(trace_id)
        info = info_by_id.get(trace_id)
        batch = spans_by_trace.get(trace_id, [])
        if trace is None:
            trace = Trace(trace_id=trace_id, experiment_id=default_experiment_id)
            (new_with_info if info else new_from_spans).append(trace)
        else:
            to_update.append(trace)
        if info:
            _apply_info(trace, info)
        elif not trace.has_info:
            _derive_from_spans(trace, batch)
        if trace_tags and trace_id in trace_tags:
            trace.tags = {**(trace.tags or {}), **trace_tags[trace_id]}
        _apply_session(trace, batch)

    for trace in to_update:
        # Only what changed, one plain UPDATE per trace: spans following their trace's info
        # (the MLflow client's order) change nothing on the row, and bulk_update's CASE per
        # column cost more than the rest of such a request.
        old = before[trace.trace_id]
        changed = [f for f in _TRACE_FIELDS if old[f] != _value(trace, f)]
        if changed:
            trace.save(update_fields=[*changed, "updated_at"])
    if new_with_info:
        # A concurrent span-only request may have created the row meanwhile: the info wins.
        Trace.objects.bulk_create(
            new_with_info,
            update_conflicts=True,
            unique_fields=["trace_id"],
            update_fields=_TRACE_FIELDS,
        )
    if new_from_spans:
        # ...whereas derived columns never overwrite a row that a concurrent info created.
        _insert_derived_traces(new_from_spans)

    if not span_by_key:
        _refresh_sessions(existing.values(), before, new_with_info, new_from_spans)
        return len(new_with_info) + len(new_from_spans), 0
    pks = {t.trace_id: t.pk for t in (*existing.values(), *new_with_info, *new_from_spans)}
    rows = [_span_params(s, pks[s.trace_id]) for s in span_by_key.values()]
    with connection.cursor() as cursor:
        cursor.executemany(_span_upsert_sql(connection.vendor), rows)
    # A new trace's insert marked its hour; spans joining a stored one mark it here, whatever
    # they are, since an upsert may also turn a stored tool or failing span into neither (cheaper
    # than a trigger on every span row: tracking/overview_rollups.py says why).
    overview_rollups.mark_traces(
        existing[trace_id].pk for trace_id in spans_by_trace if trace_id in existing
    )
    span_counts = _refresh_span_counts({pks[trace_id] for trace_id in spans_by_trace})
    _refresh_costs(
        {
            pks[trace_id]: batch
            for trace_id, batch in spans_by_trace.items()
            if (trace_id in before and before[trace_id]["cost"] is not None)
            or any(cost.COST_ATTRIBUTE in s.attributes for s in batch)
        },
        span_counts,
    )
    _refresh_sessions(existing.values(), before, new_with_info, new_from_spans)
    return len(new_with_info) + len(new_from_spans), len(rows)


_TRACE_FIELDS = [
    "experiment",
    "name",
    "state",
    "request_time",
    "duration_ns",
    "request_preview",
    "response_preview",
    "metadata",
    "tags",
    "model_id",
    "total_tokens",
    *USAGE_COLUMNS[1:],
    "session_id",
    "user_id",
    "cost",
    "has_info",
]
_SPAN_FIELDS = [
    "parent_span_id",
    "name",
    "span_type",
    "start_ns",
    "end_ns",
    "status",
    "status_message",
    "inputs",
    "outputs",
    "attributes",
    "events",
]


def _insert_derived_traces(traces: list[Trace]) -> None:
    """INSERT traces made from spans alone and set their pks; a row that a concurrent request
    created meanwhile is left as it is (its pk is still returned).

    What bulk_create(update_conflicts=True, update_fields=["trace_id"]) does, with the SQL
    written once per vendor and row count: this is every OTLP request's statement, run while
    other SQLite writers wait, and the ORM compiled it afresh each time. Values go through
    each field's own pre_save and get_db_prep_save, exactly as Django's insert prepares them.
    """
    fields = _TRACE_INSERT_FIELDS
    params = []
    for trace in traces:
        params += [f.get_db_prep_save(f.pre_save(trace, add=True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(_derived_traces_sql(connection.vendor, len(traces)), params)
        pks = dict((trace_id, pk) for pk, trace_id in cursor.fetchall())
    for trace in traces:
        trace.pk = pks[trace.trace_id]
        trace._state.adding = False


_TRACE_INSERT_FIELDS = [f for f in Trace._meta.concrete_fields if not f.primary_key]


@functools.cache
def _derived_traces_sql(vendor: str, rows: int) -> str:
    qn = connection.ops.quote_name
    columns = ", ".join(qn(f.column) for f in _TRACE_INSERT_FIELDS)
    row = "(" + ", ".join(["%s"] * len(_TRACE_INSERT_FIELDS)) + ")"
    trace_id = qn("trace_id")
    return (
        f"INSERT INTO {qn(Trace._meta.db_table)} ({columns}) VALUES {', '.join([row] * rows)} "
        f"ON CONFLICT ({trace_id}) DO UPDATE SET {trace_id} = EXCLUDED.{trace_id} "
        f"RETURNING {qn('id')}, {trace_id}"
    )


def _value(trace: Trace, field: str) -> Any:
    return trace.experiment_id if field == "experiment" else getattr(trace, field)


def _trace_values(trace: Trace) -> dict[str, Any]:
    # Copies of the JSON dicts, so that a merge made in place still shows as a change.
    values = {f: _value(trace, f) for f in _TRACE_FIELDS}
    return {f: dict(v) if isinstance(v, dict) else v for f, v in values.items()}


def _check_experiments(ids: set[int]) -> None:
    found = set(Experiment.objects.filter(pk__in=ids).values_list("pk", flat=True))
    missing = sorted(ids - found)
    if missing:
        raise IngestError(f"Experiment {missing[0]} does not exist.")


def _apply_info(trace: Trace, info: TraceInfo) -> None:
    trace.experiment_id = info.experiment_id
    trace.state = info.state
    trace.request_time = info.request_time or trace.request_time or datetime.now(UTC)
    trace.duration_ns = info.duration_ns if info.duration_ns is not None else trace.duration_ns
    # storable_text: infos built in this process (the playground's, an evaluation's) carry an
    # agent's answer as it came, and PostgreSQL refuses a NUL in it.
    trace.request_preview = storable_text(info.request_preview) or trace.request_preview
    trace.response_preview = storable_text(info.response_preview) or trace.response_preview
    # Merge rather than replace: tags set later through the API survive a re-sent info.
    trace.metadata = {**(trace.metadata or {}), **info.metadata}
    trace.tags = {**(trace.tags or {}), **info.tags}
    trace.name = (trace.tags.get(TRACE_NAME_TAG) or trace.name or "")[:NAME_MAX_CHARS]
    trace.model_id = trace.metadata.get("mlflow.modelId", "")[:64]
    usage = _token_usage(trace.metadata.get("mlflow.trace.tokenUsage"))
    trace.total_tokens = usage.get("total_tokens")
    trace.input_tokens = usage.get("input_tokens")
    trace.output_tokens = usage.get("output_tokens")
    trace.cache_read_input_tokens = usage.get("cache_read_input_tokens")
    trace.cache_creation_input_tokens = usage.get("cache_creation_input_tokens")
    trace.cost = cost.total_of(trace.metadata.get(cost.TRACE_COST_METADATA))
    trace.has_info = True


def _apply_session(trace: Trace, spans: list[SpanData]) -> None:
    """Session and user from MLflow's metadata, else from OTel attributes (a span's, then the
    resource's kept as tags), copied into that metadata so MLflow clients read them too."""
    for key, attributes, column in (
        (SESSION_METADATA, SESSION_ATTRIBUTES, "session_id"),
        (USER_METADATA, USER_ATTRIBUTES, "user_id"),
    ):
        value = trace.metadata.get(key) or _attribute(spans, trace.tags or {}, attributes)
        if value and key not in trace.metadata:
            trace.metadata = {**trace.metadata, key: value}
        setattr(trace, column, (value or "")[:SESSION_MAX_CHARS] or None)


def _attribute(spans: list[SpanData], tags: dict[str, str], names: tuple[str, ...]) -> str:
    for source in (*(s.attributes for s in spans), tags):
        for name in names:
            value = source.get(name)
            if value is not None and value != "":
                text = value if isinstance(value, str) else json.dumps(value)
                return storable_text(text)
    return ""


def _refresh_sessions(
    existing: Iterable[Trace], before: dict[str, dict[str, Any]], *created: list[Trace]
) -> None:
    """Bring the sessions these traces are (or were) in up to date: their TraceSession rows
    sum the traces up. No query when none has a session."""
    keys = {(t.experiment_id, t.session_id) for t in existing if t.session_id}
    keys |= {(old["experiment"], old["session_id"]) for old in before.values()}
    keys |= {(t.experiment_id, t.session_id) for batch in created for t in batch}
    TraceSession.objects.refresh((e, s) for e, s in keys if s)


def _derive_from_spans(trace: Trace, spans: list[SpanData]) -> None:
    """Fill a trace's columns from its spans until the client sends the info itself."""
    if not spans:
        return
    first_ns = min(s.start_ns for s in spans)
    last_ns = max((s.end_ns for s in spans if s.end_ns is not None), default=None)
    if trace.request_time is not None:
        known_start = _to_ns(trace.request_time)
        if trace.duration_ns is not None:
            last_ns = max(last_ns or 0, known_start + trace.duration_ns)
        first_ns = min(first_ns, known_start)
    trace.request_time = _from_ns(first_ns)
    root = next((s for s in spans if not s.parent_span_id), None)
    if root is None:
        trace.duration_ns = None if last_ns is None else last_ns - first_ns
        return
    trace.name = root.name
    trace.duration_ns = None if root.end_ns is None else root.end_ns - root.start_ns
    if root.status == "ERROR":
        trace.state = TraceState.ERROR
    elif root.end_ns is not None:
        trace.state = TraceState.OK
    else:
        trace.state = TraceState.IN_PROGRESS
    trace.request_preview = _preview(root.inputs)
    trace.response_preview = _preview(root.outputs)
    trace.tags = {**(trace.tags or {}), TRACE_NAME_TAG: root.name}


_SPAN_COLUMNS = ["trace", "span_id", *_SPAN_FIELDS]
_SPAN_JSON = {"inputs", "outputs", "attributes", "events"}


@functools.cache
def _locked_traces_sql(vendor: str) -> str:
    """SELECT ... FOR UPDATE of traces by trace_id, as text written once per vendor.

    The ORM compiles this query afresh on every call, which made it the slowest statement
    of a small ingest while every other SQLite writer waits; `{ids}` takes the placeholders.
    """
    qn = connection.ops.quote_name
    columns = ", ".join(qn(f.column) for f in Trace._meta.concrete_fields)
    lock = " FOR UPDATE" if vendor == "postgresql" else ""  # SQLite: one writer anyway
    # In trace_id order, as tracking/genai_logs.py locks them: two writers of the same traces
    # then wait for each other instead of deadlocking.
    return (
        f"SELECT {columns} FROM {qn(Trace._meta.db_table)} "
        f"WHERE {qn('trace_id')} IN ({{ids}}) ORDER BY {qn('trace_id')}{lock}"
    )


@functools.cache
def _span_upsert_sql(vendor: str) -> str:
    """INSERT ... ON CONFLICT DO UPDATE for span rows, in SQL that SQLite and PostgreSQL share.

    This is the hot path of every client. Django's bulk_create compiles each of the 13
    values of each row through the ORM, which costs more than the database's own work on a
    1,000-span trace; one executemany of a prepared statement stores ~3x as many spans a
    second, is one query whatever the span count, and stays idempotent through the
    (trace, span_id) unique constraint.
    """
    qn = connection.ops.quote_name
    column = {name: qn(Span._meta.get_field(name).column) for name in _SPAN_COLUMNS}
    updates = ", ".join(f"{column[name]} = EXCLUDED.{column[name]}" for name in _SPAN_FIELDS)
    # JSON goes in as text; PostgreSQL needs to be told it is jsonb.
    json_placeholder = "%s::jsonb" if vendor == "postgresql" else "%s"
    placeholders = [json_placeholder if name in _SPAN_JSON else "%s" for name in _SPAN_COLUMNS]
    return (
        f"INSERT INTO {qn(Span._meta.db_table)} ({', '.join(column.values())}) "
        f"VALUES ({', '.join(placeholders)}) "
        f"ON CONFLICT ({qn('trace_id')}, {qn('span_id')}) DO UPDATE SET {updates}"
    )


def _span_params(span: SpanData, trace_pk: int) -> tuple[Any, ...]:
    cap = settings.SPYGLASS_MAX_SPAN_FIELD_BYTES
    return (
        trace_pk,
        span.span_id,
        span.parent_span_id,
        span.name,
        span.span_type,
        span.start_ns,
        span.end_ns,
        span.status,
        span.status_message,
        # SQL NULL, not JSON null, for absent inputs/outputs (as the ORM stores None).
        None if span.inputs is None else _capped_json(span.inputs, cap),
        None if span.outputs is None else _capped_json(span.outputs, cap),
        _capped_attributes(span.attributes, cap),
        _capped_json(span.events, cap, levels=3),  # [ {"attributes": {key: value}} ]
    )


TRUNCATED = "spyglass.truncated"
TRUNCATED_PREVIEW_CHARS = 2000


def truncation_marker(text: str) -> dict[str, Any]:
    """What is stored instead of a value over the cap: never silently cut, the marker says
    how big the value was and keeps its beginning (as JSON text) to read."""
    return {
        TRUNCATED: True,
        "original_bytes": len(text.encode()),
        "preview": text[:TRUNCATED_PREVIEW_CHARS],
    }


def _capped_json(value: Any, cap: int, levels: int = 0) -> str:
    text = json_text(value, levels)
    # Characters bound bytes from below: only a text this long can be over the cap.
    if len(text) > cap // 4 and len(text.encode()) > cap:
        return json_text(truncation_marker(text))
    return text


def _capped_attributes(attributes: dict[str, Any], cap: int) -> str:
    """Attributes are capped value by value, so small ones (token usage, model names) stay
    whole beside a huge one."""
    text = json_text(attributes, levels=1)
    if len(text) <= cap // 4 or len(text.encode()) <= cap:
        return text
    capped = {}
    for key, value in attributes.items():
        value_text = json_text(value)
        if len(value_text) > cap // 4 and len(value_text.encode()) > cap:
            capped[key] = truncation_marker(value_text)
        else:
            capped[key] = value
    return json_text(capped)


def _refresh_span_counts(trace_pks: Iterable[int]) -> dict[int, int]:
    """Recount the touched traces' spans, and their tokens where no info gave a total, in one
    UPDATE with correlated subqueries (a re-sent span is counted once, unlike a running sum).
    Answers each trace's span count."""
    pks = list(trace_pks)
    if not pks:
        return {}
    sql = _recount_sql(connection.vendor).replace("{pks}", ", ".join(["%s"] * len(pks)))
    with connection.cursor() as cursor:
        cursor.execute(sql, pks)
        return dict(cursor.fetchall())


@functools.cache
def _recount_sql(vendor: str) -> str:
    """The recount UPDATE as SQL text, written once per database vendor.

    Through the ORM this statement (two correlated subqueries, a JSON key cast and a CASE)
    took longer to compile than the rest of a 10-span ingest request together; its SQL is
    the same on every call but for the number of ids.
    """
    qn = connection.ops.quote_name
    trace, span = qn(Trace._meta.db_table), qn(Span._meta.db_table)
    # Spans carry MLflow's `mlflow.chat.tokenUsage`; OTLP decoders map gen_ai.* and
    # OpenInference token counts onto the same attribute.
    usage = TOKEN_USAGE_ATTRIBUTE.replace('"', "")
    attributes = f"{span}.{qn('attributes')}"
    if vendor == "postgresql":
        tokens = f"(({attributes} -> '{usage}') ->> 'total_tokens')::bigint"
    else:
        tokens = f"CAST(json_extract({attributes}, '$.\"{usage}\".total_tokens') AS INTEGER)"
    same_trace = f"FROM {span} WHERE {span}.{qn('trace_id')} = {trace}.{qn('id')}"
    total = qn("total_tokens")
    return (
        f"UPDATE {trace} SET {qn('span_count')} = (SELECT COUNT(*) {same_trace}), "
        f"{total} = CASE WHEN {qn('has_info')} AND {total} IS NOT NULL THEN {total} "
        f"ELSE (SELECT SUM({tokens}) {same_trace}) END "
        f"WHERE {qn('id')} IN ({{pks}}) RETURNING {qn('id')}, {qn('span_count')}"
    )


def _refresh_costs(batches: dict[int, list[SpanData]], span_counts: dict[int, int]) -> None:
    """Set `mlflow.trace.cost` and the cost column of traces whose spans carry costs, from
    all their stored spans: a re-sent span, or a trace's spans arriving over several
    requests, is counted once, unlike a running sum.

    A trace whose stored spans are all in this batch (the usual request: the whole trace,
    or its first spans) is summed from the batch; only the others read their stored spans.
    """
    totals: dict[int, dict[str, float] | None] = {}
    stored = []
    for pk, batch in batches.items():
        if span_counts.get(pk) != len(batch):
            stored.append(pk)
            continue
        key = cost.COST_ATTRIBUTE
        costs = {s.span_id: c for s in batch if (c := s.attributes.get(key)) is not None}
        if costs:
            totals[pk] = cost.sum_costs(costs, {s.span_id: s.parent_span_id for s in batch})
    totals.update(_stored_trace_costs(stored))
    _set_trace_costs(totals)


def refresh_stored_costs(trace_pks: Iterable[int]) -> int:
    """Set the cost of traces from their stored spans' costs, as ingest does after storing
    spans; for spans priced after they were stored (`manage.py backfill_costs`). Answers
    how many traces now have a cost."""
    totals = _stored_trace_costs(list(trace_pks))
    _set_trace_costs(totals)
    return sum(total is not None for total in totals.values())


def _stored_trace_costs(trace_pks: list[int]) -> dict[int, dict[str, float] | None]:
    if not trace_pks:
        return {}
    parents: dict[int, dict[str, str]] = {pk: {} for pk in trace_pks}
    costs: dict[int, dict[str, Any]] = {pk: {} for pk in trace_pks}
    sql = _span_costs_sql(connection.vendor).replace("{pks}", ", ".join(["%s"] * len(trace_pks)))
    with connection.cursor() as cursor:
        cursor.execute(sql, trace_pks)
        for trace_pk, span_id, parent_id, cost_text in cursor.fetchall():
            parents[trace_pk][span_id] = parent_id
            if cost_text is not None:
                costs[trace_pk][span_id] = _json_value(cost_text)
    return {pk: cost.sum_costs(costs[pk], parents[pk]) for pk in trace_pks}


def _set_trace_costs(totals: Mapping[int, dict[str, float] | None]) -> None:
    rows = [(t["total_cost"], json_text(t), pk) for pk, t in totals.items() if t is not None]
    if rows:
        with connection.cursor() as cursor:
            cursor.executemany(_set_cost_sql(connection.vendor), rows)


@functools.cache
def _span_costs_sql(vendor: str) -> str:
    qn = connection.ops.quote_name
    attributes = qn("attributes")
    if vendor == "postgresql":
        span_cost = f"({attributes} -> '{cost.COST_ATTRIBUTE}')::text"
    else:
        span_cost = f"json_extract({attributes}, '$.\"{cost.COST_ATTRIBUTE}\"')"
    return (
        f"SELECT {qn('trace_id')}, {qn('span_id')}, {qn('parent_span_id')}, {span_cost} "
        f"FROM {qn(Span._meta.db_table)} WHERE {qn('trace_id')} IN ({{pks}})"
    )


@functools.cache
def _set_cost_sql(vendor: str) -> str:
    """Sets the one metadata key in SQL rather than saving the row's metadata from memory:
    a row that a concurrent info request created keeps everything else that info sent."""
    qn = connection.ops.quote_name
    metadata = qn("metadata")
    key = cost.TRACE_COST_METADATA
    if vendor == "postgresql":  # metadata maps strings to strings: the cost is JSON text
        new_metadata = f"jsonb_set({metadata}, '{{{key}}}', to_jsonb(%s::text))"
    else:
        new_metadata = f"json_set({metadata}, '$.\"{key}\"', %s)"
    return (
        f"UPDATE {qn(Trace._meta.db_table)} SET {qn('cost')} = %s, {metadata} = {new_metadata} "
        f"WHERE {qn('id')} = %s"
    )


# --- Small validators -----------------------------------------------------------------------


def _experiment_id(value: Any) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise IngestError(f"experiment_id must be a number, got {value!r}.") from None
    if not 0 <= number <= INT64_MAX:
        raise IngestError(f"experiment_id is out of range, got {value!r}.")
    return number


def timestamp(value: Any, where: str) -> datetime | None:
    """An RFC 3339 text or epoch milliseconds as an aware UTC datetime; None when not sent."""
    if value in (None, ""):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, UTC)  # epoch milliseconds
        except (OverflowError, ValueError, OSError):
            raise IngestError(f"{where} is out of range, got {value!r}.") from None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
            # In UTC: PostgreSQL refuses offsets past 15:59 that Python accepts.
            return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except (ValueError, OverflowError):
            pass
    raise IngestError(f"{where} must be an RFC 3339 timestamp, got {value!r}.")


def _duration_ns(value: Any, where: str) -> int | None:
    """A protobuf Duration as JSON ("0.085s") to integer nanoseconds."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and (match := DURATION_RE.fullmatch(value)):
        # At most 9 digits of seconds: far inside the signed 64-bit count of nanoseconds.
        return int(Decimal(match.group(1)) * 1_000_000_000)
    raise IngestError(f"{where} must be a duration such as '0.085s', got {_short(value)}.")


def _short(value: Any) -> str:
    """A value for an error message: long or deeply nested ones cut short."""
    text = value if isinstance(value, str) else json_text(value)
    return repr(text[:40] + "..." if len(text) > 40 else text)


def _nanos(value: Any, where: str, field: str = "") -> int | None:
    if type(value) is int and 0 <= value < 2**63:
        return value  # the common case, first
    if value is None:
        return None
    label = f"{where}.{field}" if field else where
    if isinstance(value, bool):
        raise IngestError(f"{label} must be an integer of nanoseconds.")
    try:
        nanos = int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an infinite float
        raise IngestError(f"{label} must be an integer of nanoseconds.") from None
    if nanos < 0 or nanos > INT64_MAX:
        raise IngestError(f"{label} is out of range.")
    return nanos


def _hex_id(value: Any, size: int, where: str, field: str = "") -> str:
    """Span and trace ids arrive base64-encoded (traces.json, OTLP protobuf-JSON) or as hex
    (OTLP/JSON); they are stored as lowercase hex, as OpenTelemetry prints them."""
    if isinstance(value, str):
        hex_id = _decode_id(value, size)
        if hex_id:
            return hex_id
    label = f"{where}.{field}" if field else where
    raise IngestError(f"{label} must be a {size}-byte id (base64 or hex), got {value!r}.")


@functools.lru_cache(maxsize=8192)
def _decode_id(value: str, size: int) -> str:
    # Cached: every span repeats its trace id and most repeat a parent's id.
    lowered = value.lower()
    if len(lowered) == size * 2 and _HEX_RE.fullmatch(lowered):
        return lowered
    try:
        raw = binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        return ""
    return raw.hex() if len(raw) == size else ""


def _json_value(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        pass
    try:  # Python's json.dumps writes NaN and Infinity, which strict parsers refuse
        return json.loads(value)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than orjson reads
        return value


def json_text(value: Any, levels: int = 0) -> str:
    """JSON text for a JSON column. orjson writes NaN as null and stringifies what JSON has
    no type for; NUL is dropped because PostgreSQL's jsonb and text refuse it.

    What orjson cannot write (nesting past 255 levels, integers past 64 bits, unpaired
    surrogates) is stored as its JSON text, a string that pages and APIs show as text,
    rather than failing the whole batch. `levels` keeps that many levels of containers
    around such a part: 1 for attributes (one value becomes text, not all of them).
    """
    try:
        text = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        writable = _writable(value, levels)
        text = orjson.dumps(writable, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    return _NUL_ESCAPE.sub(r"\1", text) if "\\u0000" in text else text


# `\u0000` escapes, but not the text `\\u0000` (an escaped backslash before "u0000").
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _writable(value: Any, levels: int) -> Any:
    """`value` with what orjson cannot write replaced by its JSON text, below `levels`."""
    if levels and isinstance(value, dict):
        return {storable_text(str(k)): _writable(v, levels - 1) for k, v in value.items()}
    if levels and isinstance(value, list):
        return [_writable(item, levels - 1) for item in value]
    try:
        orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        return json_limits.text_of(value)
    # Written alone, but maybe not under `levels` more containers: orjson's limit is 255.
    return json_limits.text_of(value) if json_limits.deeper_than(value, 200) else value


def storable_text(text: str) -> str:
    """Text that both databases store alike: PostgreSQL refuses NUL in text and jsonb, and
    UTF-8 cannot hold unpaired surrogates; NUL is dropped, a surrogate becomes U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise IngestError(f"{where} must be a string.")
    return storable_text(value)


def _string_map(value: Any, where: str) -> dict[str, str]:
    if value in (None, ""):
        return {}
    if isinstance(value, list):  # [{"key": ..., "value": ...}] as in MLflow's V2 protos
        try:
            value = {item["key"]: item.get("value", "") for item in value}
        except (TypeError, KeyError):
            raise IngestError(f"{where} must map strings to strings.") from None
    if not isinstance(value, Mapping):
        raise IngestError(f"{where} must map strings to strings.")
    # As MLflow's server parses them (map<string, string>): a number or true is refused, not
    # stored as its JSON text.
    if not all(isinstance(v, str) for v in value.values()):
        raise IngestError(f"{where} must map strings to strings.")
    return {storable_text(str(k)): storable_text(v) for k, v in value.items()}


def _token_usage(usage: str | None) -> dict[str, int]:
    """The counts of `mlflow.trace.tokenUsage` that are counts; anything else is left out."""
    if not usage:
        return {}
    try:
        parsed = orjson.loads(usage)
    except ValueError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    # Summed and stored in bigint columns: a count past them is no count.
    return {
        key: value
        for key, value in parsed.items()
        if key in USAGE_COLUMNS and type(value) is int and 0 <= value < 2**62
    }


def _preview(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json_text(value)
    return storable_text(text[:PREVIEW_MAX_CHARS])


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _to_ns(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _from_ns(nanos: int) -> datetime:
    return _EPOCH + timedelta(microseconds=nanos // 1000)
