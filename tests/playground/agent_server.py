"""A small real HTTP server that speaks like the agents the playground calls.

The first path segment picks the behaviour, the rest is the path the agent kind calls:

    /openai/v1/chat/completions       OpenAI chat completions; SSE when asked to stream
    /plain/v1/chat/completions        chat completions that never stream
    /usage/v1/chat/completions        chat completions, never streamed, with KNOWN_USAGE
    /cached-usage/...                 the same with KNOWN_CACHED_USAGE (cached prompt tokens)
    /chat-model/invocations           MLflow ChatModel (chat completions JSON)
    /chat-agent/invocations           MLflow ChatAgent: messages + custom_outputs
    /responses/invocations            MLflow ResponsesAgent: refuses `messages` with 400
    /judge-echo/v1/chat/completions   a judge: {"result": true} when the prompt holds "Echo:",
                                      else false, with a rationale
    /nul/v1/chat/completions          chat completions whose answer holds a NUL character
    /fail/...                         HTTP 500 with an OpenAI-style error
    /hang/...                         answers nothing for HANG_S
    /slow-answer/...                  chat completions JSON, never streamed, after SLOW_ANSWER_S;
                                      a client that hangs up first is noted in `hangups`
    /malformed/...                    200 with a body that is not JSON
    /stall/...                        streams one chunk, then nothing for HANG_S
    /slow-stream/...                  streams SLOW_WORDS words, one per SLOW_WORD_S
    /fixed-100ms/...                  chat completions JSON after exactly 100 ms
    /fail-long/...                    HTTP 500 with a 5,000-character text body
    /redirect/...?to=URL&status=302   answers `status` (default 302) with Location: URL
    /redirect-loop/...                307 to itself, forever
    /judge/v1/chat/completions        an LLM judge: chat completions JSON whose content is the next
                                      of `judge_answers` (scripted), or a pass when none is left
    /judge-no-json/...                the same, but 400 to a request with `response_format`
    /traced/...                       chat completions by an agent instrumented with the
                                      OpenTelemetry SDK: its spans (predict > lookup_sources)
                                      join the caller's `traceparent` and are exported over
                                      OTLP to `otlp_url` before it answers, each batch twice
    /traced-late/...                  the same, but its spans wait in `pending` until the
                                      test calls `export_pending()` (an exporter's late batch)

Every request body is kept in `requests` (path, body, headers) for assertions. `host` binds
another loopback address (127.0.0.2: a second server, for redirects across hosts).
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

HANG_S = 2.0
SLOW_ANSWER_S = 15.0
SLOW_WORDS = 40
SLOW_WORD_S = 0.05
# Token counts for pricing tests: round enough to check by hand, big enough to cost something.
KNOWN_USAGE = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500}
DEFAULT_JUDGE_ANSWER = '{"result": true, "rationale": "Looks right."}'
KNOWN_CACHED_USAGE = {**KNOWN_USAGE, "prompt_tokens_details": {"cached_tokens": 1024}}


def reply_text(body: dict[str, Any]) -> str:
    messages = body.get("messages") or body.get("input") or []
    users = [m.get("content", "") for m in messages if m.get("role") == "user"]
    return f"Echo: {users[-1] if users else ''}"


def custom_outputs(body: dict[str, Any]) -> dict[str, Any]:
    return {"received_custom_inputs": body.get("custom_inputs")}


class Handler(BaseHTTPRequestHandler):
    server: AgentServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        body = json.loads(raw) if raw else {}
        self.server.requests.append(
            {"path": self.path, "body": body, "headers": dict(self.headers.items())}
        )
        mode = self.path.strip("/").split("/", 1)[0]
        # The client may hang up (a cancel or a timeout): that is the point of some modes.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            getattr(self, "mode_" + mode.replace("-", "_"))(body)

    # --- behaviours ---

    def mode_openai(self, body: dict[str, Any]) -> None:
        if body.get("stream"):
            self._stream_words(reply_text(body).split(" "), body, delay=0)
        else:
            self._json(200, self._completion(body))

    def mode_plain(self, body: dict[str, Any]) -> None:
        self._json(200, self._completion(body))

    def mode_usage(self, body: dict[str, Any]) -> None:
        self._json(200, {**self._completion(body), "usage": KNOWN_USAGE})

    def mode_cached_usage(self, body: dict[str, Any]) -> None:
        self._json(200, {**self._completion(body), "usage": KNOWN_CACHED_USAGE})

    def mode_chat_model(self, body: dict[str, Any]) -> None:
        self._json(200, self._completion(body))

    def mode_fixed_100ms(self, body: dict[str, Any]) -> None:
        time.sleep(0.1)
        self._json(200, self._completion(body))

    def mode_chat_agent(self, body: dict[str, Any]) -> None:
        if "messages" not in body:
            self._json(400, {"error_code": "BAD_REQUEST", "message": "messages is required"})
            return
        self._json(
            200,
            {
                "messages": [{"role": "assistant", "content": reply_text(body), "id": "m1"}],
                "custom_outputs": custom_outputs(body),
            },
        )

    def mode_responses(self, body: dict[str, Any]) -> None:
        if "input" not in body:
            self._json(400, {"error_code": "BAD_REQUEST", "message": "input is required"})
            return
        self._json(
            200,
            {
                "output": [
                    {"type": "message", "id": "o1", "role": "assistant",
                     "content": [{"type": "output_text", "text": reply_text(body)}]},
                ],
                "custom_outputs": custom_outputs(body),
            },
        )  # fmt: skip

    def mode_fail(self, body: dict[str, Any]) -> None:
        self._json(500, {"error": {"message": "the model crashed", "type": "server_error"}})

    def mode_fail_long(self, body: dict[str, Any]) -> None:
        data = ("FIRST " + "x" * 5000 + " LAST").encode()
        self.send_response(500)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def mode_redirect(self, body: dict[str, Any]) -> None:
        query = parse_qs(urlsplit(self.path).query)
        self.send_response(int(query.get("status", ["302"])[0]))
        self.send_header("Location", query["to"][0])
        self.send_header("Content-Length", "0")
        self.end_headers()

    def mode_redirect_loop(self, body: dict[str, Any]) -> None:
        self.send_response(307)
        self.send_header("Location", self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def mode_hang(self, body: dict[str, Any]) -> None:
        time.sleep(HANG_S)
        self._json(200, self._completion(body))

    def mode_slow_answer(self, body: dict[str, Any]) -> None:
        # Waits watching the connection: a client that gives up closes it, which makes the
        # socket readable with nothing to read.
        deadline = time.monotonic() + SLOW_ANSWER_S
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self.connection], [], [], min(left, 0.05))
            if readable and not self.connection.recv(1, socket.MSG_PEEK):
                self.server.hangups.append(self.path)
                self.close_connection = True
                return
        self._json(200, self._completion(body))

    def mode_malformed(self, body: dict[str, Any]) -> None:
        data = b"<html>not json</html>"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def mode_stall(self, body: dict[str, Any]) -> None:
        self._start_stream()
        self._event({"choices": [{"index": 0, "delta": {"content": "Partial"}}]})
        time.sleep(HANG_S)

    def mode_slow_stream(self, body: dict[str, Any]) -> None:
        words = [f"word{i}" for i in range(SLOW_WORDS)]
        self._stream_words(words, body, delay=SLOW_WORD_S)

    def mode_judge(self, body: dict[str, Any]) -> None:
        answers = self.server.judge_answers
        content = answers.pop(0) if answers else DEFAULT_JUDGE_ANSWER
        completion = self._completion(body)
        completion["choices"][0]["message"]["content"] = content
        self._json(200, completion)

    def mode_nul(self, body: dict[str, Any]) -> None:
        # An answer with a NUL in it (PostgreSQL refuses NUL in text and jsonb).
        completion = self._completion(body)
        completion["choices"][0]["message"]["content"] = "Echo:\u0000 nul"
        self._json(200, completion)

    def mode_judge_echo(self, body: dict[str, Any]) -> None:
        # A judge with an opinion: an answer that echoes ("Echo: ...") passes, any other fails.
        prompt = " ".join(str(m.get("content", "")) for m in body.get("messages") or [])
        passed = "Echo:" in prompt
        verdict = {"result": passed, "rationale": "It echoes." if passed else "No echo."}
        completion = self._completion(body)
        completion["choices"][0]["message"]["content"] = json.dumps(verdict)
        self._json(200, completion)

    def mode_judge_no_json(self, body: dict[str, Any]) -> None:
        if "response_format" in body:
            self._json(400, {"error": {"message": "response_format is not supported"}})
            return
        self.mode_judge(body)

    def mode_traced(self, body: dict[str, Any]) -> None:
        self._traced_answer(body, self.server.exporter)

    def mode_traced_late(self, body: dict[str, Any]) -> None:
        self._traced_answer(body, self.server.pending)

    def _traced_answer(self, body: dict[str, Any], exporter: SpanExporter) -> None:
        # What an instrumented agent does with the W3C headers it is sent: its spans
        # continue the caller's trace, under the caller's span.
        # (Header names lowercased, as WSGI and ASGI servers hand them to an app.)
        headers = {name.lower(): value for name, value in self.headers.items()}
        context = TraceContextTextMapPropagator().extract(headers)
        tracer = self.server.tracer_for(exporter)
        with tracer.start_as_current_span("predict", context=context) as predict:
            predict.set_attribute("mlflow.spanType", '"AGENT"')
            with tracer.start_as_current_span("lookup_sources") as lookup:
                lookup.set_attribute("mlflow.spanType", '"RETRIEVER"')
            completion = self._completion(body)
        self._json(200, completion)

    # --- wire ---

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        text = reply_text(body)
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": body.get("model", "test"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": len(text.split()),
                      "total_tokens": 7 + len(text.split())},
            "custom_outputs": custom_outputs(body),
        }  # fmt: skip

    def _json(self, status: int, data: Any) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.close_connection = True

    def _event(self, data: Any) -> None:
        payload = data if isinstance(data, str) else json.dumps(data)
        self.wfile.write(f"data: {payload}\n\n".encode())
        self.wfile.flush()

    def _stream_words(self, words: list[str], body: dict[str, Any], delay: float) -> None:
        self._start_stream()
        for i, word in enumerate(words):
            piece = word if i == 0 else f" {word}"
            self._event({"choices": [{"index": 0, "delta": {"content": piece}}]})
            if delay:
                time.sleep(delay)
        self._event({"choices": [], "custom_outputs": custom_outputs(body),
                     "usage": {"prompt_tokens": 7, "completion_tokens": len(words),
                               "total_tokens": 7 + len(words)}})  # fmt: skip
        self._event("[DONE]")


class _Twice(SpanExporter):
    """The OTLP exporter, sending every batch twice: an exporter retries a batch whose
    answer it did not get, so a receiver sees the same spans again."""

    def __init__(self, server: AgentServer) -> None:
        self.server = server

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        exporter = OTLPSpanExporter(endpoint=self.server.otlp_url)
        try:
            results = [exporter.export(spans), exporter.export(spans)]
        finally:
            exporter.shutdown()
        self.server.export_results.extend(results)
        return results[-1]


class _Pending(SpanExporter):
    """Keeps finished spans until the test sends them (`AgentServer.export_pending`)."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self.lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self.lock:
            self.spans.extend(spans)
        return SpanExportResult.SUCCESS


