"""Evaluation runs side by side: rows matched by inputs (tracking.evaluations.aligned), each
run's scores against the baseline's (the first run), regressions first. Pure: it reads
ResultTables (evaluation/results.py), no database.

A scorer got worse on a row when its value dropped (pass -> fail, 0.8 -> 0.5) or it now fails
with an error where the baseline had a value; better the other way round. A row is a
regression when any scorer got worse in any run, an improvement when some got better and none
worse, unchanged otherwise, unmatched when some run has no row for its inputs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from evaluation.results import MISSING, Aggregate, ResultRow, ResultTable, Score, aggregate
from tracking.templatetags.tracking_format import dollars, duration

CATEGORIES = ("regression", "improvement", "unmatched", "unchanged")
WORSE, BETTER, SAME, NONE = "worse", "better", "same", "none"


def score_delta(base: Score, other: Score) -> str:
    """worse, better, same, or none (nothing to compare)."""
    if base.value is not None and other.value is not None:
        if other.value < base.value:
            return WORSE
        return BETTER if other.value > base.value else SAME
    if base.value is not None and other.kind == "error":
        return WORSE
    if base.kind == "error" and other.value is not None:
        return BETTER
    if base.kind == other.kind and base.kind != "missing":
        return SAME
    return NONE


def _signed(value: float, text: Callable[[float], str]) -> str:
    if value == 0:
        return "±0"
    return ("+" if value > 0 else "\u2212") + text(abs(value))


@dataclass
class Measure:
    """A number a lower value of which is better (latency, tokens, cost), against the
    baseline's."""

    label: str
    delta: str = ""  # "+12.0 ms"
    sense: str = NONE  # worse, better, same, none


def measure(
    value: float | None, base: float | None, text: Callable[[float], str], is_base: bool
) -> Measure:
    shown = "—" if value is None else text(value)
    if is_base or value is None or base is None:
        return Measure(shown)
    difference = value - base
    sense = SAME if difference == 0 else (WORSE if difference > 0 else BETTER)
    return Measure(shown, _signed(difference, text), sense)


def _ns(value: float) -> str:
    return duration(int(value))


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _money(value: float) -> str:
    return dollars(value)


class Cell:
    """One run's side of a compared row; its latency, tokens and cost against the
    baseline's are worked out when a page shows it."""

    def __init__(
        self, row: ResultRow | None, base: ResultRow | None, scores: list[Score], is_base: bool
    ) -> None:
        self.row = row
        self.base = base
        self.scores = scores  # one per compared scorer
        self.deltas = [NONE] * len(scores)  # "none" in the baseline column
        self.is_base = is_base

    @property
    def score_pairs(self) -> list[tuple[Score, str]]:
        return list(zip(self.scores, self.deltas, strict=True))

    def _measure(self, attribute: str, text: Callable[[float], str]) -> Measure:
        value = getattr(self.row, attribute) if self.row else None
        base = getattr(self.base, attribute) if self.base else None
        return measure(value, base, text, self.is_base)

    @functools.cached_property
    def latency(self) -> Measure:
        return self._measure("latency_ns", _ns)

    @functools.cached_property
    def tokens(self) -> Measure:
        return self._measure("tokens", _count)

    @functools.cached_property
    def cost(self) -> Measure:
        return self._measure("cost", _money)


@dataclass
class Line:
    inputs: str
    cells: list[Cell]
    category: str
    worse: int = 0  # how many (run, scorer) pairs got worse: the worst rows first
    position: int = 0


@dataclass
class RunSummary:
    """A run's aggregates at the top of the page, each against the baseline's."""

    aggregates: list[Aggregate]
    score_deltas: list[tuple[str, str]]  # (sense, "+12.5 pts") per scorer
    latency: Measure  # mean
    tokens: Measure  # total
    cost: Measure  # total
    mean_latency_ns: float | None = None
    total_tokens: float | None = None
    total_cost: float | None = None

    @property
    def score_items(self) -> list[tuple[Aggregate, tuple[str, str]]]:
        return list(zip(self.aggregates, self.score_deltas, strict=True))


class Placed(NamedTuple):
    """A compared row's place in the order, without its cells: the cells of the rows a page
    shows are made for that page only."""

    category: str
    worse: int
    position: int
    rows: Sequence[ResultRow | None]


def _scores(row: ResultRow | None, columns: list[int | None]) -> list[Score]:
    """A row's scores in the comparison's scorer order (`columns`: each scorer's index in
    the row's table, None where that run has no such scorer)."""
    if row is None:
        return [MISSING] * len(columns)
    return [MISSING if index is None else row.scores[index] for index in columns]


