"""The rows of evaluation runs read lean, for pages that show a thousand of them.

`tracking.evaluations.evaluation_rows` answers the same rows with whole Trace, Span and
Assessment objects; building ~5,000 model instances for a 1,000-row run took most of a
page's time. Here the same three queries (links with their traces, the traces' assessments,
their root spans) read only the columns a page shows, as tuples, and the rows are
`EvaluationRow`s over small stand-ins for the trace and the assessments. The tuples come
from the database driver without Django's per-value converters (which cost three times the
query itself here); the JSON columns are decoded below. Which assessments
belong to which run is tracking's rule (`tracking.evaluations._belongs`), applied as is.
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connections
from django.db.models import F, QuerySet, Subquery
from django.db.models.fields.json import KT, KeyTextTransform

from tracking.evaluations import SOURCE_RUN_KEY, TRACE_INPUTS_KEY, EvaluationRow, _belongs
from tracking.models import Assessment, AssessmentKind, Run, Span


@dataclass(frozen=True)
class TraceFacts:
    """What a row shows of its trace."""

    trace_id: str
    duration_ns: int | None
    total_tokens: int | None
    cost: float | None


@dataclass
class AssessmentFacts:
    """What a row shows of an assessment, and what `_belongs` reads."""

    assessment_id: str
    name: str
    kind: str
    value: Any
    error: Any
    rationale: str
    metadata: dict[str, Any] = field(default_factory=dict)
    overrides: str = ""
    valid: bool = True

    @property
    def is_feedback(self) -> bool:
        return self.kind == AssessmentKind.FEEDBACK


def _inputs_from_metadata(text: str | None) -> Any:
    try:
        return json.loads(text or "null")
    except ValueError:
        return None


def _json(value: Any) -> Any:
    """A JSON column as the driver answered it: text on SQLite and (Django's loader) on
    PostgreSQL; anything else is taken as already decoded."""
    return json.loads(value) if isinstance(value, str) else value


@functools.lru_cache(maxsize=4096)
def _scalar_json(text: str) -> Any:
    """An assessment's value: few distinct ones (true, false, "yes", 0.5) over many rows, so
    decoded once each. Only for values nobody mutates (scores are read, never changed)."""
    return json.loads(text)


def _value(value: Any) -> Any:
    return _scalar_json(value) if isinstance(value, str) and len(value) < 64 else _json(value)


def _tuples(queryset: QuerySet[Any]) -> list[tuple[Any, ...]]:
    """A values_list() queryset's rows as the driver answers them (see the docstring)."""
    sql, params = queryset.query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def lean_rows(runs: Sequence[Run]) -> dict[int, list[EvaluationRow]]:
    """Each run's rows, oldest trace first, as `evaluation_rows` orders them: {run pk: rows},
    in three queries however many runs and rows."""
    through = Run.linked_traces.through
    links = (
        through.objects.filter(run__in=[run.pk for run in runs])
        # KeyTextTransform over F(), not KT("trace__metadata__..."): on PostgreSQL, KT across
        # the relation applied the key to the link's own trace_id column.
        .annotate(trace_inputs=KeyTextTransform(TRACE_INPUTS_KEY, F("trace__metadata")))
        .order_by("trace__request_time", "trace__pk")
        .values_list(
            "run_id",
            "trace_id",
            "trace__trace_id",
            "trace__duration_ns",
            "trace__total_tokens",
            "trace__cost",
            "trace_inputs",
        )
    )
    traces = Subquery(through.objects.filter(run__in=[run.pk for run in runs]).values("trace_id"))
    assessments: dict[int, list[AssessmentFacts]] = defaultdict(list)
    for trace_pk, *fields in _tuples(
        Assessment.objects.filter(trace_id__in=traces)
        .in_order()
        # Of the metadata, only the key `_belongs` reads: decoding every whole object was
        # a good part of the page's time.
        .annotate(source_run=KT(f"metadata__{SOURCE_RUN_KEY}"))
        .values_list(
            "trace_id", "assessment_id", "name", "kind", "value", "error", "rationale",
            "source_run", "overrides", "valid",
        )
    ):  # fmt: skip
        assessment_id, name, kind, value, error, rationale, source_run, overrides, valid = fields
        metadata = {SOURCE_RUN_KEY: source_run} if source_run is not None else {}
        assessments[trace_pk].append(
            AssessmentFacts(assessment_id, name, kind, _value(value), _json(error),
                            rationale, metadata, overrides, bool(valid))
        )  # fmt: skip
    roots: dict[int, tuple[Any, Any]] = {}
    for trace_pk, inputs, outputs in _tuples(
        Span.objects.filter(trace_id__in=traces, parent_span_id="")
        .order_by("-start_ns")  # the earliest root last, so it is the one kept
        .values_list("trace_id", "inputs", "outputs")
    ):
        roots[trace_pk] = (_json(inputs), _json(outputs))
    run_ids = {run.pk: run.run_id for run in runs}
    rows: dict[int, list[EvaluationRow]] = {run.pk: [] for run in runs}
    for run_pk, trace_pk, trace_id, duration_ns, total_tokens, cost, trace_inputs in _tuples(links):
        inputs, outputs = roots.get(trace_pk) or (_inputs_from_metadata(trace_inputs), None)
        trace = TraceFacts(trace_id, duration_ns, total_tokens, cost)
        row = EvaluationRow(trace=trace, inputs=inputs, outputs=outputs)  # type: ignore[arg-type]
        for assessment in _belongs(assessments[trace_pk], run_ids[run_pk]):  # type: ignore[arg-type]
            kind = row.feedback if assessment.is_feedback else row.expectations
            kind[assessment.name] = assessment  # type: ignore[assignment]
        rows[run_pk].append(row)
    return rows
