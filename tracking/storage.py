"""Where trace documents and artifacts live on Django's default storage.

Every path here is relative to the artifact root (the default storage's location, or the S3
prefix). The layout is MLflow's, because the mlflow client builds these paths itself from the
`artifact_location` / `mlflow.artifactLocation` it is given:

    <experiment>/<run_id>/artifacts/...                  a run's artifacts
    <experiment>/models/<model_id>/artifacts/...         a logged model's (MLmodel, code, ...)
    <experiment>/traces/<trace_id>/artifacts/traces.json a trace's spans, as the client uploads them

`mlflow-artifacts:/<path>` is the same path as a URI, which is how the client is told it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.core.files.storage import default_storage

ARTIFACT_SCHEME = "mlflow-artifacts:/"
TRACES_JSON = "traces.json"
TRACES_JSON_RE = re.compile(r"([0-9]{1,18})/traces/(tr-[0-9a-f]{32})/artifacts/traces\.json")
MLMODEL_RE = re.compile(r"[0-9]{1,18}/models/(m-[0-9a-f]{32})/artifacts/MLmodel")


def run_artifact_path(experiment_id: int, run_id: str) -> str:
    return f"{experiment_id}/{run_id}/artifacts"


def model_artifact_path(experiment_id: int, model_id: str) -> str:
    return f"{experiment_id}/models/{model_id}/artifacts"


def trace_artifact_path(experiment_id: int, trace_id: str) -> str:
    """Where the client PUTs and GETs `traces.json`."""
    return f"{experiment_id}/traces/{trace_id}/artifacts"


def traces_json_path(experiment_id: int, trace_id: str) -> str:
    return f"{trace_artifact_path(experiment_id, trace_id)}/{TRACES_JSON}"


def delete_traces_json(traces: Iterable[tuple[int, str]]) -> None:
    """Delete the `traces.json` stored for each (experiment id, trace id), where there is one:
    uploads kept a copy on storage until spans became rows only, and those copies remain."""
    for experiment_id, trace_id in traces:
        path = traces_json_path(experiment_id, trace_id)
        if default_storage.exists(path):
            default_storage.delete(path)
