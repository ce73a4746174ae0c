"""Each kind of agent against the real test HTTP server (no database needed)."""

from __future__ import annotations

import threading
import time

import pytest

from playground.agents import logged_model
from playground.agents.base import AgentError, ChatRequest, Stop, Stopped, consume
from playground.agents.builtin import LocalGenerator
from playground.models import Agent
from playground.tracing import TraceRecorder
from tracking.models import RegisteredModel

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi there"}]


def run(agent: Agent, request: ChatRequest | None = None, stop: Stop | None = None):
    from playground.agents import client_for

    request = request or ChatRequest(messages=MESSAGES)
    trace = TraceRecorder()
    parent = trace.root(agent.name, "AGENT")
    chunks: list[str] = []
    answer = consume(client_for(agent, stop).stream(request, parent), chunks.append)
    return answer, chunks, trace


def openai(url: str, **config) -> Agent:
    return Agent(name="gpt", kind="openai", config={"url": url, "model": "m", **config})


def test_openai_streams_sse_chunks_with_usage_and_custom_outputs(agent_server):
    request = ChatRequest(MESSAGES, {"temperature": 0.2}, custom_inputs={"user": {"id": 7}})

    answer, chunks, trace = run(openai(f"{agent_server.url}/openai/v1"), request)

    assert chunks == ["Echo:", " hi", " there"]
    assert answer.content == "Echo: hi there"
    assert answer.total_tokens == 10
    assert answer.custom_outputs == {"received_custom_inputs": {"user": {"id": 7}}}
    sent = agent_server.requests[0]
    assert sent["path"] == "/openai/v1/chat/completions"
    assert sent["body"]["custom_inputs"] == {"user": {"id": 7}}
    assert sent["body"]["stream"] is True and sent["body"]["temperature"] == 0.2
    http_span = trace.spans[1]
    assert http_span.name == "POST /openai/v1/chat/completions"
    assert http_span.attributes["http.status_code"] == 200
    assert http_span.attributes["mlflow.chat.tokenUsage"]["total_tokens"] == 10


def test_openai_reads_json_from_a_server_that_does_not_stream(agent_server):
    answer, chunks, _ = run(openai(f"{agent_server.url}/plain/v1/chat/completions"))

    assert chunks == ["Echo: hi there"]
    assert answer.prompt_tokens == 7


def test_openai_leaves_custom_inputs_out_when_the_gear_is_off(agent_server):
    run(openai(f"{agent_server.url}/openai/v1", stream=False))

    assert "custom_inputs" not in agent_server.requests[0]["body"]
    assert "stream" not in agent_server.requests[0]["body"]


def test_openai_sends_the_key_named_by_an_allowed_environment_variable(
    agent_server, monkeypatch, settings
):
    settings.SPYGLASS_AGENT_ENV_ALLOW = ["AGENT_TEST_KEY"]
    monkeypatch.setenv("AGENT_TEST_KEY", "sk-secret")

    run(openai(f"{agent_server.url}/openai/v1", api_key_env="AGENT_TEST_KEY"))

    assert agent_server.requests[0]["headers"]["Authorization"] == "Bearer sk-secret"


def test_openai_says_when_the_key_variable_is_not_set(agent_server, settings):
    settings.SPYGLASS_AGENT_ENV_ALLOW = ["AGENT_UNSET_KEY"]

    with pytest.raises(AgentError, match="AGENT_UNSET_KEY"):
        run(openai(f"{agent_server.url}/openai/v1", api_key_env="AGENT_UNSET_KEY"))

    assert agent_server.requests == []


def test_an_http_error_says_the_status_and_the_agents_message(agent_server):
    with pytest.raises(AgentError, match="HTTP 500: the model crashed"):
        run(openai(f"{agent_server.url}/fail/v1"))


def test_an_agent_that_does_not_answer_in_time_fails_with_the_timeout(agent_server):
    with pytest.raises(AgentError, match=r"did not answer within 0.3 s"):
        run(openai(f"{agent_server.url}/hang/v1", timeout=0.3))


