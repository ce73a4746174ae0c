"""tracking/chat.py (chat shapes -> messages) and tracking/markdown.py: no database.

chat.py is the one reader of messages and content parts; the playground's replay and the agents'
answer shapes read through it, so the tests of where they used to differ live here too."""

from __future__ import annotations

import json

from playground.agents import client_for
from playground.agents.base import ChatRequest, consume
from playground.agents.schemas import parse_answer
from playground.models import Agent
from playground.replay import chat_of
from playground.tracing import TraceRecorder
from tracking import chat, markdown


def roles(conversation) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in conversation.messages]


def test_openai_chat_completion_inputs_and_choices_make_one_conversation():
    inputs = {"messages": [{"role": "user", "content": "hi"}], "model": "gpt-4o"}
    outputs = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}]}

    conversation = chat.conversation(inputs, outputs)

    assert roles(conversation) == [("user", "hi"), ("assistant", "hello")]
    assert [m.source for m in conversation.messages] == ["inputs", "outputs"]


def test_tool_calls_and_tool_results_are_kept():
    inputs = {
        "messages": [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "function": {"name": "lookup", "arguments": '{"id": 1}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "found"},
        ]
    }

    first, second = chat.conversation(inputs, None).messages

    assert first.tool_calls == [
        chat.ToolCall(name="lookup", arguments='{\n  "id": 1\n}', call_id="c1")
    ]
    assert (second.role, second.tool_call_id, second.content) == ("tool", "c1", "found")


def test_mlflow_chat_agent_messages_on_both_sides():
    inputs = {"messages": [{"role": "user", "content": "hi", "id": "1"}], "custom_inputs": {}}
    outputs = {"messages": [{"role": "assistant", "content": "hey", "id": "2"}]}

    assert roles(chat.conversation(inputs, outputs)) == [("user", "hi"), ("assistant", "hey")]


def test_responses_agent_items_become_messages_and_tool_calls():
    inputs = {"input": [{"role": "user", "content": "weather?"}]}
    outputs = {
        "output": [
            {"type": "function_call", "call_id": "f1", "name": "weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "f1", "output": "sunny"},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "It is sunny."}],
            },
        ]
    }

    messages = chat.conversation(inputs, outputs).messages

    assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[1].tool_calls[0].name == "weather"
    assert messages[2].content == "sunny"
    assert messages[3].content == "It is sunny."


def test_a_bare_list_of_messages_is_a_conversation():
    assert roles(chat.conversation([{"role": "user", "content": "x"}], None)) == [("user", "x")]


def test_values_without_chat_messages_are_not_a_conversation():
    assert chat.conversation({"query": "x"}, {"documents": []}) is None
    assert chat.conversation({"messages": [{"text": "no role"}]}, "plain") is None
    assert chat.conversation(None, None) is None
    assert chat.conversation({"messages": []}, {"choices": []}) is None


def test_long_conversations_are_cut_and_say_how_much():
    inputs = {"messages": [{"role": "user", "content": str(i)} for i in range(250)]}

    conversation = chat.conversation(inputs, None)

    assert len(conversation.messages) == chat.MAX_MESSAGES
    assert conversation.omitted == 50


IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
IMAGE_TEXT = (
    '```json\n{\n  "type": "image_url",\n  "image_url": {\n'
    '    "url": "https://example.com/cat.png"\n  }\n}\n```'
)


def test_text_parts_are_joined_by_blank_lines_everywhere():
    parts = [{"type": "input_text", "text": "one"}, {"type": "text", "text": "two"}]
    answer = {"choices": [{"message": {"role": "assistant", "content": parts}}]}

    assert chat.content_text(parts) == "one\n\ntwo"
    # The replay and the chat-completions answer joined them with nothing in between.
    assert chat_of({"messages": [{"role": "user", "content": parts}]})[0] == [
        {"role": "user", "content": "one\n\ntwo"}
    ]
    assert parse_answer(answer).content == "one\n\ntwo"


def test_parts_that_are_not_text_are_kept_as_json_everywhere():
    parts = [{"type": "text", "text": "what is this?"}, IMAGE]
    answer = {"choices": [{"message": {"role": "assistant", "content": parts}}]}

    assert chat.content_text(parts) == f"what is this?\n\n{IMAGE_TEXT}"
    # The replay and the chat-completions answer dropped them.
    assert chat_of([{"role": "user", "content": parts}])[0][0]["content"].endswith(IMAGE_TEXT)
    assert parse_answer(answer).content.endswith(IMAGE_TEXT)


def test_bare_string_parts_are_text_everywhere():
    parts = ["plain", {"type": "output_text", "text": "typed"}]
    responses = {"output": [{"type": "message", "role": "assistant", "content": parts}]}

    assert chat.content_text(parts) == "plain\n\ntyped"
    # The replay and both answer shapes kept only the typed part.
    assert chat_of({"input": [{"role": "user", "content": parts}]})[0][0]["content"] == (
        "plain\n\ntyped"
    )
    assert parse_answer(responses).content == "plain\n\ntyped"


def test_empty_text_parts_leave_no_blank_lines():
    assert chat.content_text([{"type": "text", "text": ""}, "a", None, "b"]) == "a\n\nb"


def test_content_that_is_neither_text_nor_parts_is_shown_as_json_everywhere():
    answer = {"choices": [{"message": {"role": "assistant", "content": {"answer": 42}}}]}
    shown = '```json\n{\n  "answer": 42\n}\n```'

    assert chat.content_text({"answer": 42}) == shown
    # The replay dropped such a message; the chat-completions answer was an error.
    assert chat_of({"messages": [{"role": "user", "content": {"answer": 42}}]})[0] == [
        {"role": "user", "content": shown}
    ]
    assert parse_answer(answer).content == shown


def test_a_chat_agent_answer_reads_content_parts():
    answer = {"messages": [{"role": "assistant", "content": [{"type": "text", "text": "hi"}]}]}

    # It used to read string content only.
    assert parse_answer(answer).content == "hi"


def test_a_responses_answer_keeps_a_refusal_part():
    refusal = {"type": "refusal", "refusal": "I cannot help with that."}
    answer = {"output": [{"type": "message", "role": "assistant", "content": [refusal]}]}

    assert "I cannot help with that." in parse_answer(answer).content


def test_the_built_in_agents_read_the_text_of_content_parts():
    agent = Agent(name="echo", kind="builtin", config={"agent": "echo", "word_delay_ms": 0})
    request = ChatRequest([{"role": "user", "content": [{"type": "text", "text": "hi there"}]}])

    root = TraceRecorder().root("echo", "AGENT")

    answer = consume(client_for(agent).stream(request, root), lambda chunk: None)

    # They used to echo the parts' Python repr.
    assert answer.content == "You said: hi there"


def test_the_replay_leaves_out_tool_calls_and_their_results():
    inputs = {
        "input": [
            {"role": "user", "content": "weather?"},
            {"type": "function_call", "call_id": "f1", "name": "weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "f1", "output": "sunny"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]},
            {"role": "assistant", "content": "It is sunny."},
            "not a message",
        ]
    }

    assert chat_of(inputs)[0] == [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "It is sunny."},
    ]


def test_a_string_input_is_one_user_message_to_replay():
    assert [(m.role, m.content) for m in chat.request_messages({"input": "hi"})] == [("user", "hi")]
    # The conversation view does not take a lone string for a chat.
    assert chat.conversation({"input": "hi"}, None) is None


def test_a_preview_holds_a_user_message_when_its_json_says_so():
    assert chat.preview_has_user_message('{"messages": [{"role": "user", "content": "hi"}]}')
    assert chat.preview_has_user_message('{"input": "hi"}')
    assert not chat.preview_has_user_message('{"role": "admin", "question": "hi"}')
    assert not chat.preview_has_user_message('{"messages": [{"role": "system", "content": "x"}]}')
    assert not chat.preview_has_user_message("what is MLflow?")
    # A preview cut at its size limit is no JSON: a role key is the hint.
    assert chat.preview_has_user_message('{"messages": [{"role": "user", "content": "lo')


def test_a_chat_request_preview_reads_as_its_last_user_message():
    openai = json.dumps(
        [
            {"role": "system", "content": "Be brief.", "refusal": None},
            {"role": "user", "content": "First?", "refusal": None},
            {"role": "assistant", "content": "Yes."},
            {"role": "user", "content": [{"type": "text", "text": "Where is my order?"}]},
        ]
    )
    assert chat.request_text(openai) == "Where is my order?"
    agent = {"messages": [{"role": "user", "content": "Where is my order?"}]}
    assert chat.request_text(json.dumps(agent)) == "Where is my order?"
    assert chat.request_text('{"input": "Where is my order?"}') == "Where is my order?"
    assert chat.request_text('"Where is my order?"') == "Where is my order?"


def test_a_request_preview_that_is_not_chat_stays_as_it_is():
    for preview in ("Where is my order?", '{"question": "hi"}', "[1, 2]", '[{"role": "us', ""):
        assert chat.request_text(preview) == preview


def test_a_chat_answer_preview_reads_as_the_assistant_text():
    completion = {"choices": [{"message": {"role": "assistant", "content": "Tomorrow."}}]}
    assert chat.answer_text(json.dumps(completion)) == "Tomorrow."
    chat_agent = {
        "messages": [
            {"role": "assistant", "content": "", "tool_calls": [{"id": "1", "function": {}}]},
            {"role": "tool", "content": "{}", "tool_call_id": "1"},
            {"role": "assistant", "content": "Tomorrow."},
        ]
    }
    assert chat.answer_text(json.dumps(chat_agent)) == "Tomorrow."
    responses = {
        "output": [
            {"type": "message", "role": "assistant",
             "content": [{"type": "output_text", "text": "Tomorrow."}]},
        ]
    }  # fmt: skip
    assert chat.answer_text(json.dumps(responses)) == "Tomorrow."
    assert chat.answer_text("Tomorrow.") == "Tomorrow."
    assert chat.answer_text('{"answer": 42}') == '{"answer": 42}'


def test_markdown_is_rendered():
    html = markdown.render("**bold** and `code`\n\n- item\n\n[docs](https://example.com)")

    assert "<strong>bold</strong>" in html
    assert "<code>code</code>" in html
    assert "<li>item</li>" in html
    assert '<a href="https://example.com" rel="noopener noreferrer nofollow">docs</a>' in html


def test_markdown_leaves_html_and_script_links_inert():
    html = markdown.render(
        '<script>alert(1)</script> <img src=x onerror="alert(1)"> '
        "[click](javascript:alert(1)) [data](data:text/html;base64,PHNjcmlwdD4=)"
    )

    assert "<script>" not in html
    assert "<img" not in html
    assert "&lt;script&gt;" in html
    assert "href" not in html


def test_markdown_images_are_not_loaded():
    assert "<img" not in markdown.render("![pixel](https://tracker.example/p.gif)")
