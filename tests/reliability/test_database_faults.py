"""A database that is locked or unreachable during ingest: clients get 503 with Retry-After
(the mlflow client and OTLP exporters retry it), and nothing is half-written."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from django.db import OperationalError, ProgrammingError
from django.test import RequestFactory
from google.rpc.status_pb2 import Status

from tests.payloads import mlflow_info, otlp_body
from tests.reliability.conftest import migrate, query, server_env
from webapp.errors import database_unavailable, server_error

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


# DEBUG too: Django's debug page would make it a 500, which OTLP exporters do not retry.
@pytest.mark.parametrize("debug", ["0", "1"], ids=["production", "debug"])
def test_a_locked_sqlite_database_answers_503_then_the_retry_is_stored(
    tmp_path: Path, gunicorn, debug: str
) -> None:
    url = f"sqlite:///{tmp_path / 'spyglass.sqlite3'}"
    env = server_env(tmp_path, url, SQLITE_BUSY_TIMEOUT="1", DEBUG=debug)
    migrate(env)
    server = gunicorn(env)
    trace_id = bytes.fromhex("5b8efff798038103d269b633813fc60c")
    body = otlp_body(trace_id, 5)

    # Another process writes, holding the lock longer than the server's busy timeout.
    holder = sqlite3.connect(tmp_path / "spyglass.sqlite3", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        status, headers, _ = server.request("POST", "/v1/traces", body, PROTOBUF)
        assert status == 503
        assert headers["Retry-After"] == "5"
        status, headers, answer = server.request(
            "POST", "/api/3.0/mlflow/traces", mlflow_info(trace_id, 0), JSON
        )
        assert status == 503
        assert json.loads(answer)["error_code"] == "TEMPORARILY_UNAVAILABLE"
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    assert query(url, "SELECT COUNT(*) FROM tracking_trace") == [(0,)]
    status, _, _ = server.request("POST", "/v1/traces", body, PROTOBUF)
    assert status == 200
    assert query(url, "SELECT span_count FROM tracking_trace") == [(5,)]
    assert query(url, "SELECT COUNT(*) FROM tracking_span") == [(5,)]


def test_an_unreachable_database_answers_503_on_every_kind_of_path(
    tmp_path: Path, gunicorn
) -> None:
    # Nothing listens on port 9: every connection is refused.
    down = "postgres://postgres@127.0.0.1:9/spyglass"
    server = gunicorn(server_env(tmp_path, down, CONN_MAX_AGE="0"))
    trace_id = os.urandom(16)

    status, headers, answer = server.request("POST", "/v1/traces", otlp_body(trace_id, 3), PROTOBUF)
    assert (status, headers.get("Retry-After")) == (503, "5")
    # OTLP's own error shape, a google.rpc.Status in the request's encoding: UNAVAILABLE.
    assert headers["Content-Type"] == "application/x-protobuf"
    assert Status.FromString(answer).code == 14
    status, _, answer = server.request(
        "POST", "/api/3.0/mlflow/traces", mlflow_info(trace_id, 0), JSON
    )
    assert status == 503
    assert json.loads(answer)["error_code"] == "TEMPORARILY_UNAVAILABLE"
    status, _, answer = server.request("GET", "/api/v1/traces/")
    assert status == 503
    assert "detail" in json.loads(answer)
    status, _, answer = server.request("GET", "/traces/")
    assert status == 503
    assert b"Retry shortly" in answer


def test_only_outages_count_as_unavailable() -> None:
    def wrapped(message: str) -> OperationalError:
        error = OperationalError(message)
        error.__cause__ = sqlite3.OperationalError(message)
        return error

    assert database_unavailable(wrapped("database is locked"))
    assert database_unavailable(wrapped("unable to open database file"))
    # A schema mistake is a bug: a retry would not help, so it stays a 500.
    assert not database_unavailable(wrapped("no such table: tracking_trace"))
    assert not database_unavailable(ProgrammingError("syntax error"))
    assert not database_unavailable(None)


def test_a_bug_is_a_plain_500_in_the_shape_of_the_path() -> None:
    request = RequestFactory().post("/api/2.0/mlflow/runs/create")
    try:
        raise ZeroDivisionError
    except ZeroDivisionError:
        response = server_error(request)
    assert response.status_code == 500
    assert json.loads(response.content)["error_code"] == "INTERNAL_ERROR"
    assert "Retry-After" not in response


@pytest.mark.parametrize("path", ["/traces/", "/api/v1/traces/"])
def test_an_outage_on_pages_and_the_native_api_is_a_503(path: str) -> None:
    request = RequestFactory().get(path)
    try:
        error = OperationalError("database is locked")
        error.__cause__ = sqlite3.OperationalError("database is locked")
        raise error
    except OperationalError:
        response = server_error(request)
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
