"""The native REST API under /api/v1/ (DRF), documented by its OpenAPI schema.

    /api/v1/experiments/                     list, create
    /api/v1/experiments/<id>/                retrieve
    /api/v1/traces/                          list (filters), POST ingests one trace (MLflow shapes)
    /api/v1/traces/<trace_id>/               retrieve (with spans, capped), DELETE
    /api/v1/traces/<trace_id>/tags/          PATCH or POST: set and delete tags
    /api/v1/traces/<trace_id>/spans/         every span of a trace, in start order (filters)
    /api/v1/models/                          logged models, newest first (filters)
    /api/v1/models/<model_id>/               retrieve, with latest metrics and trace count

Lists are keyset-paginated (`next`/`previous` links), filters are query parameters validated
by the serializers in tracking/serializers.py (a bad value is a 400 naming the parameter),
every write of traces or spans goes through `tracking.ingest`, and tag changes and deletes
through the Trace model's methods.

Access (access/rules.py, applied through tracking/permissions.py): lists hold the rows of
readable experiments only, an object the caller may not read is a 404, a write without EDIT
on the object's experiment a 403, and creating an experiment needs a role that may (its
creator then manages it).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import Field, Model, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.db.models.lookups import Exact
from django.http import QueryDict
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import (
    APIException,
    NotFound,
    ParseError,
    PermissionDenied,
    ValidationError,
)
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.routers import DefaultRouter
from rest_framework.settings import api_settings
from rest_framework.utils.urls import replace_query_param

from access.models import Level
from access.rules import access_for, grant_creator
from tracking import genai_logs, ingest, keyset, search
from tracking import serializers as s
from tracking.models import Experiment, LoggedModel, Span, Trace
from tracking.permissions import ExperimentObjectAccess, require_for_api
from webapp import json_limits
from webapp.auth import IsAuthenticatedWhenAuthOn

# A trace's detail carries this many spans at most; the spans endpoint pages through the rest.
SPANS_INLINE_MAX = 1_000

# What a trace list row shows; `metadata` (token usage, client details) stays behind.
_TRACE_LIST_FIELDS = (
    "trace_id",
    "experiment",
    "name",
    "state",
    "request_time",
    "duration_ns",
    "span_count",
    "total_tokens",
    "cost",
    "model_id",
    "request_preview",
    "response_preview",
    "tags",
)
_MODEL_LIST_FIELDS = (
    "model_id",
    "name",
    "experiment",
    "status",
    "model_type",
    "tags",  # for git_commit
    "created_at",
    "updated_at",
    "source_run",
    "source_run__run_id",
)

# Query parameters that any list takes besides its filters.
_PAGING_PARAMS = {"cursor", "page_size", api_settings.URL_FORMAT_OVERRIDE}

INVALID_CURSOR = "Invalid cursor: use a `next` or `previous` link."
NO_PAGE = OpenApiResponse(s.ErrorSerializer, description=INVALID_CURSOR)
BAD_REQUEST = OpenApiResponse(s.BAD_REQUEST_SCHEMA, description="A parameter or the body is bad.")
TRACE_NOT_FOUND = OpenApiResponse(s.ErrorSerializer, description="No trace with this id.")
TRACE_ID_PATH = OpenApiParameter(
    "trace_id", str, OpenApiParameter.PATH, description="The trace id, `tr-` and 32 hex."
)


class HeaderAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents webapp.auth.HeaderAuthentication: HTTP Basic or a Bearer API token."""

    target_class = "webapp.auth.HeaderAuthentication"
    name = ["basicAuth", "bearerAuth"]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, Any]]:
        return [
            {"type": "http", "scheme": "basic"},
            {"type": "http", "scheme": "bearer", "description": "An API token of a user."},
        ]

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[str]]]:
        return [{"basicAuth": []}, {"bearerAuth": []}]  # either one, not both


class Conflict(APIException):
    """409: the request is well formed but conflicts with what is stored (a taken name)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "Conflict."
    default_code = "conflict"


class BadRequest(APIException):
    """A 400 about the request as a whole: `{"detail": "..."}`."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "Bad request."
    default_code = "bad_request"


