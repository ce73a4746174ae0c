"""Trace assessments (MLflow 3): feedback and expectations on a trace or one of its spans.

The client's `log_feedback`, `log_expectation` and `override_feedback` POST an Assessment
message to `traces/<trace_id>/assessments`; `get_assessment`, `update_assessment` and
`delete_assessment` GET, PATCH and DELETE `traces/<trace_id>/assessments/<assessment_id>`.
Each answers `{"assessment": ...}` (delete: `{}`), and trace infos carry them all
(entities.assessment_json). An override is a new feedback whose `overrides` names the old
one, which stays but is marked invalid; deleting the override makes the old one valid again.
Everything is checked before anything is written, so a refused request changes nothing.
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils import timezone

from tracking import ingest
from tracking.mlflow_api import ids
from tracking.mlflow_api.entities import assessment_json
from tracking.mlflow_api.errors import invalid, mlflow_endpoint, not_found
from tracking.mlflow_api.requests import Message, check_key, check_value, enum_choices, storable
from tracking.models import Assessment, AssessmentKind, AssessmentSourceType, Trace
from webapp import json_limits

ASSESSMENT_ID_RE = re.compile(r"a-[0-9a-f]{32}")
SPAN_ID_RE = re.compile(r"[0-9a-f]{16}")
NAME_MAX_CHARS = 250  # as MLflow's assessments table
SOURCE_ID_MAX_CHARS = 250
MAX_METADATA_ENTRIES = 100
SOURCE_TYPES = enum_choices(*AssessmentSourceType.values, start=0)
# Paths of `update_mask`: the client sends protobuf-JSON's comma-separated lowerCamelCase.
UPDATE_PATHS = {
    "assessment_name": "assessment_name",
    "assessmentName": "assessment_name",
    "expectation": "expectation",
    "feedback": "feedback",
    "rationale": "rationale",
    "metadata": "metadata",
    "valid": "valid",
}


def check_assessment_id(value: object, field: str = "assessment_id") -> str:
    if not isinstance(value, str) or not ASSESSMENT_ID_RE.fullmatch(value):
        raise invalid(f"{field} must look like 'a-<32 hex>', got {value!r}.")
    return value


# --- Reading an Assessment message ---------------------------------------------------------


def json_value(value: Any, where: str) -> Any:
    """Any JSON value a database stores as sent: finite numbers, NUL-free text, under the
    span field cap (refused rather than truncated: an assessment is a verdict, not a log)."""
    stack = [value]
    while stack:  # a loop, not recursion: orjson accepts deeper nesting than Python's stack
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise invalid(f"{where} must not hold NaN or Infinity.")
        if isinstance(item, str):
            storable(item, where)
        elif isinstance(item, dict):
            for key in item:
                storable(key, where)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    try:
        size = len(orjson.dumps(value))
    except orjson.JSONEncodeError as error:  # integers past 64 bits
        raise invalid(f"{where} cannot be stored: {error}.") from None
    if size > settings.SPYGLASS_MAX_SPAN_FIELD_BYTES:
        raise invalid(f"{where} is larger than {settings.SPYGLASS_MAX_SPAN_FIELD_BYTES} bytes.")
    return value


def _text(message: Message, name: str, where: str, max_length: int | None = None) -> str:
    value = message.raw(name)[name]
    if max_length is None:
        max_length = settings.SPYGLASS_MAX_SPAN_FIELD_BYTES
    return check_value(value, where, max_length)


def _error(value: Any) -> dict[str, str] | None:
    if value in (None, {}):
        return None
    if not isinstance(value, dict):
        raise invalid("assessment.feedback.error must be an object.")
    error = Message(value)
    return {
        name: _text(error, name, f"assessment.feedback.error.{name}")
        for name in ("error_code", "error_message", "stack_trace")
    }


def _feedback(value: Any) -> tuple[Any, dict[str, str] | None]:
    if not isinstance(value, dict):
        raise invalid("assessment.feedback must be an object.")
    return json_value(value.get("value"), "assessment.feedback.value"), _error(value.get("error"))


def _expectation(value: Any) -> Any:
    """The value in `value`, or JSON text in `serialized_value` (lists, objects, null)."""
    if not isinstance(value, dict):
        raise invalid("assessment.expectation must be an object.")
    serialized = value.get("serialized_value")
    if serialized is not None:
        if not isinstance(serialized, dict) or serialized.get("serialization_format") not in (
            None,
            "JSON_FORMAT",
        ):
            raise invalid("assessment.expectation.serialized_value must be in JSON_FORMAT.")
        text = serialized.get("value")
        try:
            if not isinstance(text, str):
                raise json_limits.JsonError("not a string")
            expected = json_limits.loads(text.encode("utf-8", "surrogatepass"), allow_nan=True)
        except json_limits.JsonError as error:
            raise invalid(
                f"assessment.expectation.serialized_value.value is {error.message}."
            ) from None
    else:
        expected = value.get("value")
    if expected is None:
        raise invalid("assessment.expectation.value must be specified.")
    return json_value(expected, "assessment.expectation.value")


def _value_fields(data: dict[str, Any]) -> dict[str, Any]:
    """kind, value and error from the message's `feedback` or `expectation` (exactly one)."""
    kinds = [k for k in ("feedback", "expectation", "issue") if data.get(k) is not None]
    if kinds == ["feedback"]:
        value, error = _feedback(data["feedback"])
        return {"kind": AssessmentKind.FEEDBACK, "value": value, "error": error}
    if kinds == ["expectation"]:
        value = _expectation(data["expectation"])
        return {"kind": AssessmentKind.EXPECTATION, "value": value, "error": None}
    if kinds == ["issue"]:
        raise invalid("Issue references are not stored by this server.")
    raise invalid("An assessment must have exactly one of 'feedback' or 'expectation'.")


