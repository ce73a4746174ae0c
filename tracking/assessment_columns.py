"""The trace list's assessment columns: one per assessment name, chosen in the column chooser
(stored with the other columns as `assessment:<name>`), each cell the row's newest valid
assessment of that name (a pass/fail badge, a number, a label).

Costs two queries at most per page: the names the chooser offers (those present in the
readable experiments, or the one experiment listed) and, when such a column is shown, the
page's cells in one query on assessment_trace_idx.
"""

from __future__ import annotations

from typing import Any

from access.rules import Access
from tracking.models import Assessment, Experiment, Trace

PREFIX = "assessment:"
MAX_NAMES = 40  # offered in the chooser; a long tail of names is a query, not columns
MAX_NAME_CHARS = 250


def is_column(key: str) -> bool:
    name = key.removeprefix(PREFIX)
    return key.startswith(PREFIX) and 0 < len(name) <= MAX_NAME_CHARS and "\x00" not in name


def chosen(keys: list[Any]) -> list[str]:
    """The assessment columns among stored choices, in the order they were chosen."""
    return list(dict.fromkeys(k for k in keys if isinstance(k, str) and is_column(k)))


def names_in(columns: list[str]) -> list[str]:
    return [c.removeprefix(PREFIX) for c in columns if c.startswith(PREFIX)]


def offered(access: Access, experiment: Experiment | None) -> list[str]:
    """Names of valid assessments in the listed experiments, alphabetically."""
    assessments = Assessment.objects.filter(valid=True)
    if experiment is not None:
        assessments = assessments.filter(trace__experiment=experiment)
    else:
        assessments = access.readable(assessments, "trace__experiment_id")
    names = assessments.order_by("name").values_list("name", flat=True).distinct()
    return list(names[:MAX_NAMES])


def context(access: Access, experiment: Experiment | None, columns: list[str]) -> dict:
    shown = names_in(columns)
    names = offered(access, experiment)
    names += [n for n in shown if n not in names]  # chosen, though none is listed here now
    return {
        "assessment_shown": shown,
        "assessment_choices": [(PREFIX + n, n, PREFIX + n in columns) for n in names],
    }


def fill(traces: list[Trace], names: list[str]) -> None:
    """Set `trace.assessment_cells`: per name, the newest valid assessment or None."""
    if not names or not traces:
        return
    newest: dict[tuple[int, str], Assessment] = {}
    rows = Assessment.objects.filter(
        trace_id__in=[t.pk for t in traces], name__in=names, valid=True
    ).only("trace_id", "name", "kind", "value", "error", "created_at")
    for assessment in rows.order_by("created_at", "pk"):
        newest[assessment.trace_id, assessment.name] = assessment
    for trace in traces:
        trace.assessment_cells = [newest.get((trace.pk, name)) for name in names]
