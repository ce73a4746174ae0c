"""Keyset pagination: a page starts after the last row shown, `WHERE (a, b) < (:a, :b)
ORDER BY a, b`, so any page is one index range scan: no OFFSET and no COUNT, and one row more
than a page tells whether a next page exists.

Every order ends on the primary key, so that rows with equal values have one order and a
cursor can point between them. Two cursor formats use it: the trace list page's `value|pk`
(Sort below, in its `?before=`/`?after=` links) and the native API's opaque `cursor`
(tracking/api.py's KeysetPagination, which carries every ordering value).

The MLflow endpoints page by offset instead (mlflow_api/pages.py): their clients order by any
column or JSON key they like, where no index could serve a keyset.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from django.db.models import F, Model, Q, QuerySet

from tracking.models import Trace

M = TypeVar("M", bound=Model)


def reverse_order(name: str) -> str:
    """`-a` <-> `a`: the same order walked the other way (a `previous` page)."""
    return name[1:] if name.startswith("-") else f"-{name}"


def beyond(ordering: Sequence[str], position: Sequence[Any]) -> Q:
    """Rows strictly after `position` in `ordering` (column names, `-` for descending):
    `a > x OR (a = x AND b > y)`, direction by direction."""
    condition: Q | None = None
    for name, value in reversed(list(zip(ordering, position, strict=True))):
        column = name.lstrip("-")
        past = Q(**{f"{column}__{'lt' if name.startswith('-') else 'gt'}": value})
        condition = past if condition is None else past | (Q(**{column: value}) & condition)
    assert condition is not None
    return condition


def after(ordering: Sequence[str], position: Sequence[Any]) -> Q:
    """`beyond()` with a redundant first term: `a >= x AND (a > x OR (a = x AND b > y))`.

    The redundant term is what makes it a keyset: the database turns it into an index range
    condition and starts reading at the cursor; without it, PostgreSQL (and SQLite on deep
    pages) reads the index from the top and filters, which costs as much as an OFFSET.
    """
    first = ordering[0]
    bound = Q(**{f"{first.lstrip('-')}__{'lte' if first.startswith('-') else 'gte'}": position[0]})
    return bound & beyond(ordering, position)


def page(
    queryset: QuerySet[M], order_by: Sequence[Any], condition: Q | None, size: int
) -> tuple[list[M], bool]:
    """Up to `size` rows of `queryset` in `order_by` order that meet `condition` (the cursor's
    `after()`, None for the first page), and whether more follow."""
    if condition is not None:
        queryset = queryset.filter(condition)
    rows = list(queryset.order_by(*order_by)[: size + 1])
    return rows[:size], len(rows) > size


# --- The trace list page: sorts and `value|pk` cursors ---------------------------------------

# Sort key in the URL -> the column it orders by.
SORT_COLUMNS = {
    "time": "request_time",
    "duration": "duration_ns",
    "tokens": "total_tokens",
    "cost": "cost",
}
DEFAULT_SORT = "-time"
_CURSOR_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_NULL = "null"


@dataclass(frozen=True)
class Sort:
    key: str  # time, duration, tokens, cost
    descending: bool

    @classmethod
    def parse(cls, value: str) -> Sort:
        """`-time`, `duration`, ...; anything unknown is the default, newest first."""
        key = value.removeprefix("-")
        if key not in SORT_COLUMNS:
            return cls("time", True)
        return cls(key, value.startswith("-"))

    def __str__(self) -> str:
        return f"-{self.key}" if self.descending else self.key

    @property
    def column(self) -> str:
        return SORT_COLUMNS[self.key]

    @property
    def ordering(self) -> list[str]:
        return [f"-{self.column}", "-pk"] if self.descending else [self.column, "pk"]

    def order_by(self) -> list:
        if self.key == "time":  # never null: the plain order that trace_time_idx serves
            return self.ordering
        # Unknown (null) values sort below every value, as SQLite stores them: one index
        # per column serves both directions (on PostgreSQL, the NULLS FIRST ones of 0004).
        column = F(self.column)
        if self.descending:
            return [column.desc(nulls_last=True), F("pk").desc()]
        return [column.asc(nulls_first=True), F("pk").asc()]

    def format_cursor(self, trace: Trace) -> str:
        value = getattr(trace, self.column)
        if value is None:
            text = _NULL
        elif isinstance(value, datetime):
            # UTC with a "Z": no "+" that a hand-edited query string would turn into a space.
            text = value.astimezone(UTC).strftime(_CURSOR_TIME_FORMAT)
        else:
            text = str(value)
        return f"{text}|{trace.pk}"

    def parse_cursor(self, cursor: str) -> tuple[datetime | float | None, int]:
        """`<value>|<pk>` -> (value, pk); ValueError when malformed."""
        text, _, pk_text = cursor.rpartition("|")
        pk = int(pk_text)
        if self.key == "time":
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                raise ValueError("cursor time needs a time zone")
            return moment, pk
        if text == _NULL:
            return None, pk
        if self.key == "cost":  # dollars; str() of a float reads back as the same float
            value = float(text)
            if not math.isfinite(value):
                raise ValueError("cursor cost must be a number")
            return value, pk
        return int(text), pk

    def after(self, cursor: str) -> Q:
        """Rows after `cursor` in this order; ValueError when malformed."""
        value, pk = self.parse_cursor(cursor)
        if self.key == "time":
            return after(self.ordering, [value, pk])
        later = "lt" if self.descending else "gt"
        null = Q(**{f"{self.column}__isnull": True})
        if value is None:  # among the nulls: last when descending, first when ascending
            same_null = null & Q(**{f"pk__{later}": pk})
            return same_null if self.descending else same_null | ~null
        # No range bound here: the nulls after the values would fall outside it.
        past_value = beyond(self.ordering, [value, pk])
        return past_value | null if self.descending else past_value

    def page(
        self, traces: QuerySet[Trace], cursor: str, size: int
    ) -> tuple[list[Trace], str | None]:
        """A page of `traces` after `cursor` in this order, and the cursor of the next page.
        Raises ValueError for a malformed cursor."""
        rows, more = page(traces, self.order_by(), self.after(cursor) if cursor else None, size)
        return rows, self.format_cursor(rows[-1]) if more else None


NEWEST_FIRST = Sort("time", True)


def newer_traces(traces: QuerySet[Trace], cursor: str, size: int) -> tuple[list[Trace], bool]:
    """Traces newer than `cursor` (newest first, at most `size`), and whether more exist.

    The live list polls with the cursor of its top row; new traces get larger primary keys,
    so one with the same request time as the top row is still found.
    """
    moment, pk = NEWEST_FIRST.parse_cursor(cursor)
    newer = after([reverse_order(name) for name in NEWEST_FIRST.ordering], [moment, pk])
    return page(traces, NEWEST_FIRST.order_by(), newer, size)
