from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders

from tracking.models import LoggedModel


@pytest.mark.django_db
def test_navigation_marks_the_current_section(client, experiment):
    model = LoggedModel.objects.create(experiment=experiment, name="support-agent")

    html = client.get(f"/models/{model.model_id}/").content.decode()

    assert '<a href="/models/" class="nav-link" aria-current="page">Models</a>' in html
    assert '<a href="/traces/" class="nav-link">Traces</a>' in html
    assert '<a href="/playground/" class="nav-link">Playground</a>' in html


@pytest.mark.django_db
def test_pages_load_scripts_from_static_files_only(client):
    html = client.get("/").content.decode()

    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts, "expected htmx and theme.js"
    assert all(" src=" in tag for tag in scripts), scripts
    assert re.search(r'<script src="/static/django_htmx/htmx-2(\.min)?\.js"', html)
    assert '<script src="/static/js/theme.js">' in html
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
    assert 'hx-headers=\'{"X-CSRFToken": "' in html


@pytest.mark.django_db
def test_every_static_file_a_page_links_exists(client):
    html = client.get("/").content.decode()

    paths = re.findall(r'(?:src|href)="/static/([^"]+)"', html)
    assert "css/spyglass.css" in paths
    for path in paths:
        assert finders.find(path), path
