"""Chat message markdown -> sanitised HTML.

Message content is written by an LLM, a user or an attacker. markdown-it-py runs with raw HTML
off (tags in the text come out escaped) and refuses `javascript:`-style link targets; nh3 then
cleans the result against an allow-list anyway, so that a parser bug cannot reach the page.
"""

from __future__ import annotations

import re

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

# A message larger than this is shown as plain text: rendering megabytes of markdown would
# stall the details panel, and nobody reads such a message as prose.
MAX_MARKDOWN_CHARS = 100_000

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True}).enable(
    ["table", "strikethrough"]
)

ALLOWED_TAGS = {
    "p", "br", "hr", "em", "strong", "del", "s", "code", "pre", "blockquote", "ul", "ol", "li",
    "a", "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
# No <img>: a remote image would be a tracking pixel (and the CSP refuses it anyway).
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
URL_SCHEMES = {"http", "https", "mailto"}


def render(text: str) -> SafeString:
    """Markdown as HTML that can be put in a page as is (the only reason for mark_safe here)."""
    if len(text) > MAX_MARKDOWN_CHARS:
        html = f"<pre>{nh3.clean_text(text)}</pre>"
    else:
        html = _md.render(text)
    cleaned = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )
    return mark_safe(cleaned)  # sanitised by nh3 just above


_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_LEADING_MARKS = re.compile(r"^\s*(?:#{1,6}\s+|>\s*|[-*+]\s+|\d+[.)]\s+)+")
_INLINE_MARKS = re.compile(r"[*_`~]+")


def excerpt(text: str, limit: int = 90) -> str:
    """The first line of a markdown text as plain words, for one line of a list: link
    targets, heading and list marks and emphasis dropped (the template escapes the rest)."""
    line = next((line for line in text.splitlines() if line.strip()), "")
    line = _INLINE_MARKS.sub("", _LEADING_MARKS.sub("", _LINK.sub(r"\1", line))).strip()
    more = len(line) > limit or len([ln for ln in text.splitlines() if ln.strip()]) > 1
    return line[:limit].rstrip() + ("…" if more else "")
