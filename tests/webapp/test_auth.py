from __future__ import annotations

import ast
import base64
import os
import subprocess
import sys

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from tests.conftest import REPO
from webapp.loopback import is_loopback_bind
from webapp.management.commands.serve import Command as ServeCommand
from webapp.models import ApiToken, hash_token


def basic(username: str, password: str) -> dict[str, str]:
    value = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {value}"}


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


@pytest.mark.django_db
def test_pages_redirect_to_the_login_page(client, auth_on):
    response = client.get("/traces/?model=x")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/traces/%3Fmodel%3Dx"


@pytest.mark.django_db
def test_login_page_and_healthz_need_no_login(client, auth_on):
    assert client.get("/accounts/login/").status_code == 200
    assert client.get("/healthz").status_code in (200, 503)


def test_a_user_logs_in_and_sees_pages(client, auth_on, alice):
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": "wonder-land-42", "next": "/traces/"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/traces/"
    assert client.get("/traces/").status_code == 200


def test_a_wrong_password_shows_an_inline_error(client, auth_on, alice):
    response = client.post("/accounts/login/", {"username": "alice", "password": "nope"})

    assert response.status_code == 200
    assert b"Wrong username or password" in response.content


@pytest.mark.django_db
def test_mlflow_paths_without_credentials_get_mlflow_error_json(client, auth_on):
    response = client.get("/api/2.0/mlflow/experiments/get?experiment_id=0")

    assert response.status_code == 401
    assert response.json()["error_code"] == "UNAUTHENTICATED"
    assert response["WWW-Authenticate"].startswith("Basic")


@pytest.mark.django_db
def test_native_api_without_credentials_gets_401(client, auth_on):
    response = client.get("/api/schema/")

    assert response.status_code == 401
    assert "detail" in response.json()


def test_basic_credentials_are_accepted(client, auth_on, alice):
    assert client.get("/api/schema/", **basic("alice", "wonder-land-42")).status_code == 200


def test_wrong_basic_credentials_are_refused(client, auth_on, alice):
    response = client.get("/api/3.0/mlflow/traces/x", **basic("alice", "guess"))

    assert response.status_code == 401
    assert response.json() == {
        "error_code": "UNAUTHENTICATED",
        "message": "Invalid username or password.",
    }


def test_a_bearer_token_is_accepted_and_stored_hashed(client, auth_on, alice):
    token, plaintext = ApiToken.issue(alice, "ci")

    response = client.get("/api/schema/", **bearer(plaintext))

    assert response.status_code == 200
    token.refresh_from_db()
    assert token.token_hash == hash_token(plaintext)
    assert plaintext not in (token.token_hash, token.hint)
    assert token.last_used_at is not None


def test_a_revoked_token_is_refused(client, auth_on, alice):
    token, plaintext = ApiToken.issue(alice, "ci")
    token.revoke()

    response = client.get("/api/2.0/mlflow/experiments/get?experiment_id=0", **bearer(plaintext))

    assert response.status_code == 401
    assert response.json()["message"] == "Invalid or revoked token."


def test_a_token_of_an_inactive_user_is_refused(client, auth_on, alice):
    _, plaintext = ApiToken.issue(alice, "ci")
    alice.is_active = False
    alice.save()

    assert client.get("/api/schema/", **bearer(plaintext)).status_code == 401


def test_a_read_only_token_cannot_write(client, auth_on, alice):
    _, plaintext = ApiToken.issue(alice, "dashboards", scope="read")

    response = client.post(
        "/api/2.0/mlflow/experiments/create",
        data={"name": "x"},
        content_type="application/json",
        **bearer(plaintext),
    )

    assert response.status_code == 403
    assert response.json()["error_code"] == "PERMISSION_DENIED"


def test_a_logged_in_browser_may_read_the_api(client, auth_on, alice):
    client.force_login(alice)

    assert client.get("/api/schema/").status_code == 200


def test_the_tokens_page_issues_a_token_once_and_revokes_it(client, auth_on, alice):
    client.force_login(alice)

    response = client.post("/settings/tokens/", {"name": "ci-evals", "scope": "write"})

    assert response.status_code == 200
    token = alice.api_tokens.get()
    plaintext = response.context["issued"]
    assert plaintext.encode() in response.content
    assert plaintext.encode() not in client.get("/settings/tokens/").content

    response = client.post(f"/settings/tokens/{token.pk}/revoke")

    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_the_issued_token_has_copy_buttons_from_a_static_script(client, auth_on, alice):
    client.force_login(alice)

    page = client.post("/settings/tokens/", {"name": "ci", "scope": "write"}).content.decode()

    assert '<button type="button" class="button" data-copy-target="issued-token">' in page
    assert 'data-copy-target="issued-env"' in page and 'id="issued-env"' in page
    assert '<script src="/static/js/copy_button.js" defer></script>' in page
    assert "onclick" not in page


