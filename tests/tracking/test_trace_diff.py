"""tracking/trace_diff.py on hand-built trees: no database."""

from __future__ import annotations

import random

from tracking import trace_diff, waterfall
from tracking.trace_diff import ADDED, CHANGED, REMOVED, SAME, Digest, Side


def tree(*spans, t0=0):
    """Spans as (span_id, parent, name[, type[, status[, duration]]]), started in order."""
    rows = []
    for n, spec in enumerate(spans):
        span_id, parent, name = spec[:3]
        span_type = spec[3] if len(spec) > 3 else "CHAIN"
        status = spec[4] if len(spec) > 4 else "OK"
        duration = spec[5] if len(spec) > 5 else 10_000_000
        start = t0 + n * 1_000
        rows.append((span_id, parent, name, span_type, start, start + duration, status))
    return waterfall.build(rows)


def rows(a, b, alignment):
    """Each row as (depth, A's name or '-', B's name or '-', kind)."""
    return [
        (
            alignment.depth[r],
            a.names[i] if i >= 0 else "-",
            b.names[j] if j >= 0 else "-",
            alignment.kind[r],
        )
        for r, (i, j) in enumerate(zip(alignment.a, alignment.b, strict=True))
    ]


AGENT = [
    ("r", "", "agent", "AGENT"),
    ("p", "r", "plan", "LLM"),
    ("s", "r", "search", "TOOL"),
    ("w", "r", "write", "LLM"),
]


def test_identical_traces_align_row_for_row_and_nothing_changed():
    a, b = tree(*AGENT), tree(*AGENT)

    alignment = trace_diff.align(a, b)

    assert alignment.a == alignment.b == [0, 1, 2, 3]
    assert set(alignment.kind) == {SAME}
    assert alignment.changes == []
    assert alignment.size == [4, 1, 1, 1]


def test_an_inserted_step_is_added_and_does_not_shift_the_steps_after_it():
    a = tree(*AGENT)
    b = tree(*AGENT[:2], ("x", "r", "check", "TOOL"), ("xx", "x", "lookup"), *AGENT[2:])

    alignment = trace_diff.align(a, b)

    assert rows(a, b, alignment) == [
        (0, "agent", "agent", SAME),
        (1, "plan", "plan", SAME),
        (1, "-", "check", ADDED),
        (2, "-", "lookup", ADDED),  # the added span's subtree comes with it
        (1, "search", "search", SAME),
        (1, "write", "write", SAME),
    ]
    assert alignment.changes == [2, 3]
    assert alignment.parent == [-1, 0, 0, 2, 0, 0]


def test_a_missing_step_is_removed_with_its_subtree():
    a = tree(*AGENT[:3], ("q", "s", "query", "RETRIEVER"), AGENT[3])
    b = tree(AGENT[0], AGENT[1], AGENT[3])

    alignment = trace_diff.align(a, b)

    assert rows(a, b, alignment) == [
        (0, "agent", "agent", SAME),
        (1, "plan", "plan", SAME),
        (1, "search", "-", REMOVED),
        (2, "query", "-", REMOVED),
        (1, "write", "write", SAME),
    ]
    assert alignment.size[2] == 2


def test_a_reordered_step_is_paired_and_flagged_moved():
    a = tree(*AGENT)
    b = tree(AGENT[0], AGENT[2], AGENT[1], AGENT[3])  # search before plan

    alignment = trace_diff.align(a, b)

    names = rows(a, b, alignment)
    assert [n[1:3] for n in names] == [
        ("agent", "agent"),
        ("search", "search"),
        ("plan", "plan"),
        ("write", "write"),
    ]
    moved = [r for r in range(len(alignment)) if alignment.flags[r] & trace_diff.MOVED]
    assert len(moved) == 1
    assert alignment.kind[moved[0]] == CHANGED
    assert ADDED not in alignment.kind and REMOVED not in alignment.kind


def test_repeated_names_in_a_loop_align_in_order():
    loop = [("r", "", "agent", "AGENT")]
    for n in range(3):
        loop += [(f"l{n}", "r", "llm", "LLM"), (f"t{n}", "r", "tool", "TOOL")]
    a = tree(*loop)
    b = tree(*loop[:3], ("extra", "r", "tool", "TOOL"), *loop[3:])  # one more tool call

    alignment = trace_diff.align(a, b)

    pairs = [(a.span_ids[i] if i >= 0 else "-", b.span_ids[j] if j >= 0 else "-")
             for i, j in zip(alignment.a, alignment.b, strict=True)]  # fmt: skip
    assert pairs == [
        ("r", "r"),
        ("l0", "l0"),
        ("t0", "t0"),
        ("-", "extra"),
        ("l1", "l1"),
        ("t1", "t1"),
        ("l2", "l2"),
        ("t2", "t2"),
    ]


