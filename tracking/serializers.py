"""Serializers of the native API (tracking/api.py): rows out; query parameters and bodies in.

Query parameters are validated by serializers too, so that one declaration both refuses a bad
value with a 400 naming the parameter and documents the parameter in the OpenAPI schema
(`extend_schema(parameters=[TraceFilters])`). Text filters are compared as sent, untrimmed:
DRF's trimming would check `max_length` on the trimmed text, not on what the schema's
`maxLength` is about, and would find "foo" for " foo" where the filter says exact.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, time
from typing import Any
from urllib.parse import urlencode

from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from tracking.models import (
    TRACE_TAG_KEY_MAX_CHARS,
    TRACE_TAG_VALUE_MAX_CHARS,
    Experiment,
    LoggedModel,
    LoggedModelStatus,
    Metric,
    Span,
    SpanStatus,
    Trace,
    TraceState,
)

BIGINT_MAX = 2**63 - 1
# Far beyond any real duration, and small enough that ms -> ns never overflows a bigint.
DURATION_MS_MAX = 10**12
TAG_FILTERS_MAX = 20
TAG_KEY_MAX_CHARS = 250
TAG_VALUE_MAX_CHARS = 20_000
TAG_CHANGES_MAX = 100


def _enum(choices: type[Any]) -> dict[str, Any]:
    # On read-only fields (every response field) the allOf keeps drf-spectacular's enum hook
    # from hoisting the choices into a component named after the field: `status` is one
    # choice set on spans and another on logged models, and two StatusEnum components collide
    # (a warning, which `spectacular --fail-on-warn` refuses). A bare allOf is unwrapped, so
    # request fields still get a named component.
    return {"allOf": [{"type": "string", "enum": list(choices.values)}]}


def _text_filter(max_length: int, help_text: str) -> serializers.CharField:
    """A text filter of a list: optional, blank means "not given", and compared exactly as
    sent (not trimmed), so that the length checked is the length of what is matched."""
    return serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, max_length=max_length,
        help_text=help_text,
    )  # fmt: skip


def _filter_enum(choices: type[Any]) -> dict[str, Any]:
    # A filter's blank value means "not given" (a form's empty field), as for every filter.
    return {"type": "string", "enum": [*choices.values, ""]}


@extend_schema_field(_enum(TraceState))
class TraceStateField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=TraceState.choices, **kwargs)


@extend_schema_field(_enum(SpanStatus))
class SpanStatusField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=SpanStatus.choices, **kwargs)


@extend_schema_field(_enum(LoggedModelStatus))
class LoggedModelStatusField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=LoggedModelStatus.choices, **kwargs)


@extend_schema_field(_filter_enum(TraceState))
class TraceStateFilter(TraceStateField):
    pass


@extend_schema_field(_filter_enum(SpanStatus))
class SpanStatusFilter(SpanStatusField):
    pass


@extend_schema_field(_filter_enum(LoggedModelStatus))
class LoggedModelStatusFilter(LoggedModelStatusField):
    pass


@extend_schema_field(
    # Blank means "not given" (a form's empty field), as for every filter.
    {"type": "string", "anyOf": [{"format": "date-time"}, {"format": "date"}, {"maxLength": 0}]}
)
class SinceUntilField(serializers.Field):
    """An ISO 8601 date or date-time; naive values are UTC.

    A bare date means its midnight. An unencoded `+` in a query string arrives as a space,
    so `...T10:00:00 02:00` is read as `+02:00` rather than refused.
    """

    default_error_messages = {
        "invalid": "Must be an ISO 8601 date or date-time, e.g. 2025-06-01T12:00:00Z.",
    }

    def to_internal_value(self, data: Any) -> datetime:
        text = str(data).strip()
        try:
            moment = parse_datetime(text)
            if moment is None and " " in text[10:]:
                head, _, tail = text.rpartition(" ")
                moment = parse_datetime(f"{head}+{tail}")
            if moment is None and (day := parse_date(text)) is not None:
                moment = datetime.combine(day, time())
        except ValueError:  # well-formed but impossible, such as month 13
            moment = None
        if moment is None:
            self.fail("invalid")
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def to_representation(self, value: datetime) -> str:
        return value.isoformat()


@extend_schema_field({"type": "object", "additionalProperties": {}})
class JsonObjectField(serializers.JSONField):
    """A JSON object (any keys and values)."""


class StringMapField(serializers.DictField):
    """A JSON object of string values (MLflow's tags, params and trace metadata)."""

    child = serializers.CharField(allow_blank=True, trim_whitespace=False)


# --- Errors -------------------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    """The body of a 404, or of a 400 that is not about one field: `{"detail": "..."}`."""

    detail = serializers.CharField()


# A 400 names what is wrong: `{"detail": "..."}` for the request as a whole (malformed JSON, a
# trace that ingest refuses), or DRF's `{"<parameter or field>": ["message", ...]}`.
BAD_REQUEST_SCHEMA = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": {"description": "Messages about the parameter or field so named."},
    "example": {"state": ['"DONE" is not a valid choice.']},
}


