"""Replaying a logged session: every user turn answered again, in order, by the chosen agents,
through the embedded worker; cancel, the reaper, and who may replay what."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from access.models import ExperimentGrant, Level
from playground import session_replay
from playground.models import Agent, Conversation, Message, Replay, Run, RunStatus
from tests.playground.conftest import wait_for, wait_until_finished
from tests.tracking.test_session_pages import add_turn
from tracking.models import Experiment, Span, Trace, TraceSession

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("sqlite_shared_reads"),
]

QUESTIONS = ["Where is my order?", "Can I change the address?", "Thanks!"]
CUSTOM = {"customer": "c-42"}


@pytest.fixture(autouse=True)
def _replays_on_the_memory_broker(memory_celery_app, monkeypatch):
    """Replays are published to the in-memory broker, where `worker` (the embedded worker,
    on that same app) answers them; without it they stay queued."""
    monkeypatch.setattr(session_replay, "default_app", memory_celery_app)


def three_turns(experiment: Experiment, session: str = "conv") -> TraceSession:
    """A logged three-turn session; its second turn's request carried custom_inputs."""
    for n, question in enumerate(QUESTIONS, start=1):
        trace_id = add_turn(experiment, session, n, question=question, answer=f"Recorded {n}")
        if n == 2:
            Span.objects.filter(trace__trace_id=trace_id, parent_span_id="").update(
                inputs={
                    "messages": [{"role": "user", "content": question}],
                    "custom_inputs": CUSTOM,
                }
            )
    return TraceSession.objects.get(experiment=experiment, session_id=session)


def wait_until_replayed(replay: Replay, timeout: float = 20.0) -> Replay:
    wait_for(lambda: Replay.objects.get(pk=replay.pk).finished, timeout, "the replay's end")
    return Replay.objects.get(pk=replay.pk)


def test_every_turn_is_answered_in_order_with_the_agents_own_history(
    worker, echo_agent, http_agent, experiment
):
    chat_agent = http_agent("chat-agent", "mlflow-serving")
    replay = session_replay.start(three_turns(experiment), [echo_agent, chat_agent])

    replay = wait_until_replayed(replay)

    assert replay.status == RunStatus.DONE and replay.turns_started == 3
    conversation = replay.conversation
    assert [m.content for m in conversation.messages.all()] == QUESTIONS
    for agent, said in ((echo_agent, "You said: "), (chat_agent, "Echo: ")):
        answers = list(Run.objects.filter(agent=agent).order_by("message__created_at", "pk"))
        assert [a.status for a in answers] == [RunStatus.DONE] * 3
        assert [a.content for a in answers] == [said + q for q in QUESTIONS]
        # The history of the last turn is this agent's own answers, not the recorded ones.
        assert answers[2].request["messages"] == [
            {"role": "user", "content": QUESTIONS[0]},
            {"role": "assistant", "content": said + QUESTIONS[0]},
            {"role": "user", "content": QUESTIONS[1]},
            {"role": "assistant", "content": said + QUESTIONS[1]},
            {"role": "user", "content": QUESTIONS[2]},
        ]
        assert [a.request["custom_inputs"] for a in answers] == [None, CUSTOM, None]
        sessions = Trace.objects.filter(trace_id__in=[a.trace_id for a in answers])
        assert set(sessions.values_list("session_id", flat=True)) == {
            f"playground-{conversation.pk}"
        }
    # What the HTTP agent received, and what it says it received.
    chat_answers = Run.objects.filter(agent=chat_agent).order_by("message__created_at", "pk")
    assert [a.custom_outputs for a in chat_answers] == [
        {"received_custom_inputs": c} for c in (None, CUSTOM, None)
    ]
    assert not Message.objects.filter(role="assistant").exists()


def test_the_replay_form_starts_it_and_lands_on_the_conversation(
    client, worker, echo_agent, experiment
):
    three_turns(experiment)
    url = f"/playground/replay/?session=conv&experiment={experiment.pk}"

    form = client.get(url, HTTP_HX_REQUEST="true")
    started = client.post(url, {"agents": [echo_agent.pk]})

    assert form.status_code == 200 and 'name="agents"' in form.content.decode()
    conversation = Conversation.objects.get()
    assert started.status_code == 302
    assert started["Location"] == f"/playground/c/{conversation.pk}/"
    wait_until_replayed(conversation.replay)
    assert Run.objects.filter(status=RunStatus.DONE).count() == 3
    page = client.get(started["Location"]).content.decode()
    assert page.count('data-status="done"') == 3
    assert "all 3 turns answered" in page


def test_the_conversation_polls_while_turns_arrive(client, echo_agent, experiment):
    # No worker: the replay stays queued, and the page has nothing new to say.
    replay = session_replay.start(three_turns(experiment), [echo_agent])
    url = f"/playground/c/{replay.conversation_id}/"

    html = client.get(url).content.decode()
    unchanged = client.get(url + "?state=0-queued", HTTP_HX_REQUEST="true")
    Message.objects.create(conversation=replay.conversation, content="a turn arrived")
    changed = client.get(url + "?state=0-queued", HTTP_HX_REQUEST="true")

    assert 'hx-get="/playground/c/' in html and "state=0-queued" in html
    assert unchanged.status_code == 204
    assert changed.status_code == 200 and "a turn arrived" in changed.content.decode()


