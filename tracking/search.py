"""The filter language of the trace list: one line of text -> a Django Q object.

    state = ERROR and duration > 2s
    (model = support-agent or tag.env = prod) and not span.type = TOOL
    model = support-agent@champion   # a registered model, its alias or `/3` its version
    time > -1h and "refund"          # a bare word or quoted string searches the previews
    span.attributes.llm.model ~ gpt and tokens >= 1000
    cost > 0.01                      # dollars ($0.01 too); a trace with no known price has none
    state in (OK, IN_PROGRESS)
    state = CANCELLED                # stopped on purpose (OK + spyglass.cancelled); `status` too
    feedback.correct = false and feedback.score > 3    # a trace's valid assessments by name
    expectation.expected_response ~ refund
    session = conv-42 and user = alice   # a conversation's turns (tracking/sessions.py)

Grammar (keywords are case-insensitive; `and` binds tighter than `or`; two terms side by
side are joined by `and`):

    query      := or_expr?
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr (["and"] not_expr)*
    not_expr   := "not" not_expr | "(" or_expr ")" | comparison | text
    comparison := FIELD OP value | FIELD ["not"] "in" "(" value ("," value)* ")"
    text       := WORD | STRING

Parsing is pure (no database); `compile_query` turns the tree into a Q. Every error is a
`SearchError` carrying the 0-based position in the text where the query went wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.db import connection
from django.db.models import Exists, F, OuterRef, Q, TextField
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import HasKey, KeyTextTransform
from django.db.models.functions import Cast
from django.db.models.lookups import Exact, IContains, In

from tracking import assessment_search
from tracking.models import (
    CANCELLED_STATE,
    SHOWN_STATES,
    LoggedModel,
    ModelVersion,
    Span,
    TraceState,
    cancelled_condition,
)

MAX_QUERY_CHARS = 2_000
# Deep nesting would only exhaust Python's stack; no real filter needs this many parentheses.
MAX_DEPTH = 50
OPERATORS = ("=", "!=", ">", ">=", "<", "<=", "~")
_ORDERING_OPERATORS = frozenset({">", ">=", "<", "<="})
_KEYWORDS = frozenset({"and", "or", "not", "in"})
# SQLite's trigram index answers substrings of 3 characters or more.
FTS_MIN_CHARS = 3
FTS_TABLE = "tracking_trace_fts"
# A word in this many previews is common: a page of matches is near the top of the list.
FTS_COMMON = 5_000
MAX_INTEGER = 2**63 - 1

_DURATION_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "min": 60 * 1_000_000_000,
    "h": 3_600 * 1_000_000_000,
}
_RELATIVE_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3_600, "d": 86_400, "w": 604_800}
_NUMBER_WITH_UNIT = re.compile(r"^(\d+(?:\.\d+)?)([a-zµ]*)$", re.IGNORECASE)
_RELATIVE_TIME = re.compile(r"^-(\d+(?:\.\d+)?)([a-z]+)$", re.IGNORECASE)

# Field -> the operators it accepts. Prefixed fields (`tag.<key>` ...) are looked up by prefix.
_TEXT_OPERATORS = frozenset({"=", "!=", "~", "in", "not in"})
_EQUALITY_OPERATORS = frozenset({"=", "!=", "in", "not in"})
_ORDERED_OPERATORS = frozenset({"=", "!=", ">", ">=", "<", "<="})
FIELDS = {
    "state": _EQUALITY_OPERATORS,
    "name": _TEXT_OPERATORS,
    "duration": _ORDERED_OPERATORS,
    "time": _ORDERING_OPERATORS,
    "tokens": _ORDERED_OPERATORS,
    "cost": _ORDERED_OPERATORS,
    "model": _TEXT_OPERATORS,
    # Sessions: the session_id / user_id columns (from `mlflow.trace.session` / `.user`).
    "session": _TEXT_OPERATORS,
    "user": _TEXT_OPERATORS,
    "span.name": _TEXT_OPERATORS,
    "span.type": _TEXT_OPERATORS,
    "span.status": _EQUALITY_OPERATORS,
}
PREFIXED_FIELDS = {
    "tag.": _TEXT_OPERATORS,
    "metadata.": _TEXT_OPERATORS,
    "span.attributes.": _TEXT_OPERATORS,
    # A trace's assessments by name (valid ones: an overridden feedback no longer counts).
    "feedback.": _TEXT_OPERATORS | _ORDERED_OPERATORS,
    "expectation.": _TEXT_OPERATORS | _ORDERED_OPERATORS,
}


class SearchError(ValueError):
    """A query that cannot be parsed or compiled; `position` is 0-based into the text."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at position {position})")
        self.message = message
        self.position = position


