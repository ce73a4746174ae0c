"""PostgreSQL indexes for sorting the trace list by duration and by tokens.

The list orders unknown (null) values below all others, in both directions: `ASC NULLS
FIRST, id` forward and `DESC NULLS LAST, id DESC` backward are one index each. SQLite needs
nothing here: it stores nulls lowest and ends every index with the rowid, so
trace_duration_idx and trace_tokens_idx (0003) already serve both orders. The
(total_tokens, id) index of 0003 is replaced on PostgreSQL, where its NULLS LAST order
serves neither direction of this one.
"""

from django.db import migrations

POSTGRESQL_FORWARD = [
    "CREATE INDEX IF NOT EXISTS trace_duration_sort_idx "
    "ON tracking_trace (duration_ns ASC NULLS FIRST, id)",
    "CREATE INDEX IF NOT EXISTS trace_tokens_sort_idx "
    "ON tracking_trace (total_tokens ASC NULLS FIRST, id)",
    "DROP INDEX IF EXISTS trace_tokens_idx",
]
POSTGRESQL_BACKWARD = [
    "CREATE INDEX IF NOT EXISTS trace_tokens_idx ON tracking_trace (total_tokens, id)",
    "DROP INDEX IF EXISTS trace_tokens_sort_idx",
    "DROP INDEX IF EXISTS trace_duration_sort_idx",
]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for statement in statements:
                schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("tracking", "0003_trace_preview_search_indexes")]

    operations = [migrations.RunPython(_run(POSTGRESQL_FORWARD), _run(POSTGRESQL_BACKWARD))]
