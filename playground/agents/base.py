"""The interface every kind of agent implements: a generator of text chunks that returns the
final answer.

    stream = client.stream(request, spans)
    for chunk in stream: ...          # text as it arrives (possibly nothing until the end)
    answer = <the generator's return value>

`consume()` does that loop. A client records what it did as spans under the span it is
given (`tracing.SpanRecorder`), raises `AgentError` with a message for the user when the
agent cannot answer, and stops cleanly (closing its connection) when the generator is closed:
that is how a cancelled run stops an answer mid-stream.

A client is made with a `Stop` (`client_for(agent, stop)`), which another thread requests when
the run is cancelled while the agent is still thinking: an HTTP call shuts its socket down and
raises `Stopped` at once; an in-process model cannot be interrupted, so it raises `Stopped` at
its next boundary (before `predict`, between streamed chunks).
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from playground.models import Agent
    from playground.tracing import Span

Json = dict[str, Any]
Stream = Generator[str, None, "Answer"]

# Kind -> module under playground/agents/ with a `Client` class.
_MODULES = {
    "openai": "playground.agents.openai",
    "mlflow-serving": "playground.agents.mlflow_serving",
    "logged-model": "playground.agents.logged_model",
    "builtin": "playground.agents.builtin",
}


class Stopped(Exception):
    """The call was stopped because its run was cancelled: not an error of the agent."""


class Stop:
    """A cancelled run's request to stop its agent call, made from another thread (the task's
    watcher). A client blocked in I/O adds a hook that interrupts it (shuts its socket down);
    a client that cannot be interrupted checks `requested` at its boundaries."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._hooks: list[Callable[[], None]] = []

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def request(self) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            hooks, self._hooks = self._hooks, []
        for hook in hooks:
            _run_hook(hook)

    def check(self) -> None:
        """Raise Stopped when a stop was requested: a boundary of an uninterruptible call."""
        if self.requested:
            raise Stopped

    def sleep(self, seconds: float) -> None:
        """Wait `seconds`, or raise Stopped as soon as a stop is requested."""
        if self._event.wait(max(0.0, seconds)):
            raise Stopped

    @contextlib.contextmanager
    def hook(self, interrupt: Callable[[], None]) -> Iterator[None]:
        """While inside, a request calls `interrupt` (at once if it came already)."""
        with self._lock:
            requested = self._event.is_set()
            if not requested:
                self._hooks.append(interrupt)
        if requested:
            _run_hook(interrupt)
        try:
            yield
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._hooks.remove(interrupt)


def _run_hook(hook: Callable[[], None]) -> None:
    # An interrupt races the call it interrupts (a socket already closed): nothing to do then.
    with contextlib.suppress(OSError):
        hook()


class AgentError(Exception):
    """The agent could not answer; `str(error)` says why, for the person chatting."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status, when the agent answered with an error


@dataclass(slots=True)
class ChatRequest:
    # OpenAI chat messages, system prompt first when there is one.
    messages: list[Json]
    # temperature, max_tokens, stop: only those the user set.
    params: Json = field(default_factory=dict)
    # Sent verbatim as `custom_inputs`; None when the gear is off.
    custom_inputs: Json | None = None

    def body(self) -> Json:
        """The chat-completions request body most agents accept."""
        body: Json = {"messages": self.messages, **self.params}
        if self.custom_inputs is not None:
            body["custom_inputs"] = self.custom_inputs
        return body


@dataclass(slots=True)
class Answer:
    content: str
    custom_outputs: Json | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    # Which schema the agent answered in: chat-completions, chat-agent or responses.
    schema: str = "chat-completions"

    def usage(self) -> Json:
        """MLflow's token usage shape (`mlflow.chat.tokenUsage`), only the counts known."""
        usage = {
            "input_tokens": self.prompt_tokens,
            "output_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        return {k: v for k, v in usage.items() if v is not None}

    def as_output(self) -> Json:
        """The answer as a chat-completions response, for span outputs."""
        output: Json = {"choices": [{"index": 0, "message": self.message()}]}
        if self.custom_outputs is not None:
            output["custom_outputs"] = self.custom_outputs
        return output

    def message(self) -> Json:
        return {"role": "assistant", "content": self.content}


class Client(Protocol):
    def stream(self, request: ChatRequest, parent: Span) -> Stream: ...


def client_for(agent: Agent, stop: Stop | None = None) -> Client:
    """The client of the agent's kind; `stop` (each client makes a fresh one by default)
    stops its call."""
    module = importlib.import_module(_MODULES[agent.kind])
    return module.Client(agent, stop)


def consume(stream: Stream, on_chunk: Callable[[str], None]) -> Answer:
    """Run a stream to its end, handing each chunk to `on_chunk`; answer the final Answer."""
    while True:
        try:
            chunk = next(stream)
        except StopIteration as stop:
            return stop.value
        if chunk:
            on_chunk(chunk)


def token_count(value: Any) -> int | None:
    """A token count from an agent's usage, or None for anything that is not a count."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31:
        return value
    return None


def answer_from_usage(content: str, usage: Any, **kwargs: Any) -> Answer:
    """An Answer whose token counts come from OpenAI- or Responses-style `usage`."""
    usage = usage if isinstance(usage, dict) else {}
    prompt = token_count(usage.get("prompt_tokens", usage.get("input_tokens")))
    completion = token_count(usage.get("completion_tokens", usage.get("output_tokens")))
    total = token_count(usage.get("total_tokens"))
    if total is None and prompt is not None and completion is not None:
        total = prompt + completion
    return Answer(content, prompt_tokens=prompt, completion_tokens=completion,
                  total_tokens=total, **kwargs)  # fmt: skip
