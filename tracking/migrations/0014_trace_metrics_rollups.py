"""Trace metrics: the token usage and session columns they aggregate, filled from each
trace's metadata, and hourly rollups kept current by triggers (tracking/rollups.py)."""

import django.db.models.deletion
import orjson
from django.db import migrations, models

# Copies of the constants of their day (a migration must not follow later code).
USAGE_COLUMNS = (
    "total_tokens",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)
BATCH = 2000


def _usage(text):
    try:
        parsed = orjson.loads(text) if text else {}
    except ValueError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    return {
        k: v for k, v in parsed.items() if k in USAGE_COLUMNS and type(v) is int and 0 <= v < 2**62
    }


def _fill_columns(apps, schema_editor):
    """Copy token usage and session out of the metadata of traces stored before."""
    Trace = apps.get_model("tracking", "Trace")
    changed = []
    traces = Trace.objects.only("metadata").order_by("pk")
    for trace in traces.iterator(chunk_size=BATCH):
        metadata = trace.metadata or {}
        usage = _usage(metadata.get("mlflow.trace.tokenUsage"))
        session = (metadata.get("mlflow.trace.session") or "")[:250] or None
        if len(usage) > 1 or session:
            for key in USAGE_COLUMNS[1:]:
                setattr(trace, key, usage.get(key))
            trace.session_id = session
            changed.append(trace)
        if len(changed) >= BATCH:
            Trace.objects.bulk_update(changed, [*USAGE_COLUMNS[1:], "session_id"])
            changed = []
    if changed:
        Trace.objects.bulk_update(changed, [*USAGE_COLUMNS[1:], "session_id"])


def _install_triggers(apps, schema_editor):
    from tracking import rollups

    rollups.install_triggers(schema_editor.connection)
    # Every hour that has traces is computed on the first read (or by the beat task).
    with schema_editor.connection.cursor() as cursor:
        hour = rollups.hour_sql(schema_editor.connection.vendor, "tracking_trace")
        cursor.execute(
            "INSERT INTO tracking_rollupchange (experiment_id, hour_ms) "
            f"SELECT DISTINCT experiment_id, {hour} FROM tracking_trace"
        )


def _drop_triggers(apps, schema_editor):
    from tracking import rollups

    drop = (
        rollups.POSTGRESQL_DROP
        if schema_editor.connection.vendor == "postgresql"
        else rollups.SQLITE_DROP
    )
    with schema_editor.connection.cursor() as cursor:
        for statement in drop:
            cursor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("tracking", "0013_trace_cost"),
    ]

    operations = [
        migrations.AddField(
            model_name="trace",
            name="cache_creation_input_tokens",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="trace",
            name="cache_read_input_tokens",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="trace",
            name="input_tokens",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="trace",
            name="output_tokens",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="trace",
            name="session_id",
            field=models.CharField(blank=True, max_length=250, null=True),
        ),
        migrations.CreateModel(
            name="RollupChange",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("experiment_id", models.BigIntegerField()),
                ("hour_ms", models.BigIntegerField()),
            ],
            options={
                "indexes": [models.Index(fields=["experiment_id"], name="rollup_change_exp_idx")],
            },
        ),
        migrations.CreateModel(
            name="TraceRollup",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("period_hours", models.SmallIntegerField()),
                ("hour_ms", models.BigIntegerField()),
                ("model_id", models.CharField(blank=True, max_length=64)),
                ("name", models.CharField(blank=True, max_length=500)),
                ("state", models.CharField(max_length=16)),
                ("traces", models.BigIntegerField()),
                ("latency_n", models.BigIntegerField(default=0)),
                ("latency_sum", models.FloatField(null=True)),
                ("latency_min", models.FloatField(null=True)),
                ("latency_max", models.FloatField(null=True)),
                ("input_tokens_n", models.BigIntegerField(default=0)),
                ("input_tokens_sum", models.FloatField(null=True)),
                ("input_tokens_min", models.FloatField(null=True)),
                ("input_tokens_max", models.FloatField(null=True)),
                ("output_tokens_n", models.BigIntegerField(default=0)),
                ("output_tokens_sum", models.FloatField(null=True)),
                ("output_tokens_min", models.FloatField(null=True)),
                ("output_tokens_max", models.FloatField(null=True)),
                ("total_tokens_n", models.BigIntegerField(default=0)),
                ("total_tokens_sum", models.FloatField(null=True)),
                ("total_tokens_min", models.FloatField(null=True)),
                ("total_tokens_max", models.FloatField(null=True)),
                ("cache_read_input_tokens_n", models.BigIntegerField(default=0)),
                ("cache_read_input_tokens_sum", models.FloatField(null=True)),
                ("cache_read_input_tokens_min", models.FloatField(null=True)),
                ("cache_read_input_tokens_max", models.FloatField(null=True)),
                ("cache_creation_input_tokens_n", models.BigIntegerField(default=0)),
                ("cache_creation_input_tokens_sum", models.FloatField(null=True)),
                ("cache_creation_input_tokens_min", models.FloatField(null=True)),
                ("cache_creation_input_tokens_max", models.FloatField(null=True)),
                ("total_cost_n", models.BigIntegerField(default=0)),
                ("total_cost_sum", models.FloatField(null=True)),
                ("total_cost_min", models.FloatField(null=True)),
                ("total_cost_max", models.FloatField(null=True)),
                (
                    "experiment",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="tracking.experiment",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(
                        fields=["experiment", "period_hours", "hour_ms"],
                        name="rollup_exp_hour_idx",
                    )
                ],
            },
        ),
        migrations.RunPython(_fill_columns, migrations.RunPython.noop),
        migrations.RunPython(_install_triggers, _drop_triggers),
    ]
