"""A trace read as a conversation: the root span's messages, what the agent did in between
(tool calls with their results, retrieved documents, model calls with their reasoning), then
its answer. The trace page's Conversation tab shows it; each item names its span so that the
page can open it in the waterfall.

The order is the trace's: the root's input messages (the history, tool calls of earlier turns
paired with their results by call id), then the TOOL, RETRIEVER and CHAT_MODEL/LLM spans in
start order, then the root's output messages. When spans show the tool calls, the tool calls
and tool results an agent also returns in its output messages are not shown a second time,
nor are output messages that repeat the inputs (agents that return the whole history).

One query, capped at MAX_SPANS spans, reads what is needed and no more: inputs only of the
root, tools and retrievers (a model call's inputs are the whole history again); a 50,000-span
trace costs what a 300-span one does, plus a count when the cap cut it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Case, F, JSONField, Q, Value, When

from tracking import chat, cost
from tracking.models import Span, Trace
from tracking.span_contents import (
    Capped,
    Documents,
    ToolCall,
    cap,
    documents,
    pretty,
    tool_call,
)

TOOL = "TOOL"
RETRIEVER = "RETRIEVER"
MODEL_TYPES = ("CHAT_MODEL", "LLM")
ACTIVITY_TYPES = (TOOL, RETRIEVER, *MODEL_TYPES)
MAX_SPANS = 200
MAX_CONTENT_CHARS = 20_000
_COLUMNS = ("span_id", "parent_span_id", "name", "span_type", "start_ns", "status")
_COLUMNS += ("status_message", "outputs", "attributes")


@dataclass
class MessageItem:
    span_id: str
    role: str
    content: Capped
    name: str = ""
    reasoning: str = ""
    source: str = "inputs"
    calls: list[ToolCall] = field(default_factory=list)
    kind: str = "message"


@dataclass
class ToolItem:
    span_id: str
    call: ToolCall
    error: str = ""
    kind: str = "tool"


@dataclass
class DocumentsItem:
    span_id: str
    name: str
    query: Capped
    documents: Documents
    error: str = ""
    kind: str = "documents"


@dataclass
class ModelItem:
    span_id: str
    name: str
    model: str | None
    tokens: int | None
    cost: float | None
    content: Capped
    reasoning: str
    requested: list[str]  # names of the tools it asked for
    error: str = ""
    kind: str = "model"


Item = MessageItem | ToolItem | DocumentsItem | ModelItem


@dataclass
class Conversation:
    root_span_id: str
    items: list[Item]
    more_spans: int = 0  # tool, retriever and model spans past the cap
    error: str = ""  # why the root failed, said after the last item


def root_has_chat(trace: Trace) -> bool:
    """Whether the trace's root span holds chat messages (the Conversation tab's condition).
    One indexed query for the first root in start order."""
    root = (
        Span.objects.filter(trace_id=trace.pk, parent_span_id="")
        .order_by("start_ns")
        .values_list("inputs", "outputs")
        .first()
    )
    return root is not None and chat.conversation(*root) is not None


def load(trace: Trace) -> Conversation | None:
    """The trace's conversation, or None when its root holds no chat messages."""
    inputs_wanted = Q(parent_span_id="") | Q(span_type__in=(TOOL, RETRIEVER))
    rows = list(
        Span.objects.filter(trace_id=trace.pk)
        .filter(Q(parent_span_id="") | Q(span_type__in=ACTIVITY_TYPES))
        .annotate(
            call_inputs=Case(
                When(inputs_wanted, then=F("inputs")), default=Value(None), output_field=JSONField()
            )
        )
        .only(*_COLUMNS)
        .order_by("start_ns", "pk")[: MAX_SPANS + 2]
    )
    root = next((s for s in rows if s.parent_span_id == ""), None)
    if root is None:
        return None
    spans = [s for s in rows if s is not root and s.span_type in ACTIVITY_TYPES][:MAX_SPANS]
    more = 0
    if len(rows) == MAX_SPANS + 2:  # the limit cut the list: count what it left out
        total = (
            Span.objects.filter(trace_id=trace.pk, span_type__in=ACTIVITY_TYPES)
            .exclude(parent_span_id="")
            .count()
        )
        more = total - len(spans)
    return build(root, spans, more_spans=more)


