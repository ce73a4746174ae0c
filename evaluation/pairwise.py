"""Pairwise review: two answers to the same input judged side by side, A, B or a tie.

A judgement is stored as MLflow feedback on both traces, so the client's
`get_trace(...).info.assessments` sees it: `pairwise_preference`, source HUMAN (the reviewer),
the value seen from that trace ("better", "worse" or "tie" against the other), the rationale,
and metadata naming the other trace and the pair. Judging a pair again overrides the
reviewer's previous judgement on both traces (MLflow's `override_feedback`: the old one stays,
not valid). Several reviewers keep one judgement each.

The summary per version pair is counted from the assessments and the traces' model_id, so
feedback the client wrote the same way counts too.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from django.db import transaction
from django.db.models import QuerySet

from tracking.models import Assessment, AssessmentKind, AssessmentSourceType, Trace

NAME = "pairwise_preference"
PAIR = "pairwise.pair"  # both trace ids, sorted and comma-joined: one key however it is shown
OTHER = "pairwise.other_trace"
POSITION = "pairwise.position"  # "A" or "B", where the reviewer saw this trace
CHOICES = ("a", "b", "tie")
# The value stored on trace A and on trace B for each choice.
VALUES = {"a": ("better", "worse"), "b": ("worse", "better"), "tie": ("tie", "tie")}
MAX_RATIONALE = 10_000
CHUNK = 500  # trace ids per IN (...) when the summary looks up the other traces


def pair_key(a: str, b: str) -> str:
    return ",".join(sorted((a, b)))


def _previous(trace: Trace, key: str, reviewer: str) -> Assessment | None:
    """The reviewer's valid judgement of this pair on `trace`: the one a new judgement
    overrides. A trace holds few pairwise judgements, so the metadata is read here."""
    mine = Assessment.objects.filter(
        trace=trace, name=NAME, valid=True, source_type=AssessmentSourceType.HUMAN
    ).filter(source_id=reviewer)
    latest_first = mine.order_by("-created_at", "-pk")
    return next((x for x in latest_first if (x.metadata or {}).get(PAIR) == key), None)


def current_choice(a: Trace, b: Trace, reviewer: str) -> tuple[str, str]:
    """The reviewer's standing choice on this pair ("a", "b", "tie" or "") and its rationale."""
    found = _previous(a, pair_key(a.trace_id, b.trace_id), reviewer)
    if found is None:
        return "", ""
    choice = {"better": "a", "worse": "b", "tie": "tie"}.get(str(found.value), "")
    return choice, found.rationale


def judge(a: Trace, b: Trace, choice: str, rationale: str, reviewer: str) -> list[Assessment]:
    """Store the reviewer's choice on both traces, overriding their previous one of this pair.

    Both traces are locked first (in pk order, so two reviewers cannot deadlock), so that two
    submissions at once override one after the other rather than the same judgement twice.
    """
    if choice not in CHOICES:
        raise ValueError(f"choice must be one of {CHOICES}")
    key = pair_key(a.trace_id, b.trace_id)
    made = []
    with transaction.atomic():
        list(Trace.objects.select_for_update().filter(pk__in=[a.pk, b.pk]).order_by("pk"))
        for trace, other, position, value in (
            (a, b, "A", VALUES[choice][0]),
            (b, a, "B", VALUES[choice][1]),
        ):
            previous = _previous(trace, key, reviewer)
            made.append(
                Assessment.objects.record(
                    trace,
                    name=NAME,
                    kind=AssessmentKind.FEEDBACK,
                    value=value,
                    rationale=rationale,
                    source_type=AssessmentSourceType.HUMAN,
                    source_id=reviewer,
                    metadata={PAIR: key, OTHER: other.trace_id, POSITION: position},
                    overrides=previous.assessment_id if previous else "",
                )
            )
    return made


@dataclass(frozen=True)
class PairTally:
    """Judgements of answers of version `model_a` against answers of version `model_b`."""

    model_a: str
    model_b: str
    a_preferred: int = 0
    b_preferred: int = 0
    ties: int = 0

    @property
    def total(self) -> int:
        return self.a_preferred + self.b_preferred + self.ties

    def swapped(self) -> PairTally:
        """The same judgements seen from `model_b`."""
        return PairTally(self.model_b, self.model_a, self.b_preferred, self.a_preferred, self.ties)


def _model_of(trace_ids: list[str], traces: QuerySet[Trace]) -> dict[str, str]:
    found: dict[str, str] = {}
    for start in range(0, len(trace_ids), CHUNK):
        rows = traces.filter(trace_id__in=trace_ids[start : start + CHUNK]).exclude(model_id="")
        found.update(rows.values_list("trace_id", "model_id"))
    return found


def tallies(traces: QuerySet[Trace], model_a: str = "", model_b: str = "") -> list[PairTally]:
    """Valid pairwise judgements between answers of two versions, per version pair, among
    `traces` (the caller's readable ones: a judgement counts when both its traces are).

    Each judgement is on both traces; it is counted from the trace of `model_a`, or, with no
    pair asked, from the trace whose version sorts first. Pairs of one version are not counted.
    """
    own = traces.exclude(model_id="")
    if model_a:
        own = own.filter(model_id=model_a)
    rows = list(
        Assessment.objects.filter(
            trace__in=own, name=NAME, kind=AssessmentKind.FEEDBACK, valid=True
        ).values_list("trace__model_id", "value", "metadata")
    )
    others = sorted({str(meta.get(OTHER, "")) for _, _, meta in rows if isinstance(meta, dict)})
    model_of = _model_of([o for o in others if o], traces)
    counts: Counter[tuple[str, str, str]] = Counter()
    for model, value, meta in rows:
        other = model_of.get(str(meta.get(OTHER, ""))) if isinstance(meta, dict) else None
        if not other or other == model or (model_b and other != model_b):
            continue
        if not model_a and other < model:
            continue  # counted from the other side
        counts[(model, other, str(value))] += 1
    pairs = sorted({(m, o) for m, o, _ in counts})
    return [
        PairTally(
            m,
            o,
            a_preferred=counts[(m, o, "better")],
            b_preferred=counts[(m, o, "worse")],
            ties=counts[(m, o, "tie")],
        )
        for m, o in pairs
    ]
