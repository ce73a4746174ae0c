"""GenAI events sent as OTLP log records, joined to their spans at ingest.

`opentelemetry-instrumentation-openai-v2` in its default mode, with
`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`, sends a chat call's messages only as
log records (`gen_ai.system.message`, `gen_ai.user.message`, `gen_ai.assistant.message`,
`gen_ai.tool.message`, `gen_ai.choice`; under the newer conventions
`gen_ai.client.inference.operation.details`), each naming the trace and span of the call; the
span holds the model and the token counts. Read as the span events they stand for (which
tracking/genai.py reads), they become the span's inputs and outputs once, at ingest, exactly as
if the SDK had put them on the span; every view then reads the span alone.

The records are kept (SpanLogEvents) beside the span they name, because either may come
first (a log processor may export before the span has even ended) and a span may come twice
(an exporter retrying):
- `attach` (a `/v1/logs` request) keeps them, then merges them into their span if it is stored:
  its events gain them (a record sent twice counts once), the inputs and outputs it lacks are
  read from them, and the span is stored again through ingest, so the trace's previews follow;
- `join` (after a `/v1/traces` request stored its spans) merges every record kept for those
  spans into them, under the same experiment only.
Both write first and look for the other second, so a log request and a span request that
cross still meet. Records whose span never comes are dropped after UNJOINED_HOURS; the others
go with their trace.

Message events that say nothing new (their side is filled already: the details event beside
`gen_ai.input.messages` in `span_and_event` mode, a record sent again) are not kept as events:
inputs and outputs are never shown twice. Other `gen_ai.*` events (an evaluation result) stay
as span events. A limit: the input messages of one call split over two log exports (a rare
batch boundary between messages emitted together) give the inputs of the first export only.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import orjson
from django.utils import timezone

from tracking import genai, ingest
from tracking.ingest import SpanData, make_span
from tracking.models import Span, SpanLogEvents

UNJOINED_HOURS = 24
# Events merged into one span at most (the first ones): each join merges them all again.
MAX_EVENTS_PER_SPAN = 1_000
Key = tuple[str, str]  # (trace_id "tr-<hex>", span_id)
Events = list[dict]


def attach(events: dict[Key, Events], experiment_id: int) -> None:
    """Keep these events for their spans, and merge them into the spans already stored."""
    if not events:
        return
    _expire()
    SpanLogEvents.objects.bulk_create(
        SpanLogEvents(experiment_id=experiment_id, trace_id=t, span_id=s, events=events[t, s])
        for t, s in events
    )
    join(events, experiment_id, stored=_stored_spans(events))


def join(keys: Iterable[Key], experiment_id: int, stored: dict[Key, Span] | None = None) -> None:
    """Merge the events kept for these spans (of this experiment) into those that are stored.
    One query when none has any, the common case of a `/v1/traces` request."""
    keys = set(keys)
    trace_ids = sorted({trace_id for trace_id, _ in keys})
    if not trace_ids:
        return
    rows = [
        row
        for row in SpanLogEvents.objects.filter(
            experiment_id=experiment_id, trace_id__in=trace_ids
        ).order_by("pk")
        if (row.trace_id, row.span_id) in keys
    ]
    if not rows:
        return
    kept: dict[Key, Events] = {}
    for row in rows:
        events = kept.setdefault((row.trace_id, row.span_id), [])
        events.extend(row.events[: MAX_EVENTS_PER_SPAN - len(events)])
    if stored is None:
        stored = _stored_spans(kept)
    if not stored:
        return
    ingest.store(
        spans=[with_events(_span_data(row), kept[key]) for key, row in stored.items()],
        default_experiment_id=experiment_id,
    )
    # Joined: they now go with their trace (Span.trace_id is the trace row's pk).
    unjoined: dict[int, list[int]] = {}
    for row in rows:
        span = stored.get((row.trace_id, row.span_id))
        if span is not None and row.joined_trace_id is None:
            unjoined.setdefault(span.trace_id, []).append(row.pk)
    for trace_pk, pks in unjoined.items():
        SpanLogEvents.objects.filter(pk__in=pks).update(joined_trace_id=trace_pk)


def with_events(span: SpanData, events: Events) -> SpanData:
    """The span with these (log) events merged into its own, and the inputs and outputs it
    lacks read from them (tracking/genai.py). Events keep time order."""
    known = {_identity(event) for event in span.events}
    incoming = []
    for sent in events:
        event = _without_repeats(sent, span.attributes)
        if event is None:
            continue
        identity = _identity(event)
        if identity not in known:
            known.add(identity)
            incoming.append(event)
    if not incoming:
        return span
    merged = sorted([*span.events, *incoming], key=lambda e: e.get("time_unix_nano") or 0)
    attributes = dict(span.attributes)
    want_in, want_out = span.inputs is None, span.outputs is None
    found_in, found_out, kept = genai.inputs_outputs(
        attributes, merged, inputs=want_in, outputs=want_out
    )
    # A message event left whole said nothing new (its side was filled already).
    unused = {id(event) for event in incoming if event.get("name") in genai.MESSAGE_EVENTS}
    return make_span(
        trace_id=span.trace_id,
        span_id=span.span_id,
        parent_span_id=span.parent_span_id,
        name=span.name,
        start_ns=span.start_ns,
        end_ns=span.end_ns,
        span_type=span.span_type,
        status=span.status,
        status_message=span.status_message,
        inputs=found_in if want_in and found_in is not genai.MISSING else span.inputs,
        outputs=found_out if want_out and found_out is not genai.MISSING else span.outputs,
        attributes=attributes,
        events=[event for event in kept if id(event) not in unused],
    )


def _without_repeats(event: dict, span_attributes: dict) -> dict | None:
    """A log event without the attributes that repeat its span's (the details event repeats
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


def _stored_spans(keys: Iterable[Key]) -> dict[Key, Span]:
    keys = set(keys)
    rows = Span.objects.filter(
        trace__trace_id__in={trace_id for trace_id, _ in keys},
        span_id__in={span_id for _, span_id in keys},
    ).select_related("trace")
    found = rows.only(*_SPAN_FIELDS, "trace__trace_id")
    return {key: row for row in found if (key := (row.trace.trace_id, row.span_id)) in keys}


_SPAN_FIELDS = (
    "span_id", "parent_span_id", "name", "start_ns", "end_ns", "span_type", "status",
    "status_message", "inputs", "outputs", "attributes", "events",
)  # fmt: skip


def _span_data(row: Span) -> SpanData:
    values = {name: getattr(row, name) for name in _SPAN_FIELDS}
    values["attributes"] = values["attributes"] if isinstance(values["attributes"], dict) else {}
    values["events"] = values["events"] if isinstance(values["events"], list) else []
    return SpanData(trace_id=row.trace.trace_id, **values)


def _identity(event: dict) -> bytes:
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS, default=str)


def _expire() -> None:
    cutoff = timezone.now() - timedelta(hours=UNJOINED_HOURS)
    SpanLogEvents.objects.filter(joined_trace__isnull=True, received_at__lt=cutoff).delete()
