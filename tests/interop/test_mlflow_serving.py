"""A ChatModel served by the real `mlflow models serve`, chatted with through the playground's
mlflow-serving kind: the request shape, custom_inputs and custom_outputs, usage, and the trace.

The model is the MLflow ChatModel tutorial's shape (models-from-code), saved by the real
mlflow client in a subprocess and served with `--env-manager local` (no new environment).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from playground.models import Agent, Conversation, Message, RunStatus
from playground.runs import _queued_run
from playground.tasks import answer_run
from tracking.models import Span, Trace

pytest.importorskip("mlflow", reason="the real mlflow client is not installed")

pytestmark = pytest.mark.filterwarnings(
    # mlflow's own local store, set up when a model runs in-process, warns about itself.
    "ignore:The ``noload`` loader strategy is deprecated"
)

SERVE_TIMEOUT_S = 120

AGENT_CODE = textwrap.dedent(
    """
    import mlflow
    from mlflow.pyfunc import ChatModel
    from mlflow.types.llm import (
        ChatChoice,
        ChatChoiceDelta,
        ChatChunkChoice,
        ChatCompletionChunk,
        ChatCompletionResponse,
        ChatMessage,
    )


    class Oracle(ChatModel):
        def predict(self, context, messages, params):
            question = messages[-1].content
            answer = f"The oracle heard: {question} (temperature {params.temperature})"
            message = ChatMessage(role="assistant", content=answer)
            return ChatCompletionResponse(
                choices=[ChatChoice(index=0, message=message)],
                usage={"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
                custom_outputs={"seen": params.custom_inputs, "turns": len(messages)},
            )

        def predict_stream(self, context, messages, params):
            words = f"The oracle streams: {messages[-1].content}".split(" ")
            for i, word in enumerate(words):
                delta = ChatChoiceDelta(role="assistant", content=word if i == 0 else f" {word}")
                yield ChatCompletionChunk(choices=[ChatChunkChoice(delta=delta)])


    mlflow.models.set_model(Oracle())
    """
)

RESPONSES_AGENT_CODE = textwrap.dedent(
    """
    import mlflow
    from mlflow.pyfunc import ResponsesAgent
    from mlflow.types.responses import ResponsesAgentResponse


    class Echo(ResponsesAgent):
        def predict(self, request):
            last = request.input[-1]
            text = last.content if isinstance(last.content, str) else str(last.content)
            return ResponsesAgentResponse(
                output=[self.create_text_output_item(text=f"Responses heard: {text}", id="o1")],
                custom_outputs={"seen": request.custom_inputs},
            )


    mlflow.models.set_model(Echo())
    """
)

SAVE_SCRIPT = textwrap.dedent(
    """
    import sys

    import mlflow

    mlflow.pyfunc.save_model(path=sys.argv[2], python_model=sys.argv[1])
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env() -> dict[str, str]:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
           "PYTHONWARNINGS": "ignore"}  # fmt: skip
    # Run from the test's folder (see cwd=): mlflow's default store (mlflow.db) goes there.
    env.pop("MLFLOW_TRACKING_URI", None)
    # `mlflow models serve` starts `uvicorn` by name: it must find this environment's.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _save(root: Path, code: str) -> Path:
    """Save a models-from-code agent with the real mlflow client; answers its directory."""
    (root / "agent.py").write_text(code)
    (root / "save.py").write_text(SAVE_SCRIPT)
    model_dir = root / "model"
    saved = subprocess.run(
        [sys.executable, str(root / "save.py"), str(root / "agent.py"), str(model_dir)],
        env=_env(), cwd=root, capture_output=True, text=True, timeout=SERVE_TIMEOUT_S,
    )  # fmt: skip
    assert saved.returncode == 0, saved.stderr[-3000:]
    return model_dir


@pytest.fixture(scope="module")
def saved_chat_model(tmp_path_factory) -> Path:
    """The Oracle ChatModel (the seed tutorial's shape)."""
    return _save(tmp_path_factory.mktemp("chat-model"), AGENT_CODE)


@pytest.fixture(scope="module")
def served_chat_model(saved_chat_model: Path) -> Iterator[str]:
    """The /invocations URL of the Oracle ChatModel under `mlflow models serve`."""
    with _serve(saved_chat_model) as url:
        yield url


@pytest.fixture(scope="module")
def saved_responses_agent(tmp_path_factory) -> Path:
    return _save(tmp_path_factory.mktemp("responses"), RESPONSES_AGENT_CODE)


@pytest.fixture(scope="module")
def served_responses_agent(saved_responses_agent: Path) -> Iterator[str]:
    with _serve(saved_responses_agent) as url:
        yield url


