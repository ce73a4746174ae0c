"""The GenAI conventions of OpenTelemetry spans, read once at ingest into MLflow's shape.

OTLP ingest (`tracking.otlp`) hands each span's attributes and events here when MLflow's own
attributes do not say the span type, inputs or outputs. Every view (waterfall, chat tab, trace
list previews, sessions, cost) then reads one shape: inputs as an OpenAI chat request
(`{"messages": [...], "tools": [...]}`), outputs as an OpenAI chat completion
(`{"choices": [{"index", "message", "finish_reason"}]}`), token counts in
`mlflow.chat.tokenUsage`. What moved into inputs or outputs is removed from the attributes and
events, so a prompt is neither stored nor shown twice; a value that does not parse is moved as
it came, and anything not understood stays where it was.

Conventions read, the first present wins:
- OpenInference: `openinference.span.kind`, `input.value` / `output.value`,
  `llm.token_count.*`.
- OpenTelemetry GenAI (semantic-conventions-genai), in all its generations:
  `gen_ai.input.messages` / `gen_ai.output.messages` (messages of typed `parts`: text,
  tool_call, tool_call_response, reasoning, blobs...), `gen_ai.system_instructions` (a system
  message, first), `gen_ai.tool.definitions` (the request's `tools`), the span events
  `gen_ai.{system,user,assistant,tool}.message` and `gen_ai.choice`, the older events
  `gen_ai.content.prompt` / `gen_ai.content.completion`, tool calls (`gen_ai.tool.call.*`),
  retrieval (`gen_ai.retrieval.*`), `gen_ai.usage.*` (cached tokens included) and
  `gen_ai.operation.name` as the span type.
- OpenLLMetry's flattened attributes (`gen_ai.prompt.0.role`, `...tool_calls.0.name`,
  `llm.request.functions.0.name`).

What `opentelemetry-instrumentation-openai-v2` (2.4b0, with opentelemetry-util-genai 1.1b0)
actually sends to a span exporter: chat spans carry `gen_ai.input.messages` and
`gen_ai.output.messages` as JSON text only with
`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=span_only` (or `span_and_event`); `true`,
the older setting, is refused with a warning and captures nothing. Its events (the newer
`gen_ai.client.inference.operation.details` with `event_only` or `span_and_event`; older
versions' per-message `gen_ai.user.message`, `gen_ai.choice`...) are log records, sent by a log
exporter to `/v1/logs`, never span events: tracking/genai_logs.py joins them to their span and
reads them here, as the span events other SDKs send. Model names and token counts are
attributes in every mode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from webapp import json_limits

TOKEN_USAGE_ATTRIBUTE = "mlflow.chat.tokenUsage"

# OpenInference's span kinds, all of which are MLflow span types too.
_OPENINFERENCE_KINDS = frozenset(
    (
        "LLM",
        "CHAIN",
        "TOOL",
        "RETRIEVER",
        "EMBEDDING",
        "AGENT",
        "RERANKER",
        "GUARDRAIL",
        "EVALUATOR",
    )
)
# `gen_ai.operation.name` -> MLflow span type, as MLflow's own OTel translation maps them.
OPERATION_TYPES = {
    "chat": "CHAT_MODEL",
    "text_completion": "LLM",
    "generate_content": "LLM",
    "response": "LLM",
    "embeddings": "EMBEDDING",
    "execute_tool": "TOOL",
    "invoke_agent": "AGENT",
    "create_agent": "AGENT",
    "retrieval": "RETRIEVER",
    "invoke_workflow": "CHAIN",
}
# (input, output, total) token attributes, the first convention present wins.
_TOKEN_KEYS = (
    ("llm.token_count.prompt", "llm.token_count.completion", "llm.token_count.total"),
    ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", None),
    # Older GenAI conventions, still sent by OpenLLMetry.
    ("gen_ai.usage.prompt_tokens", "gen_ai.usage.completion_tokens", "llm.usage.total_tokens"),
)
# Cached prompt tokens (a part of the input tokens in every convention), under MLflow's keys,
# which the price computation reads.
_CACHE_KEYS = (
    (
        "cache_read_input_tokens",
        (
            "gen_ai.usage.cache_read.input_tokens",
            "gen_ai.usage.cache_read_input_tokens",
            "llm.token_count.prompt_details.cache_read",
        ),
    ),
    (
        "cache_creation_input_tokens",
        (
            "gen_ai.usage.cache_write.input_tokens",
            "gen_ai.usage.cache_creation.input_tokens",
            "gen_ai.usage.cache_creation_input_tokens",
            "llm.token_count.prompt_details.cache_write",
        ),
    ),
)
_MAX_TOKENS = 2**53  # keeps the per-trace sums far inside a bigint

_INPUT_MESSAGES = "gen_ai.input.messages"
_OUTPUT_MESSAGES = "gen_ai.output.messages"
_SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
_TOOL_DEFINITIONS = "gen_ai.tool.definitions"
# Values that are inputs or outputs as they are (no messages in them).
_PLAIN_INPUTS = ("gen_ai.tool.call.arguments",)
_PLAIN_OUTPUTS = ("gen_ai.tool.call.result",)
# Indexes are capped at 6 digits: int() refuses text past 4300 digits (a 500), and no list
# of messages or tools is that long. A longer index does not match and stays an attribute.
_FLAT_MESSAGE = re.compile(r"gen_ai\.(prompt|completion)\.(\d{1,6})\.(.+)")
_FLAT_FIELDS = frozenset({"role", "content", "tool_call_id", "name", "finish_reason"})
_FLAT_TOOL_CALL = re.compile(r"tool_calls\.(\d{1,6})\.(id|name|arguments)")
_FLAT_FUNCTION = re.compile(r"llm\.request\.functions\.(\d{1,6})\.(name|description|parameters)")

# Span events of one message each: their name says the role.
_MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
_CHOICE_EVENT = "gen_ai.choice"
_DETAILS_EVENT = "gen_ai.client.inference.operation.details"
_OLD_PROMPT_EVENT = ("gen_ai.content.prompt", "gen_ai.prompt")
_OLD_COMPLETION_EVENT = ("gen_ai.content.completion", "gen_ai.completion")
# Every event read for messages (tracking/genai_logs.py joins these, sent as log records).
DETAILS_EVENT = _DETAILS_EVENT
_OLD_EVENTS = (_OLD_PROMPT_EVENT[0], _OLD_COMPLETION_EVENT[0])
MESSAGE_EVENTS = frozenset([*_MESSAGE_EVENTS, _CHOICE_EVENT, _DETAILS_EVENT, *_OLD_EVENTS])
# Event attributes that only repeat the span's: dropped with the event's message.
_EVENT_REPEATS = frozenset({"event.name", "gen_ai.system", "gen_ai.provider.name"})


# --- Span type and token usage ----------------------------------------------------------------


def span_type(attrs: dict[str, Any]) -> str | None:
    """The MLflow span type an OpenInference kind or a GenAI operation names, else None."""
    kind = attrs.get("openinference.span.kind")
    if type(kind) is str and kind.upper() in _OPENINFERENCE_KINDS:
        return kind.upper()
    operation = attrs.get("gen_ai.operation.name")
    if type(operation) is str:
        return OPERATION_TYPES.get(operation)
    return None


def token_usage(attrs: dict[str, Any]) -> dict[str, int] | None:
    """`mlflow.chat.tokenUsage` as sent by MLflow, else from the GenAI conventions; only
    integer counts are kept, because ingest sums `total_tokens` in SQL."""
    sent = attrs.get(TOKEN_USAGE_ATTRIBUTE)
    if isinstance(sent, dict):
        usage = {key: count for key, value in sent.items() if (count := _count(value)) is not None}
        if usage:
            return usage
    for input_key, output_key, total_key in _TOKEN_KEYS:
        input_tokens = _count(attrs.get(input_key))
        output_tokens = _count(attrs.get(output_key))
        total = _count(attrs.get(total_key)) if total_key else None
        if input_tokens is None and output_tokens is None and total is None:
            continue
        if total is None:
            total = (input_tokens or 0) + (output_tokens or 0)
        usage = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": total,
        }
        for name, keys in _CACHE_KEYS:
            usage[name] = next(
                (count for key in keys if (count := _count(attrs.get(key))) is not None), None
            )
        return {key: value for key, value in usage.items() if value is not None}
    return None


def _count(value: Any) -> int | None:
    # Counts arrive as integers, digit strings, or whole doubles from loosely typed SDKs.
    if (type(value) is str and value.isascii() and value.isdigit()) or (
        type(value) is float and value.is_integer()
    ):
        value = int(value)
    if type(value) is int and 0 <= value < _MAX_TOKENS:
        return value
    return None


# --- Inputs and outputs -----------------------------------------------------------------------

MISSING: Any = object()  # "this side is not in the conventions", unlike a logged None


def inputs_outputs(
    attrs: dict[str, Any], events: list[dict[str, Any]], *, inputs: bool, outputs: bool
) -> tuple[Any, Any, list[dict[str, Any]]]:
    """(inputs, outputs, events) from the conventions, for the sides asked for (MLflow's own
    attributes fill the others); a side that none of them holds is MISSING. Moves what it reads
    out of `attrs` and out of the events it answers with."""
    found_in = _openinference(attrs, "input") if inputs else None
    found_out = _openinference(attrs, "output") if outputs else None
    if inputs and found_in is MISSING:
        found_in = _genai_inputs(attrs)
    if outputs and found_out is MISSING:
        found_out = _genai_outputs(attrs)
    want_in = inputs and found_in is MISSING
    want_out = outputs and found_out is MISSING
    if (want_in or want_out) and events:
        from_events, from_events_out, events = _from_events(events, want_in, want_out)
        if want_in and from_events is not MISSING:
            found_in = from_events
        if want_out and from_events_out is not MISSING:
            found_out = from_events_out
    return found_in, found_out, events


def _openinference(attrs: dict[str, Any], side: str) -> Any:
    key = f"{side}.value"
    if key not in attrs:
        return MISSING
    value = attrs.pop(key)
    # OpenInference marks JSON text with its mime type; plain text stays text.
    if attrs.get(f"{side}.mime_type") == "application/json":
        return loads_or_keep(value)
    return value


def _side_messages(attrs: dict[str, Any], key: str, legacy_key: str, flat_prefix: str) -> Any:
    """One side's messages, moved out of `attrs`: the current conventions' attribute, else the
    older `gen_ai.prompt` / `gen_ai.completion`, else OpenLLMetry's flattened attributes."""
    if key in attrs:
        return _moved(attrs, key, chat_messages)
    if legacy_key in attrs:
        return _moved(attrs, legacy_key, _plain_messages)
    return _flat_messages(attrs, flat_prefix)


