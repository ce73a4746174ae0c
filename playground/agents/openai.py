"""Any OpenAI-compatible `/v1/chat/completions` endpoint (vLLM, Ollama, OpenAI, ...).

Config: `url` (the full chat-completions URL, or a base ending in /v1), `model`,
`api_key_env` (the *name* of an environment variable on SPYGLASS_AGENT_ENV_ALLOW, read in the
worker; or the key is stored with the agent, encrypted), `stream` (default true: SSE when the
server supports it; a server that answers plain JSON to a streaming request is read as JSON),
`timeout` seconds. The key is sent as `Authorization: Bearer` (see `webapp.egress`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from playground.agents import http
from playground.agents.base import AgentError, ChatRequest, Json, Stop, Stream, answer_from_usage
from playground.agents.schemas import chunk_text, parse_answer

if TYPE_CHECKING:
    from playground.models import Agent
    from playground.tracing import Span


def chat_completions_url(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/chat/completions") else f"{url}/chat/completions"


class Client:
    def __init__(self, agent: Agent, stop: Stop | None = None) -> None:
        self.agent = agent
        self.stop = stop or Stop()
        self.config: Json = agent.config or {}
        if not self.config.get("url"):
            raise AgentError(f"Agent {agent.name} has no url in its config.")
        self.url = chat_completions_url(str(self.config["url"]))
        self.timeout = http.timeout_of(self.config)

    def headers(self) -> dict[str, str]:
        return http.bearer_headers(self.agent)

    def stream(self, request: ChatRequest, parent: Span) -> Stream:
        body = request.body()
        if self.config.get("model"):
            body["model"] = self.config["model"]
        streaming = self.config.get("stream", True) is not False
        if streaming:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        with http.post(parent, self.url, body, self.timeout, self.headers(),
                       stop=self.stop) as (response, span):  # fmt: skip
            if not (streaming and http.is_event_stream(response)):
                answer = parse_answer(http.read_json(response, self.timeout))
                if answer.content:
                    yield answer.content
            else:
                parts: list[str] = []
                usage: Json | None = None
                custom_outputs: Json | None = None
                for chunk in http.sse_data(response, self.timeout):
                    text = chunk_text(chunk)
                    usage = chunk.get("usage") or usage
                    if isinstance(chunk.get("custom_outputs"), dict):
                        custom_outputs = chunk["custom_outputs"]
                    if text:
                        parts.append(text)
                        yield text
                answer = answer_from_usage("".join(parts), usage, custom_outputs=custom_outputs)
            span.set_usage(answer.usage())
            span.end(answer.as_output())
        return answer
