"""Scorers for evaluations launched from the UI: what turns one row's answer into a pass/fail
(or a number, or a label) with a short rationale, recorded by the runner as an MLflow feedback.

    spec = ScorerSpec.from_config({"kind": "exact_match", "name": "exact", "config": {...}})
    scorer = build(spec)              # once per evaluation: patterns and schemas compiled here
    score = scorer.score(row)         # per row: pure, no I/O (a judge calls its endpoint)

A `Score` has a value, or an error when the scorer could not judge the row (an expectation or
a measurement is missing): an error is not a failure, so it is left out of the pass rate, as
MLflow leaves out a feedback with an error. Values of the code scorers are booleans (MLflow
feedback True/False).

Code scorers are pure and cheap (the runner scores hundreds of rows a second on two cores):
everything that can be prepared once (regexes, JSON schema validators, paths) is prepared in
`build`, and `score` does no imports, no queries and no I/O. LLM judges live in
`evaluation.judges` and are built through the same `build`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

import jsonschema
import jsonschema.exceptions
import referencing
import referencing.exceptions

Json = dict[str, Any]

# Rationales and errors are shown in the UI and stored on traces: short, whatever the data.
RATIONALE_CHARS = 500
EXCERPT_CHARS = 80
# A regex runs on at most this much of an answer: Python's engine backtracks, so a pattern
# and an answer both from users are kept to a size that cannot take minutes.
REGEX_TEXT_CHARS = 100_000
# MLflow names the aggregate metric `<scorer>/mean`: a name stays a plain metric segment.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\- ]{0,99}")
DEFAULT_EXPECTATION = "expected_response"


class SpecError(ValueError):
    """A scorer configuration that cannot be used; `str(error)` says what to fix."""


@dataclass(frozen=True, slots=True)
class Row:
    """What a scorer sees of one dataset row once the agent answered."""

    inputs: Json = field(default_factory=dict)
    # The answer: its text, or the agent's structured output (a dict), or both via `text`.
    outputs: Any = None
    expectations: Json = field(default_factory=dict)
    custom_outputs: Json | None = None
    latency_ms: float | None = None
    tokens: int | None = None
    cost: float | None = None  # dollars; None when the model is not priced (never $0)

    @property
    def text(self) -> str:
        return answer_text(self.outputs)


@dataclass(frozen=True, slots=True)
class Score:
    """One scorer's verdict on one row: a value with its rationale, or an error."""

    value: bool | float | str | None = None
    rationale: str = ""
    error: str | None = None

    @classmethod
    def passed(cls, ok: bool, rationale: str) -> Score:
        return cls(value=bool(ok), rationale=_cap(rationale))

    @classmethod
    def failed_to_score(cls, error: str) -> Score:
        return cls(error=_cap(error))


class Scorer(Protocol):
    name: str
    kind: str

    def score(self, row: Row) -> Score: ...


@dataclass(frozen=True, slots=True)
class ScorerSpec:
    """A scorer as configured in a form or as JSON: its kind, its name (the feedback's name,
    and the `<name>/mean` metric), and the kind's options."""

    kind: str
    name: str
    config: Json = field(default_factory=dict)

    @classmethod
    def from_config(cls, data: Any) -> ScorerSpec:
        """A validated spec from `{"kind", "name", "config"}`; SpecError says what is wrong."""
        if not isinstance(data, dict):
            raise SpecError("A scorer is a JSON object with kind, name and config.")
        kind = data.get("kind")
        if kind not in KINDS:
            raise SpecError(f"Unknown scorer kind {_shown(kind)}: use one of {', '.join(KINDS)}.")
        name = data.get("name") or kind
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise SpecError(
                f"Scorer name {_shown(name)} must be 1-100 letters, digits, spaces, '_', '-' "
                "or '.', starting with a letter or digit."
            )
        config = data.get("config")
        config = {} if config is None else config
        if not isinstance(config, dict):
            raise SpecError(f"The config of scorer {name!r} must be a JSON object.")
        spec = cls(kind=kind, name=name, config=config)
        build(spec)  # every check a build makes, made now (compiling is cheap)
        return spec

    def as_config(self) -> Json:
        return {"kind": self.kind, "name": self.name, "config": self.config}


