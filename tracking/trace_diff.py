"""Two traces' span trees aligned row by row: what B added, removed, changed or moved.

Pure functions on `waterfall.Layout`s (and a few per-span digests), like waterfall.py, so they
are tested on hand-built trees and run on 50,000 spans without the ORM.

The trees are aligned top-down: the roots with the roots, then the children of each matched
pair with each other. A sibling list is aligned on (name, span type) keys by a shortest edit
script (Myers), so an inserted or missing step does not shift the steps after it, and repeated
keys (a loop of LLM and tool calls, retries) pair in order. Spans left unmatched in one sibling
list that share a key are paired afterwards and flagged as moved (a reorder). An unmatched
span's whole subtree is added (only in B) or removed (only in A).

Everything is iterative: a 50,000-deep chain must not hit Python's recursion limit, and a flat
list of 10,000 siblings with nothing in common must not take quadratic time (the edit script's
cost is capped per sibling list and for the whole trace; past it, same-key spans are paired in
order and the longest run of them that keeps its order counts as aligned, the rest as moved).
Sibling lists with no key in common skip the edit script: all of A's are removed, B's added.
"""

from __future__ import annotations

import bisect
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from tracking import waterfall
from tracking.text_diff import common_ends

SAME, CHANGED, ADDED, REMOVED = 0, 1, 2, 3
STATUS, INPUTS, OUTPUTS, TOKENS, COST, DURATION, MOVED = 1, 2, 4, 8, 16, 32, 64
RENAMED = 128  # single roots paired although their name or span type differ
# A duration change counts when it is at least a quarter of A's duration and at least 1 ms:
# smaller ones are the noise of any two runs.
DURATION_SHARE = 0.25
DURATION_MIN_NS = 1_000_000
_SHARE_BELOW = DURATION_MIN_NS / DURATION_SHARE  # under 4 ms, 1 ms is the larger threshold
# The most edits the Myers search looks for in one sibling list before it falls back to
# pairing same-key spans in order: its cost grows with the square of the edits.
MAX_EDITS = 400
# The steps (diagonals tried plus matches followed) all Myers searches of one trace may take
# together: without it, thousands of sibling lists each just under MAX_EDITS add up to seconds
# (50 groups of 200 renamed children took 1.4 s). About 3 M steps a second in CPython.
EDIT_BUDGET = 600_000


class _Budget:
    """Myers steps left for one `align` call."""

    __slots__ = ("left",)

    def __init__(self, steps: int) -> None:
        self.left = steps


class Digest(NamedTuple):
    """What tells two matched spans apart beyond the layout: digests of their inputs and
    outputs, and their token usage and cost as text (None when absent). A tuple: most pairs
    are equal, and tuples compare fastest."""

    inputs: str | None = None
    outputs: str | None = None
    tokens: str | None = None
    cost: str | None = None


NO_DIGEST = Digest()


@dataclass
class Alignment:
    """Aligned rows in the merged tree's display (pre-)order; -1 where a side has no span."""

    a: list[int] = field(default_factory=list)
    b: list[int] = field(default_factory=list)
    depth: list[int] = field(default_factory=list)
    parent: list[int] = field(default_factory=list)
    size: list[int] = field(default_factory=list)
    kind: list[int] = field(default_factory=list)
    flags: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.a)

    @property
    def changes(self) -> list[int]:
        return [i for i, k in enumerate(self.kind) if k != SAME]


@dataclass
class Side:
    """A trace's facts for the JSON: what the layout does not hold."""

    trace_id: str
    name: str = ""
    state: str = ""
    span_count: int = 0
    tokens: int | None = None
    cost: float | None = None


