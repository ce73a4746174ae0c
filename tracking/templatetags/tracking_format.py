"""Display filters for tracking values: durations, token counts, ids, JSON.

Filters return plain strings, so the template engine still escapes whatever they are given.
"""

from __future__ import annotations

import json
import math
from typing import Any

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from tracking import chat
from tracking.markdown import render as render_markdown

register = template.Library()

EMPTY = "—"

# MLflow's span types (mlflow.entities.SpanType); anything else gets the neutral colour.
SPAN_TYPES = frozenset(
    {
        "AGENT",
        "CHAIN",
        "LLM",
        "CHAT_MODEL",
        "TOOL",
        "RETRIEVER",
        "EMBEDDING",
        "RERANKER",
        "PARSER",
        "MEMORY",
        "WORKFLOW",
        "TASK",
        "GUARDRAIL",
        "EVALUATOR",
        "UNKNOWN",
    }
)


@register.filter
def duration(ns: int | None) -> str:
    """Nanoseconds as a short human duration: "850 ns", "120 µs", "45 ms", "1.23 s", "2 m 05 s"."""
    if ns is None or ns == "":
        return EMPTY
    ns = int(ns)
    if ns < 0:
        return EMPTY
    if ns < 1_000:
        return f"{ns} ns"
    if ns < 1_000_000:
        return _scaled(ns / 1_000, "µs")
    if ns < 1_000_000_000:
        return _scaled(ns / 1_000_000, "ms")
    seconds = ns / 1_000_000_000
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} m"


def _scaled(value: float, unit: str) -> str:
    # Three significant digits at most: "4.56 ms", "45.6 ms", "456 ms".
    if value < 10:
        return f"{value:.2f} {unit}"
    if value < 100:
        return f"{value:.1f} {unit}"
    return f"{value:.0f} {unit}"


@register.filter
def tokens(count: int | None) -> str:
    """A token count with thousands separators; a dash when unknown."""
    if count is None or count == "":
        return EMPTY
    return f"{int(count):,}"


@register.filter
def dollars(amount: float | None) -> str:
    """A cost in dollars: cents for a dollar or more, two significant digits below a cent
    (LLM calls often cost fractions of one); a dash when unknown, which is not $0."""
    if amount is None or amount == "":
        return EMPTY
    amount = float(amount)
    if amount == 0:
        return "$0.00"
    if abs(amount) >= 1:
        return f"${amount:,.2f}"
    if abs(amount) >= 0.01:  # up to four decimals, at least two: $0.50, $0.0123
        whole, _, cents = f"{amount:.4f}".partition(".")
        return f"${whole}.{cents.rstrip('0').ljust(2, '0')}"
    decimals = min(10, 1 - math.floor(math.log10(abs(amount))))
    return f"${amount:.{decimals}f}"


@register.filter
def short_sha(commit: str | None) -> str:
    return (commit or "")[:7]


@register.filter
def span_type_class(span_type: str | None) -> str:
    """The CSS modifier for a span type badge; unknown types share one neutral class."""
    value = (span_type or "").upper()
    return value.lower().replace("_", "-") if value in SPAN_TYPES else "other"


@register.filter
def pretty_json(value: Any) -> str:
    """Indented JSON for a <pre>; the result is a plain string and gets auto-escaped."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


@register.filter
def json_value(value: Any) -> str:
    """A param, tag or metadata value: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


@register.filter
def model_url(model_id: str | None) -> str:
    """The detail URL of a model id, or "" when the id cannot be one (empty, contains "/").

    Trace.model_id is copied from client-sent metadata, so it is not guaranteed to be routable;
    a page must not fail with NoReverseMatch because one trace carries an odd value.
    """
    if not model_id:
        return ""
    try:
        return reverse("tracking:model-detail", args=[model_id])
    except NoReverseMatch:
        return ""


@register.filter
def request_text(preview: str | None) -> str:
    """A trace's request preview as text: a chat request shows its user's words, not its JSON."""
    return chat.request_text(preview or "")


@register.filter
def answer_text(preview: str | None) -> str:
    """A trace's response preview as text: a chat answer shows the assistant's words."""
    return chat.answer_text(preview or "")


@register.filter
def markdown(text: str | None) -> str:
    """Chat message markdown as sanitised HTML (tracking/markdown.py: no raw HTML, nh3-cleaned)."""
    return render_markdown(text or "")


@register.filter
def is_number(value: Any) -> bool:
    """True for ints and floats (not bools): numbers are right-aligned and rounded."""
    return isinstance(value, int | float) and not isinstance(value, bool)


@register.filter
def percent(fraction: float | None) -> str:
    """A fraction as a percentage with one decimal ("2.5 %"); a dash when unknown."""
    if fraction is None or fraction == "":
        return EMPTY
    return f"{float(fraction) * 100:.1f} %"


@register.filter
def metric(value: float | None) -> str:
    """A metric value to four significant digits; NaN and infinities spelled as MLflow does."""
    if value is None:
        return EMPTY
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return f"{value:.4g}"


@register.filter
def cut_note(capped: Any) -> SafeString | str:
    """The note under a text cut at its cap (tracking/span_contents.py Capped): a filter
    rather than an include, as a conversation shows hundreds of them. Only a count goes in."""
    omitted = getattr(capped, "omitted", 0)
    if not omitted:
        return ""
    return format_html(
        '<p class="muted small capped-note">… {} more character{}: see the span\'s Raw JSON.</p>',
        f"{omitted:,}",
        "" if omitted == 1 else "s",
    )
