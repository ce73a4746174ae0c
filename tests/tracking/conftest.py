from __future__ import annotations

from pathlib import Path

import pytest

from tracking.models import Experiment


@pytest.fixture
def experiment() -> Experiment:
    return Experiment.objects.create(name="support")


@pytest.fixture
def artifact_root(tmp_path: Path, settings) -> Path:
    """Artifacts in a folder of the test's own."""
    root = tmp_path / "artifacts"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": root},
        },
    }
    return root