def test_an_answer_that_is_not_json_is_refused_with_an_excerpt(agent_server):
    with pytest.raises(AgentError, match=r"not valid JSON.*not json"):
        run(openai(f"{agent_server.url}/malformed/v1"))


def test_a_stream_that_stalls_fails_with_the_timeout(agent_server):
    with pytest.raises(AgentError, match="stalled"):
        run(openai(f"{agent_server.url}/stall/v1", timeout=0.3))


def test_an_unreachable_agent_is_named_in_the_error():
    with pytest.raises(AgentError, match=r"Could not reach the agent at http://127\.0\.0\.1:9/"):
        run(openai("http://127.0.0.1:9/v1"))


def test_the_error_is_recorded_on_the_http_span(agent_server):
    trace = TraceRecorder()
    parent = trace.root("gpt", "AGENT")
    from playground.agents import client_for

    with pytest.raises(AgentError):
        consume(client_for(openai(f"{agent_server.url}/fail/v1")).stream(
            ChatRequest(MESSAGES), parent), print)  # fmt: skip

    http_span = trace.spans[1]
    assert http_span.status == "ERROR"
    assert http_span.attributes["http.status_code"] == 500
    assert http_span.events[0]["name"] == "exception"


@pytest.mark.parametrize(
    ("mode", "schema"),
    [("chat-model", "chat-completions"), ("chat-agent", "chat-agent"), ("responses", "responses")],
)
def test_mlflow_serving_detects_the_schema_from_the_answer(agent_server, mode, schema):
    agent = Agent(name=mode, kind="mlflow-serving",
                  config={"url": f"{agent_server.url}/{mode}/invocations"})  # fmt: skip
    request = ChatRequest(MESSAGES, {"temperature": 0.1}, custom_inputs={"k": [1, 2]})

    answer, _, _ = run(agent, request)

    assert answer.schema == schema
    assert answer.content == "Echo: hi there"
    assert answer.custom_outputs == {"received_custom_inputs": {"k": [1, 2]}}
    last = agent_server.requests[-1]["body"]
    assert last["custom_inputs"] == {"k": [1, 2]}


def test_mlflow_serving_sends_responses_agents_input_items(agent_server):
    agent = Agent(name="r", kind="mlflow-serving",
                  config={"url": f"{agent_server.url}/responses/other/invocations"})  # fmt: skip

    run(agent)

    # Tried as chat completions and as a ChatAgent first, both refused with 400:
    assert "messages" in agent_server.requests[0]["body"]
    assert agent_server.requests[-1]["body"]["input"] == MESSAGES


def test_mlflow_serving_refuses_an_answer_in_no_known_shape(agent_server):
    agent = Agent(name="m", kind="mlflow-serving",
                  config={"url": f"{agent_server.url}/malformed/invocations"})  # fmt: skip

    with pytest.raises(AgentError, match="not valid JSON"):
        run(agent)


def test_logged_model_agents_are_off_unless_enabled():
    agent = Agent(name="lm", kind="logged-model", model_id="m-" + "0" * 32)

    with pytest.raises(AgentError, match="SPYGLASS_PLAYGROUND_LOGGED_MODELS"):
        run(agent)


@pytest.mark.django_db
def test_a_logged_model_alias_follows_the_registry_when_it_moves(settings):
    settings.SPYGLASS_PLAYGROUND_LOGGED_MODELS = True
    registered = RegisteredModel.objects.create(name="support-agent", aliases={"champion": 1})
    agent = Agent(name="lm", kind="logged-model",
                  config={"model_uri": "models:/support-agent@champion"})  # fmt: skip

    assert logged_model.Client(agent).uri == "models:/support-agent/1"
    registered.aliases = {"champion": 2}
    registered.save()
    assert logged_model.Client(agent).uri == "models:/support-agent/2"
    agent.config = {"model_uri": "models:/support-agent@nobody"}
    assert logged_model.Client(agent).uri == "models:/support-agent@nobody"  # mlflow says why


