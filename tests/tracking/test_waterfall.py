"""tracking/waterfall.py on hand-built trees: no database."""

from __future__ import annotations

from tracking import waterfall


def row(span_id, parent, start, end, name=None, span_type="CHAIN", status="OK"):
    return (span_id, parent, name or span_id, span_type, start, end, status)


def test_it_orders_spans_depth_first_with_children_by_start_time():
    layout = waterfall.build(
        [
            row("c", "a", 300, 400),
            row("b", "a", 200, 250),
            row("a", "", 100, 500),
            row("d", "b", 210, 220),
        ]
    )

    assert layout.span_ids == ["a", "b", "d", "c"]
    assert layout.depth == [0, 1, 2, 1]
    assert layout.parent == [-1, 0, 1, 0]
    assert layout.size == [4, 2, 1, 1]


def test_offsets_and_durations_are_relative_to_the_first_span():
    layout = waterfall.build([row("a", "", 1_000, 5_000), row("b", "a", 1_500, None)])

    assert layout.start == [0, 500]
    assert layout.duration == [4_000, None]  # an open span has no duration yet
    assert layout.total_ns == 4_000


def test_a_span_whose_parent_is_missing_becomes_a_flagged_root():
    layout = waterfall.build([row("a", "", 0, 10), row("x", "gone", 5, 8), row("y", "x", 6, 7)])

    assert layout.span_ids == ["a", "x", "y"]
    assert layout.depth == [0, 0, 1]
    assert layout.orphans == [1]


def test_a_parent_cycle_cannot_hang_the_walk_and_every_span_is_kept():
    layout = waterfall.build(
        [row("a", "c", 0, 10), row("b", "a", 1, 9), row("c", "b", 2, 8), row("s", "s", 3, 4)]
    )

    # Roots first ("s", its own parent, is one), then each cycle broken at its earliest span.
    assert layout.span_ids == ["s", "a", "b", "c"]
    assert layout.orphans == [0, 1]
    assert layout.size == [1, 3, 2, 1]


def test_a_50_000_deep_chain_does_not_hit_the_recursion_limit():
    rows = [row(f"{i:x}", f"{i - 1:x}" if i else "", i, 100_000 - i) for i in range(50_000)]

    layout = waterfall.build(rows)

    assert layout.depth[-1] == 49_999
    assert layout.size[0] == 50_000
    assert len(waterfall.critical_path(layout)) == 50_000


def test_the_critical_path_follows_the_child_that_ends_last():
    # root 0..100: fetch 0..30, then (parallel) slow 30..90 and fast 30..40, then write 90..100
    layout = waterfall.build(
        [
            row("root", "", 0, 100),
            row("fetch", "root", 0, 30),
            row("slow", "root", 30, 90),
            row("fast", "root", 30, 40),
            row("inner", "slow", 35, 80),
            row("write", "root", 90, 100),
        ]
    )

    path = {layout.span_ids[i] for i in waterfall.critical_path(layout)}

    assert path == {"root", "write", "slow", "inner", "fetch"}


def test_the_critical_path_includes_back_to_back_sequential_children():
    layout = waterfall.build(
        [row("r", "", 0, 30), row("a", "r", 0, 10), row("b", "r", 10, 20), row("c", "r", 20, 30)]
    )

    assert [layout.span_ids[i] for i in waterfall.critical_path(layout)] == ["r", "a", "b", "c"]


def test_the_critical_path_clips_a_child_that_outlives_its_parent():
    layout = waterfall.build(
        [
            row("r", "", 0, 50),
            row("detached", "r", 40, 500),  # fire-and-forget work, or clock skew
            row("main", "r", 0, 35),
            row("other", "", 0, 20),
        ]
    )

    path = [layout.span_ids[i] for i in waterfall.critical_path(layout)]

    assert path == ["r", "main", "detached"]


def test_the_critical_path_starts_at_the_root_that_ends_last():
    layout = waterfall.build([row("early", "", 0, 10), row("late", "", 5, 50)])

    assert [layout.span_ids[i] for i in waterfall.critical_path(layout)] == ["late"]


def test_zero_length_spans_terminate_the_critical_path_walk():
    layout = waterfall.build([row("r", "", 0, 0), row("a", "r", 0, 0), row("b", "r", 0, 0)])

    assert waterfall.critical_path(layout)[0] == 0


def test_ticks_are_round_numbers_from_zero():
    assert waterfall.ticks(1_000_000_000) == [i * 200_000_000 for i in range(6)]
    assert waterfall.ticks(0) == [0]
    assert waterfall.ticks(7, target=6) == [0, 2, 4, 6]


def test_the_json_form_is_columnar_with_a_type_dictionary():
    layout = waterfall.build(
        [
            row("a", "", 0, 10, span_type="AGENT"),
            row("b", "a", 1, None, span_type="LLM", status="ERROR"),
        ]
    )

    data = waterfall.to_json_data(layout, "IN_PROGRESS", 2)

    assert data["ids"] == ["a", "b"]
    assert data["type_names"] == ["AGENT", "LLM"]
    assert data["types"] == [0, 1]
    assert data["status"] == [1, 2]
    assert data["dur"] == [10, -1]
    assert data["size"] == [2, 1]
    assert data["critical"] == [0, 1]
    assert data["state"] == "IN_PROGRESS"


def test_an_empty_trace_has_an_empty_layout():
    layout = waterfall.build([])

    assert len(layout) == 0
    assert waterfall.critical_path(layout) == []
