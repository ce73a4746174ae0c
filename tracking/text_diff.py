"""Line- and word-level diffs of two texts, and of two spans' inputs or outputs.

The result is structured (segments: equal, deleted, inserted text, and skipped unchanged
lines) so that a template renders it escaped; nothing here makes markup. Chat messages
(read by tracking/chat.py) are diffed message by message; any other value as indented JSON
with sorted keys, so that key order alone is no difference.

Caps keep one details panel quick: texts over WORD_LIMIT are diffed by line only, texts over
DIFF_LIMIT not at all (both are shown, cut, with a notice), and a changed block of lines is
diffed word by word only up to MAX_WORDS words.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any

from tracking import chat

EQUAL, DELETE, INSERT, SKIP = "equal", "delete", "insert", "skip"
WORD_LIMIT = 200_000  # characters of both texts together
DIFF_LIMIT = 2_000_000
SHOWN_WHEN_TOO_LARGE = 20_000  # characters of each side shown when not diffed
MAX_WORDS = 3_000  # per side of one changed block
CONTEXT = 3  # unchanged lines kept around a change
# Below this share of common words, a changed block reads better as lines out and lines in.
MIN_WORD_SIMILARITY = 0.3
_WORDS = re.compile(r"\w+|\s+|[^\w\s]+")


@dataclass
class Segment:
    op: str  # EQUAL, DELETE, INSERT or SKIP
    text: str = ""
    lines: int = 0  # SKIP: how many unchanged lines are left out
    block: bool = False  # whole lines (a line-level change) rather than words inside a line


@dataclass
class TextDiff:
    segments: list[Segment]
    changed: bool
    notice: str = ""


@dataclass
class MessageDiff:
    kind: str  # "same", "changed", "added" (only in B), "removed" (only in A)
    role: str  # B's role, or A's when removed
    role_a: str
    diff: TextDiff


@dataclass
class ValueDiff:
    """A span field's diff: chat messages one by one, or else a text diff of its JSON."""

    changed: bool
    messages: list[MessageDiff] = field(default_factory=list)
    text: TextDiff | None = None


def diff_text(a: str, b: str, context: int = CONTEXT) -> TextDiff:
    if a == b:
        return TextDiff([Segment(EQUAL, a)] if a else [], changed=False)
    size = len(a) + len(b)
    if size > DIFF_LIMIT:
        cut = SHOWN_WHEN_TOO_LARGE
        return TextDiff(
            [Segment(DELETE, a[:cut], block=True), Segment(INSERT, b[:cut], block=True)],
            changed=True,
            notice=f"Too large to diff ({size:,} characters): the start of each side is shown.",
        )
    words = size <= WORD_LIMIT
    notice = "" if words else f"Large texts ({size:,} characters) are diffed by line only."
    a_lines, b_lines = a.splitlines(keepends=True), b.splitlines(keepends=True)
    segments: list[Segment] = []
    opcodes = SequenceMatcher(None, a_lines, b_lines).get_opcodes()
    for n, (tag, i1, i2, j1, j2) in enumerate(opcodes):
        if tag == EQUAL:
            first, last = n == 0, n == len(opcodes) - 1
            segments += _unchanged(a_lines[i1:i2], context, first, last)
            continue
        old, new = "".join(a_lines[i1:i2]), "".join(b_lines[j1:j2])
        if tag == "replace" and words:
            inline = _words(old, new)
            if inline is not None:
                segments += inline
                continue
        if old:
            segments.append(Segment(DELETE, old, block=True))
        if new:
            segments.append(Segment(INSERT, new, block=True))
    return TextDiff(_merged(segments), changed=True, notice=notice)


def _unchanged(lines: list[str], context: int, first: bool, last: bool) -> list[Segment]:
    """Unchanged lines, with all but `context` lines next to a change left out."""
    keep_head = 0 if first else context
    keep_tail = 0 if last else context
    if len(lines) <= keep_head + keep_tail + 1:
        return [Segment(EQUAL, "".join(lines))]
    out = []
    if keep_head:
        out.append(Segment(EQUAL, "".join(lines[:keep_head])))
    out.append(Segment(SKIP, lines=len(lines) - keep_head - keep_tail))
    if keep_tail:
        out.append(Segment(EQUAL, "".join(lines[-keep_tail:])))
    return out