# --- Tokens ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # "word", "string", "op", "(", ")", ",", "end"
    value: str
    position: int

    def is_keyword(self, keyword: str) -> bool:
        return self.kind == "word" and self.value.lower() == keyword


_WORD_STOP = set(" \t\r\n()," + "\"'" + "=!<>~")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
        elif char in "(),":
            tokens.append(Token(char, char, i))
            i += 1
        elif char in "=!<>~":
            op = text[i : i + 2] if text[i : i + 2] in ("!=", ">=", "<=") else char
            if op == "!":
                raise SearchError("'!' must be followed by '=' (write != or not)", i)
            tokens.append(Token("op", op, i))
            i += len(op)
        elif char in "\"'":
            value, end = _read_quoted(text, i)
            tokens.append(Token("string", value, i))
            i = end
        else:
            start = i
            parts: list[str] = []
            while i < n and text[i] not in _WORD_STOP and not text[i].isspace():
                if text[i] == "`":  # `tag.`key with spaces``, as MLflow quotes keys
                    value, i = _read_quoted(text, i)
                    parts.append(value)
                else:
                    parts.append(text[i])
                    i += 1
            tokens.append(Token("word", "".join(parts), start))
    tokens.append(Token("end", "", n))
    return tokens


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    """The string opening at `start` (quote char included), unescaped, and the index after it."""
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        elif char == quote:
            return "".join(out), i + 1
        else:
            out.append(char)
            i += 1
    raise SearchError(f"unterminated string: add the closing {quote}", start)


# --- Tree -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    field: str
    op: str  # one of OPERATORS, "in" or "not in"
    values: tuple[str, ...]
    position: int  # of the field
    value_positions: tuple[int, ...]


@dataclass(frozen=True)
class Text:
    value: str
    position: int


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Node, ...]


Node = Comparison | Text | Not | And | Or


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.i]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.token
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return token

    def parse(self) -> Node | None:
        if self.token.kind == "end":
            return None
        node = self.or_expr()
        if self.token.kind != "end":
            raise SearchError(f"unexpected {_describe(self.token)}", self.token.position)
        return node

    def or_expr(self) -> Node:
        operands = [self.and_expr()]
        while self.token.is_keyword("or"):
            self.advance()
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def and_expr(self) -> Node:
        operands = [self.not_expr()]
        while True:
            if self.token.is_keyword("and"):
                self.advance()
            elif not self._starts_term(self.token):
                break
            operands.append(self.not_expr())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def _starts_term(self, token: Token) -> bool:
        if token.kind in ("(", "string"):
            return True
        return token.kind == "word" and not (token.is_keyword("or") or token.is_keyword("and"))

    def not_expr(self) -> Node:
        token = self.token
        if token.is_keyword("not") and not self._is_comparison_start():
            self.advance()
            return Not(self._nested(self.not_expr, token))
        if token.kind == "(":
            self.advance()
            node = self._nested(self.or_expr, token)
            if self.token.kind != ")":
                raise SearchError(
                    f"expected ) to close the ( at position {token.position}, "
                    f"found {_describe(self.token)}",
                    self.token.position,
                )
            self.advance()
            return node
        if token.kind == "string":
            self.advance()
            return Text(token.value, token.position)
        if token.kind == "word":
            if token.value.lower() in _KEYWORDS:
                raise SearchError(f"expected a filter, found '{token.value}'", token.position)
            if self._is_comparison_start():
                return self.comparison()
            self.advance()
            return Text(token.value, token.position)
        raise SearchError(f"expected a filter, found {_describe(token)}", token.position)

    def _nested(self, parse, opener: Token) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise SearchError("too deeply nested", opener.position)
        try:
            return parse()
        finally:
            self.depth -= 1

    def _is_comparison_start(self) -> bool:
        """A word followed by an operator, `in` or `not in` starts a comparison."""
        after = self.peek()
        if after.kind == "op" or after.is_keyword("in"):
            return True
        return after.is_keyword("not") and self.peek(2).is_keyword("in")

    def comparison(self) -> Comparison:
        field_token = self.advance()
        field = _field_name(field_token)
        if self.token.kind == "op":
            op_token = self.advance()
            value = self.token
            if value.kind not in ("word", "string"):
                raise SearchError(
                    f"expected a value after {op_token.value}, found {_describe(value)}",
                    value.position,
                )
            self.advance()
            node = Comparison(
                field, op_token.value, (value.value,), field_token.position, (value.position,)
            )
            op_position = op_token.position
        else:
            op_position = self.token.position
            op = "in"
            if self.token.is_keyword("not"):
                self.advance()
                op = "not in"
            self.advance()  # "in"
            values, positions = self.value_list()
            node = Comparison(field, op, values, field_token.position, positions)
        _check_operator(node, op_position)
        return node

    def value_list(self) -> tuple[tuple[str, ...], tuple[int, ...]]:
        if self.token.kind != "(":
            raise SearchError(
                f"expected ( after in, found {_describe(self.token)}", self.token.position
            )
        self.advance()
        values: list[str] = []
        positions: list[int] = []
        while True:
            token = self.token
            if token.kind not in ("word", "string"):
                raise SearchError(f"expected a value, found {_describe(token)}", token.position)
            values.append(token.value)
            positions.append(token.position)
            self.advance()
            if self.token.kind == ",":
                self.advance()
                continue
            if self.token.kind == ")":
                self.advance()
                return tuple(values), tuple(positions)
            raise SearchError(
                f"expected , or ) in the list, found {_describe(self.token)}",
                self.token.position,
            )


