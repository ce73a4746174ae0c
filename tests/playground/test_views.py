"""The playground pages: new chats, sending, polling fragments, cancel, compare, replay."""

from __future__ import annotations

import re
import time

import pytest

from playground.models import Agent, Conversation, Message, Run, RunStatus
from tests.playground.conftest import chat, wait_until_finished
from tracking.ingest import SpanData, TraceInfo, store
from tracking.models import Experiment

pytestmark = pytest.mark.django_db(transaction=True)

HX = {"HTTP_HX_REQUEST": "true"}


def test_the_first_visit_creates_the_demo_agents(client):
    response = client.get("/playground/")

    assert response.status_code == 200
    names = set(Agent.objects.values_list("name", flat=True))
    assert names == {"Echo (built-in)", "Oracle/judge (built-in)"}
    assert "Oracle/judge (built-in)" in response.content.decode()


def test_custom_inputs_that_are_not_json_are_refused_inline_and_nothing_is_queued(
    client, echo_agent
):
    form = {"agents": [echo_agent.pk], "message": "hi", "custom_inputs_enabled": "on",
            "custom_inputs": '{"a": 1,}'}  # fmt: skip
    response = client.post("/playground/new", form, **HX)

    assert response.status_code == 422
    page = response.content.decode()
    assert "custom_inputs is not valid JSON" in page and "line 1, column 9" in page
    assert 'id="new-chat"' in page and "<html" not in page  # the form's fragment only
    assert (Message.objects.count(), Run.objects.count()) == (0, 0)


def test_custom_inputs_must_be_an_object(client, echo_agent):
    response = client.post("/playground/new", {"agents": [echo_agent.pk], "message": "hi",
                           "custom_inputs_enabled": "on", "custom_inputs": "[1, 2]"})  # fmt: skip

    assert response.status_code == 422
    assert "must be a JSON object ({...}), not an array" in response.content.decode()
    assert Run.objects.count() == 0


def test_custom_inputs_are_ignored_while_the_gear_is_off(client, worker, echo_agent):
    client.post("/playground/new", {"agents": [echo_agent.pk], "message": "hi",
                                    "custom_inputs": "not json"})  # fmt: skip

    assert Run.objects.get().request["custom_inputs"] is None


def test_a_new_chat_passes_custom_inputs_through_verbatim(client, worker, http_agent,
                                                          agent_server):  # fmt: skip
    agent = http_agent("openai")
    text = '{"user": {"id": 7, "tier": "gold"}, "flags": [true, null], "ratio": 0.5}'

    response = client.post("/playground/new", {"agents": [agent.pk], "message": "hi",
                           "custom_inputs_enabled": "on", "custom_inputs": text}, **HX)  # fmt: skip

    conversation = Conversation.objects.get()
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"/playground/c/{conversation.pk}/"
    run = wait_until_finished(Run.objects.get().pk)
    sent = agent_server.requests[0]["body"]["custom_inputs"]
    assert sent == {"user": {"id": 7, "tier": "gold"}, "flags": [True, None], "ratio": 0.5}
    page = client.get(f"/playground/c/{conversation.pk}/").content.decode()
    assert "custom_outputs" in page and "received_custom_inputs" in page
    assert f'href="/traces/{run.trace_id}/"' in page
    assert "tier" in page  # the next message starts with the same custom_inputs


def test_an_answer_streams_into_its_fragment(client, worker, http_agent):
    message_page = client.post("/playground/new", {"agents": [http_agent("slow-stream").pk],
                                                   "message": "go"})  # fmt: skip
    assert message_page.status_code == 302
    run = Run.objects.get()
    seen: list[str] = []
    seq = -1
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.05)  # a poller's pace
        response = client.get(f"/playground/runs/{run.pk}/?seq={seq}", **HX)
        if response.status_code == 204:
            continue
        fragment = response.content.decode()
        seen.append(fragment)
        if "data-poll" not in fragment:
            break
        seq = int(re.search(r"\?seq=(\d+)", fragment).group(1))

    partial = [f for f in seen if "word0" in f and "word39" not in f]
    assert partial, "no fragment showed a partial answer"
    assert 'data-status="running"' in partial[0]
    assert 'data-status="done"' in seen[-1] and "word39" in seen[-1]
    assert "data-poll" not in seen[-1]  # a finished answer stops polling


