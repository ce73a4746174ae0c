"""Links that keep a page's query string: pagers, filters, sorts."""

from __future__ import annotations

from django.http import HttpRequest


def with_params(request: HttpRequest, **changes: str | None) -> str:
    """The current query string with some parameters set, or dropped when None or ""."""
    params = request.GET.copy()
    for name, value in changes.items():
        params.pop(name, None)
        if value:
            params[name] = value
    return params.urlencode()
