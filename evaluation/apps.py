from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    """The evaluation loop: dataset pages, evaluation runs read row by row and compared, and
    evaluations launched from the browser on playground agents. The data it reads and writes
    (datasets, runs, traces, assessments, scorers) is tracking's, in MLflow's shapes, so the
    client sees everything made here; this app holds the pages and the runner."""

    name = "evaluation"
    verbose_name = "Evaluation"

    def ready(self) -> None:
        # Web processes enqueue the runner's tasks by name (see playground/apps.py).
        from evaluation import tasks  # noqa: F401
