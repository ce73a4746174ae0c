"""`manage.py serve`: the web server plus, when no broker is configured, its Celery worker.

This is what `make run` starts: one process that serves pages and runs background tasks on
a worker thread (webapp/embedded_worker.py). With REDIS_URL set the worker is not embedded;
run `celery -A webapp worker` beside it (README, production).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from webapp import embedded_worker
from webapp.celery import app as celery_app


class Command(BaseCommand):
    help = "Serve Spyglass (with an embedded Celery worker when no broker is configured)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")

    def handle(self, *args: Any, addrport: str, **options: Any) -> None:
        if settings.SPYGLASS_EMBEDDED_WORKER:
            embedded_worker.ensure_started(celery_app, settings.SPYGLASS_EMBEDDED_CONCURRENCY)
            self.stdout.write("Background tasks: embedded Celery worker (in-memory broker).")
        else:
            self.stdout.write(
                f"Background tasks: broker {celery_app.conf.broker_url.split('@')[-1]}; "
                "start workers with `celery -A webapp worker`."
            )
        host = addrport.rsplit(":", 1)[0]
        self.stdout.write(f"Spyglass: http://{host}:{addrport.rsplit(':', 1)[-1]}/")
        # The autoreloader would fork a child that starts without the worker thread.
        call_command("runserver", addrport, use_reloader=False, use_threading=True)