def _describe(token: Token) -> str:
    if token.kind == "end":
        return "the end of the query"
    if token.kind == "string":
        return "a quoted string"
    return f"'{token.value}'"


def _field_name(token: Token) -> str:
    name = token.value
    lowered = name.lower()
    if lowered in FIELDS:
        return lowered
    for prefix in PREFIXED_FIELDS:
        if lowered.startswith(prefix):
            if len(name) == len(prefix):
                raise SearchError(f"{prefix}<key> needs a key", token.position)
            return prefix + name[len(prefix) :]  # keys keep their case
    if lowered == "status":  # MLflow's filters spell the trace's state `trace.status` too
        return "state"
    # MLflow spells these `tags.x`, `attributes.x`; accept its spellings too.
    for alias, prefix in (("tags.", "tag."), ("request_metadata.", "metadata.")):
        if lowered.startswith(alias) and len(name) > len(alias):
            return prefix + name[len(alias) :]
    known = ", ".join([*FIELDS, *(p + "<key>" for p in PREFIXED_FIELDS)])
    raise SearchError(f"unknown field '{name}' (fields: {known})", token.position)


def _check_operator(node: Comparison, position: int) -> None:
    allowed = FIELDS.get(node.field)
    if allowed is None:
        allowed = next(ops for p, ops in PREFIXED_FIELDS.items() if node.field.startswith(p))
    if node.op not in allowed:
        shown = " ".join(op for op in (*OPERATORS, "in", "not in") if op in allowed)
        raise SearchError(f"{node.field} does not take {node.op} (use {shown})", position)


def parse(text: str) -> Node | None:
    """The tree of a query, None for an empty one; SearchError when it is not valid."""
    if len(text) > MAX_QUERY_CHARS:
        raise SearchError(f"the query is longer than {MAX_QUERY_CHARS} characters", 0)
    if "\x00" in text:  # PostgreSQL text cannot hold it: a database error, not a query
        raise SearchError("the query contains a NUL character", text.index("\x00"))
    return _Parser(text).parse()


# --- Compiling to Q -------------------------------------------------------------------------


def compile_query(text: str, now: datetime | None = None) -> Q:
    """A Q for Trace rows matching the query (an empty Q for an empty query)."""
    node = parse(text)
    if node is None:
        return Q()
    return _compile(node, now or datetime.now(UTC))


def _compile(node: Node, now: datetime) -> Q:
    if isinstance(node, And):
        q = Q()
        for operand in node.operands:
            q &= _compile(operand, now)
        return q
    if isinstance(node, Or):
        q = _compile(node.operands[0], now)
        for operand in node.operands[1:]:
            q |= _compile(operand, now)
        return q
    if isinstance(node, Not):
        return ~_compile(node.operand, now)
    if isinstance(node, Text):
        return _text(node.value)
    return _comparison(node, now)


