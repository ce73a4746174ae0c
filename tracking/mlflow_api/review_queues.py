"""Review queues: MLflow 3's `/api/3.0/mlflow/review-queues/...` endpoints, thin views over
tracking/reviews.py, answering as MLflow's server does (handlers.py, its SQL store and
mlflow/genai/review_queues/validation.py, whose limits and wording these checks repeat).

`mlflow.genai.review_queues`' `create_review_queue`, `get_or_create_user_queue`,
`get_review_queue`, `list_review_queues`, `update_review_queue`, `delete_review_queue`,
`add_items_to_review_queue`, `remove_items_from_review_queue`, `list_review_queue_items` and
`set_review_queue_item_status` call these. Everything is checked before anything is written.

The queue's owner (`created_by`) and who completed an item (`completed_by`) are the signed-in
caller, never what the client says, as on MLflow's server with its auth app; with
authentication off there is nobody to bind them to, and the client's `completed_by` is taken.
Only trace items are shown here: MLflow's protocol has no other kind (tracking/reviews.py).
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse

from access.rules import access_for
from tracking.mlflow_api.errors import (
    MlflowError,
    already_exists,
    invalid,
    mlflow_endpoint,
    not_found,
)
from tracking.mlflow_api.label_schemas import check_page_size, live_experiment
from tracking.mlflow_api.pages import listing, requested_page
from tracking.mlflow_api.requests import Message, enum_choices
from tracking.models import Trace
from tracking.reviews import (
    NAME_MAX_CHARS,
    USER_MAX_CHARS,
    ItemStatus,
    ItemType,
    LabelSchema,
    QueueType,
    ReviewItem,
    ReviewQueue,
    now_ms,
)

MAX_USERS = 10
SCHEMA_ID_MAX_CHARS = 36
ITEM_ID_MAX_CHARS = 50
MAX_PAGE = 1000  # MLflow's default page; larger ones are cut here, with a token
RESERVED_NAME = "default"  # the no-auth default user queue's
QUEUE_TYPES = enum_choices("REVIEW_QUEUE_TYPE_UNSPECIFIED", "USER", "CUSTOM", start=0)
ITEM_TYPES = enum_choices("REVIEW_ITEM_TYPE_UNSPECIFIED", "TRACE", start=0)
STATUSES = enum_choices("REVIEW_STATUS_UNSPECIFIED", "PENDING", "COMPLETE", "DECLINED", start=0)


# --- Checks (mlflow/genai/review_queues/validation.py) -------------------------------------


def _non_empty(value: str, field: str, max_length: int) -> str:
    if not value:
        raise invalid(f"`{field}` must be a non-empty string; got {value!r}.")
    if len(value) > max_length:
        raise invalid(f"`{field}` must be at most {max_length} characters; got {len(value)}.")
    return value


def _users(values: list[str]) -> list[str]:
    users = list(
        dict.fromkeys(_non_empty(u.strip().lower(), "user", USER_MAX_CHARS) for u in values)
    )
    if len(users) > MAX_USERS:
        raise invalid(
            f"A review queue can have at most {MAX_USERS} assigned users; got {len(users)}."
        )
    return users


def _schema_ids(values: list[str]) -> list[str]:
    return list(
        dict.fromkeys(_non_empty(s.strip(), "schema_id", SCHEMA_ID_MAX_CHARS) for s in values)
    )


def _item_ids(values: list[str]) -> list[str]:
    if not values:
        raise invalid(f"`item_ids` must be a non-empty list; got {values!r}.")
    return list(dict.fromkeys(_non_empty(i.strip(), "item_id", ITEM_ID_MAX_CHARS) for i in values))


def _custom_name(value: str) -> str:
    name = _non_empty(value.strip(), "name", NAME_MAX_CHARS)
    if name.lower() == RESERVED_NAME:
        raise invalid(f"`{name}` is a reserved queue name and cannot be used for a custom queue.")
    return name


def _schemas(experiment_id: int, schema_ids: list[str]) -> list[LabelSchema]:
    found = {
        s.schema_id: s
        for s in LabelSchema.objects.filter(experiment_id=experiment_id, schema_id__in=schema_ids)
    }
    if missing := [s for s in schema_ids if s not in found]:
        raise invalid(f"Label schema id(s) {missing} not found for experiment '{experiment_id}'.")
    return [found[s] for s in schema_ids]


def _queue(message: Message, *, for_update: bool = False) -> ReviewQueue:
    queue_id = message.string("queue_id", required=True)
    queues = ReviewQueue.objects.all()
    if for_update:
        queues = queues.select_for_update()
    found = queues.filter(queue_id=queue_id).first()
    if found is None:
        raise not_found(f"Review queue with id '{queue_id}' not found.")
    return found


def _taken(name: str) -> Exception:
    return already_exists(
        f"Review queue with name '{name}' already exists (names are case-insensitive)."
    )


def _caller(request: HttpRequest) -> str | None:
    """The signed-in caller's name; None with authentication off."""
    user = access_for(request).user
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user.get_username()


