"""The login limit on a real gunicorn, with Redis down: `curl -u alice:wrong-N` is paused
after the limit like the login form, and a correct login still works."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import urllib.parse

import pytest

from tests.reliability.conftest import REPO, free_port, server_env

pytestmark = pytest.mark.services


def basic(username: str, password: str, client: str) -> dict[str, str]:
    value = base64.b64encode(f"{username}:{password}".encode()).decode()
    # The test stands in for the reverse proxy (127.0.0.1 is trusted) of several clients.
    return {"Authorization": f"Basic {value}", "X-Forwarded-For": client}


def create_user(env: dict[str, str], username: str, password: str) -> None:
    code = (
        "from django.contrib.auth.models import User;"
        f"User.objects.create_user({username!r}, password={password!r})"
    )
    subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=REPO, env=env,
                   check=True, timeout=120)  # fmt: skip


def form_login(server, username: str, password: str, client: str) -> tuple[int, dict[str, str]]:
    status, headers, body = server.request("GET", "/accounts/login/")
    assert status == 200
    cookie = headers["Set-Cookie"].split(";")[0]
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1).decode()
    form = urllib.parse.urlencode(
        {"username": username, "password": password, "csrfmiddlewaretoken": token}
    ).encode()
    status, headers, _ = server.request(
        "POST", "/accounts/login/", form,
        {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie,
         "X-Forwarded-For": client,
         "Referer": f"http://{server.host}:{server.port}/accounts/login/"},
    )  # fmt: skip
    return status, headers


def test_basic_guesses_are_paused_like_the_form_and_logins_work_while_redis_is_down(
    tmp_path, database_url, gunicorn
):
    # Nothing listens on this port: Redis is down for the whole test.
    redis_down = f"redis://127.0.0.1:{free_port()}/0"
    env = server_env(tmp_path, database_url, SPYGLASS_AUTH="1", REDIS_URL=redis_down,
                     SPYGLASS_TRUSTED_PROXIES="127.0.0.1")  # fmt: skip
    create_user(env, "alice", "wonder-land-42")
    create_user(env, "bob", "bob-builds-42")
    server = gunicorn(env)

    search = "/api/2.0/mlflow/experiments/search?max_results=1"
    answers = [
        server.request("GET", search, headers=basic("alice", f"wrong-{n}", "198.51.100.7"))
        for n in range(25)
    ]

    statuses = [status for status, _, _ in answers]
    assert statuses == [401] * 10 + [429] * 15  # SPYGLASS_LOGIN_RATE's default: 10/10m
    _, headers, body = answers[-1]
    assert 0 < int(headers["Retry-After"]) <= 600
    assert b"REQUEST_LIMIT_EXCEEDED" in body
    # The login form is paused for alice too, even with her right password from elsewhere...
    assert form_login(server, "alice", "wonder-land-42", "203.0.113.5")[0] == 429
    right = basic("alice", "wonder-land-42", "203.0.113.5")
    assert server.request("GET", "/api/v1/traces/", headers=right)[0] == 429
    # ...and so is anyone at the guesser's address...
    bob_there = basic("bob", "bob-builds-42", "198.51.100.7")
    assert server.request("GET", "/api/v1/traces/", headers=bob_there)[0] == 429
    # ...while bob elsewhere signs in both ways, with Redis down all along.
    status, headers = form_login(server, "bob", "bob-builds-42", "198.51.100.8")
    assert status == 302, headers
    bob = basic("bob", "bob-builds-42", "198.51.100.8")
    assert server.request("GET", "/api/v1/traces/", headers=bob)[0] == 200
