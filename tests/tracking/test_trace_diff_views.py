"""The trace diff page, its aligned layout JSON and its span-pair partial."""

from __future__ import annotations

import gzip
import json

import pytest

from access.models import ExperimentGrant, Level
from tests.rows import make_span, make_trace
from tests.xss import CORPUS, injected_markup
from tracking import cost
from tracking.models import Experiment

pytestmark = pytest.mark.django_db


def agent(trace, *, answer="Paris.", extra_step=False, slow_search=False):
    """An agent run: plan (LLM), search (TOOL), [check (TOOL)], write (LLM)."""
    make_span(trace, "r", 1_000, name="agent", span_type="AGENT", end_ns=900_000_000)
    make_span(
        trace,
        "p",
        2_000,
        parent="r",
        name="plan",
        span_type="LLM",
        inputs={"messages": [{"role": "user", "content": "Capital of France?"}]},
        outputs={"choices": [{"message": {"role": "assistant", "content": "Search it."}}]},
        attributes={
            cost.USAGE_ATTRIBUTE: {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
        },
    )
    search_end = 300_000_000 if slow_search else 100_000_000
    make_span(trace, "s", 3_000, parent="r", name="search", span_type="TOOL", end_ns=search_end)
    if extra_step:
        make_span(trace, "c", 4_000, parent="r", name="check", span_type="TOOL")
    make_span(
        trace,
        "w",
        5_000,
        parent="r",
        name="write",
        span_type="LLM",
        outputs={"choices": [{"message": {"role": "assistant", "content": answer}}]},
    )


def layout(client, a, b, **headers):
    response = client.get(f"/traces/diff/layout/?a={a.trace_id}&b={b.trace_id}", headers=headers)
    assert response.status_code == 200, response.content[:300]
    body = response.content
    if response.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return json.loads(body)


# --- The page -------------------------------------------------------------------------------


def test_the_page_shows_both_traces_and_where_the_layout_is(client, experiment):
    a, b = make_trace(experiment, 1, name="run A"), make_trace(experiment, 2, name="run B")

    response = client.get(f"/traces/diff/?a={a.trace_id}&b={b.trace_id}")

    assert response.status_code == 200
    html = response.content.decode()
    assert a.trace_id in html and b.trace_id in html
    assert f'data-layout-url="/traces/diff/layout/?a={a.trace_id}&amp;b={b.trace_id}"' in html


def test_a_bare_visit_is_a_form_and_a_half_filled_one_a_400(client, experiment):
    a = make_trace(experiment, 1)

    bare = client.get("/traces/diff/")
    half = client.get(f"/traces/diff/?a={a.trace_id}")

    assert bare.status_code == 200 and b'name="b"' in bare.content
    assert half.status_code == 400
    assert b"Give two traces to compare" in half.content
    assert f'value="{a.trace_id}"'.encode() in half.content  # the form keeps what was given


@pytest.mark.parametrize("query", ["a=x&b=" + "y" * 65, "a=x%00&b=y", "a=&b=y", ""])
def test_bad_ids_are_a_400_with_a_message_for_the_layout(client, query):
    response = client.get(f"/traces/diff/layout/?{query}")

    assert response.status_code == 400
    # A NUL is refused by middleware before the view, in words; the view answers in JSON.
    assert b"trace" in response.content or b"NUL" in response.content


def test_an_unknown_trace_is_a_404(client, experiment):
    a = make_trace(experiment, 1)
    missing = "tr-" + "f" * 32

    assert client.get(f"/traces/diff/?a={a.trace_id}&b={missing}").status_code == 404
    assert client.get(f"/traces/diff/layout/?a={missing}&b={a.trace_id}").status_code == 404


def test_a_trace_the_user_may_not_read_is_a_404_as_on_the_trace_page(
    client, auth_on, charlie, experiment
):
    private = Experiment.objects.create(name="private")
    ExperimentGrant.objects.create(experiment=private, level=Level.NONE)
    mine, hidden = make_trace(experiment, 1), make_trace(private, 2)
    make_span(hidden, "r", 1, name="secret step")
    client.force_login(charlie)
    query = f"a={mine.trace_id}&b={hidden.trace_id}"

    assert client.get(f"/traces/{hidden.trace_id}/").status_code == 404
    assert client.get(f"/traces/diff/?{query}").status_code == 404
    response = client.get(f"/traces/diff/layout/?{query}")
    assert response.status_code == 404 and b"secret step" not in response.content
    assert client.get(f"/traces/diff/?a={mine.trace_id}&b={mine.trace_id}").status_code == 200


# --- The layout JSON ------------------------------------------------------------------------


def test_the_layout_marks_the_added_step_and_the_changed_answer(client, experiment):
    a, b = make_trace(experiment, 1, total_tokens=15), make_trace(experiment, 2, span_count=5)
    agent(a)
    agent(b, answer="Lyon.", extra_step=True, slow_search=True)

    data = layout(client, a, b)

    rows, spans = data["rows"], data["spans"]
    names = [
        (
            spans["a"]["names"][i] if i >= 0 else None,
            spans["b"]["names"][j] if j >= 0 else None,
        )
        for i, j in zip(rows["a"], rows["b"], strict=True)
    ]
    assert names == [
        ("agent", "agent"),
        ("plan", "plan"),
        ("search", "search"),
        (None, "check"),
        ("write", "write"),
    ]
    assert rows["kind"] == [0, 0, 1, 2, 1]
    assert rows["flags"][2] == 32  # only slower: 100 ms -> 300 ms
    assert rows["flags"][4] == 4  # outputs changed
    assert rows["depth"] == [0, 1, 1, 1, 1] and rows["parent"] == [-1, 0, 0, 0, 0]
    assert data["changes"] == [2, 3, 4]
    assert data["summary"]["added"] == 1 and data["summary"]["changed"] == 2
    assert data["summary"]["a"]["tokens"] == 15
    assert data["a"]["trace_id"] == a.trace_id and data["b"]["span_count"] == 5
    assert data["type_names"] == ["AGENT", "LLM", "TOOL"]


def test_token_usage_and_cost_changes_are_flagged(client, experiment):
    a, b = make_trace(experiment, 1), make_trace(experiment, 2)
    for trace, tokens, dollars in ((a, 10, 0.1), (b, 12, 0.2)):
        attributes = {
            cost.USAGE_ATTRIBUTE: {"input_tokens": tokens, "output_tokens": 1},
            cost.COST_ATTRIBUTE: {"input_cost": 0, "output_cost": 0, "total_cost": dollars},
        }
        make_span(trace, "r", 1, name="llm", span_type="LLM", attributes=attributes)

    data = layout(client, a, b)

    assert data["rows"]["flags"] == [8 | 16]


def test_a_trace_diffed_with_itself_has_no_changes(client, experiment):
    a = make_trace(experiment, 1)
    agent(a)

    data = layout(client, a, a)

    assert data["changes"] == [] and data["summary"]["same"] == 4


def test_the_layout_is_gzipped_and_keeps_names_as_data(client, experiment):
    a, b = make_trace(experiment, 1), make_trace(experiment, 2)
    make_span(a, "r", 1, name="<script>alert(1)</script>")
    for i in range(60):
        make_span(b, f"s{i:02d}", 1 + i, parent="s00" if i else "", name=f"step {i}")

    response = client.get(
        f"/traces/diff/layout/?a={a.trace_id}&b={b.trace_id}",
        headers={"Accept-Encoding": "gzip"},
    )

    assert response["Content-Encoding"] == "gzip"
    assert response["Content-Type"] == "application/json"
    data = json.loads(gzip.decompress(response.content))
    assert data["spans"]["a"]["names"] == ["<script>alert(1)</script>"]


@pytest.mark.parametrize("spans_in_b", [3, 300])
def test_the_layout_runs_a_fixed_number_of_queries(
    client, experiment, django_assert_max_num_queries, spans_in_b
):
    a, b = make_trace(experiment, 1), make_trace(experiment, 2)
    for trace, n in ((a, 10), (b, spans_in_b)):
        for i in range(n):
            make_span(trace, f"s{i:03d}", 1_000 + i, parent="s000" if i else "")

    # Both traces in one query, then each one's spans: however many spans there are.
    with django_assert_max_num_queries(3):
        data = layout(client, a, b)

    assert len(data["rows"]["a"]) == max(10, spans_in_b)


# --- The span-pair partial ------------------------------------------------------------------


def spans(client, a, b, sa="", sb=""):
    return client.get(f"/traces/diff/spans/?a={a.trace_id}&b={b.trace_id}&sa={sa}&sb={sb}")


def test_a_pair_shows_both_spans_facts_and_the_answer_diffed_word_by_word(client, experiment):
    a, b = make_trace(experiment, 1), make_trace(experiment, 2)
    agent(a, answer="The capital is Paris.")
    agent(b, answer="The capital is Lyon.", slow_search=True)

    write = spans(client, a, b, "w", "w")
    search = spans(client, a, b, "s", "s")

    assert write.status_code == 200
    html = write.content.decode()
    assert '<del class="diff-words">Paris</del>' in html
    assert '<ins class="diff-words">Lyon</ins>' in html
    assert html.count("~ changed") == 1  # outputs; inputs are the same
    assert "+200 ms (+200%)" in search.content.decode()


def test_an_added_span_has_one_side(client, experiment):
    a, b = make_trace(experiment, 1), make_trace(experiment, 2)
    agent(a)
    agent(b, extra_step=True)

    response = spans(client, a, b, "", "c")

    html = response.content.decode()
    assert response.status_code == 200
    assert "+ added" in html and "not in A" in html
    assert 'data-span-b="c"' in html and "data-span-a" not in html


def test_chat_inputs_are_diffed_message_by_message(client, experiment):
    a, b = make_trace(experiment, 1), make_trace(experiment, 2)
    for trace, question in ((a, "Capital of France?"), (b, "Capital of Italy?")):
        messages = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": question},
        ]
        make_span(trace, "p", 1, name="plan", span_type="LLM", inputs={"messages": messages})

    html = spans(client, a, b, "p", "p").content.decode()

    assert 'data-kind="same"' in html and 'data-kind="changed"' in html
    assert '<del class="diff-words">France</del>' in html