class LimitedJSONParser(JSONParser):
    """DRF's JSON parser, parsing under webapp.json_limits' depth limit: a body nested too
    deep is a 400 that names the limit, not a RecursionError."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        try:
            return json_limits.loads(stream.read())
        except json_limits.JsonError as error:
            raise ParseError(f"JSON parse error - the body is {error.message}.") from None


def query_filters(
    filters_class: type[serializers.Serializer],
    request: Request,
    also: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The validated query parameters of a list; a bad value is a 400 naming its parameter.

    `also` names parameters the view reads itself (the trace list's `q`)."""
    # An empty parameter (`?state=`, as a form with a blank field sends it) means "not given".
    params = QueryDict(mutable=True)
    for key, values in request.query_params.lists():
        if kept := [v for v in values if v != ""]:
            params.setlist(key, kept)
    filters = filters_class(data=params)
    # A misspelt filter (`?status=` for `?state=`) would otherwise list everything, unfiltered.
    unknown = set(request.query_params) - set(filters.fields) - _PAGING_PARAMS - also
    if unknown:
        known = ", ".join([*filters.fields, *sorted(also), *sorted(_PAGING_PARAMS)])
        raise ValidationError(
            {name: [f"Unknown query parameter; this list takes {known}."] for name in unknown}
        )
    filters.is_valid(raise_exception=True)
    return filters.validated_data


# --- Keyset pagination --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Cursor:
    position: list[Any]  # the ordering values of the row the page starts after
    reverse: bool  # True: the page before that row (a `previous` link)


class KeysetPagination(CursorPagination):
    """Pages that start after the last row shown (tracking/keyset.py).

    DRF's CursorPagination keys on the first ordering column alone and steps over ties with
    an OFFSET; traces stored by one bulk ingest share a request_time, so pages there cost more
    and, past `offset_cutoff` ties, skip rows. This cursor carries every ordering value (the
    last one unique), so a page is one index range scan: no OFFSET, no COUNT. Links, response
    shape and schema are DRF's.
    """

    ordering: tuple[str, ...] = ("-pk",)
    page_size_query_param = "page_size"
    max_page_size = 500

    def paginate_queryset(
        self, queryset: QuerySet, request: Request, view: Any = None
    ) -> list[Model]:
        self.request = request
        self.base_url = request.build_absolute_uri()
        self.page_size = self.get_page_size(request)
        self.cursor = self.decode_cursor(request, queryset.model)
        reverse_page = self.cursor is not None and self.cursor.reverse
        order = list(self.ordering)
        if reverse_page:
            order = [keyset.reverse_order(name) for name in order]
        condition = None if self.cursor is None else keyset.after(order, self.cursor.position)
        self.page, more = keyset.page(queryset, order, condition, self.page_size)
        if reverse_page:
            self.page.reverse()
            self.has_next, self.has_previous = True, more
        else:
            self.has_next, self.has_previous = more, self.cursor is not None
        return self.page

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param, "")
        if raw == "":
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if not 1 <= size <= self.max_page_size:
            raise ValidationError(
                {"page_size": [f"Must be an integer from 1 to {self.max_page_size}."]}
            )
        return size

    def get_next_link(self) -> str | None:
        if not (self.has_next and self.page):
            return None
        return self._link(self.page[-1], reverse=False)

    def get_previous_link(self) -> str | None:
        if not (self.has_previous and self.page):
            return None
        return self._link(self.page[0], reverse=True)

    def decode_cursor(self, request: Request, model: type[Model]) -> _Cursor | None:
        raw = request.query_params.get(self.cursor_query_param, "")
        if not raw:
            return None
        try:
            data = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
            values = data["p"]
            if not isinstance(values, list) or len(values) != len(self.ordering):
                raise ValueError("wrong number of values")
            position = [
                _cursor_value(_ordering_field(model, name), value)
                for name, value in zip(self.ordering, values, strict=True)
            ]
            return _Cursor(position, reverse=bool(data.get("r")))
        except (ValueError, TypeError, KeyError, binascii.Error, DjangoValidationError):
            # As DRF's own cursors answer: a page that no link names does not exist.
            raise NotFound(INVALID_CURSOR) from None

    def _link(self, row: Model, reverse: bool) -> str:
        values = [getattr(row, name.lstrip("-")) for name in self.ordering]
        # orjson writes aware datetimes as RFC 3339 with their microseconds.
        token = base64.urlsafe_b64encode(orjson.dumps({"p": values, "r": int(reverse)}))
        return replace_query_param(
            self.base_url, self.cursor_query_param, token.rstrip(b"=").decode()
        )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        paged = super().get_paginated_response_schema(schema)
        # DRF writes OpenAPI 3.0's `nullable`, which 3.1 (JSON Schema) does not know: there
        # a null link has to be one of the types.
        for link in ("next", "previous"):
            prop = paged["properties"][link]
            if prop.pop("nullable", False):
                prop["type"] = [prop["type"], "null"]
        return paged

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(
                    minimum=1, maximum=self.max_page_size, default=self.page_size
                )
        return parameters


