"""Who may use Spyglass: session logins for pages, HTTP Basic and Bearer tokens for the APIs.

`SPYGLASS_AUTH` turns it on or off. Off is only for a server that listens on loopback (the
`make run` default, enforced by `manage.py serve` and gunicorn.conf.py); on, every page needs a
login and every API call credentials. The mlflow client sends `MLFLOW_TRACKING_USERNAME` /
`MLFLOW_TRACKING_PASSWORD` as Basic and `MLFLOW_TRACKING_TOKEN` as Bearer; both work on every
API path (MLflow, OTLP, /api/v1/).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from django.utils import timezone
from rest_framework import authentication, permissions
from rest_framework.request import Request

from webapp import login_limits
from webapp.models import ApiToken, hash_token

# Paths whose callers are programs: they get 401 JSON, never a login redirect.
API_PREFIXES = ("/api/", "/ajax-api/", "/v1/", "/version")
# MLflow's clients read `error_code` from the body (../shared/mlflow-protocol.md §1).
MLFLOW_PREFIXES = ("/api/2.0/", "/api/3.0/", "/ajax-api/", "/v1/", "/version")
# Reachable without credentials: monitoring, the login page itself, assets, and the admin
# (which has its own login).
PUBLIC_PREFIXES = ("/healthz", "/accounts/login/", "/static/", "/admin/", "/favicon")

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
BASIC_CACHE_SECONDS = 60
BASIC_CACHE_SIZE = 1024
LAST_USED_RESOLUTION = timedelta(minutes=1)

View = TypeVar("View", bound=Callable[..., HttpResponse])


def auth_enabled() -> bool:
    return bool(getattr(settings, "SPYGLASS_AUTH", True))


def read_only_post(view: View) -> View:
    """Mark a view whose POST only reads (MLflow sends some reads as POST: their request
    messages do not fit a query string), so a read-only token may call it."""
    view.read_only_post = True  # type: ignore[attr-defined]
    return view


def _writes(request: HttpRequest) -> bool:
    if request.method in SAFE_METHODS:
        return False
    try:
        view = resolve(request.path_info).func
    except Resolver404:
        return True
    return not getattr(view, "read_only_post", False)


class Credentials:
    """The outcome of reading an Authorization header."""

    def __init__(
        self,
        user: AbstractBaseUser | None,
        can_write: bool = True,
        error: str = "",
        retry_after: int = 0,
    ):
        self.user = user
        self.can_write = can_write
        self.error = error
        # Seconds to wait: the password was not checked (webapp/login_limits.py).
        self.retry_after = retry_after


# Checking a Basic password runs Django's password hasher (hundreds of milliseconds by
# design). An ingest client sends the same header on every request, so a verified header is
# remembered briefly, keyed by its hash; a changed password takes effect within a minute.
_basic_cache: dict[str, tuple[int, float]] = {}
_basic_lock = threading.Lock()


def _basic_user(request: HttpRequest, header_value: str) -> Credentials:
    key = hashlib.sha256(header_value.encode()).hexdigest()
    cached = _basic_cache.get(key)
    now = time.monotonic()
    if cached and cached[1] > now:
        user = get_user_model().objects.filter(pk=cached[0], is_active=True).first()
        if user:
            return Credentials(user)
    try:
        decoded = base64.b64decode(header_value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return Credentials(None, error="Malformed Basic credentials.")
    username, sep, password = decoded.partition(":")
    if not sep:
        return Credentials(None, error="Invalid username or password.")
    # The login form's limit, counted on the same username and address.
    wait = login_limits.pause_for(request, username)
    if wait:
        message = f"Too many failed sign-ins; wait {wait} s, then try again."
        return Credentials(None, error=message, retry_after=wait)
    user = authenticate(username=username, password=password)
    if user is None:
        login_limits.record_failure(request, username)
        return Credentials(None, error="Invalid username or password.")
    with _basic_lock:
        if len(_basic_cache) >= BASIC_CACHE_SIZE:
            _basic_cache.clear()
        _basic_cache[key] = (user.pk, now + BASIC_CACHE_SECONDS)
    return Credentials(user)


def _bearer_user(token: str) -> Credentials:
    row = (
        ApiToken.objects.active()
        .select_related("user")
        .filter(token_hash=hash_token(token))
        .first()
    )
    if row is None:
        return Credentials(None, error="Invalid or revoked token.")
    now = timezone.now()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        # One write a minute per token at most, not one per ingest request.
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
    return Credentials(row.user, can_write=row.can_write)


def credentials_from_header(request: HttpRequest) -> Credentials | None:
    """Read Basic or Bearer credentials; None when the request carries none."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "basic" and value:
        return _basic_user(request, value)
    if scheme == "bearer" and value:
        return _bearer_user(value)
    if header:
        return Credentials(None, error="Unsupported Authorization scheme; use Basic or Bearer.")
    return None


_MLFLOW_CODES = {401: "UNAUTHENTICATED", 429: "REQUEST_LIMIT_EXCEEDED"}


def _api_error(request: HttpRequest, status: int, message: str) -> JsonResponse:
    if request.path.startswith(MLFLOW_PREFIXES):
        code = _MLFLOW_CODES.get(status, "PERMISSION_DENIED")
        body = {"error_code": code, "message": message}
    else:
        body = {"detail": message}
    response = JsonResponse(body, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Basic realm="Spyglass"'
    return response


class AuthRequiredMiddleware:
    """Require a login for pages and credentials for APIs while SPYGLASS_AUTH is on."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not auth_enabled() or request.path.startswith(PUBLIC_PREFIXES):
            return self.get_response(request)
        if request.path.startswith(API_PREFIXES):
            denied = self._check_api(request)
            if denied:
                return denied
        elif not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        return self.get_response(request)

    def _check_api(self, request: HttpRequest) -> HttpResponse | None:
        credentials = credentials_from_header(request)
        if credentials is None:
            # A browser session (the API docs page) counts. DRF enforces CSRF for it, but
            # the MLflow and OTLP views are csrf_exempt (clients send no token), so there a
            # session may only read: another site cannot make a logged-in browser write.
            if request.user.is_authenticated and not (
                request.path.startswith(MLFLOW_PREFIXES) and _writes(request)
            ):
                return None
            return _api_error(request, 401, "Authentication required: use Basic or Bearer.")
        if credentials.retry_after:
            response = _api_error(request, 429, credentials.error)
            response["Retry-After"] = str(credentials.retry_after)
            return response
        if credentials.user is None:
            return _api_error(request, 401, credentials.error)
        # Resolved only for a read-only token: an ingest client's writes skip the URL lookup.
        if not credentials.can_write and _writes(request):
            return _api_error(request, 403, "This token is read-only.")
        request.user = credentials.user
        # DRF re-runs authentication on its own request object; tell it the answer.
        request.spyglass_credentials = credentials
        return None


class HeaderAuthentication(authentication.BaseAuthentication):
    """DRF side of the middleware: reuse what it verified instead of hashing again."""

    def authenticate(self, request: Request) -> tuple[AbstractBaseUser, None] | None:
        credentials = getattr(request._request, "spyglass_credentials", None)
        if credentials is None:
            credentials = credentials_from_header(request._request)
        if credentials is None or credentials.user is None:
            return None
        return credentials.user, None

    def authenticate_header(self, request: Request) -> str:
        return 'Basic realm="Spyglass"'


class IsAuthenticatedWhenAuthOn(permissions.BasePermission):
    def has_permission(self, request: Request, view: object) -> bool:
        if not auth_enabled():
            return True
        return bool(request.user and not isinstance(request.user, AnonymousUser))
