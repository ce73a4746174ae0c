"""The filter and order-by strings of MLflow's search calls, as Django Q objects and orderings.

The MLflow API compiles its search filters here, and the model list page its search box: one
language for both. A bad string raises FilterError; the API answers it as a 400
INVALID_PARAMETER_VALUE (mlflow_api/errors.py), the page shows its message.

Filters are comparisons joined by AND (OR is not part of MLflow's language):

    request_metadata.`mlflow.modelId` = 'm-...' AND trace.status = 'OK'
    name='agent-v2'        params.p1 = '1'        metrics.m > 0.5
    model = 'support-agent@champion'              (logged models: a registered model's versions)
    tags.`mlflow.traceName` LIKE 'chat%'          attributes.status IN ('FINISHED', 'FAILED')

An identifier is `prefix.key` or a bare attribute name; keys with dots or other punctuation
are quoted with back-ticks or double quotes. Values are 'single-quoted' (or "double-quoted")
strings, numbers, or (lists) for IN. Parsing is shared; each searchable entity maps
identifiers onto its columns. Anything that does not parse or names an unknown field is a
FilterError that says what and where.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import (
    Exists,
    Expression,
    F,
    OrderBy,
    OuterRef,
    Q,
    Subquery,
    lookups,
)
from django.db.models.fields.json import KeyTextTransform

from tracking.models import Metric, ModelVersion, Run, Span

MAX_FILTER_LENGTH = 10_000
MAX_COMPARISONS = 50
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class FilterError(ValueError):
    """A filter or order-by string that does not parse or names an unknown field."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_PREFIXES = {
    "attribute": "attribute",
    "attributes": "attribute",
    "attr": "attribute",
    "run": "attribute",
    "trace": "attribute",
    "tag": "tag",
    "tags": "tag",
    "param": "param",
    "params": "param",
    "parameter": "param",
    "parameters": "param",
    "metric": "metric",
    "metrics": "metric",
    "metadata": "metadata",
    "request_metadata": "metadata",
    "span": "span",
}

