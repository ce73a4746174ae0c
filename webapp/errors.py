"""Answers for unhandled exceptions: 503 with Retry-After when the database is busy or down,
a plain 500 otherwise, in the shape each kind of client reads.

Django calls `handler500` from inside its exception handler, for exceptions raised in views
and in middleware alike (a token lookup in the auth middleware fails the same way when the
database is down), so `sys.exc_info()` here is the exception being answered.

A locked or unreachable database is an outage, not a bug: the mlflow client and OTLP
exporters retry 503 and honour Retry-After, so a trace sent during a restart or a long
write is delayed rather than lost. The transaction that failed was rolled back whole, so a
retry finds nothing half-written.
"""

from __future__ import annotations

import sqlite3
import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

from webapp.auth import API_PREFIXES, MLFLOW_PREFIXES

RETRY_AFTER_SECONDS = 5
# SQLite reports schema mistakes ("no such table") as OperationalError too; only these mean
# "try again later".
_SQLITE_TRANSIENT = (
    "database is locked",
    "database table is locked",
    "unable to open database file",
    "disk i/o error",
)


def database_unavailable(exc: BaseException | None) -> bool:
    """True for a database that is locked, restarting or unreachable."""
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    cause = exc.__cause__
    if isinstance(cause, sqlite3.Error):
        return any(text in str(cause).lower() for text in _SQLITE_TRANSIENT)
    # psycopg raises OperationalError for lost or refused connections and server shutdown;
    # SQL mistakes are ProgrammingError or DataError, never this.
    return True


def server_error(request: HttpRequest) -> HttpResponse:
    exc = sys.exc_info()[1]
    if database_unavailable(exc):
        response = _answer(
            request,
            503,
            "TEMPORARILY_UNAVAILABLE",
            "The database is busy or unreachable; nothing was stored. Retry shortly.",
        )
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return _answer(request, 500, "INTERNAL_ERROR", "The server failed; the error is logged.")


def _answer(request: HttpRequest, status: int, code: str, message: str) -> HttpResponse:
    if request.path.startswith(MLFLOW_PREFIXES):
        return JsonResponse({"error_code": code, "message": message}, status=status)
    if request.path.startswith(API_PREFIXES):
        return JsonResponse({"detail": message}, status=status)
    return HttpResponse(
        message, status=status, content_type="text/plain; charset=utf-8"
    )  # no template: rendering one may need the very database that failed