def build(spec: ScorerSpec, stop: Any = None) -> Scorer:
    """The scorer a spec describes, prepared to score many rows. `stop` (a playground
    `Stop`) interrupts a judge's call when the evaluation is cancelled."""
    if spec.kind == JUDGE:
        # Imported here, once per build: judges reach the playground's HTTP client, which the
        # code scorers (and this module's importers) never need.
        from evaluation.judges import build_judge

        return build_judge(spec, stop)
    return CODE_SCORERS[spec.kind](spec.name, _Options(spec))


# --- Options ------------------------------------------------------------------------------------


class _Options:
    """A spec's config read with clear errors; `done()` refuses options nobody read, so a
    misspelt option is an error rather than silently ignored."""

    def __init__(self, spec: ScorerSpec) -> None:
        self.spec = spec
        self.config = spec.config
        self.read: set[str] = set()

    def _get(self, key: str) -> Any:
        self.read.add(key)
        return self.config.get(key)

    def has(self, key: str) -> bool:
        self.read.add(key)
        return key in self.config

    def error(self, message: str) -> SpecError:
        return SpecError(f"Scorer {self.spec.name!r} ({self.spec.kind}): {message}")

    def text(self, key: str, default: str | None = None, max_chars: int = 10_000) -> str:
        value = self._get(key)
        if value is None or value == "":
            if default is None:
                raise self.error(f"{key} is required.")
            return default
        if not isinstance(value, str):
            raise self.error(f"{key} must be text.")
        if len(value) > max_chars:
            raise self.error(f"{key} is longer than {max_chars} characters.")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "on", "1", "yes", "false", "off",
                                                        "0", "no", ""):  # fmt: skip
            return value.lower() in ("true", "on", "1", "yes")  # what an HTML form sends
        raise self.error(f"{key} must be true or false.")

    def number(self, key: str, minimum: float = 0.0) -> float:
        value = self._get(key)
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise self.error(f"{key} must be a number, not {_shown(value)}.") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(f"{key} is required: a number.")
        if not math.isfinite(value) or value < minimum:
            raise self.error(f"{key} must be a finite number of at least {minimum:g}.")
        return float(value)

    def raw(self, key: str) -> Any:
        return self._get(key)

    def done(self) -> None:
        unknown = sorted(set(self.config) - self.read)
        if unknown:
            known = ", ".join(sorted(self.read))
            raise self.error(f"unknown option {', '.join(unknown)} (options: {known}).")


# --- Code scorers -------------------------------------------------------------------------------


class _CodeScorer:
    kind = ""

    def __init__(self, name: str) -> None:
        self.name = name


class ExactMatch(_CodeScorer):
    """The answer equals an expectation (by default `expected_response`), optionally trimmed
    and compared case-insensitively."""

    kind = "exact_match"

    def __init__(self, name: str, options: _Options) -> None:
        super().__init__(name)
        self.key = options.text("expectation", DEFAULT_EXPECTATION, 256)
        self.trim = options.flag("trim", True)
        self.case_insensitive = options.flag("case_insensitive", False)
        options.done()

    def _norm(self, text: str) -> str:
        if self.trim:
            text = text.strip()
        return text.casefold() if self.case_insensitive else text

    def score(self, row: Row) -> Score:
        if self.key not in row.expectations:
            return Score.failed_to_score(f"The row has no expectation {self.key!r}.")
        expected = answer_text(row.expectations[self.key])
        if self._norm(row.text) == self._norm(expected):
            return Score.passed(True, f"The answer equals {self.key}.")
        return Score.passed(
            False, f"The answer {_excerpt(row.text)} differs from {self.key} {_excerpt(expected)}."
        )


class Contains(_CodeScorer):
    """The answer contains a text: the scorer's own `text`, or an expectation's value."""

    kind = "contains"

    def __init__(self, name: str, options: _Options) -> None:
        super().__init__(name)
        self.needle, self.key = _pattern_source(options, "text")
        self.case_insensitive = options.flag("case_insensitive", False)
        options.done()

    def score(self, row: Row) -> Score:
        needle = self.needle
        if needle is None:
            if self.key not in row.expectations:
                return Score.failed_to_score(f"The row has no expectation {self.key!r}.")
            needle = answer_text(row.expectations[self.key])
        text = row.text
        found = needle.casefold() in text.casefold() if self.case_insensitive else needle in text
        verb = "contains" if found else "does not contain"
        return Score.passed(found, f"The answer {verb} {_excerpt(needle)}.")


