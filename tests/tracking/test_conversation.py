"""The trace page's Conversation tab (tracking/conversation.py, its partial) and the span
details' renderers per span type (tracking/span_contents.py)."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.rows import make_span, make_trace
from tests.xss import CORPUS, injected_markup
from tracking import chat, span_contents
from tracking.models import Span

HX = {"HX-Request": "true"}
QUESTION = {
    "messages": [
        {"role": "system", "content": "You help with orders."},
        {"role": "user", "content": "Where is **order 42**?"},
    ]
}
ANSWER = {"choices": [{"message": {"role": "assistant", "content": "It has *shipped*."}}]}
DOCS = [
    {
        "page_content": "Orders ship within two days.",
        "metadata": {"doc_uri": "https://docs.example/shipping", "score": 0.912, "chunk": 3},
        "id": "doc-1",
    },
    {"page_content": "Returns take a week.", "metadata": {"doc_uri": "kb/returns.md"}},
]
THINKING = {
    "choices": [
        {
            "message": {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "The user wants order 42; look it up."},
                    {"type": "text", "text": "Let me check."},
                ],
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup_order", "arguments": '{"order_id": 42}'},
                    }
                ],
            }
        }
    ]
}
USAGE = {"mlflow.chat.tokenUsage": {"input_tokens": 100, "output_tokens": 20, "total_tokens": 120}}


def agent_trace(experiment, n=1, **root):
    """A chat agent: retrieves, thinks and asks for a tool, calls it, then answers."""
    trace = make_trace(experiment, n, span_count=5)
    make_span(trace, "a" * 16, 0, name="agent", span_type="AGENT",
              inputs=root.get("inputs", QUESTION), outputs=root.get("outputs", ANSWER),
              end_ns=100)  # fmt: skip
    make_span(trace, "b" * 16, 10, "a" * 16, name="search_docs", span_type="RETRIEVER",
              inputs={"query": "order shipping"}, outputs=root.get("docs", DOCS))  # fmt: skip
    make_span(trace, "c" * 16, 20, "a" * 16, name="plan", span_type="CHAT_MODEL",
              inputs=QUESTION, outputs=THINKING, attributes=USAGE)  # fmt: skip
    make_span(trace, "d" * 16, 30, "a" * 16, name="lookup_order", span_type="TOOL",
              inputs=root.get("tool_inputs", {"order_id": 42}),
              outputs=root.get("tool_outputs", {"status": "shipped"}))  # fmt: skip
    make_span(trace, "e" * 16, 40, "a" * 16, name="format", span_type="CHAIN",
              inputs={"secret": "chain-inputs"})  # fmt: skip
    return trace


# --- The trace page's tabs -----------------------------------------------------------------


@pytest.mark.django_db
def test_a_chat_trace_opens_on_its_conversation(client, experiment):
    trace = agent_trace(experiment)

    html = client.get(f"/traces/{trace.trace_id}/").content.decode()

    assert 'id="tab-conversation"' in html and 'id="tab-waterfall"' in html
    assert f'hx-get="/traces/{trace.trace_id}/conversation/" hx-trigger="load"' in html
    assert '<section class="section conversation" id="conversation" role="tabpanel"' in html
    assert 'id="waterfall" aria-label="Waterfall" role="tabpanel" hidden' in html
    assert "js/trace_views.js" in html
    assert "shipped" not in html  # the conversation comes with its partial, not the page


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["?view=waterfall", "?span=" + "d" * 16])
def test_the_waterfall_is_opened_when_asked_for(client, experiment, query):
    trace = agent_trace(experiment)

    html = client.get(f"/traces/{trace.trace_id}/{query}").content.decode()

    assert 'hx-trigger="show-conversation once"' in html
    assert 'id="conversation" role="tabpanel" aria-labelledby="tab-conversation" hidden' in html
    assert 'id="waterfall" aria-label="Waterfall" role="tabpanel"\n' in html


@pytest.mark.django_db
def test_a_trace_without_chat_has_no_conversation_tab(client, experiment):
    trace = make_trace(experiment, 1)
    make_span(trace, "a", 1, name="root", inputs={"question": "hi"}, outputs="hello")

    html = client.get(f"/traces/{trace.trace_id}/?view=conversation").content.decode()

    assert "tab-conversation" not in html and "trace_views.js" not in html
    assert 'id="waterfall" aria-label="Waterfall"\n' in html


# --- The conversation partial --------------------------------------------------------------


def conversation_html(client, trace) -> str:
    response = client.get(f"/traces/{trace.trace_id}/conversation/", headers=HX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html  # the fragment only
    return html


@pytest.mark.django_db
def test_the_conversation_is_the_question_the_work_then_the_answer(client, experiment):
    trace = agent_trace(experiment)

    html = conversation_html(client, trace)

    order = [
        "You help with orders.",
        "<strong>order 42</strong>",
        "search_docs",
        "Orders ship within two days.",
        "The user wants order 42; look it up.",
        "Let me check.",
        "lookup_order",
        "&quot;shipped&quot;",
        "It has <em>shipped</em>.",
    ]
    at = [html.index(text) for text in order]
    assert at == sorted(at), "items out of the trace's order"
    assert "chain-inputs" not in html  # CHAIN spans are not in the conversation
    assert '<details class="convo-reasoning"><summary class="small">Reasoning</summary>' in html
    assert "score 0.912" in html
    assert 'href="https://docs.example/shipping"' in html
    assert '<span class="mono doc-uri">kb/returns.md</span>' in html
    assert "120 tokens" in html
    assert "&quot;order_id&quot;: 42" in html  # the tool's arguments, pretty
    assert f'href="/traces/{trace.trace_id}/?span={"d" * 16}&amp;view=waterfall"' in html
    assert f'data-span-id="{"d" * 16}"' in html


@pytest.mark.django_db
def test_tool_calls_in_the_messages_are_paired_with_their_results(client, experiment):
    inputs = {
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_9", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
            {"role": "tool", "tool_call_id": "call_9", "content": "18 C and sunny"},
            {"role": "user", "content": "And tomorrow?"},
        ]
    }  # fmt: skip
    trace = make_trace(experiment, 1)
    make_span(trace, "a", 1, name="agent", inputs=inputs, outputs="Rain, 12 C.")

    html = conversation_html(client, trace)

    assert html.count("get_weather") == 1
    assert "&quot;city&quot;: &quot;Paris&quot;" in html
    assert html.count("18 C and sunny") == 1  # inside its call, not again as a message
    assert html.index("18 C and sunny") < html.index("And tomorrow?") < html.index("Rain, 12 C.")


@pytest.mark.django_db
def test_an_answer_repeating_the_history_and_tool_calls_shows_them_once(client, experiment):
    history = QUESTION["messages"]
    outputs = {
        "messages": [
            *history,
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "c1", "function": {"name": "lookup_order", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "tool-result-in-outputs"},
            {"role": "assistant", "content": "Final: shipped."},
        ]
    }  # fmt: skip
    trace = agent_trace(experiment, outputs=outputs)

    html = conversation_html(client, trace)

    assert html.count("You help with orders.") == 1
    assert "tool-result-in-outputs" not in html  # the TOOL span shows the call
    assert html.count("Final: shipped.") == 1


@pytest.mark.django_db
def test_responses_reasoning_items_are_folded(client, experiment):
    outputs = {
        "output": [
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Thought hard."}]},
            {"type": "message", "role": "assistant",
             "content": [{"type": "output_text", "text": "Done."}]},
        ]
    }  # fmt: skip
    trace = make_trace(experiment, 1)
    make_span(trace, "a", 1, name="agent", inputs={"input": "Think"}, outputs=outputs)

    html = conversation_html(client, trace)

    assert '<summary class="small">Reasoning</summary>' in html
    assert html.index("Thought hard.") < html.index("Done.")


@pytest.mark.django_db
def test_the_conversation_of_a_trace_without_chat_says_so(client, experiment):
    trace = make_trace(experiment, 1)
    make_span(trace, "a", 1, name="root", inputs={"question": "hi"})

    html = conversation_html(client, trace)

    assert "holds no chat messages" in html


@pytest.mark.django_db
def test_the_conversation_is_a_page_of_its_own_and_404_for_an_unknown_trace(client, experiment):
    trace = agent_trace(experiment)

    page = client.get(f"/traces/{trace.trace_id}/conversation/")
    missing = client.get("/traces/tr-nope/conversation/")

    assert page.status_code == 200 and "<html" in page.content.decode()
    assert "It has <em>shipped</em>." in page.content.decode()
    assert missing.status_code == 404


@pytest.mark.django_db
def test_hostile_contents_stay_inert_in_the_conversation(client, experiment):
    text = "\n\n".join(CORPUS)
    inputs = {"messages": [
        {"role": "user", "content": text, "name": CORPUS[1]},
        {"role": "assistant", "content": text, "reasoning_content": text, "tool_calls": [
            {"id": CORPUS[1], "function": {"name": CORPUS[0], "arguments": text}}]},
        {"role": "tool", "tool_call_id": CORPUS[1], "content": text},
    ]}  # fmt: skip
    docs = [
        {"page_content": item, "metadata": {"doc_uri": item, "score": 0.5, item: item}}
        for item in CORPUS
    ]
    trace = agent_trace(
        experiment,
        inputs=inputs,
        outputs=text,
        docs=docs,
        tool_inputs={item: item for item in CORPUS},
        tool_outputs=text,
    )
    Span.objects.filter(trace=trace).update(name=CORPUS[2])

    html = conversation_html(client, trace)

    assert injected_markup(html) == []  # javascript: URIs included
    assert "&lt;script&gt;alert(&#x27;script&#x27;)&lt;/script&gt;" in html


@pytest.mark.django_db
def test_a_large_trace_costs_a_bounded_number_of_queries(client, experiment):
    trace = make_trace(experiment, 1, span_count=1_201)
    make_span(trace, "root", 0, name="agent", span_type="AGENT", inputs=QUESTION, outputs=ANSWER)
    Span.objects.bulk_create(
        Span(trace=trace, span_id=f"{i:016x}", parent_span_id="root", name=f"tool_{i}",
             span_type=("TOOL", "CHAIN", "LLM")[i % 3], start_ns=10 + i, end_ns=20 + i,
             inputs={"i": i}, outputs={"ok": i})
        for i in range(1_200)
    )  # fmt: skip

    with CaptureQueriesContext(connection) as queries:
        html = conversation_html(client, trace)

    # The trace, the capped spans, and the count of the rest.
    assert len(queries) == 3, [q["sql"] for q in queries]
    assert html.count('class="convo-span small"') == 3 + 200  # 2 messages, answer, 200 spans
    assert "600 more tool, retriever and model spans in the" in html
    assert "tool_1198" not in html


# --- Span details, per span type -----------------------------------------------------------


def details(client, trace, span_id) -> str:
    response = client.get(f"/traces/{trace.trace_id}/spans/{span_id}/", headers=HX)
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.django_db
def test_a_retriever_span_opens_on_its_documents(client, experiment):
    trace = agent_trace(experiment)

    html = details(client, trace, "b" * 16)

    documents_tab = 'data-tab="documents" aria-selected="true">Documents <span class="count">2<'
    assert documents_tab in html
    assert 'data-tab="inputs" aria-selected="false"' in html
    assert 'class="doc-card"' in html and "score 0.912" in html
    assert '<dt>chunk</dt><dd class="mono">3</dd>' in html


@pytest.mark.django_db
def test_a_tool_span_opens_on_its_call(client, experiment):
    trace = agent_trace(experiment, tool_inputs='{"order_id": 42, "verbose": true}')

    html = details(client, trace, "d" * 16)

    assert 'data-tab="call" aria-selected="true"' in html
    assert '<span class="mono tool-call-name">lookup_order</span>' in html
    assert "&quot;verbose&quot;: true" in html  # a JSON string argument, indented
    assert "&quot;status&quot;: &quot;shipped&quot;" in html


@pytest.mark.django_db
def test_a_chat_model_span_shows_its_messages_with_usage_and_cost(client, experiment):
    trace = agent_trace(experiment)
    cost = {"input_cost": 0.001, "output_cost": 0.002, "total_cost": 0.003}
    Span.objects.filter(span_id="c" * 16).update(
        attributes={**USAGE, "mlflow.llm.cost": cost, "mlflow.llm.model": "gpt-4o-mini"}
    )

    html = details(client, trace, "c" * 16)

    assert 'data-tab="chat" aria-selected="true"' in html
    usage = html[html.index('class="small chat-usage"') :]
    assert usage.index("120") < usage.index("100 in, 20 out") < usage.index("$0.0030")
    assert "gpt-4o-mini" in usage
    assert "Reasoning" in html and "Let me check." in html


@pytest.mark.django_db
@pytest.mark.parametrize(
    "outputs",
    [
        [[0.123456789] * 1536] * 3,
        {"data": [{"embedding": [0.123456789] * 1536, "index": i} for i in range(3)]},
        {"embeddings": [[0.123456789] * 1536] * 3},
    ],
)
def test_an_embedding_span_shows_its_vectors_count_and_size_not_the_numbers(
    client, experiment, outputs
):
    trace = make_trace(experiment, 1)
    make_span(trace, "e", 1, name="embed", span_type="EMBEDDING", inputs=["a", "b", "c"],
              outputs=outputs)  # fmt: skip

    html = details(client, trace, "e")

    assert "3 vectors \u00d7 1,536 dims" in html
    assert "0.123456789" not in html
    assert f"/traces/{trace.trace_id}/spans/e/outputs/" in html  # the raw JSON link stays


@pytest.mark.django_db
def test_hostile_contents_stay_inert_in_typed_span_details(client, experiment):
    docs = [{"page_content": item, "metadata": {"doc_uri": item, item: item}} for item in CORPUS]
    trace = agent_trace(
        experiment, docs=docs, tool_inputs={i: i for i in CORPUS}, tool_outputs=CORPUS
    )
    Span.objects.filter(trace=trace).update(name=CORPUS[2])

    for span_id in ("b" * 16, "d" * 16):
        html = details(client, trace, span_id)
        assert injected_markup(html) == [], span_id  # javascript: URIs included


# --- Pure readers --------------------------------------------------------------------------


def test_documents_are_read_from_the_common_shapes():
    langchain = span_contents.documents(DOCS)
    llama = span_contents.documents({"documents": [{"text": "t", "score": 0.5, "url": "u"}]})

    assert [d.content.text for d in langchain.documents] == [d["page_content"] for d in DOCS]
    assert langchain.documents[0].score == 0.912 and langchain.documents[0].uri_is_link
    assert not langchain.documents[1].uri_is_link
    assert (llama.documents[0].score, llama.documents[0].uri) == (0.5, "u")
    assert span_contents.documents([{"query": "not a document"}]) is None
    assert span_contents.documents("text") is None


def test_documents_are_capped_and_say_so():
    found = span_contents.documents([{"content": "x" * 5_000}] * 60)

    assert len(found.documents) == 50 and found.omitted == 10
    assert found.documents[0].content.omitted == 3_000


def test_vectors_are_counted_and_anything_else_is_not_vectors():
    assert span_contents.vectors([0.1, 0.2]) == span_contents.Vectors(1, 2)
    assert span_contents.vectors([[0.1], [0.2, 0.3]]).mixed
    assert span_contents.vectors({"text": "hello"}) is None
    assert span_contents.vectors([["a"]]) is None


def test_reasoning_is_kept_apart_from_what_was_said():
    messages = chat.read(
        [
            {"role": "assistant", "content": "Hi", "reasoning_content": "deepseek thought"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "claude thought"},
                {"type": "text", "text": "Yo"}]},
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "o3 thought"}]},
        ]
    )  # fmt: skip

    assert [(m.content, m.reasoning) for m in messages] == [
        ("Hi", "deepseek thought"),
        ("Yo", "claude thought"),
        ("", "o3 thought"),
    ]


def test_a_tool_call_reads_gen_ai_attributes_when_the_span_has_no_inputs():
    call = span_contents.tool_call(
        "execute_tool",
        None,
        None,
        {"gen_ai.tool.name": "search", "gen_ai.tool.call.arguments": json.dumps({"q": "x"})},
    )

    assert call.name == "search" and '"q": "x"' in call.arguments.text
    assert not call.has_result


@pytest.mark.django_db
def test_long_contents_are_cut_and_say_so(client, experiment):
    long = "word " * 5_000  # 25,000 characters
    trace = agent_trace(
        experiment,
        inputs={"messages": [{"role": "user", "content": long}]},
        tool_outputs=long,
    )

    html = conversation_html(client, trace)

    assert html.count("… 5,000 more characters: see the span's Raw JSON.") == 2


@pytest.mark.django_db
def test_a_failed_agent_says_why_after_what_it_did(client, experiment):
    trace = agent_trace(experiment, outputs=None)
    Span.objects.filter(span_id="a" * 16).update(
        status="ERROR", status_message="RateLimitError: <slow down>"
    )
    Span.objects.filter(span_id="d" * 16).update(status="ERROR", status_message="tool broke")

    html = conversation_html(client, trace)

    assert html.index("lookup_order") < html.index("tool broke")
    assert html.index("tool broke") < html.index("RateLimitError: &lt;slow down&gt;")
    assert 'class="notice notice-error convo-error"' in html