def _ordering_field(model: type[Model], name: str) -> Field:
    name = name.lstrip("-")
    return model._meta.pk if name == "pk" else model._meta.get_field(name)


def _cursor_value(field: Field, value: Any) -> Any:
    """A cursor value back to its column's type; ValueError for anything a client made up."""
    if value is None:
        raise ValueError("keyset columns are never null")
    parsed = field.to_python(value)
    if isinstance(parsed, datetime) and parsed.tzinfo is None:
        raise ValueError("cursor times carry their offset")
    if isinstance(parsed, int) and not -(2**63) <= parsed < 2**63:
        raise ValueError("out of range")  # a bigint column; SQLite would raise OverflowError
    return parsed


class NewestFirstPagination(KeysetPagination):
    ordering = ("-created_at", "-pk")


class TracePagination(KeysetPagination):
    ordering = ("-request_time", "-pk")  # the trace_time_idx index, and its per-filter twins


class SpanPagination(KeysetPagination):
    ordering = ("start_ns", "pk")
    # Traces of a few hundred spans are common; a page should usually hold a whole one.
    page_size = 200
    max_page_size = SPANS_INLINE_MAX


class ReadableViewSet(viewsets.GenericViewSet):
    """A viewset over rows of experiments: only readable ones exist for the caller, and
    writes need the levels its `write_levels` names per action."""

    permission_classes = [IsAuthenticatedWhenAuthOn, ExperimentObjectAccess]
    experiment_field = "experiment_id"
    write_levels: dict[str, Level] = {}

    def readable(self, queryset: QuerySet) -> QuerySet:
        return access_for(self.request._request).readable(queryset, self.experiment_field)


# --- Experiments --------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="List experiments, newest first",
        parameters=[s.ExperimentFilters],
        responses={200: s.ExperimentSerializer(many=True), 400: BAD_REQUEST, 404: NO_PAGE},
    ),
    retrieve=extend_schema(
        summary="Get an experiment",
        parameters=[OpenApiParameter("experiment_id", int, OpenApiParameter.PATH)],
        responses={200: s.ExperimentSerializer, 404: OpenApiResponse(s.ErrorSerializer)},
    ),
    create=extend_schema(
        summary="Create an experiment",
        responses={
            201: s.ExperimentSerializer,
            400: BAD_REQUEST,
            409: OpenApiResponse(
                s.BAD_REQUEST_SCHEMA, description="An experiment with this name exists."
            ),
        },
    ),
)
@extend_schema(tags=["experiments"])
class ExperimentViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    ReadableViewSet,
):
    queryset = Experiment.objects.all()
    experiment_field = "pk"
    serializer_class = s.ExperimentSerializer
    pagination_class = NewestFirstPagination
    parser_classes = [LimitedJSONParser]
    lookup_url_kwarg = "experiment_id"
    lookup_value_regex = "[^/]+"  # checked by get_object

    def get_object(self) -> Experiment:
        # Any path segment reaches here (not only digits, so that a wrong one is a JSON 404
        # rather than Django's HTML page); one past a bigint is no experiment either.
        raw = self.kwargs[self.lookup_url_kwarg]
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
            raise NotFound(f"No experiment with id {raw!r}.")
        return super().get_object()

    def get_queryset(self) -> QuerySet[Experiment]:
        return self.readable(Experiment.objects.all())

    def filter_queryset(self, queryset: QuerySet[Experiment]) -> QuerySet[Experiment]:
        if self.action != "list":
            return queryset
        return queryset.filter(**query_filters(s.ExperimentFilters, self.request))

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        access = access_for(request._request)
        if not access.can_create_experiments:
            raise PermissionDenied("Permission denied: your role may not create experiments.")
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer: s.ExperimentSerializer) -> None:
        name = serializer.validated_data["name"]
        taken = Conflict({"name": [f"An experiment named {name!r} already exists."]})
        if Experiment.objects.filter(name=name).exists():
            raise taken
        try:
            with transaction.atomic():
                data = serializer.validated_data
                experiment = Experiment.objects.create_named(name, tags=data.get("tags"))
                grant_creator(experiment, access_for(self.request._request))
                serializer.instance = experiment
        except IntegrityError:  # created concurrently, after the check above
            raise taken from None