def test_the_echo_agent_streams_word_by_word():
    agent = Agent(name="echo", kind="builtin", config={"agent": "echo", "word_delay_ms": 0})

    answer, chunks, _ = run(agent, ChatRequest(MESSAGES, custom_inputs={"a": 1}))

    assert chunks == ["You", " said:", " hi", " there"]
    assert answer.custom_outputs == {"custom_inputs": {"a": 1}}


def test_the_oracle_judge_agent_nests_agent_chain_and_llm_spans():
    agent = Agent(name="oracle", kind="builtin",
                  config={"agent": "oracle-judge", "word_delay_ms": 0})  # fmt: skip
    question = ChatRequest([{"role": "user", "content": "How do I find slow agent calls?"}])

    answer, chunks, trace = run(agent, question)

    assert "".join(chunks) == answer.content
    assert answer.custom_outputs["oracle_draft"]
    by_id = {s.span_id: s for s in trace.spans}
    shape = [(s.name, s.span_type, by_id[s.parent_id].span_type if s.parent_id else "")
             for s in trace.spans]  # fmt: skip
    assert shape == [
        ("oracle", "AGENT", ""),
        ("oracle", "CHAIN", "AGENT"),
        ("generate", "LLM", "CHAIN"),
        ("judge", "CHAIN", "AGENT"),
        ("generate", "LLM", "CHAIN"),
    ]
    assert all(s.end_ns and s.status == "OK" for s in trace.spans[1:])


def test_the_local_generator_is_deterministic_and_follows_temperature():
    generator = LocalGenerator()

    first = generator.generate("be an oracle", "why are traces slow", 0.5, 100)

    assert first == generator.generate("be an oracle", "why are traces slow", 0.5, 100)
    assert first != generator.generate("be an oracle", "why are traces slow", 0.9, 100)
    assert len(generator.generate("x", "why are traces slow", 0.5, 3).split(" ")) == 3


def test_mlflow_serving_streams_sse_when_configured(agent_server):
    config = {"url": f"{agent_server.url}/openai/invocations", "stream": True}
    agent = Agent(name="dbx", kind="mlflow-serving", config=config)

    answer, chunks, _ = run(agent, ChatRequest(MESSAGES, custom_inputs={"x": 1}))

    assert chunks == ["Echo:", " hi", " there"]
    assert answer.custom_outputs == {"received_custom_inputs": {"x": 1}}
    assert answer.total_tokens == 10
    assert agent_server.requests[0]["body"]["stream"] is True


@pytest.mark.parametrize(
    ("kind", "path", "config"),
    [("openai", "/slow-answer/v1", {"stream": False}), ("openai", "/slow-answer/v1", {}),
     ("mlflow-serving", "/slow-answer/invocations", {})],
)  # fmt: skip
def test_a_stop_aborts_an_http_call_waiting_for_its_answer(agent_server, kind, path, config):
    agent = Agent(name="slow", kind=kind, config={"url": agent_server.url + path, **config})
    stop = Stop()
    threading.Timer(0.3, stop.request).start()
    started = time.monotonic()

    with pytest.raises(Stopped):
        run(agent, stop=stop)

    assert time.monotonic() - started < 1.5  # not the server's 15 s
    deadline = time.monotonic() + 1
    while not agent_server.hangups and time.monotonic() < deadline:
        time.sleep(0.02)
    assert agent_server.hangups == [path + ("/chat/completions" if kind == "openai" else "")]


def test_a_stopped_http_call_records_a_cancelled_span_not_an_error(agent_server):
    from playground.agents import client_for

    agent = openai(f"{agent_server.url}/slow-answer/v1", stream=False)
    stop = Stop()
    trace = TraceRecorder()
    parent = trace.root("slow", "AGENT")
    threading.Timer(0.2, stop.request).start()

    with pytest.raises(Stopped):
        consume(client_for(agent, stop).stream(ChatRequest(MESSAGES), parent), lambda _: None)

    (call,) = [s for s in trace.spans if s.name.startswith("POST")]
    assert call.cancelled and call.status == "UNSET" and call.end_ns is not None
    assert call.attributes["spyglass.cancelled"] is True
    assert call.status_message == "Cancelled."


