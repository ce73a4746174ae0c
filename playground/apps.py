from django.apps import AppConfig


class PlaygroundConfig(AppConfig):
    name = "playground"
    verbose_name = "Playground"

    def ready(self) -> None:
        # Web processes enqueue the answer task by name; importing it registers it with every
        # Celery app (Celery's own autodiscovery only runs in workers).
        from playground import tasks  # noqa: F401