def _genai_inputs(attrs: dict[str, Any]) -> Any:
    messages = _side_messages(attrs, _INPUT_MESSAGES, "gen_ai.prompt", "prompt")
    if isinstance(messages, _Raw):
        return messages.value  # not messages: kept as it came
    system = (
        _moved(attrs, _SYSTEM_INSTRUCTIONS, system_message)
        if _SYSTEM_INSTRUCTIONS in attrs
        else MISSING
    )
    tools = _tools(attrs)
    if messages is MISSING and system is MISSING and tools is MISSING:
        if "gen_ai.retrieval.query.text" in attrs:
            return {"query": attrs.pop("gen_ai.retrieval.query.text")}
        return _plain(attrs, _PLAIN_INPUTS)
    request: dict[str, Any] = {}
    if messages is not MISSING or system is not MISSING:
        request["messages"] = [
            *([system] if isinstance(system, dict) else []),
            *(messages if isinstance(messages, list) else []),
        ]
        if isinstance(system, _Raw):
            request["system_instructions"] = system.value  # kept beside the messages
    if tools is not MISSING:
        request["tools"] = tools.value if isinstance(tools, _Raw) else tools
    return request


def _genai_outputs(attrs: dict[str, Any]) -> Any:
    messages = _side_messages(attrs, _OUTPUT_MESSAGES, "gen_ai.completion", "completion")
    if isinstance(messages, _Raw):
        return messages.value
    if messages is not MISSING:
        return completion(messages)
    if "gen_ai.retrieval.documents" in attrs:
        docs = _moved(attrs, "gen_ai.retrieval.documents", documents)
        return docs.value if isinstance(docs, _Raw) else docs
    return _plain(attrs, _PLAIN_OUTPUTS)


