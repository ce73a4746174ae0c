"""SQL functions that Django lacks and trace metrics need, written once per database.

- `EpochMs`: a datetime column as integer epoch milliseconds (UTC). Time buckets are
  `EpochMs(t) / width * width` on integers, as MLflow's are `floor(timestamp_ms / width) *
  width`: epoch-aligned, so that a day bucket starts at UTC midnight on both databases.
- `Percentile`: the linearly interpolated percentile of a group (PostgreSQL's
  `percentile_cont`, numpy's default), which MLflow's QueryTraceMetrics answers exactly.
  SQLite has no such aggregate before 3.47 and Python's build may lack it: the SQLite backend
  registers one (webapp/db/sqlite3/percentile.py).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Aggregate, BigIntegerField, FloatField, Func

from webapp.db.sqlite3.percentile import SQLITE_PERCENTILE


class EpochMs(Func):
    """Integer milliseconds since the epoch of a DateTimeField (stored as UTC)."""

    output_field = BigIntegerField()
    arity = 1

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        return self.as_sql(compiler, connection, template=POSTGRESQL_EPOCH_MS)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        return self.as_sql(compiler, connection, template=SQLITE_EPOCH_MS)


# Both floor to the millisecond, exactly, so that a trace lands in the bucket that a range
# filter on the datetime column puts it in. PostgreSQL's EXTRACT answers exact numeric
# seconds. SQLite holds Django's 'YYYY-MM-DD HH:MM:SS[.ffffff]' (UTC): julianday()'s double
# is off by tens of microseconds (a trace at 22:00:00.000 would fall into the hour before),
# so it reads whole seconds only, rounded, and takes the milliseconds from the text. (No
# strftime('%s'): Django's SQLite cursor reads "%s" as a placeholder.)
POSTGRESQL_EPOCH_MS = "FLOOR(EXTRACT(EPOCH FROM %(expressions)s) * 1000)::bigint"
SQLITE_EPOCH_MS = (
    "(CAST(ROUND((julianday(substr(%(expressions)s, 1, 19)) - 2440587.5) * 86400) AS INTEGER)"
    " * 1000 + CAST(substr(%(expressions)s, 21, 3) AS INTEGER))"
)


class Percentile(Aggregate):
    """`Percentile(expression, 95)`: the 95th percentile of the group, interpolated."""

    function = "percentile_cont"
    name = "Percentile"
    output_field = FloatField()

    def __init__(self, expression: Any, percent: float, **extra: Any) -> None:
        self.percent = float(percent)
        super().__init__(expression, **extra)

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        value_sql, params = compiler.compile(self.source_expressions[0])
        # The fraction is a literal formatted from a float, never user text.
        fraction = repr(self.percent / 100)
        return f"percentile_cont({fraction}) WITHIN GROUP (ORDER BY {value_sql})", params

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        value_sql, params = compiler.compile(self.source_expressions[0])
        return f"{SQLITE_PERCENTILE}({value_sql}, {self.percent!r})", params