def _metadata(message: Message) -> dict[str, str]:
    metadata = message.object("metadata")
    if len(metadata) > MAX_METADATA_ENTRIES:
        raise invalid(f"assessment.metadata may hold at most {MAX_METADATA_ENTRIES} entries.")
    return {
        check_key(key, "assessment.metadata key"): check_value(
            value, f"assessment.metadata[{key!r}]", settings.SPYGLASS_MAX_SPAN_FIELD_BYTES
        )
        for key, value in metadata.items()
    }


def _name(message: Message) -> str:
    name = message.string("assessment_name", max_length=NAME_MAX_CHARS)
    if not name.strip():
        raise invalid("Missing value for required parameter 'assessment.assessment_name'.")
    return name


def _assessment_message(
    body: Message, trace_id: str, assessment_id: str = ""
) -> tuple[dict[str, Any], Message]:
    """The `assessment` of a request; ids in it, if sent, must be the path's."""
    data = body.object("assessment")
    if not data:
        raise invalid("Missing value for required parameter 'assessment'.")
    message = Message(data)
    for name, expected in (("trace_id", trace_id), ("assessment_id", assessment_id)):
        sent = message.string(name)
        if sent and expected and sent != expected:
            raise invalid(f"assessment.{name} {sent!r} is not the {name} of the path.")
    return data, message


def _new_assessment(data: dict[str, Any], message: Message) -> dict[str, Any]:
    """The fields of a new row. An `assessment_id` in the message is ignored: the server
    names assessments (the client never sends one on create)."""
    source = Message(message.object("source"))
    span_id = message.string("span_id").lower()
    if span_id and not SPAN_ID_RE.fullmatch(span_id):
        raise invalid(f"assessment.span_id must be 16 hex characters, got {span_id!r}.")
    overrides = message.string("overrides")
    if overrides:
        check_assessment_id(overrides, "assessment.overrides")
    now = timezone.now()
    created = ingest.timestamp(data.get("create_time"), "assessment.create_time") or now
    updated = ingest.timestamp(data.get("last_update_time"), "assessment.last_update_time")
    return {
        "name": _name(message),
        **_value_fields(data),
        "rationale": _text(message, "rationale", "assessment.rationale"),
        "source_type": source.enum("source_type", SOURCE_TYPES, AssessmentSourceType.UNSPECIFIED),
        "source_id": source.string("source_id", max_length=SOURCE_ID_MAX_CHARS),
        "span_id": span_id,
        "metadata": _metadata(message),
        "overrides": overrides,
        "created_at": created,
        "updated_at": updated or created,
    }