@dataclass
class Comparison:
    scorers: list[str]
    summaries: list[RunSummary]
    columns: list[list[int | None]]  # per run, each scorer's index in its table
    placed: list[Placed] = field(default_factory=list)  # every row, in the page's order

    def counts(self) -> dict[str, int]:
        found = dict.fromkeys(CATEGORIES, 0)
        for item in self.placed:
            found[item.category] += 1
        return found

    def lines_of(self, placed: Sequence[Placed]) -> list[Line]:
        """The lines a page shows, with their cells and each score's delta."""
        lines = []
        for item in placed:
            base = item.rows[0]
            cells = [
                Cell(row, base, _scores(row, self.columns[column]), column == 0)
                for column, row in enumerate(item.rows)
            ]
            base_scores = cells[0].scores
            for cell in cells[1:]:
                if base is not None and cell.row is not None:
                    pairs = zip(base_scores, cell.scores, strict=True)
                    cell.deltas = [score_delta(b, o) for b, o in pairs]
            first = next(row for row in item.rows if row is not None)
            lines.append(Line(first.inputs, cells, item.category, item.worse, item.position))
        return lines

    @property
    def lines(self) -> list[Line]:
        return self.lines_of(self.placed)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _summaries(tables: Sequence[ResultTable], scorers: list[str]) -> list[RunSummary]:
    summaries = []
    base: RunSummary | None = None
    for table in tables:
        aggregates = [
            aggregate(name, (row.scores[table.scorers.index(name)] for row in table.rows))
            if name in table.scorers
            else Aggregate(name, "none", None, 0, 0, 0.0)
            for name in scorers
        ]
        latency = _mean([r.latency_ns for r in table.rows if r.latency_ns is not None])
        token_values = [r.tokens for r in table.rows if r.tokens is not None]
        cost_values = [r.cost for r in table.rows if r.cost is not None]
        total_tokens = float(sum(token_values)) if token_values else None
        total_cost = sum(cost_values) if cost_values else None
        is_base = base is None
        summary = RunSummary(
            aggregates=aggregates,
            score_deltas=[],
            latency=measure(latency, base and base.mean_latency_ns, _ns, is_base),
            tokens=measure(total_tokens, base and base.total_tokens, _count, is_base),
            cost=measure(total_cost, base and base.total_cost, _money, is_base),
            mean_latency_ns=latency,
            total_tokens=total_tokens,
            total_cost=total_cost,
        )
        for i, item in enumerate(aggregates):
            first = base.aggregates[i].value if base else None
            if is_base or item.value is None or first is None:
                summary.score_deltas.append((NONE, ""))
                continue
            difference = item.value - first
            sense = SAME if difference == 0 else (BETTER if difference > 0 else WORSE)
            unit = (
                (lambda v: f"{v * 100:.1f} pts")
                if item.kind == "pass_rate"
                else (lambda v: f"{v:.3g}")
            )
            summary.score_deltas.append((sense, _signed(difference, unit)))
        base = base or summary
        summaries.append(summary)
    return summaries


def compare(
    tables: Sequence[ResultTable], aligned: Sequence[Sequence[ResultRow | None]]
) -> Comparison:
    """`aligned` is one list per distinct inputs with each table's row or None (the shape of
    tracking.evaluations.aligned, here over ResultRows). Lines come regressions first, then
    improvements, unmatched and unchanged; within each, the most regressed first, then in the
    baseline's order."""
    scorers = sorted({name for table in tables for name in table.scorers})
    columns = [
        [table.scorers.index(name) if name in table.scorers else None for name in scorers]
        for table in tables
    ]
    comparison = Comparison(scorers, _summaries(tables, scorers), columns)
    for position, rows in enumerate(aligned):
        base = rows[0]
        worse = better = 0
        if base is not None:
            base_scores = _scores(base, columns[0])
            for column in range(1, len(rows)):
                if rows[column] is None:
                    continue
                for b, o in zip(base_scores, _scores(rows[column], columns[column]), strict=True):
                    delta = score_delta(b, o)
                    worse += delta == WORSE
                    better += delta == BETTER
        if worse:
            category = "regression"
        elif better:
            category = "improvement"
        elif any(row is None for row in rows):
            category = "unmatched"
        else:
            category = "unchanged"
        comparison.placed.append(Placed(category, worse, position, rows))
    rank = {category: i for i, category in enumerate(CATEGORIES)}
    comparison.placed.sort(key=lambda item: (rank[item.category], -item.worse, item.position))
    return comparison
