"""The production compose file: a buffering proxy in front of gunicorn, restart policies, a
worker healthcheck, the proxy trusted for client addresses, and an nginx config nginx takes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, service_unavailable


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "compose.yaml").read_text())


def test_only_the_proxy_is_published_and_it_buffers_for_gunicorn(compose):
    services = compose["services"]
    proxy = services["proxy"]

    assert proxy["image"].startswith("nginx:")
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    assert proxy["ports"] == ["8000:8000"]
    assert "ports" not in services["web"]  # gunicorn is reached through nginx only
    config = (REPO / "deploy" / "nginx.conf").read_text()
    assert "proxy_request_buffering on;" in config
    assert "proxy_buffering on;" in config
    assert "server web:8000;" in config


def test_long_running_services_restart_and_the_worker_is_health_checked(compose):
    services = compose["services"]
    for name in ("postgres", "redis", "web", "worker", "beat", "proxy"):
        assert services[name]["restart"] == "unless-stopped", name
    assert services["migrate"]["restart"] == "no"
    check = " ".join(services["worker"]["healthcheck"]["test"])
    assert "inspect ping" in check and "$$HOSTNAME" in check


def test_web_takes_as_many_requests_at_once_as_the_memory_plan_holds(compose):
    # README: six maximal OTLP requests fit in the 1.5 GiB planned for the web container.
    env = compose["services"]["web"]["environment"]

    assert int(env["WEB_CONCURRENCY"]) * int(env["GUNICORN_THREADS"]) == 6


def test_the_client_address_is_read_from_the_proxy_only(compose):
    proxy_address = compose["services"]["proxy"]["networks"]["spyglass"]["ipv4_address"]

    assert compose["services"]["web"]["environment"]["SPYGLASS_TRUSTED_PROXIES"] == proxy_address


def test_nginx_accepts_the_config(tmp_path):
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx is None:
        service_unavailable("nginx is not installed (apt-get install nginx-light)")
    # Outside compose there is no host called "web".
    config = (REPO / "deploy" / "nginx.conf").read_text().replace("web:8000", "127.0.0.1:8000")
    (tmp_path / "nginx.conf").write_text(config)

    result = subprocess.run([nginx, "-t", "-c", str(tmp_path / "nginx.conf")],
                            capture_output=True, text=True, timeout=30)  # fmt: skip

    assert result.returncode == 0, result.stderr