@contextlib.contextmanager
def _serve(model_dir: Path) -> Iterator[str]:
    root = model_dir.parent
    port = _free_port()
    log = (root / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model_dir),
         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=_env(), cwd=root, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait_until_up(f"http://127.0.0.1:{port}/ping", server, root / "serve.log")
        yield f"http://127.0.0.1:{port}/invocations"
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _wait_until_up(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVE_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mlflow models serve exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    pytest.fail(f"mlflow models serve did not come up:\n{log.read_text()[-3000:]}")


@pytest.mark.django_db
def test_the_playground_chats_with_a_chat_model_under_mlflow_models_serve(served_chat_model):
    agent = Agent.objects.create(name="oracle (served)", kind="mlflow-serving",
                                 config={"url": served_chat_model, "timeout": 30},
                                 model_id="m-" + "5" * 32)  # fmt: skip
    conversation = Conversation.objects.create(system_prompt="You are an oracle.")
    conversation.agents.set([agent])
    message = Message.objects.create(conversation=conversation, content="Will it rain?",
                                     params={"temperature": 0.2},
                                     custom_inputs={"city": "Lyon", "days": 3})  # fmt: skip
    run = _queued_run(conversation, message, agent)

    assert answer_run(run.pk) == "done"

    run.refresh_from_db()
    assert run.status == RunStatus.DONE, run.error
    assert run.content == "The oracle heard: Will it rain? (temperature 0.2)"
    assert run.custom_outputs == {"seen": {"city": "Lyon", "days": 3}, "turns": 2}
    assert (run.prompt_tokens, run.completion_tokens, run.total_tokens) == (11, 7, 18)
    trace = Trace.objects.get(trace_id=run.trace_id)
    assert trace.model_id == agent.model_id and trace.total_tokens == 18
    http = Span.objects.get(trace=trace, name="POST /invocations")
    assert http.attributes["http.status_code"] == 200
    assert http.attributes["spyglass.agent_schema"] == "chat-completions"
    assert http.inputs["custom_inputs"] == {"city": "Lyon", "days": 3}


@pytest.fixture
def in_process_worker(live_server, settings, monkeypatch, tmp_path) -> None:
    """This process as the worker: its mlflow client finds the live server on its own
    (SPYGLASS_INTERNAL_URL) and exports the model's spans there before the task returns."""
    settings.SPYGLASS_PLAYGROUND_LOGGED_MODELS = True
    settings.SPYGLASS_INTERNAL_URL = live_server.url
    monkeypatch.setenv("MLFLOW_USE_BATCH_SPAN_PROCESSOR", "false")
    monkeypatch.chdir(tmp_path)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("in_process_worker")
@pytest.mark.filterwarnings("ignore:.*ChatModel.*is deprecated:FutureWarning")
def test_a_logged_model_agent_loads_the_chat_model_in_the_worker(saved_chat_model):
    agent = Agent.objects.create(name="oracle (logged)", kind="logged-model",
                                 config={"model_uri": str(saved_chat_model)})  # fmt: skip
    conversation = Conversation.objects.create()
    conversation.agents.set([agent])
    message = Message.objects.create(conversation=conversation, content="Sunny?",
                                     params={"temperature": 0.5},
                                     custom_inputs={"city": "Oslo"})  # fmt: skip
    run = _queued_run(conversation, message, agent)

    assert answer_run(run.pk) == "done"

    run.refresh_from_db()
    assert run.content == "The oracle streams: Sunny?"  # from predict_stream, chunk by chunk


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("in_process_worker")
def test_a_logged_model_that_does_not_stream_answers_through_predict(saved_responses_agent):
    agent = Agent.objects.create(name="echo (logged)", kind="logged-model",
                                 config={"model_uri": str(saved_responses_agent)})  # fmt: skip
    conversation = Conversation.objects.create()
    conversation.agents.set([agent])
    message = Message.objects.create(conversation=conversation, content="Sunny?",
                                     custom_inputs={"city": "Oslo"})  # fmt: skip
    run = _queued_run(conversation, message, agent)

    assert answer_run(run.pk) == "done"

    run.refresh_from_db()
    assert run.content == "Responses heard: Sunny?"
    assert run.custom_outputs == {"seen": {"city": "Oslo"}}


@pytest.mark.django_db
def test_a_served_responses_agent_is_detected_and_sent_input_items(served_responses_agent):
    agent = Agent.objects.create(name="echo (responses)", kind="mlflow-serving",
                                 config={"url": served_responses_agent, "timeout": 30})  # fmt: skip
    conversation = Conversation.objects.create()
    conversation.agents.set([agent])
    message = Message.objects.create(conversation=conversation, content="Ping?",
                                     custom_inputs={"trace": "yes"})  # fmt: skip
    run = _queued_run(conversation, message, agent)

    assert answer_run(run.pk) == "done"

    run.refresh_from_db()
    assert run.status == RunStatus.DONE, run.error
    assert run.content == "Responses heard: Ping?"
    assert run.custom_outputs == {"seen": {"trace": "yes"}}
    spans = Span.objects.filter(trace__trace_id=run.trace_id, name="POST /invocations")
    assert spans.get(status="OK").attributes["spyglass.agent_schema"] == "responses"
