"""The Celery app. Its settings are the CELERY_* names in webapp/settings.py."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("spyglass")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
