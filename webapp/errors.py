"""Answers for unhandled exceptions: 503 with Retry-After when the database is busy or down,
a plain 500 otherwise, in the shape each kind of client reads.

In DEBUG Django answers with its debug page instead of calling `handler500`, which would turn
an outage into a 500 that exporters do not retry; DatabaseUnavailableMiddleware answers the
503 whatever DEBUG is.

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
from collections.abc import Callable
from typing import Any

from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError
from django.dispatch import receiver
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
        return _database_unavailable(request)
    return _answer(request, 500, "INTERNAL_ERROR", "The server failed; the error is logged.")


def _database_unavailable(request: HttpRequest) -> HttpResponse:
    response = _answer(
        request,
        503,
        "TEMPORARILY_UNAVAILABLE",
        "The database is busy or unreachable; nothing was stored. Retry shortly.",
    )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


@receiver(got_request_exception)
def _remember_the_exception(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    # Django sends this from inside its exception handler, for views and middleware alike,
    # before it builds the 500 (the debug page in DEBUG).
    if request is not None:
        request.spyglass_exception = sys.exc_info()[1]


class DatabaseUnavailableMiddleware:
    """First in MIDDLEWARE: a 500 caused by a database outage becomes the 503, DEBUG or not."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code == 500 and database_unavailable(
            getattr(request, "spyglass_exception", None)
        ):
            return _database_unavailable(request)
        return response


def _answer(request: HttpRequest, status: int, code: str, message: str) -> HttpResponse:
    if request.path.startswith(MLFLOW_PREFIXES):
        return JsonResponse({"error_code": code, "message": message}, status=status)
    if request.path.startswith(API_PREFIXES):
        return JsonResponse({"detail": message}, status=status)
    return HttpResponse(
        message, status=status, content_type="text/plain; charset=utf-8"
    )  # no template: rendering one may need the very database that failed