_TOKEN_RE = re.compile(
    r"""\s*(?:
      (?P<backtick>`[^`]*`)
    | (?P<string>'(?:[^'\\]|\\.|'')*')
    | (?P<dstring>"(?:[^"\\]|\\.)*")
    | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![A-Za-z_]))
    | (?P<op><=|>=|!=|<>|==|=|<|>)
    | (?P<word>[A-Za-z_][A-Za-z0-9_\-]*)
    | (?P<punct>[.(),])
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Comparison:
    prefix: str  # attribute | tag | param | metric | metadata | span
    key: str
    op: str  # = != < <= > >= LIKE ILIKE IN "NOT IN"
    value: Any  # str, float, or a tuple of them for IN


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    at: int


def _tokenize(text: str) -> list[_Token]:
    tokens = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN_RE.match(text, position)
        if not match or match.end() == position:
            raise FilterError(f"Invalid filter {text!r}: unexpected character at {position + 1}.")
        kind = match.lastgroup or ""
        tokens.append(_Token(kind, match.group(kind), match.start(kind)))
        position = match.end()
    return tokens


def _unquote(token: _Token) -> str:
    body = token.text[1:-1]
    if token.kind == "string":
        return re.sub(r"\\(.)", r"\1", body.replace("''", "'"))
    if token.kind == "dstring":
        return re.sub(r"\\(.)", r"\1", body)
    return body


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def error(self, message: str) -> Exception:
        token = self.peek()
        where = f"at {token.at + 1}" if token else "at the end"
        return FilterError(f"Invalid filter {self.text!r}: {message} {where}.")

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise self.error("unexpected end")
        self.i += 1
        return token

    def word_is(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "word" and token.text.upper() in words

    def identifier(self) -> tuple[str, str]:
        """(prefix, key) of `prefix.key`, `prefix.`quoted key``, or a bare attribute."""
        parts = [self._identifier_part()]
        while (token := self.peek()) is not None and token.text == ".":
            self.i += 1
            parts.append(self._identifier_part())
        if len(parts) == 1:
            return "attribute", parts[0]
        prefix = _PREFIXES.get(parts[0].lower())
        if prefix is None:
            raise FilterError(
                f"Invalid filter {self.text!r}: unknown prefix {parts[0]!r}; expected one of "
                "attributes, tags, params, metrics, metadata."
            )
        return prefix, ".".join(parts[1:])

    def _identifier_part(self) -> str:
        token = self.take()
        if token.kind == "word":
            return token.text
        if token.kind in ("backtick", "dstring"):
            return _unquote(token)
        self.i -= 1
        raise self.error("expected a field name")

    def comparator(self) -> str:
        token = self.take()
        if token.kind == "op":
            return {"==": "=", "<>": "!="}.get(token.text, token.text)
        if token.kind == "word":
            word = token.text.upper()
            if word in ("LIKE", "ILIKE", "IN"):
                return word
            if word == "NOT" and self.word_is("IN", "LIKE", "ILIKE"):
                return "NOT " + self.take().text.upper()
        self.i -= 1
        raise self.error("expected a comparator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN)")

    def value(self) -> Any:
        token = self.take()
        if token.kind in ("string", "dstring"):
            return _unquote(token)
        if token.kind == "number":
            return float(token.text)
        if token.text == "(":
            values = [self.value()]
            while (token := self.take()).text == ",":
                values.append(self.value())
            if token.text != ")":
                self.i -= 1
                raise self.error("expected ')'")
            return tuple(values)
        self.i -= 1
        raise self.error("expected a 'quoted string', a number or a (list)")

    def comparisons(self) -> list[Comparison]:
        result = []
        while True:
            prefix, key = self.identifier()
            op = self.comparator()
            value = self.value()
            if (op in ("IN", "NOT IN")) != isinstance(value, tuple):
                raise FilterError(
                    f"Invalid filter {self.text!r}: IN takes a (list) and other comparators "
                    "a single value."
                )
            result.append(Comparison(prefix, key, op, value))
            if self.peek() is None:
                return result
            if self.word_is("OR"):
                raise self.error("OR is not supported; join comparisons with AND")
            if not self.word_is("AND"):
                raise self.error("expected AND")
            self.i += 1
            if len(result) >= MAX_COMPARISONS:
                raise FilterError(f"Invalid filter: at most {MAX_COMPARISONS} comparisons.")


def parse(text: str | None) -> list[Comparison]:
    if not text or not text.strip():
        return []
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterError(f"The filter is longer than {MAX_FILTER_LENGTH} characters.")
    return _Parser(text).comparisons()


def parse_order(text: str) -> tuple[str, str, bool]:
    """`prefix.key [ASC|DESC]` -> (prefix, key, ascending)."""
    parser = _Parser(text)
    prefix, key = parser.identifier()
    ascending = True
    if parser.word_is("ASC", "DESC"):
        ascending = parser.take().text.upper() == "ASC"
    if parser.peek() is not None:
        raise FilterError(f"Invalid order_by clause {text!r}: expected 'field [ASC|DESC]'.")
    return prefix, key, ascending


# --- Comparisons as SQL --------------------------------------------------------------------


def _like_regex(pattern: str) -> str:
    """SQL LIKE (% and _ wildcards) as an anchored regular expression."""
    parts = []
    for char in pattern:
        parts.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
    return "^" + "".join(parts) + "$"


_LOOKUPS: dict[str, type[lookups.Lookup]] = {
    "=": lookups.Exact,
    "<": lookups.LessThan,
    "<=": lookups.LessThanOrEqual,
    ">": lookups.GreaterThan,
    ">=": lookups.GreaterThanOrEqual,
}


def compare(lhs: Expression | F, op: str, value: Any) -> Q:
    """`lhs op value` as a Q. A row where lhs is NULL (e.g. a tag it does not have) matches
    no comparison, not even !=, as in MLflow."""
    if op in _LOOKUPS:
        return Q(_LOOKUPS[op](lhs, value))
    if op == "!=":
        return Q(lookups.IsNull(lhs, False)) & ~Q(lookups.Exact(lhs, value))
    if op in ("LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE"):
        if not isinstance(value, str):
            raise FilterError(f"{op} needs a 'quoted string' pattern.")
        lookup = lookups.IRegex if "ILIKE" in op else lookups.Regex
        matched = Q(lookup(lhs, _like_regex(value)))
        return Q(lookups.IsNull(lhs, False)) & ~matched if op.startswith("NOT") else matched
    if op == "IN":
        return Q(lookups.In(lhs, list(value)))
    if op == "NOT IN":
        return Q(lookups.IsNull(lhs, False)) & ~Q(lookups.In(lhs, list(value)))
    raise FilterError(f"Unsupported comparator {op}.")  # pragma: no cover - the parser refuses it


# How a searchable attribute reads its value: converters turn the filter's value into the
# column's type (and reject what cannot be one).


def as_text(value: Any, where: str) -> Any:
    if isinstance(value, tuple):
        return tuple(as_text(v, where) for v in value)
    if not isinstance(value, str):
        raise FilterError(f"{where} is compared with a 'quoted string', got {value!r}.")
    return value


def as_number(value: Any, where: str) -> Any:
    if isinstance(value, tuple):
        return tuple(as_number(v, where) for v in value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise FilterError(f"{where} is compared with a number, got {value!r}.")
    return number


def as_time_ms(value: Any, where: str) -> Any:
    """Epoch milliseconds (a number, or a string of one) as a datetime."""
    if isinstance(value, tuple):
        return tuple(as_time_ms(v, where) for v in value)
    number = as_number(value, where)
    try:
        return _EPOCH + timedelta(milliseconds=int(number))
    except (OverflowError, ValueError):
        raise FilterError(f"{where} is out of range: {value!r}.") from None


def as_duration_ns(value: Any, where: str) -> Any:
    """Milliseconds (as filters spell durations) in nanoseconds (as traces store them)."""
    if isinstance(value, tuple):
        return tuple(as_duration_ns(v, where) for v in value)
    return int(as_number(value, where) * 1_000_000)


def as_choice(choices: set[str]) -> Callable[[Any, str], Any]:
    def convert(value: Any, where: str) -> Any:
        text = as_text(value, where)
        values = text if isinstance(text, tuple) else (text,)
        for v in values:
            if v.upper() not in choices:
                raise FilterError(
                    f"{where} must be one of {', '.join(sorted(choices))}, got {v!r}."
                )
        return tuple(v.upper() for v in values) if isinstance(text, tuple) else text.upper()

    return convert


@dataclass(frozen=True, slots=True)
class Field:
    """A searchable attribute: the expression it reads and how its values are typed.

    `matches(op, value)` replaces the comparison of the expression for an attribute that is
    not one column (the expression then only orders)."""

    expression: Callable[[], Expression | F]
    convert: Callable[[Any, str], Any] = as_text
    matches: Callable[[str, Any], Q] | None = None


def column(name: str, convert: Callable[[Any, str], Any] = as_text) -> Field:
    return Field(lambda: F(name), convert)


def json_key(field: str, key: str) -> KeyTextTransform:
    return KeyTextTransform(key, field)


def latest_metric(owner: str, key: str) -> Subquery:
    """The latest value (highest step, then newest) of a metric of the outer row."""
    return Subquery(
        Metric.objects.filter(**{owner: OuterRef("pk")}, key=key)
        .order_by("-step", "-timestamp_ms", "-pk")
        .values("value")[:1]
    )


@dataclass(frozen=True)
class Entity:
    """How one searchable entity maps filter identifiers onto its columns."""

    name: str
    attributes: dict[str, Field]
    tags: str | None = None  # the JSON column of tags
    params: str | None = None
    metric_owner: str | None = None  # Metric's foreign key to this entity
    metadata: str | None = None
    # Keys of tags/metadata that have an indexed column of their own.
    tag_columns: dict[str, str] | None = None
    metadata_columns: dict[str, str] | None = None
    spans: bool = False

    def q(self, text: str | None) -> Q:
        result = Q()
        for comparison in parse(text):
            result &= self.comparison_q(comparison)
        return result

    def comparison_q(self, c: Comparison) -> Q:
        where = f"{c.prefix}.{c.key}" if c.prefix != "attribute" else c.key
        if c.prefix == "attribute":
            field = self.attributes.get(c.key.lower())
            if field is None:
                names = ", ".join(sorted(self.attributes))
                raise FilterError(
                    f"Invalid filter: {self.name} have no attribute {c.key!r} "
                    f"(searchable: {names})."
                )
            value = field.convert(c.value, where)
            if field.matches is not None:
                return field.matches(c.op, value)
            return compare(field.expression(), c.op, value)
        if c.prefix == "tag" and self.tags:
            if self.tag_columns and c.key in self.tag_columns:
                return compare(F(self.tag_columns[c.key]), c.op, as_text(c.value, where))
            return compare(json_key(self.tags, c.key), c.op, as_text(c.value, where))
        if c.prefix == "param" and self.params:
            return compare(json_key(self.params, c.key), c.op, as_text(c.value, where))
        if c.prefix == "metadata" and self.metadata:
            if self.metadata_columns and c.key in self.metadata_columns:
                return compare(F(self.metadata_columns[c.key]), c.op, as_text(c.value, where))
            return compare(json_key(self.metadata, c.key), c.op, as_text(c.value, where))
        if c.prefix == "metric" and self.metric_owner:
            if c.op in ("LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE"):
                raise FilterError(f"Invalid filter: metrics are compared with numbers, not {c.op}.")
            return compare(latest_metric(self.metric_owner, c.key), c.op, as_number(c.value, where))
        if c.prefix == "span" and self.spans:
            return self._span_q(c, where)
        raise FilterError(f"Invalid filter: {self.name} cannot be filtered on {c.prefix}s.")

    def _span_q(self, c: Comparison, where: str) -> Q:
        columns = {"name": "name", "type": "span_type", "status": "status"}
        if c.key not in columns or c.op.startswith("NOT") or c.op == "!=":
            names = ", ".join(f"span.{key}" for key in columns)
            raise FilterError(f"Invalid filter: {names} match with =, LIKE, ILIKE or IN.")
        matching = Span.objects.filter(
            compare(F(columns[c.key]), c.op, as_text(c.value, where)), trace=OuterRef("pk")
        )
        return Q(Exists(matching))

    def ordering(self, prefix: str, key: str, ascending: bool) -> OrderBy:
        """One order-by term; rows without a value sort last either way, as in MLflow."""
        if prefix == "attribute" and key.lower() in self.attributes:
            expression: Any = self.attributes[key.lower()].expression()
        elif prefix == "tag" and self.tags:
            expression = json_key(self.tags, key)
        elif prefix == "param" and self.params:
            expression = json_key(self.params, key)
        elif prefix == "metadata" and self.metadata:
            expression = json_key(self.metadata, key)
        elif prefix == "metric" and self.metric_owner:
            expression = latest_metric(self.metric_owner, key)
        else:
            raise FilterError(f"Invalid order_by: {self.name} cannot be ordered by {prefix}.{key}.")
        if ascending:
            return expression.asc(nulls_last=True)
        return expression.desc(nulls_last=True)

    def order_by(self, clauses: list[str]) -> list[OrderBy]:
        return [self.ordering(*parse_order(clause)) for clause in clauses]


_TRACE_STATES = as_choice({"OK", "ERROR", "IN_PROGRESS"})
_RUN_STATUSES = as_choice({"RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"})
_MODEL_STATUSES = as_choice(
    {"LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED"}
)


def _run_matches(op: str, value: Any) -> Q:
    """As MLflow's store: `run_id = X` also matches traces linked to run X (LinkTracesToRun)."""
    source_run = compare(json_key("metadata", "mlflow.sourceRun"), op, value)
    if op != "=":
        return source_run
    links = Run.linked_traces.through.objects.filter(trace_id=OuterRef("pk"), run__run_id=value)
    return source_run | Q(Exists(links))


TRACES = Entity(
    name="traces",
    attributes={
        "trace_id": column("trace_id"),
        "request_id": column("trace_id"),
        "status": column("state", _TRACE_STATES),
        "state": column("state", _TRACE_STATES),
        "name": column("name"),
        "timestamp_ms": column("request_time", as_time_ms),
        "timestamp": column("request_time", as_time_ms),
        "request_time": column("request_time", as_time_ms),
        "execution_time_ms": column("duration_ns", as_duration_ns),
        "execution_time": column("duration_ns", as_duration_ns),
        "execution_duration": column("duration_ns", as_duration_ns),
        # search_traces(run_id=...) sends `attribute.run_id`; the client records the run of a
        # trace as the `mlflow.sourceRun` metadata, and LinkTracesToRun links more.
        "run_id": Field(lambda: json_key("metadata", "mlflow.sourceRun"), as_text, _run_matches),
        "model_id": column("model_id"),
        "experiment_id": column("experiment_id", as_number),
    },
    tags="tags",
    metadata="metadata",
    tag_columns={"mlflow.traceName": "name"},
    metadata_columns={"mlflow.modelId": "model_id"},
    spans=True,
)

RUNS = Entity(
    name="runs",
    attributes={
        "run_id": column("run_id"),
        "run_uuid": column("run_id"),
        "run_name": column("name"),
        "status": column("status", _RUN_STATUSES),
        "user_id": column("user_id"),
        "start_time": column("start_time", as_time_ms),
        "end_time": column("end_time", as_time_ms),
        "lifecycle_stage": column("lifecycle_stage"),
        "experiment_id": column("experiment_id", as_number),
    },
    tags="tags",
    params="params",
    metric_owner="run",
)


def _model_matches(op: str, value: Any) -> Q:
    """A logged model by its id, its name, or a registered model that has it as a version
    (`support-agent`, `support-agent@champion`, `support-agent/3`, as in `models:/` URIs):
    what `model` means in the trace query too. MLflow's own `name` stays the logged model's."""
    values = list(value) if isinstance(value, tuple) else [value]
    if op in ("LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE"):
        positive = op.removeprefix("NOT ")
        registered = ModelVersion.objects.filter(
            compare(F("registered_model__name"), positive, value)
        ).exclude(model_id="")
        q = compare(F("name"), positive, value) | Q(model_id__in=registered.values("model_id"))
        return ~q if op.startswith("NOT") else q
    if op not in ("=", "!=", "IN", "NOT IN"):
        raise FilterError(
            f"Invalid filter: model takes =, !=, IN, NOT IN, LIKE or ILIKE, not {op}."
        )
    registered = ModelVersion.objects.referenced(*values).values("model_id")
    q = Q(model_id__in=values) | Q(name__in=values) | Q(model_id__in=registered)
    return ~q if op in ("!=", "NOT IN") else q


LOGGED_MODELS = Entity(
    name="logged models",
    attributes={
        "name": column("name"),
        "model": Field(lambda: F("name"), as_text, _model_matches),
        "model_id": column("model_id"),
        "model_type": column("model_type"),
        "status": column("status", _MODEL_STATUSES),
        "source_run_id": column("source_run__run_id"),
        "creation_timestamp": column("created_at", as_time_ms),
        "creation_time": column("created_at", as_time_ms),
        "creation_timestamp_ms": column("created_at", as_time_ms),
        "last_updated_timestamp": column("updated_at", as_time_ms),
        "last_updated_time": column("updated_at", as_time_ms),
        "last_updated_timestamp_ms": column("updated_at", as_time_ms),
        "experiment_id": column("experiment_id", as_number),
    },
    tags="tags",
    params="params",
    metric_owner="logged_model",
)

EXPERIMENTS = Entity(
    name="experiments",
    attributes={
        "name": column("name"),
        "experiment_id": column("id", as_number),
        "creation_time": column("created_at", as_time_ms),
        "last_update_time": column("updated_at", as_time_ms),
        "lifecycle_stage": column("lifecycle_stage"),
    },
    tags="tags",
)
