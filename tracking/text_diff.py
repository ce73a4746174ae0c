"""Line- and word-level diffs of two texts, and of two spans' inputs or outputs.

The result is structured (segments: equal, deleted, inserted text, and skipped unchanged
lines) so that a template renders it escaped; nothing here makes markup. Chat messages
(read by tracking/chat.py) are diffed message by message; any other value as indented JSON
with sorted keys, so that key order alone is no difference.

One details panel does bounded work whatever the input (a `Budget` per request):
- texts over WORD_LIMIT are diffed by line only, texts over DIFF_LIMIT not at all (the start
  of both is shown, with a notice);
- difflib's matcher is charged for the line (or word) pairs it looks at; when a request's
  LINE_WORK is spent, the differing middle of a text is shown (cut) without a diff, and when
  its WORD_WORK is spent, changed lines are shown whole rather than word by word (a notice
  says which);
- unchanged text is folded to CONTEXT lines around each change ("N unchanged lines"), an
  equal text to its first EQUAL_LINES lines, and a request shows at most SHOWN_LIMIT
  characters in all.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence
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
EQUAL_LINES = 20  # lines of an unchanged text shown before the rest is folded
# Work units of one request: one pair of equal lines (or words) difflib's matcher looks at,
# SCAN_COST for each line (word) it scans; ~5-10 M units a second in CPython, so each pool is
# ~100 ms (measured on the review's worst cases: repeated JSON lines, shuffled words).
SCAN_COST = 3
LINE_WORK = 400_000
WORD_WORK = 1_000_000
SHOWN_LIMIT = 300_000  # characters of text one panel shows, both sides and all messages
# Below this share of common words, a changed block reads better as lines out and lines in.
MIN_WORD_SIMILARITY = 0.3
# Words with the whitespace after them: a lone space is no token, so the matcher is not
# handed thousands of equal spaces to pair (autojunk is off for words).
_WORDS = re.compile(r"\w+\s*|[^\w\s]+\s*|\s+")
NOTICE_NO_DIFF = (
    "Too many differences to diff in time: the start of each side's differing part is shown."
)
NOTICE_LINES = "Some changed lines are shown whole, not word by word (too many to compare in time)."


class OverBudget(Exception):
    """A request's work units of one kind are spent."""


@dataclass
class Budget:
    """What one details panel may still spend: matcher work on lines and on words, and
    characters shown. Shared by every text diff of the request."""

    lines: int = LINE_WORK
    words: int = WORD_WORK
    shown: int = SHOWN_LIMIT

    def spend(self, pool: str, units: int) -> None:
        left = getattr(self, pool) - units
        setattr(self, pool, left)
        if left < 0:
            raise OverBudget(pool)


class _BoundedMatcher(SequenceMatcher):
    """difflib's matcher, charged before each longest-match search for the pairs it may look
    at: for each element of A's range, all of B's positions of that element (difflib walks
    them from the start), plus SCAN_COST for the element itself."""

    def __init__(self, budget: Budget, pool: str, a: list[str], b: list[str], **kwargs: Any):
        self.budget, self.pool = budget, pool
        super().__init__(None, a, b, **kwargs)
        b2j = self.b2j
        self.cost = [0, *itertools.accumulate(len(b2j.get(x, ())) + SCAN_COST for x in a)]

    def find_longest_match(
        self, alo: int = 0, ahi: int | None = None, blo: int = 0, bhi: int | None = None
    ) -> Any:
        ahi = len(self.a) if ahi is None else ahi
        self.budget.spend(self.pool, self.cost[ahi] - self.cost[alo])
        return super().find_longest_match(alo, ahi, blo, bhi)


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
    """A span field's diff: chat messages one by one, or else a text diff of its JSON. A chat
    longer than chat.MAX_MESSAGES has both: the messages past it are compared as one text."""

    changed: bool
    messages: list[MessageDiff] = field(default_factory=list)
    text: TextDiff | None = None


