"""render_page(): the whole page for a browser, its partial for htmx, Vary: HX-Request on both."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from django_htmx.middleware import HtmxDetails

from webapp.htmx import HtmxHttpRequest, render_page

PAGE = (
    "{% load partials %}<html><h1>Page</h1>"
    "{% partialdef rows inline %}<ul><li>{{ item }}</li></ul>{% endpartialdef %}</html>"
)


@pytest.fixture(autouse=True)
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


def test_a_browser_gets_the_whole_page():
    response = render_page(get(), "page.html", {"item": "one"}, fragment="rows")

    assert response.content.decode() == "<html><h1>Page</h1><ul><li>one</li></ul></html>"
    assert response["Vary"] == "HX-Request"


def test_htmx_gets_only_the_fragment():
    request = get(**{"HX-Request": "true"})

    response = render_page(request, "page.html", {"item": "one"}, fragment="rows")

    assert response.content.decode() == "<ul><li>one</li></ul>"
    assert response["Vary"] == "HX-Request"


@pytest.mark.parametrize("header", ["HX-Boosted", "HX-History-Restore-Request"])
def test_htmx_replacing_the_whole_document_gets_the_whole_page(header):
    request = get(**{"HX-Request": "true", header: "true"})

    response = render_page(request, "page.html", {"item": "one"}, fragment="rows")

    assert response.content.decode().startswith("<html><h1>Page</h1>")


def test_a_page_without_a_fragment_is_whole_for_htmx_too():
    request = get(**{"HX-Request": "true"})

    response = render_page(request, "page.html", {"item": "one"})

    assert response.content.decode().startswith("<html>")
    assert response["Vary"] == "HX-Request"


def test_a_form_with_errors_keeps_its_status():
    request = get(**{"HX-Request": "true"})

    response = render_page(request, "page.html", {"item": "bad"}, fragment="rows", status=422)

    assert response.status_code == 422
    assert response.content.decode() == "<ul><li>bad</li></ul>"
