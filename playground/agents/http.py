"""HTTP as the openai and mlflow-serving kinds speak it: a JSON POST, a JSON or SSE answer,
and every way that can go wrong turned into an AgentError that says what happened.

The standard library is enough here: one request per answer, read line by line when it
streams. A read timeout applies to each read, so a stream that stalls fails as surely as a
server that never answers. Every request goes through `webapp.egress` (the outbound gate:
http/https only, allowed hosts, checked redirects) and every key through `egress.secret_for`;
request headers are never recorded on spans, so a key stays out of traces. Every request
carries the W3C `traceparent` of its HTTP span (`Span.propagation_headers`), so an
instrumented agent's own spans join the playground's trace.

A `Stop` aborts a call from another thread: its sockets are shut down, which wakes the read
that waits for the answer (streaming or not), and the call raises `Stopped` instead of the
broken connection's error.
"""

from __future__ import annotations

import contextlib
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.client import HTTPException, HTTPResponse
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from playground.agents.base import AgentError, Json, Stop, Stopped
from playground.tracing import Span
from webapp import egress

if TYPE_CHECKING:
    from playground.models import Agent

DEFAULT_TIMEOUT_S = 60.0
# Enough of an error body to explain it, not a whole HTML error page (nor a whole file).
ERROR_BODY_CHARS = 300


def timeout_of(config: Json) -> float:
    try:
        timeout = float(config.get("timeout", DEFAULT_TIMEOUT_S))
    except (TypeError, ValueError):
        return DEFAULT_TIMEOUT_S
    return timeout if timeout > 0 else DEFAULT_TIMEOUT_S


@contextmanager
def post(
    parent: Span,
    url: str,
    body: Json,
    timeout: float,
    headers: dict[str, str] | None = None,
    span_type: str = "CHAT_MODEL",
    stop: Stop | None = None,
) -> Iterator[tuple[HTTPResponse, Span]]:
    """POST `body` as JSON inside an HTTP span; yields the open response (status 2xx).
    Raises Stopped, whatever the connection did, once `stop` is requested."""
    span = parent.child(f"POST {urlsplit(url).path or '/'}", span_type, inputs=body)
    span.attributes.update({"http.method": "POST", "http.url": url})
    stop = stop or Stop()
    sockets: list[socket.socket] = []
    with span, _stopped_as_such(stop), stop.hook(lambda: _shut_down(sockets)):
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            **(headers or {}),
            # The HTTP span is the caller's span of this request: the agent's own spans
            # nest under it, inside the agent call, in the playground's trace.
            **span.propagation_headers(),
        }
        try:
            request = urllib.request.Request(
                url, data=json.dumps(body).encode(), method="POST", headers=headers
            )
            response = egress.open(request, timeout, _on_socket(sockets, stop))
        except egress.EgressRefused as exc:
            raise AgentError(f"Spyglass refused to call {_shown(url)}: {exc}") from None
        except urllib.error.HTTPError as exc:
            span.attributes["http.status_code"] = exc.code
            try:
                detail = _error_detail(exc)
            finally:
                exc.close()
            raise AgentError(f"The agent answered HTTP {exc.code}{detail}", exc.code) from None
        except TimeoutError as exc:
            raise AgentError(f"The agent did not answer within {timeout:g} s.") from exc
        except (OSError, HTTPException, ValueError) as exc:
            raise AgentError(f"Could not reach the agent at {_shown(url)}: {exc}.") from exc
        span.attributes["http.status_code"] = response.status
        with response:
            yield response, span


def _on_socket(sockets: list[socket.socket], stop: Stop) -> Callable[[socket.socket], None]:
    def on_socket(sock: socket.socket) -> None:
        sockets.append(sock)
        if stop.requested:  # requested before this socket existed: the hook missed it
            _shut_down([sock])

    return on_socket


def _shut_down(sockets: list[socket.socket]) -> None:
    for sock in list(sockets):
        # shutdown, not close: it wakes a recv blocked on the socket in the calling thread.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


@contextmanager
def _stopped_as_such(stop: Stop) -> Iterator[None]:
    """The errors of a connection shut down by `stop` are a stop, not the agent's failure."""
    try:
        yield
    except (AgentError, OSError, HTTPException) as exc:
        if stop.requested:
            raise Stopped from exc
        raise
    stop.check()  # an answer read whole just as the stop came is not used either


def is_event_stream(response: HTTPResponse) -> bool:
    return response.headers.get_content_type() == "text/event-stream"


def read_json(response: HTTPResponse, timeout: float) -> Any:
    try:
        raw = response.read()
    except TimeoutError as exc:
        raise AgentError(f"The agent stopped sending its answer for {timeout:g} s.") from exc
    except (OSError, HTTPException) as exc:
        raise AgentError(f"The connection to the agent broke: {exc}.") from exc
    try:
        return json.loads(raw)
    except ValueError as exc:
        excerpt = raw[:200].decode(errors="replace")
        raise AgentError(f"The agent's answer is not valid JSON ({exc}): {excerpt!r}") from None


def sse_data(response: HTTPResponse, timeout: float) -> Iterator[Json]:
    """The JSON objects of an SSE stream's `data:` lines, until `[DONE]` or the end."""
    while True:
        try:
            line = response.readline()
        except TimeoutError as exc:
            raise AgentError(f"The agent's stream stalled for more than {timeout:g} s.") from exc
        except (OSError, HTTPException) as exc:
            raise AgentError(f"The connection to the agent broke mid-stream: {exc}.") from exc
        if not line:
            return
        line = line.strip()
        if not line.startswith(b"data:"):
            continue  # comments, event names, ids, blank separators
        payload = line[5:].strip()
        if payload == b"[DONE]":
            return
        try:
            data = json.loads(payload)
        except ValueError:
            excerpt = payload[:200].decode(errors="replace")
            raise AgentError(f"The agent streamed a chunk that is not JSON: {excerpt!r}") from None
        if not isinstance(data, dict):
            raise AgentError(f"The agent streamed a chunk that is not a JSON object: {data!r}")
        yield data


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = exc.read(ERROR_BODY_CHARS * 4).decode(errors="replace")
    except (OSError, HTTPException):
        body = ""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        # OpenAI: {"error": {"message": ...}}; MLflow serving: {"message": ...}.
        error = parsed.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        message = message or parsed.get("message")
        if message:
            body = str(message)
    body = " ".join(body.split())[:ERROR_BODY_CHARS]
    return f": {body}" if body else "."


def bearer_headers(agent: Agent) -> dict[str, str]:
    """Authorization with the agent's key (`egress.secret_for`: a stored key, or an allowed
    environment variable), or nothing when it has none. The key is never recorded."""
    try:
        key = egress.secret_for(agent)
    except egress.EgressRefused as exc:
        raise AgentError(str(exc)) from None
    return {"Authorization": f"Bearer {key}"} if key else {}


def _shown(url: str) -> str:
    return url if len(url) <= 200 else url[:200] + "..."