def align(
    a: waterfall.Layout,
    b: waterfall.Layout,
    a_digests: Mapping[str, Digest] | None = None,
    b_digests: Mapping[str, Digest] | None = None,
) -> Alignment:
    """Align B's span tree with A's; digests are by span id (a missing one compares equal)."""
    a_digests, b_digests = a_digests or {}, b_digests or {}
    a_keys, b_keys = _keys(a, b)
    budget = _Budget(EDIT_BUDGET)
    # Rows as (a index, b index, depth, parent row), turned into columns at the end: at
    # 50,000 rows, one append per row instead of four is a real share of the time.
    rows: list[tuple[int, int, int, int]] = []
    moved_rows: list[int] = []
    renamed_rows: list[int] = []
    a_roots = [i for i, p in enumerate(a.parent) if p < 0]
    b_roots = [i for i, p in enumerate(b.parent) if p < 0]
    if len(a_roots) == 1 and len(b_roots) == 1:
        # One root each: the same agent's run, even when a version renamed its root span.
        pairs = [(a_roots[0], b_roots[0], False)]
        if a_keys[a_roots[0]] != b_keys[b_roots[0]]:
            renamed_rows.append(0)
    else:
        pairs = align_siblings([a_keys[i] for i in a_roots], [b_keys[i] for i in b_roots], budget)
        pairs = [(_at(a_roots, i), _at(b_roots, j), m) for i, j, m in pairs]
    # (a index, b index, depth, parent row, moved), popped in the merged tree's pre-order.
    stack = [(i, j, 0, -1, m) for i, j, m in reversed(pairs)]
    while stack:
        i, j, depth, parent, moved = stack.pop()
        row = len(rows)
        if i >= 0 and j >= 0:
            rows.append((i, j, depth, parent))
            if moved:
                moved_rows.append(row)
            ka, kb = _children(a.size, i), _children(b.size, j)
            if ka or kb:
                sub = align_siblings([a_keys[c] for c in ka], [b_keys[c] for c in kb], budget)
                d = depth + 1
                stack.extend(
                    [(ka[x] if x >= 0 else -1, kb[y] if y >= 0 else -1, d, row, m)
                     for x, y, m in reversed(sub)]
                )  # fmt: skip
        elif i >= 0:  # removed: the span's whole subtree, contiguous in A's pre-order
            top = a.depth[i]
            rows.extend(
                (k, -1, depth + a.depth[k] - top, parent if k == i else row + a.parent[k] - i)
                for k in range(i, i + a.size[i])
            )
        else:  # added: likewise from B
            top = b.depth[j]
            rows.extend(
                (-1, k, depth + b.depth[k] - top, parent if k == j else row + b.parent[k] - j)
                for k in range(j, j + b.size[j])
            )
    out = Alignment()
    if rows:
        columns = [list(column) for column in zip(*rows, strict=True)]
        out.a, out.b, out.depth, out.parent = columns
    out.kind = [SAME if i >= 0 and j >= 0 else REMOVED if i >= 0 else ADDED
                for i, j in zip(out.a, out.b, strict=True)]  # fmt: skip
    out.flags = [0] * len(rows)
    for row in moved_rows:
        out.flags[row] = MOVED
    for row in renamed_rows:
        out.flags[row] |= RENAMED
    out.size = waterfall.subtree_sizes(out.parent)
    _flag_pairs(out, a, b, a_digests, b_digests)
    return out


def _at(items: Sequence[int], i: int) -> int:
    return items[i] if i >= 0 else -1


def _keys(a: waterfall.Layout, b: waterfall.Layout) -> tuple[list[int], list[int]]:
    """(name, type) as one small int, shared by both sides: the edit script compares keys
    most. Names and types are numbered apart (string hashes are cached; tuple hashes not)."""
    names = {n: k for k, n in enumerate({*a.names, *b.names})}
    types = {t: k for k, t in enumerate({*a.types, *b.types})}
    width = len(types)
    return (
        [names[n] * width + types[t] for n, t in zip(a.names, a.types, strict=True)],
        [names[n] * width + types[t] for n, t in zip(b.names, b.types, strict=True)],
    )


def _children(size: list[int], i: int) -> list[int]:
    """The children of span `i` of a pre-order layout: each next child starts after the
    previous one's subtree. Only matched spans are asked, so no list per span is built."""
    kids = []
    c, end = i + 1, i + size[i]
    while c < end:
        kids.append(c)
        c += size[c]
    return kids


def _flag_pairs(
    out: Alignment,
    a: waterfall.Layout,
    b: waterfall.Layout,
    a_digests: Mapping[str, Digest],
    b_digests: Mapping[str, Digest],
) -> None:
    """Set the flags and kind of every matched row. One loop without calls: at 50,000 rows
    a function call per row is most of the cost."""
    a_dig = [a_digests.get(s, NO_DIGEST) for s in a.span_ids]
    b_dig = [b_digests.get(s, NO_DIGEST) for s in b.span_ids]
    a_status, b_status, a_dur, b_dur = a.statuses, b.statuses, a.duration, b.duration
    flags, kind = out.flags, out.kind
    for r, (i, j) in enumerate(zip(out.a, out.b, strict=True)):
        if i < 0 or j < 0:
            continue
        f = flags[r]
        if a_status[i] != b_status[j]:
            f |= STATUS
        da, db = a_dig[i], b_dig[j]
        if da != db:
            f |= (
                (INPUTS if da[0] != db[0] else 0)
                | (OUTPUTS if da[1] != db[1] else 0)
                | (TOKENS if da[2] != db[2] else 0)
                | (COST if da[3] != db[3] else 0)
            )
        x, y = a_dur[i], b_dur[j]
        if x != y and (
            x is None
            or y is None
            or abs(y - x) >= (DURATION_MIN_NS if x < _SHARE_BELOW else DURATION_SHARE * x)
        ):
            f |= DURATION
        if f:
            flags[r], kind[r] = f, CHANGED


