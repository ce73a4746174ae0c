"""`manage.py backfill_costs`: give traces stored before cost at ingest their costs.

Prices their spans as ingest does (tracking/cost_backfill.py), a batch of traces per
transaction so that clients keep writing meanwhile, and prints its progress. Safe to run
again, or to stop and restart: nothing is ever counted twice.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tracking import cost_backfill
from tracking.models import Experiment


class Command(BaseCommand):
    help = "Price the spans of traces stored without a cost, as ingest prices new ones."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--experiment", type=int, help="Only this experiment's traces.")
        parser.add_argument(
            "--batch", type=int, default=100, help="Traces per transaction (default: 100)."
        )

    def handle(self, *args: Any, experiment: int | None, batch: int, **options: Any) -> None:
        if batch < 1:
            raise CommandError("--batch must be at least 1.")
        if experiment is not None and not Experiment.objects.filter(pk=experiment).exists():
            raise CommandError(f"No experiment with id {experiment}.")
        traces = cost_backfill.traces_to_price(experiment).order_by("pk")
        total = traces.count()
        self.stdout.write(f"{total:,} traces without a cost to look at.")
        seen = spans = costed = 0
        last_pk = 0
        while pks := list(traces.filter(pk__gt=last_pk).values_list("pk", flat=True)[:batch]):
            priced = cost_backfill.price_stored_traces(pks)
            last_pk = pks[-1]
            seen += len(pks)
            spans += priced.spans
            costed += priced.traces
            self.stdout.write(
                f"{seen:,}/{total:,} traces: {spans:,} spans priced, {costed:,} traces costed."
            )
        self.stdout.write(
            self.style.SUCCESS(f"Done: {costed:,} of {seen:,} traces now have a cost.")
        )