def _text(value: str) -> Q:
    """Free text: either preview contains the value, case-insensitively."""
    contains = Q(request_preview__icontains=value) | Q(response_preview__icontains=value)
    if connection.vendor != "sqlite" or len(value) < FTS_MIN_CHARS:
        # PostgreSQL: UPPER(preview) LIKE is served by the pg_trgm GIN indexes of 0003.
        return contains
    # SQLite: the trigram FTS5 table of migration 0003 finds substrings from its index (a
    # phrase in double quotes is a literal substring). But SQLite's planner then fetches and
    # sorts every match, seconds for a word in 10% of a million previews, where walking the
    # newest-first index with LIKE finds a page in a few hundred rows. So count the matches,
    # up to a bound, and let a common word take the LIKE walk.
    phrase = '"' + value.replace('"', '""') + '"'
    matches = f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM ({matches} LIMIT %s)", [phrase, FTS_COMMON])
        (count,) = cursor.fetchone()
    return contains if count >= FTS_COMMON else Q(pk__in=RawSQL(matches, [phrase]))


def _comparison(node: Comparison, now: datetime) -> Q:
    field, op = node.field, node.op
    if field == "state":
        return _states(op, [_state(v, p) for v, p in _pairs(node)])
    if field == "name":
        return _apply(op, "name", list(node.values))
    if field == "duration":
        return _apply(op, "duration_ns", [_duration_ns(v, p) for v, p in _pairs(node)])
    if field == "tokens":
        return _apply(op, "total_tokens", [_integer(v, p) for v, p in _pairs(node)])
    if field == "cost":
        return _apply(op, "cost", [_dollars(v, p) for v, p in _pairs(node)])
    if field == "time":
        return _apply(op, "request_time", [_time(v, p, now) for v, p in _pairs(node)])
    if field == "model":
        return _model(op, list(node.values))
    if field in _SESSION_COLUMNS:
        return _apply(op, _SESSION_COLUMNS[field], list(node.values))
    if field.startswith("tag."):
        return _json_key(op, "tags", field.removeprefix("tag."), list(node.values))
    if field.startswith("metadata."):
        return _json_key(op, "metadata", field.removeprefix("metadata."), list(node.values))
    if field.startswith(("feedback.", "expectation.")):
        return _assessment(node)
    return _span(node)


def _assessment(node: Comparison) -> Q:
    """`feedback.<name>` / `expectation.<name>`: tracking/assessment_search.py."""
    kind, name = node.field.split(".", 1)
    if node.op in _ORDERING_OPERATORS:
        for value, position in _pairs(node):
            if assessment_search.as_number(value) is None:
                raise SearchError(f"{node.op} compares numbers, found '{value}'", position)
    return assessment_search.traces_matching(kind, name, node.op, list(node.values))


# Each served by its (column, -request_time, -id) index of migration 0019.
_SESSION_COLUMNS = {"session": "session_id", "user": "user_id"}


def _pairs(node: Comparison) -> list[tuple[str, int]]:
    return list(zip(node.values, node.value_positions, strict=True))


_LOOKUPS = {"=": "exact", ">": "gt", ">=": "gte", "<": "lt", "<=": "lte", "~": "icontains"}


def _apply(op: str, column: str, values: list) -> Q:
    if op == "in":
        return Q(**{f"{column}__in": values})
    if op == "not in":
        return ~Q(**{f"{column}__in": values})
    if op == "!=":
        return ~Q(**{column: values[0]})
    return Q(**{f"{column}__{_LOOKUPS[op]}": values[0]})


def _states(op: str, states: list[str]) -> Q:
    """A cancelled trace is stored OK with a tag: `state = CANCELLED` finds those (from their
    partial index) and `state = OK` the others. Other states stay one indexed column test."""
    plain = [s for s in states if s not in (TraceState.OK, CANCELLED_STATE)]
    q = Q(state__in=plain) if len(plain) > 1 else (Q(state=plain[0]) if plain else Q())
    if TraceState.OK in states and CANCELLED_STATE in states:
        q |= Q(state=TraceState.OK)
    elif TraceState.OK in states:
        q |= Q(state=TraceState.OK) & ~cancelled_condition()
    elif CANCELLED_STATE in states:
        q |= cancelled_condition()
    return ~q if op in ("!=", "not in") else q


