"""Label schemas and review queues through the real mlflow client's own APIs
(`mlflow.genai.label_schemas`, `mlflow.genai.review_queues`): questions of each input kind
created, renamed and deleted; a custom queue and a user's own queue created, filled with traces,
reviewed (complete, declined, reopened), changed and deleted; with the rows the server stored.

The expected answers are those a real `mlflow server` 3.17.2 gave to the same script."""

from __future__ import annotations

from tracking.models import LabelSchema, ReviewItem, ReviewQueue

FLOW_SCRIPT = """
    import os
    from mlflow.exceptions import MlflowException
    from mlflow.genai.label_schemas import (
        InputCategorical, InputNumeric, InputPassFail, InputText,
        create_label_schema, delete_label_schema, get_label_schema, list_label_schemas,
        update_label_schema,
    )
    from mlflow.genai.review_queues import (
        add_items_to_review_queue, create_review_queue, delete_review_queue,
        get_or_create_user_queue, get_review_queue, list_review_queue_items, list_review_queues,
        remove_items_from_review_queue, set_review_queue_item_status, update_review_queue,
    )

    def error(call):
        try:
            call()
        except MlflowException as e:
            return e.error_code
        return None

    mlflow.set_experiment("review")
    EXP_ID = mlflow.get_experiment_by_name("review").experiment_id
    trace_ids = []
    for question in ("hi", "bye", "again"):
        with mlflow.start_span("answer") as span:
            span.set_inputs({"q": question})
            span.set_outputs({"a": question.upper()})
        trace_ids.append(mlflow.get_last_active_trace_id())
    mlflow.flush_trace_async_logging()

    correct = create_label_schema(
        "correct", type="feedback", input=InputPassFail(positive_label="Yes", negative_label="No"),
        instruction="Is it right?", enable_comment=True,
    )
    tone = create_label_schema(
        "tone", type="feedback", input=InputCategorical(options=["warm", "cold"])
    )
    score = create_label_schema(
        "score", type="expectation", input=InputNumeric(min_value=0, max_value=10)
    )
    notes = create_label_schema("notes", type="feedback", input=InputText(max_length=200))
    renamed = update_label_schema(
        tone.schema_id, name="Tone", input=InputCategorical(options=["warm", "cold", "flat"])
    )
    listed = list_label_schemas()
    result({
        "schemas": sorted([s.name, s.type, type(s.input).__name__, s.is_default] for s in listed),
        "correct": [correct.input.positive_label, correct.instruction, correct.enable_comment],
        "renamed": [renamed.name, renamed.input.options],
        "by_name": get_label_schema("score", experiment_id=EXP_ID).input.max_value,
        "by_id": get_label_schema(schema_id=notes.schema_id).input.max_length,
        "duplicate": error(
            lambda: create_label_schema("correct", type="feedback", input=InputText())
        ),
        "change_kind": error(lambda: update_label_schema(tone.schema_id, input=InputText())),
    })
    delete_label_schema(schema_id=notes.schema_id)
    delete_label_schema(schema_id=notes.schema_id)  # a no-op the second time
    result({"after_delete": sorted(s.name for s in list_label_schemas())})

    queue = create_review_queue(
        "Launch review", queue_type="custom", users=["Alice", "bob"],
        schema_ids=[correct.schema_id, tone.schema_id],
    )
    mine = get_or_create_user_queue("Carol")
    again = get_or_create_user_queue("carol")
    items = add_items_to_review_queue(queue.queue_id, item_ids=trace_ids)
    add_items_to_review_queue(queue.queue_id, item_ids=[trace_ids[0]])  # already there
    def mark(queue_id, n, status, completed_by=None):
        return set_review_queue_item_status(
            queue_id, item_id=trace_ids[n], status=status, completed_by=completed_by
        )

    done = mark(queue.queue_id, 0, "complete", "Alice")
    skipped = mark(queue.queue_id, 1, "declined", "bob")
    same = mark(queue.queue_id, 0, "complete", "bob")
    reopened = mark(queue.queue_id, 1, "pending")
    pending = list_review_queue_items(queue.queue_id, status="pending")
    result({
        "queue": [
            queue.name, str(queue.queue_type), queue.users, len(queue.schema_ids), queue.created_by
        ],
        "user_queue": [
            mine.name, str(mine.queue_type), mine.users, mine.created_by,
            mine.queue_id == again.queue_id,
        ],
        "items": [[str(i.status), str(i.item_type)] for i in items],
        "order": [i.item_id for i in items] == trace_ids,
        "done": [str(done.status), done.completed_by, done.completed_time_ms is not None],
        "skipped": [str(skipped.status), skipped.completed_by],
        "same": same.completed_by,
        "reopened": [str(reopened.status), reopened.completed_by, reopened.completed_time_ms],
        "pending": sorted(trace_ids.index(i.item_id) for i in pending),
        "all": len(list_review_queue_items(queue.queue_id)),
        "by_name": get_review_queue(name="launch REVIEW").queue_id == queue.queue_id,
        "for_bob": [q.name for q in list_review_queues(user="BOB")],
        "all_queues": sorted(q.name for q in list_review_queues()),
        "locked": error(
            lambda: update_review_queue(queue.queue_id, schema_ids=[correct.schema_id])
        ),
        "user_fixed": error(lambda: update_review_queue(mine.queue_id, name="x")),
        "duplicate": error(lambda: create_review_queue("LAUNCH review", queue_type="custom")),
        "ghost": error(
            lambda: add_items_to_review_queue(queue.queue_id, item_ids=["tr-" + "0" * 32])
        ),
        "not_attached": error(lambda: mark(mine.queue_id, 0, "complete", "carol")),
    })
    remove_items_from_review_queue(queue.queue_id, item_ids=[trace_ids[2]])
    updated = update_review_queue(queue.queue_id, name="Launch review 2", users=["dave"])
    result({
        "left": len(list_review_queue_items(queue.queue_id)),
        "updated": [updated.name, updated.users, len(updated.schema_ids)],
    })
    delete_review_queue(queue.queue_id)
    delete_review_queue(queue.queue_id)
    result({
        "gone": error(lambda: get_review_queue(queue.queue_id)),
        "left_queues": [q.name for q in list_review_queues()],
    })
"""


