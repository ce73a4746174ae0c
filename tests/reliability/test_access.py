"""With auth on, every route refuses a stranger: pages redirect to the login page, APIs answer
401 (MLflow's error JSON on MLflow paths), and none of them shows data. Routes are read from
the URL configuration, so a new page is covered the day it is added."""

from __future__ import annotations

import base64
import re

import pytest
from django.contrib.auth.models import User
from django.urls import URLPattern, URLResolver, get_resolver

from webapp.auth import API_PREFIXES, MLFLOW_PREFIXES, PUBLIC_PREFIXES

SAMPLES = {"int": "1", "str": "tr-" + "0" * 32, "path": "1/a/b.txt", "slug": "x", "uuid": "0" * 32}


def concrete_paths() -> list[str]:
    """Every route with sample values for its parameters."""
    out: list[str] = []

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern):
                out.append(_fill(route))

    walk(get_resolver().url_patterns, "")
    return sorted({"/" + p for p in out if p is not None})


def _fill(route: str) -> str | None:
    if "^" in route or "(?P" in route:  # regex routes (DRF's router, the admin)
        route = route.replace("^", "").replace("$", "")
        if "(?P<format>" in route:
            return None  # the same view as the route without a format suffix
        route = re.sub(r"\(\?P<\w+>[^)]*\)", "1", route)
        return None if any(c in route for c in "()[]?*+\\") else route
    return re.sub(r"<(?:(\w+):)?\w+>", lambda m: SAMPLES.get(m.group(1) or "str", "x"), route)


PATHS = [p for p in concrete_paths() if not p.startswith(PUBLIC_PREFIXES)]


def test_the_sweep_sees_every_kind_of_route():
    assert "/traces/" in PATHS
    assert "/api/v1/traces/" in PATHS
    assert "/api/2.0/mlflow/experiments/create" in PATHS
    assert "/v1/traces" in PATHS
    assert len(PATHS) > 40


def refused(path: str, response) -> None:
    if path.startswith(API_PREFIXES):
        assert response.status_code == 401, (path, response.status_code)
        if path.startswith(MLFLOW_PREFIXES):
            assert response.json()["error_code"] == "UNAUTHENTICATED"
    else:
        assert response.status_code == 302, (path, response.status_code)
        assert response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post"])
def test_strangers_get_nothing_from_any_route(client, settings, method):
    settings.SPYGLASS_AUTH = True
    for path in PATHS:
        refused(path, getattr(client, method)(path))


@pytest.mark.django_db
def test_wrong_credentials_get_nothing_either(client, settings):
    settings.SPYGLASS_AUTH = True
    # One guess per path: past the login limit they would be 429s (tests/webapp/test_login_limits).
    settings.SPYGLASS_LOGIN_RATE = "10000/10m"
    User.objects.create_user("alice", password="wonder-land-42")
    wrong = base64.b64encode(b"alice:guess").decode()
    for path in PATHS:
        response = client.get(path, HTTP_AUTHORIZATION=f"Basic {wrong}")
        refused(path, response)
        response = client.get(path, HTTP_AUTHORIZATION="Bearer sg_not-a-token")
        refused(path, response)
