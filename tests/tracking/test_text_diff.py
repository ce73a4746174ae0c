"""tracking/text_diff.py: no database."""

from __future__ import annotations

import time

from tracking import text_diff
from tracking.text_diff import DELETE, EQUAL, INSERT, SKIP


def ops(diff):
    return [(s.op, s.text if s.op != SKIP else s.lines) for s in diff.segments]


def rebuilt(diff, side):
    """One side's text put back together from the segments (skips aside)."""
    keep = {EQUAL, DELETE} if side == "a" else {EQUAL, INSERT}
    return "".join(s.text for s in diff.segments if s.op in keep)


def test_equal_texts_are_one_unchanged_segment():
    diff = text_diff.diff_text("same\ntext", "same\ntext")

    assert not diff.changed
    assert ops(diff) == [(EQUAL, "same\ntext")]


def test_a_changed_word_is_marked_inside_its_line():
    diff = text_diff.diff_text("The capital is Paris.\nBye\n", "The capital is Lyon.\nBye\n")

    assert diff.changed
    assert ops(diff) == [
        (EQUAL, "The capital is "),
        (DELETE, "Paris"),
        (INSERT, "Lyon"),
        (EQUAL, ".\nBye\n"),
    ]
    assert not any(s.block for s in diff.segments if s.op != EQUAL)


def test_added_and_removed_lines_are_whole_blocks():
    diff = text_diff.diff_text("one\ntwo\nthree\n", "one\nthree\nfour\n")

    assert ops(diff) == [
        (EQUAL, "one\n"),
        (DELETE, "two\n"),
        (EQUAL, "three\n"),
        (INSERT, "four\n"),
    ]
    assert all(s.block for s in diff.segments if s.op != EQUAL)


def test_a_rewritten_line_reads_as_lines_out_and_in_not_word_soup():
    diff = text_diff.diff_text("alpha beta gamma\n", "completely other words here\n")

    assert ops(diff) == [
        (DELETE, "alpha beta gamma\n"),
        (INSERT, "completely other words here\n"),
    ]


def test_long_unchanged_runs_are_skipped_around_the_changes():
    a = "".join(f"line {i}\n" for i in range(100))
    b = a.replace("line 50\n", "line fifty\n")

    diff = text_diff.diff_text(a, b)

    kinds = [s.op for s in diff.segments]
    assert kinds[0] == SKIP and kinds[-1] == SKIP
    assert diff.segments[0].lines == 47  # lines 0-46; 47, 48, 49 are context
    assert "line 49\n" in diff.segments[1].text
    assert "fifty" in rebuilt(diff, "b") and "line 50" in rebuilt(diff, "a")


def test_both_sides_can_be_rebuilt_from_a_word_diff():
    a = "Your order 42 has shipped.\nTrack it here.\nThanks!"
    b = "Your order 42 was delayed.\nTrack it here.\nSorry, thanks!"

    diff = text_diff.diff_text(a, b, context=10)

    assert rebuilt(diff, "a") == a and rebuilt(diff, "b") == b


def test_large_texts_are_diffed_by_line_only_with_a_notice():
    a = "word " * 30_000 + "\nend\n"
    b = "word " * 30_000 + "\nEND\n"

    diff = text_diff.diff_text(a, b)

    assert "by line only" in diff.notice
    assert (DELETE, "end\n") in ops(diff) and (INSERT, "END\n") in ops(diff)


def test_huge_texts_are_not_diffed_but_shown_cut():
    a, b = "a" * 1_500_000, "b" * 1_500_000

    started = time.perf_counter()
    diff = text_diff.diff_text(a, b)

    assert time.perf_counter() - started < 0.5
    assert "Too large to diff" in diff.notice
    assert len(diff.segments[0].text) == text_diff.SHOWN_WHEN_TOO_LARGE


def test_many_changed_lines_diff_quickly():
    a = "".join(f"row {i} value {i * 7}\n" for i in range(3_000))
    b = "".join(f"row {i} value {i * 7 + (i % 3 == 0)}\n" for i in range(3_000))

    started = time.perf_counter()
    diff = text_diff.diff_text(a, b)

    assert time.perf_counter() - started < 2
    assert rebuilt(diff, "b").count("\n") < b.count("\n") + 1


def test_json_values_are_diffed_with_sorted_keys():
    a = {"query": "order 42", "top_k": 5}
    b = {"top_k": 5, "query": "order 42"}

    assert not text_diff.diff_value(a, b, "inputs").changed
    changed = text_diff.diff_value(a, {"query": "order 43", "top_k": 5}, "inputs")
    assert changed.changed and changed.text is not None and not changed.messages


def test_strings_are_diffed_as_text_and_none_as_empty():
    diff = text_diff.diff_value(None, "answer", "outputs")

    assert diff.changed and ops(diff.text) == [(INSERT, "answer")]


def test_chat_messages_are_diffed_message_by_message():
    a = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of France?"},
        ]
    }
    b = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of Italy?"},
            {
                "role": "assistant",
                "tool_calls": [{"function": {"name": "search", "arguments": '{"q": "Italy"}'}}],
            },
        ]
    }

    diff = text_diff.diff_value(a, b, "inputs")

    assert diff.changed and diff.text is None
    assert [(m.kind, m.role) for m in diff.messages] == [
        ("same", "system"),
        ("changed", "user"),
        ("added", "assistant"),
    ]
    assert (DELETE, "France") in ops(diff.messages[1].diff)
    assert "[tool call] search" in diff.messages[2].diff.segments[0].text


def test_chat_outputs_are_read_from_choices():
    a = {"choices": [{"message": {"role": "assistant", "content": "Paris."}}]}
    b = {"choices": [{"message": {"role": "assistant", "content": "Lyon."}}]}

    diff = text_diff.diff_value(a, b, "outputs")

    assert [m.kind for m in diff.messages] == ["changed"]


def test_a_removed_message_is_marked_removed():
    a = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    b = [{"role": "user", "content": "hi"}]

    diff = text_diff.diff_value(a, b, "inputs")

    assert [(m.kind, m.role_a) for m in diff.messages] == [
        ("same", "user"),
        ("removed", "assistant"),
    ]
