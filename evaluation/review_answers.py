"""A reviewer's answers on the review screen, as MLflow assessments.

Each label schema is a question; its answer is an assessment named after the schema (feedback,
or an expectation for an expectation schema), with source HUMAN and the reviewer as its source
id, on the item's trace (a session's answers go on its first trace, where MLflow keeps
session-level assessments). So `get_trace(...).info.assessments` sees them.

Answering again replaces the reviewer's own answer the way MLflow does: a feedback is
overridden (the old one stays, not valid), an expectation is updated in place.

The values by input kind: pass/fail a boolean, categorical the option (a list of options when
several may be chosen), numeric a number, text a string; a comment is the rationale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.http import QueryDict

from tracking.models import Assessment, AssessmentKind, AssessmentSourceType, Trace
from tracking.reviews import InputKind, LabelSchema, SchemaType

TEXT_MAX_CHARS = 10_000  # a text answer or a comment, where the schema sets no limit
# The metadata key that says which queue an answer was given in (for whoever reads it later).
QUEUE_METADATA_KEY = "review_queue_id"


@dataclass
class Answer:
    schema: LabelSchema
    value: Any
    rationale: str


def field_name(schema: LabelSchema) -> str:
    return f"answer-{schema.schema_id}"


def comment_name(schema: LabelSchema) -> str:
    return f"comment-{schema.schema_id}"


def read_answers(schemas: list[LabelSchema], data: QueryDict) -> tuple[list[Answer], list[str]]:
    """The answers given in a submitted form (a question left blank is no answer), and what
    is wrong with the others, one sentence each."""
    answers, errors = [], []
    for schema in schemas:
        comment = data.get(comment_name(schema), "").strip() if schema.enable_comment else ""
        if len(comment) > TEXT_MAX_CHARS:
            errors.append(f"{schema.name}: a comment has at most {TEXT_MAX_CHARS} characters.")
            continue
        try:
            value = _value(schema, data)
        except ValueError as error:
            errors.append(f"{schema.name}: {error}")
            continue
        if value is not None:
            answers.append(Answer(schema, value, comment))
    return answers, errors


def _value(schema: LabelSchema, data: QueryDict) -> Any:
    name, config = field_name(schema), schema.input_config or {}
    if schema.input_kind == InputKind.CATEGORICAL and config.get("multi_select"):
        chosen = [v for v in data.getlist(name) if v]
        if unknown := [v for v in chosen if v not in config.get("options", [])]:
            raise ValueError(f"{unknown[0]!r} is not one of the options.")
        return chosen or None
    raw = data.get(name, "").strip()
    if not raw or "\x00" in raw:
        return None
    if schema.input_kind == InputKind.PASS_FAIL:
        if raw not in ("pass", "fail"):
            raise ValueError("the answer is pass or fail.")
        return raw == "pass"
    if schema.input_kind == InputKind.CATEGORICAL:
        if raw not in config.get("options", []):
            raise ValueError(f"{raw!r} is not one of the options.")
        return raw
    if schema.input_kind == InputKind.NUMERIC:
        return _number(raw, config)
    limit = config.get("max_length") or TEXT_MAX_CHARS
    if len(raw) > limit:
        raise ValueError(f"the answer has at most {limit} characters.")
    return raw


def _number(raw: str, config: dict[str, Any]) -> int | float:
    try:
        number: int | float = int(raw)
    except ValueError:
        try:
            number = float(raw)
        except ValueError:
            raise ValueError(f"{raw[:40]!r} is not a number.") from None
    if not math.isfinite(number):
        raise ValueError("the answer must be a finite number.")
    low, high = config.get("min_value"), config.get("max_value")
    if low is not None and number < low:
        raise ValueError(f"the answer is at least {low:g}.")
    if high is not None and number > high:
        raise ValueError(f"the answer is at most {high:g}.")
    return number


def given_by(trace: Trace, reviewer: str, schemas: list[LabelSchema]) -> dict[str, Assessment]:
    """The reviewer's current answers on a trace, by schema name (one query)."""
    rows = Assessment.objects.filter(
        trace=trace,
        source_type=AssessmentSourceType.HUMAN,
        source_id=reviewer,
        valid=True,
        name__in=[s.name for s in schemas],
        span_id="",
    ).in_order()
    return {a.name: a for a in rows}  # the newest wins


def record(trace: Trace, reviewer: str, answers: list[Answer], queue_id: str) -> int:
    """Write the answers (those that changed); how many assessments were written."""
    current = given_by(trace, reviewer, [a.schema for a in answers])
    written = 0
    for answer in answers:
        kind = (
            AssessmentKind.EXPECTATION
            if answer.schema.type == SchemaType.EXPECTATION
            else AssessmentKind.FEEDBACK
        )
        old = current.get(answer.schema.name)
        if old is not None and old.kind != kind:
            old = None  # a feedback and an expectation of the same name are two answers
        if old is not None and old.value == answer.value and old.rationale == answer.rationale:
            continue
        if old is not None and kind == AssessmentKind.EXPECTATION:
            # MLflow overrides feedback only; an expectation is updated.
            old.amend({"value": answer.value, "rationale": answer.rationale}, {})
        else:
            Assessment.objects.record(
                trace,
                name=answer.schema.name,
                kind=kind,
                value=answer.value,
                rationale=answer.rationale,
                source_type=AssessmentSourceType.HUMAN,
                source_id=reviewer,
                metadata={QUEUE_METADATA_KEY: queue_id},
                overrides=old.assessment_id if old is not None else "",
            )
        written += 1
    return written