def _queued(queue: ReviewQueue) -> dict[str, Any]:
    return {"review_queue": queue.as_mlflow()}


def _make(
    experiment_id: int,
    name: str,
    queue_type: str,
    users: list[str],
    schemas: list[LabelSchema],
    created_by: str | None,
) -> ReviewQueue:
    if ReviewQueue.objects.filter(experiment_id=experiment_id, name_key=name.lower()).exists():
        raise _taken(name)
    try:
        with transaction.atomic():
            queue = ReviewQueue.objects.create(
                experiment_id=experiment_id, name=name, queue_type=queue_type, created_by=created_by
            )
            queue.set_users(users)
            queue.schemas.set(schemas)
    except IntegrityError:
        raise _taken(name) from None  # made meanwhile by another request
    return queue


# --- Views ---------------------------------------------------------------------------------


@mlflow_endpoint(["POST"])
def create(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    experiment_id = message.string("experiment_id", required=True)
    raw_name = message.string("name", required=True)
    queue_type = message.enum("queue_type", QUEUE_TYPES, "REVIEW_QUEUE_TYPE_UNSPECIFIED")
    if queue_type == "REVIEW_QUEUE_TYPE_UNSPECIFIED":
        raise invalid("`queue_type` must be one of USER or CUSTOM; got proto enum value 0.")
    users = _users(message.strings("users"))
    schema_ids = _schema_ids(message.strings("schema_ids"))
    if queue_type == "USER":
        name = _non_empty(raw_name.strip().lower(), "name", NAME_MAX_CHARS)
        if not users:
            users = [name]
        elif users != [name]:
            raise invalid(
                "A user queue must have exactly one assigned user equal to its name; "
                f"got name={name!r} and users={users!r}."
            )
        if schema_ids:
            raise invalid(
                "A user queue cannot have explicitly-attached schemas; it resolves to all "
                "of the experiment's label schemas."
            )
    else:
        name = _custom_name(raw_name)
    experiment = live_experiment(experiment_id)
    schemas = _schemas(experiment.pk, schema_ids)
    queue = _make(experiment.pk, name, queue_type.lower(), users, schemas, _caller(request))
    return JsonResponse(_queued(queue))


@mlflow_endpoint(["POST"])
def get_or_create_user(request: HttpRequest) -> JsonResponse:
    """The user's own queue, made on first call (owned by that user)."""
    message = Message.of(request)
    experiment_id = message.string("experiment_id", required=True)
    user = message.string("user", required=True).strip().lower()
    name = _non_empty(user, "name", NAME_MAX_CHARS)
    experiment = live_experiment(experiment_id)
    existing = ReviewQueue.objects.filter(experiment=experiment, name_key=name).first()
    if existing is None:
        try:
            existing = _make(experiment.pk, name, QueueType.USER, [name], [], name)
        except MlflowError:  # made meanwhile by another request, or a custom queue's name
            existing = ReviewQueue.objects.filter(experiment=experiment, name_key=name).first()
            if existing is None:
                raise
    if existing.queue_type != QueueType.USER:
        raise already_exists(
            f"A non-user queue named '{name}' already exists; cannot get-or-create "
            "a user queue with that name."
        )
    return JsonResponse(_queued(existing))


@mlflow_endpoint(["GET"])
def get(request: HttpRequest) -> JsonResponse:
    return JsonResponse(_queued(_queue(Message.of(request))))


@mlflow_endpoint(["GET"])
def get_by_name(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    experiment_id = message.string("experiment_id", required=True)
    name = message.string("name", required=True)
    experiment = live_experiment(experiment_id)
    found = ReviewQueue.objects.filter(experiment=experiment, name_key=name.lower()).first()
    if found is None:
        raise not_found(
            f"Review queue with name '{name}' not found for experiment '{experiment_id}'."
        )
    return JsonResponse(_queued(found))


@mlflow_endpoint(["GET"])
def list_queues(request: HttpRequest) -> JsonResponse:
    """An experiment's queues, newest first; only those `user` is assigned to, or those
    holding `item_id`, when asked."""
    message = Message.of(request)
    experiment_id = message.string("experiment_id", required=True)
    check_page_size(message)
    experiment = live_experiment(experiment_id)
    queues = ReviewQueue.objects.filter(experiment=experiment)
    if message.raw("user")["user"] is not None:
        queues = queues.assigned_to(message.string("user").strip().lower())
    if message.raw("item_id")["item_id"] is not None:
        queues = queues.holding(message.string("item_id"))
    queues = queues.for_listing().prefetch_related("assigned", "schemas")
    rows, token = requested_page(queues, message, default=MAX_PAGE, maximum=MAX_PAGE)
    return JsonResponse(listing("review_queues", [q.as_mlflow() for q in rows], token))


@mlflow_endpoint(["POST"])
def update(request: HttpRequest) -> JsonResponse:
    """A custom queue's name, owner, users or questions (the questions only while it holds no
    items); a user queue is fixed. The lists change only with their `update_*` flag."""
    message = Message.of(request)
    with transaction.atomic():
        queue = _queue(message, for_update=True)
        if queue.queue_type == QueueType.USER:
            raise invalid(
                "A user queue's name, assigned user, schemas, and owner are fixed "
                "and cannot be updated."
            )
        users = _users(message.strings("users")) if message.boolean("update_users") else None
        schema_ids = (
            _schema_ids(message.strings("schema_ids"))
            if message.boolean("update_schema_ids")
            else None
        )
        raw = message.raw("name", "new_owner")
        name = _custom_name(message.string("name")) if raw["name"] is not None else None
        owner = None
        if raw["new_owner"] is not None:
            owner = _non_empty(message.string("new_owner").strip(), "new_owner", USER_MAX_CHARS)
        if users is None and schema_ids is None and name is None and owner is None:
            return JsonResponse(_queued(queue))
        schemas = None
        if schema_ids is not None:
            if queue.items.exists():
                raise invalid(
                    "A review queue's questions are locked once items are assigned to it. "
                    "Remove the items before changing its questions."
                )
            schemas = _schemas(queue.experiment_id, schema_ids)
        if name is not None and name.lower() != queue.name_key:
            others = ReviewQueue.objects.filter(experiment_id=queue.experiment_id)
            if others.filter(name_key=name.lower()).exists():
                raise _taken(name)
        if name is not None:
            queue.name = name
        if owner is not None:
            queue.created_by = owner
        queue.updated_at = now_ms()
        queue.save()
        if users is not None:
            queue.set_users(users)
        if schemas is not None:
            queue.schemas.set(schemas)
    return JsonResponse(_queued(queue))


@mlflow_endpoint(["POST"])
def delete(request: HttpRequest) -> JsonResponse:
    """An unknown id is no error (MLflow's delete is a no-op then); assessments stay."""
    queue_id = Message.of(request).string("queue_id", required=True)
    ReviewQueue.objects.filter(queue_id=queue_id).delete()
    return JsonResponse({})


@mlflow_endpoint(["POST"])
def add_items(request: HttpRequest) -> JsonResponse:
    """Traces of the queue's experiment, added pending; one there already keeps its status.
    The answer lists every requested item, in the request's order."""
    message = Message.of(request)
    message.string("queue_id", required=True)
    item_ids = _item_ids(message.strings("item_ids"))
    item_type = message.enum("item_type", ITEM_TYPES, "REVIEW_ITEM_TYPE_UNSPECIFIED")
    del item_type  # TRACE or unset: the only kind MLflow's protocol has
    with transaction.atomic():
        queue = _queue(message, for_update=True)
        known = set(
            Trace.objects.filter(
                experiment_id=queue.experiment_id, trace_id__in=item_ids
            ).values_list("trace_id", flat=True)
        )
        if missing := [i for i in item_ids if i not in known]:
            raise not_found(
                f"Cannot attach trace(s) {missing} to review queue '{queue.queue_id}': "
                f"they do not exist in experiment '{queue.experiment_id}'."
            )
        items = {
            i.item_id: i for i in queue.items.filter(item_type=ItemType.TRACE, item_id__in=item_ids)
        }
        now = now_ms()
        new = [
            ReviewItem(
                queue=queue, item_type=ItemType.TRACE, item_id=i, created_at=now, updated_at=now
            )
            for i in item_ids
            if i not in items
        ]
        for item in ReviewItem.objects.bulk_create(new):
            items[item.item_id] = item
    return JsonResponse({"items": [items[i].as_mlflow() for i in item_ids]})


@mlflow_endpoint(["POST"])
def remove_items(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    message.string("queue_id", required=True)
    item_ids = _item_ids(message.strings("item_ids"))
    queue = _queue(message)
    queue.items.filter(item_type=ItemType.TRACE, item_id__in=item_ids).delete()
    return JsonResponse({})


@mlflow_endpoint(["GET"])
def list_items(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    message.string("queue_id", required=True)
    check_page_size(message)
    status = message.enum("status", STATUSES, "REVIEW_STATUS_UNSPECIFIED")
    queue = _queue(message)
    items = queue.items.filter(item_type=ItemType.TRACE)
    if status != "REVIEW_STATUS_UNSPECIFIED":
        items = items.filter(status=status.lower())
    rows, token = requested_page(items.for_listing(), message, default=MAX_PAGE, maximum=MAX_PAGE)
    for row in rows:
        row.queue = queue  # as_mlflow names it: no query per row
    return JsonResponse(listing("items", [i.as_mlflow() for i in rows], token))


@mlflow_endpoint(["POST"])
def set_status(request: HttpRequest) -> JsonResponse:
    """Complete or decline an item (recording who), or reopen it."""
    message = Message.of(request)
    message.string("queue_id", required=True)
    item_id = message.string("item_id", required=True).strip()
    status = message.enum("status", STATUSES, "REVIEW_STATUS_UNSPECIFIED").lower()
    if status == "review_status_unspecified":
        raise invalid(
            "`status` must be one of PENDING, COMPLETE, or DECLINED; got proto enum value 0."
        )
    caller = _caller(request)
    if caller is not None:
        completed_by = None if status == ItemStatus.PENDING else caller
    elif message.raw("completed_by")["completed_by"] is not None:
        completed_by = message.string("completed_by")
    else:
        completed_by = None
    if completed_by is not None:
        completed_by = completed_by.strip().lower()
    if status == ItemStatus.PENDING and completed_by is not None:
        raise invalid("`completed_by` must not be set when reopening an item to `pending`.")
    if status != ItemStatus.PENDING and not completed_by:
        raise invalid(f"`completed_by` is required when setting status to `{status}`.")
    if completed_by is not None and len(completed_by) > USER_MAX_CHARS:
        raise invalid(
            f"`completed_by` must be at most {USER_MAX_CHARS} characters; got {len(completed_by)}."
        )
    with transaction.atomic():
        queue = _queue(message)
        item = (
            queue.items.select_for_update()
            .filter(item_type=ItemType.TRACE, item_id=item_id)
            .first()
        )
        if item is None:
            raise not_found(f"Item '{item_id}' is not attached to review queue '{queue.queue_id}'.")
        item.set_status(status, completed_by)
    return JsonResponse({"item": item.as_mlflow()})
