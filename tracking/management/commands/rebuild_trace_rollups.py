"""`manage.py rebuild_trace_rollups [--experiment ID ...]`: recompute the hourly and daily
trace rollups that trace metrics read, from the traces themselves.

Never needed in normal operation (triggers mark every changed hour and reads refresh them);
for after a restore of the trace table alone, or to check that the rollups agree."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tracking import rollups


class Command(BaseCommand):
    help = "Recompute the trace rollups that trace metrics read, from the traces."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--experiment", type=int, action="append", help="only this experiment (repeatable)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        hours = rollups.rebuild(options["experiment"])
        seconds = time.perf_counter() - started
        self.stdout.write(f"Recomputed {hours:,} hours of trace rollups in {seconds:.1f} s.")