def build(root: Any, spans: list[Any], more_spans: int = 0) -> Conversation | None:
    """The conversation from a root span and its activity spans in start order (objects with
    the Span columns and `call_inputs`); None when the root holds no chat messages."""
    said = chat.conversation(root.call_inputs, root.outputs)
    if said is None:
        return None
    inputs = [m for m in said.messages if m.source == "inputs"]
    outputs = [m for m in said.messages if m.source == "outputs"]
    activity = [_activity(s) for s in spans]
    shows_tools = any(isinstance(a, ToolItem) for a in activity)
    outputs = _new_outputs(inputs, outputs, drop_tools=shows_tools)
    answers = {m.content for m in outputs if m.role == "assistant" and m.content}
    if not outputs and root.outputs is not None and not isinstance(root.outputs, dict | list):
        # A chat request answered with a plain value (a string): that value is the answer.
        outputs = [chat.Message(role="assistant", content=pretty(root.outputs), source="outputs")]
    for item in activity:
        if isinstance(item, ModelItem) and item.content.text in answers:
            item.content = Capped("")  # the answer is shown once, below
    items: list[Item] = [
        *_message_items(root.span_id, inputs),
        *activity,
        *_message_items(root.span_id, outputs),
    ]
    error = ""
    if root.status == "ERROR":
        error = root.status_message or "The root span failed."
    return Conversation(root.span_id, items, more_spans=more_spans, error=error)


def _new_outputs(
    inputs: list[chat.Message], outputs: list[chat.Message], drop_tools: bool
) -> list[chat.Message]:
    # Agents that return the whole state repeat the inputs first.
    same = 0
    while same < min(len(inputs), len(outputs)) and (inputs[same].role, inputs[same].content) == (
        outputs[same].role,
        outputs[same].content,
    ):
        same += 1
    outputs = outputs[same:]
    if not drop_tools:
        return outputs
    kept = []
    for m in outputs:
        if m.role in ("tool", "function"):
            continue
        if m.tool_calls:
            m.tool_calls = []
            if not m.content and not m.reasoning:
                continue
        kept.append(m)
    return kept


def _message_items(span_id: str, messages: list[chat.Message]) -> list[MessageItem]:
    """Messages as items, each tool call paired with the tool message that answered it."""
    results = {m.tool_call_id: m for m in messages if m.role == "tool" and m.tool_call_id}
    answered = set()
    items = []
    for m in messages:
        calls = []
        for call in m.tool_calls:
            result = results.get(call.call_id) if call.call_id else None
            if result is not None:
                answered.add(id(result))
            calls.append(
                ToolCall(
                    name=call.name,
                    arguments=cap(call.arguments, MAX_CONTENT_CHARS),
                    result=cap(result.content if result else "", MAX_CONTENT_CHARS),
                    has_result=result is not None,
                    call_id=call.call_id,
                )
            )
        items.append(
            MessageItem(
                span_id=span_id,
                role=m.role,
                content=cap(m.content, MAX_CONTENT_CHARS),
                name=m.name,
                reasoning=m.reasoning[:MAX_CONTENT_CHARS],
                source=m.source,
                calls=calls,
            )
        )
    # A tool message shown inside its call is not shown again on its own.
    shown = [i for i, m in zip(items, messages, strict=True) if id(m) not in answered]
    return shown


def _activity(span: Any) -> Item:
    error = span.status_message if span.status == "ERROR" else ""
    if span.span_type == TOOL:
        call = tool_call(span.name, span.call_inputs, span.outputs, span.attributes)
        return ToolItem(span_id=span.span_id, call=call, error=error)
    if span.span_type == RETRIEVER:
        found = documents(span.outputs) or Documents([])
        query = span.call_inputs
        if isinstance(query, dict) and len(query) == 1:
            query = next(iter(query.values()))  # {"query": "..."}: the query is enough
        return DocumentsItem(
            span_id=span.span_id,
            name=span.name,
            query=cap(pretty(query), 2_000),
            documents=found,
            error=error,
        )
    return _model_item(span, error)


def _model_item(span: Any, error: str) -> ModelItem:
    attributes = span.attributes if isinstance(span.attributes, dict) else {}
    said = chat.conversation(None, span.outputs)
    messages = said.messages if said else []
    usage = cost.span_usage(attributes)
    tokens = None
    if usage is not None:
        tokens = usage.get("total_tokens")
        if tokens is None:
            tokens = usage.get("input_tokens", 0) + usage.get("output_tokens", 0)
    span_cost = cost.valid_cost(attributes.get(cost.COST_ATTRIBUTE))
    content = "\n\n".join(m.content for m in messages if m.role == "assistant" and m.content)
    if not messages and isinstance(span.outputs, str):
        content = span.outputs  # a completion model's text
    return ModelItem(
        span_id=span.span_id,
        name=span.name,
        model=cost.span_model(attributes, None, span.outputs),
        tokens=tokens,
        cost=span_cost.get("total_cost") if span_cost else None,
        content=cap(content, MAX_CONTENT_CHARS),
        reasoning="\n\n".join(m.reasoning for m in messages if m.reasoning)[:MAX_CONTENT_CHARS],
        requested=[c.name for m in messages for c in m.tool_calls],
        error=error,
    )
