"""WSGI entry point (gunicorn webapp.wsgi, and `manage.py serve` through runserver)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

application = get_wsgi_application()

from webapp.heap import freeze_startup_heap  # noqa: E402 (needs the settings configured)

freeze_startup_heap()