def _update_paths(value: Any) -> list[str]:
    if isinstance(value, dict):  # the FieldMask message itself, {"paths": [...]}
        value = value.get("paths")
    if isinstance(value, str):
        value = [p.strip() for p in value.split(",") if p.strip()]
    if not value or not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise invalid("Missing value for required parameter 'update_mask'.")
    unknown = [p for p in value if p not in UPDATE_PATHS]
    if unknown:
        raise invalid(f"update_mask names fields that cannot be updated: {', '.join(unknown)}.")
    return [UPDATE_PATHS[p] for p in value]


# --- Rows ----------------------------------------------------------------------------------


def _assessment(trace: Trace, assessment_id: str) -> Assessment:
    check_assessment_id(assessment_id)
    found = Assessment.objects.filter(trace=trace, assessment_id=assessment_id).first()
    if found is None:
        raise not_found(
            f"Assessment with ID '{assessment_id}' not found for trace '{trace.trace_id}'"
        )
    return found


def _response(assessment: Assessment, trace: Trace) -> JsonResponse:
    return JsonResponse({"assessment": assessment_json(assessment, trace.trace_id)})


# --- Views ---------------------------------------------------------------------------------


@mlflow_endpoint(["POST"])
def create(request: HttpRequest, trace_id: str) -> JsonResponse:
    """log_feedback, log_expectation, and override_feedback (`overrides` set)."""
    ids.check_trace_id(trace_id)
    data, message = _assessment_message(Message.of(request), trace_id)
    fields = _new_assessment(data, message)
    trace = ids.trace(trace_id)
    if fields["overrides"]:
        _assessment(trace, fields["overrides"])  # a 404 when there is none to override
    try:
        assessment = Assessment.objects.record(trace, **fields)
    except Trace.DoesNotExist:  # deleted since it was read above
        raise not_found(f"Trace with ID '{trace_id}' not found.") from None
    return _response(assessment, trace)


@mlflow_endpoint(["GET", "PATCH", "DELETE"])
def detail(request: HttpRequest, trace_id: str, assessment_id: str) -> JsonResponse:
    ids.check_trace_id(trace_id)
    check_assessment_id(assessment_id)
    if request.method == "PATCH":
        return _update(request, trace_id, assessment_id)
    if request.method == "DELETE":
        return _delete(trace_id, assessment_id)
    trace = ids.trace(trace_id)
    return _response(_assessment(trace, assessment_id), trace)


def _update(request: HttpRequest, trace_id: str, assessment_id: str) -> JsonResponse:
    """Only the fields in `update_mask`; metadata is merged, source and span stay (as in
    MLflow), and a feedback cannot become an expectation or the other way round."""
    body = Message.of(request)
    paths = _update_paths(body.raw("update_mask")["update_mask"])
    data, message = _assessment_message(body, trace_id, assessment_id)
    changes: dict[str, Any] = {}
    if "assessment_name" in paths:
        changes["name"] = _name(message)
    if "feedback" in paths or "expectation" in paths:
        changes.update(_value_fields(data))
    if "rationale" in paths:
        changes["rationale"] = _text(message, "rationale", "assessment.rationale")
    if "valid" in paths:
        changes["valid"] = message.boolean("valid", default=False)
    metadata = _metadata(message) if "metadata" in paths else {}
    trace = ids.trace(trace_id)
    assessment = _assessment(trace, assessment_id)
    if changes.get("kind", assessment.kind) != assessment.kind:  # a kind is never changed
        raise invalid(f"Cannot update a {assessment.kind} assessment with a {changes['kind']}.")
    assessment.amend(changes, metadata)
    return _response(assessment, trace)


def _delete(trace_id: str, assessment_id: str) -> JsonResponse:
    """Idempotent, as in MLflow: an id already gone is not an error (an unknown trace is).
    Deleting an override makes the assessment it overrode valid again."""
    trace = ids.trace(trace_id)
    assessment = Assessment.objects.filter(trace=trace, assessment_id=assessment_id).first()
    if assessment is not None:
        assessment.retract()
    return JsonResponse({})
