"""Security headers, CSRF on page forms and the login rate limit."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client


@pytest.fixture(autouse=True)
def _fresh_counts():
    cache.clear()  # rate-limit counters live in the cache
    yield
    cache.clear()


@pytest.mark.django_db
def test_pages_carry_a_strict_content_security_policy(client):
    response = client.get("/traces/")

    policy = dict(
        directive.strip().split(" ", 1)
        for directive in response["Content-Security-Policy"].split(";")
    )
    assert policy["script-src"] == "'self'"
    assert "unsafe-inline" not in policy["script-src"]
    assert policy["style-src-elem"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'"
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


@pytest.mark.django_db
def test_the_api_docs_page_has_no_inline_script(client):
    response = client.get("/api/docs/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "<script>" not in html.replace(" ", "")
    assert "<script src=" in html


@pytest.mark.django_db
def test_a_page_form_without_its_csrf_token_is_refused(settings):
    settings.SPYGLASS_AUTH = True
    User.objects.create_user("alice", password="wonder-land-42")
    browser = Client(enforce_csrf_checks=True)
    browser.login(username="alice", password="wonder-land-42")

    response = browser.post("/settings/tokens/", {"name": "ci", "scope": "write"})

    assert response.status_code == 403
    assert not User.objects.get().api_tokens.exists()


@pytest.mark.django_db
def test_failed_logins_pause_after_the_limit_and_say_so(client, settings):
    settings.SPYGLASS_LOGIN_RATE = "3/10m"
    User.objects.create_user("alice", password="wonder-land-42")
    for _ in range(3):
        response = client.post("/accounts/login/", {"username": "alice", "password": "guess"})
        assert response.status_code == 200

    response = client.post("/accounts/login/", {"username": "alice", "password": "wonder-land-42"})

    assert response.status_code == 429
    assert 590 <= int(response["Retry-After"]) <= 600  # the rest of the ten-minute window
    assert "Too many failed attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session  # even the right password waits


@pytest.mark.django_db
def test_the_username_limit_holds_across_addresses(client, settings):
    settings.SPYGLASS_LOGIN_RATE = "2/10m"
    User.objects.create_user("alice", password="wonder-land-42")
    for address in ("10.0.0.1", "10.0.0.2"):
        client.post("/accounts/login/", {"username": "Alice", "password": "x"}, REMOTE_ADDR=address)

    response = client.post(
        "/accounts/login/", {"username": "alice", "password": "x"}, REMOTE_ADDR="10.0.0.3"
    )

    assert response.status_code == 429


@pytest.mark.django_db
def test_successful_logins_do_not_count(client, settings):
    settings.SPYGLASS_LOGIN_RATE = "2/10m"
    User.objects.create_user("alice", password="wonder-land-42")
    for _ in range(4):
        response = client.post(
            "/accounts/login/", {"username": "alice", "password": "wonder-land-42"}
        )
        assert response.status_code == 302
        client.logout()