def _words(old: str, new: str) -> list[Segment] | None:
    """A changed block word by word, or None when that would not read better."""
    a, b = _WORDS.findall(old), _WORDS.findall(new)
    if len(a) > MAX_WORDS or len(b) > MAX_WORDS:
        return None
    opcodes = SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    # Similarity of the words alone: shared spaces between different words are no likeness.
    shared = sum(
        not a[i].isspace() for tag, i1, i2, _, _ in opcodes if tag == EQUAL for i in range(i1, i2)
    )
    words = sum(not t.isspace() for t in a) + sum(not t.isspace() for t in b)
    if words and 2 * shared / words < MIN_WORD_SIMILARITY:
        return None
    out = []
    for tag, i1, i2, j1, j2 in opcodes:
        if tag == EQUAL:
            out.append(Segment(EQUAL, "".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(Segment(DELETE, "".join(a[i1:i2])))
        if j2 > j1:
            out.append(Segment(INSERT, "".join(b[j1:j2])))
    return out


def _merged(segments: list[Segment]) -> list[Segment]:
    out: list[Segment] = []
    for s in segments:
        if not s.text and s.op != SKIP:
            continue
        last = out[-1] if out else None
        if last and last.op == s.op != SKIP and last.block == s.block:
            last.text += s.text
        else:
            out.append(s)
    return out


# --- Span values ----------------------------------------------------------------------------


def value_text(value: Any) -> str:
    """A span value as a person diffs it: a string as is, anything else as indented JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def diff_value(a: Any, b: Any, side: str) -> ValueDiff:
    """Two spans' `side` ("inputs" or "outputs"): message by message when both hold chat
    messages, else their text."""
    a_messages, b_messages = _messages(a, side), _messages(b, side)
    if a_messages and b_messages:
        pairs = diff_messages(a_messages, b_messages)
        return ValueDiff(changed=any(p.kind != "same" for p in pairs), messages=pairs)
    text = diff_text(value_text(a), value_text(b))
    return ValueDiff(changed=text.changed, text=text)


def _messages(value: Any, side: str) -> list[chat.Message]:
    found = chat.conversation(value, None) if side == "inputs" else chat.conversation(None, value)
    return found.messages if found else []


def message_text(message: chat.Message) -> str:
    """What a message says, its tool calls included, as one text to diff."""
    parts = [message.content] if message.content else []
    if message.name:
        parts.insert(0, f"[name] {message.name}")
    if message.tool_call_id:
        parts.insert(0, f"[result of tool call {message.tool_call_id}]")
    for call in message.tool_calls:
        parts.append(f"[tool call] {call.name}\n{call.arguments}")
    return "\n".join(parts)


def diff_messages(a: list[chat.Message], b: list[chat.Message]) -> list[MessageDiff]:
    """Messages aligned by (role, text): a message B added or dropped does not shift the rest;
    changed ones are paired in order within a changed run and diffed as text."""
    a_keys = [(m.role, message_text(m)) for m in a]
    b_keys = [(m.role, message_text(m)) for m in b]
    out: list[MessageDiff] = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, a_keys, b_keys, autojunk=False).get_opcodes():
        if tag == EQUAL:
            for role, text in b_keys[j1:j2]:
                out.append(MessageDiff("same", role, role, diff_text(text, text)))
            continue
        olds, news = a_keys[i1:i2], b_keys[j1:j2]
        for k in range(max(len(olds), len(news))):
            old = olds[k] if k < len(olds) else None
            new = news[k] if k < len(news) else None
            if old and new:
                diff = diff_text(old[1], new[1])
                out.append(MessageDiff("changed", new[0], old[0], diff))
            elif old:
                out.append(MessageDiff("removed", old[0], old[0], diff_text(old[1], "")))
            elif new:
                out.append(MessageDiff("added", new[0], "", diff_text("", new[1])))
    return out
