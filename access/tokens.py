"""The caller's own API tokens (settings/tokens/): issue, list, revoke. Tokens are stored by
webapp (webapp/models.py, read by its authentication); the pages live with the access rules
they show, so that the project package imports no app."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from access.models import Role
from access.rules import access_for, declares
from webapp.auth import auth_enabled
from webapp.models import ApiToken, TokenScope


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses it, e.g. “ci-evals”.")
    scope = forms.ChoiceField(choices=TokenScope.choices, initial=TokenScope.WRITE)


@declares("the caller's own tokens")
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    """The user's API tokens; with logins off and nobody signed in, why there are none."""
    if not auth_enabled() and not request.user.is_authenticated:
        # A token belongs to a user; login_required would send to a login page that logins
        # off does not need. Say what to do instead (a POST cannot issue one: 400).
        context = {"tracking_uri": request.build_absolute_uri("/").rstrip("/")}
        status = 400 if request.method == "POST" else 200
        return render(request, "access/tokens_logins_off.html", context, status=status)
    return _tokens(request)


@login_required
def _tokens(request: HttpRequest) -> HttpResponse:
    """A POST issues a token and shows its plaintext this once."""
    form = TokenForm(request.POST or None)
    issued = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            _, issued = ApiToken.issue(request.user, **form.cleaned_data)
            form = TokenForm()
        else:
            status = 400
    context = {
        "form": form,
        "issued": issued,
        "tokens": request.user.api_tokens.filter(revoked_at__isnull=True),
        "role": Role(access_for(request).role).label,
        "tracking_uri": request.build_absolute_uri("/").rstrip("/"),
    }
    return render(request, "access/tokens.html", context, status=status)


@declares("the caller's own tokens")
@login_required
@require_POST
def revoke_token(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(request.user.api_tokens, pk=token_id, revoked_at__isnull=True)
    token.revoke()
    return redirect("tokens")
