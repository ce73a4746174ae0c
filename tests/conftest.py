"""Fixtures shared by the whole suite.

Service tests use the real thing: Redis at REDIS_URL (default redis://127.0.0.1:6379/15),
the database at DATABASE_URL. When a service is unreachable such a test is skipped with the
reason, unless SPYGLASS_REQUIRE_SERVICES=1 (CI), where an unreachable service fails it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery, shared_task
from django.contrib.auth.models import User

from access.models import Role
from tests.users import PASSWORD, with_role
from tracking.models import Experiment

REPO = Path(__file__).resolve().parent.parent

# Set by the `tests.record` task when a worker runs it: proof that a message went through the
# broker to a worker, without a result backend.
RECORDED: defaultdict[str, threading.Event] = defaultdict(threading.Event)


@shared_task(name="tests.record")
def record(key: str) -> str:
    RECORDED[key].set()
    return threading.current_thread().name


@pytest.fixture(autouse=True, scope="session")
def _auth_off_unless_a_test_turns_it_on() -> Iterator[None]:
    """Most tests exercise features, not logins; tests of auth set SPYGLASS_AUTH=True."""
    from django.test import override_settings

    with override_settings(SPYGLASS_AUTH=False):
        yield


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hashing() -> Iterator[None]:
    # Django's hasher is slow on purpose; no test here is about hashing itself. Servers the
    # tests start in subprocesses (tests/reliability) keep the real one.
    from django.test import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(autouse=True)
def _each_test_a_fresh_worker_environment() -> Iterator[None]:
    """A worker points its mlflow client at Spyglass by setting environment variables, once
    per process (playground/agents/mlflow_env.py). In this process they would outlive the
    test that loaded a model and send later tests' mlflow clients elsewhere: put them back."""
    from playground.agents import mlflow_env

    before = dict(os.environ)
    yield
    if mlflow_env.reset():
        for name in set(os.environ) - set(before):
            del os.environ[name]
        os.environ.update(before)
        if "mlflow.tracing" in sys.modules:  # its exporter was made from that environment
            sys.modules["mlflow.tracing"].reset()


@pytest.fixture
def auth_on(settings) -> None:
    settings.SPYGLASS_AUTH = True


# The cast: one user per role, all with the password tests.users.PASSWORD.


@pytest.fixture
def alice(db) -> User:
    """The admin."""
    return with_role(User.objects.create_user("alice", password=PASSWORD), Role.ADMIN)


@pytest.fixture
def bob(db) -> User:
    """An editor."""
    return with_role(User.objects.create_user("bob", password=PASSWORD), Role.EDITOR)


@pytest.fixture
def charlie(db) -> User:
    """A viewer."""
    return with_role(User.objects.create_user("charlie", password=PASSWORD), Role.VIEWER)


@pytest.fixture
def experiment(db) -> Experiment:
    return Experiment.objects.create(name="support")


def services_required() -> bool:
    return os.environ.get("SPYGLASS_REQUIRE_SERVICES") == "1"


def service_unavailable(reason: str) -> None:
    """Skip on a user's machine; fail where services are promised (CI)."""
    if services_required():
        pytest.fail(f"{reason} (SPYGLASS_REQUIRE_SERVICES=1 forbids skipping)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2).ping()
    except redis.RedisError as exc:
        service_unavailable(f"Redis is not reachable at {url}: {exc}")
    return url


def database_url_for_another_process() -> str:
    """DATABASE_URL that points another process (a Celery worker) at this test database.
    Skips where none can reach it: pytest-django's in-memory SQLite."""
    from django.db import connection

    db = connection.settings_dict
    if connection.vendor == "sqlite":
        if connection.is_in_memory_db():
            pytest.skip(
                "a worker process cannot share an in-memory SQLite test database "
                "(SPYGLASS_SQLITE_TEST_FILE=1 puts it in a file, as CI does)"
            )
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"postgres://{auth}@{host}/{db['NAME']}"


def make_celery_app(broker_url: str, result_backend: str) -> Celery:
    """A Celery app configured exactly like webapp.celery.app but for its broker.

    Tests pick their broker per test (in-memory, a real Redis, a stopped one) whatever
    REDIS_URL the suite runs with; the tasks are the same shared tasks.
    """
    import webapp.tasks  # noqa: F401  (registers the shared tasks)

    app = Celery(f"spyglass-test-{uuid.uuid4().hex[:8]}", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    transport_options = dict(app.conf.broker_transport_options or {})
    if broker_url.startswith("memory://"):
        transport_options["polling_interval"] = 0.01
    app.conf.update(
        broker_url=broker_url,
        result_backend=result_backend,
        broker_transport_options=transport_options,
    )
    app.finalize()
    return app


@pytest.fixture
def memory_celery_app() -> Iterator[Celery]:
    # No result backend: in-process, as under `make run`, rows are what callers read.
    app = make_celery_app("memory://", "")
    yield app
    app.close()


@pytest.fixture
def embedded_worker(memory_celery_app: Celery) -> Iterator[Celery]:
    """The in-process worker `make run` uses, on the in-memory broker. Yields its app."""
    from webapp import embedded_worker as embedded

    worker = embedded.start(memory_celery_app, concurrency=2)
    yield memory_celery_app
    embedded.stop(worker)


@pytest.fixture
def redis_celery_app(redis_url: str) -> Iterator[Celery]:
    app = make_celery_app(redis_url, redis_url)
    yield app
    app.close()


@pytest.fixture
def redis_worker(redis_url: str, redis_celery_app: Celery) -> Iterator[tuple[Celery, str]]:
    """A real `celery -A webapp worker` process on Redis, consuming a queue of its own.

    Yields (app, queue). The private queue keeps this worker from taking anyone else's
    messages on a shared Redis, and anyone else's worker from taking ours.
    """
    with celery_worker_process(redis_url, redis_celery_app) as queue:
        yield redis_celery_app, queue


@contextlib.contextmanager
def celery_worker_process(
    redis_url: str, app: Celery, cwd: Path = REPO, env: dict[str, str] | None = None
) -> Iterator[str]:
    """`celery -A webapp worker` on Redis in `cwd` (this checkout's code whatever the cwd),
    with `env` (default: this process's); yields its private queue once it answers a ping,
    and stops it on exit."""
    queue = f"test-{uuid.uuid4().hex[:12]}"
    env = {**(os.environ if env is None else env), "REDIS_URL": redis_url,
           "CELERY_BROKER_URL": redis_url}  # fmt: skip
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("CELERY_RESULT_BACKEND", None)
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "webapp", "worker",
            "--pool", "threads", "--concurrency", "2", "--queues", queue,
            "--hostname", f"{queue}@{socket.gethostname()}",
            "--without-gossip", "--without-mingle", "--loglevel", "WARNING",
        ],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        # Wait until the worker answers a ping through Redis, i.e. it is consuming.
        for _ in range(60):
            if proc.poll() is not None:
                pytest.fail(f"celery worker exited early:\n{proc.stdout.read()}")
            if app.control.ping(destination=[f"{queue}@{socket.gethostname()}"], timeout=0.5):
                break
        else:
            pytest.fail("celery worker did not answer a ping within 30 s")
        yield queue
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def artifact_root(tmp_path: Path, settings) -> Path:
    """Artifacts of the test in a folder of its own (default storage follows STORAGES)."""
    root = tmp_path / "artifacts"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": root},
        },
    }
    return root
