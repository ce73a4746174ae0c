"""Chat messages found in a span's inputs and outputs: the one reader of messages and their
content parts, for the conversation view, the trace page, the playground's replay and the answers
agents give.

The shapes our users log (see the MLflow ChatModel / ChatAgent / ResponsesAgent docs):

- OpenAI chat completions: inputs `{"messages": [{"role", "content", "tool_calls"}, ...]}`,
  tool results as `{"role": "tool", "tool_call_id", "content"}`; outputs
  `{"choices": [{"message": {...}}]}`. MLflow's ChatModel uses the same shapes.
- MLflow ChatAgent: inputs and outputs both `{"messages": [...]}`.
- MLflow ResponsesAgent (OpenAI Responses): inputs `{"input": [...]}`, outputs
  `{"output": [...]}` of items typed `message`, `function_call` and `function_call_output`.
- A bare list of messages.

Content may be a string or a list of parts (`{"type": "text"|"input_text"|"output_text",
"text"}`, or bare strings), joined by blank lines; other parts (images, refusals, ...) and other
values are kept as fenced JSON text, so nothing is silently dropped. Nothing here renders: the
template escapes names and the markdown module sanitises content.

Reasoning is kept apart from what was said, so that pages can fold it away: Anthropic's
`{"type": "thinking", "thinking"}` content parts (and `redacted_thinking`), `reasoning` parts,
the `reasoning_content` / `reasoning` fields of OpenAI-compatible servers (DeepSeek, vLLM,
OpenRouter), and Responses `{"type": "reasoning", "summary": [...]}` items.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
# A conversation longer than this is cut, and says so, to keep the details panel quick.
MAX_MESSAGES = 200


@dataclass
class ToolCall:
    name: str
    arguments: str
    call_id: str = ""


@dataclass
class Message:
    role: str
    content: str = ""
    name: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str = ""
    source: str = "inputs"  # which side of the span it came from
    reasoning: str = ""  # thinking shown folded, never mixed into `content`


@dataclass
class Conversation:
    messages: list[Message]
    omitted: int = 0


def conversation(
    inputs: Any, outputs: Any, limit: int | None = MAX_MESSAGES
) -> Conversation | None:
    """The chat of a span, or None when neither side holds chat messages; cut at `limit`
    messages (None: all, for the trace diff, which must see a change past the cut)."""
    messages = [*_messages_in(inputs, "inputs"), *_messages_in(outputs, "outputs")]
    if not messages:
        return None
    if limit is None:
        return Conversation(messages=messages)
    omitted = max(0, len(messages) - limit)
    return Conversation(messages=messages[:limit], omitted=omitted)


def request_messages(inputs: Any) -> list[Message]:
    """The messages of a request, as an agent would be sent them again: `messages`
    (chat completions, ChatAgent, ChatModel) or `input` (ResponsesAgent, where a bare string is
    one user message), or a bare list. Items that are not messages are skipped."""
    if isinstance(inputs, list):
        inputs = {"messages": inputs}
    if not isinstance(inputs, dict):
        return []
    raw = inputs.get("messages", inputs.get("input"))
    if isinstance(raw, str):
        raw = [{"role": "user", "content": raw}]
    return read(raw) if isinstance(raw, list) else []


def preview_has_user_message(preview: str) -> bool:
    """Whether a trace's request preview (its root span's inputs as JSON) holds a user message.
    A preview cut at its size limit is no longer JSON; then a `"role"` key in it is the hint."""
    try:
        inputs = json.loads(preview)
    except ValueError:
        return '"role"' in preview
    return any(m.role == "user" for m in request_messages(inputs))


def request_text(preview: str) -> str:
    """A trace's request preview as a person reads it: the last user message of a chat request
    (whichever shape it was logged in), any other JSON string as its text, anything else as is.
    MLflow's client and the playground already store the user's text; OTLP and span-derived
    previews hold the inputs' JSON, which the trace list would otherwise show raw."""
    inputs = _loads(preview)
    if inputs is _NOT_JSON:
        return preview
    users = [m.content for m in request_messages(inputs) if m.role == "user" and m.content]
    if users:
        return users[-1]
    return inputs if isinstance(inputs, str) else preview


def answer_text(preview: str) -> str:
    """A trace's response preview as a person reads it: the last assistant message with text of
    a chat answer (chat completions, ChatAgent, Responses), a JSON string as its text, anything
    else as is."""
    outputs = _loads(preview)
    if outputs is _NOT_JSON:
        return preview
    said = [
        m.content for m in _messages_in(outputs, "outputs") if m.role == "assistant" and m.content
    ]
    if said:
        return said[-1]
    return outputs if isinstance(outputs, str) else preview


_NOT_JSON = object()


