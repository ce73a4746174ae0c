"""Periodic tracking tasks (scheduled by Celery beat; see CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from tracking import rollups
from tracking.retention import delete_traces_before

logger = logging.getLogger(__name__)


@shared_task(name="tracking.delete_old_traces")
def delete_old_traces() -> int:
    """Delete traces older than SPYGLASS_TRACE_RETENTION_DAYS (0 keeps them forever).
    Safe to run twice: a second run finds nothing left to delete."""
    days = settings.SPYGLASS_TRACE_RETENTION_DAYS
    if days <= 0:
        return 0
    deleted = delete_traces_before(timezone.now() - timedelta(days=days))
    if deleted:
        logger.info("Retention: deleted %d traces older than %d days", deleted, days)
    return deleted


@shared_task(name="tracking.refresh_trace_rollups")
def refresh_trace_rollups() -> int:
    """Recompute the rollup hours that traces changed since the last refresh, so that trace
    metrics rarely have to before answering. Safe to run twice: a second run finds none."""
    return rollups.refresh()