def test_a_stop_requested_before_the_call_never_reaches_the_agent(agent_server):
    stop = Stop()
    stop.request()

    with pytest.raises(Stopped):
        run(openai(f"{agent_server.url}/plain/v1"), stop=stop)

    assert agent_server.requests == []


def test_a_stop_ends_the_demo_agents_wait_at_once():
    agent = Agent(name="slow demo", kind="builtin",
                  config={"agent": "echo", "word_delay_ms": 0, "latency_ms": 10_000})  # fmt: skip
    stop = Stop()
    threading.Timer(0.2, stop.request).start()
    started = time.monotonic()

    with pytest.raises(Stopped):
        run(agent, stop=stop)

    assert time.monotonic() - started < 2


def test_a_stop_hook_runs_once_and_not_after_its_block():
    stop = Stop()
    calls: list[str] = []
    with stop.hook(lambda: calls.append("inside")):
        pass
    with stop.hook(lambda: calls.append("interrupt")):
        stop.request()
        stop.request()
    with stop.hook(lambda: calls.append("late")):  # requested already: runs at once
        pass

    assert calls == ["interrupt", "late"]
    with pytest.raises(Stopped):
        stop.check()


class _InProcessModel:
    """A python model as a logged-model agent holds it once loaded (`logged_model._models`)."""

    def __init__(self, predict_s: float = 0.0) -> None:
        self.predict_s = predict_s

    def predict_stream(self, body):
        for word in ("one", " two", " three"):
            yield {"choices": [{"index": 0, "delta": {"content": word}}]}

    def predict(self, body):
        time.sleep(self.predict_s)
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": "whole"}}]}


def logged(monkeypatch, settings, model: object, **config) -> Agent:
    settings.SPYGLASS_PLAYGROUND_LOGGED_MODELS = True
    monkeypatch.setitem(logged_model._models, "models:/in-process/1", model)
    return Agent(name="in process", kind="logged-model",
                 config={"model_uri": "models:/in-process/1", **config})  # fmt: skip


def test_a_stop_ends_a_streaming_in_process_model_at_its_next_chunk(monkeypatch, settings):
    from playground.agents import client_for

    stop = Stop()
    chunks: list[str] = []
    trace = TraceRecorder()
    stream = client_for(logged(monkeypatch, settings, _InProcessModel()), stop).stream(
        ChatRequest(MESSAGES), trace.root("in process", "AGENT")
    )

    with pytest.raises(Stopped):
        consume(stream, lambda chunk: (chunks.append(chunk), stop.request()))

    assert chunks == ["one"]
    (predict,) = [s for s in trace.spans if s.name.startswith("predict")]
    assert predict.cancelled and predict.status == "UNSET"


def test_a_stop_during_predict_drops_its_answer_when_predict_returns(monkeypatch, settings):
    agent = logged(monkeypatch, settings, _InProcessModel(predict_s=0.5), stream=False)
    stop = Stop()
    threading.Timer(0.1, stop.request).start()
    started = time.monotonic()

    with pytest.raises(Stopped):
        run(agent, stop=stop)

    # In-process code cannot be interrupted: it stops at the boundary after predict.
    assert 0.5 <= time.monotonic() - started < 2


def test_the_oracle_judge_answers_in_sentences_about_the_question():
    agent = Agent(name="oracle", kind="builtin",
                  config={"agent": "oracle-judge", "word_delay_ms": 0})  # fmt: skip
    question = "What is a good recipe for baking scones that doesn't require a lot of skill?"

    answer, _, _ = run(agent, ChatRequest([{"role": "user", "content": question}]))

    verdict, improved = answer.content.split("\n\n")
    assert verdict.startswith("The oracle's answer ") and verdict.endswith(".")
    assert improved.startswith("**Improved answer:** ")
    body = improved.removeprefix("**Improved answer:** ")
    sentences = [s for s in body.replace(": ", ". ").split(". ") if s]
    assert len(sentences) >= 3
    assert all(s[0].isupper() and "**" not in s and "\n" not in s for s in sentences)
    assert body.endswith(".")
    assert "the recipe" in body and answer.custom_outputs["oracle_draft"] in body