class AgentServer(ThreadingHTTPServer):
    # Evaluations call an agent from several threads at once: socketserver's backlog of 5
    # would drop their SYNs, and each dropped one waits a second to be sent again.
    request_queue_size = 128
    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__((host, 0), Handler)
        self.requests: list[dict[str, Any]] = []
        self.judge_answers: list[str] = []  # what /judge answers next, in order
        self.hangups: list[str] = []  # paths of /slow-answer requests the client gave up on
        self.url = f"http://{host}:{self.server_address[1]}"
        # Where the traced modes export their spans (the test's live server), and how that went.
        self.otlp_url = ""
        self.export_results: list[SpanExportResult] = []
        self.exporter = _Twice(self)
        self.pending = _Pending()
        self._providers: dict[int, TracerProvider] = {}
        self._providers_lock = threading.Lock()

    def tracer_for(self, exporter: SpanExporter) -> Tracer:
        with self._providers_lock:
            return self._tracer_for(exporter)

    def _tracer_for(self, exporter: SpanExporter) -> Tracer:
        provider = self._providers.get(id(exporter))
        if provider is None:
            # A provider of its own, never the global one: tests do not see each other's spans.
            provider = TracerProvider(resource=Resource.create({"service.name": "test-agent"}))
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            self._providers[id(exporter)] = provider
        return provider.get_tracer("tests.playground.agent_server")

    def export_pending(self) -> SpanExportResult:
        with self.pending.lock:
            spans, self.pending.spans = self.pending.spans, []
        return self.exporter.export(spans)

    def forget(self) -> None:
        """Forget the requests and spans of earlier tests."""
        self.requests.clear()
        self.judge_answers.clear()
        self.hangups.clear()
        self.export_results.clear()
        with self.pending.lock:
            self.pending.spans.clear()

    def start(self) -> AgentServer:
        threading.Thread(target=self.serve_forever, name="agent-server", daemon=True).start()
        return self

    def stop(self) -> None:
        for provider in self._providers.values():
            provider.shutdown()
        self.shutdown()
        self.server_close()
