"""The caller's Access in every template, as `spyglass_access`: the navigation shows the
access pages to admins only. Lazy: a page that never asks runs no query for it."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from access.rules import access_for


def access(request: HttpRequest) -> dict[str, object]:
    return {"spyglass_access": SimpleLazyObject(lambda: access_for(request))}