# --- Traces -------------------------------------------------------------------------------


_INGEST_EXAMPLE = {
    "trace_info": {
        "trace_id": "tr-0af7651916cd43dd8448eb211c80319c",
        "trace_location": {
            "type": "MLFLOW_EXPERIMENT",
            "mlflow_experiment": {"experiment_id": "0"},
        },
        "request_time": "2025-06-01T12:00:00Z",
        "execution_duration": "1.250s",
        "state": "OK",
        "trace_metadata": {"mlflow.modelId": "m-8a5c0bf27e0f4b8fa7e1e5f1c3d2b4a6"},
        "tags": {"mlflow.traceName": "answer"},
    },
    "spans": [
        {
            "trace_id": "CvdlGRbNQ92ESOshHIAxnA==",
            "span_id": "APZ1x3Nv4Ic=",
            "parent_span_id": None,
            "name": "answer",
            "start_time_unix_nano": 1748779200000000000,
            "end_time_unix_nano": 1748779201250000000,
            "status": {"code": "STATUS_CODE_OK", "message": ""},
            "attributes": {
                "mlflow.spanType": '"CHAIN"',
                "mlflow.spanInputs": '{"question": "hi"}',
                "mlflow.spanOutputs": '"hello"',
            },
            "events": [],
        }
    ],
}


