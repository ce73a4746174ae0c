"""Prefilling the playground from what was already logged: a trace whose root span holds chat
messages, or a logged model version (its agents, and the chat of its latest such trace)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from access.models import Level
from access.rules import ADMIN, Access
from playground.models import Agent
from tracking import chat
from tracking.models import Span, Trace
from tracking.permissions import may

REPLAYED_ROLES = frozenset({"system", "user", "assistant"})


@dataclass
class Prefill:
    message: str = ""
    system_prompt: str = ""
    # Earlier turns, replayed before the message.
    history: list[dict[str, str]] = field(default_factory=list)
    custom_inputs: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    agent_ids: list[int] = field(default_factory=list)
    source: str = ""  # what was replayed, for the page to say
    problem: str = ""  # why nothing could be replayed


def chat_of(inputs: Any) -> tuple[list[dict[str, str]], dict[str, Any] | None, dict[str, Any]]:
    """(messages, custom_inputs, params) from a root span's inputs, in any chat shape:
    chat completions / ChatAgent (`messages`), ResponsesAgent (`input`), ChatModel.predict
    (`messages` + `params`), or a bare list of messages."""
    # Only text turns can be sent again: tool calls and their results are left out.
    messages = [
        {"role": m.role, "content": m.content}
        for m in chat.request_messages(inputs)
        if m.role in REPLAYED_ROLES and m.content
    ]
    if not isinstance(inputs, dict):
        return messages, None, {}
    nested = inputs.get("params") if isinstance(inputs.get("params"), dict) else {}
    custom_inputs = inputs.get("custom_inputs", nested.get("custom_inputs"))
    params = {k: v for k, v in {**nested, **inputs}.items()
              if k in ("temperature", "max_tokens", "stop")}  # fmt: skip
    return messages, custom_inputs if isinstance(custom_inputs, dict) else None, params


def from_trace(trace_id: str, access: Access = ADMIN) -> Prefill:
    """A trace the caller may not read is, for it, a trace that does not exist."""
    trace = Trace.objects.filter(trace_id=trace_id).only("trace_id", "model_id", "tags").first()
    if trace is None or not may(access, Level.READ, "trace", trace_id):
        return Prefill(problem=f"There is no trace {trace_id}.")
    root = Span.objects.filter(trace=trace, parent_span_id="").only("inputs").first()
    messages, custom_inputs, params = chat_of(root.inputs if root else None)
    if not any(m["role"] == "user" for m in messages):
        return Prefill(problem=f"The root span of trace {trace_id} holds no chat messages.")
    prefill = _split(messages)
    prefill.custom_inputs, prefill.params = custom_inputs, params
    prefill.source = f"trace {trace_id}"
    # The agents of the trace's model version, else the playground agent that answered it.
    agents = Agent.objects.filter(model_id=trace.model_id) if trace.model_id else None
    if not agents:
        agents = Agent.objects.filter(name=(trace.tags or {}).get("spyglass.agent", ""))
    prefill.agent_ids = list(agents.values_list("pk", flat=True))
    return prefill


def from_model(model_id: str, access: Access = ADMIN) -> Prefill:
    if not may(access, Level.READ, "model", model_id):
        return Prefill(problem=f"There is no model {model_id}.")
    agent_ids = list(Agent.objects.filter(model_id=model_id).values_list("pk", flat=True))
    latest = access.readable(Trace.objects.filter(model_id=model_id))
    latest = latest.order_by("-request_time").first()
    prefill = from_trace(latest.trace_id, access) if latest else Prefill()
    if latest is None or prefill.problem:
        prefill = Prefill()
    prefill.agent_ids = agent_ids
    prefill.source = f"model {model_id}"
    if not agent_ids:
        prefill.problem = (
            f"No agent reaches model {model_id} yet: add one (its serving URL, or the logged "
            "model itself) with that model id."
        )
    return prefill


def from_session(session_id: str, experiment_id: str, access: Access = ADMIN) -> Prefill:
    """The user turns of a session, to be answered again (by the agent chosen): its earlier
    turns with their recorded answers as history, its last user message in the box."""
    from tracking import sessions  # tracking imports nothing from here; keep it one-way

    found = [
        s
        for s in sessions.experiments_of(access, session_id)
        if str(s.experiment_id) == experiment_id
    ]
    if not found:
        return Prefill(problem=f"There is no session {session_id}.")
    turns = sessions.turns(found[0])
    messages: list[dict[str, str]] = []
    for turn in turns:
        if turn.user_message:
            messages.append({"role": "user", "content": turn.user_message})
            if turn.answer:
                messages.append({"role": "assistant", "content": turn.answer})
    if not any(m["role"] == "user" for m in messages):
        return Prefill(problem=f"Session {session_id} holds no user messages.")
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    prefill = Prefill(message=messages[last_user]["content"], history=messages[:last_user])
    model_ids = {t.trace.model_id for t in turns if t.trace.model_id}
    prefill.agent_ids = list(
        Agent.objects.filter(model_id__in=model_ids).values_list("pk", flat=True)
    )
    prefill.source = f"session {session_id}"
    return prefill


def _split(messages: list[dict[str, str]]) -> Prefill:
    """The last user message goes in the box; the system prompt and earlier turns around it."""
    system = [m["content"] for m in messages if m["role"] == "system"]
    turns = [m for m in messages if m["role"] != "system"]
    last_user = max(i for i, m in enumerate(turns) if m["role"] == "user")
    return Prefill(
        message=turns[last_user]["content"],
        system_prompt="\n\n".join(system),
        history=turns[:last_user],
    )
