"""Queries the pages share. Every one is bounded: capped counts and one aggregate query per
page for related values, never a query per row."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db.models import Count, QuerySet

from tracking.models import LoggedModel, Trace

RECENT_TRACES = 20
# Counting every row of a large table is slow on PostgreSQL; past this, pages say "N+".
COUNT_CAP = 100_000
# Trace columns that lists never show; some (metadata, tags) can be large JSON objects.
_LIST_DEFERRED = ("metadata", "tags", "response_preview")


def capped_count(queryset: QuerySet, cap: int = COUNT_CAP) -> tuple[int, bool]:
    """Count at most `cap` rows; returns (count, True) when there are more."""
    count = queryset.order_by()[: cap + 1].count()
    return min(count, cap), count > cap


def traces_for_list() -> QuerySet[Trace]:
    return Trace.objects.for_list().defer(*_LIST_DEFERRED)


def with_model_names(traces: Sequence[Trace]) -> Sequence[Trace]:
    """Set `model_name` on each trace from its logged model, in one query for all of them."""
    ids = {t.model_id for t in traces if t.model_id}
    names = dict(
        LoggedModel.objects.filter(model_id__in=ids).values_list("model_id", "name") if ids else ()
    )
    for trace in traces:
        trace.model_name = names.get(trace.model_id, "")
    return traces


def trace_counts(model_ids: Iterable[str]) -> dict[str, int]:
    """Number of traces per model id, as one grouped query."""
    ids = set(model_ids)
    if not ids:
        return {}
    rows = (
        Trace.objects.filter(model_id__in=ids)
        .order_by()
        .values("model_id")
        .annotate(n=Count("pk"))
        .values_list("model_id", "n")
    )
    return dict(rows)
