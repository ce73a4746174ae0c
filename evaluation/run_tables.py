"""Each evaluation run's table of row summaries, built once and kept until the run changes.

A row summary is what the run and compare pages show and sort on: the inputs' hash, the
inputs, outputs and expectations cut to a cell's size, each scorer's result (kind, value,
label, rationale), latency, tokens, cost and the trace id. Building it reads every root
span's inputs and outputs and every assessment as JSON, most of a page's time for a run of
a thousand rows; kept, a page reads the small summaries instead and only renders its page.

Kept in Django's cache (Redis when configured, so shared by every web process; else the
process's memory), one entry per run holding the run's *version*: two aggregate queries
over the run's links, their traces and the traces' assessments (count and newest id of
each, newest `updated_at`, the sums of the columns a row shows, valid assessments). Every
write a row depends on moves one of them: a trace linked or deleted (links), spans or info
arriving (`Trace.updated_at`, `span_count`), costs priced later by raw SQL (the sum of
costs), an assessment logged, overridden (a new one), amended (`updated_at`), retracted
(count) or invalidated. So a run made by the client, by Spyglass's runner, or changed later
by a person on the trace page reads fresh rows, and no writer needs to know about this
table. The version is read before the rows, so a write landing while a table is built
makes the next request build it again rather than keep stale rows.

Each process also keeps the last few tables it used as objects, under the same version:
unpickling a thousand rows and making their objects again on every request cost more than
the rest of the page, and the garbage they left made the collector's full passes (hundreds
of ms in a web process's heap) frequent. A comparison of kept tables is kept the same way.
Pages read the kept tables and comparisons and never change them.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Max, Q, Sum

from evaluation import comparison
from evaluation.comparison import Comparison
from evaluation.results import ResultRow, ResultTable, Score, build_table
from evaluation.run_rows import lean_rows
from tracking.evaluations import aligned
from tracking.models import Run

logger = logging.getLogger(__name__)

# Bumped when the summary's shape changes, so that no process reads an older shape.
SHAPE = 1
# Kept a day after its last build: a run nobody looks at again leaves the cache.
TIMEOUT_S = 24 * 3600
# Tables a process keeps as objects, the most recently used: a compare page's 4 runs and a
# few more (a 1,000-row table is about 2 MB).
IN_PROCESS = 8

_kept: OrderedDict[str, tuple[str, ResultTable]] = OrderedDict()
_compared: OrderedDict[tuple[tuple[str, str], ...], Comparison] = OrderedDict()
_kept_lock = threading.Lock()


def _key(run: Run) -> str:
    return f"evaluation:run-table:{SHAPE}:{run.run_id}"


def versions(runs: Sequence[Run]) -> dict[int, str]:
    """{run pk: version}: a digest of what the runs' rows are made of, in two queries."""
    through = Run.linked_traces.through
    pks = [run.pk for run in runs]
    facts: dict[int, list[Any]] = {pk: [] for pk in pks}
    for row in (
        through.objects.filter(run__in=pks)
        .values("run_id")
        .annotate(
            links=Count("pk"),
            newest_link=Max("pk"),
            traces_updated=Max("trace__updated_at"),
            spans=Sum("trace__span_count"),
            duration=Sum("trace__duration_ns"),
            tokens=Sum("trace__total_tokens"),
            cost=Sum("trace__cost"),
        )
        .order_by()
    ):
        facts[row.pop("run_id")].append(sorted(row.items()))
    for row in (
        through.objects.filter(run__in=pks)
        .values("run_id")
        .annotate(
            assessments=Count("trace__assessments"),
            newest=Max("trace__assessments__pk"),
            updated=Max("trace__assessments__updated_at"),
            valid=Count("trace__assessments", filter=Q(trace__assessments__valid=True)),
        )
        .order_by()
    ):
        facts[row.pop("run_id")].append(sorted(row.items()))
    return {pk: hashlib.sha256(repr(_steady(found)).encode()).hexdigest()
            for pk, found in facts.items()}  # fmt: skip


def _steady(value: Any) -> Any:
    """Sums of floats to 12 digits: PostgreSQL may add the same costs in another order."""
    if isinstance(value, float):
        return f"{value:.12g}"
    if isinstance(value, list | tuple):
        return [_steady(item) for item in value]
    return value