def test_the_fragment_answers_204_while_nothing_is_new(client, echo_agent):
    conversation = chat(echo_agent)
    message = Message.objects.create(conversation=conversation, content="hi")
    run = Run.objects.create(conversation=conversation, message=message, agent=echo_agent)

    assert client.get(f"/playground/runs/{run.pk}/?seq={run.seq}").status_code == 204
    Run.objects.filter(pk=run.pk).update(seq=run.seq + 1, status=RunStatus.RUNNING)
    response = client.get(f"/playground/runs/{run.pk}/?seq={run.seq}")
    assert response.status_code == 200
    assert f"?seq={run.seq + 1}" in response.content.decode()


def test_answers_are_rendered_as_sanitised_markdown(client, echo_agent):
    conversation = chat(echo_agent)
    message = Message.objects.create(conversation=conversation, content="hi")
    run = Run.objects.create(
        conversation=conversation, message=message, agent=echo_agent, status=RunStatus.DONE,
        content="**bold** <script>alert(1)</script> [x](javascript:alert(1))",
        latency_ms=123, total_tokens=45, prompt_tokens=40, completion_tokens=5,
    )  # fmt: skip

    fragment = client.get(f"/playground/runs/{run.pk}/").content.decode()

    assert "<strong>bold</strong>" in fragment
    assert "<script>" not in fragment and "&lt;script&gt;" in fragment
    assert 'href="javascript' not in fragment
    assert "123 ms" in fragment and "45 tokens" in fragment


def test_a_failed_answer_says_why(client, worker, http_agent):
    client.post("/playground/new", {"agents": [http_agent("fail").pk], "message": "hi"})

    run = wait_until_finished(Run.objects.get().pk)

    fragment = client.get(f"/playground/runs/{run.pk}/").content.decode()
    assert 'role="alert"' in fragment and "HTTP 500: the model crashed" in fragment
    assert f"/traces/{run.trace_id}/" in fragment


def test_cancel_stops_a_running_answer(client, worker, http_agent):
    client.post("/playground/new", {"agents": [http_agent("slow-stream").pk], "message": "go"})
    run = Run.objects.get()

    response = client.post(f"/playground/runs/{run.pk}/cancel", **HX)

    assert response.status_code == 200
    assert 'data-status="cancelled"' in response.content.decode()
    assert wait_until_finished(run.pk).status == RunStatus.CANCELLED


def test_sending_in_a_conversation_keeps_history_and_parameters(client, worker, echo_agent):
    conversation = chat(echo_agent, system_prompt="Be brief.")
    client.post(f"/playground/c/{conversation.pk}/send", {"message": "first"}, **HX)
    wait_until_finished(Run.objects.get().pk)

    form = {"message": "second", "temperature": "0.3", "stop": "END"}
    response = client.post(f"/playground/c/{conversation.pk}/send", form, **HX)

    assert response.status_code == 200
    assert 'id="chat"' in response.content.decode()
    second = Run.objects.latest("pk")
    assert second.request["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "You said: first"},
        {"role": "user", "content": "second"},
    ]
    assert second.request["params"] == {"temperature": 0.3, "stop": ["END"]}
    assert 'value="0.3"' in response.content.decode()  # carried over to the next message


def test_an_invalid_reply_is_refused_and_nothing_is_saved(client, echo_agent):
    conversation = chat(echo_agent)

    form = {"message": "x", "custom_inputs_enabled": "on", "custom_inputs": "{oops"}
    response = client.post(f"/playground/c/{conversation.pk}/send", form, **HX)

    assert response.status_code == 422
    assert "custom_inputs is not valid JSON" in response.content.decode()
    assert Message.objects.count() == 0


def test_an_unreachable_broker_shows_the_failed_run_and_keeps_the_message(
    client, echo_agent, monkeypatch
):
    from playground import runs
    from tests.conftest import make_celery_app

    app = make_celery_app("redis://127.0.0.1:1/0", "")
    app.conf.task_publish_retry_policy = {"max_retries": 0}
    monkeypatch.setattr(runs, "default_app", app)
    try:
        response = client.post("/playground/new", {"agents": [echo_agent.pk], "message": "kept"},
                               follow=True)  # fmt: skip
    finally:
        app.close()

    page = response.content.decode()
    assert "kept" in page and "broker is unreachable" in page
    assert Message.objects.get().content == "kept"


