"""What the review screen shows of one queue item: a trace's conversation (its root span's chat,
read by tracking/chat.py, as the trace page's Chat tab shows it), or a session's turns (each
trace's request and answer, in order), and the trace its answers are written on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tracking import chat
from tracking.models import Span, Trace
from tracking.reviews import ItemType, ReviewItem
from tracking.sessions import in_turn_order

MAX_TURNS = 100  # a longer session is cut, and says so; its session page has the rest


@dataclass
class Turn:
    trace: Trace
    request: str
    answer: str


@dataclass
class ItemContent:
    # The trace the answers go on: the trace itself, or a session's first trace.
    # None when the item's trace (or every trace of the session) is gone.
    target: Trace | None
    conversation: chat.Conversation | None = None
    turns: list[Turn] = field(default_factory=list)
    more_turns: bool = False
    # When the trace holds no chat: its request and response previews as text.
    request: str = ""
    answer: str = ""


def content_of(item: ReviewItem, experiment_id: int) -> ItemContent:
    """The item's content, from the queue's experiment only (three queries at most)."""
    traces = Trace.objects.filter(experiment_id=experiment_id).defer("tags", "metadata")
    if item.item_type == ItemType.SESSION:
        rows = list(in_turn_order(traces.filter(session_id=item.item_id))[: MAX_TURNS + 1])
        turns = [
            Turn(t, chat.request_text(t.request_preview), chat.answer_text(t.response_preview))
            for t in rows[:MAX_TURNS]
        ]
        return ItemContent(
            target=rows[0] if rows else None, turns=turns, more_turns=len(rows) > MAX_TURNS
        )
    trace = traces.filter(trace_id=item.item_id).first()
    if trace is None:
        return ItemContent(target=None)
    root = (
        Span.objects.filter(trace=trace, parent_span_id="")
        .only("inputs", "outputs")
        .order_by("start_ns")
        .first()
    )
    conversation = chat.conversation(root.inputs, root.outputs) if root else None
    return ItemContent(
        target=trace,
        conversation=conversation,
        request=chat.request_text(trace.request_preview),
        answer=chat.answer_text(trace.response_preview),
    )
