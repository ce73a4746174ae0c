from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest

from tests.playground.agent_server import AgentServer


@pytest.fixture(scope="session")
def _agent_server() -> Iterator[AgentServer]:
    server = AgentServer().start()
    yield server
    server.stop()


@pytest.fixture
def agent_server(_agent_server: AgentServer) -> AgentServer:
    """The test agent server, with the requests of earlier tests forgotten."""
    _agent_server.forget()
    return _agent_server


def wait_until_finished(run_id: int, timeout: float = 10.0):
    """The run's row once it is finished (done, failed, cancelled); fails after `timeout`."""
    from playground.models import Run

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(pk=run_id)
        if run.finished:
            return run
        time.sleep(0.02)
    pytest.fail(f"run {run_id} did not finish within {timeout} s: {run.status}")


def wait_for(condition, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail(f"{what} not met within {timeout} s")


def chat(*agents, system_prompt: str = ""):
    """A conversation with these agents (rows made with objects.create())."""
    from playground.models import Conversation

    conversation = Conversation.objects.create(title="test", system_prompt=system_prompt)
    conversation.agents.set(agents)
    return conversation


@pytest.fixture
def http_agent(agent_server: AgentServer):
    """An Agent row for one behaviour of the test server: http_agent("openai", kind=...)."""
    from playground.models import Agent

    def make(mode: str, kind: str = "openai", **config):
        path = "/v1" if kind == "openai" else "/invocations"
        return Agent.objects.create(
            name=f"{mode}-{kind}-{len(config)}-{time.monotonic_ns()}",
            kind=kind,
            config={"url": f"{agent_server.url}/{mode}{path}", **config},
        )

    return make


@pytest.fixture
def echo_agent():
    from playground.models import Agent

    return Agent.objects.create(name="echo", kind="builtin",
                                config={"agent": "echo", "word_delay_ms": 0})  # fmt: skip


def _in_memory_sqlite() -> bool:
    from django.db import connection

    return connection.vendor == "sqlite" and connection.is_in_memory_db()


@pytest.fixture
def worker_app(sqlite_shared_reads, memory_celery_app):
    """The embedded worker `make run` uses (tests/conftest.py's `embedded_worker`), on one
    thread when the test database is in-memory SQLite: there, two writing threads fail
    each other at once (shared-cache table locks wait for nobody), unlike a real database."""
    from webapp import embedded_worker as embedded

    worker = embedded.start(memory_celery_app, concurrency=1 if _in_memory_sqlite() else 2)
    yield memory_celery_app
    embedded.stop(worker)


@pytest.fixture
def worker(worker_app, monkeypatch):
    """Pages enqueue on the embedded worker's app."""
    from playground import runs

    monkeypatch.setattr(runs, "default_app", worker_app)
    return worker_app


def _read_uncommitted(sender, connection, **kwargs) -> None:
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA read_uncommitted = 1")


@contextlib.contextmanager
def sqlite_reads_without_table_locks() -> Iterator[None]:
    """pytest-django's SQLite test database is in memory with a shared cache, where a reader
    holds table locks that make a concurrent writer (the worker thread) fail at once instead
    of waiting. Real SQLite files and PostgreSQL do not behave so; this lifts it for tests."""
    from django.db import connection
    from django.db.backends.signals import connection_created

    connection_created.connect(_read_uncommitted)
    if connection.connection is not None:
        _read_uncommitted(None, connection)
    try:
        yield
    finally:
        connection_created.disconnect(_read_uncommitted)


@pytest.fixture
def sqlite_shared_reads(transactional_db) -> Iterator[None]:
    with sqlite_reads_without_table_locks():
        yield