def test_a_retry_adds_one_attempt_and_keeps_the_rest_aligned():
    a = tree(*AGENT)
    b = tree(
        AGENT[0],
        ("p1", "r", "plan", "LLM", "ERROR"),  # failed, retried
        ("p2", "r", "plan", "LLM"),
        *AGENT[2:],
    )

    alignment = trace_diff.align(a, b)

    assert alignment.kind.count(ADDED) == 1
    assert alignment.kind.count(REMOVED) == 0
    matched_plan = next(
        r for r in range(len(alignment)) if alignment.a[r] == 1 and alignment.b[r] >= 0
    )
    # In order: A's plan pairs with the first attempt, whose failure is flagged.
    assert b.span_ids[alignment.b[matched_plan]] == "p1"
    assert alignment.flags[matched_plan] & trace_diff.STATUS


def test_orphans_are_aligned_as_roots():
    a = tree(*AGENT, ("o", "lost", "late-callback"))
    b = tree(*AGENT, ("o", "lost", "late-callback"), ("o2", "gone", "other"))

    alignment = trace_diff.align(a, b)

    found = rows(a, b, alignment)
    assert (0, "late-callback", "late-callback", SAME) in found
    assert (0, "-", "other", ADDED) in found


def test_single_roots_pair_even_when_renamed():
    a = tree(("r", "", "agent v1", "AGENT"), ("c", "r", "llm"))
    b = tree(("r", "", "agent v2", "AGENT"), ("c", "r", "llm"))

    alignment = trace_diff.align(a, b)

    assert alignment.a == [0, 1] and alignment.b == [0, 1]
    assert alignment.flags[0] & trace_diff.RENAMED and alignment.kind[0] == CHANGED
    assert alignment.flags[1] == 0


def test_single_roots_renamed_and_retyped_are_flagged_renamed():
    a = tree(("r", "", "agent_v1", "AGENT"))
    b = tree(("r", "", "agent_v2", "CHAIN"))
    same = tree(("r", "", "agent_v1", "AGENT"))

    assert trace_diff.align(a, b).flags == [trace_diff.RENAMED]
    assert trace_diff.align(a, b).kind == [CHANGED]
    assert trace_diff.align(a, same).flags == [0]


def test_empty_traces():
    empty = waterfall.build([])
    one = tree(*AGENT)

    assert len(trace_diff.align(empty, empty)) == 0
    added = trace_diff.align(empty, one)
    assert added.kind == [ADDED] * 4 and added.a == [-1] * 4
    removed = trace_diff.align(one, empty)
    assert removed.kind == [REMOVED] * 4 and removed.depth == [0, 1, 1, 1]


def test_changed_inputs_outputs_tokens_cost_status_and_duration_are_flagged():
    a = tree(*AGENT)
    b = tree(
        AGENT[0],
        ("p", "r", "plan", "LLM", "ERROR"),
        ("s", "r", "search", "TOOL", "OK", 30_000_000),  # 3x slower
        ("w", "r", "write", "LLM", "OK", 10_500_000),  # 5% slower: noise
    )
    a_digests = {
        "p": Digest("i", "o", "t", "c"),
        "s": Digest("i", "o"),
        "w": Digest("i", "o", '{"total_tokens": 10}', "0.1"),
    }
    b_digests = {
        "p": Digest("i", "o", "t", "c"),
        "s": Digest("i2", "o"),
        "w": Digest("i", "o2", '{"total_tokens": 12}', "0.2"),
    }

    alignment = trace_diff.align(a, b, a_digests, b_digests)

    f = trace_diff
    assert alignment.flags == [0, f.STATUS, f.INPUTS | f.DURATION, f.OUTPUTS | f.TOKENS | f.COST]
    assert alignment.kind == [SAME, CHANGED, CHANGED, CHANGED]


def test_duration_change_needs_a_quarter_and_a_millisecond():
    changed = trace_diff.duration_changed
    assert not changed(100_000, 900_000)  # 9x, but under 1 ms
    assert changed(4_000_000, 5_000_000)
    assert not changed(40_000_000, 49_000_000)
    assert changed(None, 5) and not changed(None, None)


def lcs_length(a, b):
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def test_sibling_alignment_is_a_longest_common_subsequence_plus_moves():
    rng = random.Random(18)
    for _ in range(500):
        a = [rng.randint(0, 3) for _ in range(rng.randint(0, 12))]
        b = [rng.randint(0, 3) for _ in range(rng.randint(0, 12))]

        merged = trace_diff.align_siblings(a, b)

        assert sorted(i for i, _, _ in merged if i >= 0) == list(range(len(a)))
        assert [j for _, j, _ in merged if j >= 0] == list(range(len(b)))  # B's order kept
        paired = [(i, j) for i, j, moved in merged if i >= 0 and j >= 0 and not moved]
        assert all(a[i] == b[j] for i, j in paired)
        assert [i for i, _ in paired] == sorted(i for i, _ in paired)
        assert len(paired) == lcs_length(a, b)


