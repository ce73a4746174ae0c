"""Review queue pages: the queues with their progress (and a form to make one), the review
screen (one item at a time, keyboard-first: static/js/review.js), and "Add to review queue"
from the trace list.

They live in the evaluation app, beside datasets: reviewing by hand is the evaluation that
comes before any metric, and evaluation may import tracking, where the queues, schemas and
assessments are (tests/webapp/test_layers.py), so no new app or layer rule is needed.

A queue follows its experiment: READ to see it (else 404), EDIT to answer, make a queue or add
items (else 403), as the MLflow endpoints decide (tracking/mlflow_api/permissions.py).
Answers are MLflow assessments (evaluation/review_answers.py); the item's status is the
reviewer's decision through `ReviewItem.decide`.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST, require_safe

from access.models import Level
from access.rules import Access, access_for, declares
from evaluation import review_answers, review_items
from tracking.models import Experiment, LifecycleStage, Trace
from tracking.reviews import (
    NAME_MAX_CHARS,
    USER_MAX_CHARS,
    Decision,
    ItemType,
    LabelSchema,
    QueueType,
    ReviewerStatus,
    ReviewItem,
    ReviewQueue,
    now_ms,
)
from webapp.htmx import HtmxHttpRequest

QUEUES_SHOWN = 200
MAX_USERS = 10  # MLflow's limit on a queue's assigned users
MAX_ITEMS = 500  # as the trace list's other bulk actions
CHOOSABLE = 200
NO_AUTH_REVIEWER = "default"  # MLflow's name for the caller when authentication is off


def reviewer_of(request: HttpRequest) -> str:
    """The reviewer: the signed-in user, lowercased as MLflow stores queue users."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return user.get_username().lower()
    return NO_AUTH_REVIEWER


def _queue_or_404(request: HttpRequest, queue_id: str, level: Level) -> ReviewQueue:
    access = access_for(request)
    queues = access.readable(ReviewQueue.objects.select_related("experiment"))
    queue = queues.filter(queue_id=queue_id).first() if "\x00" not in queue_id else None
    if queue is None:
        raise Http404("No such review queue.")
    if level >= Level.EDIT and not access.can(level, queue.experiment_id):
        raise PermissionDenied("You may see this queue but not review in it.")
    return queue


# --- The list -------------------------------------------------------------------------------


@declares("lists the review queues of readable experiments")
@require_safe
def queue_list(request: HttpRequest) -> HttpResponse:
    access = access_for(request)
    queues = list(
        access.readable(ReviewQueue.objects.select_related("experiment"))
        .with_progress()
        .for_listing()
        .prefetch_related("assigned", "schemas")[:QUEUES_SHOWN]
    )
    _attach_reviewers(queues)
    context = {
        "queues": queues,
        "reviewer": reviewer_of(request),
        **_new_queue_form(access),
    }
    return render(request, "evaluation/review_list.html", context)


def _attach_reviewers(queues: list[ReviewQueue]) -> None:
    """Each queue's `reviewers`: (name, done, skipped, pending) for its assigned users and
    anyone else who decided an item, in one query for the whole list."""
    rows = (
        ReviewerStatus.objects.filter(item__queue__in=queues)
        .values_list("item__queue_id", "reviewer")
        .annotate(
            done=Count("pk", filter=Q(status=Decision.DONE)),
            skipped=Count("pk", filter=Q(status=Decision.SKIPPED)),
            open_decided=Count("pk", filter=Q(item__status="pending")),
        )
        .order_by()
    )
    decided: dict[int, dict[str, tuple[int, int, int]]] = {}
    for queue_pk, reviewer, done, skipped, open_decided in rows:
        decided.setdefault(queue_pk, {})[reviewer] = (done, skipped, open_decided)
    for queue in queues:
        mine = decided.get(queue.pk, {})
        names = sorted({*queue.users, *mine})
        queue.reviewers = []
        for name in names:
            done, skipped, open_decided = mine.get(name, (0, 0, 0))
            # Pending for a reviewer: open items they have not decided (pending_for).
            queue.reviewers.append((name, done, skipped, queue.pending - open_decided))


def _new_queue_form(access: Access) -> dict[str, Any]:
    """The experiments the caller may make a queue in, with their questions."""
    if not access.can_write_anything:
        return {"experiments": []}
    experiments = [
        e
        for e in access.readable(
            Experiment.objects.filter(lifecycle_stage=LifecycleStage.ACTIVE), "pk"
        ).order_by("name")[:CHOOSABLE]
        if access.can(Level.EDIT, e.pk)
    ]
    schemas = LabelSchema.objects.filter(experiment__in=experiments).order_by("name")
    by_experiment: dict[int, list[LabelSchema]] = {}
    for schema in schemas:
        by_experiment.setdefault(schema.experiment_id, []).append(schema)
    return {"experiments": [(e, by_experiment.get(e.pk, [])) for e in experiments]}