def test_with_logins_off_the_tokens_page_says_tokens_need_logins(client, db, settings):
    settings.SPYGLASS_AUTH = False

    response = client.get("/settings/tokens/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Logins are off" in page and "SPYGLASS_AUTH=1" in page
    assert "export MLFLOW_TRACKING_URI=http://testserver" in page
    response = client.post("/settings/tokens/", {"name": "ci", "scope": "write"})
    assert response.status_code == 400 and "Logins are off" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_with_logins_off_a_signed_in_user_still_manages_tokens(client, settings, alice):
    settings.SPYGLASS_AUTH = False
    client.force_login(alice)

    response = client.post("/settings/tokens/", {"name": "ci", "scope": "write"})

    assert response.status_code == 200 and alice.api_tokens.count() == 1


def test_with_logins_on_the_tokens_page_still_asks_for_a_login(client, auth_on, db):
    response = client.get("/settings/tokens/")

    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_tokens_page_refuses_a_blank_name_inline(client, auth_on, alice):
    client.force_login(alice)

    response = client.post("/settings/tokens/", {"name": "", "scope": "write"})

    assert response.status_code == 400
    assert not alice.api_tokens.exists()


def test_bob_cannot_revoke_alices_token(client, auth_on, alice):
    token, _ = ApiToken.issue(alice, "ci")
    client.force_login(User.objects.create_user("bob", password="builder-1234"))

    assert client.post(f"/settings/tokens/{token.pk}/revoke").status_code == 404


def test_create_token_command_prints_a_working_token(client, auth_on, alice, capsys):
    call_command("create_token", "alice", "--name", "cli", "--scope", "read")
    plaintext = capsys.readouterr().out.strip()

    assert plaintext.startswith("sg_")
    assert client.get("/api/schema/", **bearer(plaintext)).status_code == 200


@pytest.mark.django_db
def test_auth_can_be_off_only_on_loopback(settings):
    settings.SPYGLASS_AUTH = False
    settings.SPYGLASS_AUTH_EXPLICIT = True
    command = ServeCommand()

    command._settle_auth("127.0.0.1")
    with pytest.raises(CommandError, match=r"Refusing to serve on 0\.0\.0\.0"):
        command._settle_auth("0.0.0.0")


@pytest.mark.django_db
def test_auth_defaults_to_off_on_loopback_and_on_elsewhere(settings):
    settings.SPYGLASS_AUTH_EXPLICIT = False
    command = ServeCommand()

    command._settle_auth("127.0.0.1")
    assert settings.SPYGLASS_AUTH is False
    command._settle_auth("10.1.2.3")
    assert settings.SPYGLASS_AUTH is True


def test_gunicorn_refuses_a_public_bind_with_auth_off():
    env = {**os.environ, "SPYGLASS_AUTH": "0"}
    # on_starting runs before gunicorn opens any socket, so nothing is ever exposed.
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "webapp.wsgi", "--bind", "0.0.0.0:0"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "Refusing to serve" in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("bind", "loopback"),
    [
        ("127.0.0.1:8000", True),
        ("[::1]:8000", True),
        ("localhost:8000", True),
        ("unix:/run/spyglass.sock", True),
        ("0.0.0.0:8000", False),
        ("[::]:8000", False),
        ("10.0.0.5:80", False),
        ("example.com:80", False),
    ],
)
def test_loopback_binds_are_told_apart(bind, loopback):
    assert is_loopback_bind(bind) is loopback


def test_a_read_only_token_may_search(client, auth_on, alice):
    _, plaintext = ApiToken.issue(alice, "dashboards", scope="read")

    response = client.post(
        "/api/2.0/mlflow/experiments/search",
        data={"max_results": 10},
        content_type="application/json",
        **bearer(plaintext),
    )

    assert response.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/api/2.0/mlflow/runs/search",
        "/api/2.0/mlflow/logged-models/search",
        "/api/2.0/mlflow/registered-models/get-latest-versions",
        "/api/3.0/mlflow/traces/search",
        "/api/3.0/mlflow/traces/batchGetInfos",
    ],
)
def test_a_read_only_token_may_post_the_other_reads_mlflow_sends_as_post(
    client, auth_on, alice, path
):
    _, plaintext = ApiToken.issue(alice, "dashboards", scope="read")

    response = client.post(path, data={}, content_type="application/json", **bearer(plaintext))

    assert response.status_code != 403
    assert "read-only" not in response.content.decode()


def test_a_read_only_token_cannot_post_to_an_unrouted_mlflow_path(client, auth_on, alice):
    _, plaintext = ApiToken.issue(alice, "dashboards", scope="read")

    response = client.post("/api/2.0/nowhere", content_type="application/json", **bearer(plaintext))

    assert response.status_code == 403


def test_a_browser_session_may_search_through_mlflow_post_reads(client, auth_on, alice):
    client.force_login(alice)

    response = client.post(
        "/api/2.0/mlflow/experiments/search", data={}, content_type="application/json"
    )

    assert response.status_code == 200


def test_webapp_auth_imports_no_app():
    tree = ast.parse((REPO / "webapp" / "auth.py").read_text())
    modules = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]

    assert not [m for m in modules if m.split(".")[0] in {"tracking", "playground", "access"}]


def test_a_browser_session_cannot_write_through_csrf_exempt_mlflow_paths(client, auth_on, alice):
    client.force_login(alice)

    response = client.post(
        "/api/2.0/mlflow/experiments/create", data={"name": "x"}, content_type="application/json"
    )

    assert response.status_code == 401
    assert client.get("/api/2.0/mlflow/experiments/get?experiment_id=0").status_code == 200
