"""Label schemas and review queues over the MLflow REST API with Django's test client, and the
model methods the review pages will use (a queue's progress, a reviewer's next item). Bad
requests answer MLflow's error JSON with a 4xx and change nothing; the wording and statuses
are those a real `mlflow server` 3.17.2 gave to the same requests. The real client's flow is
in tests/interop/test_review_queues.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.utils import timezone

from access.models import UserRole
from tracking.models import Experiment, LabelSchema, ReviewItem, ReviewQueue, Trace
from tracking.reviews import ItemType
from webapp.models import ApiToken

V3 = "/api/3.0/mlflow/"


def send(client, path: str, body: Any, method: str = "POST"):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.generic(method, V3 + path, data, "application/json")


def ok(response) -> dict:
    assert response.status_code == 200, response.content
    return response.json()


def make_trace(experiment: Experiment, n: int, session: str | None = None) -> str:
    trace_id = f"tr-{n:032x}"
    Trace.objects.create(
        trace_id=trace_id, experiment=experiment, request_time=timezone.now(), session_id=session
    )
    return trace_id


def make_schema(client, experiment: Experiment, name: str = "correct", **input: Any) -> dict:
    body = {
        "experiment_id": str(experiment.pk),
        "name": name,
        "type": "FEEDBACK",
        "input": input or {"pass_fail": {"positive_label": "Yes", "negative_label": "No"}},
    }
    return ok(send(client, "label-schemas/create", body))["label_schema"]


def make_queue(client, experiment: Experiment, name: str = "Launch", **extra: Any) -> dict:
    body = {"experiment_id": str(experiment.pk), "name": name, "queue_type": "CUSTOM", **extra}
    return ok(send(client, "review-queues/create", body))["review_queue"]


def stored() -> tuple:
    """Everything a refused request could have changed."""
    return (
        list(LabelSchema.objects.order_by("pk").values_list("pk", "name", "input_config")),
        list(ReviewQueue.objects.order_by("pk").values_list("pk", "name", "created_by")),
        list(ReviewItem.objects.order_by("pk").values_list("pk", "item_id", "status")),
    )


def test_a_schema_round_trips_and_the_list_adds_the_default_question(client, experiment):
    made = make_schema(client, experiment, "tone", categorical={"options": ["warm", "cold"]})
    assert made["input"] == {"categorical": {"options": ["warm", "cold"], "multi_select": False}}
    assert made["schema_id"].startswith("ls-") and made["type"] == "FEEDBACK"
    got = ok(client.get(V3 + "label-schemas/get", {"schema_id": made["schema_id"]}))
    assert got["label_schema"] == made
    listed = ok(client.get(V3 + "label-schemas/list", {"experiment_id": str(experiment.pk)}))
    names = [(s["name"], s["is_default"]) for s in listed["label_schemas"]]
    assert sorted(names) == [("Feedback", True), ("tone", False)]
    again = ok(client.get(V3 + "label-schemas/list", {"experiment_id": str(experiment.pk)}))
    assert len(again["label_schemas"]) == 2  # the default question is made once


def test_the_default_question_can_be_neither_edited_nor_deleted(client, experiment):
    LabelSchema.ensure_default(experiment.pk)
    default = LabelSchema.objects.get(is_default=True)
    before = stored()
    edit = send(
        client, "label-schemas/update", {"schema_id": default.schema_id, "name": "x"}, "PATCH"
    )
    drop = send(client, "label-schemas/delete", {"schema_id": default.schema_id}, "DELETE")
    assert edit.status_code == drop.status_code == 400
    assert "cannot be edited" in edit.json()["message"]
    assert "cannot be deleted" in drop.json()["message"]
    assert stored() == before


BAD_SCHEMAS = [
    (
        {"name": "x", "input": {"text": {}}},
        "Label schema `type` must be one of FEEDBACK or EXPECTATION; got proto enum value 0.",
    ),
    (
        {"name": "x", "type": "FEEDBACK"},
        "Label schema `input` must have exactly one of `pass_fail`, `categorical`, `numeric`, "
        "or `text` set; got an empty oneof.",
    ),
    (
        {"name": "feedback ", "type": "FEEDBACK", "input": {"text": {}}},
        "`feedback ` is reserved for the experiment's default question and cannot be used for "
        "another label schema.",
    ),
    (
        {
            "name": "x",
            "type": "FEEDBACK",
            "input": {"pass_fail": {"positive_label": "a", "negative_label": "a"}},
        },
        "`InputPassFail.positive_label` and `negative_label` must be distinct; got 'a' for both.",
    ),
    (
        {"name": "x", "type": "FEEDBACK", "input": {"text": {"max_length": 0}}},
        "`InputText.max_length` must be at least 1; got 0.",
    ),
    (
        {"name": "x", "type": "FEEDBACK", "input": {"categorical": {"options": ["a", "a"]}}},
        "`InputCategorical.options` must be deduplicated; 'a' appears twice.",
    ),
    (
        {"name": "x", "type": "FEEDBACK", "input": {"numeric": {"min_value": 2, "max_value": 1}}},
        "`InputNumeric.min_value` must be strictly less than `max_value`; got min=2.0, max=1.0.",
    ),
    ({"name": "x", "type": "NOPE", "input": {"text": {}}}, "Parameter 'type' must be one of"),
    ({"name": ["x"], "type": "FEEDBACK", "input": {"text": {}}}, "must be a string"),
    ({"name": "x", "type": "FEEDBACK", "input": "text"}, "must be an object"),
]


@pytest.mark.parametrize(("body", "message"), BAD_SCHEMAS)
def test_a_bad_schema_is_refused_and_nothing_is_stored(client, experiment, body, message):
    make_schema(client, experiment)
    before = stored()
    response = send(client, "label-schemas/create", {"experiment_id": str(experiment.pk), **body})
    assert response.status_code == 400, response.content
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert message in response.json()["message"]
    assert stored() == before


def test_schema_lookups_answer_404_and_duplicates_400(client, experiment):
    make_schema(client, experiment)
    missing = client.get(V3 + "label-schemas/get", {"schema_id": "ls-nope"})
    assert (missing.status_code, missing.json()["message"]) == (
        404,
        "Label schema with id 'ls-nope' not found.",
    )
    body = {"experiment_id": "999999", "name": "x", "type": "FEEDBACK", "input": {"text": {}}}
    nowhere = send(client, "label-schemas/create", body)
    assert (nowhere.status_code, nowhere.json()["message"]) == (
        404,
        "No Experiment with id=999999 exists",
    )
    before = stored()
    twice = send(
        client,
        "label-schemas/create",
        {**body, "experiment_id": str(experiment.pk), "name": "correct"},
    )
    assert (twice.status_code, twice.json()["error_code"]) == (400, "RESOURCE_ALREADY_EXISTS")
    too_many = client.get(
        V3 + "label-schemas/list", {"experiment_id": str(experiment.pk), "max_results": 0}
    )
    assert too_many.status_code == 400
    assert too_many.json()["message"] == "max_results must be between 1 and 50000."
    assert stored() == before


def test_an_update_keeps_the_input_kind(client, experiment):
    made = make_schema(client, experiment)
    before = stored()
    body = {"schema_id": made["schema_id"], "input": {"text": {}}}
    response = send(client, "label-schemas/update", body, "PATCH")
    assert response.status_code == 400
    assert response.json()["message"] == (
        "A label schema's input type cannot be changed after creation "
        "(existing: InputPassFail, got: InputText)."
    )
    assert stored() == before
    renamed = send(
        client, "label-schemas/update", {"schema_id": made["schema_id"], "name": "ok"}, "PATCH"
    )
    assert ok(renamed)["label_schema"]["name"] == "ok"
    assert ok(renamed)["label_schema"]["input"] == made["input"]


BAD_QUEUES = [
    ({"name": "q"}, "`queue_type` must be one of USER or CUSTOM; got proto enum value 0."),
    (
        {"name": "Default", "queue_type": "CUSTOM"},
        "`Default` is a reserved queue name and cannot be used for a custom queue.",
    ),
    (
        {"name": "q", "queue_type": "CUSTOM", "schema_ids": ["ls-nope"]},
        "Label schema id(s) ['ls-nope'] not found for experiment",
    ),
    (
        {"name": "q", "queue_type": "CUSTOM", "users": [f"u{i}" for i in range(11)]},
        "A review queue can have at most 10 assigned users; got 11.",
    ),
    (
        {"name": "ann", "queue_type": "USER", "users": ["bob"]},
        "A user queue must have exactly one assigned user equal to its name",
    ),
    ({"name": "q", "queue_type": "CUSTOM", "users": "bob"}, "must be a list of strings"),
]


@pytest.mark.parametrize(("body", "message"), BAD_QUEUES)
def test_a_bad_queue_is_refused_and_nothing_is_stored(client, experiment, body, message):
    make_queue(client, experiment)
    before = stored()
    response = send(client, "review-queues/create", {"experiment_id": str(experiment.pk), **body})
    assert response.status_code == 400, response.content
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert message in response.json()["message"]
    assert stored() == before


def test_items_are_traces_of_the_queue_experiment(client, experiment):
    other = Experiment.objects.create(name="other")
    mine, theirs = make_trace(experiment, 1), make_trace(other, 2)
    queue = make_queue(client, experiment)
    before = stored()
    body = {"queue_id": queue["queue_id"], "item_ids": [mine, theirs]}
    response = send(client, "review-queues/items/add", body)
    assert response.status_code == 404
    assert response.json()["message"] == (
        f"Cannot attach trace(s) ['{theirs}'] to review queue '{queue['queue_id']}': "
        f"they do not exist in experiment '{experiment.pk}'."
    )
    empty = send(client, "review-queues/items/add", {"queue_id": queue["queue_id"], "item_ids": []})
    assert empty.json()["message"] == "`item_ids` must be a non-empty list; got []."
    nowhere = send(client, "review-queues/items/add", {"queue_id": "rq-nope", "item_ids": [mine]})
    assert (nowhere.status_code, nowhere.json()["message"]) == (
        404,
        "Review queue with id 'rq-nope' not found.",
    )
    assert stored() == before


def test_set_status_needs_who_and_a_known_item(client, experiment):
    trace_id = make_trace(experiment, 1)
    queue = make_queue(client, experiment)
    ok(
        send(
            client,
            "review-queues/items/add",
            {"queue_id": queue["queue_id"], "item_ids": [trace_id]},
        )
    )
    before = stored()
    cases = [
        (
            {"status": "COMPLETE"},
            400,
            "`completed_by` is required when setting status to `complete`.",
        ),
        (
            {"status": "PENDING", "completed_by": "ann"},
            400,
            "`completed_by` must not be set when reopening an item to `pending`.",
        ),
        (
            {},
            400,
            "`status` must be one of PENDING, COMPLETE, or DECLINED; got proto enum value 0.",
        ),
        (
            {"status": "COMPLETE", "completed_by": "ann", "item_id": "tr-x"},
            404,
            f"Item 'tr-x' is not attached to review queue '{queue['queue_id']}'.",
        ),
    ]
    for extra, status, message in cases:
        body = {"queue_id": queue["queue_id"], "item_id": trace_id, **extra}
        response = send(client, "review-queues/items/set-status", body)
        assert (response.status_code, response.json()["message"]) == (status, message), extra
    assert stored() == before
    done = send(
        client,
        "review-queues/items/set-status",
        {"queue_id": queue["queue_id"], "item_id": trace_id, "status": 2, "completed_by": " Ann "},
    )
    assert ok(done)["item"]["status"] == "COMPLETE" and ok(done)["item"]["completed_by"] == "ann"


def test_the_signed_in_caller_is_owner_and_completer(client, experiment, auth_on, alice):
    UserRole.objects.update_or_create(user=alice, defaults={"role": "admin"})
    token = ApiToken.issue(alice, name="t", scope="write")[1]
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    trace_id = make_trace(experiment, 1)
    queue = make_queue(client, experiment, users=["alice"])
    assert queue["created_by"] == alice.username
    body = {"queue_id": queue["queue_id"], "item_ids": [trace_id]}
    ok(send(client, "review-queues/items/add", body))
    body = {"queue_id": queue["queue_id"], "item_id": trace_id, "status": "DECLINED"}
    item = ok(send(client, "review-queues/items/set-status", {**body, "completed_by": "mallory"}))
    assert item["item"]["completed_by"] == alice.username


def test_the_questions_freeze_once_the_queue_holds_items(client, experiment):
    schema = make_schema(client, experiment)
    queue = make_queue(client, experiment, schema_ids=[schema["schema_id"]])
    assert queue["schema_ids"] == [schema["schema_id"]]
    ok(
        send(
            client,
            "review-queues/items/add",
            {"queue_id": queue["queue_id"], "item_ids": [make_trace(experiment, 1)]},
        )
    )
    before = stored()
    body = {"queue_id": queue["queue_id"], "update_schema_ids": True, "schema_ids": []}
    response = send(client, "review-queues/update", body)
    assert response.status_code == 400 and "locked" in response.json()["message"]
    assert stored() == before


def test_session_items_stay_out_of_the_mlflow_listing(client, experiment):
    trace_id = make_trace(experiment, 1, session="s-1")
    queue_row = ReviewQueue.objects.create(experiment=experiment, name="q", queue_type="custom")
    ReviewItem.objects.create(queue=queue_row, item_type=ItemType.TRACE, item_id=trace_id)
    ReviewItem.objects.create(queue=queue_row, item_type=ItemType.SESSION, item_id="s-1")
    listed = ok(client.get(V3 + "review-queues/items/list", {"queue_id": queue_row.queue_id}))
    assert [i["item_id"] for i in listed["items"]] == [trace_id]


def test_each_reviewer_has_a_next_item_and_the_queue_a_progress(experiment):
    queue = ReviewQueue.objects.create(experiment=experiment, name="q", queue_type="custom")
    queue.set_users(["ann", "bob"])
    first, second, third = (
        ReviewItem.objects.create(queue=queue, item_type=ItemType.TRACE, item_id=f"tr-{n}")
        for n in range(3)
    )
    first.decide("ann", "done")
    assert queue.next_for("ann") == second
    assert queue.next_for("bob") == first  # ann's decision is hers
    first.refresh_from_db()
    assert first.status == "pending"  # bob has not decided yet
    first.decide("bob", "skipped")
    first.refresh_from_db()
    assert (first.status, first.completed_by) == ("complete", "bob")  # someone marked it done
    second.decide("ann", "skipped")
    second.decide("bob", "skipped")
    second.refresh_from_db()
    assert second.status == "declined"
    assert queue.next_for("bob") == third
    assert queue.next_for("ann", after=third) is None
    assert queue.progress("ann") == {
        "pending": 1,
        "complete": 1,
        "declined": 1,
        "total": 3,
        "mine": 1,
    }
    listed = ReviewQueue.objects.with_progress().get()
    assert (listed.total, listed.pending, listed.complete, listed.declined) == (3, 1, 1, 1)
    first.decide("bob", None)  # bob takes his back: the item is open again
    first.refresh_from_db()
    assert (first.status, first.completed_by) == ("pending", None)