# --- Experiments --------------------------------------------------------------------------


_TAG_VALUE = {"maxLength": TAG_VALUE_MAX_CHARS, "pattern": r"^[^\x00]*$"}  # DRF refuses NUL
# Keys as _checked_tag_keys takes them: 1 to 250 characters, no NUL, not all whitespace.
# "Whitespace" is what Python's str.strip() removes, spelt out: JSON Schema's `\s` (ECMA
# 262) is another set (it lacks \x1c-\x1f and \x85, and has \ufeff).
_NOT_SPACE = r"[^\x00\t-\r\x1c- \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
_NOT_BLANK = rf"^[^\x00]*{_NOT_SPACE}[^\x00]*$"  # no NUL, and not blank once stripped
_TAG_KEY = {
    "type": "string",
    "minLength": 1,
    "maxLength": TAG_KEY_MAX_CHARS,
    "pattern": _NOT_BLANK,
}


@extend_schema_field(
    {
        "type": "object",
        "propertyNames": _TAG_KEY,
        "additionalProperties": {**_TAG_VALUE, "type": "string"},
    }
)
class TagsField(serializers.DictField):
    """Tags sent to the API: string values, keys as _checked_tag_keys takes them."""

    child = serializers.CharField(
        allow_blank=True, trim_whitespace=False, max_length=TAG_VALUE_MAX_CHARS
    )