def diff_text(a: str, b: str, context: int = CONTEXT, budget: Budget | None = None) -> TextDiff:
    budget = budget or Budget()
    if a == b:
        lines = a.splitlines(keepends=True)
        if len(lines) <= EQUAL_LINES + 1:
            return _shown(TextDiff([Segment(EQUAL, a)] if a else [], changed=False), budget)
        segments = [Segment(EQUAL, "".join(lines[:EQUAL_LINES]))]
        segments.append(Segment(SKIP, lines=len(lines) - EQUAL_LINES))
        return _shown(TextDiff(segments, changed=False), budget)
    size = len(a) + len(b)
    if size > DIFF_LIMIT:
        cut = SHOWN_WHEN_TOO_LARGE
        return _shown(
            TextDiff(
                [Segment(DELETE, a[:cut], block=True), Segment(INSERT, b[:cut], block=True)],
                changed=True,
                notice=f"Too large to diff ({size:,} characters): the start of each side is shown.",
            ),
            budget,
        )
    words = size <= WORD_LIMIT
    notices = [] if words else [f"Large texts ({size:,} characters) are diffed by line only."]
    a_lines, b_lines = a.splitlines(keepends=True), b.splitlines(keepends=True)
    opcodes, whole = _line_opcodes(a_lines, b_lines, budget)
    if whole:
        notices.append(NOTICE_NO_DIFF)
    segments: list[Segment] = []
    for n, (tag, i1, i2, j1, j2) in enumerate(opcodes):
        if tag == EQUAL:
            first, last = n == 0, n == len(opcodes) - 1
            segments += _unchanged(a_lines[i1:i2], context, first, last)
            continue
        old, new = "".join(a_lines[i1:i2]), "".join(b_lines[j1:j2])
        if whole:  # the start of each side's differing part, both in view
            old, new = old[:SHOWN_WHEN_TOO_LARGE], new[:SHOWN_WHEN_TOO_LARGE]
        elif tag == "replace" and words:
            try:
                inline = _words(old, new, budget)
            except OverBudget:
                inline = None
                if NOTICE_LINES not in notices:
                    notices.append(NOTICE_LINES)
            if inline is not None:
                segments += inline
                continue
        if old:
            segments.append(Segment(DELETE, old, block=True))
        if new:
            segments.append(Segment(INSERT, new, block=True))
    return _shown(TextDiff(_merged(segments), changed=True, notice=" ".join(notices)), budget)


def common_ends(a: Sequence[Any], b: Sequence[Any]) -> tuple[int, int]:
    """How many items two sequences share at their start, and then at their end (the end's
    never overlapping the start's): what a diff need not search."""
    n, m = len(a), len(b)
    head = 0
    while head < n and head < m and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < n - head and tail < m - head and a[n - 1 - tail] == b[m - 1 - tail]:
        tail += 1
    return head, tail


def _line_opcodes(
    a: list[str], b: list[str], budget: Budget
) -> tuple[list[tuple[str, int, int, int, int]], bool]:
    """difflib's opcodes of two line lists, and whether the budget ran out (then the lines
    between the common head and tail are one replaced block). The common head and tail are
    cut off first: they cost one comparison a line instead of a matcher's search."""
    n, m = len(a), len(b)
    head, tail = common_ends(a, b)
    mid_a, mid_b = a[head : n - tail], b[head : m - tail]
    whole = False
    try:
        if budget.lines <= 0 and mid_a and mid_b:
            raise OverBudget("lines")
        middle = _BoundedMatcher(budget, "lines", mid_a, mid_b).get_opcodes()
    except OverBudget:
        middle, whole = [("replace", 0, len(mid_a), 0, len(mid_b))], True
    opcodes = [(EQUAL, 0, head, 0, head)] if head else []
    opcodes += [(t, i1 + head, i2 + head, j1 + head, j2 + head) for t, i1, i2, j1, j2 in middle]
    if tail:
        opcodes.append((EQUAL, n - tail, n, m - tail, m))
    return opcodes, whole


