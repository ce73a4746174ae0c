"""gunicorn reads this file from the working directory: `gunicorn webapp.wsgi`.

It enforces the same rules as `manage.py serve`: SPYGLASS_AUTH may be off, and SECRET_KEY
unset (generated into var/), only when every address gunicorn binds is loopback.
"""

import os

from webapp.loopback import is_loopback_bind

bind = [os.environ.get("SPYGLASS_BIND", "127.0.0.1:8000")]
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# Agent calls run in Celery, not in requests; a request that takes this long is stuck.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
accesslog = "-"


def on_starting(server):
    auth_off = os.environ.get("SPYGLASS_AUTH", "1").strip().lower() in {"0", "false", "no", "off"}
    if auth_off and not all(is_loopback_bind(address) for address in server.cfg.bind):
        raise SystemExit(
            "Refusing to serve on a non-loopback address with SPYGLASS_AUTH off. "
            "Unset SPYGLASS_AUTH or bind 127.0.0.1."
        )
    # Without SECRET_KEY the settings generate one into var/: fine for one machine's loopback,
    # wrong for servers that must share it (sessions and CSRF tokens would not validate).
    if not os.environ.get("SECRET_KEY") and not all(
        is_loopback_bind(address) for address in server.cfg.bind
    ):
        raise SystemExit("Set SECRET_KEY (the same on every server) to bind a public address.")