class ExperimentSerializer(serializers.ModelSerializer):
    # MLflow's experiment ids are numeric strings; they stay strings here too.
    experiment_id = serializers.CharField(read_only=True)
    # Not blank once trimmed, no NUL: a pattern says so in the schema. Trimmed by
    # validate_name, after the length check, so that maxLength is of what is sent.
    name = serializers.RegexField(_NOT_BLANK, max_length=500, trim_whitespace=False)
    tags = TagsField(required=False)

    class Meta:
        model = Experiment
        fields = [
            "experiment_id",
            "name",
            "lifecycle_stage",
            "artifact_location",
            "tags",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["lifecycle_stage", "artifact_location", "created_at", "updated_at"]
        # The uniqueness check is the view's: a taken name is a 409 that names it.
        extra_kwargs = {"name": {"validators": []}}

    def validate_name(self, name: str) -> str:
        return name.strip()

    def validate_tags(self, tags: dict[str, str]) -> dict[str, str]:
        return _checked_tag_keys(tags)


class ExperimentFilters(serializers.Serializer):
    name = _text_filter(500, "Exact name.")


# --- Spans --------------------------------------------------------------------------------


class SpanSerializer(serializers.Serializer):
    """A span with its full contents; times in integer nanoseconds since the epoch."""

    span_id = serializers.CharField(
        read_only=True, help_text="8 bytes as 16 lowercase hex characters."
    )
    parent_span_id = serializers.SerializerMethodField(help_text="Null for a root span.")
    name = serializers.CharField(read_only=True)
    span_type = serializers.CharField(
        read_only=True, help_text="LLM, CHAIN, TOOL, RETRIEVER, ... or UNKNOWN."
    )
    status = SpanStatusField(read_only=True)
    status_message = serializers.CharField(read_only=True)
    start_time_ns = serializers.IntegerField(source="start_ns", read_only=True)
    end_time_ns = serializers.IntegerField(
        source="end_ns", read_only=True, allow_null=True, help_text="Null while the span is open."
    )
    duration_ms = serializers.SerializerMethodField()
    # Any JSON value, null too. Not allow_null: in OpenAPI 3.1 drf-spectacular writes that as
    # oneOf [{}, {"type": "null"}], which null matches twice and so fails.
    inputs = serializers.JSONField(read_only=True)
    outputs = serializers.JSONField(read_only=True)
    attributes = JsonObjectField(read_only=True)
    events = serializers.ListField(child=JsonObjectField(), read_only=True)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_parent_span_id(self, span: Span) -> str | None:
        return span.parent_span_id or None

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_duration_ms(self, span: Span) -> float | None:
        duration = span.duration_ns
        return None if duration is None else duration / 1e6


class SpanFilters(serializers.Serializer):
    span_type = _text_filter(32, "e.g. LLM, TOOL.")
    status = SpanStatusFilter(required=False, allow_blank=True)
    name = _text_filter(500, "Exact span name.")


# --- Traces -------------------------------------------------------------------------------


class TraceListSerializer(serializers.ModelSerializer):
    """A row of the trace list: no metadata, no spans."""

    url = serializers.HyperlinkedIdentityField(
        view_name="api-trace-detail", lookup_field="trace_id"
    )
    experiment_id = serializers.CharField(read_only=True)
    state = TraceStateField(read_only=True)
    duration_ms = serializers.FloatField(read_only=True, allow_null=True)
    tags = StringMapField(read_only=True)

    class Meta:
        model = Trace
        fields = [
            "trace_id",
            "url",
            "experiment_id",
            "name",
            "state",
            "request_time",
            "duration_ms",
            "span_count",
            "total_tokens",
            "cost",
            "model_id",
            "request_preview",
            "response_preview",
            "tags",
        ]
        read_only_fields = fields


class TraceSerializer(TraceListSerializer):
    """One trace with its metadata and (up to a cap) its spans in start order."""

    # The view sets `loaded_spans` and `spans_truncated` on the instance.

    metadata = StringMapField(read_only=True)
    spans = SpanSerializer(many=True, read_only=True, source="loaded_spans")
    spans_truncated = serializers.BooleanField(
        read_only=True, help_text="True when the trace has more spans than `spans` holds."
    )
    spans_url = serializers.SerializerMethodField(
        help_text="Every span of the trace, paginated and filterable."
    )

    class Meta(TraceListSerializer.Meta):
        fields = [
            *TraceListSerializer.Meta.fields,
            "metadata",
            "spans_truncated",
            "spans_url",
            "spans",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.URI)
    def get_spans_url(self, trace: Trace) -> str:
        return reverse(
            "api-span-list", kwargs={"trace_id": trace.trace_id}, request=self.context["request"]
        )


class TraceFilters(serializers.Serializer):
    experiment = serializers.IntegerField(
        required=False, min_value=0, max_value=BIGINT_MAX, help_text="Experiment id."
    )
    model = _text_filter(64, "Logged model id (m-...) the trace ran.")
    state = TraceStateFilter(required=False, allow_blank=True)
    name = _text_filter(500, "Exact trace name.")
    name__contains = _text_filter(500, "Part of the trace name, case-insensitive.")
    since = SinceUntilField(
        required=False, help_text="Requested at or after this ISO 8601 time (naive = UTC)."
    )
    until = SinceUntilField(
        required=False, help_text="Requested before this ISO 8601 time (naive = UTC)."
    )
    min_duration_ms = serializers.FloatField(
        required=False, min_value=0, max_value=DURATION_MS_MAX, help_text="At least this long."
    )
    max_duration_ms = serializers.FloatField(
        required=False, min_value=0, max_value=DURATION_MS_MAX, help_text="At most this long."
    )
    tag = serializers.ListField(
        child=serializers.RegexField(
            r"^[^:\x00]+:[^\x00]*$",
            max_length=TAG_KEY_MAX_CHARS + TAG_VALUE_MAX_CHARS + 1,
            trim_whitespace=False,
        ),
        required=False,
        max_length=TAG_FILTERS_MAX,
        help_text="`key:value`, repeatable; a trace must carry every tag given.",
    )

    def validate_tag(self, tags: list[str]) -> list[tuple[str, str]]:
        pairs = []
        for tag in tags:
            key, sep, value = tag.partition(":")
            if not sep or not key:
                raise serializers.ValidationError(f"Each tag must be 'key:value', got {tag!r}.")
            pairs.append((key, value))
        return pairs


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "format": "date-time"},
            {"type": "string", "maxLength": 0, "description": "Unset."},
            {
                "type": "number",
                "description": "Milliseconds since the epoch.",
                # 0001-01-01T00:00:01Z to 9999-12-31T23:59:59Z: Python's datetimes.
                "minimum": -62_135_596_799_000,
                "maximum": 253_402_300_799_000,
            },
        ]
    }
)
class RequestTimeField(serializers.DateTimeField):
    """When the trace started: RFC 3339, or epoch milliseconds (as ingest.timestamp reads
    it). Documentation only: ingest validates it."""


