"""`manage.py serve`: the web server plus, when no broker is configured, its Celery worker.

This is what `make run` starts: one process that serves pages and runs background tasks on
a worker thread (webapp/embedded_worker.py). With REDIS_URL set the worker is not embedded;
run `celery -A webapp worker` beside it (README).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp import embedded_worker
from webapp.celery import app as celery_app
from webapp.loopback import is_loopback


class Command(BaseCommand):
    help = "Serve Spyglass (with an embedded Celery worker when no broker is configured)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")

    def handle(self, *args: Any, addrport: str, **options: Any) -> None:
        host, _, port = addrport.rpartition(":")
        host = host or "127.0.0.1"
        self._settle_auth(host)
        if settings.SPYGLASS_SECRET_KEY_GENERATED and not is_loopback(host):
            raise CommandError(
                f"Refusing to serve on {host} with a generated SECRET_KEY: set SECRET_KEY in "
                "the environment (the same on every server), or listen on 127.0.0.1."
            )
        if not settings.SPYGLASS_INTERNAL_URL_EXPLICIT:
            settings.SPYGLASS_INTERNAL_URL = internal_url(host, port)
        if settings.SPYGLASS_EMBEDDED_WORKER:
            embedded_worker.ensure_started(celery_app, settings.SPYGLASS_EMBEDDED_CONCURRENCY)
            embedded_worker.start_beat(celery_app)
            self.stdout.write(
                "Background tasks: embedded Celery worker and beat (in-memory broker)."
            )
        else:
            broker = celery_app.conf.broker_url.rsplit("@", 1)[-1]
            self.stdout.write(f"Background tasks: {broker}; run `celery -A webapp worker`.")
        self.stdout.write(f"Spyglass: http://{host}:{port}/")
        # The autoreloader would fork a child that starts without the worker thread.
        call_command("runserver", f"{host}:{port}", use_reloader=False, use_threading=True)

    def _settle_auth(self, host: str) -> None:
        """Auth may be off only on loopback; unset, it is off there and on elsewhere."""
        loopback = is_loopback(host)
        if not settings.SPYGLASS_AUTH_EXPLICIT:
            settings.SPYGLASS_AUTH = not loopback
        if not settings.SPYGLASS_AUTH:
            if not loopback:
                raise CommandError(
                    f"Refusing to serve on {host} with SPYGLASS_AUTH off: anyone who can reach "
                    "it could read and change every trace. Unset SPYGLASS_AUTH or listen on "
                    "127.0.0.1."
                )
            self.stdout.write("Auth: off (listening on loopback only).")
            return
        users = get_user_model().objects.filter(is_active=True)
        if users.exists():
            self.stdout.write(
                "Auth: on. Log in at /accounts/login/; clients use MLFLOW_TRACKING_USERNAME/"
                "PASSWORD or a token from /settings/tokens/ as MLFLOW_TRACKING_TOKEN."
            )
        else:
            self.stdout.write(
                "Auth: on, and there is no user yet. Create one with\n"
                "  .venv/bin/python manage.py createsuperuser"
            )


def internal_url(host: str, port: str) -> str:
    """The URL this process's worker reaches the server at: the bound address, or loopback
    when it binds every address."""
    host = host.strip("[]")
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
