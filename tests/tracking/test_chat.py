"""tracking/chat.py (chat shapes -> messages) and tracking/markdown.py: no database."""

from __future__ import annotations

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
