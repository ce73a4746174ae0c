"""The run table without a database: scores read from assessments, aggregates, filters,
sorts, and rows compared across runs (regressions first)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from evaluation import comparison, results
from tracking.evaluations import EvaluationRow, aligned


@dataclass
class FakeAssessment:
    value: Any = None
    error: Any = None
    rationale: str = ""


@dataclass
class FakeTrace:
    trace_id: str
    duration_ns: int | None = None
    total_tokens: int | None = None
    cost: float | None = None


@dataclass
class Spec:
    question: str
    output: str
    feedback: dict[str, Any] = field(default_factory=dict)
    latency_ms: int = 10


def rows(run: str, specs: list[Spec]) -> list[EvaluationRow]:
    made = []
    for i, spec in enumerate(specs):
        row = EvaluationRow(
            trace=FakeTrace(f"tr-{run}-{i}", spec.latency_ms * 1_000_000, 100 + i, 0.001),
            inputs={"question": spec.question},
            outputs=spec.output,
        )
        row.feedback = {k: v if isinstance(v, FakeAssessment) else FakeAssessment(v)
                        for k, v in spec.feedback.items()}  # fmt: skip
        made.append(row)
    return made


def test_scores_read_booleans_yes_no_numbers_and_errors():
    assert results.score_of(FakeAssessment(True)).kind == "pass"
    assert results.score_of(FakeAssessment("no")).kind == "fail"
    assert results.score_of(FakeAssessment(0.25)).value == 0.25
    failed = results.score_of(FakeAssessment(None, {"error_message": "judge timed out"}))
    assert (failed.kind, failed.rationale) == ("error", "judge timed out")
    assert results.score_of(None).kind == "missing"


def test_aggregates_are_pass_rates_for_pass_fail_and_means_for_numbers():
    table = results.build_table(rows("a", [
        Spec("q1", "x", {"exact": True, "relevance": 0.5}),
        Spec("q2", "y", {"exact": False, "relevance": 1.0}),
        Spec("q3", "z", {"exact": True, "relevance": FakeAssessment(None, {"error_code": "E"})}),
        Spec("q4", "w", {"exact": "yes"}),
    ]))  # fmt: skip
    exact, relevance = table.aggregates()
    assert (exact.name, exact.kind, exact.value, exact.scored) == ("exact", "pass_rate", 0.75, 4)
    assert exact.label == "75.0 %"
    assert (relevance.kind, relevance.value, relevance.errors) == ("mean", 0.75, 1)


def test_rows_filter_by_a_scorers_result_and_sort_by_any_column():
    table = results.build_table(rows("a", [
        Spec("b", "x", {"exact": True}, latency_ms=30),
        Spec("a", "y", {"exact": False}, latency_ms=10),
        Spec("c", "z", {}, latency_ms=20),
    ]))  # fmt: skip
    assert [r.position for r in table.filtered("exact", "fail")] == [2]
    assert [r.position for r in table.filtered("exact", "missing")] == [3]
    assert len(table.filtered("nope", "fail")) == 3  # an unknown scorer filters nothing

    by_latency, applied = results.sort_rows(table.rows, "-latency", table.scorers)
    assert ([r.position for r in by_latency], applied) == ([1, 3, 2], "-latency")
    by_score, _ = results.sort_rows(table.rows, "score:exact", table.scorers)
    assert [r.position for r in by_score] == [2, 1, 3]  # no result: last either way
    by_inputs, _ = results.sort_rows(table.rows, "inputs", table.scorers)
    assert [r.position for r in by_inputs] == [2, 1, 3]
    _, unknown = results.sort_rows(table.rows, "bogus", table.scorers)
    assert unknown == "position"


def _compare(*runs: list[EvaluationRow]) -> comparison.Comparison:
    tables = [results.build_table(r) for r in runs]
    shown = {id(row): made for r, t in zip(runs, tables, strict=True)
             for row, made in zip(r, t.rows, strict=True)}  # fmt: skip
    lines = [[shown[id(row)] if row else None for row in line] for line in aligned(runs)]
    return comparison.compare(tables, lines)


def test_rows_match_by_inputs_whatever_their_order_and_missing_ones_show_as_unmatched():
    base = rows("a", [Spec("q1", "one", {"exact": True}), Spec("q2", "two", {"exact": True})])
    other = rows("b", [Spec("q3", "three", {"exact": True}), Spec("q1", "uno", {"exact": True})])
    result = _compare(base, other)
    matched = {line.inputs: [c.row.outputs if c.row else None for c in line.cells]
               for line in result.lines}  # fmt: skip
    assert matched == {
        '{"question": "q1"}': ["one", "uno"],
        '{"question": "q2"}': ["two", None],
        '{"question": "q3"}': [None, "three"],
    }
    assert result.counts() == {"regression": 0, "improvement": 0, "unmatched": 2, "unchanged": 1}


def test_regressions_come_first_then_improvements_then_unchanged():
    base = rows("a", [
        Spec("same", "s", {"exact": True}),
        Spec("better", "b", {"exact": False}),
        Spec("worse", "w", {"exact": True, "relevance": 0.9}),
        Spec("erred", "e", {"exact": True}),
    ])  # fmt: skip
    other = rows("b", [
        Spec("same", "s", {"exact": True}),
        Spec("better", "b", {"exact": True}),
        Spec("worse", "w", {"exact": False, "relevance": 0.2}),
        Spec("erred", "e", {"exact": FakeAssessment(None, {"error_code": "TIMEOUT"})}),
    ])  # fmt: skip
    result = _compare(base, other)
    order = [(line.inputs, line.category) for line in result.lines]
    assert order == [
        ('{"question": "worse"}', "regression"),  # two scorers worse: the worst first
        ('{"question": "erred"}', "regression"),  # a pass that now errs is worse
        ('{"question": "better"}', "improvement"),
        ('{"question": "same"}', "unchanged"),
    ]
    worse = result.lines[0].cells[1]
    assert worse.deltas == ["worse", "worse"]
    assert worse.latency.label == "10.0 ms"
    exact_delta = result.summaries[1].score_deltas[0]
    assert exact_delta == ("same", "±0") or exact_delta[0] in ("worse", "better")


def test_latency_tokens_and_cost_deltas_are_worse_when_higher():
    base = rows("a", [Spec("q", "x", {"exact": True}, latency_ms=10)])
    other = rows("b", [Spec("q", "x", {"exact": True}, latency_ms=25)])
    cell = _compare(base, other).lines[0].cells[1]
    assert (cell.latency.delta, cell.latency.sense) == ("+15.0 ms", "worse")
    assert cell.tokens.sense == "same"
