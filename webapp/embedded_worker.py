"""A Celery worker running on a thread inside the web process.

With no broker configured (`make run` on a fresh clone), tasks travel through kombu's
in-memory transport to this worker. It is the same Celery machinery as a separate
`celery -A webapp worker`: messages, acknowledgements, time limits; only the process
boundary is missing. Production sets REDIS_URL and runs workers of its own.
"""

from __future__ import annotations

import logging
import threading
import time

from celery import Celery
from celery.result import _set_task_join_will_block
from celery.utils.nodenames import anon_nodename
from celery.worker import WorkController

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_worker: EmbeddedWorker | None = None


class EmbeddedWorker(WorkController):
    """A WorkController that tells when its consumer is ready."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.ready = threading.Event()
        super().__init__(*args, **kwargs)

    def on_consumer_ready(self, consumer: object) -> None:
        self.ready.set()


def start(app: Celery, concurrency: int = 4, timeout: float = 10.0) -> EmbeddedWorker:
    """Start a worker thread for `app` and wait until it answers a ping.

    A thread pool, not prefork: forking a process that serves HTTP would copy its sockets,
    and threads share the in-memory broker with the web code.
    """
    created: list[EmbeddedWorker] = []
    constructed = threading.Event()

    def run() -> None:
        # Built on its own thread: Celery's Django fixup closes the database connection of
        # the thread that creates a worker, which must not be the caller's.
        worker = EmbeddedWorker(
            app=app,
            concurrency=concurrency,
            pool="threads",
            hostname=f"embedded-{anon_nodename()}",
            # Gossip, mingle and heartbeats coordinate workers across machines; one
            # in-process worker has nobody to talk to.
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            loglevel="INFO",
        )
        created.append(worker)
        constructed.set()
        worker.start()

    threading.Thread(target=run, name="celery-embedded", daemon=True).start()
    if not constructed.wait(timeout) or not created[0].ready.wait(timeout):
        raise RuntimeError("the embedded Celery worker did not start")
    worker = created[0]
    # "Consumer ready" comes before the control queue is bound; a ping sent in between is
    # lost. Wait until the worker answers one, so /healthz is right from the first request.
    deadline = time.monotonic() + timeout
    while not app.control.ping(destination=[worker.hostname], timeout=0.2):
        if time.monotonic() > deadline:
            raise RuntimeError("the embedded Celery worker does not answer pings")
    # Creating a worker marks the whole process as "inside a task", which forbids waiting on
    # a result; the web threads are not tasks (Celery's own embedded test worker does this).
    _set_task_join_will_block(False)
    logger.info("Embedded Celery worker %s ready (%d threads)", worker.hostname, concurrency)
    return worker


def ensure_started(app: Celery, concurrency: int = 4) -> EmbeddedWorker:
    """Start the process's embedded worker once, however often this is called."""
    global _worker
    with _lock:
        if _worker is None:
            _worker = start(app, concurrency)
        return _worker


def start_beat(app: Celery) -> object:
    """Celery beat on a thread of this process, for periodic tasks under `make run`.

    A thread, not beat's default child process: forking a process that serves HTTP would
    copy its sockets. Production runs `celery -A webapp beat` instead.
    """
    from celery.beat import EmbeddedService

    beat = EmbeddedService(app, thread=True, schedule_filename=app.conf.beat_schedule_filename)
    beat.start()
    return beat


def stop(worker: WorkController) -> None:
    worker.stop(in_sighandler=False)
