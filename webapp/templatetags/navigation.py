"""The top navigation: a link that marks itself current for every page of its section."""

from __future__ import annotations

from django import template
from django.urls import reverse
from django.utils.html import format_html

register = template.Library()


@register.simple_tag(takes_context=True)
def nav_link(context: template.Context, url_name: str, label: str) -> str:
    # A section is a URL prefix (/models/ covers /models/<id>/ and later /models/compare/),
    # so new pages of a section are highlighted without touching base.html.
    url = reverse(url_name)
    request = context.get("request")
    if request is not None and request.path.startswith(url):
        return format_html('<a href="{}" class="nav-link" aria-current="page">{}</a>', url, label)
    return format_html('<a href="{}" class="nav-link">{}</a>', url, label)
