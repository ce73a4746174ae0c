"""The SQLite backend's writer queue: one writer at a time across threads and processes,
a clear "database is locked" after the busy timeout, and no lock outliving its process."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import OperationalError, connection

from webapp.db.sqlite3.base import DatabaseWrapper, WriterQueue

HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)
"""


def test_a_second_writer_waits_then_times_out_with_a_clear_error(tmp_path: Path) -> None:
    first = WriterQueue(str(tmp_path / "db.sqlite3"), timeout=5)
    second = WriterQueue(str(tmp_path / "db.sqlite3"), timeout=0.2)
    first.acquire()
    try:
        started = time.monotonic()
        with pytest.raises(OperationalError, match="database is locked"):
            second.acquire()
        assert time.monotonic() - started >= 0.2
    finally:
        first.release()
    second.acquire()  # free again once the first writer is done
    second.close()
    first.close()


def test_writers_in_threads_take_turns(tmp_path: Path) -> None:
    inside, overlaps = [0], []
    guard = threading.Lock()

    def write() -> None:
        queue = WriterQueue(str(tmp_path / "db.sqlite3"), timeout=10)
        for _ in range(50):
            queue.acquire()
            with guard:
                inside[0] += 1
                overlaps.append(inside[0])
            time.sleep(0.0002)
            with guard:
                inside[0] -= 1
            queue.release()
        queue.close()

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(overlaps) == 200
    assert max(overlaps) == 1


def test_another_process_holds_the_lock_until_it_dies(tmp_path: Path) -> None:
    db = str(tmp_path / "db.sqlite3")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, f"{db}-writer.lock"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        queue = WriterQueue(db, timeout=0.2)
        with pytest.raises(OperationalError, match="another process"):
            queue.acquire()
        # The thread lock was given back although the file lock was not had.
        assert queue.thread_lock.acquire(blocking=False)
        queue.thread_lock.release()
    finally:
        holder.kill()
        holder.wait()
    queue.timeout = 5
    queue.acquire()  # the killed process's lock went with it
    queue.close()


def file_database(path: Path, alias: str) -> DatabaseWrapper:
    settings = {
        **connection.settings_dict,
        "ENGINE": "webapp.db.sqlite3",
        "NAME": str(path),
        "OPTIONS": {"timeout": 10, "transaction_mode": "IMMEDIATE"},
        "CONN_MAX_AGE": 0,
    }
    return DatabaseWrapper(settings, alias=alias)


def test_concurrent_transactions_on_a_file_database_all_commit(
    tmp_path: Path, django_db_blocker
) -> None:
    """Eight threads, each with its own connection, write in transactions at once: none
    fails with "database is locked" and every row lands."""
    # Not the test database: a file of this test's own, which pytest-django would refuse.
    with django_db_blocker.unblock():
        run_concurrent_writers(tmp_path)


def run_concurrent_writers(tmp_path: Path) -> None:
    setup = file_database(tmp_path / "db.sqlite3", "setup")
    with setup.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("CREATE TABLE t (n INTEGER)")
    setup.close()
    errors: list[BaseException] = []

    def write(n: int) -> None:
        db = file_database(tmp_path / "db.sqlite3", f"w{n}")
        try:
            db.ensure_connection()
            for i in range(25):
                # What transaction.atomic() does on SQLite, without registering the alias.
                db._start_transaction_under_autocommit()  # queue, then BEGIN IMMEDIATE
                with db.cursor() as cursor:
                    cursor.execute("INSERT INTO t VALUES (%s)", [n * 100 + i])
                db._commit()
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    check = file_database(tmp_path / "db.sqlite3", "check")
    with check.cursor() as cursor:
        cursor.execute("SELECT COUNT(*), COUNT(DISTINCT n) FROM t")
        assert cursor.fetchone() == (200, 200)
    check.close()


@pytest.mark.parametrize("end", ["commit", "rollback", "close"])
def test_a_transaction_holds_the_queue_until_it_ends(
    tmp_path: Path, django_db_blocker, end: str
) -> None:
    other = WriterQueue(str(tmp_path / "db.sqlite3"), timeout=0.1)
    with django_db_blocker.unblock():
        db = file_database(tmp_path / "db.sqlite3", "db")
        db.ensure_connection()
        db._start_transaction_under_autocommit()  # as transaction.atomic() does on SQLite
        assert db.writer_queue.held
        with pytest.raises(OperationalError):
            other.acquire()
        {"commit": db._commit, "rollback": db._rollback, "close": db.close}[end]()
        assert not db.writer_queue.held
        other.acquire()
        other.close()
        db.close()


def test_in_memory_databases_need_no_queue(tmp_path: Path) -> None:
    memory = file_database(Path(":memory:"), "memory")
    assert memory.writer_queue is None
    assert file_database(tmp_path / "db.sqlite3", "file").writer_queue is not None