def test_the_client_creates_fills_and_reads_schemas_and_queues(mlflow_server, run_mlflow):
    first, second, third, fourth, last = run_mlflow(FLOW_SCRIPT)
    assert first == {
        "schemas": [
            ["Feedback", "feedback", "InputText", True],
            ["Tone", "feedback", "InputCategorical", False],
            ["correct", "feedback", "InputPassFail", False],
            ["notes", "feedback", "InputText", False],
            ["score", "expectation", "InputNumeric", False],
        ],
        "correct": ["Yes", "Is it right?", True],
        "renamed": ["Tone", ["warm", "cold", "flat"]],
        "by_name": 10.0,
        "by_id": 200,
        "duplicate": "RESOURCE_ALREADY_EXISTS",
        "change_kind": "INVALID_PARAMETER_VALUE",
    }
    assert second == {"after_delete": ["Feedback", "Tone", "correct", "score"]}
    assert third == {
        "queue": ["Launch review", "custom", ["alice", "bob"], 2, None],
        "user_queue": ["carol", "user", ["carol"], "carol", True],
        "items": [["pending", "trace"]] * 3,
        "order": True,
        "done": ["complete", "alice", True],
        "skipped": ["declined", "bob"],
        "same": "alice",
        "reopened": ["pending", None, None],
        "pending": [1, 2],
        "all": 3,
        "by_name": True,
        "for_bob": ["Launch review"],
        "all_queues": ["Launch review", "carol"],
        "locked": "INVALID_PARAMETER_VALUE",
        "user_fixed": "INVALID_PARAMETER_VALUE",
        "duplicate": "RESOURCE_ALREADY_EXISTS",
        "ghost": "RESOURCE_DOES_NOT_EXIST",
        "not_attached": "RESOURCE_DOES_NOT_EXIST",
    }
    assert fourth == {"left": 2, "updated": ["Launch review 2", ["dave"], 2]}
    assert last == {"gone": "RESOURCE_DOES_NOT_EXIST", "left_queues": ["carol"]}
    # What stayed: the questions, Carol's queue (empty), and nothing of the deleted queue.
    assert sorted(LabelSchema.objects.values_list("name", flat=True)) == [
        "Feedback",
        "Tone",
        "correct",
        "score",
    ]
    assert list(ReviewQueue.objects.values_list("name", "queue_type")) == [("carol", "user")]
    assert not ReviewItem.objects.exists()


FILL_SCRIPT = """
    from mlflow.genai.label_schemas import InputPassFail, InputText, create_label_schema
    from mlflow.genai.review_queues import add_items_to_review_queue, create_review_queue

    mlflow.set_experiment("screen")
    with mlflow.start_span("answer") as span:
        span.set_inputs({"messages": [{"role": "user", "content": "Can I get a refund?"}]})
        span.set_outputs({"messages": [{"role": "assistant", "content": "Yes, in 5 days."}]})
    trace_id = mlflow.get_last_active_trace_id()
    mlflow.flush_trace_async_logging()
    helpful = create_label_schema(
        "helpful", type="feedback", input=InputPassFail(positive_label="Yes", negative_label="No"),
        enable_comment=True,
    )
    truth = create_label_schema("truth", type="expectation", input=InputText())
    queue = create_review_queue(
        "Screen", queue_type="custom", schema_ids=[helpful.schema_id, truth.schema_id]
    )
    add_items_to_review_queue(queue.queue_id, item_ids=[trace_id])
    result({"trace_id": trace_id, "queue_id": queue.queue_id})
"""

READ_SCRIPT = """
    import os
    from mlflow.genai.review_queues import list_review_queue_items

    trace = mlflow.get_trace(os.environ["TRACE_ID"])
    result(sorted(
        [a.name, type(a).__name__, a.value, a.rationale, a.source.source_type, a.source.source_id]
        for a in trace.info.assessments
    ))
    result([[i.status, i.completed_by] for i in list_review_queue_items(os.environ["QUEUE_ID"])])
"""


def test_answers_given_on_the_review_screen_are_what_the_client_reads(mlflow_server, run_mlflow):
    from django.test import Client

    (made,) = run_mlflow(FILL_SCRIPT)
    queue = ReviewQueue.objects.get(queue_id=made["queue_id"])
    item = queue.items.get()
    schemas = {s.name: s.schema_id for s in queue.schemas.all()}
    screen = Client().get(f"/review/{queue.queue_id}/").content.decode()
    assert "Can I get a refund?" in screen and "Yes, in 5 days." in screen

    Client().post(
        f"/review/{queue.queue_id}/items/{item.pk}/",
        {
            f"answer-{schemas['helpful']}": "pass",
            f"comment-{schemas['helpful']}": "to the point",
            f"answer-{schemas['truth']}": "Refunds take 5 days.",
        },
    )

    assessments, items = run_mlflow(
        READ_SCRIPT, TRACE_ID=made["trace_id"], QUEUE_ID=made["queue_id"]
    )
    assert assessments == [
        ["helpful", "Feedback", True, "to the point", "HUMAN", "default"],
        ["truth", "Expectation", "Refunds take 5 days.", None, "HUMAN", "default"],
    ]
    assert items == [["complete", "default"]]