@extend_schema_view(
    list=extend_schema(
        summary="List traces, newest first",
        parameters=[
            s.TraceFilters,
            OpenApiParameter(
                "q",
                str,
                description="A query in the trace list's language, as on /traces/: "
                "`state = ERROR and duration > 2s`, `tag.env = prod or refund`. "
                "An invalid one is a 400 giving the position of the error.",
            ),
        ],
        responses={200: s.TraceListSerializer(many=True), 400: BAD_REQUEST, 404: NO_PAGE},
    ),
    retrieve=extend_schema(
        summary="Get a trace with its metadata, tags and spans",
        description=f"At most {SPANS_INLINE_MAX} spans, in start order; `spans_truncated` "
        "says when there are more, and `spans_url` pages through all of them.",
        responses={200: s.TraceSerializer, 404: TRACE_NOT_FOUND},
    ),
    destroy=extend_schema(
        summary="Delete a trace and its spans",
        responses={204: None, 404: TRACE_NOT_FOUND},
    ),
)
@extend_schema(tags=["traces"])
class TraceViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    ReadableViewSet,
):
    queryset = Trace.objects.all()
    write_levels = {"destroy": Level.EDIT, "tags": Level.EDIT}
    serializer_class = s.TraceSerializer
    pagination_class = TracePagination
    parser_classes = [LimitedJSONParser]
    lookup_field = "trace_id"
    lookup_value_regex = "[^/]+"  # a wrong id is a JSON 404, not Django's HTML page

    def get_queryset(self) -> QuerySet[Trace]:
        if self.action == "list":
            traces = Trace.objects.only(*_TRACE_LIST_FIELDS)
        elif self.action == "tags":
            traces = Trace.objects.for_tag_change()
        elif self.action == "destroy":
            traces = Trace.objects.only("trace_id", "experiment", "session_id")
        else:
            traces = Trace.objects.all()
        return self.readable(traces)

    def get_serializer_class(self) -> type[serializers.Serializer]:
        if self.action == "list":
            return s.TraceListSerializer
        if self.action == "create":
            return s.TraceIngestSerializer
        return s.TraceSerializer

    def filter_queryset(self, queryset: QuerySet[Trace]) -> QuerySet[Trace]:
        if self.action != "list":
            return queryset
        filters = query_filters(s.TraceFilters, self.request, also=frozenset({"q"}))
        try:
            queryset = queryset.filter(search.compile_query(self.request.query_params.get("q", "")))
        except search.SearchError as error:
            raise ValidationError({"q": [str(error)]}) from None
        lookups = {
            "experiment": "experiment_id",
            "model": "model_id",
            "state": "state",
            "name": "name",
            "name__contains": "name__icontains",  # alike on SQLite and PostgreSQL
            "since": "request_time__gte",
            "until": "request_time__lt",
        }
        queryset = queryset.filter(**{lookups[k]: v for k, v in filters.items() if k in lookups})
        if "min_duration_ms" in filters:
            queryset = queryset.filter(duration_ns__gte=round(filters["min_duration_ms"] * 1e6))
        if "max_duration_ms" in filters:
            queryset = queryset.filter(duration_ns__lte=round(filters["max_duration_ms"] * 1e6))
        for key, value in filters.get("tag", []):
            # A text key transform, not `tags__<key>=`: keys have dots and may contain "__",
            # and the value compares as text, not as JSON.
            queryset = queryset.filter(Exact(KeyTextTransform(key, "tags"), value))
        return queryset

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(self._detail(self.get_object()))

    @extend_schema(
        summary="Store a trace (MLflow's TraceInfoV3 and traces.json spans)",
        description="Idempotent: sending a trace again updates it and never duplicates a "
        "span. 201 when the trace is new, 200 when it existed. The spans are spans of "
        "`trace_info.trace_id`: a span's own `trace_id`, if sent, is ignored. A span that "
        "ends before it starts (a clock stepped back) is stored as ending when it starts.",
        request=s.TraceIngestSerializer,
        responses={
            201: s.TraceSerializer,
            200: s.TraceSerializer,
            400: BAD_REQUEST,
        },
        examples=[OpenApiExample("A trace of one span", value=_INGEST_EXAMPLE, request_only=True)],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = s.TraceIngestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            info = ingest.parse_trace_info(body.validated_data["trace_info"])
            spans = [
                _span_of(info.trace_id, span, f"spans[{i}]")
                for i, span in enumerate(body.validated_data["spans"])
            ]
            self._require_edit(info)
            result = ingest.store([info], spans)
            genai_logs.join((span.trace_id, span.span_id) for span in spans)
        except ingest.IngestError as exc:
            raise BadRequest(exc.message) from None
        trace = Trace.objects.get(trace_id=info.trace_id)
        location = reverse("api-trace-detail", kwargs={"trace_id": trace.trace_id}, request=request)
        return Response(
            self._detail(trace),
            status=status.HTTP_201_CREATED if result.traces_created else status.HTTP_200_OK,
            headers={"Location": location},
        )

    def _require_edit(self, info: ingest.TraceInfo) -> None:
        """EDIT on the experiment the trace is filed in, and on the one it is in already."""
        access = access_for(self.request._request)
        if access.can_everywhere(Level.EDIT):
            return
        require_for_api(access, Level.EDIT, info.experiment_id)
        stored_in = (
            Trace.objects.filter(trace_id=info.trace_id)
            .values_list("experiment_id", flat=True)
            .first()
        )
        if stored_in is not None:
            require_for_api(access, Level.EDIT, stored_in)

    def perform_destroy(self, instance: Trace) -> None:
        instance.delete_with_documents()

    @extend_schema(
        summary="Set and delete tags of a trace",
        description="A string value sets the tag, null deletes it; other tags are left "
        "alone. PATCH and POST do the same. Answers with every tag of the trace.",
        parameters=[TRACE_ID_PATH],
        request=s.TraceTagsSerializer,
        responses={200: s.TraceTagsResultSerializer, 400: BAD_REQUEST, 404: TRACE_NOT_FOUND},
    )
    @action(detail=True, methods=["patch", "post"], url_path="tags", url_name="tags")
    def tags(self, request: Request, trace_id: str) -> Response:
        body = s.TraceTagsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        changes: dict[str, str | None] = body.validated_data["tags"]
        with transaction.atomic():  # get_object locks the row (for_tag_change)
            trace = self.get_object()
            trace.change_tags(changes)
        return Response({"tags": trace.tags})

    def _detail(self, trace: Trace) -> dict[str, Any]:
        # Span.objects, not trace.spans: each related row would read its trace back.
        spans = Span.objects.filter(trace=trace).order_by("start_ns", "pk")
        loaded = list(spans[: SPANS_INLINE_MAX + 1])
        trace.spans_truncated = len(loaded) > SPANS_INLINE_MAX
        trace.loaded_spans = loaded[:SPANS_INLINE_MAX]
        return s.TraceSerializer(trace, context=self.get_serializer_context()).data


def _span_of(trace_id: str, data: Any, where: str) -> ingest.SpanData:
    """A span posted with a trace, as a span of that trace whatever trace id it carries."""
    if isinstance(data, dict):
        # parse_span needs a well-formed id; the request's trace is the one that counts.
        data = {**data, "trace_id": trace_id.removeprefix("tr-")}
    span = ingest.parse_span(data, where)
    span.trace_id = trace_id  # also over an `mlflow.traceRequestId` attribute
    return span


@extend_schema_view(
    list=extend_schema(
        summary="List the spans of a trace, in start order",
        parameters=[TRACE_ID_PATH, s.SpanFilters],
        responses={200: s.SpanSerializer(many=True), 400: BAD_REQUEST, 404: TRACE_NOT_FOUND},
    ),
)
@extend_schema(tags=["traces"])
class SpanViewSet(mixins.ListModelMixin, ReadableViewSet):
    serializer_class = s.SpanSerializer
    pagination_class = SpanPagination

    def get_queryset(self) -> QuerySet[Span]:
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular, building the schema
            return Span.objects.none()
        trace_id = self.kwargs["trace_id"]
        traces = self.readable(Trace.objects.filter(trace_id=trace_id))
        trace_pk = traces.values_list("pk", flat=True).first()
        if trace_pk is None:
            raise NotFound(f"No trace with id {trace_id!r}.")
        return Span.objects.filter(trace_id=trace_pk)

    def filter_queryset(self, queryset: QuerySet[Span]) -> QuerySet[Span]:
        return queryset.filter(**query_filters(s.SpanFilters, self.request))


# --- Logged models ------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="List logged models (agent versions), newest first",
        parameters=[s.LoggedModelFilters],
        responses={200: s.LoggedModelListSerializer(many=True), 400: BAD_REQUEST, 404: NO_PAGE},
    ),
    retrieve=extend_schema(
        summary="Get a logged model with params, config, latest metrics and trace count",
        responses={
            200: s.LoggedModelSerializer,
            404: OpenApiResponse(s.ErrorSerializer, description="No model with this id."),
        },
    ),
)
@extend_schema(tags=["models"])
class LoggedModelViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ReadableViewSet):
    queryset = LoggedModel.objects.all()
    serializer_class = s.LoggedModelSerializer
    pagination_class = NewestFirstPagination
    lookup_field = "model_id"
    lookup_value_regex = "[^/]+"  # a wrong id is a JSON 404, not Django's HTML page

    def get_queryset(self) -> QuerySet[LoggedModel]:
        models = self.readable(LoggedModel.objects.select_related("source_run"))
        if self.action == "list":
            return models.only(*_MODEL_LIST_FIELDS)
        return models

    def get_serializer_class(self) -> type[serializers.Serializer]:
        return s.LoggedModelListSerializer if self.action == "list" else s.LoggedModelSerializer

    def filter_queryset(self, queryset: QuerySet[LoggedModel]) -> QuerySet[LoggedModel]:
        if self.action != "list":
            return queryset
        filters = query_filters(s.LoggedModelFilters, self.request)
        lookups = {"name": "name", "experiment": "experiment_id", "status": "status"}
        return queryset.filter(**{lookups[k]: v for k, v in filters.items()})

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        model = self.get_object()
        model.latest_metrics = list(model.metrics.latest_per_key())
        traces = self.readable(Trace.objects.for_model(model.model_id))
        model.trace_count = traces.count()
        return Response(self.get_serializer(model).data)


router = DefaultRouter()
router.register("experiments", ExperimentViewSet, basename="api-experiment")
router.register("traces", TraceViewSet, basename="api-trace")
router.register(r"traces/(?P<trace_id>[^/]+)/spans", SpanViewSet, basename="api-span")
router.register("models", LoggedModelViewSet, basename="api-model")
