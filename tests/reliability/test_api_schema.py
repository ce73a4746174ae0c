"""Schemathesis generates requests from the native API's OpenAPI schema (`/api/schema/`):
none of them, however odd, may get a 5xx.

Driven through hypothesis directly rather than schemathesis' pytest plugin, which does not
run under pytest 9.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tracking.models import Experiment

EXAMPLES_PER_OPERATION = 50


@pytest.fixture
def keep_the_test_connection() -> Iterator[None]:
    """Requests go straight to the WSGI handler, whose request signals would close the
    connection holding the test's transaction (Django's test client unhooks them too)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.django_db
@pytest.mark.usefixtures("keep_the_test_connection")
def test_no_generated_request_is_a_server_error() -> None:
    from webapp.wsgi import application

    # Something to find, so that detail routes are exercised beyond 404s.
    Experiment.objects.get_or_create(pk=0, defaults={"name": "Default"})
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8  # traces, spans, models, experiments: lists and details

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            # The same examples every run: CI fails for a bug, not for a lucky draw.
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case) -> None:
            case.call_and_validate(checks=[not_a_server_error])

        check()
