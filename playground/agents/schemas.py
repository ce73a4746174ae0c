"""The answer shapes agents speak, told apart by what the answer holds:

- chat completions (OpenAI, MLflow ChatModel): `choices[0].message`, chunks with `delta`;
- ChatAgent (MLflow 3): `messages` (assistant turns) and `custom_outputs`;
- ResponsesAgent (MLflow 3): `output` items of type "message" with `output_text` parts.
"""

from __future__ import annotations

from typing import Any

from playground.agents.base import AgentError, Answer, Json, answer_from_usage
from tracking import chat

CHAT_COMPLETIONS = "chat-completions"
CHAT_AGENT = "chat-agent"
RESPONSES = "responses"


def parse_answer(data: Any) -> Answer:
    """An Answer from a whole (non-streamed) response in any of the three shapes."""
    if isinstance(data, dict) and "predictions" in data and len(data) == 1:
        # pyfunc serving wraps what is not a chat model's answer.
        data = data["predictions"]
        if isinstance(data, list) and len(data) == 1:
            data = data[0]
    if not isinstance(data, dict):
        raise AgentError(f"The agent's answer is not a JSON object: {_excerpt(data)}")
    custom_outputs = _custom_outputs(data)
    if "choices" in data:
        content, schema = _choice_content(data), CHAT_COMPLETIONS
    elif "messages" in data:
        content, schema = _chat_agent_content(data), CHAT_AGENT
    elif "output" in data:
        content, schema = _responses_content(data), RESPONSES
    else:
        raise AgentError(
            "The agent's answer has none of choices (chat completions), messages (ChatAgent) "
            f"or output (ResponsesAgent): {_excerpt(data)}"
        )
    return answer_from_usage(content, data.get("usage"), custom_outputs=custom_outputs,
                             schema=schema)  # fmt: skip


def chunk_text(chunk: Json) -> str:
    """The text of one streamed chunk, in any of the three shapes ("" when it has none)."""
    choices = chunk.get("choices")
    if isinstance(choices, list):
        if not choices:
            return ""  # the usage-only last chunk of OpenAI streams
        delta = choices[0].get("delta") if isinstance(choices[0], dict) else None
        if not isinstance(delta, dict):
            raise AgentError(f"A streamed chunk has no choices[0].delta: {_excerpt(chunk)}")
        content = delta.get("content") or ""
        if not isinstance(content, str):
            raise AgentError(f"A streamed chunk's content is not text: {_excerpt(chunk)}")
        return content
    delta = chunk.get("delta")
    if isinstance(delta, dict):  # ChatAgentChunk
        content = delta.get("content")
        return content if isinstance(content, str) else ""
    if chunk.get("type") == "response.output_text.delta":  # ResponsesAgent stream event
        text = chunk.get("delta")
        return text if isinstance(text, str) else ""
    return ""


def _custom_outputs(data: Json) -> Json | None:
    value = data.get("custom_outputs")
    return value if isinstance(value, dict) else None


def _choice_content(data: Json) -> str:
    choices = data.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(message, dict):
        raise AgentError(f"The agent's answer has no choices[0].message: {_excerpt(data)}")
    return chat.content_text(message.get("content"))


def _chat_agent_content(data: Json) -> str:
    messages = data.get("messages")
    if not isinstance(messages, list):
        raise AgentError(f"The agent's messages are not a list: {_excerpt(messages)}")
    return _assistant_text(chat.read(messages))


def _responses_content(data: Json) -> str:
    output = data.get("output")
    if not isinstance(output, list):
        raise AgentError(f"The agent's output is not a list of items: {_excerpt(output)}")
    # Function calls (assistant turns with no text) and their outputs are not the answer's text.
    return _assistant_text(chat.read(output))


def _assistant_text(messages: list[chat.Message]) -> str:
    return "\n\n".join(m.content for m in messages if m.role == "assistant" and m.content)


def _excerpt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."