def _shown(diff: TextDiff, budget: Budget) -> TextDiff:
    """The diff cut where the request's SHOWN_LIMIT characters run out, with a notice."""
    shown = []
    for segment in diff.segments:
        if segment.op == SKIP:
            shown.append(segment)
            continue
        if len(segment.text) <= budget.shown:
            budget.shown -= len(segment.text)
            shown.append(segment)
            continue
        if budget.shown > 0:
            segment.text = segment.text[: budget.shown]
            shown.append(segment)
        budget.shown = 0
        notice = f"Cut: a details panel shows at most {SHOWN_LIMIT:,} characters."
        diff.notice = f"{diff.notice} {notice}".strip()
        break
    diff.segments = shown
    return diff


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


def _words(old: str, new: str, budget: Budget) -> list[Segment] | None:
    """A changed block word by word, or None when that would not read better."""
    if budget.words <= 0:  # spent: no need to split the words first
        raise OverBudget("words")
    a, b = _WORDS.findall(old), _WORDS.findall(new)
    if len(a) > MAX_WORDS or len(b) > MAX_WORDS:
        return None
    opcodes = _BoundedMatcher(budget, "words", a, b, autojunk=False).get_opcodes()
    # Similarity of the words alone: shared line breaks and spaces are no likeness.
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


def diff_value(a: Any, b: Any, side: str, budget: Budget | None = None) -> ValueDiff:
    """Two spans' `side` ("inputs" or "outputs"): message by message when both hold chat
    messages, else their text. Pass one `budget` for all diffs of a request."""
    budget = budget or Budget()
    a_messages, b_messages = _messages(a, side), _messages(b, side)
    if a_messages and b_messages:
        limit = chat.MAX_MESSAGES
        pairs = diff_messages(a_messages[:limit], b_messages[:limit], budget)
        changed = any(p.kind != "same" for p in pairs)
        tail = None
        if len(a_messages) > limit or len(b_messages) > limit:
            # Past the messages shown one by one, a change must still show: the rest of each
            # side as one text.
            a_rest, b_rest = a_messages[limit:], b_messages[limit:]
            tail = diff_text(_joined(a_rest), _joined(b_rest), budget=budget)
            said = (
                f"Messages after the first {limit} (A: {len(a_rest)}, B: {len(b_rest)}) are "
                f"compared as one text{'' if tail.changed else ' and do not differ'}."
            )
            tail.notice = f"{said} {tail.notice}".strip()
            changed = changed or tail.changed
        return ValueDiff(changed=changed, messages=pairs, text=tail)
    text = diff_text(value_text(a), value_text(b), budget=budget)
    return ValueDiff(changed=text.changed, text=text)


def _messages(value: Any, side: str) -> list[chat.Message]:
    inputs, outputs = (value, None) if side == "inputs" else (None, value)
    found = chat.conversation(inputs, outputs, limit=None)
    return found.messages if found else []


def _joined(messages: list[chat.Message]) -> str:
    return "".join(f"[{m.role}]\n{message_text(m)}\n\n" for m in messages)


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


def diff_messages(
    a: list[chat.Message], b: list[chat.Message], budget: Budget | None = None
) -> list[MessageDiff]:
    """Messages aligned by (role, text): a message B added or dropped does not shift the rest;
    changed ones are paired in order within a changed run and diffed as text."""
    budget = budget or Budget()
    a_keys = [(m.role, message_text(m)) for m in a]
    b_keys = [(m.role, message_text(m)) for m in b]
    out: list[MessageDiff] = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, a_keys, b_keys, autojunk=False).get_opcodes():
        if tag == EQUAL:
            for role, text in b_keys[j1:j2]:
                out.append(MessageDiff("same", role, role, diff_text(text, text, budget=budget)))
            continue
        olds, news = a_keys[i1:i2], b_keys[j1:j2]
        for k in range(max(len(olds), len(news))):
            old = olds[k] if k < len(olds) else None
            new = news[k] if k < len(news) else None
            if old and new:
                diff = diff_text(old[1], new[1], budget=budget)
                out.append(MessageDiff("changed", new[0], old[0], diff))
            elif old:
                diff = diff_text(old[1], "", budget=budget)
                out.append(MessageDiff("removed", old[0], old[0], diff))
            elif new:
                out.append(MessageDiff("added", new[0], "", diff_text("", new[1], budget=budget)))
    return out