def _summary(table: ResultTable) -> tuple[list[str], list[str], list[tuple[Any, ...]]]:
    """A table as plain tuples: quick to pickle and unpickle, and no class in the cache."""
    rows = [
        (
            row.trace_id,
            row.inputs_key,
            row.inputs,
            row.outputs,
            row.expectations,
            [(s.kind, s.value, s.label, s.rationale) for s in row.scores],
            row.latency_ns,
            row.tokens,
            row.cost,
        )
        for row in table.rows
    ]
    return table.scorers, table.expectation_names, rows


def _table(summary: tuple[list[str], list[str], list[tuple[Any, ...]]]) -> ResultTable:
    scorers, expectation_names, rows = summary
    table = ResultTable(scorers, expectation_names)
    table.rows = [
        ResultRow(position, trace_id, key, inputs, outputs, expectations,
                  [Score(*score) for score in scores], latency, tokens, cost)
        for position, (trace_id, key, inputs, outputs, expectations, scores, latency, tokens,
                       cost) in enumerate(rows, start=1)
    ]  # fmt: skip
    return table


def _kept_tables(runs: Sequence[Run], current: dict[int, str]) -> dict[int, ResultTable]:
    """The process's kept tables of these runs that are still current."""
    found = {}
    with _kept_lock:
        for run in runs:
            version, table = _kept.get(run.run_id, (None, None))
            if version == current[run.pk]:
                _kept.move_to_end(run.run_id)
                found[run.pk] = table
    return found


def _keep(runs: Sequence[Run], current: dict[int, str], tables: dict[int, ResultTable]) -> None:
    with _kept_lock:
        for run in runs:
            _kept[run.run_id] = (current[run.pk], tables[run.pk])
            _kept.move_to_end(run.run_id)
        while len(_kept) > IN_PROCESS:
            _kept.popitem(last=False)


def run_tables(runs: Sequence[Run]) -> dict[int, ResultTable]:
    """{run pk: the run's ResultTable}, not to be changed by the caller. Two queries when
    every run's table is kept and current; three more (evaluation/run_rows.py) for all the
    runs that are not."""
    return _tables(runs, versions(runs))


def comparison_of(runs: Sequence[Run]) -> Comparison:
    """The runs compared (the first the baseline), not to be changed by the caller: made
    from their tables once per version of each, so that paging and "only changes" do not
    match and order every row again. The queries of `run_tables`."""
    current = versions(runs)
    key = tuple((run.run_id, current[run.pk]) for run in runs)
    with _kept_lock:
        found = _compared.get(key)
        if found is not None:
            _compared.move_to_end(key)
            return found
    tables = _tables(runs, current)
    ordered = [tables[run.pk] for run in runs]
    made = comparison.compare(ordered, aligned([table.rows for table in ordered]))
    with _kept_lock:
        _compared[key] = made
        while len(_compared) > IN_PROCESS // 2:
            _compared.popitem(last=False)
    return made


def _tables(runs: Sequence[Run], current: dict[int, str]) -> dict[int, ResultTable]:
    tables = _kept_tables(runs, current)
    missing = [run for run in runs if run.pk not in tables]
    if not missing:
        return tables
    try:
        cached = cache.get_many([_key(run) for run in missing])
    except Exception:  # the cache is a shortcut: without it, the rows are read again
        logger.warning("Run tables not read from the cache", exc_info=True)
        cached = {}
    summaries = {}
    stale = []
    for run in missing:
        version, summary = cached.get(_key(run), (None, None))
        if version == current[run.pk]:
            summaries[run.pk] = summary
        else:
            stale.append(run)
    made = {run.pk: _table(summaries[run.pk]) for run in missing if run.pk in summaries}
    if stale:
        built = lean_rows(stale)
        fresh = {run.pk: build_table(built[run.pk]) for run in stale}
        try:
            cache.set_many(
                {_key(run): (current[run.pk], _summary(fresh[run.pk])) for run in stale},
                timeout=TIMEOUT_S,
            )
        except Exception:
            logger.warning("Run tables not kept in the cache", exc_info=True)
        made |= fresh
    _keep(missing, current, made)
    return tables | made
