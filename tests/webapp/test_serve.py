"""`make run` on a fresh clone: DEBUG off unless asked, a secret key generated into var/ for
loopback only, static files still served (whitenoise, collected on the first start)."""

from __future__ import annotations

import http.client
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tests.conftest import REPO


def fresh_clone_env(var: Path) -> dict[str, str]:
    """The environment of a user who cloned and typed `make run`: none of our variables."""
    ours = {"DEBUG", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL",
            "CELERY_RESULT_BACKEND", "SPYGLASS_AUTH", "SPYGLASS_SQLITE_TEST_FILE"}  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ours}
    return {**env, "SPYGLASS_VAR_DIR": str(var), "DJANGO_SETTINGS_MODULE": "webapp.settings"}


def test_a_fresh_clone_runs_without_debug_and_with_a_generated_key(tmp_path):
    script = (
        "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=fresh_clone_env(tmp_path),
                         capture_output=True, text=True, check=True)  # fmt: skip

    assert out.stdout.strip().splitlines()[-1] == "False"
    key = tmp_path / "secret_key"
    assert len(key.read_text()) >= 50
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


@pytest.mark.django_db
def test_serve_refuses_a_public_address_with_a_generated_key(settings):
    settings.SPYGLASS_SECRET_KEY_GENERATED = True

    with pytest.raises(CommandError, match="generated SECRET_KEY"):
        call_command("serve", "0.0.0.0:8123")


def test_gunicorn_refuses_a_public_bind_without_a_secret_key(tmp_path):
    env = {**fresh_clone_env(tmp_path), "SPYGLASS_AUTH": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "webapp.wsgi", "--bind", "0.0.0.0:0"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode != 0
    assert "Set SECRET_KEY" in result.stderr + result.stdout


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_make_run_serves_pages_and_static_files_with_debug_off(tmp_path):
    env = fresh_clone_env(tmp_path)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO,
                   env=env, check=True, timeout=300)  # fmt: skip
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "manage.py", "serve", f"127.0.0.1:{port}"],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                status, page = _get(port, "/traces/")
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.3)
        assert status == 200, page[:2000]
        # Never collected: the page links plain names, and whitenoise serves them.
        href = page.split(b'href="/static/css/', 1)[1].split(b'"', 1)[0].decode()
        assert _get(port, f"/static/css/{href}")[0] == 200
        # An error is a plain 404, not Django's debug page with the URL patterns.
        status, body = _get(port, "/no-such-page/")
        assert status == 404
        assert b"URLconf" not in body
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def test_a_server_process_freezes_its_startup_heap(tmp_path):
    """webapp/heap.py: the views are imported and the heap frozen before the first request,
    so a page's full collections walk only what requests made."""
    script = (
        "import gc, sys; import webapp.wsgi; "
        "print(gc.get_freeze_count() > 10_000, 'tracking.views.overview' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=fresh_clone_env(tmp_path),
                         capture_output=True, text=True, check=True)  # fmt: skip

    assert out.stdout.strip().splitlines()[-1] == "True True"
