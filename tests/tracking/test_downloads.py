"""Uploaded artifacts come back as downloads: an `.html` or `.js` someone logged never runs
as a page or a script of this site."""

from __future__ import annotations

import pytest

from tracking.downloads import content_type_for
from tracking.models import Experiment, LoggedModel

PAGE = b"<script>fetch('/settings/tokens/')</script>"


@pytest.fixture
def storage(tmp_path, settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path},
        },
    }
    return tmp_path


def _assert_download(response) -> None:
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    assert response["Content-Type"] == "application/octet-stream"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["evil.html", "evil.js", "evil.svg", "evil.xhtml"])
def test_active_content_uploaded_through_mlflow_is_an_opaque_download(client, storage, name):
    url = f"/api/2.0/mlflow-artifacts/artifacts/1/models/m-1/artifacts/{name}"
    assert client.put(url, data=PAGE, content_type="text/html").status_code == 200

    response = client.get(url)

    _assert_download(response)
    assert b"".join(response.streaming_content) == PAGE


@pytest.mark.django_db
def test_the_model_page_download_is_opaque_too(client, storage):
    model = LoggedModel.objects.create(
        model_id="m-" + "a" * 32, name="agent", experiment=Experiment.objects.create(name="e")
    )
    folder = storage / str(model.experiment_id) / "models" / model.model_id / "artifacts"
    folder.mkdir(parents=True)
    (folder / "report.html").write_bytes(PAGE)

    response = client.get(f"/models/{model.model_id}/artifacts/download/", {"path": "report.html"})

    _assert_download(response)


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("metrics.json", "application/json"),
        ("notes.txt", "text/plain"),
        ("plot.png", "image/png"),
        ("page.html", "application/octet-stream"),
        ("app.js", "application/octet-stream"),
        ("logo.svg", "application/octet-stream"),
        ("model.pkl", "application/octet-stream"),
        ("data.json.gz", "application/octet-stream"),
        ("MLmodel", "application/octet-stream"),
    ],
)
def test_only_inert_types_keep_their_type(name, content_type):
    assert content_type_for(name) == content_type