def _loads(preview: str) -> Any:
    """The JSON in a preview, or _NOT_JSON: plain text, or JSON cut at the preview's size limit."""
    if not preview or preview[0] not in '[{"':
        return _NOT_JSON
    try:
        return json.loads(preview)
    except ValueError:
        return _NOT_JSON


def read(items: list[Any], source: str = "inputs") -> list[Message]:
    """The messages among `items` (chat messages or Responses items); anything else is skipped."""
    return _convert([i for i in items if isinstance(i, dict) and _is_item(i)], source)


REASONING_PARTS = frozenset({"thinking", "redacted_thinking", "reasoning", "reasoning_text"})


def content_text(content: Any) -> str:
    """A message's content as text: a string as is, text parts joined by blank lines, anything
    else as fenced JSON (a tool call's missing content is "")."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") in REASONING_PARTS:
                continue  # reasoning_text() reads these
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
            elif part is not None:
                parts.append(f"```json\n{_json(part)}\n```")
        return "\n\n".join(p for p in parts if p)
    return f"```json\n{_json(content)}\n```"


def reasoning_text(message: dict) -> str:
    """The reasoning of a chat message or a Responses `reasoning` item, "" when it has none."""
    found = []
    for key in ("reasoning_content", "reasoning"):
        value = message.get(key)
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):  # OpenRouter-style {"content"|"summary": ...}
            found.extend(_part_texts([value.get("content"), value.get("summary")]))
    content = message.get("content")
    if isinstance(content, list):
        found.extend(
            _part_texts(
                [p for p in content if isinstance(p, dict) and p.get("type") in REASONING_PARTS]
            )
        )
    if message.get("type") == "reasoning":
        found.extend(_part_texts([message.get("summary")]))
    return "\n\n".join(t for t in found if t)


def _part_texts(values: list[Any]) -> list[str]:
    out = []
    for value in values:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, list):
            out.extend(_part_texts(value))
        elif isinstance(value, dict):
            if value.get("type") == "redacted_thinking":
                out.append("(redacted thinking)")
            for key in ("thinking", "text", "summary_text"):
                if isinstance(value.get(key), str):
                    out.append(value[key])
                    break
    return out


def _messages_in(value: Any, source: str) -> list[Message]:
    if isinstance(value, dict):
        for key in ("messages", "input", "output"):
            items = value.get(key)
            if _is_message_list(items):
                return _convert(items, source)
        choices = value.get("choices")
        if isinstance(choices, list):
            found = [c["message"] for c in choices if isinstance(c, dict) and "message" in c]
            if _is_message_list(found):
                return _convert(found, source)
    elif _is_message_list(value):
        return _convert(value, source)
    return []


def _is_message_list(items: Any) -> bool:
    return (
        isinstance(items, list)
        and bool(items)
        and all(isinstance(m, dict) and _is_item(m) for m in items)
    )


def _is_item(item: dict) -> bool:
    if item.get("role") in ROLES:
        return True
    return item.get("type") in ("message", "function_call", "function_call_output", "reasoning")


def _convert(items: list[dict], source: str) -> list[Message]:
    out = []
    for item in items:
        kind = item.get("type")
        if kind == "function_call":
            call = ToolCall(
                name=_text(item.get("name")),
                arguments=_arguments(item.get("arguments")),
                call_id=_text(item.get("call_id") or item.get("id")),
            )
            out.append(Message(role="assistant", tool_calls=[call], source=source))
        elif kind == "reasoning":
            out.append(Message(role="assistant", reasoning=reasoning_text(item), source=source))
        elif kind == "function_call_output":
            out.append(
                Message(
                    role="tool",
                    content=content_text(item.get("output")),
                    tool_call_id=_text(item.get("call_id")),
                    source=source,
                )
            )
        else:
            role = item.get("role")
            out.append(
                Message(
                    role=role if role in ROLES else "assistant",
                    content=content_text(item.get("content")),
                    name=_text(item.get("name")),
                    tool_calls=[_tool_call(c) for c in item.get("tool_calls") or [] if c],
                    tool_call_id=_text(item.get("tool_call_id")),
                    source=source,
                    reasoning=reasoning_text(item),
                )
            )
    return out


def _tool_call(call: Any) -> ToolCall:
    if not isinstance(call, dict):
        return ToolCall(name="", arguments=_arguments(call))
    function = call.get("function") if isinstance(call.get("function"), dict) else call
    return ToolCall(
        name=_text(function.get("name")),
        arguments=_arguments(function.get("arguments")),
        call_id=_text(call.get("id")),
    )


def _arguments(arguments: Any) -> str:
    """Tool arguments as indented JSON when they are JSON (they usually arrive as a string)."""
    if isinstance(arguments, str):
        try:
            return _json(json.loads(arguments))
        except ValueError:
            return arguments
    return "" if arguments is None else _json(arguments)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
