"""Interop tests: the real mlflow client, in a subprocess, against pytest-django's live server.

A test hands `run_mlflow` a script; the script talks to the live server through an unmodified
mlflow client (MLFLOW_TRACKING_URI) and prints its findings as `RESULT <json>` lines, which the
test asserts on next to the rows the server stored. A script that fails, or an mlflow client
that logs a failure it swallows (trace export, span downloads), fails the test with its stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from tracking.models import Experiment

SCRIPT_TIMEOUT = 120
RESULT_PREFIX = "RESULT "
# The client only logs these (trace export and span downloads never raise in user code).
CLIENT_FAILURES = (
    " ERROR mlflow",
    "Failed to send trace to MLflow backend",
    "Failed to download trace data",
    "Failed to upload trace",
)
# Every script starts with this: `result(value)` reports a finding to the test.
PRELUDE = """\
import json

import mlflow


def result(value):
    print("RESULT " + json.dumps(value, default=str), flush=True)

"""


@pytest.fixture
def mlflow_server(live_server, transactional_db, artifact_root: Path) -> str:
    # transactional_db empties the tables after each test, migrations' rows included; the
    # client expects the Default experiment to exist.
    Experiment.objects.get_or_create(
        pk=0, defaults={"name": "Default", "artifact_location": "mlflow-artifacts:/0"}
    )
    return live_server.url


def serial_evaluation() -> dict[str, str]:
    """On in-memory SQLite the live server's threads share one connection (see _client_env):
    `mlflow.genai.evaluate`'s row and scorer workers, concurrent by default, go one at a time
    there."""
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        return {"MLFLOW_GENAI_EVAL_MAX_WORKERS": "1", "MLFLOW_GENAI_EVAL_MAX_SCORER_WORKERS": "1"}
    return {}


def _client_env(server_url: str) -> dict[str, str]:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": server_url,
        # Fail fast: the client would otherwise retry 5xx for minutes and wait 120 s per call.
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "PYTHONWARNINGS": "ignore",
    }
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        env.pop(name, None)
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        # The live server then shares the test's single SQLite connection between its request
        # threads, so concurrent requests would interleave their transactions. One export
        # worker and one download thread keep the client's requests in sequence; PostgreSQL
        # runs exercise the client's default concurrency.
        env["MLFLOW_ASYNC_TRACE_LOGGING_MAX_WORKERS"] = "1"
        env["MLFLOW_SEARCH_TRACES_MAX_THREADS"] = "1"
    return env


@pytest.fixture
def run_mlflow(mlflow_server: str, tmp_path: Path) -> Callable[..., list[Any]]:
    """Run a script with the real mlflow client; returns the values of its RESULT lines."""
    workdir = tmp_path / "client"
    workdir.mkdir()

    def run(script: str, files: dict[str, str] | None = None, **env: str) -> list[Any]:
        for name, text in (files or {}).items():
            (workdir / name).write_text(textwrap.dedent(text))
        (workdir / "script.py").write_text(PRELUDE + textwrap.dedent(script))
        proc = subprocess.run(
            [sys.executable, "script.py"],
            cwd=workdir,
            env={**_client_env(mlflow_server), **env},
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT,
        )
        client_errors = [
            line for line in proc.stderr.splitlines() if any(m in line for m in CLIENT_FAILURES)
        ]
        if proc.returncode != 0 or client_errors:
            pytest.fail(
                f"mlflow script failed (exit {proc.returncode}):\n{proc.stderr[-8000:]}",
                pytrace=False,
            )
        return [
            json.loads(line.removeprefix(RESULT_PREFIX))
            for line in proc.stdout.splitlines()
            if line.startswith(RESULT_PREFIX)
        ]

    return run