def _model(op: str, values: list[str]) -> Q:
    """`model` matches a model version id (m-...), the name of a logged model, or a registered
    model as MLflow's `models:/` URIs name it: `support-agent` (every registered version),
    `support-agent@champion`, `support-agent/3`."""
    if op == "~":
        names = LoggedModel.objects.filter(name__icontains=values[0]).values("model_id")
        registered = (
            ModelVersion.objects.filter(registered_model__name__icontains=values[0])
            .exclude(model_id="")
            .values("model_id")
        )
        return Q(model_id__icontains=values[0]) | Q(model_id__in=names) | Q(model_id__in=registered)
    by_name = LoggedModel.objects.filter(name__in=values).values("model_id")
    registered = ModelVersion.objects.referenced(*values).values("model_id")
    q = Q(model_id__in=values) | Q(model_id__in=by_name) | Q(model_id__in=registered)
    return ~q if op in ("!=", "not in") else q


def _json_key(op: str, column: str, key: str, values: list[str]) -> Q:
    """Compare the text of one key of a JSON object; keys may hold dots, so no `tags__a__b`."""
    text = _key_text(key, column)
    # `has_key and ...` keeps the test false, never NULL, for rows without the key, so that
    # `not tag.env = prod` and `tag.env != prod` behave as a reader expects.
    present = Q(HasKey(F(column), key))
    if op == "~":
        return present & Q(IContains(text, values[0]))
    if op in ("in", "not in"):
        match = present & Q(In(text, values))
    else:
        match = present & Q(Exact(text, values[0]))
    if op == "!=":
        return present & ~match
    if op == "not in":
        return ~match
    return match


def _key_text(key: str, column: str) -> Cast:
    # SQLite's ->> answers a JSON number as a number, PostgreSQL's as text: as text on both,
    # `span.attributes.llm.token_count.total = 120` means the same everywhere.
    return Cast(KeyTextTransform(key, column), TextField())


def _span(node: Comparison) -> Q:
    """An EXISTS over the trace's spans; `!=` and `not in` mean no span matches."""
    field, op = node.field, node.op
    values = list(node.values)
    if field == "span.status":
        values = [_span_status(v, p) for v, p in _pairs(node)]
    positive = {"!=": "=", "not in": "in"}.get(op, op)
    spans = Span.objects.filter(trace=OuterRef("pk"))
    if field.startswith("span.attributes."):
        key = field.removeprefix("span.attributes.")
        text = _key_text(key, "attributes")
        lookup = {"=": Exact, "~": IContains, "in": In}[positive]
        value = values if positive == "in" else values[0]
        spans = spans.filter(Q(HasKey(F("attributes"), key)) & Q(lookup(text, value)))
    else:
        column = {"span.name": "name", "span.type": "span_type", "span.status": "status"}[field]
        if field == "span.type":
            values = [v.upper() for v in values]  # MLflow's span types are upper case
        spans = spans.filter(_apply(positive, column, values))
    exists = Exists(spans)
    return ~Q(exists) if op in ("!=", "not in") else Q(exists)


# --- Values ---------------------------------------------------------------------------------


def _state(value: str, position: int) -> str:
    state = value.upper()
    if state not in SHOWN_STATES:
        raise SearchError(f"unknown state '{value}' (states: {', '.join(SHOWN_STATES)})", position)
    return state


def _span_status(value: str, position: int) -> str:
    status = value.upper()
    if status not in ("UNSET", "OK", "ERROR"):
        raise SearchError(f"unknown span status '{value}' (UNSET, OK, ERROR)", position)
    return status


def _integer(value: str, position: int) -> int:
    cleaned = value.replace("_", "")
    if not cleaned.isdigit():
        raise SearchError(f"expected a whole number, found '{value}'", position)
    return _bounded(int(cleaned), value, position)


_DOLLARS = re.compile(r"\$?(\d+(?:\.\d*)?|\.\d+)")


def _dollars(value: str, position: int) -> float:
    match = _DOLLARS.fullmatch(value.replace("_", ""))
    if not match:
        raise SearchError(f"expected an amount of dollars like 0.01, found '{value}'", position)
    return float(match.group(1))


