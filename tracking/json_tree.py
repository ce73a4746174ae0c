"""A JSON value as a collapsible HTML tree for the span details panel, with size caps.

Built in Python rather than with recursive template includes: a span's outputs can hold
thousands of nodes and the panel must answer in tens of milliseconds. Every piece of the value
goes through `escape`; the markup around it is ours.

Caps keep a huge value from freezing the panel, and none of them drops anything silently:
- a string longer than STRING_PREVIEW shows its start, with the rest behind an "expand"
  (up to STRING_MAX characters, then a link to the full value) and its size shown;
- after MAX_NODES nodes the rest of the tree is replaced by a note and the same link;
- an object or list nested deeper than MAX_DEPTH is shown as its JSON text (a long string),
  so no value recurses this function past Python's stack.
"""

from __future__ import annotations

from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from webapp.json_limits import text_of

STRING_PREVIEW = 300
STRING_MAX = 20_000
MAX_NODES = 2_000
# Objects and lists deeper than this start closed.
OPEN_DEPTH = 4
MAX_DEPTH = 40


class _Budget:
    def __init__(self, nodes: int) -> None:
        self.nodes = nodes
        self.strings = 0  # ids for the copy buttons of long strings


def render(value: Any, full_url: str, id_prefix: str) -> SafeString:
    """`value` as nested <details>; `full_url` serves the whole value as JSON."""
    out: list[str] = []
    budget = _Budget(MAX_NODES)
    _node(value, 0, out, budget, full_url, id_prefix)
    if budget.nodes < 0:
        out.append(
            f'<p class="jt-more">Only the first {MAX_NODES:,} values are shown. '
            f'<a href="{escape(full_url)}" target="_blank" rel="noopener">Open the full value'
            "</a></p>"
        )
    return mark_safe("".join(out))  # every value piece is escaped above


def _node(value: Any, depth: int, out: list[str], budget: _Budget, url: str, prefix: str) -> None:
    budget.nodes -= 1
    if budget.nodes < 0:
        return
    if depth >= MAX_DEPTH and isinstance(value, dict | list):
        _string(text_of(value), out, budget, url, prefix)
    elif isinstance(value, dict):
        _container(value.items(), len(value), "{", "}", "key", depth, out, budget, url, prefix)
    elif isinstance(value, list):
        items = enumerate(value)
        _container(items, len(value), "[", "]", "item", depth, out, budget, url, prefix)
    elif isinstance(value, str):
        _string(value, out, budget, url, prefix)
    elif value is None:
        out.append('<span class="jt-null">null</span>')
    elif isinstance(value, bool):
        out.append(f'<span class="jt-bool">{"true" if value else "false"}</span>')
    elif isinstance(value, int | float):
        out.append(f'<span class="jt-num">{escape(repr(value))}</span>')
    else:
        out.append(f'<span class="jt-str">{escape(str(value))}</span>')


def _container(items, count, opener, closer, noun, depth, out, budget, url, prefix) -> None:
    if not count:
        out.append(f'<span class="jt-empty">{opener}{closer}</span>')
        return
    label = f"{count:,} {noun}{'' if count == 1 else 's'}"
    is_open = " open" if depth < OPEN_DEPTH else ""
    out.append(
        f'<details class="jt"{is_open}><summary><span class="jt-brace">{opener}</span>'
        f'<span class="jt-count">{label}</span><span class="jt-brace">{closer}</span>'
        '</summary><dl class="jt-body">'
    )
    for key, item in items:
        if budget.nodes < 0:
            break
        nested = " jt-nest" if isinstance(item, dict | list) and item else ""
        out.append(f'<div class="jt-row{nested}"><dt class="jt-key">{escape(str(key))}</dt><dd>')
        _node(item, depth + 1, out, budget, url, prefix)
        out.append("</dd></div>")
    out.append("</dl></details>")


def _string(value: str, out: list[str], budget: _Budget, url: str, prefix: str) -> None:
    if len(value) <= STRING_PREVIEW:
        out.append(f'<span class="jt-str">{escape(value)}</span>')
        return
    budget.strings += 1
    element_id = f"{prefix}-s{budget.strings}"
    shown = value[:STRING_MAX]
    out.append(
        f'<div class="jt-long"><details><summary><span class="jt-str">'
        f"{escape(value[:STRING_PREVIEW])}…</span> "
        f'<span class="jt-size">expand ({len(value):,} characters)</span></summary>'
        f'<pre class="jt-full" id="{element_id}">{escape(shown)}</pre></details>'
        f'<button type="button" class="copy-button" data-copy-target="{element_id}">Copy</button>'
    )
    if len(value) > STRING_MAX:
        out.append(
            f'<p class="jt-more">{len(value) - STRING_MAX:,} more characters not shown. '
            f'<a href="{escape(url)}" target="_blank" rel="noopener">Open the full value</a></p>'
        )
    out.append("</div>")
