"""SQLite backend that knows how many bind variables this SQLite really accepts.

Django 5.2 assumes SQLite's old compile-time default of 999 variables per statement, so a
bulk insert of 13-column span rows is split into batches of 76 rows. Modern SQLite builds
allow 32,766 or more; asking the connection lets ingest store a 1,000-span trace in one
INSERT (Django 6.0 does the same).
"""

from __future__ import annotations

import sqlite3

from django.db.backends.sqlite3 import base, features
from django.utils.functional import cached_property


class DatabaseFeatures(features.DatabaseFeatures):
    @cached_property
    def max_query_params(self) -> int:
        self.connection.ensure_connection()
        return self.connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


class DatabaseWrapper(base.DatabaseWrapper):
    features_class = DatabaseFeatures
