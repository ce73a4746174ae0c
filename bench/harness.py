"""What the benchmark scripts share: a scratch folder, the database they measure, the
environment of a production-like Spyglass process, and a server process to drive."""

from __future__ import annotations

import http.client
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# What an in-process bench takes over from bench_env() so its Django matches the server's.
SETTINGS = ("DATABASE_URL", "DEBUG", "SECRET_KEY", "SPYGLASS_AUTH", "SPYGLASS_VAR_DIR",
            "SPYGLASS_ARTIFACT_ROOT")  # fmt: skip


@contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A temporary folder for one run (SQLite file, var/, artifacts, logs), removed after."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def database_url(tmp: Path) -> str:
    """DATABASE_URL when it names PostgreSQL, else a fresh SQLite file in `tmp`."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://", "pgsql://")):
        return url
    return f"sqlite:///{tmp / 'spyglass.sqlite3'}"


def bench_env(tmp: Path) -> dict[str, str]:
    """The environment of a Spyglass process under measurement: production settings (DEBUG
    off), auth off (allowed: servers bind loopback only), state under `tmp`."""
    return {
        **os.environ,
        "DATABASE_URL": database_url(tmp),
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(32),
        "SPYGLASS_AUTH": "0",
        "SPYGLASS_VAR_DIR": str(tmp / "var"),
        "SPYGLASS_ARTIFACT_ROOT": str(tmp / "artifacts"),
        "LOG_LEVEL": "WARNING",
    }


def manage(env: dict[str, str], *commands: str) -> None:
    """Run `manage.py <command> --noinput` for each command (migrate, collectstatic) in `env`."""
    for command in commands:
        subprocess.run(
            [sys.executable, "manage.py", command, "--noinput", "-v", "0"],
            cwd=REPO,
            env=env,
            check=True,
        )


def machine_line() -> str:
    return (f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start "
            "(other work on the machine skews the figures)")  # fmt: skip


def percentiles(samples: list[float]) -> tuple[float, float]:
    """(p50, p95) of `samples`."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def server(command: list[str], env: dict[str, str], log: Path, ready: Callable[[], bool]):
    """Run a server process (in a session of its own, so its workers stop with it)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{command[0]} did not start; its log:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def answers(port: int, method: str, path: str, body: bytes = b"", headers=None) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request(method, path, body=body, headers=headers or {})
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


@contextmanager
def gunicorn(env: dict[str, str], tmp: Path, ready_path: str) -> Iterator[int]:
    """`gunicorn webapp.wsgi -w 2 --threads 4` on a free loopback port, as the browser benches
    drive it; yields the port once GET `ready_path` answers 200."""
    port = free_port()
    command = [str(BIN / "gunicorn"), "webapp.wsgi", "-w", "2", "--threads", "4",
               "-b", f"127.0.0.1:{port}", "--access-logfile", "/dev/null"]  # fmt: skip
    with server(command, env, tmp / "gunicorn.log", lambda: answers(port, "GET", ready_path)):
        print()
        print(f"browser: headless Chromium, gunicorn -w 2 --threads 4 on 127.0.0.1:{port}; "
              f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
        yield port
