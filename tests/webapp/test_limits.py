"""Request size limits per kind of endpoint: pages and the native API take small bodies,
ingest whole traces; each answers 413 with a message in its own shape."""

from __future__ import annotations

import pytest

BIG = b"x" * 3_000


@pytest.fixture(autouse=True)
def small_limits(settings):
    settings.SPYGLASS_MAX_PAGE_BYTES = 2_000
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000


def test_a_page_form_over_the_page_limit_is_refused_unread(client):
    response = client.post(
        "/accounts/login/", BIG, content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 413
    assert "over this endpoint's limit of 2,000" in response.content.decode()


def test_the_native_api_answers_json(client):
    response = client.post("/api/v1/traces/", BIG, content_type="application/json")

    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


@pytest.mark.django_db
def test_ingest_takes_bodies_far_over_the_page_limit(client):
    response = client.post(
        "/api/2.0/mlflow/experiments/create",
        b'{"name": "' + b"e" * 2_500 + b'"}',
        content_type="application/json",
    )

    assert response.status_code != 413


@pytest.mark.django_db
def test_ingest_over_its_own_limit_answers_in_its_protocol(client):
    response = client.post(
        "/api/2.0/mlflow/runs/create", b"{" + b" " * 20_000 + b"}", content_type="application/json"
    )

    assert response.status_code == 413
    assert response.json()["error_code"] == "RESOURCE_LIMIT_EXCEEDED"