def test_compare_mode_shows_three_agents_side_by_side(client, worker, echo_agent, http_agent):
    agents = [echo_agent, http_agent("openai"), http_agent("chat-agent", "mlflow-serving")]

    client.post("/playground/new", {"agents": [a.pk for a in agents], "message": "same"})

    runs = [wait_until_finished(r.pk) for r in Run.objects.all()]
    assert {r.status for r in runs} == {RunStatus.DONE}
    page = client.get(f"/playground/c/{Conversation.objects.get().pk}/").content.decode()
    assert page.count('class="card pg-pane"') == 3
    assert "Comparing 3 agents" in page
    for run in runs:
        assert f"/traces/{run.trace_id}/" in page
        assert f"/playground/runs/{run.pk}/trace" in page


def test_compare_mode_takes_at_most_four_agents(client):
    agents = [Agent.objects.create(name=f"a{i}", kind="builtin") for i in range(5)]

    response = client.post("/playground/new", {"agents": [a.pk for a in agents], "message": "x"})

    assert response.status_code == 422
    assert "at most 4 agents" in response.content.decode()


def test_an_answers_inline_waterfall_shows_its_spans(client, worker, echo_agent):
    client.post("/playground/new", {"agents": [echo_agent.pk], "message": "hi"})
    run = wait_until_finished(Run.objects.get().pk)

    fragment = client.get(f"/playground/runs/{run.pk}/trace", **HX).content.decode()

    assert fragment.count('<li class="pg-span ') == 4  # playground, the agent, its chain and LLM
    assert "type-agent" in fragment and "type-llm" in fragment


def make_chat_trace(model_id: str = "") -> str:
    experiment = Experiment.objects.create(name="agents")
    trace_id = "tr-" + "ab" * 16
    inputs = {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "What is MLflow?"},
            {"role": "assistant", "content": "A platform."},
            {"role": "user", "content": "And tracing?"},
        ],
        "custom_inputs": {"session_id": "s-9"},
        "temperature": 0.4,
    }
    store(
        [TraceInfo(trace_id=trace_id, experiment_id=experiment.pk,
                   metadata={"mlflow.modelId": model_id} if model_id else {})],
        [SpanData(trace_id=trace_id, span_id="1" * 16, parent_span_id="", name="chat",
                  start_ns=1, end_ns=2, inputs=inputs)],
    )  # fmt: skip
    return trace_id


def test_replay_prefills_the_chat_from_a_traces_root_span(client, worker, echo_agent):
    model_id = "m-" + "c" * 32
    version_agent = Agent.objects.create(name="v2", kind="builtin", model_id=model_id)
    trace_id = make_chat_trace(model_id)

    response = client.get(f"/playground/?replay={trace_id}")

    page = response.content.decode()
    assert f"Replaying trace {trace_id}" in page
    assert ">And tracing?</textarea>" in page
    assert ">You are terse.</textarea>" in page
    assert "session_id" in page and "data-gear checked" in page
    assert 'value="0.4"' in page
    assert re.search(rf'value="{version_agent.pk}"[^>]*checked', page)

    form = {"agents": [echo_agent.pk], "message": "And tracing?",
            "history": re.search(r'name="history" value="([^"]*)"', page).group(1)
            .replace("&quot;", '"'),
            "custom_inputs_enabled": "on", "custom_inputs": '{"session_id": "s-9"}'}  # fmt: skip
    client.post("/playground/new", form)
    run = wait_until_finished(Run.objects.get().pk)
    assert [m["content"] for m in run.request["messages"]] == [
        "What is MLflow?", "A platform.", "And tracing?",
    ]  # fmt: skip
    assert run.request["custom_inputs"] == {"session_id": "s-9"}


def test_replay_of_a_trace_without_chat_messages_says_so(client):
    experiment = Experiment.objects.create(name="agents")
    trace_id = "tr-" + "cd" * 16
    store([TraceInfo(trace_id=trace_id, experiment_id=experiment.pk)],
          [SpanData(trace_id=trace_id, span_id="2" * 16, parent_span_id="", name="x",
                    start_ns=1, end_ns=2, inputs={"query": "q"})])  # fmt: skip

    page = client.get(f"/playground/?replay={trace_id}").content.decode()

    assert "holds no chat messages" in page


def test_a_model_version_opens_the_playground_on_its_agents(client):
    model_id = "m-" + "d" * 32
    agent = Agent.objects.create(name="support v3", kind="builtin", model_id=model_id)

    page = client.get(f"/playground/?model={model_id}").content.decode()

    assert re.search(rf'value="{agent.pk}"[^>]*checked', page)


def test_a_model_version_without_an_agent_says_how_to_add_one(client):
    page = client.get("/playground/?model=m-" + "e" * 32).content.decode()

    assert "No agent reaches model" in page


