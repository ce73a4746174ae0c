"""The login page. Failed attempts are limited by webapp/login_limits.py, the same limit
that HTTP Basic credentials on the APIs count against.

Past the limit the page answers 429 and says to wait, without checking the password at all
(a correct guess during the pause is worth nothing to an attacker).
"""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from webapp import login_limits

_login_view = auth_views.LoginView.as_view()


def login(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _login_view(request)
    username = request.POST.get("username", "")
    wait = login_limits.pause_for(request, username)
    if wait:
        form = AuthenticationForm(request, initial={"username": username.strip()[:150]})
        context = {"form": form, "rate_limited": True, "next": request.POST.get("next", "")}
        response = render(request, "registration/login.html", context, status=429)
        response["Retry-After"] = str(wait)
        return response
    response = _login_view(request)
    if response.status_code != 302:
        login_limits.record_failure(request, username)  # a failure: count it
    return response
