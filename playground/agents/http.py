"""HTTP as the openai and mlflow-serving kinds speak it: a JSON POST, a JSON or SSE answer,
and every way that can go wrong turned into an AgentError that says what happened.

The standard library is enough here: one request per answer, read line by line when it
streams. A read timeout applies to each read, so a stream that stalls fails as surely as a
server that never answers.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.client import HTTPException, HTTPResponse
from typing import Any
from urllib.parse import urlsplit

from playground.agents.base import AgentError, Json
from playground.tracing import Span

DEFAULT_TIMEOUT_S = 60.0
# Enough of an error body to explain it, not a whole HTML error page.
ERROR_BODY_CHARS = 500


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
) -> Iterator[tuple[HTTPResponse, Span]]:
    """POST `body` as JSON inside an HTTP span; yields the open response (status 2xx)."""
    span = parent.child(f"POST {urlsplit(url).path or '/'}", span_type, inputs=body)
    span.attributes.update({"http.method": "POST", "http.url": url})
    with span:
        data = json.dumps(body).encode()
        request = urllib.request.Request(
            url,
            data=data,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream",
                **(headers or {}),
            },
        )
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            span.attributes["http.status_code"] = exc.code
            detail = _error_detail(exc)
            raise AgentError(f"The agent answered HTTP {exc.code}{detail}", exc.code) from None
        except TimeoutError as exc:
            raise AgentError(f"The agent did not answer within {timeout:g} s.") from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError | socket.timeout):
                raise AgentError(f"The agent did not answer within {timeout:g} s.") from exc
            raise AgentError(f"Could not reach the agent at {url}: {exc.reason}.") from exc
        except (OSError, HTTPException, ValueError) as exc:
            raise AgentError(f"Could not reach the agent at {url}: {exc}.") from exc
        span.attributes["http.status_code"] = response.status
        with response:
            yield response, span


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


def bearer_headers(config: dict[str, Any]) -> dict[str, str]:
    """Authorization from the environment variable named by `api_key_env`: the key itself
    is never stored in the database or shown in pages."""
    env_name = config.get("api_key_env")
    if not env_name:
        return {}
    key = os.environ.get(str(env_name))
    if not key:
        raise AgentError(f"The environment variable {env_name} (the API key) is not set.")
    return {"Authorization": f"Bearer {key}"}
