"""One evaluation run as a table: each row's inputs, outputs, expectations, each scorer's
result, latency, tokens and cost; each scorer's aggregate; filters by a scorer's result and
sorts by any column. Pure: it reads EvaluationRow objects (tracking/evaluations.py), no
database, so the run page and the compare page share it and tests need no rows stored.

A scorer's value is whatever the client logged: a boolean (pass/fail), MLflow's "yes"/"no"
(CategoricalRating, what its judges answer), a number, other text, or an error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from tracking.evaluations import EvaluationRow

# Row texts are cut: a page of rows must stay small whatever an agent answered.
TEXT_CHARS = 400
RATIONALE_CHARS = 400
PASS_WORDS = frozenset({"yes", "pass", "passed", "true"})
FAIL_WORDS = frozenset({"no", "fail", "failed", "false"})
RESULTS = ("pass", "fail", "error", "missing")


def text_of(value: Any, limit: int = TEXT_CHARS) -> str:
    """A value as one cell's text: strings as they are, anything else as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
        except (TypeError, ValueError):
            text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Score(NamedTuple):
    """One scorer's result on one row. `value` orders and averages it: 1.0/0.0 for
    pass/fail, the number for a number, None for text, an error or no result. A tuple:
    thousands are made per page from kept tables (evaluation/run_tables.py)."""

    kind: str  # pass, fail, number, text, error, missing
    value: float | None
    label: str
    rationale: str = ""

    @property
    def result(self) -> str:
        """pass, fail, error or missing; a number or text counts as "pass" when scored."""
        if self.kind in ("pass", "fail", "error", "missing"):
            return self.kind
        return "pass"


MISSING = Score("missing", None, "—")


def score_of(assessment: Any) -> Score:
    """The Score of a feedback assessment (None: the scorer has no result for this row)."""
    if assessment is None:
        return MISSING
    rationale = (assessment.rationale or "")[:RATIONALE_CHARS]
    if assessment.error:
        error = assessment.error if isinstance(assessment.error, dict) else {}
        message = str(error.get("error_message") or error.get("error_code") or "error")
        return Score("error", None, "error", text_of(message, RATIONALE_CHARS))
    value = assessment.value
    if isinstance(value, bool):
        return Score(
            "pass" if value else "fail", float(value), "pass" if value else "fail", rationale
        )
    if isinstance(value, int | float):
        return Score("number", float(value), f"{value:.4g}", rationale)
    if isinstance(value, str) and value.strip().lower() in PASS_WORDS | FAIL_WORDS:
        passed = value.strip().lower() in PASS_WORDS
        return Score("pass" if passed else "fail", float(passed), value.strip(), rationale)
    if value is None:
        return Score("error", None, "no value", rationale)
    return Score("text", None, text_of(value, 80), rationale)


class ResultRow:
    """What one row of the run table shows: its texts already cut to a cell's size, so that
    a run's rows can be kept (evaluation/run_tables.py) and shown without their JSON."""

    __slots__ = (
        "cost",
        "cost_label",
        "expectations",
        "inputs",
        "inputs_key",
        "latency_label",
        "latency_ns",
        "outputs",
        "position",
        "scores",
        "tokens",
        "tokens_label",
        "trace_id",
    )  # fmt: skip

    def __init__(
        self,
        position: int,
        trace_id: str,
        inputs_key: str,
        inputs: str,
        outputs: str,
        expectations: list[tuple[str, str]],
        scores: list[Score],
        latency_ns: int | None,
        tokens: int | None,
        cost: float | None,
    ) -> None:
        self.position = position  # 1-based, in the order the run made its rows
        self.trace_id = trace_id
        self.inputs_key = inputs_key  # the inputs' hash: rows of two runs match on it
        self.inputs = inputs
        self.outputs = outputs
        self.expectations = expectations
        self.scores = scores  # one per scorer, in the table's scorer order
        self.latency_ns = latency_ns
        self.tokens = tokens
        self.cost = cost