@declares("EDIT on the chosen experiment, else 403 (404 if unreadable)")
@require_POST
def queue_new(request: HttpRequest) -> HttpResponse:
    access = access_for(request)
    experiment = Experiment.objects.filter(
        pk=_int(request.POST.get("experiment")), lifecycle_stage=LifecycleStage.ACTIVE
    ).first()
    if experiment is None or not access.can(Level.READ, experiment.pk):
        raise Http404("No such experiment.")
    if not access.can(Level.EDIT, experiment.pk):
        raise PermissionDenied("You may not make review queues in this experiment.")
    name, error = _queue_name(request.POST.get("name", ""))
    users = _users(request.POST.get("reviewers", ""))
    if len(users) > MAX_USERS:
        error = error or f"A queue has at most {MAX_USERS} reviewers."
    if any(len(u) > USER_MAX_CHARS for u in users):
        error = error or f"A reviewer's name has at most {USER_MAX_CHARS} characters."
    chosen = [s for s in request.POST.getlist("schema") if "\x00" not in s]
    schemas = list(LabelSchema.objects.filter(experiment=experiment, schema_id__in=chosen))
    if len(schemas) != len(set(chosen)):
        error = error or "Choose questions of the queue's experiment."
    if error:
        messages.error(request, f"The queue was not made: {error}")
        return redirect("evaluation:review-list")
    if not schemas:  # no question chosen: the experiment's default one
        LabelSchema.ensure_default(experiment.pk)
        schemas = list(LabelSchema.objects.filter(experiment=experiment, is_default=True))
    try:
        with transaction.atomic():
            queue = ReviewQueue.objects.create(
                experiment=experiment,
                name=name,
                queue_type=QueueType.CUSTOM,
                created_by=reviewer_of(request),
            )
            queue.set_users(users)
            queue.schemas.set(schemas)
    except IntegrityError:
        messages.error(request, f"The queue was not made: “{name}” is taken in {experiment.name}.")
        return redirect("evaluation:review-list")
    messages.success(request, f"Made the review queue {name}.")
    return redirect("evaluation:review-list")


def _queue_name(raw: str) -> tuple[str, str]:
    name = raw.strip()
    if not name or "\x00" in name:
        return name, "a queue needs a name."
    if len(name) > NAME_MAX_CHARS:
        return name, f"a queue's name has at most {NAME_MAX_CHARS} characters."
    if name.lower() == "default":
        return name, "“default” is reserved for the no-auth user's own queue."
    return name, ""


def _users(raw: str) -> list[str]:
    parts = raw.replace("\n", ",").split(",")
    return list(dict.fromkeys(p.strip().lower() for p in parts if p.strip() and "\x00" not in p))


