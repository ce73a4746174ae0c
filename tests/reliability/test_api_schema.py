"""Schemathesis generates requests from the OpenAPI schemas of the native API (`/api/schema/`)
and of OTLP/JSON at `/v1/traces` (OTLP_SCHEMA below), schema-valid and schema-violating ones,
and runs every check it has on the answers: no 5xx, status codes, content types, headers and
bodies as documented, valid requests accepted and invalid ones refused, authentication not
ignored, deleted resources gone. Any failure is a bug in the server or in its schema.

Driven through hypothesis directly rather than schemathesis' pytest plugin, which does not
run under pytest 9. The examples are the same every run (derandomized), so CI fails for a bug,
not for a lucky draw; EXAMPLES bounds the time. Every check includes "no 5xx"
(`not_a_server_error`), so one run over the examples answers both questions.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.config._checks import POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES
from schemathesis.core.failures import FailureGroup

from tracking.models import Experiment
from webapp.models import ApiToken

# Valid and as many invalid requests per operation; each check is a request or two more.
EXAMPLES = 20
# The trace list's `q` is a query language, which no pattern states: a schema-valid string
# that is not a query gets the 400 the schema documents for it. So the trace list's valid
# requests may get a 400; any other operation's still may not.
QUERY_LANGUAGE = {
    "include-name": "GET /api/v1/traces/",
    "checks": {
        "positive_data_acceptance": {
            "expected-statuses": [*POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES, "400"]
        }
    },
}
_ANY_VALUE_KINDS = ("stringValue", "boolValue", "intValue", "doubleValue")

_ID = {"type": "string", "pattern": "^[0-9a-f]{31}[1-9a-f]$"}  # not all zero
_SPAN_ID = {"type": "string", "pattern": "^[0-9a-f]{15}[1-9a-f]$"}
_NANOS = {
    "oneOf": [
        {"type": "string", "pattern": "^[1-9][0-9]{0,17}$"},
        {"type": "integer", "minimum": 1, "maximum": 10**18},
    ]
}


def _list_of(name: str) -> dict[str, Any]:
    return {"type": "array", "items": {"$ref": f"#/components/schemas/{name}"}}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_STATUS = {
    "type": "object",
    "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
    "required": ["message"],
}
# OTLP/JSON as Spyglass reads it (the OTLP specification, "JSON Protobuf Encoding"): the
# fields a span needs, and the answers, a google.rpc.Status on failure.
OTLP_SCHEMA: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Spyglass OTLP/HTTP", "version": "1"},
    "components": {
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "AnyValue": {
                "type": "object",
                "properties": {
                    "stringValue": {"type": "string"},
                    "boolValue": {"type": "boolean"},
                    "intValue": {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
                    "doubleValue": {"type": "number"},
                },
                # A oneof: at most one value. Unknown fields are ignored (OTLP), so extra
                # properties stay allowed.
                "not": {
                    "anyOf": [
                        {"required": list(pair)}
                        for pair in itertools.combinations(_ANY_VALUE_KINDS, 2)
                    ]
                },
            },
            "KeyValue": {
                "type": "object",  # `key` may be left out: proto3 reads it as ""
                "properties": {
                    "key": {"type": "string"},
                    "value": {"$ref": "#/components/schemas/AnyValue"},
                },
            },
            "Span": {
                "type": "object",
                "required": ["traceId", "spanId", "startTimeUnixNano"],
                "properties": {
                    "traceId": _ID,
                    "spanId": _SPAN_ID,
                    "name": {"type": "string"},
                    "startTimeUnixNano": _NANOS,
                    "attributes": _list_of("KeyValue"),
                },
            },
            "ScopeSpans": {"type": "object", "properties": {"spans": _list_of("Span")}},
            "ResourceSpans": {
                "type": "object",
                "properties": {"scopeSpans": _list_of("ScopeSpans")},
            },
            "ExportTraceServiceRequest": {
                "type": "object",
                "properties": {"resourceSpans": _list_of("ResourceSpans")},
            },
        },
    },
    "security": [{"bearerAuth": []}],
    "paths": {
        "/v1/traces": {
            "post": {
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/ExportTraceServiceRequest"}
                        }
                    },
                },
                "responses": {
                    "200": _json("An empty ExportTraceServiceResponse.", {"type": "object"}),
                    "400": _json("The request cannot be decoded or stored.", _STATUS),
                    "401": _json("No or wrong credentials.", {"type": "object"}),
                    "413": _json("The body is over the size limit.", _STATUS),
                },
            }
        }
    },
}


@pytest.fixture
def keep_the_test_connection() -> Iterator[None]:
    """Requests go straight to the WSGI handler, whose request signals would close the
    connection holding the test's transaction (Django's test client unhooks them too)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def bearer(settings) -> dict[str, str]:
    """Authentication on, as in production, so that `ignored_auth` has something to check."""
    settings.SPYGLASS_AUTH = True
    # `ignored_auth` sends wrong credentials on every operation, far past the login limit,
    # which would answer 429 (tests/webapp/test_login_limits.py); here 401 is what is checked.
    settings.SPYGLASS_LOGIN_RATE = "100000/10m"
    alice = get_user_model().objects.create_user("alice", password="not-used-here")
    _, token = ApiToken.issue(alice, "schemathesis")
    return {"Authorization": f"Bearer {token}"}


def run_checks(schema: Any, headers: dict[str, str], examples: int) -> list[str]:
    """Every check schemathesis has on `examples` valid and as many invalid requests per
    operation; the failures found, as schemathesis words them."""
    failures: list[str] = []
    # Every URL with NUL is refused (webapp/limits.py), whatever its parameters' schemas say;
    # tests/tracking/test_bad_input.py covers that.
    schema.config.generation.update(allow_x00=False)
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=examples,
                derandomize=True,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: Any) -> None:
                try:
                    case.call_and_validate(headers=headers)
                except FailureGroup as failure:
                    failures.append(f"{case.method} {case.path}: {failure}")

            check()
    return failures


def summary(failures: list[str]) -> str:
    return f"{len(failures)} failures, the first 12:\n\n" + "\n\n".join(failures[:12])


def native_schema(headers: dict[str, str]) -> Any:
    from webapp.wsgi import application

    # Something to find, so that detail routes are exercised beyond 404s.
    Experiment.objects.get_or_create(pk=0, defaults={"name": "Default"})
    config = SchemathesisConfig.from_dict({"operations": [QUERY_LANGUAGE]})
    schema = schemathesis.openapi.from_wsgi(
        "/api/schema/?format=json", application, headers=headers, config=config
    )
    assert len(list(schema.get_all_operations())) >= 8  # lists and details of everything
    return schema


def otlp_schema() -> Any:
    from webapp.wsgi import application

    Experiment.objects.get_or_create(pk=0, defaults={"name": "Default"})
    schema = schemathesis.openapi.from_dict(OTLP_SCHEMA)
    schema.app = application
    return schema


@pytest.mark.django_db
@pytest.mark.usefixtures("keep_the_test_connection")
@pytest.mark.parametrize("api", ["native", "otlp"])
def test_every_check_passes_and_no_request_is_a_server_error(bearer, api) -> None:
    schema = native_schema(bearer) if api == "native" else otlp_schema()

    failures = run_checks(schema, bearer, EXAMPLES)

    assert not failures, summary(failures)
