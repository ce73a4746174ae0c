"""Bounded pages and opaque page tokens for the MLflow list endpoints.

The client asks for large pages (10,000 runs, 25,000 metric values) and then follows
`next_page_token` until it has what it wanted, so a page may be smaller than asked: every
endpoint caps its page size and hands out a token for the rest. A token is the offset of the
next row, base64-encoded; clients treat it as opaque and send it back unchanged.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, TypeVar

import orjson
from django.db.models import QuerySet

from tracking.mlflow_api.errors import invalid
from tracking.mlflow_api.requests import Message

T = TypeVar("T")

MAX_OFFSET = 10_000_000


def page_size(requested: int | None, *, default: int, maximum: int) -> int:
    if requested is None or requested == 0:
        return default
    return min(requested, maximum)


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"offset": offset})).decode()


def decode_token(token: str) -> int:
    if not token:
        return 0
    try:
        offset = orjson.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (binascii.Error, ValueError, TypeError, KeyError, orjson.JSONDecodeError):
        raise invalid(f"Invalid page token {token!r}.") from None
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= MAX_OFFSET:
        raise invalid(f"Invalid page token {token!r}.")
    return offset


def page(queryset: QuerySet[T], token: str, size: int) -> tuple[list[T], str | None]:
    """One page of an ordered queryset and the token of the next, in one query."""
    offset = decode_token(token)
    rows = list(queryset[offset : offset + size + 1])
    if len(rows) > size:
        return rows[:size], encode_token(offset + size)
    return rows, None


def requested_page(
    queryset: QuerySet[T], message: Message, default: int, maximum: int
) -> tuple[list[T], str | None]:
    """The page a search message asks for (`max_results`, `page_token`), capped at `maximum`."""
    size = page_size(message.integer("max_results"), default=default, maximum=maximum)
    return page(queryset, message.string("page_token"), size)


def listing(name: str, items: list[dict[str, Any]], token: str | None) -> dict[str, Any]:
    """A list response; `next_page_token` only when there is a next page."""
    data: dict[str, Any] = {name: items}
    if token:
        data["next_page_token"] = token
    return data