def test_token_and_cost_deltas_are_shown(client, experiment):
    a, b = make_trace(experiment, 1), make_trace(experiment, 2)
    for trace, n, dollars in ((a, 10, 0.5), (b, 30, 1.5)):
        attributes = {
            cost.USAGE_ATTRIBUTE: {"input_tokens": n, "output_tokens": 0, "total_tokens": n},
            cost.COST_ATTRIBUTE: {"input_cost": dollars, "output_cost": 0, "total_cost": dollars},
        }
        make_span(trace, "l", 1, name="llm", span_type="LLM", attributes=attributes)

    html = spans(client, a, b, "l", "l").content.decode()

    assert "+20" in html and "+$1.00" in html


@pytest.mark.parametrize(
    "query",
    ["a=x&b=y", "a=x&b=y&sa=&sb=", "a=&b=y&sa=s", "a=x&b=y&sa=" + "s" * 17],
)
def test_bad_span_queries_are_a_400(client, query):
    response = client.get(f"/traces/diff/spans/?{query}")

    assert response.status_code == 400 and response.content


def test_a_span_its_trace_lacks_is_a_404(client, experiment):
    a, b = make_trace(experiment, 1), make_trace(experiment, 2)
    agent(a)
    agent(b, extra_step=True)

    assert spans(client, a, b, "c", "").status_code == 404  # "c" is only in B
    assert spans(client, a, b, "w", "nope").status_code == 404


