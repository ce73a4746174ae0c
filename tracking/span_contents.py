"""What a span's inputs and outputs hold, read by its type: a retriever's documents, a tool
call, an embedding's vectors. The span details panel and the trace's conversation show these
instead of the raw JSON tree. Pure functions; nothing here renders (templates escape).

The shapes read are the ones MLflow and the common instrumentations log:

- RETRIEVER outputs: a list of MLflow `Document`s (`page_content`, `metadata` with `doc_uri`
  and often `score`, `id`), LangChain's (same keys), LlamaIndex nodes-with-score flattened to
  `content`/`text` and `score`, or any of these under `documents`/`docs`.
- TOOL: the call's arguments are the span's inputs, its result the outputs (MLflow records a
  tool function's keyword arguments and return value); the tool's name is the span's, unless
  the OpenTelemetry GenAI `gen_ai.tool.name` attribute names it.
- EMBEDDING outputs: a list of vectors, one vector, OpenAI's `{"data": [{"embedding": ...}]}`
  or `{"embeddings": [...]}`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# Caps, so that a retriever returning 500 long documents or a tool returning megabytes keeps
# the panel quick; each cut says what it left out and the raw JSON link has the rest.
MAX_DOCUMENTS = 50
MAX_DOCUMENT_CHARS = 2_000
MAX_CALL_CHARS = 20_000
_DOCUMENT_KEYS = ("page_content", "content", "text", "document")
_URI_KEYS = ("doc_uri", "uri", "URI", "url", "source")


@dataclass
class Capped:
    """A text cut at its cap: `text` and how many characters were left out."""

    text: str
    omitted: int = 0


@dataclass
class Document:
    content: Capped
    score: float | None = None
    uri: str = ""
    doc_id: str = ""
    # Other metadata, as (key, compact JSON) pairs.
    metadata: list[tuple[str, str]] = field(default_factory=list)

    @property
    def uri_is_link(self) -> bool:
        """Only http(s) URIs become links; anything else (javascript:, file paths) is text."""
        return urlsplit(self.uri).scheme.lower() in ("http", "https")


@dataclass
class Documents:
    documents: list[Document]
    omitted: int = 0


@dataclass
class ToolCall:
    name: str
    arguments: Capped
    result: Capped
    has_result: bool
    call_id: str = ""


@dataclass
class Vectors:
    count: int
    dimensions: int  # of the first vector; 0 when they differ in length
    mixed: bool = False


def cap(text: str, limit: int) -> Capped:
    if len(text) <= limit:
        return Capped(text)
    return Capped(text[:limit], len(text) - limit)


def pretty(value: Any) -> str:
    """A value as a person reads it: a string as is (indented when it holds JSON: tool
    arguments usually arrive as a JSON string), anything else as indented JSON."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("{", "["):
            try:
                return _json(json.loads(stripped))
            except ValueError:
                pass
        return value
    return "" if value is None else _json(value)


def documents(outputs: Any) -> Documents | None:
    """A retriever's documents, or None when its outputs are not a list of documents."""
    items = outputs
    if isinstance(outputs, dict):
        items = next((outputs[k] for k in ("documents", "docs", "results") if k in outputs), None)
    if not isinstance(items, list) or not items:
        return None
    if not all(isinstance(d, dict) and any(k in d for k in _DOCUMENT_KEYS) for d in items):
        return None
    found = [_document(d) for d in items[:MAX_DOCUMENTS]]
    return Documents(found, omitted=max(0, len(items) - MAX_DOCUMENTS))


def _document(raw: dict) -> Document:
    content = next((raw[k] for k in _DOCUMENT_KEYS if k in raw), "")
    metadata = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    score = _number(raw.get("score", metadata.get("score", metadata.get("relevance_score"))))
    uri = next((v for k in _URI_KEYS for v in (metadata.get(k), raw.get(k)) if v), "")
    shown = {"score", "relevance_score", *_URI_KEYS}
    return Document(
        content=cap(content if isinstance(content, str) else pretty(content), MAX_DOCUMENT_CHARS),
        score=score,
        uri=uri if isinstance(uri, str) else pretty(uri),
        doc_id=_text(raw.get("id", metadata.get("id", ""))),
        metadata=[(str(k), _compact(v)[:200]) for k, v in metadata.items() if k not in shown][:20],
    )


def tool_call(name: str, inputs: Any, outputs: Any, attributes: Any) -> ToolCall:
    """A TOOL span as a call: its name, arguments and result, each capped."""
    attributes = attributes if isinstance(attributes, dict) else {}
    tool_name = attributes.get("gen_ai.tool.name")
    if inputs is None:
        inputs = attributes.get("gen_ai.tool.call.arguments")
    if outputs is None:
        outputs = attributes.get("gen_ai.tool.call.result")
    return ToolCall(
        name=tool_name if isinstance(tool_name, str) and tool_name else name,
        arguments=cap(pretty(inputs), MAX_CALL_CHARS),
        result=cap(pretty(outputs), MAX_CALL_CHARS),
        has_result=outputs is not None,
        call_id=_text(attributes.get("gen_ai.tool.call.id", "")),
    )


def vectors(outputs: Any) -> Vectors | None:
    """How many vectors an embedding span returned and their length; None for anything else."""
    found = outputs
    if isinstance(outputs, dict):
        if isinstance(outputs.get("data"), list):  # OpenAI's embeddings response
            found = [d.get("embedding") if isinstance(d, dict) else d for d in outputs["data"]]
        else:
            found = outputs.get("embeddings", outputs.get("embedding"))
    if _is_vector(found):
        return Vectors(1, len(found))
    if not isinstance(found, list) or not found or not all(_is_vector(v) for v in found):
        return None
    lengths = {len(v) for v in found}
    mixed = len(lengths) > 1
    return Vectors(len(found), 0 if mixed else len(found[0]), mixed=mixed)


def _is_vector(value: Any) -> bool:
    # The first and last entries tell a vector from a list of scores cheaply enough; a
    # 1,536-number list is not walked for every embedding span opened.
    return (
        isinstance(value, list) and bool(value) and all(_is_float(v) for v in (value[0], value[-1]))
    )


def _is_float(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: Any) -> float | None:
    if _is_float(value) and math.isfinite(value):
        return float(value)
    return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else _compact(value))


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