@dataclass(slots=True)
class _Raw:
    """A value that did not convert: moved as it came, so it is still shown once."""

    value: Any


def _moved(attrs: dict[str, Any], key: str, convert: Any) -> Any:
    """The attribute, removed and converted, or as a _Raw of its parsed (or raw) value."""
    value = loads_or_keep(attrs.pop(key))
    converted = convert(value)
    return _Raw(value) if converted is None else converted


def _plain(attrs: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in attrs:
            return loads_or_keep(attrs.pop(key))  # JSON text in the GenAI conventions
    return MISSING


def _plain_messages(value: Any) -> list[dict[str, Any]] | None:
    # `gen_ai.prompt` / `gen_ai.completion` hold text, or JSON messages in some SDKs.
    return chat_messages(value) if isinstance(value, list) else None


def completion(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Output messages as an OpenAI chat completion: one choice per message."""
    choices = []
    for index, message in enumerate(messages):
        message = dict(message)
        choice: dict[str, Any] = {"index": index}
        finish_reason = message.pop("finish_reason", None)
        choice["message"] = message
        if finish_reason is not None:
            choice["finish_reason"] = finish_reason
        choices.append(choice)
    return {"choices": choices}


# --- Messages of the conventions -> OpenAI chat messages --------------------------------------


def chat_messages(value: Any) -> list[dict[str, Any]] | None:
    """GenAI messages (`{"role", "parts": [...]}`, or already `{"role", "content"}`) as OpenAI
    chat messages; None unless every item is a message."""
    if not isinstance(value, list) or not value:
        return None
    out: list[dict[str, Any]] = []
    for item in value:
        if not isinstance(item, dict) or type(item.get("role")) is not str:
            return None
        parts = item.get("parts")
        if isinstance(parts, list):
            out.extend(_from_parts(item, parts))
        else:
            out.append(_openai_message(item))
    return out


def _from_parts(item: dict[str, Any], parts: list[Any]) -> list[dict[str, Any]]:
    content: list[Any] = []
    tool_calls = []
    responses = []
    for part in parts:
        kind = part.get("type") if isinstance(part, dict) else None
        if isinstance(part, str):
            content.append({"type": "text", "text": part})
        elif kind == "text":
            content.append({"type": "text", "text": _text(part.get("content"))})
        elif kind in ("reasoning", "thinking"):
            # Typed, so views can fold the thinking away from the answer.
            content.append({"type": "reasoning", "text": _text(part.get("content"))})
        elif kind == "tool_call":
            tool_calls.append(_tool_call(part.get("id"), part.get("name"), part.get("arguments")))
        elif kind == "tool_call_response":
            responses.append(
                {
                    "role": "tool",
                    "tool_call_id": _text(part.get("id")),
                    "content": _as_text(part.get("response")),
                }
            )
        elif part is not None:
            content.append(part)  # blobs, files, URIs, server tool calls: kept as sent
    message: dict[str, Any] = {"role": item["role"]}
    if item.get("name"):
        message["name"] = item["name"]
    if content or (not tool_calls and not responses):
        message["content"] = _content(content)
    if tool_calls:
        message["tool_calls"] = tool_calls
    if item.get("finish_reason") is not None:
        message["finish_reason"] = item["finish_reason"]
    # A tool message is only its results; a user message may carry results beside its text.
    keep = "content" in message or tool_calls or not responses
    return [*([message] if keep else []), *responses]


def _openai_message(item: dict[str, Any]) -> dict[str, Any]:
    message = dict(item)
    calls = message.get("tool_calls")
    if isinstance(calls, str):
        calls = loads_or_keep(calls)
    if isinstance(calls, list):
        message["tool_calls"] = [_any_tool_call(call) for call in calls]
    if "content" in message:
        message["content"] = _decoded_content(message["content"])
    return message


def _any_tool_call(call: Any) -> Any:
    """A tool call in the OpenAI shape, from it or from the flat `{"id", "name", "arguments"}`."""
    if not isinstance(call, dict):
        return call
    function = call.get("function") if isinstance(call.get("function"), dict) else call
    return _tool_call(call.get("id"), function.get("name"), function.get("arguments"))


def _tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    return {
        "id": _text(call_id),
        "type": "function",
        # The OpenAI API sends arguments as JSON text; the conventions as an object.
        "function": {"name": _text(name), "arguments": _as_text(arguments)},
    }


def _content(parts: list[Any]) -> Any:
    if len(parts) == 1 and isinstance(parts[0], dict) and parts[0].get("type") == "text":
        return parts[0]["text"]
    return parts


def _decoded_content(content: Any) -> Any:
    """Event and flat attributes carry structured content as JSON text; only a list or an
    object is decoded, so a message that says `42` stays the text "42"."""
    if isinstance(content, str) and content[:1] in ("[", "{"):
        value = loads_or_keep(content)
        if isinstance(value, list | dict):
            return value
    return content


def system_message(value: Any) -> dict[str, Any] | None:
    """`gen_ai.system_instructions` (parts, or text) as the system message."""
    if isinstance(value, str):
        return {"role": "system", "content": value}
    if isinstance(value, list) and value:
        return _from_parts({"role": "system"}, value)[0]
    return None


def _tools(attrs: dict[str, Any]) -> Any:
    if _TOOL_DEFINITIONS in attrs:
        return _moved(attrs, _TOOL_DEFINITIONS, tool_definitions)
    functions: dict[int, dict[str, Any]] = {}
    for key in [k for k in attrs if k.startswith("llm.request.functions.")]:
        if match := _FLAT_FUNCTION.fullmatch(key):
            functions.setdefault(int(match.group(1)), {})[match.group(2)] = attrs.pop(key)
    if not functions:
        return MISSING
    for function in functions.values():
        if "parameters" in function:
            function["parameters"] = loads_or_keep(function["parameters"])
    return [{"type": "function", "function": functions[i]} for i in sorted(functions)]


def tool_definitions(value: Any) -> list[Any] | None:
    """`gen_ai.tool.definitions` as the `tools` of an OpenAI request."""
    if not isinstance(value, list):
        return None
    tools = []
    for tool in value:
        if isinstance(tool, dict) and "function" not in tool and "name" in tool:
            function = {k: v for k, v in tool.items() if k != "type"}
            tool = {"type": tool.get("type") or "function", "function": function}
        tools.append(tool)
    return tools


def documents(value: Any) -> list[Any] | None:
    """`gen_ai.retrieval.documents` as MLflow's retriever documents (`page_content`,
    `metadata` with the score, `id`)."""
    if not isinstance(value, list):
        return None
    out = []
    for doc in value:
        if not isinstance(doc, dict):
            return None
        rest = {k: v for k, v in doc.items() if k not in ("content", "id")}
        out.append(
            {"page_content": _as_text(doc.get("content")), "metadata": rest, "id": doc.get("id")}
        )
    return out


def _flat_messages(attrs: dict[str, Any], which: str) -> Any:
    """OpenLLMetry's flattened `gen_ai.prompt.0.role` / `.content` / `.tool_calls.0.name`
    attributes as chat messages; MISSING when there are none. Unknown fields stay."""
    prefix = f"gen_ai.{which}."
    keys = [k for k in attrs if k.startswith(prefix)]
    messages: dict[int, dict[str, Any]] = {}
    calls: dict[tuple[int, int], dict[str, Any]] = {}
    for key in keys:
        match = _FLAT_MESSAGE.fullmatch(key)
        if not match or match.group(1) != which:
            continue
        index, field = int(match.group(2)), match.group(3)
        if field in _FLAT_FIELDS:
            messages.setdefault(index, {})[field] = attrs.pop(key)
        elif call := _FLAT_TOOL_CALL.fullmatch(field):
            calls.setdefault((index, int(call.group(1))), {})[call.group(2)] = attrs.pop(key)
            messages.setdefault(index, {})
    if not messages:
        return MISSING
    for (index, _), call in sorted(calls.items()):
        messages[index].setdefault("tool_calls", []).append(call)
    return [
        _openai_message({"role": "assistant" if which == "completion" else "user", **messages[i]})
        for i in sorted(messages)
    ]


# --- Span events ------------------------------------------------------------------------------


def _from_events(
    events: list[dict[str, Any]], want_in: bool, want_out: bool
) -> tuple[Any, Any, list[dict[str, Any]]]:
    """Input messages and a completion from the per-message events (in event order), and
    the events left. An event loses only the attributes whose value was used: one that holds
    more keeps the rest, and one that was read but not used (a second plain prompt, a details
    event beside message events) stays as it came, so nothing sent is lost."""
    readings = [_read_event(event, want_in, want_out) for event in events]
    found_in, in_messages = _chosen([r for rs in readings for r in rs if r.side == "in"])
    found_out, out_messages = _chosen([r for rs in readings for r in rs if r.side == "out"])
    if in_messages:
        found_in = {"messages": found_in}
    if out_messages:
        found_out = completion(found_out)
    kept = []
    for event, event_readings in zip(events, readings, strict=True):
        used = set().union(*(r.keys for r in event_readings if r.used))
        if not used:
            kept.append(event)
        elif left := _left_attributes(event, used):
            kept.append({**event, "attributes": left})
    return found_in, found_out, kept


@dataclass(slots=True)
class _Reading:
    """What one event says for one side: messages (joined with other events' messages) or a
    whole value (the first one wins), and the event attributes it was read from."""

    side: str
    value: Any
    is_messages: bool
    keys: frozenset[str]
    used: bool = False


def _chosen(readings: list[_Reading]) -> tuple[Any, bool]:
    """(the messages of every event that has them, True), else (the first whole value, False),
    else (MISSING, False). Marks the readings it uses."""
    chosen = [r for r in readings if r.is_messages] or readings[:1]
    for reading in chosen:
        reading.used = True
    if not chosen:
        return MISSING, False
    if chosen[0].is_messages:
        return [message for reading in chosen for message in reading.value], True
    return chosen[0].value, False


def _read_event(event: dict[str, Any], want_in: bool, want_out: bool) -> list[_Reading]:
    name = event.get("name")
    if not isinstance(name, str):  # an event stored through the MLflow paths may hold anything
        return []
    fields = _event_fields(event)
    read: set[str] = set()
    if want_in and name in _MESSAGE_EVENTS:
        message = _event_message(fields, _MESSAGE_EVENTS[name], read)
        return [] if message is None else [_Reading("in", [message], True, frozenset(read))]
    if want_out and name == _CHOICE_EVENT:
        message = _choice_message(fields, read)
        return [] if message is None else [_Reading("out", [message], True, frozenset(read))]
    if name in (_OLD_PROMPT_EVENT[0], _OLD_COMPLETION_EVENT[0]):
        is_prompt = name == _OLD_PROMPT_EVENT[0]
        key = _OLD_PROMPT_EVENT[1] if is_prompt else _OLD_COMPLETION_EVENT[1]
        if not (want_in if is_prompt else want_out) or key not in fields:
            return []
        value = loads_or_keep(fields[key])
        messages = chat_messages(value)
        side = "in" if is_prompt else "out"
        if messages is None:
            return [_Reading(side, value, False, frozenset({key}))]
        return [_Reading(side, messages, True, frozenset({key}))]
    if name == _DETAILS_EVENT:
        readings = []
        for side, wanted, read_side in (
            ("in", want_in, _genai_inputs),
            ("out", want_out, _genai_outputs),
        ):
            rest = dict(fields)
            found = read_side(rest) if wanted else MISSING
            if found is not MISSING:
                readings.append(_Reading(side, found, False, frozenset(fields.keys() - rest)))
        return readings
    return []


def _left_attributes(event: dict[str, Any], used: set[str]) -> dict[str, Any]:
    """The event's attributes but those used and those repeating the span's. A log record's
    body goes only when every field of it was used (and not hidden by an attribute)."""
    attributes = event.get("attributes")
    if not isinstance(attributes, dict):
        return {}
    body = loads_or_keep(attributes.get("body"))
    body_used = (
        isinstance(body, dict)
        and bool(body)
        and all(key in used and key not in attributes for key in body)
    )
    return {
        key: value
        for key, value in attributes.items()
        if key not in used and key not in _EVENT_REPEATS and not (key == "body" and body_used)
    }


def _event_fields(event: dict[str, Any]) -> dict[str, Any]:
    attributes = event.get("attributes")
    fields = dict(attributes) if isinstance(attributes, dict) else {}
    # A log record's body, where a bridge copied one onto the span event.
    body = loads_or_keep(fields.get("body"))
    if isinstance(body, dict):
        fields = {**body, **fields}
    return fields


def _event_message(fields: dict[str, Any], role: str, read: set[str]) -> dict[str, Any] | None:
    """One message event as a chat message, adding the fields it used to `read`; None when it
    holds nothing to show (content capture off sends the event without its content)."""
    used = set()
    message: dict[str, Any] = {"role": role}
    if type(fields.get("role")) is str:
        message["role"] = fields["role"]
        used.add("role")
    if fields.get("content") is not None:
        message["content"] = _decoded_content(fields["content"])
        used.add("content")
    calls = loads_or_keep(fields.get("tool_calls"))
    if isinstance(calls, list) and calls:
        message["tool_calls"] = [_any_tool_call(call) for call in calls]
        used.add("tool_calls")
    id_key = "tool_call_id" if "tool_call_id" in fields else "id"
    if message["role"] == "tool" and fields.get(id_key):
        message["tool_call_id"] = _text(fields[id_key])
        used.add(id_key)
    if len(message) == 1:
        return None
    read.update(used)
    return message


def _choice_message(fields: dict[str, Any], read: set[str]) -> dict[str, Any] | None:
    raw = loads_or_keep(fields.get("message"))
    used: set[str] = set()
    if isinstance(raw, dict):
        inner: set[str] = set()
        message = _event_message(raw, "assistant", inner)
        if message is None:
            return None
        # The rest of a JSON message (name, refusal, annotations...) stays on the message,
        # as with messages from attributes; the event's own fields stay on the event.
        message.update({k: v for k, v in raw.items() if k not in inner and k not in message})
        used.add("message")
    else:
        message = _event_message(fields, "assistant", used)
        if message is None:
            return None
    if fields.get("finish_reason") is not None:
        message["finish_reason"] = fields["finish_reason"]
        used.add("finish_reason")
    if "index" in fields:
        used.add("index")  # the choice's place, which the completion gives again
    read.update(used)
    return message


# --- Values -----------------------------------------------------------------------------------


def loads_or_keep(value: Any) -> Any:
    """JSON text parsed; anything else, and text that is not JSON, as it is."""
    if type(value) is not str:
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _as_text(value: Any) -> str:
    """Text as is, anything else as compact JSON (tool arguments and results)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    try:
        return orjson.dumps(value, default=str).decode()
    except orjson.JSONEncodeError:
        # Nesting past orjson's 255 levels (it reads 1024) or integers past 64 bits: a
        # client's tool arguments must not fail the whole export.
        return json_limits.text_of(value)
