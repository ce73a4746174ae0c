from django.db import migrations


def _reinstall(apps, schema_editor):
    """Recreate the trace rollup triggers: they now also watch session_id and mark the hour
    of a session's next first trace (tracking/rollups.py). SQLite's are CREATE ... IF NOT
    EXISTS, so the old ones are dropped first; PostgreSQL's replace themselves."""
    from tracking import rollups

    if schema_editor.connection.vendor != "postgresql":
        with schema_editor.connection.cursor() as cursor:
            for statement in rollups.SQLITE_DROP:
                cursor.execute(statement)
    rollups.install_triggers(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("tracking", "0020_overview_rollups"),
    ]

    operations = [
        migrations.RunPython(_reinstall, migrations.RunPython.noop),
    ]
