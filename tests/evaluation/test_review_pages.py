"""The review queue pages: the list with progress per reviewer, making a queue, the review
screen (answers written as MLflow assessments, the reviewer's status through
ReviewItem.decide, next/previous, skipping, several reviewers), "Add to review queue" from the
trace list; their access, query counts and escaping."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from access.models import ExperimentGrant, Level, Role
from tests.rows import make_span, make_trace
from tests.users import PASSWORD, with_role
from tests.xss import CORPUS, injected_markup
from tracking.models import Assessment, Experiment
from tracking.reviews import LabelSchema, ReviewItem, ReviewQueue

pytestmark = pytest.mark.django_db


def _chat_trace(experiment: Experiment, n: int, question: str, answer: str, **fields):
    trace = make_trace(
        experiment,
        n,
        request_preview=question,
        response_preview=answer,
        **fields,
    )
    make_span(
        trace,
        f"{n:016x}",
        0,
        inputs={"messages": [{"role": "user", "content": question}]},
        outputs={"choices": [{"message": {"role": "assistant", "content": answer}}]},
    )
    return trace


def _schemas(experiment: Experiment) -> dict[str, LabelSchema]:
    make = LabelSchema.objects.create
    return {
        "helpful": make(
            experiment=experiment,
            name="helpful",
            type="feedback",
            input_kind="pass_fail",
            input_config={"positive_label": "Helpful", "negative_label": "Not helpful"},
            enable_comment=True,
        ),
        "tone": make(
            experiment=experiment,
            name="tone",
            type="feedback",
            input_kind="categorical",
            input_config={"options": ["warm", "neutral", "cold"], "multi_select": False},
        ),
        "score": make(
            experiment=experiment,
            name="score",
            type="feedback",
            input_kind="numeric",
            input_config={"min_value": 1, "max_value": 5},
        ),
        "correct": make(
            experiment=experiment, name="correct", type="expectation", input_kind="text"
        ),
    }


def _queue(experiment: Experiment, traces, users=(), name="refunds") -> ReviewQueue:
    queue = ReviewQueue.objects.create(experiment=experiment, name=name, queue_type="custom")
    queue.set_users(list(users))
    queue.schemas.set(LabelSchema.objects.filter(experiment=experiment))
    for trace in traces:
        ReviewItem.objects.create(queue=queue, item_type="trace", item_id=trace.trace_id)
    return queue


@pytest.fixture
def world(experiment):
    traces = [_chat_trace(experiment, n, f"question {n}", f"answer {n}") for n in range(3)]
    schemas = _schemas(experiment)
    return experiment, traces, schemas


def _login(client: Client, user: User) -> Client:
    assert client.login(username=user.username, password=PASSWORD)
    return client


def _answer(client: Client, queue: ReviewQueue, item: ReviewItem, **fields):
    return client.post(f"/review/{queue.queue_id}/items/{item.pk}/", fields)


def _fields(schemas, **answers) -> dict[str, str]:
    return {f"answer-{schemas[name].schema_id}": value for name, value in answers.items()}


# --- The review screen ----------------------------------------------------------------------


def test_the_screen_shows_the_reviewers_first_pending_item_and_its_questions(client, world):
    experiment, traces, schemas = world
    queue = _queue(experiment, traces)
    html = client.get(f"/review/{queue.queue_id}/").content.decode()

    assert "question 0" in html and "answer 0" in html  # the root span's chat
    assert "question 1" not in html
    assert "Item 1 of 3" in html
    for schema in schemas.values():
        assert f'name="answer-{schema.schema_id}"' in html
    assert "<kbd>1</kbd> Helpful" in html and "<kbd>3</kbd> cold" in html
    assert 'type="number"' in html and 'min="1"' in html
    assert "js/review.js" in html


def test_answering_writes_assessments_and_marks_the_item_done_then_moves_on(client, world):
    experiment, traces, schemas = world
    queue = _queue(experiment, traces)
    first = queue.items.get(item_id=traces[0].trace_id)
    fields = _fields(schemas, helpful="pass", tone="warm", score="4", correct="Refund in 5 days")
    fields[f"comment-{schemas['helpful'].schema_id}"] = "clear and short"

    response = _answer(client, queue, first, **fields)

    second = queue.items.get(item_id=traces[1].trace_id)
    assert response.status_code == 302
    assert response["Location"] == f"/review/{queue.queue_id}/?item={second.pk}"
    written = {a.name: a for a in Assessment.objects.filter(trace=traces[0])}
    assert {n: (a.kind, a.value) for n, a in written.items()} == {
        "helpful": ("feedback", True),
        "tone": ("feedback", "warm"),
        "score": ("feedback", 4),
        "correct": ("expectation", "Refund in 5 days"),
    }
    assert written["helpful"].rationale == "clear and short"
    assert {(a.source_type, a.source_id) for a in written.values()} == {("HUMAN", "default")}
    assert written["tone"].metadata == {"review_queue_id": queue.queue_id}
    first.refresh_from_db()
    assert first.status == "complete" and first.completed_by == "default"
    assert first.decisions.get().status == "done"
    # MLflow's own view of the trace lists them
    info = client.get(f"/api/3.0/mlflow/traces/{traces[0].trace_id}").json()
    names = {a["assessment_name"] for a in info["trace"]["trace_info"]["assessments"]}
    assert names == {"helpful", "tone", "score", "correct"}


def test_answering_again_overrides_the_feedback_and_updates_the_expectation(client, world):
    experiment, traces, schemas = world
    queue = _queue(experiment, traces)
    item = queue.items.get(item_id=traces[0].trace_id)
    _answer(client, queue, item, **_fields(schemas, helpful="pass", correct="yes"))
    _answer(client, queue, item, action="reopen")
    _answer(client, queue, item, **_fields(schemas, helpful="fail", correct="no"))

    helpful = Assessment.objects.filter(trace=traces[0], name="helpful").order_by("pk")
    assert [(a.value, a.valid) for a in helpful] == [(True, False), (False, True)]
    assert helpful[1].overrides == helpful[0].assessment_id
    correct = Assessment.objects.filter(trace=traces[0], name="correct")
    assert [a.value for a in correct] == ["no"]
    # The screen shows the current answers
    html = client.get(f"/review/{queue.queue_id}/?item={item.pk}").content.decode()
    assert re.search(r'value="fail" checked', html)
    assert ">no</textarea>" in html


def test_an_unchanged_answer_writes_nothing_new(client, world):
    experiment, traces, schemas = world
    queue = _queue(experiment, traces)
    item = queue.items.get(item_id=traces[0].trace_id)
    _answer(client, queue, item, **_fields(schemas, tone="cold"))
    _answer(client, queue, item, **_fields(schemas, tone="cold"))
    assert Assessment.objects.filter(trace=traces[0]).count() == 1


@pytest.mark.parametrize(
    ("answers", "error"),
    [
        ({"score": "9"}, "at most 5"),
        ({"score": "many"}, "is not a number"),
        ({"score": "nan"}, "finite"),
        ({"tone": "furious"}, "is not one of the options"),
        ({"helpful": "maybe"}, "pass or fail"),
    ],
)
def test_a_bad_answer_saves_nothing_and_says_why(client, world, answers, error):
    experiment, traces, schemas = world
    queue = _queue(experiment, traces)
    item = queue.items.get(item_id=traces[0].trace_id)
    fields = {**_fields(schemas, helpful="pass"), **_fields(schemas, **answers)}

    response = _answer(client, queue, item, **fields)

    assert response["Location"] == f"/review/{queue.queue_id}/?item={item.pk}"
    assert not Assessment.objects.exists()
    item.refresh_from_db()
    assert item.status == "pending" and not item.decisions.exists()
    assert error in client.get(response["Location"]).content.decode()


def test_skipping_records_skipped_and_moves_on_without_an_assessment(client, world):
    experiment, traces, _ = world
    queue = _queue(experiment, traces)
    first = queue.items.get(item_id=traces[0].trace_id)

    response = _answer(client, queue, first, action="skip")

    second = queue.items.get(item_id=traces[1].trace_id)
    assert response["Location"].endswith(f"?item={second.pk}")
    first.refresh_from_db()
    assert first.status == "declined" and first.decisions.get().status == "skipped"
    assert not Assessment.objects.exists()
    # The reviewer's next pending item is now the second
    assert "question 1" in client.get(f"/review/{queue.queue_id}/").content.decode()


def test_next_and_previous_follow_the_queue_order(client, world):
    experiment, traces, _ = world
    queue = _queue(experiment, traces)
    items = list(queue.items.in_review_order())
    html = client.get(f"/review/{queue.queue_id}/?item={items[1].pk}").content.decode()
    assert f'href="?item={items[0].pk}" data-key-link="k"' in html
    assert f'href="?item={items[2].pk}" data-key-link="j"' in html
    assert "Item 2 of 3" in html
    first = client.get(f"/review/{queue.queue_id}/?item={items[0].pk}").content.decode()
    assert 'data-key-link="k"' not in first
    assert client.get(f"/review/{queue.queue_id}/?item=999999").status_code == 404


def test_after_the_last_item_the_screen_says_nothing_is_left(client, world):
    experiment, traces, _ = world
    queue = _queue(experiment, traces[:1])
    item = queue.items.get()
    response = _answer(client, queue, item, action="skip")
    assert response["Location"] == f"/review/{queue.queue_id}/"
    html = client.get(response["Location"]).content.decode()
    assert "Nothing left for you" in html
    assert f'href="?item={item.pk}" data-key-link="k"' in html


def test_two_reviewers_each_have_their_own_status_and_next_item(auth_on, world):
    experiment, traces, schemas = world
    bob = with_role(User.objects.create_user("bob", password=PASSWORD), Role.EDITOR)
    dave = with_role(User.objects.create_user("dave", password=PASSWORD), Role.EDITOR)
    queue = _queue(experiment, traces, users=["bob", "dave"])
    first = queue.items.get(item_id=traces[0].trace_id)
    as_bob, as_dave = _login(Client(), bob), _login(Client(), dave)

    _answer(as_bob, queue, first, **_fields(schemas, tone="warm"))
    first.refresh_from_db()
    assert first.status == "pending"  # dave has not decided yet
    assert "question 1" in as_bob.get(f"/review/{queue.queue_id}/").content.decode()
    assert "question 0" in as_dave.get(f"/review/{queue.queue_id}/").content.decode()

    _answer(as_dave, queue, first, **_fields(schemas, tone="cold"))
    first.refresh_from_db()
    assert first.status == "complete"
    tones = Assessment.objects.filter(trace=traces[0], name="tone", valid=True)
    assert sorted((a.source_id, a.value) for a in tones) == [("bob", "warm"), ("dave", "cold")]

    html = as_bob.get("/review/").content.decode()
    assert re.search(r'data-reviewer="bob".*?1 · 0 · 2', html, re.S)
    assert re.search(r'data-reviewer="dave".*?1 · 0 · 2', html, re.S)


def test_a_session_item_shows_its_turns_and_answers_go_on_its_first_trace(client, experiment):
    _schemas(experiment)
    turns = [
        _chat_trace(experiment, n, f"turn {n} asks", f"turn {n} says", session_id="s-1")
        for n in (5, 3, 4)
    ]
    queue = _queue(experiment, [])
    item = ReviewItem.objects.create(queue=queue, item_type="session", item_id="s-1")
    html = client.get(f"/review/{queue.queue_id}/").content.decode()
    assert html.index("turn 3 asks") < html.index("turn 4 asks") < html.index("turn 5 says")

    schema = LabelSchema.objects.get(name="helpful")
    _answer(client, queue, item, **{f"answer-{schema.schema_id}": "fail"})
    first = turns[1]
    assert list(Assessment.objects.values_list("trace_id", "value")) == [(first.pk, False)]


def test_an_item_whose_trace_is_gone_can_be_skipped_not_answered(client, world):
    experiment, traces, schemas = world
    queue = _queue(experiment, traces[:1])
    item = queue.items.get()
    traces[0].delete()
    assert "no longer exists" in client.get(f"/review/{queue.queue_id}/").content.decode()
    _answer(client, queue, item, **_fields(schemas, tone="warm"))
    item.refresh_from_db()
    assert item.status == "pending"
    _answer(client, queue, item, action="skip")
    item.refresh_from_db()
    assert item.status == "declined"


# --- The list and making a queue ------------------------------------------------------------


def test_the_list_shows_each_queue_with_progress_questions_and_reviewers(client, world):
    experiment, traces, _ = world
    queue = _queue(experiment, traces, users=["bob", "carol"])
    ReviewItem.objects.filter(item_id=traces[0].trace_id).update(status="complete")
    html = client.get("/review/").content.decode()
    row = html[html.index(f'id="queue-{queue.queue_id}"') :]
    assert f'href="/review/{queue.queue_id}/"' in row
    assert "1 done" in row and "0 skipped" in row and "2 pending" in row and "of 3" in row
    assert 'data-reviewer="bob"' in row and 'data-reviewer="carol"' in row
    assert ">helpful<" in row and ">correct<" in row


def test_the_list_costs_the_same_queries_for_more_queues(client, world):
    experiment, traces, _ = world

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/review/").status_code == 200
        return len(queries)

    _queue(experiment, traces, users=["bob"], name="one")
    few = count()
    for n in range(6):
        _queue(experiment, traces, users=["bob", f"r{n}"], name=f"more {n}")
    assert count() == few <= 12


def test_the_screen_costs_a_bounded_number_of_queries(client, world):
    experiment, traces, _ = world
    queue = _queue(experiment, traces)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(f"/review/{queue.queue_id}/").status_code == 200
    assert len(queries) <= 16


def test_an_editor_makes_a_queue_with_questions_and_reviewers(auth_on, bob, world):
    experiment, _, schemas = world
    client = _login(Client(), bob)
    assert b'action="/review/new/"' in client.get("/review/").content
    response = client.post(
        "/review/new/",
        {
            "experiment": experiment.pk,
            "name": "Tone check",
            "schema": [schemas["tone"].schema_id, schemas["score"].schema_id],
            "reviewers": "Bob, carol,bob",
        },
    )
    assert response.status_code == 302
    queue = ReviewQueue.objects.get(name="Tone check")
    assert queue.users == ["bob", "carol"] and queue.created_by == "bob"
    assert sorted(s.name for s in queue.schemas.all()) == ["score", "tone"]
    assert queue.queue_type == "custom"


def test_a_queue_made_without_questions_asks_the_default_one(client, experiment):
    client.post("/review/new/", {"experiment": experiment.pk, "name": "plain"})
    queue = ReviewQueue.objects.get(name="plain")
    assert [s.name for s in queue.schemas.all()] == ["Feedback"]


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"name": ""}, "needs a name"),
        ({"name": "default"}, "reserved"),
        ({"name": "x" * 251}, "at most 250"),
        ({"reviewers": ",".join(f"u{n}" for n in range(11))}, "at most 10 reviewers"),
        ({"schema": "ls-unknown"}, "questions of the queue"),
    ],
)
def test_a_bad_queue_is_not_made(client, experiment, fields, why):
    response = client.post("/review/new/", {"experiment": experiment.pk, "name": "q", **fields})
    assert response.status_code == 302
    assert not ReviewQueue.objects.exists()
    assert why in client.get("/review/").content.decode()


def test_a_taken_name_is_refused_ignoring_case(client, experiment):
    client.post("/review/new/", {"experiment": experiment.pk, "name": "Refunds"})
    client.post("/review/new/", {"experiment": experiment.pk, "name": "refunds"})
    assert ReviewQueue.objects.count() == 1
    assert "is taken" in client.get("/review/").content.decode()


# --- Access ---------------------------------------------------------------------------------


def test_a_hidden_experiments_queue_is_neither_listed_nor_shown(auth_on, bob, world):
    experiment, traces, schemas = world
    ExperimentGrant.objects.create(experiment=experiment, level=Level.NONE)
    queue = _queue(experiment, traces, name="secret queue")
    item = queue.items.first()
    client = _login(Client(), bob)

    assert "secret queue" not in client.get("/review/").content.decode()
    assert client.get(f"/review/{queue.queue_id}/").status_code == 404
    assert _answer(client, queue, item, **_fields(schemas, tone="warm")).status_code == 404
    made = client.post("/review/new/", {"experiment": experiment.pk, "name": "x"})
    assert made.status_code == 404
    assert not Assessment.objects.exists()


def test_a_viewer_reads_the_queue_but_cannot_answer_or_make_one(auth_on, charlie, world):
    experiment, traces, schemas = world
    queue = _queue(experiment, traces)
    item = queue.items.first()
    client = _login(Client(), charlie)

    html = client.get(f"/review/{queue.queue_id}/").content.decode()
    assert "question 0" in html and "not answer" in html
    assert 'class="review-fieldset" disabled' in html
    assert 'action="/review/new/"' not in client.get("/review/").content.decode()
    assert _answer(client, queue, item, **_fields(schemas, tone="warm")).status_code == 403
    assert _answer(client, queue, item, action="skip").status_code == 403
    made = client.post("/review/new/", {"experiment": experiment.pk, "name": "x"})
    assert made.status_code == 403
    assert not Assessment.objects.exists() and not item.decisions.exists()
    assert ReviewQueue.objects.count() == 1


# --- Add to a queue -------------------------------------------------------------------------


def test_the_trace_list_offers_add_to_review_queue(client, world):
    html = client.get("/traces/").content.decode()
    assert 'formaction="/review/add/"' in html


def test_selected_traces_are_added_to_a_chosen_queue(client, world):
    experiment, traces, _ = world
    queue = _queue(experiment, traces[:1])
    ids = [t.trace_id for t in traces]
    form = client.post("/review/add/", {"trace": ids, "next": "/traces/"})
    assert form.status_code == 200 and queue.name in form.content.decode()

    response = client.post(
        "/review/add/", {"trace": ids, "queue": queue.queue_id, "confirm": "yes"}
    )

    assert response["Location"] == f"/review/{queue.queue_id}/"
    assert sorted(queue.items.values_list("item_id", flat=True)) == sorted(ids)


def test_sessions_can_be_added_too(client, experiment):
    _chat_trace(experiment, 1, "a", "b", session_id="s-9")
    queue = _queue(experiment, [])
    client.post("/review/add/", {"session": "s-9", "queue": queue.queue_id, "confirm": "yes"})
    assert list(queue.items.values_list("item_type", "item_id")) == [("session", "s-9")]


def test_traces_of_two_experiments_are_not_added(client, world):
    experiment, traces, _ = world
    other = _chat_trace(Experiment.objects.create(name="other"), 9, "q", "a")
    queue = _queue(experiment, [])
    client.post(
        "/review/add/",
        {"trace": [traces[0].trace_id, other.trace_id], "queue": queue.queue_id, "confirm": "yes"},
    )
    assert not queue.items.exists()


def test_a_viewer_cannot_add_traces(auth_on, charlie, world):
    experiment, traces, _ = world
    queue = _queue(experiment, [])
    client = _login(Client(), charlie)
    response = client.post(
        "/review/add/", {"trace": traces[0].trace_id, "queue": queue.queue_id, "confirm": "yes"}
    )
    assert response.status_code == 403 and not queue.items.exists()


# --- Escaping -------------------------------------------------------------------------------


def test_names_options_and_item_content_from_the_corpus_stay_text(client, experiment):
    for n, text in enumerate(CORPUS):
        LabelSchema.objects.create(
            experiment=experiment,
            name=f"{text} {n}",
            type="feedback",
            input_kind="categorical",
            instruction=text,
            input_config={"options": [text, "ok"]},
        )
    traces = [_chat_trace(experiment, n, text, text) for n, text in enumerate(CORPUS)]
    queues = [_queue(experiment, traces, users=[text.lower()[:40]], name=text) for text in CORPUS]
    ReviewItem.objects.create(queue=queues[0], item_type="session", item_id=CORPUS[0])

    pages = [client.get("/review/"), client.get(f"/review/{queues[0].queue_id}/")]
    for item in queues[0].items.all():
        pages.append(client.get(f"/review/{queues[0].queue_id}/?item={item.pk}"))
    pages.append(client.post("/review/add/", {"trace": traces[0].trace_id}))
    for response in pages:
        assert response.status_code == 200
        assert injected_markup(response.content.decode()) == []
