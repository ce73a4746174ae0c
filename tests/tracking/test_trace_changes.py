"""Changes of stored traces outside ingest: one tag limit on every interface, deletes with
their documents."""

from __future__ import annotations

import json

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from tests.rows import make_span, make_trace
from tracking.models import TRACE_TAG_KEY_MAX_CHARS, TRACE_TAG_VALUE_MAX_CHARS, Span, Trace
from tracking.storage import traces_json_path

# --- One tag limit, whichever interface sets the tag ------------------------------------------


def _mlflow_api(client, trace_id: str, key: str, value: str):
    body = json.dumps({"key": key, "value": value})
    return client.patch(
        f"/api/2.0/mlflow/traces/{trace_id}/tags", body, content_type="application/json"
    )


def _mlflow_api_refused(response) -> bool:
    error = response.json()
    return response.status_code == 400 and error["error_code"] == "INVALID_PARAMETER_VALUE"


def _native_api(client, trace_id: str, key: str, value: str):
    body = json.dumps({"tags": {key: value}})
    return client.patch(f"/api/v1/traces/{trace_id}/tags/", body, content_type="application/json")


def _native_api_refused(response) -> bool:
    return response.status_code == 400 and "tags" in response.json()


def _trace_list_page(client, trace_id: str, key: str, value: str):
    form = {"action": "tag", "trace": [trace_id], "tag_key": key, "tag_value": value}
    return client.post("/traces/bulk/", form, follow=True)


def _trace_list_page_refused(response) -> bool:
    shown = [(m.level_tag, str(m)) for m in response.context["messages"]]
    return response.status_code == 200 and any(
        level == "error" and "too long" in text for level, text in shown
    )


INTERFACES = {
    "mlflow-api": (_mlflow_api, _mlflow_api_refused),
    "native-api": (_native_api, _native_api_refused),
    "trace-list-page": (_trace_list_page, _trace_list_page_refused),
}


@pytest.mark.django_db
@pytest.mark.parametrize("interface", INTERFACES)
def test_every_interface_takes_a_trace_tag_up_to_the_same_limit(client, experiment, interface):
    send, refused = INTERFACES[interface]
    trace = make_trace(experiment, 1, tags={"keep": "1"})
    longest_key = "k" * TRACE_TAG_KEY_MAX_CHARS
    longest_value = "v" * TRACE_TAG_VALUE_MAX_CHARS

    too_long_key = send(client, trace.trace_id, longest_key + "k", "v")
    too_long_value = send(client, trace.trace_id, "reviewed", longest_value + "v")

    assert refused(too_long_key)
    assert refused(too_long_value)
    trace.refresh_from_db()
    assert trace.tags == {"keep": "1"}

    at_the_limit = send(client, trace.trace_id, longest_key, longest_value)

    assert at_the_limit.status_code == 200 and not refused(at_the_limit)
    trace.refresh_from_db()
    assert trace.tags == {"keep": "1", longest_key: longest_value}


@pytest.mark.django_db
def test_changing_the_name_tag_renames_the_traces(experiment):
    a = make_trace(experiment, 1, tags={"mlflow.traceName": "old"})
    b = make_trace(experiment, 2)

    assert Trace.objects.filter(pk__in=[a.pk, b.pk]).change_tags({"mlflow.traceName": "new"}) == 2
    assert set(Trace.objects.values_list("name", flat=True)) == {"new"}

    a.refresh_from_db()
    a.change_tags({"mlflow.traceName": None})
    a.refresh_from_db()
    assert (a.name, a.tags) == ("", {})


# --- Deleting traces with their documents ------------------------------------------------------


@pytest.mark.django_db
def test_deleted_traces_take_their_documents_once_the_delete_commits(
    experiment, artifact_root, django_capture_on_commit_callbacks
):
    doomed = make_trace(experiment, 1)
    make_span(doomed, "s1", 0)
    kept = make_trace(experiment, 2)
    doomed_document = traces_json_path(experiment.pk, doomed.trace_id)
    kept_document = traces_json_path(experiment.pk, kept.trace_id)
    for path in (doomed_document, kept_document):
        default_storage.save(path, ContentFile(b"{}"))

    with django_capture_on_commit_callbacks(execute=True):
        assert Trace.objects.filter(pk=doomed.pk).delete_with_documents() == 1
        assert default_storage.exists(doomed_document)  # not before the commit

    assert list(Trace.objects.all()) == [kept]
    assert not Span.objects.exists()
    assert not default_storage.exists(doomed_document)
    assert default_storage.exists(kept_document)


@pytest.mark.django_db
def test_a_rolled_back_delete_keeps_the_trace_and_its_document(
    experiment, artifact_root, django_capture_on_commit_callbacks
):
    trace = make_trace(experiment, 1)
    pk = trace.pk
    document = traces_json_path(experiment.pk, trace.trace_id)
    default_storage.save(document, ContentFile(b"{}"))

    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        trace.delete_with_documents()
        raise RuntimeError("the request failed after the delete")

    assert Trace.objects.filter(pk=pk).exists()
    assert default_storage.exists(document)


@pytest.mark.django_db
def test_a_lost_writers_traces_fail_and_finished_ones_stay_as_they_are(experiment):
    lost = make_trace(experiment, 1, state="IN_PROGRESS")
    make_span(lost, "a" * 16, 0, end_ns=None)
    make_span(lost, "b" * 16, 10, parent="a" * 16, end_ns=None)
    done = make_trace(experiment, 2, response_preview="fine")
    make_span(done, "c" * 16, 0)

    failed = Trace.objects.filter(pk__in=[lost.pk, done.pk]).fail_unfinished("worker lost")

    assert failed == 1
    lost.refresh_from_db()
    done.refresh_from_db()
    assert (lost.state, lost.response_preview) == ("ERROR", "worker lost")
    assert (done.state, done.response_preview) == ("OK", "fine")
    root = lost.spans.get(parent_span_id="")
    assert (root.status, root.status_message) == ("ERROR", "worker lost")
    assert not lost.spans.filter(end_ns__isnull=True).exists()
    assert done.spans.get().status == "UNSET"
