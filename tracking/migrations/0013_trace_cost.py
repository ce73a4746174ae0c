"""The trace's cost in dollars (tracking/cost.py), and its sort index for the trace list.

As for tokens (0003, 0004), the index differs per database: the list orders unknown (null)
costs below all others in both directions, which SQLite's (cost, id) serves (nulls lowest,
rowid last) and PostgreSQL needs `ASC NULLS FIRST` for. Existing traces keep a null cost:
their spans were stored without prices, and a re-sent trace gets one.
"""

from django.db import migrations, models

FORWARD = {
    "sqlite": "CREATE INDEX IF NOT EXISTS trace_cost_sort_idx ON tracking_trace (cost, id)",
    "postgresql": "CREATE INDEX IF NOT EXISTS trace_cost_sort_idx "
    "ON tracking_trace (cost ASC NULLS FIRST, id)",
}
BACKWARD = "DROP INDEX IF EXISTS trace_cost_sort_idx"


def _forward(apps, schema_editor):
    if statement := FORWARD.get(schema_editor.connection.vendor):
        schema_editor.execute(statement)


def _backward(apps, schema_editor):
    schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("tracking", "0012_run_linked_traces")]

    operations = [
        migrations.AddField(
            model_name="trace",
            name="cost",
            field=models.FloatField(blank=True, null=True),
        ),
        # Version statistics sum and average the cost from the index alone, as tokens.
        migrations.RemoveIndex(model_name="trace", name="trace_model_stats_idx"),
        migrations.AddIndex(
            model_name="trace",
            index=models.Index(
                fields=["model_id", "state", "duration_ns", "total_tokens", "cost"],
                name="trace_model_stats_idx",
            ),
        ),
        migrations.RunPython(_forward, _backward),
    ]
