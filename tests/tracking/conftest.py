from __future__ import annotations

import pytest

from tracking.models import Experiment


@pytest.fixture
def experiment() -> Experiment:
    return Experiment.objects.create(name="support")
