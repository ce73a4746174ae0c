"""GenAI events sent as OTLP log records, joined to their spans at ingest.

`opentelemetry-instrumentation-openai-v2` with `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_
CONTENT=event_only` (and older instrumentations in their default mode) sends a chat call's
messages only as log records (`gen_ai.client.inference.operation.details`; before it, one per
message: `gen_ai.system.message`, `gen_ai.user.message`, `gen_ai.assistant.message`,
`gen_ai.tool.message`, `gen_ai.choice`), each naming the trace and span of the call; the span
holds the model and the token counts. Read as the span events they stand for (which
tracking/genai.py reads), they become the span's inputs and outputs once, at ingest, exactly as
if the SDK had put them on the span; every view then reads the span alone.

A span's records are kept in one row (SpanLogEvents) beside it, because either may come first
(a log processor may export before the span has even ended) and either may come again (an
exporter retrying):
- `attach` (a `/v1/logs` request) adds them to the row (a record sent twice is kept once),
  then joins the row to its span if that is stored;
- `join` (after spans were stored, by any path) merges each span's row into it: its events
  gain the records, the inputs and outputs it lacks are read from them, and the span is stored
  again through ingest, so that the trace's previews follow. What a row filled is read again
  from all its records at the next join, so a message that came in a later export is not lost.
Both write first and look for the other second, so a log request and a span request that
cross still meet; a join runs with its trace rows locked. A row joins a trace of its
experiment only: the stored trace's (the caller needed EDIT there) or the one the records were
sent with. Rows whose span never comes are dropped after UNJOINED_HOURS; the others go with
their trace.

Message events that say nothing new (their side is the span's own: the details event beside
`gen_ai.input.messages` in `span_and_event` mode) are not kept as events, nor are attributes
that repeat the span's: inputs and outputs are never shown twice. Other `gen_ai.*` events (an
evaluation result) stay as span events. Two identical records with the same time are one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import orjson
from django.db import connection, transaction
from django.utils import timezone

from tracking import genai, ingest
from tracking.ingest import SpanData, make_span
from tracking.models import Span, SpanLogEvents, Trace

UNJOINED_HOURS = 24
# Records kept for one span at most (the first ones): every join merges them all again.
MAX_EVENTS_PER_SPAN = 1_000
Key = tuple[str, str]  # (trace_id "tr-<hex>", span_id)
Events = list[dict]


def attach(events: dict[Key, Events], experiment_id: int) -> None:
    """Keep these records for their spans, and join them to the spans already stored."""
    if not events:
        return
    _expire()
    events = {key: storable(records) for key, records in sorted(events.items())}
    changed = []
    with transaction.atomic():
        traces = dict(
            Trace.objects.filter(trace_id__in={t for t, _ in events}).values_list(
                "trace_id", "experiment_id"
            )
        )
        # Sorted, like every lock taken here: concurrent requests then wait, never deadlock.
        SpanLogEvents.objects.bulk_create(
            [
                SpanLogEvents(experiment_id=traces.get(t, experiment_id), trace_id=t, span_id=s)
                for t, s in events
            ],
            ignore_conflicts=True,
        )
        for row in _rows(events.keys(), lock=True):
            if row.experiment_id != traces.get(row.trace_id, experiment_id):
                continue  # another experiment's records for the same ids
            merged = _distinct(row.events, events[row.trace_id, row.span_id])
            if len(merged) != len(row.events):
                row.events = merged
                row.save(update_fields=["events"])
                changed.append((row.trace_id, row.span_id))
    # A row that did not change (a retried export) was joined already, or waits for its span.
    join(changed)


def join(keys: Iterable[Key]) -> None:
    """Merge the records kept for these spans into those that are stored. One query when
    none has any, the common case after a span write."""
    keys = set(keys)
    # By trace only: a 1,000-span trace is one id, not a thousand (the index leads with it).
    trace_ids = {trace_id for trace_id, _ in keys}
    if not keys or not SpanLogEvents.objects.filter(trace_id__in=trace_ids).exists():
        return
    with transaction.atomic():
        stored = _stored_spans(keys)
        rows = [
            row
            for row in _rows(stored.keys(), lock=True)
            if row.experiment_id == stored[row.trace_id, row.span_id].trace.experiment_id
        ]
        spans, joined = [], []
        for row in rows:
            stored_span = stored[row.trace_id, row.span_id]
            row.joined_trace_id = stored_span.trace_id  # Span.trace_id: the trace row's pk
            joined.append(row)
            if not isinstance(stored_span.events, list):
                # Its events were cut at the size cap (a truncation marker): what it holds
                # is not replaced, and the records stay kept.
                continue
            before = _span_data(stored_span)
            added = set(row.added)
            # What the last join gave the span is taken off and read again from every record:
            # the span may still hold it, or have been stored afresh since.
            own = replace(
                before,
                inputs=None if row.filled_inputs else before.inputs,
                outputs=None if row.filled_outputs else before.outputs,
                events=[e for e in before.events if _digest(e) not in added],
            )
            merged, row.filled_inputs, row.filled_outputs = with_events(own, row.events)
            own_digests = {_digest(e) for e in own.events}
            row.added = sorted({_digest(e) for e in merged.events} - own_digests)
            now = (merged.inputs, merged.outputs, merged.events)
            if now != (before.inputs, before.outputs, before.events):
                spans.append(merged)
        if spans:
            ingest.store(spans=spans, default_experiment_id=joined[0].experiment_id)
        SpanLogEvents.objects.bulk_update(
            joined, ["filled_inputs", "filled_outputs", "added", "joined_trace"]
        )


def with_events(span: SpanData, events: Events) -> tuple[SpanData, bool, bool]:
    """The span with these (log) records merged into its events, and the inputs and outputs
    it lacks read from them (tracking/genai.py); and whether they filled its inputs, its
    outputs. Events keep time order."""
    # The span's own attributes first: a span stored through the MLflow paths may still hold
    # its inputs or outputs there; read now, they are its own, never the records'.
    attributes = dict(span.attributes)
    inputs, outputs = span.inputs, span.outputs
    own_in, own_out, _ = genai.inputs_outputs(
        attributes, [], inputs=inputs is None, outputs=outputs is None
    )
    if inputs is None and own_in is not genai.MISSING:
        inputs = own_in
    if outputs is None and own_out is not genai.MISSING:
        outputs = own_out
    known = {_identity(event) for event in span.events}
    incoming = []
    for sent in events:
        event = _without_repeats(sent, span.attributes)
        if event is not None:
            event = _without_owned_sides(event, inputs is not None, outputs is not None)
        if event is not None and (identity := _identity(event)) not in known:
            known.add(identity)
            incoming.append(event)
    want_in, want_out = inputs is None, outputs is None
    found_in, found_out, kept = genai.inputs_outputs(
        attributes,
        sorted([*span.events, *incoming], key=_time),
        inputs=want_in,
        outputs=want_out,
    )
    filled_in = want_in and found_in is not genai.MISSING
    filled_out = want_out and found_out is not genai.MISSING
    # A message event left whole said nothing new (its side is the span's own).
    unused = {id(event) for event in incoming if event.get("name") in genai.MESSAGE_EVENTS}
    merged_span = make_span(
        trace_id=span.trace_id,
        span_id=span.span_id,
        parent_span_id=span.parent_span_id,
        name=span.name,
        start_ns=span.start_ns,
        end_ns=span.end_ns,
        span_type=span.span_type,
        status=span.status,
        status_message=span.status_message,
        inputs=found_in if filled_in else inputs,
        outputs=found_out if filled_out else outputs,
        attributes=attributes,
        events=[event for event in kept if id(event) not in unused],
    )
    return merged_span, filled_in, filled_out


def _without_owned_sides(event: dict, owns_in: bool, owns_out: bool) -> dict | None:
    """A details record without the sides the span holds already (`span_and_event` on a
    span with one side only): what is left of it may still fill the other. None when nothing
    is left."""
    if event.get("name") != genai.DETAILS_EVENT or not (owns_in or owns_out):
        return event
    attributes = dict(event.get("attributes") or {})
    genai.inputs_outputs(attributes, [], inputs=owns_in, outputs=owns_out)  # moves them out
    body = attributes.get("body")
    if isinstance(body, dict):
        body = dict(body)
        genai.inputs_outputs(body, [], inputs=owns_in, outputs=owns_out)
        attributes["body"] = body
        if not body:
            del attributes["body"]
    return {**event, "attributes": attributes} if attributes else None


def storable(events: Events) -> Events:
    """Records as a JSON column stores them on both databases and gives them back: NaN,
    NUL, surrogates and what JSON cannot write made safe as ingest does for spans, and numbers
    in the form PostgreSQL's jsonb answers (it gives 1e20 back as an integer), so that a record
    sent again is recognised."""
    return _stable(orjson.loads(ingest.json_text(events, levels=3)))


_INT64 = 2**63


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _stable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_stable(item) for item in value]
    if type(value) is float and value == 0:
        return 0.0  # jsonb has no negative zero
    if type(value) is float and value.is_integer() and abs(value) >= 1e15:
        value = int(value)
    if type(value) is int and not -_INT64 <= value < _INT64:
        return str(value)  # past what orjson (and so the span columns) writes as a number
    return value


def _rows(keys: Iterable[Key], lock: bool = False):
    keys = set(keys)
    rows = SpanLogEvents.objects.filter(
        trace_id__in={trace_id for trace_id, _ in keys},
        span_id__in={span_id for _, span_id in keys},
    ).order_by("pk")
    if lock:
        rows = [row for row in rows.select_for_update() if (row.trace_id, row.span_id) in keys]
    return rows


def _stored_spans(keys: Iterable[Key]) -> dict[Key, Span]:
    """The stored spans among `keys`, their traces locked first (as ingest locks them), so
    that no other join or span request rewrites them meanwhile."""
    keys = set(keys)
    trace_ids = sorted({trace_id for trace_id, _ in keys})
    if connection.vendor == "postgresql":  # SQLite's write transaction already holds it all
        list(Trace.objects.filter(trace_id__in=trace_ids).order_by("trace_id").select_for_update())
    rows = Span.objects.filter(
        trace__trace_id__in=trace_ids, span_id__in={span_id for _, span_id in keys}
    ).select_related("trace")
    found = rows.only(*_SPAN_FIELDS, "trace__trace_id", "trace__experiment_id")
    return {key: row for row in found if (key := (row.trace.trace_id, row.span_id)) in keys}


_SPAN_FIELDS = (
    "span_id", "parent_span_id", "name", "start_ns", "end_ns", "span_type", "status",
    "status_message", "inputs", "outputs", "attributes", "events",
)  # fmt: skip


def _span_data(row: Span) -> SpanData:
    values = {name: getattr(row, name) for name in _SPAN_FIELDS}
    values["attributes"] = values["attributes"] if isinstance(values["attributes"], dict) else {}
    values["events"] = [e for e in values["events"] or [] if isinstance(e, dict)]
    return SpanData(trace_id=row.trace.trace_id, **values)


def _distinct(kept: Events, new: Events) -> Events:
    """`kept` then the records of `new` it lacks, MAX_EVENTS_PER_SPAN at most."""
    seen = {_identity(event) for event in kept}
    merged = list(kept)
    for event in new:
        if len(merged) >= MAX_EVENTS_PER_SPAN:
            break
        if (identity := _identity(event)) not in seen:
            seen.add(identity)
            merged.append(event)
    return merged


def _without_repeats(event: dict, span_attributes: dict) -> dict | None:
    """A log record without the attributes that repeat its span's (the details event repeats
    the request's model, parameters and token counts); None for a message event that had
    nothing else left."""
    attributes = event.get("attributes")
    if not isinstance(attributes, dict):
        return event
    left = {
        k: v for k, v in attributes.items() if k not in span_attributes or span_attributes[k] != v
    }
    if not left and event.get("name") in genai.MESSAGE_EVENTS:
        return None
    return {**event, "attributes": left}


def _time(event: dict) -> int:
    # Events stored through the MLflow paths may carry any value here.
    at = event.get("time_unix_nano")
    return at if type(at) is int else 0


def _identity(event: dict) -> bytes:
    try:
        return orjson.dumps(
            event, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str
        )
    except orjson.JSONEncodeError:  # a span's own event, stored through another path
        return json.dumps(event, sort_keys=True, default=str).encode()


def _digest(event: dict) -> str:
    return hashlib.md5(_identity(event), usedforsecurity=False).hexdigest()


def _expire() -> None:
    cutoff = timezone.now() - timedelta(hours=UNJOINED_HOURS)
    SpanLogEvents.objects.filter(joined_trace__isnull=True, received_at__lt=cutoff).delete()
