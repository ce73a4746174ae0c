"""The login page, with failed attempts counted per client address and per username.

Only failures count, so a user who types the password right is never slowed down. Past
SPYGLASS_LOGIN_RATE failures the page answers 429 and says to wait, without checking the
password at all (a correct guess during the pause is worth nothing to an attacker).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_ratelimit.core import get_usage

_login_view = auth_views.LoginView.as_view()


def _username(group: str, request: HttpRequest) -> str:
    return request.POST.get("username", "").strip().lower()[:150]


def _limited(request: HttpRequest, increment: bool) -> bool:
    """Count a failure (increment) or ask whether the failures so far reached the limit."""
    reached = False
    for group, key in (("login-address", "ip"), ("login-user", _username)):
        usage = get_usage(
            request,
            group=group,
            key=key,
            rate=settings.SPYGLASS_LOGIN_RATE,
            method="POST",
            increment=increment,
        )
        reached = reached or (usage is not None and usage["count"] >= usage["limit"])
    return reached


def login(request: HttpRequest) -> HttpResponse:
    if request.method == "POST" and _limited(request, increment=False):
        form = AuthenticationForm(request, initial={"username": _username("", request)})
        context = {"form": form, "rate_limited": True, "next": request.POST.get("next", "")}
        response = render(request, "registration/login.html", context, status=429)
        response["Retry-After"] = "60"
        return response
    response = _login_view(request)
    if request.method == "POST" and response.status_code != 302:
        _limited(request, increment=True)  # a failure: count it
    return response
