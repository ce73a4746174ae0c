"""Span rows -> the waterfall layout: a tree in display order, timeline offsets, critical path.

Pure functions on plain tuples, so they can be tested on hand-built trees and run on 50,000
spans without the ORM. Traces arrive from many clients and are not always well formed: a span's
parent may be missing (orphans become roots and are flagged), ids may form a cycle (it cannot
hang the walk), a span may still be open (end None) or end after its parent (clock skew).

Everything is iterative: a chain of 50,000 nested spans must not hit Python's recursion limit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter

# (span_id, parent_span_id, name, span_type, start_ns, end_ns | None, status)
Row = tuple[str, str, str, str, int, int | None, str]

STATUS_CODES = {"UNSET": 0, "OK": 1, "ERROR": 2}


@dataclass
class Layout:
    """The spans in display (pre-)order: a node's subtree is the `size[i]` entries from `i`.

    `start` and `duration` are nanoseconds relative to the trace's first span; `duration` is
    None while a span is open. `parent` holds display indexes (-1 for a root).
    """

    start_ns: int = 0
    end_ns: int = 0
    span_ids: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    parent: list[int] = field(default_factory=list)
    depth: list[int] = field(default_factory=list)
    start: list[int] = field(default_factory=list)
    duration: list[int | None] = field(default_factory=list)
    size: list[int] = field(default_factory=list)
    # Spans whose parent is not in the trace (or that sit on a parent cycle), shown as roots.
    orphans: list[int] = field(default_factory=list)

    @property
    def total_ns(self) -> int:
        return self.end_ns - self.start_ns

    def __len__(self) -> int:
        return len(self.span_ids)


def build(rows: Iterable[Row]) -> Layout:
    """Order spans as a tree (children by start time), with depth, offsets and subtree sizes."""
    spans = sorted(rows, key=itemgetter(4, 0))
    n = len(spans)
    # A repeated id (impossible from the table: unique per trace) would keep its last row.
    index = {row[0]: i for i, row in enumerate(spans)}
    children: list[list[int]] = [[] for _ in range(n)]
    roots: list[int] = []
    orphan = [False] * n
    for i, row in enumerate(spans):
        parent_id = row[1]
        p = index.get(parent_id) if parent_id else None
        if p is None or p == i:
            roots.append(i)
            orphan[i] = bool(parent_id)
        else:
            children[p].append(i)  # appended in start order, as `spans` is sorted

    order: list[int] = []
    depth_of = [0] * n
    parent_of = [-1] * n
    visited = [False] * n
    _walk(roots, children, order, depth_of, parent_of, visited)
    if len(order) < n:
        # Only spans on (or below) a parent cycle are left: none is reachable from a root.
        # Break each cycle at its earliest span, which then counts as an orphan root.
        for i in range(n):
            if not visited[i]:
                orphan[i] = True
                _walk([i], children, order, depth_of, parent_of, visited)

    layout = Layout()
    if not n:
        return layout
    # Columns built by comprehensions over the display order: at 50,000 spans this is several
    # times faster than appending to ten lists in one loop.
    t0 = spans[0][4]  # sorted by start
    layout.start_ns = t0
    layout.end_ns = max(max(r[4] if r[5] is None else r[5] for r in spans), t0)
    position = [0] * n
    for pos, i in enumerate(order):
        position[i] = pos
    ordered = [spans[i] for i in order]
    layout.span_ids = [r[0] for r in ordered]
    layout.names = [r[2] for r in ordered]
    layout.types = [r[3] for r in ordered]
    layout.statuses = [r[6] for r in ordered]
    layout.start = [r[4] - t0 for r in ordered]
    layout.duration = [None if r[5] is None else r[5] - r[4] for r in ordered]
    layout.depth = [depth_of[i] for i in order]
    layout.parent = [-1 if parent_of[i] < 0 else position[parent_of[i]] for i in order]
    layout.orphans = [pos for pos, i in enumerate(order) if orphan[i]]
    layout.size = subtree_sizes(layout.parent)
    return layout


def _walk(
    roots: list[int],
    children: list[list[int]],
    order: list[int],
    depth_of: list[int],
    parent_of: list[int],
    visited: list[bool],
) -> None:
    """Append the pre-order of the trees under `roots`, skipping spans already placed.

    `depth_of` and `parent_of` start as 0 and -1 (a root); a child's are set when it is pushed,
    unless it is already placed (which only a parent cycle can cause).
    """
    stack = roots[::-1]
    while stack:
        i = stack.pop()
        if visited[i]:
            continue
        visited[i] = True
        order.append(i)
        kids = children[i]
        if kids:
            depth = depth_of[i] + 1
            for c in kids:
                if not visited[c]:
                    depth_of[c] = depth
                    parent_of[c] = i
            stack.extend(reversed(kids))


def subtree_sizes(parent: Sequence[int]) -> list[int]:
    """Each node's subtree size (itself included), for nodes given in pre-order."""
    size = [1] * len(parent)
    for i in range(len(parent) - 1, -1, -1):
        if parent[i] >= 0:
            size[parent[i]] += size[i]
    return size


