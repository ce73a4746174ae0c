"""A models-from-code model logged to Spyglass, loaded in the worker with `mlflow.pyfunc`.

Off unless SPYGLASS_PLAYGROUND_LOGGED_MODELS is on: loading a model runs the code that was
logged with it, in the worker, with the worker's permissions. `mlflow` must be installed in
the worker (the `agents` extra: `SPYGLASS_PLAYGROUND_LOGGED_MODELS=1 make run` installs it);
before the first model loads, its client is pointed at this Spyglass (agents/mlflow_env.py).

Config: `model_uri` (default `models:/<the agent's model_id>`; `runs:/...` and a local path
work too; other URIs (http, s3, ...) are refused: mlflow would fetch them itself, past the
outbound gate of `webapp.egress`),
`stream` (default true). Models are loaded once per worker process and URI. The answer streams
from `predict_stream` when the model implements it (chat-completions chunks); otherwise, and
for ChatAgent and ResponsesAgent answers, `predict` answers whole, read like the serving kind's.

A cancelled run stops at the next boundary (after loading, between streamed chunks, after
`predict`): the model's code runs in the worker's thread, which nothing can interrupt safely,
so a long `predict` keeps the worker until it returns and its answer is then dropped.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.conf import settings

from playground.agents.base import (
    AgentError,
    Answer,
    ChatRequest,
    Json,
    Stop,
    Stopped,
    Stream,
    answer_from_usage,
)
from playground.agents.mlflow_env import OTLP_ENDPOINT_VARIABLES, point_mlflow_at_spyglass
from playground.agents.mlflow_serving import request_body
from playground.agents.schemas import (
    CHAT_AGENT,
    CHAT_COMPLETIONS,
    RESPONSES,
    chunk_text,
    parse_answer,
)
from playground.service_account import AccountTaken
from tracking.models import RegisteredModel

if TYPE_CHECKING:
    from playground.models import Agent
    from playground.tracing import Span

_models: dict[str, Any] = {}
_lock = threading.Lock()
_ALIAS_URI = re.compile(r"models:/(?P<name>[^/@]+)@(?P<alias>[\w-]+)")
_WINDOWS_DRIVE = re.compile(r"[A-Za-z]:[\\/]")


def enabled() -> bool:
    return bool(getattr(settings, "SPYGLASS_PLAYGROUND_LOGGED_MODELS", False))


def pinned(uri: str) -> str:
    """`models:/<name>@<alias>` as the version the alias names now (`models:/<name>/<n>`).

    Loaded models are kept per URI: without this, a worker would go on answering with the
    version an alias named when it was first loaded, after the alias had moved.
    """
    match = _ALIAS_URI.fullmatch(uri)
    if match is None:
        return uri
    aliases = (
        RegisteredModel.objects.filter(name=match["name"]).values_list("aliases", flat=True).first()
    )
    number = (aliases or {}).get(match["alias"])
    return f"models:/{match['name']}/{number}" if number else uri


def check_model_uri(uri: str) -> None:
    """Refuse (AgentError) a model URI that is not a registry or run URI or a local path
    (plain or file://).
    `models:/` and `runs:/` are read from the tracking server the worker is configured with;
    anything else (http://, s3://, ...) would be fetched by mlflow from wherever it points."""
    scheme = urlsplit(uri).scheme.lower()
    if scheme in ("models", "runs", "file", "") or _WINDOWS_DRIVE.match(uri):
        return
    raise AgentError(
        f"model_uri must be models:/..., runs:/... or a local path, not {scheme}:// (logged "
        "models are loaded from Spyglass, not fetched from other URLs)."
    )


def load(uri: str) -> Any:
    with _lock:
        if uri not in _models:
            try:
                import mlflow.pyfunc
            except ImportError:
                raise AgentError(
                    "mlflow is not installed in the worker: install the agents extra "
                    "(SPYGLASS_PLAYGROUND_LOGGED_MODELS=1 make run, or pip install "
                    "'spyglass[agents]') and restart the worker."
                ) from None
            try:
                point_mlflow_at_spyglass()
            except AccountTaken as exc:
                raise AgentError(str(exc)) from None
            try:
                _models[uri] = mlflow.pyfunc.load_model(uri)
            except Exception as exc:
                raise AgentError(f"Could not load the model {uri}: {exc}") from exc
        return _models[uri]


@contextmanager
def nested_under(span: Span) -> Iterator[None]:
    """Run the model's code as a callee of `span`: the spans its `@mlflow.trace` and
    `mlflow.start_span` record join the playground's trace under `span`, not a trace of their
    own. This is MLflow's distributed tracing (3.9+), in process, with the `traceparent` the
    HTTP kinds send. MLflow exports only those spans (the trace is not its own), and only over
    OTLP, to the endpoint `point_mlflow_at_spyglass` sets (<spyglass>/v1/traces) unless the
    operator chose another. Ingest merges them into the playground's trace. Without any
    endpoint they would be dropped, so they stay a trace of their own."""
    if not any(os.environ.get(name) for name in OTLP_ENDPOINT_VARIABLES):
        yield
        return
    try:
        from mlflow.tracing import set_tracing_context_from_http_request_headers
    except ImportError:  # an mlflow before 3.9: the model's spans stay a trace of their own
        yield
        return
    with set_tracing_context_from_http_request_headers(span.propagation_headers()):
        yield


class Client:
    def __init__(self, agent: Agent, stop: Stop | None = None) -> None:
        self.stop = stop or Stop()
        if not enabled():
            raise AgentError(
                "Logged-model agents are off: they run the model's logged code in the worker. "
                "Set SPYGLASS_PLAYGROUND_LOGGED_MODELS=1 to allow them."
            )
        self.agent = agent
        config: Json = agent.config or {}
        uri = str(config.get("model_uri") or f"models:/{agent.model_id}")
        check_model_uri(uri)
        self.uri = pinned(uri)
        self.streaming = config.get("stream", True) is not False
        if self.uri == "models:/":
            raise AgentError(f"Agent {agent.name} has neither a model_uri nor a model id.")

    def stream(self, request: ChatRequest, parent: Span) -> Stream:
        with parent.child(f"predict {self.uri}", "AGENT", inputs=request.body()) as span:
            model = load(self.uri)
            self.stop.check()
            answer = None
            with nested_under(span):
                if self.streaming and hasattr(model, "predict_stream"):
                    answer = yield from self._stream(model, request)
                if answer is None:
                    answer = self._predict(model, request)
                    self.stop.check()
                    if answer.content:
                        yield answer.content
            span.set_usage(answer.usage())
            span.end(answer.as_output())
        return answer

    def _stream(self, model: Any, request: ChatRequest) -> Generator[str, None, Answer | None]:
        """The answer from `predict_stream`, or None when the model does not stream."""
        parts: list[str] = []
        last: Json = {}
        try:
            for chunk in model.predict_stream(request_body(request, CHAT_COMPLETIONS)):
                self.stop.check()
                if isinstance(chunk, dict):
                    last = chunk
                    text = chunk_text(chunk)
                    if text:
                        parts.append(text)
                        yield text
        except Stopped:
            raise
        except Exception as exc:
            # ChatModel and ResponsesAgent refuse to stream unless the model implements it;
            # such a refusal comes before any chunk, a break mid-answer after some.
            if parts:
                raise AgentError(f"The model's stream broke: {exc}") from exc
            return None
        return answer_from_usage("".join(parts), last.get("usage"),
                                 custom_outputs=last.get("custom_outputs"))  # fmt: skip

    def _predict(self, model: Any, request: ChatRequest) -> Answer:
        last_error: Exception | None = None
        for shape in (CHAT_COMPLETIONS, CHAT_AGENT, RESPONSES):
            try:
                data = model.predict(request_body(request, shape))
            except Exception as exc:  # schema enforcement refusing this shape
                last_error = exc
                continue
            return parse_answer(_plain(data))
        raise AgentError(f"The model refused the chat request: {last_error}")


def _plain(data: Any) -> Any:
    # ChatModel answers are dicts already; other pyfuncs may answer a one-row frame or list.
    if hasattr(data, "to_dict") and not isinstance(data, dict):
        records = data.to_dict(orient="records")
        return records[0] if len(records) == 1 else records
    if isinstance(data, list) and len(data) == 1:
        return data[0]
    return data