def test_ten_thousand_siblings_with_nothing_in_common_align_fast():
    rng = random.Random(1)
    a = [rng.randint(0, 40) for _ in range(10_000)]
    b = [rng.randint(0, 40) for _ in range(10_000)]

    budget = trace_diff._Budget(trace_diff.EDIT_BUDGET)
    merged = trace_diff.align_siblings(a, b, budget)

    assert [j for _, j, _ in merged if j >= 0] == list(range(10_000))
    assert all(a[i] == b[j] for i, j, _ in merged if i >= 0 and j >= 0)
    assert spent(budget) <= trace_diff.EDIT_BUDGET + overshoot(a, b)


def groups_of_renamed_children(spans, prefix, group=200):
    """A root over groups of `group` children named apart per side but for one shared step:
    each sibling list's edit script is just under MAX_EDITS, so only a trace-wide budget
    keeps their sum bounded."""
    out = [("r", "", "agent", "AGENT")]
    for g in range(spans // group):
        out.append((f"g{g}", "r", "step"))
        for k in range(group - 1):
            name = "shared" if k == group // 2 else f"{prefix}{g}_{k}"
            out.append((f"g{g}c{k}", f"g{g}", name, "TOOL"))
    return tree(*out)


def spent(budget) -> int:
    return trace_diff.EDIT_BUDGET - budget.left


def overshoot(a, b) -> int:
    """The most one Myers round can spend past the budget before it notices."""
    return 2 * trace_diff.MAX_EDITS + 3 + len(a) + len(b)


def test_many_sibling_lists_share_one_edit_budget(monkeypatch):
    a = groups_of_renamed_children(10_000, "a")
    b = groups_of_renamed_children(10_000, "b")
    budgets = []

    class Recorded(trace_diff._Budget):
        __slots__ = ()

        def __init__(self, steps: int) -> None:
            super().__init__(steps)
            budgets.append(self)

    monkeypatch.setattr(trace_diff, "_Budget", Recorded)
    # With a budget per sibling list, this spent 1.0-1.2 s in Myers (bench/trace_diff.py).
    alignment = trace_diff.align(a, b)

    found = rows(a, b, alignment)
    assert found.count((2, "shared", "shared", SAME)) == 50  # still paired past the budget
    assert alignment.kind.count(ADDED) == alignment.kind.count(REMOVED) == 50 * 198
    (budget,) = budgets  # one for the whole trace
    assert spent(budget) <= trace_diff.EDIT_BUDGET + overshoot(range(200), range(200))


def test_sibling_lists_with_no_key_in_common_are_removed_then_added():
    assert trace_diff.align_siblings([1, 2, 3], [4, 5]) == [
        (0, -1, False), (1, -1, False), (2, -1, False), (-1, 0, False), (-1, 1, False)
    ]  # fmt: skip


def test_a_50_000_deep_chain_aligns_without_recursion():
    spans = [(f"{i:x}", f"{i - 1:x}" if i else "", "step") for i in range(50_000)]
    a = tree(*spans)
    b = tree(*spans[:-1], ("new", f"{49_998:x}", "other"))

    alignment = trace_diff.align(a, b)

    assert alignment.depth[-1] == 49_999
    assert alignment.kind.count(ADDED) == 1 and alignment.kind.count(REMOVED) == 1


def test_json_shape():
    a = tree(*AGENT)
    b = tree(*AGENT[:2], ("x", "r", "check", "RETRIEVER", "ERROR"), *AGENT[2:])
    alignment = trace_diff.align(a, b)

    data = trace_diff.to_json_data(
        a, b, alignment, Side("tr-a", "agent", "OK", 4, 100, 0.5), Side("tr-b", span_count=5)
    )

    assert data["v"] == 1
    assert data["a"]["trace_id"] == "tr-a" and data["a"]["span_count"] == 4
    assert data["a"]["critical"] == waterfall.critical_path(a)
    assert data["total"] == max(a.total_ns, b.total_ns)
    assert data["type_names"] == ["AGENT", "LLM", "RETRIEVER", "TOOL"]
    assert set(data["spans"]["b"]) == {"ids", "names", "types", "status", "start", "dur"}
    assert data["spans"]["b"]["status"][2] == 2
    assert data["spans"]["b"]["types"][2] == 2
    assert set(data["rows"]) == {"a", "b", "depth", "parent", "size", "kind", "flags"}
    assert data["rows"]["kind"] == [SAME, SAME, ADDED, SAME, SAME]
    assert data["changes"] == [2]
    assert data["summary"]["a"] == {
        "duration_ns": a.total_ns,
        "tokens": 100,
        "cost": 0.5,
        "errors": 0,
        "spans": 4,
    }
    assert data["summary"]["b"]["errors"] == 1
    summary = data["summary"]
    assert (summary["added"], summary["removed"], summary["changed"], summary["same"]) == (
        1,
        0,
        0,
        4,
    )