def test_agents_are_added_without_keys_in_their_config(client, settings):
    settings.SPYGLASS_AGENT_ENV_ALLOW = ["VLLM_KEY"]
    config = '{"url": "http://gpu:8000/v1", "api_key": "sk-1"}'
    response = client.post(
        "/playground/agents/", {"name": "vllm", "kind": "openai", "config": config}
    )

    assert response.status_code == 422
    assert "use the API key field" in response.content.decode()
    assert not Agent.objects.filter(name="vllm").exists()

    config = '{"url": "http://gpu:8000/v1", "api_key_env": "VLLM_KEY"}'
    response = client.post(
        "/playground/agents/", {"name": "vllm", "kind": "openai", "config": config}
    )

    assert response.status_code == 302
    assert Agent.objects.get(name="vllm").config["api_key_env"] == "VLLM_KEY"


def test_an_http_agent_needs_a_url(client):
    response = client.post("/playground/agents/", {"name": "x", "kind": "mlflow-serving",
                                                   "config": "{}"})  # fmt: skip

    assert response.status_code == 422
    assert "needs a url" in response.content.decode()


def test_the_conversation_page_costs_the_same_queries_however_long_the_chat(client, echo_agent):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    other = Agent.objects.create(name="other", kind="builtin")
    conversation = chat(echo_agent, other)

    def add_turns(count: int) -> None:
        for i in range(count):
            message = Message.objects.create(conversation=conversation, content=f"m{i}")
            for agent in (echo_agent, other):
                Run.objects.create(conversation=conversation, message=message, agent=agent,
                                   status=RunStatus.DONE, content="**a**", trace_id="")  # fmt: skip

    add_turns(1)
    with CaptureQueriesContext(connection) as short:
        client.get(f"/playground/c/{conversation.pk}/")
    add_turns(10)
    with CaptureQueriesContext(connection) as long:
        response = client.get(f"/playground/c/{conversation.pk}/")

    assert response.content.decode().count("<strong>a</strong>") == 22
    assert len(long) == len(short)


def test_the_agent_list_shows_where_each_agent_is_reached(client):
    Agent.objects.create(name="served", kind="mlflow-serving",
                         config={"url": "http://user:pw@10.0.0.5:5001/invocations"})  # fmt: skip
    Agent.objects.create(name="logged", kind="logged-model", model_id="m-" + "a" * 32)
    Agent.objects.create(name="demo", kind="builtin", config={"agent": "oracle-judge"})

    page = client.get("/playground/agents/").content.decode()

    assert "http://10.0.0.5:5001/invocations" in page
    assert "user:pw" not in page and ":pw@" not in page
    assert f"models:/m-{'a' * 32}" in page
    assert "built-in: oracle-judge" in page


def test_an_admin_deletes_an_agent_with_its_answers(client, echo_agent):
    conversation = Conversation.objects.create(title="kept")
    conversation.agents.add(echo_agent)
    message = Message.objects.create(conversation=conversation, content="hi")
    Run.objects.create(conversation=conversation, message=message, agent=echo_agent)
    assert "Delete echo" in client.get(f"/playground/agents/{echo_agent.pk}/").content.decode()

    response = client.post(f"/playground/agents/{echo_agent.pk}/delete")

    assert response.status_code == 302 and response["Location"] == "/playground/agents/"
    assert not Agent.objects.exists() and not Run.objects.exists()
    assert Conversation.objects.get().messages.get().content == "hi"
    assert client.post(f"/playground/agents/{echo_agent.pk}/delete").status_code == 404
    assert client.get(f"/playground/agents/{echo_agent.pk}/delete").status_code == 405


def test_only_admins_delete_agents(client, auth_on, bob, echo_agent):
    client.force_login(bob)

    assert client.post(f"/playground/agents/{echo_agent.pk}/delete").status_code == 403

    assert Agent.objects.filter(pk=echo_agent.pk).exists()


def test_a_logged_model_agent_is_refused_while_its_kind_is_off(client, db, settings):
    settings.SPYGLASS_PLAYGROUND_LOGGED_MODELS = False
    form = {"name": "lm", "kind": "logged-model", "config": "{}", "model_id": "m-" + "b" * 32}

    response = client.post("/playground/agents/", form)

    assert response.status_code == 422
    assert "Set SPYGLASS_PLAYGROUND_LOGGED_MODELS=1" in response.content.decode()
    assert not Agent.objects.exists()

    settings.SPYGLASS_PLAYGROUND_LOGGED_MODELS = True
    assert client.post("/playground/agents/", form).status_code == 302
    assert Agent.objects.get().kind == "logged-model"
