"""Spans made by a real GenAI instrumentation, for the conformance tests of GenAI ingest.

`opentelemetry-instrumentation-openai-v2` wraps the real `openai` client, which calls
`OpenAIServer`, a small OpenAI-compatible HTTP server (chat completions, streamed or not, with a
tool call when the request offers tools, and embeddings). `capture()` runs the four calls of the
conformance suite and answers their spans as the OTLP/JSON a span exporter would send.

Rewrite the fixtures in tests/fixtures/otel_genai/ after upgrading the instrumentation:

    .venv/bin/python -m tests.interop.genai_capture
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "otel_genai"
MODEL = "gpt-4o-mini"  # a model the price list knows, so the spans get a cost
EMBEDDING_MODEL = "text-embedding-3-small"
SYSTEM = "You answer in one short sentence."
QUESTION = "What is the weather in Paris?"
WEATHER = {"city": "Paris", "sky": "sunny", "celsius": 21}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather now in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
# Token counts of every chat answer: round, and with cached prompt tokens to price too.
USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 300,
    "total_tokens": 1500,
    "prompt_tokens_details": {"cached_tokens": 1024},
}
AGENT_ATTRIBUTES = {"session.id": "session-42", "user.id": "alice"}
# How the instrumentation is told to put message content on the spans (see `capture`).
CONTENT_ENV = {
    "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_only",
}
# Content in events only: the messages are a log record (the instrumentation's
# `gen_ai.client.inference.operation.details` event) for a log exporter to send to /v1/logs.
EVENTS_ENV = {
    "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "event_only",
}


def answer_text(body: dict[str, Any]) -> str:
    last = (body.get("messages") or [{}])[-1]
    if last.get("role") == "tool":
        return f"It is {json.loads(last['content'])['sky']} in Paris."
    return "Hello from the test model."


class _Handler(BaseHTTPRequestHandler):
    server: OpenAIServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        self.server.requests.append(body)
        if self.path.endswith("/embeddings"):
            self._json(self._embeddings(body))
        elif body.get("stream"):
            self._stream(body)
        else:
            self._json(self._completion(body))

    def _message(self, body: dict[str, Any]) -> dict[str, Any]:
        last = (body.get("messages") or [{}])[-1]
        if body.get("tools") and last.get("role") != "tool":
            call = {
                "id": "call_weather_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})},
            }
            return {"role": "assistant", "content": None, "tool_calls": [call]}
        return {"role": "assistant", "content": answer_text(body)}

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        message = self._message(body)
        return {
            "id": "chatcmpl-genai-1",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": f"{body['model']}-2024-07-18",
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if message.get("tool_calls") else "stop"}],
            "usage": USAGE,
        }  # fmt: skip

    def _embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return {
            "object": "list",
            "model": body["model"],
            "data": [
                {"object": "embedding", "index": i, "embedding": [0.25, -0.5, 0.125, 1.0]}
                for i in range(len(texts))
            ],
            "usage": {"prompt_tokens": 8, "total_tokens": 8},
        }

    def _stream(self, body: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.close_connection = True
        base = {"id": "chatcmpl-genai-2", "object": "chat.completion.chunk",
                "created": 1_700_000_000, "model": f"{body['model']}-2024-07-18"}  # fmt: skip
        words = answer_text(body).split(" ")
        for i, word in enumerate(words):
            delta = {"role": "assistant", "content": word} if i == 0 else {"content": " " + word}
            self._event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            self._event({**base, "choices": [], "usage": USAGE})
        self.wfile.write(b"data: [DONE]\n\n")

    def _event(self, data: Any) -> None:
        self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())

    def _json(self, data: Any) -> None:
        raw = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


class OpenAIServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict[str, Any]] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}/v1"


@contextmanager
def openai_server() -> Iterator[OpenAIServer]:
    server = OpenAIServer()
    threading.Thread(target=server.serve_forever, name="openai-server", daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _chat(client: Any, tracer: Tracer) -> None:
    client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Say hello."}],
        temperature=0.2,
    )


def _stream(client: Any, tracer: Tracer) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Say hello, streamed."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for _ in stream:
        pass


def _tool_round_trip(client: Any, tracer: Tracer) -> None:
    # The application's own span around the two calls, as an agent would have: one trace,
    # with the session and user the OTel conventions name.
    with tracer.start_as_current_span("weather_agent", attributes=AGENT_ATTRIBUTES):
        messages: list[dict[str, Any]] = [{"role": "user", "content": QUESTION}]
        first = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
        call = first.choices[0].message.tool_calls[0]
        messages.append(first.choices[0].message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(WEATHER)})
        client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)


def _embeddings(client: Any, tracer: Tracer) -> None:
    client.embeddings.create(model=EMBEDDING_MODEL, input=["sunny in Paris", "rain in Oslo"])


SCENARIOS = {
    "chat": _chat,
    "chat_stream": _stream,
    "tool_round_trip": _tool_round_trip,
    "embeddings": _embeddings,
}


def capture(
    env: dict[str, str] | None = None,
    exporter: SpanExporter | None = None,
    only: str | None = None,
    log_processor: LogRecordProcessor | None = None,
) -> dict[str, dict[str, Any]]:
    """Run each scenario with the instrumentation on; {scenario: OTLP/JSON export request}.
    `exporter`, when given, is sent the spans too (the OTLP exporter of a live test); `only`
    runs one scenario; `log_processor` gets the log records the instrumentation emits (its
    events, in its default mode), and is shut down (flushed) after the spans were exported.

    The instrumentation reads its settings from the environment when it is installed, and
    patches `openai` for the whole process: it is installed here and removed before returning.
    """
    import openai
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    env = CONTENT_ENV if env is None else env
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "genai-conformance"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.interop.genai_capture")
    logger_provider = LoggerProvider(resource=provider.resource)
    if log_processor is not None:
        logger_provider.add_log_record_processor(log_processor)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider, logger_provider=logger_provider)
    captured = {}
    try:
        with openai_server() as server:
            client = openai.OpenAI(base_url=server.url, api_key="test-key", max_retries=0)
            for name, scenario in SCENARIOS.items():
                if only is not None and name != only:
                    continue
                memory.clear()
                scenario(client, tracer)
                captured[name] = otlp_json(memory.get_finished_spans())
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
        logger_provider.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return captured


def otlp_json(spans: tuple[ReadableSpan, ...] | list[ReadableSpan]) -> dict[str, Any]:
    """What the OTLP exporter sends for `spans`, in OTLP/JSON (ids as hex, as the spec says)."""
    data = json_format.MessageToDict(encode_spans(spans))
    for resource_spans in data["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64_to_hex(span[key])
    return data


def base64_to_hex(value: str) -> str:
    return base64.b64decode(value).hex()


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def main() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name, export in capture().items():
        path = FIXTURES / f"{name}.json"
        path.write_text(json.dumps(export, indent=1, ensure_ascii=False) + "\n")
        print(path)


if __name__ == "__main__":
    main()
