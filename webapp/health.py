"""`/healthz`: can this deployment do its work right now?

It checks the three things a request may need: the database, the Celery broker, and at least
one worker that answers a ping sent through that broker. Every check is bounded in time and
catches its own failure, so the answer is always JSON: 200 when all are ok, 503 otherwise.

Anyone may ask (load balancers, uptime checks): they get the status alone. What each check
found (database vendor, broker, worker host names, error texts) describes the deployment, so
only a signed-in user (a session, Basic or a token) sees it, or anyone while auth is off.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from webapp.auth import auth_enabled, credentials_from_header
from webapp.celery import app as celery_app

PING_TIMEOUT_S = 2.0
PING_ATTEMPTS = 2


def check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def check_broker() -> dict[str, Any]:
    with celery_app.connection_for_write() as conn:
        # One attempt, no retry loop: a stopped broker must make this fail fast.
        conn.ensure_connection(max_retries=1, timeout=PING_TIMEOUT_S)
        return {"transport": conn.transport_cls}


def check_workers() -> dict[str, Any]:
    # limit=1: return at the first answer instead of waiting out the timeout for more. A
    # second ping when the first gets no answer: a worker whose threads are all busy on a
    # loaded machine can miss one reply, which is not an outage (at most 2 x the timeout).
    for _ in range(PING_ATTEMPTS):
        replies = celery_app.control.ping(timeout=PING_TIMEOUT_S, limit=1)
        if replies:
            break
    workers = sorted(name for reply in replies for name in reply)
    if not workers:
        raise RuntimeError("no worker answered a ping through the broker")
    return {"workers": workers}


def _run(check: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result = {"ok": True, **check()}
    except Exception as exc:  # a health check reports every failure, it never raises
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _run(check_database), "broker": _run(check_broker)}
    # Without a broker no ping can reach a worker; say so instead of waiting for a timeout.
    if checks["broker"]["ok"]:
        checks["worker"] = _run(check_workers)
    else:
        checks["worker"] = {"ok": False, "error": "broker unreachable"}
    ok = all(c["ok"] for c in checks.values())
    body: dict[str, Any] = {"ok": ok}
    if _may_see_details(request):
        body["checks"] = checks
    return JsonResponse(body, status=200 if ok else 503)


def _may_see_details(request: HttpRequest) -> bool:
    if not auth_enabled() or request.user.is_authenticated:
        return True
    credentials = credentials_from_header(request)
    return bool(credentials and credentials.user)
