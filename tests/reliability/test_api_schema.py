"""Schemathesis generates requests from the native API's OpenAPI schema (`/api/schema/`):
none of them, however odd, may get a 5xx.

Driven through hypothesis directly rather than schemathesis' pytest plugin, which does not
run under pytest 9.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tracking.models import Experiment

EXAMPLES_PER_OPERATION = 30


@pytest.mark.django_db
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
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case) -> None:
            case.call_and_validate(checks=[not_a_server_error])

        check()
