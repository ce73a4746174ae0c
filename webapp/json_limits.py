"""JSON from clients, parsed under a depth limit; and JSON text of any value, however deep.

Every API that reads a JSON body parses it here: the MLflow API (`json_body`), the native
API (its DRF parser) and OTLP/JSON. Sizes are limited before a body is read
(webapp/limits.py, DATA_UPLOAD_MAX_MEMORY_SIZE); depth is limited while it is parsed. A body
nested a few thousand levels deep is only a few kilobytes, yet Python's json module,
protobuf's json_format and every later reader of a stored value recurse once per level and
fail with RecursionError (a 500) past about a thousand. No client nests its messages deeply:
MLflow's deepest request holds about 6 levels, an OTLP span attribute about 12; MAX_DEPTH
leaves room for user values inside them (assessment values, span attributes).

The check costs no pass of its own: orjson refuses documents nested deeper than 1024 levels,
in C, while it parses; wrapping the body in `1024 - limit` one-element arrays makes that same
check enforce `limit`. Only Python's json, used for the rare body that orjson refuses because
it holds NaN or Infinity (which Python's json.dumps writes for float metrics), is checked by a
walk over the parsed value.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

MAX_DEPTH = 64
# orjson refuses deeper documents (its documentation: "recurses 1024 levels deep"); a test
# pins the exact figure, which `loads` depends on.
ORJSON_MAX_DEPTH = 1024
_NON_FINITE_TOKENS = (b"NaN", b"Infinity")


class JsonError(ValueError):
    """A body that is not JSON or is over a limit. `message` completes "The body is ...",
    and is safe to show to the client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def too_deep_message(max_depth: int = MAX_DEPTH) -> str:
    return f"JSON nested deeper than {max_depth} levels, which is refused"


def loads(body: bytes, *, max_depth: int = MAX_DEPTH, allow_nan: bool = False) -> Any:
    """Parse `body` (UTF-8 JSON text), refusing values nested deeper than `max_depth`.

    `allow_nan` also accepts NaN and Infinity, as Python's json writes them. Raises JsonError
    with a message that names the problem: the depth limit, or where the text is invalid.
    """
    if not 0 < max_depth <= ORJSON_MAX_DEPTH:
        raise ValueError(f"max_depth must be from 1 to {ORJSON_MAX_DEPTH}")
    if not body.strip():
        raise JsonError("empty, not JSON")
    pad = ORJSON_MAX_DEPTH - max_depth
    try:
        value = orjson.loads(b"[" * pad + body + b"]" * pad)
    except orjson.JSONDecodeError as exc:
        if exc.msg.startswith("depth limit"):
            raise JsonError(too_deep_message(max_depth)) from None
        if allow_nan and any(token in body for token in _NON_FINITE_TOKENS):
            return _loads_with_nan(body, max_depth)
        raise JsonError(f"not valid JSON: {exc.msg} at character {max(exc.pos - pad, 0)}") from None
    for _ in range(pad):
        # Each level is our one-element array, unless the body itself was not one value
        # (`1, 2` or `1], [2` parse once wrapped).
        if len(value) != 1:
            raise JsonError("not valid JSON: it holds more than one value")
        value = value[0]
    return value


def _loads_with_nan(body: bytes, max_depth: int) -> Any:
    try:
        value = json.loads(body)
    except RecursionError:
        raise JsonError(too_deep_message(max_depth)) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise JsonError(f"not valid JSON: {exc}") from None
    if deeper_than(value, max_depth):
        raise JsonError(too_deep_message(max_depth))
    return value


def deeper_than(value: Any, max_depth: int) -> bool:
    """Whether objects and arrays in `value` nest more than `max_depth` levels (a loop, so
    any depth is measured without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


# --- JSON text of anything -----------------------------------------------------------------


class _Raw(str):
    """Punctuation queued by `text_of`, written as is."""


def text_of(value: Any) -> str:
    """JSON text of `value` whatever it holds: nesting deeper than orjson writes (255 levels),
    integers past 64 bits, unpaired surrogates (as U+FFFD) and non-JSON types (as their
    `str`). A loop with its own stack, not recursion, so no depth is too deep.

    For values that orjson refuses; kept out of the common path, which orjson serves.
    """
    parts: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if type(item) is _Raw:
            parts.append(item)
        elif isinstance(item, dict):
            parts.append("{")
            stack.append(_Raw("}"))
            entries = list(item.items())
            for i in range(len(entries) - 1, -1, -1):
                key, child = entries[i]
                stack.append(child)
                stack.append(_Raw(("," if i else "") + _string(str(key)) + ":"))
        elif isinstance(item, list | tuple):
            parts.append("[")
            stack.append(_Raw("]"))
            for i in range(len(item) - 1, -1, -1):
                stack.append(item[i])
                if i:
                    stack.append(_Raw(","))
        elif isinstance(item, str):
            parts.append(_string(item))
        elif item is None or isinstance(item, bool):
            parts.append({None: "null", True: "true", False: "false"}[item])
        elif isinstance(item, int):
            parts.append(str(item))
        elif isinstance(item, float):
            parts.append(repr(item) if math.isfinite(item) else "null")  # as orjson writes
        else:
            parts.append(_string(str(item)))
    return "".join(parts)


def _string(text: str) -> str:
    try:
        return orjson.dumps(text).decode()
    except orjson.JSONEncodeError:  # unpaired surrogates, which UTF-8 cannot hold
        repaired = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return orjson.dumps(repaired).decode()
