from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TrackingConfig(AppConfig):
    name = "tracking"
    verbose_name = "Tracking"

    def ready(self) -> None:
        post_migrate.connect(_reinstall_rollup_triggers, sender=self)


def _reinstall_rollup_triggers(using: str, plan: Any = None, **kwargs: Any) -> None:
    """After every `migrate`: a migration that makes SQLite rebuild tracking_trace drops its
    triggers with the old table, and trace rollups would stop following the traces unseen."""
    from django.db import connections
    from django.db.migrations.recorder import MigrationRecorder

    from tracking import rollups

    connection = connections[using]
    applied = MigrationRecorder(connection).applied_migrations()
    if ("tracking", "0014_trace_metrics_rollups") in applied:
        rollups.install_triggers(connection)
