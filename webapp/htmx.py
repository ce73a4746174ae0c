"""Pages that htmx also asks for in part: one view and one template answer both, the whole
page to a browser and the `{% partialdef %}` fragment it swaps to htmx (django-template-partials).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def wants_fragment(request: HtmxHttpRequest) -> bool:
    """htmx swapping part of a page. A boosted link and a history restore (the page was not in
    htmx's history cache) replace the whole document, so they get the whole page."""
    htmx = request.htmx
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request


def render_page(
    request: HtmxHttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    fragment: str | None = None,
    status: int = 200,
) -> HttpResponse:
    """The whole `template`, or only its `fragment` partial when htmx asks for a part. A form
    re-rendered with its errors is a 422: base.html's htmx config swaps it in."""
    name = f"{template}#{fragment}" if fragment and wants_fragment(request) else template
    response = render(request, name, context, status=status)
    # One URL, two bodies: a cache must not hand the fragment to a full page load.
    patch_vary_headers(response, ["HX-Request"])
    return response


def go_to(request: HtmxHttpRequest, url: str) -> HttpResponse:
    """Send the browser to `url` after a form post: htmx follows HX-Redirect (a plain 302
    would be followed by htmx's XHR and its page swapped into the form), a plain form a 302."""
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)
