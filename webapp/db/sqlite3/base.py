"""SQLite backend: the real bind-variable limit, and writers that queue instead of sleeping.

Django 5.2 assumes SQLite's old compile-time default of 999 variables per statement, so a
bulk insert of 13-column span rows is split into batches of 76 rows. Modern SQLite builds
allow 32,766 or more; asking the connection lets ingest store a 1,000-span trace in one
INSERT (Django 6.0 does the same).

It also registers the aggregate that SQLite lacks (percentile.py).

SQLite has one writer at a time. A second `BEGIN IMMEDIATE` waits in SQLite's busy handler,
which sleeps 1, 2, 5, 10, ... 100 ms between tries: under concurrent ingest most of a
request's time went to those sleeps while the lock was already free. Here a transaction
first takes a lock of this process (threads wait on it and wake when it is released),
then an advisory file lock beside the database, polled at sub-millisecond intervals,
which orders the writers of other processes (gunicorn workers, the Celery worker). The
file lock dies with its process, so a killed worker cannot wedge the others.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time

from django.db import OperationalError
from django.db.backends.sqlite3 import base, features
from django.utils.functional import cached_property

from webapp.db.sqlite3.percentile import SQLITE_PERCENTILE, PercentileAggregate

# One per database file and process; keyed by path so tests with several databases work.
_process_locks: dict[str, threading.Lock] = {}
_process_locks_guard = threading.Lock()


def _process_lock(path: str) -> threading.Lock:
    with _process_locks_guard:
        return _process_locks.setdefault(path, threading.Lock())


class WriterQueue:
    """Exclusive right to write to one SQLite file, across threads and processes."""

    def __init__(self, db_path: str, timeout: float) -> None:
        self.path = f"{db_path}-writer.lock"
        self.timeout = timeout
        self.thread_lock = _process_lock(self.path)
        self.fd: int | None = None
        self.held = False

    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        if not self.thread_lock.acquire(timeout=self.timeout):
            raise OperationalError("database is locked (waited for another writer thread)")
        try:
            if self.fd is None:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            pause = 0.0001
            while True:
                try:
                    fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise OperationalError(
                            "database is locked (waited for another process's writer)"
                        ) from None
                    time.sleep(pause)
                    pause = min(pause * 2, 0.002)
        except BaseException:
            self.thread_lock.release()
            raise
        self.held = True

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            self.thread_lock.release()

    def close(self) -> None:
        self.release()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class DatabaseFeatures(features.DatabaseFeatures):
    @cached_property
    def max_query_params(self) -> int:
        self.connection.ensure_connection()
        return self.connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


class DatabaseWrapper(base.DatabaseWrapper):
    features_class = DatabaseFeatures

    def get_new_connection(self, conn_params: dict) -> sqlite3.Connection:
        connection = super().get_new_connection(conn_params)
        # Trace metrics' percentiles; PostgreSQL has its own.
        connection.create_aggregate(SQLITE_PERCENTILE, 2, PercentileAggregate)
        return connection

    @cached_property
    def writer_queue(self) -> WriterQueue | None:
        options = self.settings_dict.get("OPTIONS", {})
        if self.is_in_memory_db() or str(options.get("transaction_mode")).upper() != "IMMEDIATE":
            return None  # nothing to share, or transactions that do not take the write lock
        name = str(self.settings_dict["NAME"])
        timeout = float(options.get("timeout", 5))
        return WriterQueue(os.path.abspath(name), timeout)

    def _start_transaction_under_autocommit(self) -> None:
        queue = self.writer_queue
        if queue is None:
            return super()._start_transaction_under_autocommit()
        queue.acquire()
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            queue.release()
            raise

    def _commit(self) -> None:
        super()._commit()
        # Only after a successful commit: a failed one is rolled back next, still in turn.
        self._release_writer()

    def _rollback(self) -> None:
        try:
            super()._rollback()
        finally:
            self._release_writer()

    def _close(self) -> None:
        try:
            super()._close()
        finally:
            if "writer_queue" in self.__dict__ and self.writer_queue is not None:
                self.writer_queue.close()

    def _release_writer(self) -> None:
        if "writer_queue" in self.__dict__ and self.writer_queue is not None:
            self.writer_queue.release()
