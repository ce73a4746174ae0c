"""Feedback and expectations given on the pages: the form a person fills in, read into the
fields of an MLflow assessment (tracking.models.Assessment), with a message per field for
what cannot be stored.

Pure (no database): the views (tracking/views/feedback.py) write what this returns through
`Assessment.objects.record`, `Assessment.amend` and `Assessment.retract`, the same methods
the MLflow endpoints use, so the client's `get_trace(...).info.assessments` reads it back.

A feedback's value is one of: pass/fail (a JSON boolean), a number, a label (short text
from a fixed vocabulary the person types), or free text; an expectation's is JSON or text.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.conf import settings

from tracking.models import AssessmentKind

NAME_MAX_CHARS = 250  # as MLflow's assessments table (and the Assessment model)
LABEL_MAX_CHARS = 100
# Numbers a person gives: scores and counts. Past this a float loses whole units, and a
# number that large is a typo, not a score.
NUMBER_LIMIT = 1e15
SPAN_ID_RE = re.compile(r"[0-9a-f]{16}")
ASSESSMENT_ID_RE = re.compile(r"a-[0-9a-f]{32}")

FEEDBACK_TYPES = {"pass_fail": "Pass / fail", "number": "Number", "label": "Label", "text": "Text"}
EXPECTATION_TYPES = {"text": "Text", "json": "JSON"}


@dataclass
class FeedbackForm:
    """What was typed, kept to re-render the form, and what is wrong with it, by field."""

    kind: str = AssessmentKind.FEEDBACK
    name: str = ""
    value_type: str = "pass_fail"
    value: str = ""
    rationale: str = ""
    span_id: str = ""
    overrides: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not self.errors


def _clean(text: str) -> str:
    return text.replace("\r\n", "\n")


def read_form(data: Any, *, kind: str | None = None, name: str | None = None) -> FeedbackForm:
    """A FeedbackForm from POST data (a QueryDict or dict); `kind` and `name` fixed by the
    caller when the form edits or overrides an existing assessment."""
    # Pass / fail are radio buttons of their own, beside the text box the others use.
    typed = "verdict" if data.get("value_type") == "pass_fail" else "value"
    form = FeedbackForm(
        kind=kind or data.get("kind", AssessmentKind.FEEDBACK),
        name=(name if name is not None else data.get("name", "")).strip(),
        value_type=data.get("value_type", ""),
        value=_clean(data.get(typed, "")),
        rationale=_clean(data.get("rationale", "")),
        span_id=data.get("span_id", "").strip().lower(),
        overrides=data.get("overrides", "").strip(),
    )
    if form.kind not in AssessmentKind.values:
        form.errors["kind"] = "Choose feedback or expectation."
        return form
    types = FEEDBACK_TYPES if form.kind == AssessmentKind.FEEDBACK else EXPECTATION_TYPES
    if form.value_type not in types:
        form.value_type = next(iter(types))
    _check_text(form, "name", form.name, NAME_MAX_CHARS)
    if not form.name.strip() and "name" not in form.errors:
        form.errors["name"] = "Give the assessment a name, like correct or expected_response."
    _check_text(form, "rationale", form.rationale, settings.SPYGLASS_MAX_SPAN_FIELD_BYTES)
    if form.span_id and not SPAN_ID_RE.fullmatch(form.span_id):
        form.errors["span_id"] = "A span id is 16 hex characters."
    if form.overrides and not ASSESSMENT_ID_RE.fullmatch(form.overrides):
        form.errors["overrides"] = "Not an assessment id."
    return form


def _check_text(form: FeedbackForm, name: str, text: str, max_chars: int) -> None:
    if "\x00" in text:
        form.errors[name] = "This may not hold a NUL character."
    elif len(text) > max_chars:
        form.errors[name] = f"At most {max_chars:,} characters (this is {len(text):,})."


def value_of(form: FeedbackForm) -> Any:
    """The JSON value the form gives, or None with `form.errors["value"]` set."""
    text = form.value
    if "\x00" in text:
        form.errors["value"] = "The value may not hold a NUL character."
        return None
    if form.kind == AssessmentKind.FEEDBACK:
        value = _feedback_value(form, text)
    else:
        value = _expectation_value(form, text)
    if "value" not in form.errors and _too_large(value):
        form.errors["value"] = (
            f"The value is larger than {settings.SPYGLASS_MAX_SPAN_FIELD_BYTES:,} bytes."
        )
    return None if "value" in form.errors else value


def _feedback_value(form: FeedbackForm, text: str) -> Any:
    stripped = text.strip()
    if form.value_type == "pass_fail":
        if stripped.lower() in ("pass", "true", "yes"):
            return True
        if stripped.lower() in ("fail", "false", "no"):
            return False
        form.errors["value"] = "Choose pass or fail."
    elif form.value_type == "number":
        try:
            number = float(stripped)
        except ValueError:
            form.errors["value"] = f"Not a number: {stripped[:40]!r}."
            return None
        if not math.isfinite(number) or abs(number) > NUMBER_LIMIT:
            form.errors["value"] = f"Out of range: a number between -{NUMBER_LIMIT:,.0f} and "
            form.errors["value"] += f"{NUMBER_LIMIT:,.0f}."
            return None
        # 4 stays 4 (MLflow's client gives back an int), 4.5 stays 4.5.
        return int(number) if number.is_integer() and "." not in stripped else number
    elif form.value_type == "label":
        if not stripped or "\n" in stripped or len(stripped) > LABEL_MAX_CHARS:
            form.errors["value"] = f"A label is one line of 1 to {LABEL_MAX_CHARS} characters."
        return stripped
    else:
        if not stripped:
            form.errors["value"] = "Write the feedback."
        return text
    return None


def _expectation_value(form: FeedbackForm, text: str) -> Any:
    if form.value_type == "json":
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            form.errors["value"] = f"Not valid JSON: {error}"
            return None
        if value is None:
            form.errors["value"] = "An expectation needs a value (null is none)."
        return value
    if not text.strip():
        form.errors["value"] = "Write the expected value."
    return text


def _too_large(value: Any) -> bool:
    try:
        return len(orjson.dumps(value)) > settings.SPYGLASS_MAX_SPAN_FIELD_BYTES
    except orjson.JSONEncodeError:  # integers past 64 bits
        return True


def value_as_text(value: Any) -> tuple[str, str]:
    """(value_type, text) that fill an edit or override form with a stored value."""
    if isinstance(value, bool):
        return "pass_fail", "pass" if value else "fail"
    if isinstance(value, int | float):
        return "number", str(value)
    if isinstance(value, str):
        return ("label" if len(value) <= LABEL_MAX_CHARS and "\n" not in value else "text"), value
    return "json", orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
