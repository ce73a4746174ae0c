"""One limit on password guessing: the login form and HTTP Basic count against it together,
per username and per client address, in the database (so it holds while Redis is down)."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from django.test import RequestFactory

from webapp import auth, login_limits
from webapp.models import LoginFailure


@pytest.fixture(autouse=True)
def _auth_on_and_no_remembered_basic(settings):
    settings.SPYGLASS_AUTH = True
    settings.SPYGLASS_LOGIN_RATE = "3/10m"
    auth._basic_cache.clear()


def basic(username: str, password: str, **extra: str) -> dict[str, str]:
    value = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {value}", **extra}


def test_basic_guesses_pause_with_429_retry_after_and_mlflow_json(client, alice):
    statuses = [
        client.get("/api/2.0/mlflow/experiments/search", **basic("alice", f"wrong-{n}"))
        for n in range(5)
    ]

    assert [r.status_code for r in statuses] == [401, 401, 401, 429, 429]
    paused = statuses[-1]
    assert 590 <= int(paused["Retry-After"]) <= 600
    assert paused.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"


def test_the_right_basic_password_is_not_even_checked_during_the_pause(client, alice, monkeypatch):
    for n in range(3):
        client.get("/api/2.0/mlflow/experiments/search", **basic("alice", f"wrong-{n}"))
    checked = []
    monkeypatch.setattr(auth, "authenticate", lambda **kw: checked.append(kw) or alice)

    response = client.get("/api/2.0/mlflow/experiments/search", **basic("alice", "wonder-land-42"))

    assert response.status_code == 429
    assert checked == []


def test_basic_failures_lock_the_login_form_and_form_failures_lock_basic(client, alice):
    for n in range(3):
        client.get("/api/v1/traces/", **basic("alice", f"wrong-{n}"))

    form = client.post("/accounts/login/", {"username": "alice", "password": "wonder-land-42"})
    assert form.status_code == 429
    assert "_auth_user_id" not in client.session

    LoginFailure.objects.all().delete()
    for _ in range(3):
        client.post("/accounts/login/", {"username": "alice", "password": "guess"})
    api = client.get("/api/v1/traces/", **basic("alice", "wonder-land-42"))
    assert api.status_code == 429
    assert "detail" in api.json()  # the native API's error shape


def test_the_address_limit_holds_across_usernames(client, alice):
    for name in ("bob", "carol", "dave"):
        client.get("/api/v1/traces/", **basic(name, "x"), REMOTE_ADDR="10.0.0.7")

    from_there = client.get("/api/v1/traces/", **basic("alice", "x"), REMOTE_ADDR="10.0.0.7")
    elsewhere = client.get(
        "/api/v1/traces/", **basic("alice", "wonder-land-42"), REMOTE_ADDR="10.0.0.8"
    )

    assert from_there.status_code == 429
    assert elsewhere.status_code == 200


def test_a_window_that_ended_counts_again_from_zero(client, alice):
    for n in range(3):
        client.get("/api/v1/traces/", **basic("alice", f"wrong-{n}"))
    LoginFailure.objects.update(window_start=LoginFailure.objects.first().window_start
                                - timedelta(minutes=11))  # fmt: skip

    response = client.get("/api/v1/traces/", **basic("alice", "wonder-land-42"))

    assert response.status_code == 200


def test_usernames_are_stored_hashed(client, alice):
    # People type their password into the username field.
    client.post("/accounts/login/", {"username": "wonder-land-42", "password": "alice"})

    stored = " ".join(LoginFailure.objects.values_list("key_hash", flat=True))
    assert "wonder" not in stored
    assert LoginFailure.objects.count() == 2  # the username and the address


def test_the_forwarded_address_counts_only_from_a_trusted_proxy(settings):
    factory = RequestFactory()
    spoofed = factory.get("/", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert login_limits.client_address(spoofed) == "203.0.113.9"

    settings.SPYGLASS_TRUSTED_PROXIES = ["172.28.0.0/24"]
    proxied = factory.get(
        "/", REMOTE_ADDR="172.28.0.10", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.4"
    )
    # The client wrote 6.6.6.6 itself; our proxy appended the address it saw.
    assert login_limits.client_address(proxied) == "198.51.100.4"
    assert login_limits.client_address(spoofed) == "203.0.113.9"
    garbage = factory.get("/", REMOTE_ADDR="172.28.0.10", HTTP_X_FORWARDED_FOR="not-an-ip")
    assert login_limits.client_address(garbage) == "172.28.0.10"


@pytest.mark.parametrize(
    ("rate", "parsed"), [("10/10m", (10, 600)), ("5/h", (5, 3600)), ("3/30s", (3, 30))]
)
def test_rates_are_read_like_ten_per_ten_minutes(rate, parsed):
    assert login_limits.parse_rate(rate) == parsed


def test_a_malformed_rate_is_refused_with_its_form():
    with pytest.raises(ValueError, match="10/10m"):
        login_limits.parse_rate("ten a minute")