def duration_changed(a_ns: int | None, b_ns: int | None) -> bool:
    if a_ns is None or b_ns is None:
        return (a_ns is None) != (b_ns is None)  # one still open: its end is unknown
    return abs(b_ns - a_ns) >= max(DURATION_SHARE * a_ns, DURATION_MIN_NS)


# --- Sibling lists --------------------------------------------------------------------------


def align_siblings(
    a: Sequence[int], b: Sequence[int], budget: _Budget | None = None
) -> list[tuple[int, int, bool]]:
    """The merged order of two key lists: (i, -1) removed, (-1, j) added, (i, j, moved)
    paired. Pairs keep both lists' order except moved ones, which sit at B's position.
    `budget` is the trace's Myers steps left, spent here (a list alone gets EDIT_BUDGET)."""
    n, m = len(a), len(b)
    head, tail = common_ends(a, b)
    mid_a, mid_b = a[head : n - tail], b[head : m - tail]
    # No key in common: the edit script is all removals then all additions, and finding
    # that out would be Myers' worst case.
    common = bool(mid_a and mid_b and not set(mid_a).isdisjoint(mid_b))
    script = _myers(mid_a, mid_b, budget or _Budget(EDIT_BUDGET)) if common else None
    if script is None:
        if common:
            middle = _in_order_pairs(mid_a, mid_b)
        else:
            middle = [(x, -1, False) for x in range(len(mid_a))]
            middle += [(-1, y, False) for y in range(len(mid_b))]
    else:
        middle = _pair_moved(mid_a, mid_b, script)
    out = [(x, x, False) for x in range(head)]
    out += [(x + head if x >= 0 else -1, y + head if y >= 0 else -1, mv) for x, y, mv in middle]
    out += [(n - tail + x, m - tail + x, False) for x in range(tail)]
    return out


def _myers(a: Sequence[int], b: Sequence[int], budget: _Budget) -> list[tuple[int, int]] | None:
    """The shortest edit script as (i, -1) / (-1, j) / (i, j) steps, deletions before
    insertions; None when it needs more than MAX_EDITS edits or more steps than the budget
    has left (what was spent is gone either way)."""
    n, m = len(a), len(b)
    limit = min(n + m, MAX_EDITS)
    offset = limit + 1
    v = [0] * (2 * limit + 3)
    trace: list[list[int]] = []
    for d in range(limit + 1):
        trace.append(v[offset - d - 1 : offset + d + 2])  # the diagonals d-1 can reach
        steps = d + 1
        for k in range(-d, d + 1, 2):
            if k == -d or (k != d and v[offset + k - 1] < v[offset + k + 1]):
                x = v[offset + k + 1]  # down: an insertion
            else:
                x = v[offset + k - 1] + 1  # right: a deletion
            y = y0 = x - k
            while x < n and y < m and a[x] == b[y]:
                x += 1
                y += 1
            steps += y - y0
            v[offset + k] = x
            if x >= n and y >= m:
                budget.left -= steps
                return _backtrack(trace, d, n, m)
        budget.left -= steps
        if budget.left < 0:
            return None
    return None


def _backtrack(trace: list[list[int]], d_end: int, n: int, m: int) -> list[tuple[int, int]]:
    steps: list[tuple[int, int]] = []
    x, y = n, m
    for d in range(d_end, 0, -1):
        v = trace[d]  # v[t] is diagonal t - d - 1 as it stood before step d
        k = x - y
        down = k == -d or (k != d and v[k + d] < v[k + d + 2])  # came by an insertion
        prev_k = k + 1 if down else k - 1
        prev_x = v[prev_k + d + 1]
        prev_y = prev_x - prev_k
        while x > prev_x and y > prev_y:
            x, y = x - 1, y - 1
            steps.append((x, y))
        if x == prev_x:
            y -= 1
            steps.append((-1, y))
        else:
            x -= 1
            steps.append((x, -1))
    while x > 0 and y > 0:
        x, y = x - 1, y - 1
        steps.append((x, y))
    steps.reverse()
    return steps


def _pair_moved(
    a: Sequence[int], b: Sequence[int], script: list[tuple[int, int]]
) -> list[tuple[int, int, bool]]:
    """The edit script with each inserted span that a removed one of the same key can
    explain turned into a moved pair (in order of the key's occurrences)."""
    removed: dict[int, deque[int]] = defaultdict(deque)
    for i, j in script:
        if j < 0:
            removed[a[i]].append(i)
    partner: dict[int, int] = {}  # B index -> A index
    for i, j in script:
        if i < 0 and removed.get(b[j]):
            partner[j] = removed[b[j]].popleft()
    taken = set(partner.values())
    out = []
    for i, j in script:
        if i >= 0 and j >= 0:
            out.append((i, j, False))
        elif i >= 0:
            if i not in taken:
                out.append((i, -1, False))
        elif j in partner:
            out.append((partner[j], j, True))
        else:
            out.append((-1, j, False))
    return out


