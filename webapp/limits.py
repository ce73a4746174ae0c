"""Request size limits per kind of endpoint, checked on Content-Length before any body is read.

Ingest takes whole traces (DATA_UPLOAD_MAX_MEMORY_SIZE, 32 MB by default) and artifact
uploads are streamed to storage (SPYGLASS_MAX_ARTIFACT_BYTES); their views enforce those
limits and answer 413 in their protocol's shape (MLflow error JSON, an OTLP google.rpc.Status).
A page form or a native API call has no reason to be more than SPYGLASS_MAX_PAGE_BYTES: a
bigger body is refused here with 413 and a message, before Django buffers it.

A URL holding NUL (`/traces/tr-%00/`, `?ids=m-%00`) is refused here too, with 400, for every
endpoint: PostgreSQL refuses NUL in any text it is compared with, so each lookup by a path or
query parameter would fail as a 500 there, while SQLite answered 404.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from webapp.auth import API_PREFIXES, MLFLOW_PREFIXES


def body_limit(path: str) -> int | None:
    """The largest body `path` accepts here; None when its view enforces its own limit."""
    if path.startswith(MLFLOW_PREFIXES):  # the MLflow API, its artifacts, OTLP
        return None
    return settings.SPYGLASS_MAX_PAGE_BYTES


class RequestSizeLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = body_limit(request.path)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # Django treats a malformed length as no body
        if limit is not None and length > limit:
            return _too_large(request, length, limit)
        if "\x00" in request.path or _has_nul(request.META.get("QUERY_STRING", "")):
            return _bad_url(request)
        return self.get_response(request)


def _has_nul(query: str) -> bool:
    return "%00" in query or "\x00" in query


def _bad_url(request: HttpRequest) -> HttpResponse:
    message = "The URL holds a NUL character (%00), which no parameter may contain."
    if request.path.startswith(MLFLOW_PREFIXES):
        body = {"error_code": "INVALID_PARAMETER_VALUE", "message": message}
        return JsonResponse(body, status=400)
    if request.path.startswith(API_PREFIXES):
        return JsonResponse({"detail": message}, status=400)
    return HttpResponse(message, status=400, content_type="text/plain; charset=utf-8")


def _too_large(request: HttpRequest, length: int, limit: int) -> HttpResponse:
    message = f"The request body ({length:,} bytes) is over this endpoint's limit of {limit:,}."
    if request.path.startswith(API_PREFIXES):
        return JsonResponse({"detail": message}, status=413)
    return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
