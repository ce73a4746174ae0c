"""Tasks that belong to the deployment itself rather than to an app."""

from __future__ import annotations

import socket

from celery import shared_task


@shared_task(name="webapp.ping", acks_late=False)
def ping() -> dict[str, str]:
    """Answer from the worker: proves a message went through the broker and came back."""
    return {"pong": socket.gethostname()}