@extend_schema_field(
    {
        "type": ["string", "null"],
        "enum": [*TraceState.values, "STATE_UNSPECIFIED", "", None],
        "description": "Unset, empty or STATE_UNSPECIFIED: IN_PROGRESS.",
    }
)
class TraceInfoStateField(serializers.CharField):
    """A trace's state as MLflow sends it (protobuf's JSON: its unset values too)."""


class TraceInfoV3Serializer(serializers.Serializer):
    """MLflow's TraceInfoV3, as the mlflow client's StartTraceV3 sends it. As in protobuf's
    JSON mapping, null is a field's default: the same as leaving the field out."""

    trace_id = serializers.RegexField(r"^tr-[0-9a-f]{32}$", help_text="`tr-` and 32 hex.")
    trace_location = JsonObjectField(
        required=False,
        allow_null=True,
        help_text='{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": "0"}}',
    )
    request_time = RequestTimeField(required=False, allow_null=True)
    execution_duration = serializers.RegexField(
        r"^([0-9]{1,9}(\.[0-9]{1,9})?s)?$",
        required=False,
        allow_null=True,
        help_text='e.g. "0.085s"; empty is unset.',
    )
    state = TraceInfoStateField(required=False, allow_null=True)
    request_preview = serializers.CharField(required=False, allow_null=True)
    response_preview = serializers.CharField(required=False, allow_null=True)
    trace_metadata = StringMapField(
        required=False, allow_null=True, help_text="`mlflow.modelId` links a logged model."
    )
    tags = StringMapField(required=False, allow_null=True)


class SpanDictSerializer(serializers.Serializer):
    """One span as in MLflow's `traces.json` (OpenTelemetry's span, MLflow attributes).

    No `trace_id`: the spans of a request belong to its `trace_info.trace_id`, so a span's
    own trace id (the mlflow client sends one) is ignored.
    """

    span_id = serializers.RegexField(
        r"^([0-9a-fA-F]{16}|[A-Za-z0-9+/]{11}=)$", help_text="8 bytes, base64 or hex."
    )
    parent_span_id = serializers.RegexField(
        r"^([0-9a-fA-F]{16}|[A-Za-z0-9+/]{11}=)?$", required=False, allow_null=True
    )
    name = serializers.CharField()
    start_time_unix_nano = serializers.IntegerField(min_value=0, max_value=BIGINT_MAX)
    end_time_unix_nano = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=BIGINT_MAX
    )
    # null is accepted as no status (unset), as ingest reads it.
    status = JsonObjectField(
        required=False, allow_null=True, help_text='{"code": "STATUS_CODE_OK", ...}; null: unset'
    )
    attributes = JsonObjectField(
        required=False,
        help_text="Values JSON-encoded, e.g. `mlflow.spanType`, `mlflow.spanInputs`.",
    )
    events = serializers.ListField(child=JsonObjectField(), required=False)


@extend_schema_field(TraceInfoV3Serializer)
class TraceInfoField(serializers.Field):
    """Only checked for being an object here: ingest validates the contents, once."""

    default_error_messages = {"invalid": "Must be a JSON object (MLflow's TraceInfoV3)."}

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            self.fail("invalid")
        return data


@extend_schema_field(SpanDictSerializer(many=True))
class SpanDictsField(serializers.Field):
    """Only checked for being a list here: ingest validates each span, once (DRF's
    ListField/DictField would walk every attribute of every span first)."""

    default_error_messages = {"invalid": "Must be a list of span objects."}

    def to_internal_value(self, data: Any) -> list[Any]:
        if not isinstance(data, list):
            self.fail("invalid")
        return data


class TraceIngestSerializer(serializers.Serializer):
    """A trace in MLflow's shapes. Sending it again updates it; nothing is duplicated."""

    trace_info = TraceInfoField()
    spans = SpanDictsField(required=False, default=list)


@extend_schema_field(
    {
        "type": "object",
        "maxProperties": TAG_CHANGES_MAX,
        "propertyNames": {**_TAG_KEY, "maxLength": TRACE_TAG_KEY_MAX_CHARS},
        "additionalProperties": {
            **_TAG_VALUE,
            "maxLength": TRACE_TAG_VALUE_MAX_CHARS,
            "type": ["string", "null"],
        },
    }
)
class TagChangesField(serializers.DictField):
    """Trace tag changes: a string value sets the tag, null deletes it."""

    child = serializers.CharField(
        allow_null=True,
        allow_blank=True,
        trim_whitespace=False,
        max_length=TRACE_TAG_VALUE_MAX_CHARS,
    )