def children_of(layout: Layout) -> list[list[int]]:
    kids: list[list[int]] = [[] for _ in range(len(layout))]
    for i, p in enumerate(layout.parent):
        if p >= 0:
            kids[p].append(i)
    return kids


def critical_path(layout: Layout) -> list[int]:
    """The spans on the critical path, in display order: the chain that decides the end time.

    Jaeger's algorithm: from the root that ends last, descend into the child that finishes
    last; a span with no (further) child finishing by the point reached is critical up to
    there, and the walk returns to its parent with the time that span started, where the last
    child finishing by that moment is next. Children are clipped to their parent's end
    (clock skew, detached async work), open spans count as running to the trace's end.
    """
    n = len(layout)
    if not n:
        return []
    trace_end = layout.total_ns
    spans = zip(layout.start, layout.duration, strict=True)
    end = [trace_end if d is None else s + d for s, d in spans]
    for i, p in enumerate(layout.parent):  # pre-order: a parent is clipped before its children
        if p >= 0 and end[i] > end[p]:
            end[i] = max(end[p], layout.start[i])
    kids = children_of(layout)
    by_end = end.__getitem__
    for k in kids:
        if len(k) > 1:
            k.sort(key=by_end, reverse=True)
    roots = [i for i in range(n) if layout.parent[i] < 0]
    span = max(roots, key=lambda r: (end[r], -r))
    on_path = set()
    # Each span's children are taken in that order, each at most once: the walk always ends.
    taken = [0] * n
    returning: int | None = None
    while True:
        on_path.add(span)
        k, j = kids[span], taken[span]
        if returning is not None:  # back from a child: the last one finishing before it began
            while j < len(k) and end[k[j]] > returning:
                j += 1
        if j < len(k):
            taken[span] = j + 1
            span, returning = k[j], None
            continue
        taken[span] = j
        parent = layout.parent[span]
        if parent < 0:
            break
        span, returning = parent, layout.start[span]
    return sorted(on_path)


def ticks(total_ns: int, target: int = 6) -> list[int]:
    """Round time-axis positions (ns from the trace start), about `target` of them, from 0."""
    if total_ns <= 0:
        return [0]
    raw = total_ns / target
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    step = max(1, int(step))
    return list(range(0, total_ns + 1, step))


def to_json_data(layout: Layout, trace_state: str, span_count: int) -> dict:
    """The compact, columnar form waterfall.js reads: arrays rather than an object per span."""
    type_names = sorted(set(layout.types))
    type_index = {t: i for i, t in enumerate(type_names)}
    return {
        "v": 1,
        "state": trace_state,
        "span_count": span_count,
        "total": layout.total_ns,
        "ticks": ticks(layout.total_ns),
        "type_names": type_names,
        "ids": layout.span_ids,
        "names": layout.names,
        "types": [type_index[t] for t in layout.types],
        "status": [STATUS_CODES.get(s, 0) for s in layout.statuses],
        "parent": layout.parent,
        "depth": layout.depth,
        "start": layout.start,
        # -1 for an open span: JSON arrays of plain ints parse fastest in the browser.
        "dur": [-1 if d is None else d for d in layout.duration],
        "size": layout.size,
        "orphans": layout.orphans,
        "critical": critical_path(layout),
    }
