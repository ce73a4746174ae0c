"""Deleting traces past their retention age, a batch at a time.

A batch is one short transaction: on SQLite every other writer waits while it runs, and on
PostgreSQL a single DELETE of millions of rows would hold its locks and bloat the WAL.
The ORM deletes a batch's spans with one DELETE ... WHERE trace_id IN (...), without loading
them, and honours whatever else points at a trace.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from tracking.models import Trace

BATCH_SIZE = 500


def delete_traces_before(cutoff: datetime, batch_size: int = BATCH_SIZE) -> int:
    """Delete traces whose request time is before `cutoff`, with their spans. Returns how
    many traces were deleted."""
    deleted = 0
    while True:
        with transaction.atomic():
            pks = list(
                Trace.objects.filter(request_time__lt=cutoff)
                .order_by("request_time")
                .values_list("pk", flat=True)[:batch_size]
            )
            if not pks:
                return deleted
            Trace.objects.filter(pk__in=pks).delete()
        deleted += len(pks)