class Regex(_CodeScorer):
    """The answer matches a regular expression (searched anywhere in it, or `full_match`):
    the scorer's own `pattern`, compiled once, or an expectation's value, compiled once per
    distinct pattern."""

    kind = "regex"

    def __init__(self, name: str, options: _Options) -> None:
        super().__init__(name)
        source, self.key = _pattern_source(options, "pattern")
        self.flags = re.IGNORECASE if options.flag("case_insensitive", False) else 0
        self.full = options.flag("full_match", False)
        options.done()
        self.pattern: re.Pattern[str] | None = None
        if source is not None:
            try:
                self.pattern = _compile(source, self.flags)
            except re.error as exc:
                raise options.error(f"pattern is not a valid regular expression: {exc}.") from None

    def score(self, row: Row) -> Score:
        pattern = self.pattern
        if pattern is None:
            if self.key not in row.expectations:
                return Score.failed_to_score(f"The row has no expectation {self.key!r}.")
            try:
                pattern = _compile(answer_text(row.expectations[self.key]), self.flags)
            except re.error as exc:
                return Score.failed_to_score(f"Expectation {self.key!r} is not a regex: {exc}.")
        text = row.text[:REGEX_TEXT_CHARS]
        found = (pattern.fullmatch(text) if self.full else pattern.search(text)) is not None
        verb = "matches" if found else "does not match"
        return Score.passed(found, f"The answer {verb} /{_cut(pattern.pattern, EXCERPT_CHARS)}/.")


@lru_cache(maxsize=256)
def _compile(source: str, flags: int) -> re.Pattern[str]:
    return re.compile(source, flags)


def _pattern_source(options: _Options, own: str) -> tuple[str | None, str]:
    """(the configured text, None) or (None, the expectation key that holds it per row)."""
    if options.has(own) and options.raw(own) not in (None, ""):
        if options.has("expectation") and options.raw("expectation"):
            raise options.error(f"give either {own} or expectation, not both.")
        return options.text(own), ""
    if options.has("expectation") and options.raw("expectation"):
        return None, options.text("expectation", max_chars=256)
    raise options.error(f"give {own}, or the expectation that holds it for each row.")


class ValidJson(_CodeScorer):
    """The answer is JSON (its text parsed; an answer that is already structured is taken as
    it is), and, given a `schema`, valid against it (JSON Schema, checked once here)."""

    kind = "json"

    def __init__(self, name: str, options: _Options) -> None:
        super().__init__(name)
        schema = options.raw("schema")
        options.done()
        self.validator: Any = None
        if schema not in (None, ""):
            if isinstance(schema, str):  # a form's textarea
                try:
                    schema = json.loads(schema)
                except ValueError as exc:
                    raise options.error(f"schema is not JSON: {exc}.") from None
            if not isinstance(schema, dict | bool):
                raise options.error("schema must be a JSON Schema object.")
            cls = jsonschema.validators.validator_for(schema, jsonschema.Draft202012Validator)
            try:
                cls.check_schema(schema)
            except jsonschema.exceptions.SchemaError as exc:
                raise options.error(f"schema is not a valid JSON Schema: {exc.message}.") from None
            remote = _remote_ref(schema)
            if remote is not None:
                raise options.error(f"schema refers to {_shown(remote)}: only local $refs (#/...).")
            # An empty registry of our own: jsonschema's default one fetches a "$ref" URL with
            # urlopen, outside webapp.egress. With this one such a ref is an error, never fetched.
            self.validator = cls(schema, registry=referencing.Registry())

    def score(self, row: Row) -> Score:
        value = row.outputs
        if value is None or isinstance(value, str):
            text = row.text
            try:
                value = json.loads(text)
            except (ValueError, RecursionError) as exc:
                return Score.passed(False, f"The answer is not JSON: {_cut(str(exc), 120)}.")
        if self.validator is None:
            return Score.passed(True, "The answer is valid JSON.")
        try:
            error = jsonschema.exceptions.best_match(self.validator.iter_errors(value))
        except (referencing.exceptions.Unresolvable, RecursionError) as exc:
            return Score.failed_to_score(f"The schema could not be checked: {_cut(str(exc), 200)}")
        if error is None:
            return Score.passed(True, "The answer is JSON valid against the schema.")
        where = "/".join(str(p) for p in error.absolute_path) or "the answer"
        return Score.passed(False, f"Invalid at {where}: {_cut(error.message, 200)}")


