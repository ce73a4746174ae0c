"""Sessions (conversations): the queries of the sessions list and of one session's page.

A session is the traces of one experiment sharing a `session_id` (`mlflow.trace.session`,
or OTel's `session.id` / `gen_ai.conversation.id`, see tracking/ingest.py). The same id in two
experiments is two sessions, as in MLflow, where a session lives in its experiment: the list
links each to `/sessions/<id>/?experiment=<pk>`.

The list reads TraceSession rows (a session's sums, kept at ingest), so that a page is an
index range whatever the trace count; each page costs a constant number of queries.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from access.rules import Access
from tracking import chat
from tracking.ingest import SESSION_METADATA
from tracking.keyset import after
from tracking.models import Assessment, Span, Trace, TraceSession

SESSIONS_PER_PAGE = 50
# A session page shows this many turns at most: a conversation is read, not scrolled forever.
MAX_TURNS = 500
TIME_RANGES = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7),
               "30d": timedelta(days=30)}  # fmt: skip
_ORDER = ("-last_time", "-id")


@dataclass(frozen=True)
class SessionFilters:
    experiment_id: int | None = None
    since: str = ""  # a TIME_RANGES key
    model_id: str = ""
    user_id: str = ""
    errors: bool = False

    @classmethod
    def parse(cls, params: Any) -> SessionFilters:
        experiment = params.get("experiment", "")
        return cls(
            experiment_id=int(experiment) if experiment.isdigit() else None,
            since=params.get("since", "") if params.get("since", "") in TIME_RANGES else "",
            model_id=params.get("model", "").replace("\x00", ""),
            user_id=params.get("user", "").replace("\x00", ""),
            errors=params.get("errors", "") == "1",
        )

    def apply(self, sessions: QuerySet[TraceSession]) -> QuerySet[TraceSession]:
        if self.experiment_id is not None:
            sessions = sessions.filter(experiment_id=self.experiment_id)
        if self.since:
            sessions = sessions.filter(last_time__gte=timezone.now() - TIME_RANGES[self.since])
        if self.user_id:
            sessions = sessions.filter(user_id=self.user_id)
        if self.errors:
            sessions = sessions.filter(error_count__gt=0)
        if self.model_id:
            # Any turn answered by that version: an EXISTS per candidate row, served by
            # trace_session_idx, while the walk stays on the sessions' own index.
            turns = Trace.objects.filter(
                session_id=OuterRef("session_id"),
                experiment_id=OuterRef("experiment_id"),
                model_id=self.model_id,
            )
            sessions = sessions.filter(Exists(turns))
        return sessions


def list_page(
    access: Access, filters: SessionFilters, before: str = ""
) -> tuple[list[TraceSession], str]:
    """A page of sessions, most recently active first, and the cursor of the next ("" if
    none). A malformed cursor raises ValueError."""
    sessions = filters.apply(access.readable(TraceSession.objects.all()))
    if before:
        sessions = sessions.filter(after(_ORDER, _parse_cursor(before)))
    rows = list(sessions.select_related("experiment").order_by(*_ORDER)[: SESSIONS_PER_PAGE + 1])
    page = rows[:SESSIONS_PER_PAGE]
    next_cursor = _format_cursor(page[-1]) if len(rows) > SESSIONS_PER_PAGE else ""
    _attach_feedback(page)
    return page, next_cursor


def _format_cursor(session: TraceSession) -> str:
    return f"{session.last_time.isoformat()}|{session.pk}"


def _parse_cursor(cursor: str) -> tuple[datetime, int]:
    when, _, pk = cursor.partition("|")
    parsed = parse_datetime(when)
    if parsed is None or not pk.isdigit():
        raise ValueError(f"Malformed cursor {cursor!r}.")
    return parsed, int(pk)


@dataclass
class FeedbackSummary:
    name: str
    passed: int = 0
    failed: int = 0
    numbers: list[float] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        parts = []
        if self.passed or self.failed:
            parts.append(f"{self.passed}/{self.passed + self.failed} pass")
        if self.numbers:
            parts.append(f"avg {sum(self.numbers) / len(self.numbers):.2g}")
        parts += [f"{label} ({n})" for label, n in sorted(self.labels.items())[:3]]
        return f"{self.name}: {', '.join(parts)}"


def _attach_feedback(sessions: list[TraceSession]) -> None:
    """`session.feedback`: per feedback name, what the session's valid feedback says (on any
    of its traces). One query for the page."""
    for session in sessions:
        session.feedback = []
    if not sessions:
        return
    wanted = {(s.experiment_id, s.session_id): s for s in sessions}
    found = (
        Assessment.objects.filter(
            kind="feedback",
            valid=True,
            trace__session_id__in={s.session_id for s in sessions},
            trace__experiment_id__in={s.experiment_id for s in sessions},
        )
        .order_by("name")
        .values_list("trace__experiment_id", "trace__session_id", "name", "value")
    )
    summaries: dict[tuple[int, str], dict[str, FeedbackSummary]] = defaultdict(dict)
    for experiment_id, session_id, name, value in found:
        key = (experiment_id, session_id)
        if key not in wanted:
            continue
        summary = summaries[key].setdefault(name, FeedbackSummary(name))
        if isinstance(value, bool):
            summary.passed += value
            summary.failed += not value
        elif isinstance(value, int | float):
            summary.numbers.append(float(value))
        elif isinstance(value, str) and value.lower() in ("yes", "no", "pass", "fail"):
            passed = value.lower() in ("yes", "pass")
            summary.passed += passed
            summary.failed += not passed
        elif isinstance(value, str):
            summary.labels[value[:40]] = summary.labels.get(value[:40], 0) + 1
    for key, by_name in summaries.items():
        wanted[key].feedback = [str(s) for s in by_name.values()]


# --- One session ----------------------------------------------------------------------------


@dataclass
class ToolCall:
    name: str
    inputs: Any
    outputs: Any
    status: str


@dataclass
class Turn:
    trace: Trace
    user_message: str
    answer: str
    tool_calls: list[ToolCall]


def experiments_of(access: Access, session_id: str) -> list[TraceSession]:
    """The readable sessions with this id, most recently active first (one per experiment)."""
    sessions = access.readable(TraceSession.objects.filter(session_id=session_id))
    return list(sessions.select_related("experiment").order_by(*_ORDER))


def in_turn_order(traces: QuerySet[Trace]) -> QuerySet[Trace]:
    """Oldest first. request_time can tie when turns come within a millisecond (the MLflow
    client sends ms, and its async exporter may store them out of order): the root span's start
    in ns breaks the tie (an index range per trace), then the id."""
    root_start = (
        Span.objects.filter(trace_id=OuterRef("pk"), parent_span_id="")
        .order_by("start_ns")
        .values("start_ns")[:1]
    )
    return traces.annotate(root_start_ns=Subquery(root_start)).order_by(
        "request_time", F("root_start_ns").asc(nulls_first=True), "pk"
    )


def turns(session: TraceSession) -> list[Turn]:
    """The session's traces, oldest first, each with the user's message, the agent's answer
    and its tool calls. Three queries, whatever the turn count."""
    traces = list(
        in_turn_order(
            Trace.objects.filter(
                experiment_id=session.experiment_id, session_id=session.session_id
            ).defer("metadata")
        )[:MAX_TURNS]
    )
    by_pk = {t.pk: t for t in traces}
    roots: dict[int, Span] = {}
    tools: dict[int, list[ToolCall]] = defaultdict(list)
    spans = Span.objects.filter(trace_id__in=list(by_pk)).filter(
        Q(parent_span_id="") | Q(span_type="TOOL")
    )
    for span in spans.only(
        "trace_id", "parent_span_id", "name", "span_type", "inputs", "outputs", "status", "start_ns"
    ).order_by("start_ns"):
        if span.span_type == "TOOL":
            tools[span.trace_id].append(ToolCall(span.name, span.inputs, span.outputs, span.status))
        if not span.parent_span_id:
            roots.setdefault(span.trace_id, span)
    result = []
    for trace in traces:
        root = roots.get(trace.pk)
        result.append(
            Turn(
                trace=trace,
                user_message=_user_message(trace, root),
                answer=_answer(trace, root),
                tool_calls=tools.get(trace.pk, []),
            )
        )
    return result


def _user_message(trace: Trace, root: Span | None) -> str:
    if root is not None:
        users = [m.content for m in chat.request_messages(root.inputs) if m.role == "user"]
        if users and users[-1]:
            return users[-1]
    return chat.request_text(trace.request_preview)


def _answer(trace: Trace, root: Span | None) -> str:
    if root is not None and root.outputs is not None:
        found = chat.conversation(None, root.outputs)
        said = [m.content for m in (found.messages if found else []) if m.role == "assistant"]
        if said and said[-1]:
            return said[-1]
        if isinstance(root.outputs, str):
            return root.outputs
    return chat.answer_text(trace.response_preview)


def session_feedback(session: TraceSession, first: Trace | None) -> list[Assessment]:
    """Feedback on the session as MLflow stores it (mlflow/genai/evaluation/session_utils.py):
    on the session's first trace, its metadata naming the session. One query."""
    if first is None:
        return []
    found = Assessment.objects.filter(trace=first, valid=True).order_by("name", "pk")
    return [a for a in found if (a.metadata or {}).get(SESSION_METADATA) == session.session_id]
