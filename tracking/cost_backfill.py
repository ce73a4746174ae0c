"""Pricing traces stored before cost at ingest (`manage.py backfill_costs`).

Each stored span goes through ingest's own pricing (`cost.annotate_span`, at the span's start
time) and each trace's cost is summed from its stored spans as ingest sums it
(`ingest.refresh_stored_costs`), so a backfilled trace holds what ingest would have stored.
Running it again changes nothing: a span that has a cost keeps it, and a trace's cost is
summed over its spans, never added to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction

from tracking import cost, ingest
from tracking.models import Span, Trace, TraceQuerySet

SPAN_READ_BATCH = 5_000  # ids per IN (...): within every database's bind-variable limit
SPAN_UPDATE_BATCH = 500


@dataclass
class Priced:
    spans: int  # spans given a cost
    traces: int  # traces of the batch that have a cost afterwards


def traces_to_price(experiment_id: int | None = None) -> TraceQuerySet:
    """Traces without a cost: those stored before cost at ingest, and those whose spans'
    models have no known price (looked at again: a price may have been configured since)."""
    traces = Trace.objects.filter(cost__isnull=True)
    if experiment_id is not None:
        traces = traces.filter(experiment_id=experiment_id)
    return traces


def price_stored_traces(trace_pks: Sequence[int]) -> Priced:
    """Price the unpriced spans of these traces and set the traces' costs, in one
    transaction that holds their rows, as an ingest of their spans would."""
    with transaction.atomic():
        # Locked in pk order, like ingest's own lock on the traces it writes: a client
        # re-sending one of them meanwhile waits rather than being overwritten.
        locked = Trace.objects.select_for_update().filter(pk__in=trace_pks).order_by("pk")
        list(locked.values_list("pk"))
        candidates = [
            span
            for span in Span.objects.filter(trace_id__in=trace_pks)
            .only("pk", "attributes", "start_ns")
            .iterator(chunk_size=2000)
            if cost.COST_ATTRIBUTE not in span.attributes
            and cost.span_usage(span.attributes) is not None
        ]
        # The request's `model` may name the model: inputs and outputs only for these few.
        payloads = {}
        for start in range(0, len(candidates), SPAN_READ_BATCH):
            pks = [span.pk for span in candidates[start : start + SPAN_READ_BATCH]]
            rows = Span.objects.filter(pk__in=pks).values_list("pk", "inputs", "outputs")
            payloads.update((pk, (inputs, outputs)) for pk, inputs, outputs in rows)
        changed = []
        for span in candidates:
            before = dict(span.attributes)
            cost.annotate_span(span.attributes, *payloads[span.pk], span.start_ns)
            if span.attributes != before:  # a cost, or only the model name it lacked
                changed.append(span)
        Span.objects.bulk_update(changed, ["attributes"], batch_size=SPAN_UPDATE_BATCH)
        traces = ingest.refresh_stored_costs(trace_pks)
    priced = sum(cost.COST_ATTRIBUTE in span.attributes for span in changed)
    return Priced(spans=priced, traces=traces)
