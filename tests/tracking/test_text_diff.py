"""tracking/text_diff.py: no database."""

from __future__ import annotations

import random

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

    diff = text_diff.diff_text(a, b)

    assert "Too large to diff" in diff.notice
    assert len(diff.segments[0].text) == text_diff.SHOWN_WHEN_TOO_LARGE


def test_many_changed_lines_diff_quickly():
    a = "".join(f"row {i} value {i * 7}\n" for i in range(3_000))
    b = "".join(f"row {i} value {i * 7 + (i % 3 == 0)}\n" for i in range(3_000))

    diff = text_diff.diff_text(a, b)

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


def shown(diff):
    return sum(len(s.text) for s in diff.segments)


def test_a_long_equal_text_is_folded_after_its_first_lines():
    text = "".join(f"line {i}\n" for i in range(100))

    diff = text_diff.diff_text(text, text)

    assert not diff.changed
    assert ops(diff) == [
        (EQUAL, "".join(f"line {i}\n" for i in range(text_diff.EQUAL_LINES))),
        (SKIP, 100 - text_diff.EQUAL_LINES),
    ]


def test_an_equal_huge_value_is_cut_with_a_notice():
    value = {"blob": "x" * 3_000_000}

    diff = text_diff.diff_value(value, value, "inputs")

    assert not diff.changed
    assert shown(diff.text) <= text_diff.SHOWN_LIMIT
    assert "Cut" in diff.text.notice


def test_a_line_diff_with_many_repeated_lines_is_bounded_and_says_so():
    rng_a, rng_b = random.Random(1), random.Random(2)
    a = {"pixels": [rng_a.randrange(256) for _ in range(20_000)]}
    b = {"pixels": [rng_b.randrange(256) for _ in range(20_000)]}

    # Unbounded, difflib took 1.8 s on this (bench/trace_diff.py times the panel).
    diff = text_diff.diff_value(a, b, "inputs")

    assert diff.changed and text_diff.NOTICE_NO_DIFF in diff.text.notice
    # Both sides' differing parts are in view, each cut.
    assert [s.op for s in diff.text.segments if s.op in (DELETE, INSERT)] == [DELETE, INSERT]
    assert shown(diff.text) <= 2 * text_diff.SHOWN_WHEN_TOO_LARGE + 100


def test_a_long_answer_against_another_is_diffed_word_by_word_quickly():
    vocab = [f"word{i}" for i in range(800)]
    weights = [1 / (i + 1) for i in range(800)]
    answers = [
        {"choices": [{"message": {"role": "assistant", "content": " ".join(words)}}]}
        for words in (random.Random(seed).choices(vocab, weights, k=1_499) for seed in (1, 2))
    ]

    budget = text_diff.Budget()
    diff = text_diff.diff_value(*answers, "outputs", budget=budget)

    # Spaces as tokens of their own cost 0.7-1.4 s here; words carrying their space fit.
    assert budget.words >= 0
    assert [m.kind for m in diff.messages] == ["changed"]
    assert not diff.messages[0].diff.notice  # compared word by word within the budget


def test_word_diffs_of_one_request_share_a_budget():
    rng = random.Random(1)
    a_lines, b_lines = [], []
    for _ in range(6):
        words = [f"w{rng.randrange(40)}" for _ in range(1_400)]
        shuffled = words[:]
        rng.shuffle(shuffled)
        a_lines.append(" ".join(words) + "\nsame\nsame\nsame\nsame\n")
        b_lines.append(" ".join(shuffled) + "\nsame\nsame\nsame\nsame\n")
    budget = text_diff.Budget()

    # ~7 s with a word budget per block: one budget for the request bounds it.
    diff = text_diff.diff_text("".join(a_lines), "".join(b_lines), budget=budget)

    assert text_diff.NOTICE_LINES in diff.notice
    assert budget.words < text_diff.WORD_WORK
    assert rebuilt(diff, "a") == "".join(a_lines)[: len(rebuilt(diff, "a"))]


def test_a_change_past_the_messages_shown_one_by_one_still_shows():
    a = {"messages": [{"role": "user", "content": f"message {k}"} for k in range(250)]}
    b = {"messages": [{"role": "user", "content": f"message {k}"} for k in range(250)]}
    b["messages"][230]["content"] = "message two hundred thirty"

    diff = text_diff.diff_value(a, b, "inputs")

    assert diff.changed
    assert len(diff.messages) == 200 and all(m.kind == "same" for m in diff.messages)
    assert diff.text is not None and diff.text.changed
    assert "after the first 200" in diff.text.notice
    assert "two hundred thirty" in rebuilt(diff.text, "b")
    assert "message 230" in rebuilt(diff.text, "a")
    assert not text_diff.diff_value(a, a, "inputs").changed
