from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from tests.rows import make_span, make_trace
from tracking.models import Span, Trace
from tracking.retention import delete_traces_before
from tracking.storage import traces_json_path
from tracking.tasks import delete_old_traces


@pytest.mark.django_db
def test_old_traces_go_with_their_spans_in_batches(experiment, django_assert_max_num_queries):
    now = timezone.now()
    for n in range(7):
        trace = make_trace(experiment, n, request_time=now - timedelta(days=40, minutes=n))
        make_span(trace, "0000000000000001", 1)
    keep = make_trace(experiment, 99, request_time=now - timedelta(days=2))
    make_span(keep, "0000000000000001", 1)

    # Per batch: savepoint, pks, rows, spans, assessments, run links, GenAI log records,
    # traces, release; then the empty look.
    with django_assert_max_num_queries(3 * 9 + 3):
        deleted = delete_traces_before(now - timedelta(days=30), batch_size=3)

    assert deleted == 7
    assert list(Trace.objects.values_list("trace_id", flat=True)) == [keep.trace_id]
    assert Span.objects.get().trace_id == keep.pk


@pytest.mark.django_db
def test_old_traces_go_with_their_uploaded_documents(
    experiment, artifact_root, django_capture_on_commit_callbacks
):
    now = timezone.now()
    old = [make_trace(experiment, n, request_time=now - timedelta(days=40)) for n in range(3)]
    kept = make_trace(experiment, 99, request_time=now - timedelta(days=2))
    documents = {
        trace.trace_id: default_storage.save(
            traces_json_path(experiment.pk, trace.trace_id), ContentFile(b'{"spans": []}')
        )
        for trace in [*old, kept]
    }

    with django_capture_on_commit_callbacks(execute=True):
        assert delete_traces_before(now - timedelta(days=30), batch_size=2) == 3

    assert [t for t, path in documents.items() if default_storage.exists(path)] == [kept.trace_id]


@pytest.mark.django_db
def test_the_task_keeps_everything_unless_a_retention_is_set(experiment, settings):
    make_trace(experiment, 1, request_time=timezone.now() - timedelta(days=400))

    settings.SPYGLASS_TRACE_RETENTION_DAYS = 0
    assert delete_old_traces() == 0
    assert Trace.objects.count() == 1

    settings.SPYGLASS_TRACE_RETENTION_DAYS = 30
    assert delete_old_traces() == 1
    assert delete_old_traces() == 0  # a second run (two beats, a redelivery) is harmless
    assert not Trace.objects.exists()


def test_beat_schedules_the_retention_task(settings):
    schedule = settings.CELERY_BEAT_SCHEDULE["delete-old-traces"]
    assert schedule["task"] == "tracking.delete_old_traces"