def _int(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError:
        return -1


# --- The review screen ----------------------------------------------------------------------


@declares("READ on the queue's experiment, else 404")
@require_safe
def review(request: HtmxHttpRequest, queue_id: str) -> HttpResponse:
    queue = _queue_or_404(request, queue_id, Level.READ)
    reviewer = reviewer_of(request)
    items = queue.items.in_review_order()
    if "item" in request.GET:
        item = items.filter(pk=_int(request.GET["item"])).first()
        if item is None:
            raise Http404("No such item in this queue.")
    else:
        item = queue.next_for(reviewer)
    schemas = list(queue.schemas.order_by("created_at", "pk"))
    context: dict[str, Any] = {
        "queue": queue,
        "item": item,
        "schemas": schemas,
        "reviewer": reviewer,
        "progress": queue.progress(reviewer),
        "can_answer": access_for(request).can(Level.EDIT, queue.experiment_id),
    }
    if item is None:
        context["previous"] = items.last()
        return render(request, "evaluation/review.html", context)
    content = review_items.content_of(item, queue.experiment_id)
    given = review_answers.given_by(content.target, reviewer, schemas) if content.target else {}
    before = Q(created_at__lt=item.created_at) | Q(created_at=item.created_at, pk__lt=item.pk)
    context.update(
        content=content,
        questions=[_question(s, given.get(s.name)) for s in schemas],
        decision=item.decisions.filter(reviewer=reviewer).values_list("status", flat=True).first(),
        position=items.filter(before).count() + 1,
        previous=items.filter(before).last(),
        next=items.exclude(before).exclude(pk=item.pk).first(),
    )
    return render(request, "evaluation/review.html", context)


def _question(schema: LabelSchema, given: Any) -> dict[str, Any]:
    """A question as the template draws it: its choices (numbered for the keys), the answer
    given so far."""
    config = schema.input_config or {}
    value = given.value if given is not None else None
    choices: list[tuple[str, str]] = []
    if schema.input_kind == "pass_fail":
        choices = [
            ("pass", config.get("positive_label") or "Pass"),
            ("fail", config.get("negative_label") or "Fail"),
        ]
        value = {True: "pass", False: "fail"}.get(value) if isinstance(value, bool) else None
    elif schema.input_kind == "categorical":
        choices = [(o, o) for o in config.get("options", [])]
    chosen = value if isinstance(value, list) else [value] if value is not None else []
    return {
        "schema": schema,
        "field": review_answers.field_name(schema),
        "comment_field": review_answers.comment_name(schema),
        "choices": choices,
        "multi": bool(config.get("multi_select")),
        "chosen": [str(c) for c in chosen],
        "value": "" if value is None or isinstance(value, list) else str(value),
        "rationale": given.rationale if given is not None else "",
        "config": config,
    }


@declares("EDIT on the queue's experiment: 404 if unreadable, else 403")
@require_POST
def answer(request: HttpRequest, queue_id: str, item_pk: int) -> HttpResponse:
    """Submit (the answers, then done), skip, or reopen one item; then the reviewer's next."""
    queue = _queue_or_404(request, queue_id, Level.EDIT)
    item = queue.items.filter(pk=item_pk).first()
    if item is None:
        raise Http404("No such item in this queue.")
    reviewer = reviewer_of(request)
    action = request.POST.get("action", "submit")
    url = reverse("evaluation:review", args=[queue.queue_id])
    if action == "reopen":
        item.decide(reviewer, None)
        return redirect(f"{url}?item={item.pk}")
    if action == "skip":
        item.decide(reviewer, Decision.SKIPPED)
    else:
        schemas = list(queue.schemas.all())
        answers, errors = review_answers.read_answers(schemas, request.POST)
        target = review_items.content_of(item, queue.experiment_id).target
        if target is None:
            errors.append("the item's trace no longer exists; skip it instead.")
        if errors:
            messages.error(request, "Nothing was saved: " + " ".join(errors))
            return redirect(f"{url}?item={item.pk}")
        try:
            review_answers.record(target, reviewer, answers, queue.queue_id)
        except Trace.DoesNotExist:
            messages.error(request, "Nothing was saved: the item's trace was just deleted.")
            return redirect(f"{url}?item={item.pk}")
        item.decide(reviewer, Decision.DONE)
    following = queue.next_for(reviewer, after=item) or queue.next_for(reviewer)
    return redirect(f"{url}?item={following.pk}" if following else url)


# --- Add to a queue -------------------------------------------------------------------------


@declares("EDIT on the experiment of every selected item and on the chosen queue, else 403")
@require_POST
def add_items(request: HttpRequest) -> HttpResponse:
    """Selected traces (`trace`) or sessions (`session`, with `experiment`) -> a queue of their
    experiment: first a form to choose the queue, then, with `confirm`, the items."""
    access = access_for(request)
    next_url = _next_url(request)
    trace_ids = [t for t in dict.fromkeys(request.POST.getlist("trace")) if "\x00" not in t]
    session_ids = [s for s in dict.fromkeys(request.POST.getlist("session")) if "\x00" not in s]
    wanted: list[tuple[str, str]] = []
    experiment_ids: set[int] = set()
    if trace_ids:
        rows = Trace.objects.filter(trace_id__in=trace_ids[:MAX_ITEMS]).values_list(
            "trace_id", "experiment_id"
        )
        found = dict(rows)
        wanted = [(ItemType.TRACE, t) for t in trace_ids if t in found]
        experiment_ids = set(found.values())
    elif session_ids:
        rows = (
            Trace.objects.filter(session_id__in=session_ids[:MAX_ITEMS])
            .values_list("session_id", "experiment_id")
            .distinct()
        )
        found = set(rows)  # a session id may be used in two experiments: both count
        wanted = [(ItemType.SESSION, s) for s in session_ids if s in {i for i, _ in found}]
        experiment_ids = {e for _, e in found}
    refused = [e for e in experiment_ids if not access.can(Level.EDIT, e)]
    if refused:
        raise PermissionDenied("Nothing was changed: some of the selection is in experiments "
                               "you may not edit.")  # fmt: skip
    if not wanted:
        messages.info(request, "Nothing was selected.")
        return redirect(next_url)
    if len(experiment_ids) > 1:
        messages.error(request, "A queue holds items of one experiment: select from one only.")
        return redirect(next_url)
    experiment_id = experiment_ids.pop()
    choices = list(
        ReviewQueue.objects.filter(experiment_id=experiment_id)
        .with_progress()
        .for_listing()[:CHOOSABLE]
    )
    context = {"wanted": wanted, "choices": choices, "next_url": next_url, "error": ""}
    if request.POST.get("confirm") != "yes":
        return render(request, "evaluation/review_add.html", context)
    queue = next((q for q in choices if q.queue_id == request.POST.get("queue")), None)
    if queue is None:
        context["error"] = "Choose a queue."
        return render(request, "evaluation/review_add.html", context, status=422)
    now = now_ms()
    with transaction.atomic():
        ReviewItem.objects.bulk_create(
            [
                ReviewItem(queue=queue, item_type=kind, item_id=i, created_at=now, updated_at=now)
                for kind, i in wanted
            ],
            ignore_conflicts=True,  # an item already there keeps its status
        )
    count = len(wanted)
    messages.success(request, f"Added {count} item{'s' if count != 1 else ''} to {queue.name}.")
    return redirect("evaluation:review", queue_id=queue.queue_id)


def _next_url(request: HttpRequest) -> str:
    url = request.POST.get("next", "")
    if url and url_has_allowed_host_and_scheme(url, {request.get_host()}):
        return url
    return reverse("tracking:trace-list")
