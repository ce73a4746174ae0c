"""Deleting traces past their retention age, a batch at a time.

A batch is one short transaction: on SQLite every other writer waits while it runs, and on
PostgreSQL a single DELETE of millions of rows would hold its locks and bloat the WAL.
The ORM deletes a batch's spans with one DELETE ... WHERE trace_id IN (...), without loading
them, and honours whatever else points at a trace; the batch's `traces.json` documents go
once its transaction commits.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from tracking.models import Trace

BATCH_SIZE = 500


def delete_traces_before(cutoff: datetime, batch_size: int = BATCH_SIZE) -> int:
    """Delete traces whose request time is before `cutoff`, with their spans and uploaded
    `traces.json`. Returns how many traces were deleted."""
    deleted = 0
    while True:
        with transaction.atomic():
            oldest = Trace.objects.filter(request_time__lt=cutoff).order_by("request_time")
            batch = oldest[:batch_size].delete_with_documents()
        if not batch:
            return deleted
        deleted += batch
