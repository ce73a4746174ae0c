"""Indexes for free-text search over trace previews (the trace list's query language).

A `LIKE '%word%'` cannot use a B-tree index, so at a million traces it reads every preview.

- SQLite: an external-content FTS5 table with the trigram tokenizer (substring matches,
  case-insensitive), kept in sync with tracking_trace by triggers.
- PostgreSQL: pg_trgm GIN indexes on UPPER(preview), the expression Django's `icontains`
  compares (`UPPER(col::text) LIKE UPPER(%s)`), so the planner uses them.

Both are invisible to Django's model state. Beware on SQLite: a later migration that makes
Django rebuild tracking_trace (most column changes) drops these triggers with the old table;
tests/tracking/test_search.py checks that the index still follows writes.
"""

from django.db import migrations

SQLITE_FORWARD = [
    """CREATE VIRTUAL TABLE tracking_trace_fts USING fts5(
        request_preview, response_preview,
        content='tracking_trace', content_rowid='id', tokenize='trigram'
    )""",
    """CREATE TRIGGER tracking_trace_fts_insert AFTER INSERT ON tracking_trace BEGIN
        INSERT INTO tracking_trace_fts(rowid, request_preview, response_preview)
        VALUES (new.id, new.request_preview, new.response_preview);
    END""",
    """CREATE TRIGGER tracking_trace_fts_delete AFTER DELETE ON tracking_trace BEGIN
        INSERT INTO tracking_trace_fts(tracking_trace_fts, rowid, request_preview, response_preview)
        VALUES ('delete', old.id, old.request_preview, old.response_preview);
    END""",
    # Only when a preview changes: ingest updates state, duration and tokens far more often.
    """CREATE TRIGGER tracking_trace_fts_update
    AFTER UPDATE OF request_preview, response_preview ON tracking_trace BEGIN
        INSERT INTO tracking_trace_fts(tracking_trace_fts, rowid, request_preview, response_preview)
        VALUES ('delete', old.id, old.request_preview, old.response_preview);
        INSERT INTO tracking_trace_fts(rowid, request_preview, response_preview)
        VALUES (new.id, new.request_preview, new.response_preview);
    END""",
    "INSERT INTO tracking_trace_fts(tracking_trace_fts) VALUES ('rebuild')",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS tracking_trace_fts_update",
    "DROP TRIGGER IF EXISTS tracking_trace_fts_delete",
    "DROP TRIGGER IF EXISTS tracking_trace_fts_insert",
    "DROP TABLE IF EXISTS tracking_trace_fts",
]
POSTGRESQL_FORWARD = [
    # Trusted since PostgreSQL 13: the database owner may create it, no superuser needed.
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS trace_request_preview_trgm "
    "ON tracking_trace USING gin (UPPER(request_preview) gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS trace_response_preview_trgm "
    "ON tracking_trace USING gin (UPPER(response_preview) gin_trgm_ops)",
]
POSTGRESQL_BACKWARD = [
    "DROP INDEX IF EXISTS trace_response_preview_trgm",
    "DROP INDEX IF EXISTS trace_request_preview_trgm",
]
# Sorting the list by tokens pages on (total_tokens, id); duration has trace_duration_idx.
BOTH_FORWARD = [
    "CREATE INDEX IF NOT EXISTS trace_tokens_idx ON tracking_trace (total_tokens, id)",
]
BOTH_BACKWARD = ["DROP INDEX IF EXISTS trace_tokens_idx"]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        vendor = schema_editor.connection.vendor
        for statement in [*statements_by_vendor.get(vendor, []), *statements_by_vendor["*"]]:
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("tracking", "0002_default_experiment")]

    operations = [
        migrations.RunPython(
            _run({"sqlite": SQLITE_FORWARD, "postgresql": POSTGRESQL_FORWARD, "*": BOTH_FORWARD}),
            _run(
                {"sqlite": SQLITE_BACKWARD, "postgresql": POSTGRESQL_BACKWARD, "*": BOTH_BACKWARD}
            ),
        ),
    ]