class TraceTagsSerializer(serializers.Serializer):
    """Tag changes: a string sets a tag, null deletes it; tags not named are left alone."""

    # Optional: a PATCH without it changes nothing (drf-spectacular documents PATCH bodies
    # as partial, and a PATCH is one).
    tags = TagChangesField(
        required=False, default=dict, help_text='e.g. {"reviewed": "yes", "draft": null}'
    )

    def validate_tags(self, tags: dict[str, str | None]) -> dict[str, str | None]:
        if len(tags) > TAG_CHANGES_MAX:
            raise serializers.ValidationError(f"At most {TAG_CHANGES_MAX} tags per request.")
        return _checked_tag_keys(tags, TRACE_TAG_KEY_MAX_CHARS)


class TraceTagsResultSerializer(serializers.Serializer):
    tags = StringMapField(help_text="Every tag of the trace after the change.")


# --- Logged models ------------------------------------------------------------------------


class FiniteFloatField(serializers.FloatField):
    """JSON has no NaN or infinity (MLflow clients log both): they are sent as null."""

    def to_representation(self, value: float) -> float | None:
        value = super().to_representation(value)
        return value if math.isfinite(value) else None


class MetricSerializer(serializers.ModelSerializer):
    value = FiniteFloatField(
        read_only=True, allow_null=True, help_text="null when the value is NaN or infinite"
    )

    class Meta:
        model = Metric
        fields = ["key", "value", "step", "timestamp_ms", "dataset_name", "dataset_digest"]
        read_only_fields = fields


class LoggedModelListSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(
        view_name="api-model-detail", lookup_field="model_id"
    )
    experiment_id = serializers.CharField(read_only=True)
    status = LoggedModelStatusField(read_only=True)
    source_run_id = serializers.CharField(
        source="source_run.run_id", read_only=True, allow_null=True
    )
    git_commit = serializers.CharField(read_only=True)

    class Meta:
        model = LoggedModel
        fields = [
            "model_id",
            "url",
            "name",
            "experiment_id",
            "status",
            "model_type",
            "source_run_id",
            "git_commit",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class LoggedModelSerializer(LoggedModelListSerializer):
    """A model version with its params, tags, config and the latest value of each metric."""

    # The view sets `latest_metrics` and `trace_count` on the instance.

    params = StringMapField(read_only=True)
    tags = StringMapField(read_only=True)
    model_config = JsonObjectField(read_only=True)
    metrics = MetricSerializer(many=True, read_only=True, source="latest_metrics")
    trace_count = serializers.IntegerField(read_only=True)
    traces_url = serializers.SerializerMethodField(help_text="The traces of this version.")

    class Meta(LoggedModelListSerializer.Meta):
        fields = [
            *LoggedModelListSerializer.Meta.fields,
            "status_message",
            "artifact_location",
            "params",
            "tags",
            "model_config",
            "metrics",
            "trace_count",
            "traces_url",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.URI)
    def get_traces_url(self, model: LoggedModel) -> str:
        url = reverse("api-trace-list", request=self.context["request"])
        return f"{url}?{urlencode({'model': model.model_id})}"


class LoggedModelFilters(serializers.Serializer):
    name = _text_filter(500, "Exact model name.")
    experiment = serializers.IntegerField(
        required=False, min_value=0, max_value=BIGINT_MAX, help_text="Experiment id."
    )
    status = LoggedModelStatusFilter(required=False, allow_blank=True)


def _checked_tag_keys(tags: dict[str, Any], max_chars: int = TAG_KEY_MAX_CHARS) -> dict[str, Any]:
    for key in tags:
        if not key.strip() or len(key) > max_chars:
            raise serializers.ValidationError(
                f"Tag keys must be 1 to {max_chars} characters, got {key!r}."
            )
        # DRF checks values for these but not dict keys; PostgreSQL refuses both in jsonb.
        if "\x00" in key or any("\ud800" <= c <= "\udfff" for c in key):
            raise serializers.ValidationError(
                f"Tag keys cannot hold NUL or unpaired surrogate characters, got {key!r}."
            )
    return tags
