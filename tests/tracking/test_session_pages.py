"""/sessions/ and /sessions/<id>/: what they show, their filters and keyset pages, constant
query counts, hidden experiments, and the XSS corpus in session ids, user ids and messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from access.models import ExperimentGrant, Level
from evaluation import review_items
from tests.xss import CORPUS, injected_markup
from tracking import ingest, sessions
from tracking.models import Assessment, Experiment, LoggedModel, Span, Trace, TraceSession
from tracking.reviews import ItemType, ReviewItem

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def add_turn(
    experiment: Experiment,
    session: str,
    n: int,
    *,
    user: str = "",
    question: str = "hi",
    answer: str = "hello",
    state: str = "OK",
    model_id: str = "",
    when: datetime | None = None,
    tool: str = "",
) -> str:
    """One turn: a trace with a chat root span (and a tool span), sent through ingest."""
    trace_hex = f"{abs(hash((experiment.pk, session))) % 10**12:012x}{n:020x}"
    trace_id = "tr-" + trace_hex
    metadata = {"mlflow.trace.session": session}
    if user:
        metadata["mlflow.trace.user"] = user
    if model_id:
        metadata["mlflow.modelId"] = model_id
    metadata["mlflow.trace.tokenUsage"] = json.dumps(
        {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}
    )
    start = when or T0 + timedelta(minutes=n)
    start_ns = int(start.timestamp() * 1e9)
    info = {
        "trace_id": trace_id,
        "trace_location": {
            "type": "MLFLOW_EXPERIMENT",
            "mlflow_experiment": {"experiment_id": str(experiment.pk)},
        },
        "request_time": start.isoformat().replace("+00:00", "Z"),
        "execution_duration": "0.5s",
        "state": state,
        "trace_metadata": metadata,
    }
    root = {
        "trace_id": trace_hex,
        "span_id": f"{n:016x}",
        "parent_span_id": None,
        "name": "agent",
        "start_time_unix_nano": start_ns,
        "end_time_unix_nano": start_ns + 500_000_000,
        "status": {"code": "STATUS_CODE_OK"},
        "attributes": {
            "mlflow.traceRequestId": json.dumps(trace_id),
            "mlflow.spanType": '"AGENT"',
            "mlflow.spanInputs": json.dumps({"messages": [{"role": "user", "content": question}]}),
            "mlflow.spanOutputs": json.dumps(
                {"choices": [{"message": {"role": "assistant", "content": answer}}]}
            ),
        },
    }
    spans = [root]
    if tool:
        spans.append(
            {
                **root,
                "span_id": f"{n + 10**6:016x}",
                "parent_span_id": f"{n:016x}",
                "name": tool,
                "attributes": {
                    "mlflow.traceRequestId": json.dumps(trace_id),
                    "mlflow.spanType": '"TOOL"',
                    "mlflow.spanInputs": '{"city": "Paris"}',
                    "mlflow.spanOutputs": '"sunny"',
                },
            }
        )
    ingest.store_trace(info, spans)
    return trace_id


def test_list_shows_a_sessions_sums(client, experiment):
    for n in range(3):
        add_turn(experiment, "conv-1", n, user="alice", state="ERROR" if n == 1 else "OK")
    add_turn(experiment, "conv-2", 5, user="bob")

    html = client.get("/sessions/").content.decode()

    assert html.index("conv-2") < html.index("conv-1")  # most recently active first
    row = html[html.index("conv-1") :]
    assert "alice" in row
    assert '<td class="num">3</td>' in row
    assert '<span class="badge state-error">1</span>' in row
    assert "21" in row  # tokens


def test_turns_in_the_same_millisecond_keep_the_order_they_started_in(experiment):
    """The client sends request_time in ms and its exporter may deliver the turns out of
    order: the second turn stored first must still read second."""
    add_turn(experiment, "conv-1", 2, question="second", when=T0)
    add_turn(experiment, "conv-1", 1, question="first", when=T0)
    t0_ns = int(T0.timestamp() * 1e9)
    for n, offset in ((1, 100_000), (2, 400_000)):  # 0.1 ms and 0.4 ms into that millisecond
        Span.objects.filter(span_id=f"{n:016x}").update(start_ns=t0_ns + offset)
    session = TraceSession.objects.get(session_id="conv-1")

    turns = sessions.turns(session)
    assert [turn.user_message for turn in turns] == ["first", "second"]
    # A review queue's session item reads them in the same order, and answers on the first.
    item = ReviewItem(item_type=ItemType.SESSION, item_id="conv-1")
    content = review_items.content_of(item, experiment.pk)
    assert [t.trace for t in content.turns] == [turn.trace for turn in turns]
    assert content.target == turns[0].trace


def test_list_shows_feedback_summary(client, experiment):
    trace_id = add_turn(experiment, "conv-1", 1)
    trace = Trace.objects.get(trace_id=trace_id)
    Assessment.objects.create(trace=trace, name="helpful", kind="feedback", value=True)
    Assessment.objects.create(trace=trace, name="helpful", kind="feedback", value=False)

    html = client.get("/sessions/").content.decode()

    assert "helpful: 1/2 pass" in html


def test_list_filters_by_user_errors_time_and_model(client, experiment):
    model = LoggedModel.objects.create(experiment=experiment, name="agent")
    add_turn(experiment, "by-alice", 1, user="alice", model_id=model.model_id)
    add_turn(experiment, "by-bob", 2, user="bob", state="ERROR")
    add_turn(experiment, "recent", 3, when=datetime.now(UTC))

    def shown(query: str) -> set[str]:
        html = client.get(f"/sessions/?{query}").content.decode()
        return {s for s in ("by-alice", "by-bob", "recent") if f">{s}</a>" in html}

    assert shown("") == {"by-alice", "by-bob", "recent"}
    assert shown("user=alice") == {"by-alice"}
    assert shown("errors=1") == {"by-bob"}
    assert shown("since=1h") == {"recent"}
    assert shown(f"model={model.model_id}") == {"by-alice"}
    assert shown(f"experiment={experiment.pk}&user=bob") == {"by-bob"}


def test_list_pages_by_keyset(client, experiment, monkeypatch):
    monkeypatch.setattr(sessions, "SESSIONS_PER_PAGE", 2)
    for n in range(5):
        add_turn(experiment, f"s-{n}", n)

    seen = []
    url = "/sessions/"
    while url:
        response = client.get(url)
        html = response.content.decode()
        found = [f"s-{n}" for n in range(5) if f">s-{n}</a>" in html]
        seen += sorted(found, key=lambda s: html.index(f">{s}</a>"))
        older = response.context["older_query"]
        url = f"/sessions/?{older}" if older else ""

    assert seen == ["s-4", "s-3", "s-2", "s-1", "s-0"]
    assert client.get("/sessions/?before=garbage").status_code == 400


def test_list_query_count_does_not_grow_with_sessions(
    client, experiment, django_assert_num_queries
):
    for n in range(3):
        add_turn(experiment, f"s-{n}", n)
    with django_assert_num_queries(2):  # the page (sessions + experiments), their feedback
        client.get("/sessions/?user=&errors=")
    for n in range(3, 20):
        add_turn(experiment, f"s-{n}", n)
    with django_assert_num_queries(2):
        client.get("/sessions/?user=&errors=")


def test_session_page_shows_the_conversation_turn_by_turn(client, experiment):
    add_turn(
        experiment, "conv", 1, question="What is the weather?", answer="Sunny.", tool="weather"
    )
    add_turn(experiment, "conv", 2, question="And tomorrow?", answer="Rain.")

    response = client.get(f"/sessions/conv/?experiment={experiment.pk}")
    html = response.content.decode()

    assert response.status_code == 200
    assert html.index("What is the weather?") < html.index("Sunny.") < html.index("And tomorrow?")
    assert "1 tool call" in html and "weather" in html
    first = Trace.objects.filter(session_id="conv").order_by("request_time").first()
    assert f'href="/traces/{first.trace_id}/"' in html
    assert f'href="/playground/replay/?session=conv&amp;experiment={experiment.pk}"' in html


def test_session_page_query_count_does_not_grow_with_turns(
    client, experiment, django_assert_num_queries
):
    for n in range(2):
        add_turn(experiment, "conv", n, tool="t")
    with django_assert_num_queries(4):
        client.get("/sessions/conv/")
    for n in range(2, 30):
        add_turn(experiment, "conv", n, tool="t")
    with django_assert_num_queries(4):
        client.get("/sessions/conv/")


def test_session_feedback_is_the_first_traces_session_assessments(client, experiment):
    first = add_turn(experiment, "conv", 1)
    add_turn(experiment, "conv", 2)
    trace = Trace.objects.get(trace_id=first)
    Assessment.objects.create(
        trace=trace,
        name="resolved",
        kind="feedback",
        value=True,
        metadata={"mlflow.trace.session": "conv"},
    )
    Assessment.objects.create(trace=trace, name="turn-only", kind="feedback", value=1)

    html = client.get("/sessions/conv/").content.decode()
    section = html[html.index('id="session-feedback"') : html.index("<h2>Conversation</h2>")]

    assert "resolved" in section
    assert "turn-only" not in section
    # The forms write to the first trace, naming the session (as MLflow keeps it).
    assert f'action="/traces/{first}/feedback/"' in section
    assert 'name="panel_session" value="conv"' in section


def test_feedback_given_on_the_session_page_is_the_sessions(client, experiment):
    first = add_turn(experiment, "conv", 1)
    add_turn(experiment, "conv", 2)
    response = client.post(
        f"/traces/{first}/feedback/",
        {"kind": "feedback", "name": "helpful", "value_type": "pass_fail", "verdict": "true",
         "panel_session": "conv"},
    )  # fmt: skip
    assert response.status_code == 302
    assert response["Location"].startswith("/sessions/conv/")
    given = Assessment.objects.get(name="helpful")
    assert (given.value, given.source_type) == (True, "HUMAN")
    assert given.metadata == {"mlflow.trace.session": "conv"}
    # A session the trace is not in is not named.
    client.post(
        f"/traces/{first}/feedback/",
        {"kind": "feedback", "name": "other", "value_type": "pass_fail", "verdict": "true",
         "panel_session": "elsewhere"},
    )  # fmt: skip
    assert Assessment.objects.get(name="other").metadata == {}


def test_a_session_id_in_two_experiments_asks_which(client, experiment):
    other = Experiment.objects.create(name="other-exp")
    add_turn(experiment, "same", 1)
    add_turn(other, "same", 2)

    html = client.get("/sessions/same/").content.decode()

    assert f"/sessions/same/?experiment={experiment.pk}" in html
    assert f"/sessions/same/?experiment={other.pk}" in html
    assert client.get(f"/sessions/same/?experiment={other.pk}").status_code == 200
    assert client.get("/sessions/nothing/").status_code == 404


def test_hidden_experiments_sessions_are_not_listed_nor_opened(
    client, experiment, charlie, settings
):
    settings.SPYGLASS_AUTH = True
    private = Experiment.objects.create(name="private")
    ExperimentGrant.objects.create(experiment=private, level=Level.NONE)
    add_turn(experiment, "visible", 1)
    add_turn(private, "secret", 2)
    add_turn(private, "visible", 3)
    client.force_login(charlie)

    html = client.get("/sessions/").content.decode()

    assert ">visible</a>" in html and "secret" not in html
    assert client.get("/sessions/secret/").status_code == 404
    assert client.get(f"/sessions/visible/?experiment={private.pk}").status_code == 404
    # The id is in both, but one is hidden: no chooser, the readable one opens.
    assert "Session <span" in client.get("/sessions/visible/").content.decode()


def test_xss_corpus_in_session_ids_users_and_messages_stays_text(client, experiment):
    for n, text in enumerate(CORPUS):
        add_turn(experiment, text, n, user=text, question=text, answer=text, tool=text[:60])

    pages = [client.get("/sessions/").content.decode()]
    for text in CORPUS:
        response = client.get(f"/sessions/{quote(text, safe='')}/?experiment={experiment.pk}")
        assert response.status_code == 200, text
        pages.append(response.content.decode())

    for html in pages:
        assert injected_markup(html) == []


def test_replay_in_playground_prefills_the_sessions_user_turns(client, experiment):
    add_turn(experiment, "conv", 1, question="First question", answer="First answer")
    add_turn(experiment, "conv", 2, question="Second question", answer="Second answer")

    response = client.get(f"/playground/?replay_session=conv&experiment={experiment.pk}")
    prefill = response.context["prefill"]

    assert prefill.message == "Second question"
    assert prefill.history == [
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": "First answer"},
    ]
    missing = client.get(f"/playground/?replay_session=conv&experiment={experiment.pk + 1}")
    assert "There is no session conv." in missing.content.decode()


def test_selected_sessions_go_to_a_review_queue(client, experiment):
    add_turn(experiment, "conv", 1)
    html = client.get("/sessions/").content.decode()
    assert 'action="/review/add/"' in html
    assert 'name="session" value="conv" form="session-selection"' in html
    # What the review pages make of the selection: the queue form for the session.
    response = client.post("/review/add/", {"session": "conv"})
    assert response.status_code == 200
    assert "conv" in response.content.decode()