def _remote_ref(schema: Any) -> str | None:
    """The first "$ref" (or "$dynamicRef") of a schema that is not a local "#..." one."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                    if not value.startswith("#"):
                        return value
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return None


_MISSING = object()


class CustomOutput(_CodeScorer):
    """A field of the agent's `custom_outputs`, by dotted `path` (`sources.0.url`), is
    `present`, or equals `expected` (any JSON value)."""

    kind = "custom_output"

    def __init__(self, name: str, options: _Options) -> None:
        super().__init__(name)
        path = options.text("path", max_chars=500)
        self.path = tuple(path.split("."))
        if not all(self.path):
            raise options.error(f"path {path!r} has an empty part.")
        present = options.flag("present", False)
        has_expected = options.has("expected")
        if present == has_expected:
            raise options.error("give either expected (a value) or present: true.")
        self.expected = options.raw("expected") if has_expected else _MISSING
        options.done()
        self.shown = path

    def score(self, row: Row) -> Score:
        if row.custom_outputs is None:
            # The agent's own output is what is judged: none at all fails, it is not missing data.
            return Score.passed(False, "The agent returned no custom_outputs.")
        value = _lookup(row.custom_outputs, self.path)
        if value is _MISSING:
            return Score.passed(False, f"custom_outputs has no {self.shown}.")
        if self.expected is _MISSING:
            return Score.passed(True, f"custom_outputs has {self.shown}.")
        if value == self.expected and type(value) is type(self.expected):
            return Score.passed(True, f"custom_outputs.{self.shown} is as expected.")
        shown = _excerpt(json.dumps(value, default=str))
        return Score.passed(False, f"custom_outputs.{self.shown} is {shown}, not as expected.")


def _lookup(value: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if isinstance(value, dict):
            value = value.get(part, _MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
        if value is _MISSING:
            return value
    return value


class _Limit(_CodeScorer):
    """A measurement of the row at most a limit (the limit itself passes)."""

    option = ""
    unit = ""
    missing = ""

    def __init__(self, name: str, options: _Options) -> None:
        super().__init__(name)
        self.limit = options.number(self.option)
        options.done()

    def measure(self, row: Row) -> float | None:
        raise NotImplementedError

    def score(self, row: Row) -> Score:
        value = self.measure(row)
        if value is None:
            return Score.failed_to_score(self.missing)
        ok = value <= self.limit
        sign = "<=" if ok else ">"
        return Score.passed(ok, f"{self.shown(value)} {sign} {self.shown(self.limit)}.")

    def shown(self, value: float) -> str:
        return f"{value:g} {self.unit}"


class LatencyUnder(_Limit):
    kind = "latency"
    option = "max_ms"
    unit = "ms"
    missing = "The row has no latency."

    def measure(self, row: Row) -> float | None:
        return row.latency_ms


class TokensUnder(_Limit):
    kind = "tokens"
    option = "max_tokens"
    unit = "tokens"
    missing = "The agent reported no token usage."

    def measure(self, row: Row) -> float | None:
        return row.tokens


class CostUnder(_Limit):
    kind = "cost"
    option = "max_cost"
    # A missing cost is an error, not a pass: Spyglass never counts an unpriced model as $0,
    # and a skipped row would quietly raise the pass rate; an error is shown and left out.
    missing = "No cost: the model is not priced (set SPYGLASS_MODEL_PRICES to price it)."

    def measure(self, row: Row) -> float | None:
        return row.cost

    def shown(self, value: float) -> str:
        return f"${value:.6g}"


JUDGE = "judge"  # built by evaluation.judges (see build)
_CODE_CLASSES = (ExactMatch, Contains, Regex, ValidJson, CustomOutput, LatencyUnder, TokensUnder,
                 CostUnder)  # fmt: skip
CODE_SCORERS: dict[str, Callable[[str, _Options], Scorer]] = {c.kind: c for c in _CODE_CLASSES}
KINDS = (*CODE_SCORERS, JUDGE)


# --- Text ---------------------------------------------------------------------------------------


def answer_text(value: Any) -> str:
    """The text of an answer or an expectation: text as it is, a chat message's content,
    anything else as compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _cap(text: str) -> str:
    return _cut(text, RATIONALE_CHARS)


def _excerpt(text: str) -> str:
    return repr(_cut(text, EXCERPT_CHARS))


def _shown(value: Any) -> str:
    if value is None or value == "":
        return "(none)"
    return repr(value) if isinstance(value, str) and len(value) <= 60 else type(value).__name__
