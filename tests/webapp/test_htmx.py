"""render_page(): the whole page for a browser, its partial for htmx, Vary: HX-Request on both;
and base.html's htmx config, which swaps a form re-rendered with its errors (422)."""

from __future__ import annotations

import html
import json
import re

import pytest
from django.test import RequestFactory
from django_htmx.middleware import HtmxDetails

from webapp.htmx import HtmxHttpRequest, render_page

PAGE = (
    "{% load partials %}<html><h1>Page</h1>"
    "{% partialdef rows inline %}<ul><li>{{ item }}</li></ul>{% endpartialdef %}</html>"
)


@pytest.fixture
def page_template(settings):
    settings.TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "OPTIONS": {
                "loaders": [
                    (
                        "template_partials.loader.Loader",
                        [("django.template.loaders.locmem.Loader", {"page.html": PAGE})],
                    )
                ]
            },
        }
    ]


def get(**headers: str) -> HtmxHttpRequest:
    request = RequestFactory().get("/page", headers=headers)
    request.htmx = HtmxDetails(request)
    return request


def test_a_browser_gets_the_whole_page(page_template):
    response = render_page(get(), "page.html", {"item": "one"}, fragment="rows")

    assert response.content.decode() == "<html><h1>Page</h1><ul><li>one</li></ul></html>"
    assert response["Vary"] == "HX-Request"


def test_htmx_gets_only_the_fragment(page_template):
    request = get(**{"HX-Request": "true"})

    response = render_page(request, "page.html", {"item": "one"}, fragment="rows")

    assert response.content.decode() == "<ul><li>one</li></ul>"
    assert response["Vary"] == "HX-Request"


@pytest.mark.parametrize("header", ["HX-Boosted", "HX-History-Restore-Request"])
def test_htmx_replacing_the_whole_document_gets_the_whole_page(page_template, header):
    request = get(**{"HX-Request": "true", header: "true"})

    response = render_page(request, "page.html", {"item": "one"}, fragment="rows")

    assert response.content.decode().startswith("<html><h1>Page</h1>")


def test_a_page_without_a_fragment_is_whole_for_htmx_too(page_template):
    request = get(**{"HX-Request": "true"})

    response = render_page(request, "page.html", {"item": "one"})

    assert response.content.decode().startswith("<html>")
    assert response["Vary"] == "HX-Request"


def test_a_form_with_errors_keeps_its_status(page_template):
    request = get(**{"HX-Request": "true"})

    response = render_page(request, "page.html", {"item": "bad"}, fragment="rows", status=422)

    assert response.status_code == 422
    assert response.content.decode() == "<ul><li>bad</li></ul>"


def swap_rule(config: dict, status: int) -> dict:
    """The rule htmx applies to `status`: the first whose code matches (htmx's codeMatches)."""
    return next(r for r in config["responseHandling"] if re.search(r["code"], str(status)))


@pytest.mark.django_db
def test_every_page_tells_htmx_to_swap_a_form_with_errors(client):
    page = client.get("/accounts/login/").content.decode()

    meta = re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", page)
    config = json.loads(html.unescape(meta.group(1)))
    assert swap_rule(config, 422) == {"code": "422", "swap": True}
    assert swap_rule(config, 200)["swap"] is True
    assert swap_rule(config, 204)["swap"] is False
    assert (
        swap_rule(config, 400)
        == swap_rule(config, 500)
        == {
            "code": "[45]..",
            "swap": False,
            "error": True,
        }
    )
    assert config["includeIndicatorStyles"] is False
    assert "js/polling" in page
