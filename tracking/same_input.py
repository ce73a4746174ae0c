"""The same input on other model versions: the traces a trace page's "Compare with…" offers to
diff against, newest first.

Two sources, in order:
1. Evaluations. When the trace is a row of an evaluation run, the rows with the same inputs
   in the other evaluation runs on the same dataset (the managed dataset, else the same name
   and digest): the comparison `tracking.evaluations.aligned` makes between two runs, for one
   row.
2. Otherwise the experiment's recent traces whose request preview equals this one's.

Bounded work on experiments of millions of traces. The preview has no index of its own and
gets none: up to 1,000 characters, past what a PostgreSQL btree row holds (about 2.7 KB once
multi-byte), and an index every ingest would pay for this one panel. So source 2 compares
previews among the experiment's newest RECENT traces only, read through trace_exp_time_idx,
and the panel says so; source 1 among the linked traces of at most EVALUATION_RUNS runs,
through the link table's run index. A preview at the length cap may be a cut one that
different long inputs share (one long system prompt), so those candidates are confirmed by
the digest of their root span's inputs, at most CONFIRMED of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Exists, OuterRef, Q, TextField
from django.db.models.functions import MD5, Cast

from access.rules import Access
from tracking.evaluations import GENAI_EVALUATE, RUN_TYPE_TAG, RunDataset
from tracking.ingest import PREVIEW_MAX_CHARS
from tracking.models import LifecycleStage, LoggedModel, Run, Span, Trace

LIMIT = 10  # traces listed
RECENT = 5_000  # source 2: the experiment's newest traces searched
EVALUATION_RUNS = 50  # source 1: the other evaluations searched, newest first
CONFIRMED = 200  # candidates whose root inputs are compared when the preview may be cut
FIELDS = ("trace_id", "model_id", "state", "request_time", "duration_ns", "tags")


@dataclass
class Other:
    """A trace of the same input, and its version's name ("" when unknown or unversioned)."""

    trace: Trace
    version_name: str = ""


@dataclass
class SameInput:
    """What the panel lists, and what was searched to find it (said on the panel)."""

    others: list[Other] = field(default_factory=list)
    searched: str = ""


def find(trace: Trace, access: Access) -> SameInput:
    """Up to LIMIT traces of `trace`'s input by other model versions (or none, when `trace`
    has one), in experiments `access` may read, newest first."""
    if not trace.request_preview:
        return SameInput(searched="nothing: this trace has no input recorded")
    found = _in_evaluations(trace, access)
    if found is None or not found.others:
        found = _in_recent(trace)
    names = dict(
        access.readable(LoggedModel.objects.all())
        .filter(model_id__in={o.trace.model_id for o in found.others if o.trace.model_id})
        .values_list("model_id", "name")
    )
    for other in found.others:
        other.version_name = names.get(other.trace.model_id, "")
    return found


def _in_evaluations(trace: Trace, access: Access) -> SameInput | None:
    """Source 1, or None when the trace is no evaluation row on a dataset."""
    evaluations = Run.objects.filter(
        **{f"tags__{RUN_TYPE_TAG}": GENAI_EVALUATE}, lifecycle_stage=LifecycleStage.ACTIVE
    )
    own = list(evaluations.filter(linked_traces=trace).values_list("pk", flat=True))
    if not own:
        return None
    same_dataset = Q()
    datasets = RunDataset.objects.filter(run__in=own).values_list("dataset_id", "name", "digest")
    for dataset_pk, name, digest in datasets:
        same_dataset |= Q(dataset_id=dataset_pk) if dataset_pk else Q(name=name, digest=digest)
    if not same_dataset:
        return None
    runs = (
        access.readable(evaluations)
        .exclude(pk__in=own)
        .filter(Exists(RunDataset.objects.filter(same_dataset, run=OuterRef("pk"))))
        .order_by("-start_time", "-pk")
        .values("pk")[:EVALUATION_RUNS]
    )
    candidates = access.readable(Trace.objects.filter(linked_runs__in=runs))
    others = _matching(trace, candidates)
    return SameInput(others, f"the other evaluations on this dataset (the last {EVALUATION_RUNS})")


def _in_recent(trace: Trace) -> SameInput:
    """Source 2: the experiment's newest RECENT traces (the caller may read it: its trace)."""
    recent = (
        Trace.objects.filter(experiment_id=trace.experiment_id)
        .order_by("-request_time", "-pk")
        .values("pk")[:RECENT]
    )
    others = _matching(trace, Trace.objects.filter(pk__in=recent))
    return SameInput(others, f"the last {RECENT:,} traces of this experiment")


def _matching(trace: Trace, candidates) -> list[Trace]:
    """The candidates of the same preview on another version, confirmed by their root inputs
    when the preview may be cut; one query, two when confirming."""
    matches = (
        candidates.filter(request_preview=trace.request_preview)
        .exclude(pk=trace.pk)
        .exclude(model_id=trace.model_id)
        .only(*FIELDS)
        .with_cancelled()
        .order_by("-request_time", "-pk")
    )
    cut = len(trace.request_preview) >= PREVIEW_MAX_CHARS
    rows = _distinct(matches[:CONFIRMED] if cut else matches[: LIMIT * 2])
    if cut:
        digests = _root_input_digests([trace.pk, *(t.pk for t in rows)])
        mine = digests.get(trace.pk)
        rows = [t for t in rows if mine is not None and digests.get(t.pk) == mine]
    return [Other(t) for t in rows[:LIMIT]]


def _distinct(traces) -> list[Trace]:
    # A trace linked to two of the runs comes twice from the join.
    kept: dict[int, Trace] = {}
    for trace in traces:
        kept.setdefault(trace.pk, trace)
    return list(kept.values())


def _root_input_digests(trace_pks: list[int]) -> dict[int, str]:
    """{trace pk: MD5 of its root span's inputs}, computed by the database. The earliest root
    wins, as for a dataset record made from a trace (a trace sent in parts may hold more)."""
    rows = (
        Span.objects.filter(trace_id__in=trace_pks, parent_span_id="")
        .annotate(digest=MD5(Cast("inputs", TextField())))
        .order_by("-start_ns", "-pk")
        .values_list("trace_id", "digest")
    )
    return dict(rows)