def _bounded(number: int, value: str, position: int) -> int:
    # Both databases store these in 64-bit integers; a larger value would be a database error.
    if number > MAX_INTEGER:
        raise SearchError(f"'{value}' is too large", position)
    return number


def _duration_ns(value: str, position: int) -> int:
    """`2s`, `150ms`, `1.5m`, `300us`; a bare number is milliseconds, as in MLflow."""
    match = _NUMBER_WITH_UNIT.match(value)
    unit = match.group(2).lower() if match else ""
    if not match or (unit and unit not in _DURATION_UNITS_NS):
        raise SearchError(
            f"expected a duration like 2s, 150ms or 1.5m, found '{value}'"
            f" (units: {', '.join(_DURATION_UNITS_NS)})",
            position,
        )
    scale = _DURATION_UNITS_NS[unit or "ms"]
    return _bounded(int(Decimal(match.group(1)) * scale), value, position)


def _time(value: str, position: int, now: datetime) -> datetime:
    """`-1h`, `-30m`, `-7d` (relative to now), `now`, or an ISO date/time (UTC unless given)."""
    if value.lower() == "now":
        return now
    relative = _RELATIVE_TIME.match(value)
    if relative:
        unit = relative.group(2).lower()
        if unit not in _RELATIVE_UNITS:
            raise SearchError(
                f"unknown time unit '{unit}' (units: {', '.join(_RELATIVE_UNITS)})", position
            )
        try:
            seconds = Decimal(relative.group(1)) * _RELATIVE_UNITS[unit]
            return now - timedelta(seconds=float(seconds))
        except (InvalidOperation, OverflowError):
            raise SearchError(f"time '{value}' is out of range", position) from None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise SearchError(
            f"expected a time like -1h, -7d or 2025-06-01T12:00, found '{value}'", position
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- Writing queries back (the quick filters) -----------------------------------------------

_BARE = re.compile(r"[^\s(),\"'=!<>~`]+")


def quote(value: str) -> str:
    """A value as the tokenizer reads it back: bare when it can be, else double-quoted."""
    if _BARE.fullmatch(value) and value.lower() not in _KEYWORDS:
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _quote_field(field: str) -> str:
    for prefix in PREFIXED_FIELDS:
        if field.startswith(prefix):
            key = field.removeprefix(prefix)
            return prefix + (key if _BARE.fullmatch(key) else f"`{key}`")
    return field


def clause(field: str, op: str, value: str) -> str:
    return f"{_quote_field(field)} {op} {quote(value)}"


def unparse(node: Node) -> str:
    """Query text that parses back to the same tree."""
    if isinstance(node, Text):
        return quote(node.value)
    if isinstance(node, Comparison):
        if node.op in ("in", "not in"):
            values = ", ".join(quote(v) for v in node.values)
            return f"{_quote_field(node.field)} {node.op} ({values})"
        return clause(node.field, node.op, node.values[0])
    if isinstance(node, Not):
        inner = unparse(node.operand)
        return f"not ({inner})" if isinstance(node.operand, And | Or) else f"not {inner}"
    if isinstance(node, And):
        return " and ".join(
            f"({unparse(n)})" if isinstance(n, Or) else unparse(n) for n in node.operands
        )
    return " or ".join(unparse(n) for n in node.operands)


def top_level_clauses(query: str) -> set[tuple[str, str]]:
    """(field, canonical text) of the comparisons `and`-ed at the top of a query."""
    try:
        node = parse(query)
    except SearchError:
        return set()
    operands = node.operands if isinstance(node, And) else ((node,) if node else ())
    return {(n.field, unparse(n)) for n in operands if isinstance(n, Comparison)}


def with_clause(query: str, field: str, new_clause: str) -> str:
    """`query` with its top-level comparisons on `field` replaced by `new_clause` (or dropped
    when it is empty). Other terms are kept; an invalid query is replaced."""
    try:
        node = parse(query)
    except SearchError:
        node = None
    operands = node.operands if isinstance(node, And) else ((node,) if node else ())
    kept = [n for n in operands if not (isinstance(n, Comparison) and n.field == field)]
    text = unparse(And(tuple(kept))) if len(kept) > 1 else (unparse(kept[0]) if kept else "")
    if isinstance(node, Or) and kept:
        text = f"({text})"
    return " and ".join(part for part in (text, new_clause) if part)
