"""`feedback.<name>` and `expectation.<name>` of the trace list's query language: which
traces hold a valid assessment of that name whose value compares as asked.

    feedback.correct = false         # a pass/fail (JSON boolean)
    feedback.score >= 4              # a number; ordering needs a number
    feedback.tone = friendly         # a label or text (exact), `~` contains
    expectation.expected_response ~ refund
    feedback.correct != true         # has a `correct`, and none of them is true

A value is JSON (Assessment.value): the comparison follows its JSON type, so `= 4` matches
the number 4 (or 4.0) and the text "4", `= true` the boolean only. Written once per database
(SQLite's json_type/json_extract, PostgreSQL's jsonb_typeof/#>>) as Func expressions, so
Django relabels the columns inside the `pk IN (subquery)`. The subquery is served by
assessment_name_idx (name, kind, trace): a name's assessments, not every trace's.
"""

from __future__ import annotations

from typing import Any

from django.db.models import CharField, F, FloatField, Func, Q, QuerySet
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    IContains,
    LessThan,
    LessThanOrEqual,
)

from tracking.models import Assessment

ORDERING = {">": GreaterThan, ">=": GreaterThanOrEqual, "<": LessThan, "<=": LessThanOrEqual}


class JsonKind(Func):
    """'true', 'false', 'number', 'string', 'null', 'object' or 'array' on both databases."""

    output_field = CharField()
    arity = 1

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        template = (
            "CASE json_type(%(expressions)s) WHEN 'integer' THEN 'number' WHEN 'real' THEN "
            "'number' WHEN 'text' THEN 'string' ELSE json_type(%(expressions)s) END"
        )
        return self.as_sql(compiler, connection, template=template)

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        template = (
            "CASE jsonb_typeof(%(expressions)s) WHEN 'boolean' THEN (%(expressions)s #>> '{}')"
            " ELSE jsonb_typeof(%(expressions)s) END"
        )
        return self.as_sql(compiler, connection, template=template)


class JsonText(Func):
    """A JSON string's text (other types: their JSON text, never compared as strings)."""

    output_field = CharField()
    arity = 1

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        return self.as_sql(compiler, connection, template="json_extract(%(expressions)s, '$')")

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        return self.as_sql(compiler, connection, template="(%(expressions)s #>> '{}')")


class JsonNumber(Func):
    """A JSON number as a double; NULL for anything else (never a cast error)."""

    output_field = FloatField()
    arity = 1

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        template = (
            "CASE WHEN json_type(%(expressions)s) IN ('integer', 'real') "
            "THEN json_extract(%(expressions)s, '$') END"
        )
        return self.as_sql(compiler, connection, template=template)

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        template = (
            "CASE WHEN jsonb_typeof(%(expressions)s) = 'number' "
            "THEN (%(expressions)s #>> '{}')::double precision END"
        )
        return self.as_sql(compiler, connection, template=template)


def as_number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None


def _equals(literal: str) -> Q:
    kind, value = JsonKind(F("value")), F("value")
    if literal.lower() in ("true", "false"):
        return Q(Exact(kind, literal.lower()))
    text = Q(Exact(kind, "string")) & Q(Exact(JsonText(value), literal))
    number = as_number(literal)
    if number is None:
        return text
    return text | Q(Exact(JsonNumber(value), number))


def _value_condition(op: str, values: list[str]) -> Q:
    if op in ("=", "!="):
        return _equals(values[0])
    if op in ("in", "not in"):
        q = Q()
        for value in values:
            q |= _equals(value)
        return q
    if op == "~":
        value = F("value")
        return Q(Exact(JsonKind(value), "string")) & Q(IContains(JsonText(value), values[0]))
    number = as_number(values[0])
    if number is None:  # search.py refuses this before; a non-number never orders
        raise ValueError(f"{op} needs a number")
    return Q(ORDERING[op](JsonNumber(F("value")), number))


def named(kind: str, name: str) -> QuerySet[Assessment]:
    return Assessment.objects.filter(name=name, kind=kind, valid=True)


def traces_matching(kind: str, name: str, op: str, values: list[str]) -> Q:
    """A Q on Trace: a valid `kind` assessment named `name` compares as asked. `!=` and
    `not in` mean the trace has one of that name and none of them matches."""
    negative = op in ("!=", "not in")
    matching = named(kind, name).filter(_value_condition(op, values)).values("trace_id")
    if not negative:
        return Q(pk__in=matching)
    return Q(pk__in=named(kind, name).values("trace_id")) & ~Q(pk__in=matching)