@dataclass
class Aggregate:
    """A scorer over the run: the pass rate of pass/fail results, else the mean of numbers."""

    name: str
    kind: str  # pass_rate, mean or none
    value: float | None
    scored: int
    errors: int
    fraction: float  # 0..1, the bar's length

    @property
    def label(self) -> str:
        if self.value is None:
            return "—"
        if self.kind == "pass_rate":
            return f"{self.value * 100:.1f} %"
        return f"{self.value:.4g}"


def aggregate(name: str, scores: Iterable[Score]) -> Aggregate:
    scores = list(scores)
    errors = sum(1 for s in scores if s.kind == "error")
    passfail = [s.value for s in scores if s.kind in ("pass", "fail")]
    numbers = [s.value for s in scores if s.kind == "number"]
    if passfail and len(passfail) >= len(numbers):
        rate = sum(v for v in passfail if v is not None) / len(passfail)
        return Aggregate(name, "pass_rate", rate, len(passfail), errors, rate)
    if numbers:
        values = [v for v in numbers if v is not None]
        mean = sum(values) / len(values)
        top = max(abs(v) for v in values)
        # Scores in [0, 1] are read as fractions; otherwise the bar is relative to the best row.
        fraction = mean if min(values) >= 0 and top <= 1 else (mean / top if top else 0.0)
        return Aggregate(name, "mean", mean, len(values), errors, max(0.0, min(1.0, fraction)))
    return Aggregate(name, "none", None, 0, errors, 0.0)


@dataclass
class ResultTable:
    scorers: list[str]
    expectation_names: list[str]
    rows: list[ResultRow] = field(default_factory=list)

    def aggregates(self) -> list[Aggregate]:
        return [
            aggregate(name, (row.scores[i] for row in self.rows))
            for i, name in enumerate(self.scorers)
        ]

    def filtered(self, scorer: str, result: str) -> list[ResultRow]:
        """Rows where `scorer`'s result is `result` (pass, fail, error, missing); all rows
        when either is unknown."""
        if scorer not in self.scorers or result not in RESULTS:
            return list(self.rows)
        index = self.scorers.index(scorer)
        return [row for row in self.rows if row.scores[index].result == result]


def build_table(rows: Sequence[EvaluationRow]) -> ResultTable:
    """The run's rows as a table; scorers and expectations in name order."""
    scorers = sorted({name for row in rows for name in row.feedback})
    expectation_names = sorted({name for row in rows for name in row.expectations})
    table = ResultTable(scorers, expectation_names)
    for position, row in enumerate(rows, start=1):
        trace = row.trace
        table.rows.append(
            ResultRow(
                position=position,
                trace_id=trace.trace_id,
                inputs_key=row.inputs_key,
                inputs=text_of(row.inputs),
                outputs=text_of(row.outputs),
                expectations=[
                    (name, text_of(row.expectations[name].value, 200))
                    for name in expectation_names
                    if name in row.expectations
                ],
                scores=[score_of(row.feedback.get(name)) for name in scorers],
                latency_ns=trace.duration_ns,
                tokens=trace.total_tokens,
                cost=trace.cost,
            )
        )
    return table


# Sort keys in the URL (`?sort=-latency`), besides `score:<scorer>`.
SORT_KEYS = ("position", "inputs", "outputs", "latency", "tokens", "cost")


def sort_rows(rows: list[ResultRow], sort: str, scorers: Sequence[str]) -> tuple[list, str]:
    """Rows in the order `sort` names (`-` for descending); rows without a value last
    either way. Answers the rows and the sort applied (the default for an unknown key)."""
    descending = sort.startswith("-")
    key = sort.lstrip("-")
    if key.startswith("score:") and key[6:] in scorers:
        index = scorers.index(key[6:])

        def value(row: ResultRow) -> Any:
            return row.scores[index].value

    elif key in SORT_KEYS:
        attribute = {"latency": "latency_ns"}.get(key, key)

        def value(row: ResultRow) -> Any:
            found = getattr(row, attribute)
            return found.casefold() if isinstance(found, str) else found

    else:
        return list(rows), "position"
    present = [row for row in rows if value(row) not in (None, "")]
    absent = [row for row in rows if value(row) in (None, "")]
    present.sort(key=value, reverse=descending)
    return present + absent, sort
