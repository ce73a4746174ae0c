"""Queries the pages share. Every one is bounded: capped counts and one aggregate query per
page for related values, never a query per row."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import F, Q, QuerySet

from tracking.models import LoggedModel, Trace

RECENT_TRACES = 20
# Counting every row of a large table is slow on PostgreSQL; past this, pages say "N+".
COUNT_CAP = 100_000
# Trace columns that lists never show; some (metadata, tags) can be large JSON objects.
_LIST_DEFERRED = ("metadata", "tags", "response_preview")


def capped_count(queryset: QuerySet, cap: int = COUNT_CAP) -> tuple[int, bool]:
    """Count at most `cap` rows; returns (count, True) when there are more."""
    count = queryset.order_by()[: cap + 1].count()
    return min(count, cap), count > cap


def traces_for_list() -> QuerySet[Trace]:
    return Trace.objects.for_list().defer(*_LIST_DEFERRED)


def with_model_names(
    traces: Sequence[Trace], models: QuerySet[LoggedModel] | None = None
) -> Sequence[Trace]:
    """Set `model_name` on each trace from its logged model, in one query for all of them.
    `models`: the versions the caller may read (`Access.readable`); others stay nameless."""
    ids = {t.model_id for t in traces if t.model_id}
    models = LoggedModel.objects.all() if models is None else models
    names = dict(models.filter(model_id__in=ids).values_list("model_id", "name") if ids else ())
    for trace in traces:
        trace.model_name = names.get(trace.model_id, "")
    return traces


# --- The trace list: sorts and keyset cursors -------------------------------------------------

# Sort key in the URL -> the column it orders by. Every order ends on the primary key, so that
# rows with equal values have one order and a cursor can point between them.
SORT_COLUMNS = {"time": "request_time", "duration": "duration_ns", "tokens": "total_tokens"}
DEFAULT_SORT = "-time"
_CURSOR_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_NULL = "null"


@dataclass(frozen=True)
class Sort:
    key: str  # time, duration, tokens
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

    def order_by(self) -> list:
        if self.key == "time":  # never null: the plain order that trace_time_idx serves
            return ["-request_time", "-pk"] if self.descending else ["request_time", "pk"]
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

    def parse_cursor(self, cursor: str) -> tuple[datetime | int | None, int]:
        """`<value>|<pk>` -> (value, pk); ValueError when malformed."""
        text, _, pk_text = cursor.rpartition("|")
        pk = int(pk_text)
        if self.key == "time":
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                raise ValueError("cursor time needs a time zone")
            return moment, pk
        return (None if text == _NULL else int(text)), pk

    def after(self, cursor: str) -> Q:
        """Rows after `cursor` in this order; ValueError when malformed."""
        value, pk = self.parse_cursor(cursor)
        column = self.column
        later = "lt" if self.descending else "gt"
        null = Q(**{f"{column}__isnull": True})
        if value is None:  # among the nulls: last when descending, first when ascending
            same_null = null & Q(**{f"pk__{later}": pk})
            return same_null if self.descending else same_null | ~null
        past_value = Q(**{f"{column}__{later}": value}) | Q(**{column: value, f"pk__{later}": pk})
        if self.key == "time":
            # The redundant bound gives both databases an index range to start from; an
            # OR alone may make them walk the index from the newest row (deep pages).
            bound = "lte" if self.descending else "gte"
            return Q(**{f"{column}__{bound}": value}) & past_value
        return past_value | null if self.descending else past_value


def keyset_page(
    traces: QuerySet[Trace], sort: Sort, cursor: str, size: int
) -> tuple[list[Trace], str | None]:
    """A page of `traces` after `cursor` in `sort` order, and the cursor of the next page.

    No OFFSET and no COUNT: one row more than a page tells whether a next page exists.
    Raises ValueError for a malformed cursor.
    """
    traces = traces.order_by(*sort.order_by())
    if cursor:
        traces = traces.filter(sort.after(cursor))
    page = list(traces[: size + 1])
    if len(page) <= size:
        return page, None
    page = page[:size]
    return page, sort.format_cursor(page[-1])


def newer_traces(traces: QuerySet[Trace], cursor: str, size: int) -> tuple[list[Trace], bool]:
    """Traces newer than `cursor` (newest first, at most `size`), and whether more exist.

    The live list polls with the cursor of its top row; new traces get larger primary keys,
    so one with the same request time as the top row is still found.
    """
    newest_first = Sort("time", True)
    moment, pk = newest_first.parse_cursor(cursor)
    traces = traces.filter(
        Q(request_time__gte=moment) & (Q(request_time__gt=moment) | Q(pk__gt=pk))
    ).order_by(*newest_first.order_by())
    rows = list(traces[: size + 1])
    return rows[:size], len(rows) > size
