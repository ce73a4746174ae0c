"""The answer task's logic, called directly: claim, stream, trace, finish, fail, reap."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from playground import runs
from playground.models import Message, Run, RunStatus
from playground.tasks import answer_run
from tests.playground.conftest import chat
from tracking.models import LoggedModel, Span, Trace, TraceSession

pytestmark = pytest.mark.django_db


def queued_run(agent, content="hi there", custom_inputs=None, params=None, system_prompt=""):
    conversation = chat(agent, system_prompt=system_prompt)
    message = Message.objects.create(conversation=conversation, content=content,
                                     custom_inputs=custom_inputs, params=params or {})  # fmt: skip
    return runs._queued_run(conversation, message, agent)


def test_a_run_streams_its_answer_and_records_a_linked_trace(http_agent):
    agent = http_agent("openai")
    agent.model_id = "m-" + "a" * 32
    agent.save()
    run = queued_run(agent, custom_inputs={"session": "s1"}, params={"temperature": 0.3},
                     system_prompt="Be brief.")  # fmt: skip

    assert answer_run(run.pk) == "done"

    run.refresh_from_db()
    assert run.status == RunStatus.DONE
    assert run.content == "Echo: hi there"
    assert run.custom_outputs == {"received_custom_inputs": {"session": "s1"}}
    assert (run.prompt_tokens, run.completion_tokens, run.total_tokens) == (7, 3, 10)
    assert run.latency_ms is not None and run.finished_at and run.started_at
    trace = Trace.objects.get(trace_id=run.trace_id)
    assert trace.model_id == agent.model_id
    assert trace.state == "OK"
    assert trace.total_tokens == 10
    assert trace.experiment.name == "Playground"
    spans = {s.name: s for s in Span.objects.filter(trace=trace)}
    root, call, http = (
        spans["playground"],
        spans[agent.name],
        spans["POST /openai/v1/chat/completions"],
    )
    assert call.parent_span_id == root.span_id and http.parent_span_id == call.span_id
    assert root.inputs["messages"][0] == {"role": "system", "content": "Be brief."}
    assert root.inputs["custom_inputs"] == {"session": "s1"}
    assert root.inputs["temperature"] == 0.3
    assert root.outputs["choices"][0]["message"]["content"] == "Echo: hi there"
    assert http.attributes["mlflow.chat.tokenUsage"]["total_tokens"] == 10


def test_a_trace_is_named_for_its_agent_and_linked_to_its_version(http_agent, experiment):
    model = LoggedModel.objects.create(experiment=experiment, name="support_agent")
    agent = http_agent("openai")
    agent.model_id = model.model_id
    agent.save()
    plain = http_agent("plain")
    run, other = queued_run(agent), queued_run(plain)

    answer_run(run.pk), answer_run(other.pk)

    trace = Trace.objects.get(trace_id=Run.objects.get(pk=run.pk).trace_id)
    assert trace.name == f"playground: {agent.name} (support_agent v1)"
    assert trace.model_id == model.model_id
    trace = Trace.objects.get(trace_id=Run.objects.get(pk=other.pk).trace_id)
    assert (trace.name, trace.model_id) == (f"playground: {plain.name}", "")
    assert trace.tags["spyglass.agent"] == plain.name


def test_a_redelivered_message_does_nothing(http_agent, agent_server):
    run = queued_run(http_agent("openai"))
    answer_run(run.pk)

    assert answer_run(run.pk) == "not-queued"

    assert len(agent_server.requests) == 1
    assert Trace.objects.count() == 1


def test_a_run_claimed_by_another_worker_is_left_alone(http_agent, agent_server):
    run = queued_run(http_agent("openai"))
    assert Run.objects.claim(run.pk)

    assert answer_run(run.pk) == "not-queued"
    assert agent_server.requests == []


@pytest.mark.parametrize(
    ("mode", "config", "error"),
    [
        ("fail", {}, "HTTP 500: the model crashed"),
        ("hang", {"timeout": 0.2}, "did not answer within 0.2 s"),
        ("malformed", {}, "not valid JSON"),
        ("stall", {"timeout": 0.2}, "stalled"),
    ],
)
def test_a_failing_agent_ends_the_run_failed_with_the_reason(http_agent, mode, config, error):
    run = queued_run(http_agent(mode, **config))

    assert answer_run(run.pk) == "failed"

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert error in run.error
    trace = Trace.objects.get(trace_id=run.trace_id)
    assert trace.state == "ERROR"
    assert error in Span.objects.get(trace=trace, parent_span_id="").status_message


def test_a_stalled_stream_keeps_what_arrived_before_it_stalled(http_agent):
    run = queued_run(http_agent("stall", timeout=0.2))

    answer_run(run.pk)

    assert Run.objects.get(pk=run.pk).content == "Partial"


def test_an_unreachable_agent_fails_the_run(echo_agent):
    echo_agent.kind, echo_agent.config = "openai", {"url": "http://127.0.0.1:9/v1"}
    echo_agent.save()
    run = queued_run(echo_agent)

    answer_run(run.pk)

    assert "Could not reach the agent" in Run.objects.get(pk=run.pk).error


def test_streamed_chunks_are_written_at_most_once_per_interval(http_agent, settings):
    settings.SPYGLASS_PLAYGROUND_WRITE_INTERVAL_S = 0.2
    run = queued_run(http_agent("slow-stream"))  # 40 words over about 2 s

    answer_run(run.pk)

    run.refresh_from_db()
    assert run.content.split() == [f"word{i}" for i in range(40)]
    # claim + first chunk + one write per 0.2 s + finish, far fewer than 40 chunk writes
    assert run.seq < 20


def test_the_builtin_oracle_judge_traces_agent_chain_and_llm(db):
    from playground.models import Agent

    agent = Agent.objects.create(name="oracle-judge", kind="builtin",
                                 config={"agent": "oracle-judge", "word_delay_ms": 0})  # fmt: skip
    run = queued_run(agent, content="How do I find slow spans?")

    answer_run(run.pk)

    spans = list(Span.objects.filter(trace__trace_id=Run.objects.get(pk=run.pk).trace_id))
    types = sorted(s.span_type for s in spans)
    assert types == ["AGENT", "CHAIN", "CHAIN", "CHAIN", "LLM", "LLM"]


def test_the_history_holds_each_agents_own_answers(echo_agent, http_agent):
    other = http_agent("openai")
    conversation = chat(echo_agent, other)
    message = Message.objects.create(conversation=conversation, content="one")
    Run.objects.create(conversation=conversation, message=message, agent=echo_agent,
                       status=RunStatus.DONE, content="echo answer")  # fmt: skip
    Run.objects.create(conversation=conversation, message=message, agent=other,
                       status=RunStatus.FAILED, content="")  # fmt: skip

    assert runs.history_for(conversation, echo_agent) == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "echo answer"},
    ]
    assert runs.history_for(conversation, other) == [{"role": "user", "content": "one"}]


def test_the_reaper_fails_runs_whose_worker_stopped_and_runs_never_picked_up(echo_agent):
    long_ago = timezone.now() - timedelta(hours=1)
    lost = queued_run(echo_agent)
    Run.objects.filter(pk=lost.pk).update(status=RunStatus.RUNNING, heartbeat_at=long_ago)
    never = queued_run(echo_agent)
    Run.objects.filter(pk=never.pk).update(created_at=long_ago)
    alive = queued_run(echo_agent)
    Run.objects.claim(alive.pk)
    fresh = queued_run(echo_agent)

    assert runs.reap_stale_runs() == 2

    assert "worker stopped while answering" in Run.objects.get(pk=lost.pk).error
    assert "No worker picked this answer up" in Run.objects.get(pk=never.pk).error
    statuses = {r.pk: r.status for r in Run.objects.all()}
    assert statuses[alive.pk] == RunStatus.RUNNING and statuses[fresh.pk] == RunStatus.QUEUED


def test_a_cancelled_queued_run_is_never_started(http_agent, agent_server):
    run = queued_run(http_agent("openai"))
    assert run.cancel()

    assert answer_run(run.pk) == "not-queued"
    assert agent_server.requests == []
    assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED


def test_an_internal_error_after_the_claim_fails_the_run_at_once(echo_agent, monkeypatch):
    from playground import tasks

    def broken_finish(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tasks, "_finish", broken_finish)
    run = queued_run(echo_agent)

    with pytest.raises(RuntimeError):
        answer_run(run.pk)

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "Internal error while answering: RuntimeError: disk full" in run.error


def test_an_agents_default_parameters_apply_unless_the_message_sets_them(http_agent,
                                                                         agent_server):  # fmt: skip
    agent = http_agent("openai")
    agent.default_params = {"temperature": 0.9, "max_tokens": 64}
    agent.save()
    run = queued_run(agent, params={"temperature": 0.1})

    answer_run(run.pk)

    body = agent_server.requests[0]["body"]
    assert (body["temperature"], body["max_tokens"]) == (0.1, 64)


def test_a_conversations_runs_are_one_session(http_agent, alice):
    agent = http_agent("openai")
    first = queued_run(agent)
    first.conversation.owner = alice
    first.conversation.save(update_fields=["owner"])
    message = Message.objects.create(conversation=first.conversation, content="and then?")
    second = runs._queued_run(first.conversation, message, agent)
    elsewhere = queued_run(agent)

    for run in (first, second, elsewhere):
        answer_run(run.pk)

    traces = Trace.objects.filter(trace_id__in=[r.trace_id for r in Run.objects.all()])
    by_session = {t.session_id for t in traces if t.user_id == "alice"}
    assert by_session == {f"playground-{first.conversation_id}"}
    session = TraceSession.objects.get(session_id=f"playground-{first.conversation_id}")
    assert (session.turns, session.user_id) == (2, "alice")
    other = Trace.objects.get(trace_id=Run.objects.get(pk=elsewhere.pk).trace_id)
    assert other.session_id == f"playground-{elsewhere.conversation_id}"
    assert other.metadata["mlflow.trace.session"] == other.session_id