def test_no_agent_chosen_is_a_422_and_starts_nothing(client, experiment):
    three_turns(experiment)

    response = client.post(f"/playground/replay/?session=conv&experiment={experiment.pk}", {})

    assert response.status_code == 422
    assert not Conversation.objects.exists()


def test_cancel_stops_the_answer_under_way_and_the_remaining_turns(
    client, worker, http_agent, experiment
):
    slow = http_agent("slow-stream")
    replay = session_replay.start(three_turns(experiment), [slow])
    first = wait_for(lambda: Run.objects.filter(content__gt="").first(), what="a first chunk")

    response = client.post(f"/playground/replays/{replay.pk}/cancel")

    assert response.status_code == 302
    replay = wait_until_replayed(replay)
    assert replay.status == RunStatus.CANCELLED
    assert wait_until_finished(first.pk).status == RunStatus.CANCELLED
    time.sleep(0.5)  # a replay that went on would have started turn 2 by now
    assert Message.objects.filter(conversation=replay.conversation).count() == 1
    assert Run.objects.count() == 1


def test_a_redelivered_replay_does_nothing(echo_agent, experiment):
    replay = session_replay.start(three_turns(experiment), [echo_agent])

    assert session_replay.run(replay.pk) == "done"
    assert session_replay.run(replay.pk) == "not-queued"
    assert Run.objects.count() == 3


def test_the_reaper_fails_a_replay_whose_worker_died(echo_agent, experiment):
    lost = session_replay.start(three_turns(experiment), [echo_agent])
    long_ago = timezone.now() - timedelta(hours=1)
    Replay.objects.filter(pk=lost.pk).update(status=RunStatus.RUNNING, heartbeat_at=long_ago)
    answering = session_replay.start(three_turns(experiment, "other"), [echo_agent])
    Replay.objects.filter(pk=answering.pk).update(status=RunStatus.RUNNING, heartbeat_at=long_ago)
    message = Message.objects.create(conversation=answering.conversation, content="q")
    run = Run.objects.create(conversation=answering.conversation, message=message,
                             agent=echo_agent, status=RunStatus.RUNNING)  # fmt: skip

    # A replay whose answer still runs waits for the run reaper; one with none is lost.
    assert session_replay.reap_stale_replays() == 1
    assert Replay.objects.get(pk=lost.pk).status == RunStatus.FAILED
    assert "worker stopped" in Replay.objects.get(pk=lost.pk).error
    assert Replay.objects.get(pk=answering.pk).status == RunStatus.RUNNING
    Run.objects.filter(pk=run.pk).update(status=RunStatus.FAILED)
    assert session_replay.reap_stale_replays() == 1
    assert Replay.objects.get(pk=answering.pk).status == RunStatus.FAILED
    # A reaped replay's task, should it still be alive, starts no further turn.
    assert not Replay.objects.get(pk=lost.pk).start_turn(1)


def test_only_a_reader_of_the_sessions_experiment_may_replay_it(
    client, auth_on, bob, echo_agent, experiment
):
    three_turns(experiment)
    ExperimentGrant.objects.create(experiment=experiment, level=Level.NONE)
    client.force_login(bob)
    url = f"/playground/replay/?session=conv&experiment={experiment.pk}"

    assert client.get(url).status_code == 404
    assert client.post(url, {"agents": [echo_agent.pk]}).status_code == 404
    assert client.get("/playground/replay/?session=conv").status_code == 404
    assert not Conversation.objects.exists()
    ExperimentGrant.objects.filter(experiment=experiment).update(level=Level.READ)
    assert client.post(url, {"agents": [echo_agent.pk]}).status_code == 302
    assert Conversation.objects.get().owner == bob


def test_only_who_sees_the_conversation_stops_its_replay(
    client, auth_on, bob, charlie, echo_agent, experiment
):
    replay = session_replay.start(three_turns(experiment), [echo_agent], owner=bob)
    client.force_login(charlie)

    assert client.post(f"/playground/replays/{replay.pk}/cancel").status_code == 404
    assert Replay.objects.get(pk=replay.pk).status == RunStatus.QUEUED


def test_a_session_without_user_messages_fails_at_once(echo_agent, experiment):
    add_turn(experiment, "empty", 1, question="")
    Span.objects.filter(trace__session_id="empty").update(inputs={})
    Trace.objects.filter(session_id="empty").update(request_preview="")
    session = TraceSession.objects.get(session_id="empty")

    replay = session_replay.start(session, [echo_agent])

    replay.refresh_from_db()
    assert replay.status == RunStatus.FAILED and "no user messages" in replay.error
    assert Agent.objects.count() == 1
