"""An MLflow `/invocations` endpoint (`mlflow models serve`, Databricks-style serving).

The agent behind it may be a ChatModel (chat completions), a ChatAgent (`messages` in,
`messages` + `custom_outputs` out) or a ResponsesAgent (`input` in, `output` items out). The
answer tells which; the request is tried in the chat-completions shape first, and when the
endpoint refuses it (400/422: schema enforcement) in the ChatAgent and then the Responses
shape. What worked is remembered per URL for this worker process.

Config: `url` (the /invocations URL), `stream` (default false; `mlflow models serve` does not
stream, Databricks endpoints do with "stream": true), `timeout` seconds, and a key as for
the openai kind (stored with the agent, or `api_key_env`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from playground.agents import http
from playground.agents.base import AgentError, ChatRequest, Json, Stop, Stream
from playground.agents.schemas import (
    CHAT_AGENT,
    CHAT_COMPLETIONS,
    RESPONSES,
    chunk_text,
    parse_answer,
)

if TYPE_CHECKING:
    from playground.models import Agent
    from playground.tracing import Span

# The request shapes in the order they are tried; the first two are supersets of the last.
_SHAPES = (CHAT_COMPLETIONS, CHAT_AGENT, RESPONSES)
_REFUSED = (400, 422)
_shape_by_url: dict[str, str] = {}


def request_body(request: ChatRequest, shape: str) -> Json:
    if shape == CHAT_COMPLETIONS:
        return request.body()
    body: Json = {"input" if shape == RESPONSES else "messages": request.messages}
    if request.custom_inputs is not None:
        body["custom_inputs"] = request.custom_inputs
    return body


class Client:
    def __init__(self, agent: Agent, stop: Stop | None = None) -> None:
        self.agent = agent
        self.stop = stop or Stop()
        self.config: Json = agent.config or {}
        if not self.config.get("url"):
            raise AgentError(f"Agent {agent.name} has no url in its config.")
        self.url = str(self.config["url"])
        self.timeout = http.timeout_of(self.config)

    def headers(self) -> dict[str, str]:
        return http.bearer_headers(self.agent)

    def stream(self, request: ChatRequest, parent: Span) -> Stream:
        known = _shape_by_url.get(self.url)
        shapes = (known,) if known else _SHAPES
        for i, shape in enumerate(shapes):
            try:
                answer = yield from self._call(request, parent, shape)
            except AgentError as exc:
                refused = exc.status in _REFUSED
                if not refused or i == len(shapes) - 1:
                    raise
                continue
            _shape_by_url[self.url] = shape
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    def _call(self, request: ChatRequest, parent: Span, shape: str) -> Stream:
        body = request_body(request, shape)
        streaming = self.config.get("stream") is True
        if streaming:
            body["stream"] = True
        with http.post(parent, self.url, body, self.timeout, self.headers(), "AGENT",
                       stop=self.stop) as (response, span):  # fmt: skip
            if streaming and http.is_event_stream(response):
                parts: list[str] = []
                last: Json = {}
                for chunk in http.sse_data(response, self.timeout):
                    last = chunk
                    text = chunk_text(chunk)
                    if text:
                        parts.append(text)
                        yield text
                answer = parse_answer(
                    {"choices": [{"message": {"content": "".join(parts)}}],
                     "custom_outputs": last.get("custom_outputs"), "usage": last.get("usage")}
                )  # fmt: skip
            else:
                answer = parse_answer(http.read_json(response, self.timeout))
                if answer.content:
                    yield answer.content
            span.attributes["spyglass.agent_schema"] = answer.schema
            span.set_usage(answer.usage())
            span.end(answer.as_output())
        return answer
