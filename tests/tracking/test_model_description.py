"""A version's description (tracking/views/model_description.py): MLflow's
`mlflow.note.content` tag, shown as sanitised markdown and edited inline."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.rows import XSS, XSS_ESCAPED, make_model
from tests.users import PASSWORD
from tracking.markdown import excerpt
from tracking.models import LoggedModel

NOTE = LoggedModel.DESCRIPTION_TAG
HTMX = {"HX-Request": "true"}


@pytest.mark.django_db
def test_version_page_renders_the_description_as_markdown(client, experiment):
    model = make_model(experiment, tags={NOTE: "Fixes **refunds**.\n\n- shorter answers"})

    html = client.get(f"/models/{model.model_id}/").content.decode()

    assert "Fixes <strong>refunds</strong>." in html
    assert "<li>shorter answers</li>" in html
    assert 'hx-post="/models/' + model.model_id + '/description/"' in html


@pytest.mark.django_db
def test_a_description_is_sanitised(client, experiment):
    model = make_model(experiment, tags={NOTE: f"{XSS} [x](javascript:alert(1))"})

    html = client.get(f"/models/{model.model_id}/").content.decode()

    assert XSS not in html and XSS_ESCAPED in html
    assert 'href="javascript' not in html  # the link is refused, left as text


@pytest.mark.django_db
def test_it_saves_a_description_inline_into_mlflows_tag(client, experiment):
    model = make_model(experiment, tags={"team": "cs"})

    response = client.post(
        f"/models/{model.model_id}/description/",
        {"description": "Answers in *French*.\r\nSecond line."},
        headers=HTMX,
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert html.strip().startswith('<section class="section description" id="description">')
    assert "Answers in <em>French</em>." in html
    model.refresh_from_db()
    assert model.tags == {"team": "cs", NOTE: "Answers in *French*.\nSecond line."}


@pytest.mark.django_db
def test_an_empty_description_removes_the_tag(client, experiment):
    model = make_model(experiment, tags={NOTE: "old", "team": "cs"})

    response = client.post(f"/models/{model.model_id}/description/", {"description": "  "})

    assert response.status_code == 302
    assert response["Location"] == f"/models/{model.model_id}/"
    model.refresh_from_db()
    assert model.tags == {"team": "cs"}


@pytest.mark.django_db
def test_a_too_long_description_is_an_inline_error_and_changes_nothing(client, experiment):
    model = make_model(experiment, tags={NOTE: "old"})
    too_long = "x" * (LoggedModel.DESCRIPTION_MAX_CHARS + 1)

    htmx = client.post(
        f"/models/{model.model_id}/description/", {"description": too_long}, headers=HTMX
    )
    plain = client.post(f"/models/{model.model_id}/description/", {"description": "a\x00b"})

    assert htmx.status_code == 422
    assert "MLflow keeps at most 8,000" in htmx.content.decode()
    assert 'aria-invalid="true"' in htmx.content.decode()
    assert plain.status_code == 400  # the whole page again, the error by the form
    assert "may not hold a NUL character" in plain.content.decode()
    model.refresh_from_db()
    assert model.tags == {NOTE: "old"}


@pytest.mark.django_db
def test_only_editors_of_the_experiment_see_the_form_and_may_save(
    auth_on, experiment, charlie, bob
):
    model = make_model(experiment, tags={NOTE: "old"})
    viewer, editor = Client(), Client()
    viewer.login(username=charlie.username, password=PASSWORD)
    editor.login(username=bob.username, password=PASSWORD)

    seen = viewer.get(f"/models/{model.model_id}/").content.decode()
    refused = viewer.post(f"/models/{model.model_id}/description/", {"description": "new"})

    assert "Edit the description" not in seen
    assert refused.status_code == 404
    assert "Edit the description" in editor.get(f"/models/{model.model_id}/").content.decode()
    model.refresh_from_db()
    assert model.description == "old"


@pytest.mark.django_db
def test_an_unknown_version_is_404(client):
    response = client.post("/models/m-missing/description/", {"description": "x"})

    assert response.status_code == 404


@pytest.mark.django_db
def test_model_list_rows_show_a_one_line_excerpt(client, experiment):
    make_model(experiment, tags={NOTE: "## Fixes [refunds](https://x.test)\n\nMore."})

    html = client.get("/models/").content.decode()

    assert ">Fixes refunds…</div>" in html


def test_an_excerpt_is_the_first_line_as_plain_words():
    assert excerpt("") == ""
    assert excerpt("\n\n> **Bold** `code` and _em_") == "Bold code and em"
    assert excerpt("1. first\n2. second") == "first…"
    assert excerpt("x" * 100, limit=10) == "x" * 10 + "…"