def _in_order_pairs(a: Sequence[int], b: Sequence[int]) -> list[tuple[int, int, bool]]:
    """Past the edit budget: the k-th span of a key in A with the k-th of that key in B; the
    longest run of those pairs that keeps both orders is aligned, the other pairs moved.
    O((n + m) log n)."""
    queues: dict[int, deque[int]] = defaultdict(deque)
    for j, key in enumerate(b):
        queues[key].append(j)
    pair_of = [queues[key].popleft() if queues.get(key) else -1 for key in a]
    kept = _increasing_run(pair_of)
    # Walk B's order; an A span not kept comes out just before the next kept one, or at the end.
    b_partner = [-1] * len(b)
    for i, j in enumerate(pair_of):
        if j >= 0:
            b_partner[j] = i
    out: list[tuple[int, int, bool]] = []
    next_a = 0
    for j in range(len(b)):
        i = b_partner[j]
        if i >= 0 and kept[i]:
            while next_a < i:
                if pair_of[next_a] < 0:
                    out.append((next_a, -1, False))
                next_a += 1
            next_a = i + 1
            out.append((i, j, False))
        elif i >= 0:
            out.append((i, j, True))
        else:
            out.append((-1, j, False))
    out.extend((i, -1, False) for i in range(next_a, len(a)) if pair_of[i] < 0)
    return out


def _increasing_run(values: list[int]) -> list[bool]:
    """Which of `values` (>= 0; -1 skipped) are on one longest strictly increasing run."""
    tails: list[int] = []  # values at the end of the best run of each length
    tail_index: list[int] = []
    previous = [-1] * len(values)
    for i, value in enumerate(values):
        if value < 0:
            continue
        at = bisect.bisect_left(tails, value)
        previous[i] = tail_index[at - 1] if at else -1
        if at == len(tails):
            tails.append(value)
            tail_index.append(i)
        else:
            tails[at], tail_index[at] = value, i
    kept = [False] * len(values)
    i = tail_index[-1] if tail_index else -1
    while i >= 0:
        kept[i] = True
        i = previous[i]
    return kept


# --- JSON -----------------------------------------------------------------------------------


def to_json_data(
    a: waterfall.Layout,
    b: waterfall.Layout,
    alignment: Alignment,
    a_side: Side,
    b_side: Side,
) -> dict:
    """The columnar JSON trace_diff.js reads (v 1): each side's facts and critical path
    (`a`, `b`), the shared timeline (`total`, `ticks`), each side's spans in its own display
    order (`spans.a`, `spans.b`: ids, names, types, status, start, dur), the aligned `rows`
    (span index per side or -1, depth, parent row, subtree size, kind, flags), the `changes`
    (rows not SAME, in order) and the `summary` counts."""
    type_names = sorted(set(a.types) | set(b.types))
    type_index = {t: i for i, t in enumerate(type_names)}
    total = max(a.total_ns, b.total_ns)
    kinds = alignment.kind
    return {
        "v": 1,
        "a": _side_json(a, a_side),
        "b": _side_json(b, b_side),
        "total": total,
        "ticks": waterfall.ticks(total),
        "type_names": type_names,
        "spans": {"a": _spans_json(a, type_index), "b": _spans_json(b, type_index)},
        "rows": {
            "a": alignment.a,
            "b": alignment.b,
            "depth": alignment.depth,
            "parent": alignment.parent,
            "size": alignment.size,
            "kind": kinds,
            "flags": alignment.flags,
        },
        "changes": alignment.changes,
        "summary": {
            "a": _summary(a, a_side),
            "b": _summary(b, b_side),
            "added": kinds.count(ADDED),
            "removed": kinds.count(REMOVED),
            "changed": kinds.count(CHANGED),
            "same": kinds.count(SAME),
        },
    }


def _side_json(layout: waterfall.Layout, side: Side) -> dict:
    return {
        "trace_id": side.trace_id,
        "name": side.name,
        "state": side.state,
        "span_count": side.span_count,
        "total": layout.total_ns,
        "critical": waterfall.critical_path(layout),
    }


def _spans_json(layout: waterfall.Layout, type_index: dict[str, int]) -> dict:
    codes = waterfall.STATUS_CODES
    return {
        "ids": layout.span_ids,
        "names": layout.names,
        "types": [type_index[t] for t in layout.types],
        "status": [codes.get(s, 0) for s in layout.statuses],
        "start": layout.start,
        "dur": [-1 if d is None else d for d in layout.duration],
    }


def _summary(layout: waterfall.Layout, side: Side) -> dict:
    return {
        "duration_ns": layout.total_ns,
        "tokens": side.tokens,
        "cost": side.cost,
        "errors": layout.statuses.count("ERROR"),
        "spans": len(layout),
    }
