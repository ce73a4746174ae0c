"""Reliability tests run Spyglass as users do: a real gunicorn in a subprocess, on a database
of the test's own, driven over HTTP. The test then reads that database directly to check
what was stored."""

from __future__ import annotations

import http.client
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import database_url_for_another_process, make_celery_app, service_unavailable

REPO = Path(__file__).resolve().parent.parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    host: str
    port: int
    env: dict[str, str]
    log: Path

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()


def server_env(tmp_path: Path, database_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(32),
        "SPYGLASS_AUTH": "0",  # loopback only
        "SPYGLASS_VAR_DIR": str(tmp_path / "var"),
        "SPYGLASS_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=REPO,
        env=env,
        check=True,
        timeout=300,
    )


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start gunicorn with an environment; every server started is stopped after the test."""
    started: list[subprocess.Popen] = []

    def start(env: dict[str, str], workers: int = 2, threads: int = 4) -> Server:
        port = free_port()
        log = tmp_path / f"gunicorn-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(GUNICORN), "webapp.wsgi", "-w", str(workers), "--threads", str(threads),
                 "-b", f"127.0.0.1:{port}", "--access-logfile", "-"],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        started.append(proc)
        server = Server("127.0.0.1", port, env, log)
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"gunicorn exited early:\n{log.read_text()[-3000:]}")
            try:
                server.request("GET", "/static/img/favicon.svg")
                return server
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"gunicorn did not answer in 60 s:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)

    yield start
    for proc in started:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A migrated database of the test's own, on the suite's vendor: a fresh PostgreSQL
    database when DATABASE_URL names PostgreSQL, else a SQLite file."""
    suite_url = os.environ.get("DATABASE_URL", "")
    if not suite_url.startswith(("postgres://", "postgresql://")):
        url = f"sqlite:///{tmp_path / 'spyglass.sqlite3'}"
        migrate(server_env(tmp_path, url))
        yield url
        return
    import psycopg

    name = f"spyglass_reliability_{secrets.token_hex(4)}"
    base, _, _ = suite_url.rpartition("/")
    admin = f"{base}/postgres"
    with psycopg.connect(admin.replace("postgres://", "postgresql://", 1), autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    url = f"{base}/{name}"
    try:
        migrate(server_env(tmp_path, url))
        yield url
    finally:
        with psycopg.connect(
            admin.replace("postgres://", "postgresql://", 1), autocommit=True
        ) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def query(database_url: str, sql: str) -> list[tuple]:
    """Run one read against a server's database, outside Django (the test has none open)."""
    if database_url.startswith("sqlite:///"):
        import sqlite3

        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
            return db.execute(sql).fetchall()
    import psycopg

    with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1)) as db:
        return db.execute(sql).fetchall()


class PrivateRedis:
    """A redis-server on a free port, with its append-only file in a folder of its own."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.folder = folder
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()  # SIGTERM: Redis writes its append-only file and exits
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        service_unavailable("redis-server is not installed (apt-get install redis-server)")
    redis = PrivateRedis(tmp_path)
    redis.start()
    yield redis
    redis.stop()


def start_worker(
    broker: str,
    queue: str,
    log: Path | None = None,
    result_backend: str = "",
    production_shape: bool = False,
) -> subprocess.Popen:
    """A `celery -A webapp worker` process on `broker`, on the test database; its output
    goes to `log` when given (the tests that read what the worker said).

    `production_shape` runs it as compose.yaml and the Procfile do: the default prefork pool
    with its event loop, gossip, mingle and heartbeats, and more than one process (so the
    consumer keeps waiting on Redis for a next message while one runs); otherwise one
    thread, quiet."""
    database_url = database_url_for_another_process()
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": broker,
           "CELERY_BROKER_URL": broker, "CELERY_RESULT_BACKEND": result_backend}  # fmt: skip
    shape = (
        ["--concurrency", "2"]
        if production_shape
        else ["--pool", "threads", "--concurrency", "1", "--without-gossip", "--without-mingle"]
    )
    out = log.open("ab") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "webapp", "worker", *shape,
             "--queues", queue, "--hostname", f"{queue}@%h",
             "--loglevel", "INFO" if log else "WARNING"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    finally:
        if log:
            out.close()


def stop_worker(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def fast_failing_app(broker: str):
    app = make_celery_app(broker, "")
    app.conf.broker_connection_timeout = 0.5
    app.conf.task_publish_retry_policy = {"max_retries": 0}
    return app


# The playground's fixtures (a real agent HTTP server, agents, SQLite read settings), for the
# playground fault tests here.
from tests.playground.conftest import (  # noqa: E402, F401
    _agent_server,
    agent_server,
    echo_agent,
    http_agent,
    sqlite_shared_reads,
)