def test_the_partial_of_a_trace_the_user_may_not_read_is_a_404(
    client, auth_on, charlie, experiment
):
    private = Experiment.objects.create(name="private")
    ExperimentGrant.objects.create(experiment=private, level=Level.NONE)
    mine, hidden = make_trace(experiment, 1), make_trace(private, 2)
    make_span(mine, "r", 1)
    make_span(hidden, "r", 1, outputs="secret answer")
    client.force_login(charlie)

    response = spans(client, mine, hidden, "r", "r")

    assert response.status_code == 404 and b"secret answer" not in response.content


def test_the_partial_runs_a_fixed_number_of_queries(
    client, experiment, django_assert_max_num_queries
):
    a, b = make_trace(experiment, 1), make_trace(experiment, 2)
    agent(a)
    agent(b, answer="Lyon.")

    # Both traces, then both spans.
    with django_assert_max_num_queries(2):
        assert spans(client, a, b, "w", "w").status_code == 200


def test_the_xss_corpus_in_both_sides_stays_text(client, experiment):
    a, b = make_trace(experiment, 1), make_trace(experiment, 2)
    for n, item in enumerate(CORPUS):
        fields = {
            "name": item,
            "inputs": {"messages": [{"role": "user", "content": item}]},
            "outputs": {"text": item},
            "status": "ERROR",
            "status_message": item,
        }
        make_span(a, f"a{n}", n, **fields)
        make_span(b, f"b{n}", n, **{**fields, "outputs": item + " changed", "name": item + "!"})

    for n, _item in enumerate(CORPUS):
        for sa, sb in ((f"a{n}", f"b{n}"), (f"a{n}", ""), ("", f"b{n}")):
            response = spans(client, a, b, sa, sb)
            assert response.status_code == 200
            html = response.content.decode()
            assert injected_markup(html) == [], (n, sa, sb)
    layout_names = layout(client, a, b)["spans"]["b"]["names"]
    assert CORPUS[0] + "!" in layout_names
