"""The GenAI conventions read at ingest (tracking/genai.py), on hand-built spans of every form
the conventions have had: `gen_ai.input.messages` with typed parts, the per-message span events,
the older content events, OpenLLMetry's flattened attributes. Decoded from real OTLP protobuf
(tests/tracking/test_otlp.py's builders); the instrumentation's own output is in
tests/interop/test_otel_genai.py."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.tracking.test_otlp import T0, decode_one, export, key_values, post, span
from tracking import chat
from tracking.models import Span, Trace

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
OPENAI_TOOL = {
    "type": "function",
    "function": {k: v for k, v in WEATHER_TOOL.items() if k != "type"},
}
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
}


def event(name: str, **attributes: Any) -> trace_pb2.Span.Event:
    return trace_pb2.Span.Event(name=name, time_unix_nano=T0 + 1, attributes=key_values(attributes))


def chat_span(attributes: dict[str, Any], events: list = ()) -> trace_pb2.Span:
    return span("chat", attributes={"gen_ai.operation.name": "chat", **attributes}, events=events)


# --- gen_ai.input.messages / gen_ai.output.messages with parts ---------------------------------

PARTS_INPUT = [
    {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
    {
        "role": "assistant",
        "parts": [
            {"type": "tool_call", "id": "call_1", "name": "get_weather",
             "arguments": {"city": "Paris"}},
        ],
    },
    {
        "role": "tool",
        "parts": [{"type": "tool_call_response", "id": "call_1", "response": {"sky": "sunny"}}],
    },
]  # fmt: skip
PARTS_OUTPUT = [
    {
        "role": "assistant",
        "parts": [
            {"type": "reasoning", "content": "The tool said sunny."},
            {"type": "text", "content": "Sunny."},
        ],
        "finish_reason": "stop",
    }
]


def test_parts_become_openai_chat_messages_with_system_first_and_tools():
    decoded = decode_one(
        chat_span(
            {
                "gen_ai.input.messages": json.dumps(PARTS_INPUT),
                "gen_ai.output.messages": json.dumps(PARTS_OUTPUT),
                "gen_ai.system_instructions": json.dumps(
                    [{"type": "text", "content": "Be brief."}]
                ),
                "gen_ai.tool.definitions": json.dumps([WEATHER_TOOL]),
                "gen_ai.request.model": "gpt-4o-mini",
            }
        )
    )

    assert decoded.span_type == "CHAT_MODEL"
    assert decoded.inputs == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": '{"sky":"sunny"}'},
        ],
        "tools": [OPENAI_TOOL],
    }
    assert decoded.outputs == {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    # Typed, so a view can fold the reasoning away.
                    "content": [
                        {"type": "reasoning", "text": "The tool said sunny."},
                        {"type": "text", "text": "Sunny."},
                    ],
                },
                "finish_reason": "stop",
            }
        ]
    }
    assert set(decoded.attributes) == {
        "gen_ai.operation.name",
        "gen_ai.request.model",
    }
    # tracking/chat.py reads all of it: roles, tool calls with arguments, results.
    messages = chat.conversation(decoded.inputs, decoded.outputs).messages
    assert [m.role for m in messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert messages[2].tool_calls[0].arguments == '{\n  "city": "Paris"\n}'
    assert messages[3].tool_call_id == "call_1"


def test_parts_it_does_not_know_are_kept_as_content_parts():
    image = {"type": "uri", "modality": "image", "uri": "https://example.com/cat.png"}
    decoded = decode_one(
        chat_span(
            {
                "gen_ai.input.messages": json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": "What is it?"}, image]}]
                )
            }
        )
    )
    assert decoded.inputs["messages"][0]["content"] == [
        {"type": "text", "text": "What is it?"},
        image,
    ]


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("not json [", "not json ["),  # kept as sent, once
        ('{"prompt": "hi"}', {"prompt": "hi"}),  # JSON, but not messages
        ('[{"no": "role"}]', [{"no": "role"}]),
    ],
)
def test_values_that_are_not_messages_are_moved_as_they_came(raw, stored):
    decoded = decode_one(chat_span({"gen_ai.input.messages": raw}))
    assert decoded.inputs == stored
    assert "gen_ai.input.messages" not in decoded.attributes


def test_already_openai_shaped_messages_pass_through():
    messages = [{"role": "user", "content": "hi"}]
    decoded = decode_one(chat_span({"gen_ai.input.messages": messages}))
    assert decoded.inputs == {"messages": messages}


# --- Span events --------------------------------------------------------------------------------


def test_message_events_become_inputs_and_choices_and_are_removed():
    decoded = decode_one(
        chat_span(
            {},
            events=[
                event("gen_ai.system.message", content="Be brief.", **{"gen_ai.system": "openai"}),
                event("gen_ai.user.message", content="Weather in Paris?"),
                event(
                    "gen_ai.assistant.message",
                    tool_calls=[
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        }
                    ],
                ),
                event("gen_ai.tool.message", content='{"sky": "sunny"}', id="call_1"),
                event(
                    "gen_ai.choice",
                    index=0,
                    finish_reason="stop",
                    message={"role": "assistant", "content": "Sunny."},
                ),
                event("retry", attempt=2),  # not a message: stays
            ],
        )
    )

    assert decoded.inputs == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "tool_calls": [CALL]},
            # JSON object text is decoded, as the events carry structured content.
            {"role": "tool", "content": {"sky": "sunny"}, "tool_call_id": "call_1"},
        ]
    }
    assert decoded.outputs == {
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Sunny."},
             "finish_reason": "stop"}
        ]
    }  # fmt: skip
    assert [e["name"] for e in decoded.events] == ["retry"]


def test_events_without_content_stay_events():
    # What content capture off sends: the event says a message was sent, not what it said.
    decoded = decode_one(chat_span({}, events=[event("gen_ai.user.message")]))
    assert decoded.inputs is None
    assert [e["name"] for e in decoded.events] == ["gen_ai.user.message"]


def test_an_event_keeps_what_it_holds_beyond_the_message():
    decoded = decode_one(
        chat_span({}, events=[event("gen_ai.user.message", content="hi", **{"app.turn": 3})])
    )
    assert decoded.inputs == {"messages": [{"role": "user", "content": "hi"}]}
    assert decoded.events[0]["attributes"] == {"app.turn": 3}


def test_choice_events_with_json_messages_and_json_content():
    # Strands-style: the message and content as JSON text.
    decoded = decode_one(
        chat_span(
            {},
            events=[
                event("gen_ai.user.message", content=json.dumps([{"text": "hi"}])),
                event(
                    "gen_ai.choice",
                    finish_reason="end_turn",
                    message=json.dumps({"content": [{"text": "hello"}]}),
                ),
            ],
        )
    )
    assert decoded.inputs == {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}
    assert chat.answer_text(json.dumps(decoded.outputs)) == "hello"
    assert decoded.events == []


def test_attributes_win_over_events_which_then_stay():
    decoded = decode_one(
        chat_span(
            {"gen_ai.input.messages": [{"role": "user", "content": "from attributes"}]},
            events=[event("gen_ai.user.message", content="from events")],
        )
    )
    assert decoded.inputs == {"messages": [{"role": "user", "content": "from attributes"}]}
    assert [e["name"] for e in decoded.events] == ["gen_ai.user.message"]


def test_older_content_events():
    decoded = decode_one(
        chat_span(
            {},
            events=[
                event("gen_ai.content.prompt",
                      **{"gen_ai.prompt": json.dumps([{"role": "user", "content": "hi"}])}),
                event("gen_ai.content.completion",
                      **{"gen_ai.completion": json.dumps([{"role": "assistant",
                                                           "content": "hello"}])}),
            ],
        )
    )  # fmt: skip
    assert decoded.inputs == {"messages": [{"role": "user", "content": "hi"}]}
    assert decoded.outputs == {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}]
    }
    assert decoded.events == []


def test_the_inference_details_event_reads_like_attributes():
    details = {
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text",
                                                                         "content": "hi"}]}]),
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
            {"type": "text", "content": "hello"}], "finish_reason": "stop"}]),
        "gen_ai.response.id": "r-1",
    }  # fmt: skip
    decoded = decode_one(
        chat_span({}, events=[event("gen_ai.client.inference.operation.details", **details)])
    )
    assert decoded.inputs == {"messages": [{"role": "user", "content": "hi"}]}
    assert decoded.outputs["choices"][0]["message"]["content"] == "hello"
    assert decoded.events[0]["attributes"] == {"gen_ai.response.id": "r-1"}


# --- Flat and other forms -----------------------------------------------------------------------


def test_flat_openllmetry_messages_with_tool_calls_and_functions():
    decoded = decode_one(
        chat_span(
            {
                "gen_ai.prompt.0.role": "user",
                "gen_ai.prompt.0.content": "Weather in Paris?",
                "gen_ai.prompt.1.role": "tool",
                "gen_ai.prompt.1.tool_call_id": "call_0",
                "gen_ai.prompt.1.content": "rain",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.finish_reason": "tool_calls",
                "gen_ai.completion.0.tool_calls.0.id": "call_1",
                "gen_ai.completion.0.tool_calls.0.name": "get_weather",
                "gen_ai.completion.0.tool_calls.0.arguments": '{"city":"Paris"}',
                "llm.request.functions.0.name": "get_weather",
                "llm.request.functions.0.description": "The weather in a city.",
                "llm.request.functions.0.parameters": json.dumps(WEATHER_TOOL["parameters"]),
            }
        )
    )
    assert decoded.inputs == {
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "tool", "tool_call_id": "call_0", "content": "rain"},
        ],
        "tools": [OPENAI_TOOL],
    }
    assert decoded.outputs == {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "tool_calls": [CALL]},
                "finish_reason": "tool_calls",
            }
        ]
    }
    assert set(decoded.attributes) == {"gen_ai.operation.name"}


def test_cached_tokens_are_counted_for_the_price():
    decoded = decode_one(
        chat_span(
            {
                "gen_ai.usage.input_tokens": 1200,
                "gen_ai.usage.output_tokens": 300,
                "gen_ai.usage.cache_read.input_tokens": 1024,
                "gen_ai.usage.cache_creation.input_tokens": 100,
            }
        )
    )
    assert decoded.attributes["mlflow.chat.tokenUsage"] == {
        "input_tokens": 1200,
        "output_tokens": 300,
        "total_tokens": 1500,
        "cache_read_input_tokens": 1024,
        "cache_creation_input_tokens": 100,
    }


def test_tool_and_retrieval_spans():
    tool = decode_one(
        span(
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "get_weather",
                "gen_ai.tool.call.arguments": '{"city": "Paris"}',
                "gen_ai.tool.call.result": '{"sky": "sunny"}',
            }
        )
    )
    assert (tool.span_type, tool.inputs, tool.outputs) == (
        "TOOL",
        {"city": "Paris"},
        {"sky": "sunny"},
    )
    retrieval = decode_one(
        span(
            attributes={
                "gen_ai.operation.name": "retrieval",
                "gen_ai.retrieval.query.text": "paris weather",
                "gen_ai.retrieval.documents": json.dumps(
                    [{"id": "doc-1", "score": 0.9, "content": "Paris is sunny."}]
                ),
            }
        )
    )
    assert retrieval.span_type == "RETRIEVER"
    assert retrieval.inputs == {"query": "paris weather"}
    assert retrieval.outputs == [
        {"page_content": "Paris is sunny.", "metadata": {"score": 0.9}, "id": "doc-1"}
    ]


# --- Through the endpoint -----------------------------------------------------------------------


@pytest.mark.django_db
def test_stored_spans_show_the_messages_once_and_are_priced(client):
    body = export(
        chat_span(
            {
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.provider.name": "openai",
                "gen_ai.usage.input_tokens": 1200,
                "gen_ai.usage.output_tokens": 300,
                "gen_ai.conversation.id": "conv-9",
                "gen_ai.input.messages": json.dumps(PARTS_INPUT),
                "gen_ai.output.messages": json.dumps(PARTS_OUTPUT),
            },
            events=[event("gen_ai.user.message", content="also from events")],
        )
    ).SerializeToString()

    assert post(client, body).status_code == 200
    stored, trace = Span.objects.get(), Trace.objects.get()
    assert stored.span_type == "CHAT_MODEL"
    assert "gen_ai.input.messages" not in stored.attributes
    assert stored.inputs["messages"][0] == {"role": "user", "content": "Weather in Paris?"}
    assert stored.attributes["mlflow.llm.cost"]["total_cost"] > 0
    assert trace.cost == stored.attributes["mlflow.llm.cost"]["total_cost"]
    assert trace.session_id == "conv-9"
    assert chat.request_text(trace.request_preview) == "Weather in Paris?"


# --- Hostile values: never a 500, nothing lost (review findings 1, 2, 7) ----------------------


def _nested(levels: int) -> str:
    """JSON text of a list nested `levels` deep: orjson reads up to 1024 but writes only 255."""
    return "[" * levels + "1" + "]" * levels


DEEP = _nested(300)
DEEP_TOOL_VALUES = {
    "tool_call arguments": {
        "gen_ai.output.messages": '[{"role": "assistant", "parts": [{"type": "tool_call", '
        f'"id": "c1", "name": "f", "arguments": {DEEP}}}]}}]'
    },
    "tool_call_response": {
        "gen_ai.input.messages": '[{"role": "tool", "parts": [{"type": "tool_call_response", '
        f'"id": "c1", "response": {DEEP}}}]}}]'
    },
    "retrieval document": {"gen_ai.retrieval.documents": f'[{{"id": "d1", "content": {DEEP}}}]'},
}


@pytest.mark.parametrize("attributes", DEEP_TOOL_VALUES.values(), ids=DEEP_TOOL_VALUES.keys())
def test_tool_values_nested_deeper_than_orjson_writes_become_their_json_text(attributes):
    decoded = decode_one(chat_span(attributes))
    assert DEEP in json.dumps([decoded.inputs, decoded.outputs], separators=(",", ":"))


HUGE = "9" * 5000  # past the 4300 digits int() converts
HUGE_INDEXES = {
    f"gen_ai.prompt.{HUGE}.content": "hi",
    f"gen_ai.completion.0.tool_calls.{HUGE}.name": "get_weather",
    f"llm.request.functions.{HUGE}.name": "get_weather",
}


def test_flat_indexes_too_long_for_a_number_stay_attributes():
    decoded = decode_one(chat_span({**HUGE_INDEXES, "gen_ai.prompt.0.content": "Weather?"}))
    assert decoded.inputs == {"messages": [{"role": "user", "content": "Weather?"}]}
    assert HUGE_INDEXES.items() <= decoded.attributes.items()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("attributes", "kept"),
    [*((attributes, DEEP) for attributes in DEEP_TOOL_VALUES.values()), (HUGE_INDEXES, HUGE)],
    ids=[*DEEP_TOOL_VALUES, "huge indexes"],
)
def test_hostile_genai_values_are_stored_not_a_server_error(client, attributes, kept):
    assert post(client, export(chat_span(attributes)).SerializeToString()).status_code == 200
    stored = Span.objects.get()
    assert stored.span_type == "CHAT_MODEL"
    assert kept in json.dumps(
        [stored.inputs, stored.outputs, stored.attributes], separators=(",", ":")
    )


def test_a_second_plain_text_prompt_event_stays_an_event():
    decoded = decode_one(
        chat_span(
            {},
            events=[
                event("gen_ai.content.prompt", **{"gen_ai.prompt": "first prompt"}),
                event("gen_ai.content.prompt", **{"gen_ai.prompt": "second prompt"}),
            ],
        )
    )
    assert decoded.inputs == "first prompt"
    assert [e["attributes"] for e in decoded.events] == [{"gen_ai.prompt": "second prompt"}]


def test_a_plain_prompt_event_beside_message_events_stays_an_event():
    decoded = decode_one(
        chat_span(
            {},
            events=[
                event("gen_ai.user.message", content="hi"),
                event("gen_ai.content.prompt", **{"gen_ai.prompt": "plain prompt"}),
            ],
        )
    )
    assert decoded.inputs == {"messages": [{"role": "user", "content": "hi"}]}
    assert [e["attributes"] for e in decoded.events] == [{"gen_ai.prompt": "plain prompt"}]


def test_a_choice_event_keeps_its_own_fields_beside_a_json_message():
    decoded = decode_one(
        chat_span(
            {},
            events=[
                event(
                    "gen_ai.choice",
                    index=0,
                    finish_reason="stop",
                    message=json.dumps({"role": "assistant", "content": "Sunny.", "refusal": None}),
                    content="also sent",
                    tool_calls=json.dumps([CALL]),
                )
            ],
        )
    )
    assert decoded.outputs == {
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Sunny.", "refusal": None},
             "finish_reason": "stop"}
        ]
    }  # fmt: skip
    assert decoded.events[0]["attributes"] == {
        "content": "also sent",
        "tool_calls": json.dumps([CALL]),
    }


# A few hundred seeded random mixes of what the conventions' attributes and events hold, good
# and bad, through the whole decoder: it must never raise. Seeded, so a failure reproduces.
_FUZZ_KEYS = (
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
    "gen_ai.tool.definitions", "gen_ai.prompt", "gen_ai.completion", "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result", "gen_ai.retrieval.documents", "gen_ai.retrieval.query.text",
    "input.value", "output.value", "input.mime_type", "gen_ai.prompt.0.role",
    "gen_ai.prompt.0.content", "gen_ai.prompt.1.tool_calls.0.name", f"gen_ai.prompt.{HUGE}.content",
    "gen_ai.completion.0.content", "gen_ai.prompt.0.weird", "llm.request.functions.0.name",
    "llm.request.functions.0.parameters", "gen_ai.usage.input_tokens",
)  # fmt: skip
_FUZZ_EVENT_KEYS = (
    "content", "role", "tool_calls", "id", "tool_call_id", "message", "index", "finish_reason",
    "body", "gen_ai.prompt", "gen_ai.completion", "gen_ai.input.messages",
    "gen_ai.output.messages", "extra",
)  # fmt: skip
_FUZZ_EVENTS = (
    "gen_ai.system.message", "gen_ai.user.message", "gen_ai.assistant.message",
    "gen_ai.tool.message", "gen_ai.choice", "gen_ai.content.prompt", "gen_ai.content.completion",
    "gen_ai.client.inference.operation.details", "other",
)  # fmt: skip


def _fuzz_value(rnd: random.Random, depth: int = 0) -> Any:
    roll = rnd.random()
    if depth > 3 or roll < 0.3:
        return rnd.choice(["x", 5, 1.5, True, "", "[", '{"a":', "application/json", DEEP, None])
    if roll < 0.5:
        return [_fuzz_value(rnd, depth + 1) for _ in range(rnd.randint(0, 3))]
    if roll < 0.7:
        parts = [
            {
                "type": rnd.choice(["text", "reasoning", "tool_call", "tool_call_response", 5]),
                "content": _fuzz_value(rnd, depth + 2),
                "id": _fuzz_value(rnd, depth + 2),
                "arguments": _fuzz_value(rnd, depth + 2),
                "response": _fuzz_value(rnd, depth + 2),
            }
            for _ in range(rnd.randint(0, 3))
        ]
        return {"role": rnd.choice(["user", "assistant", "tool", 5]), "parts": parts}
    keys = ["role", "content", "tool_calls", "function", "name", "arguments", "id", "x"]
    return {rnd.choice(keys): _fuzz_value(rnd, depth + 1) for _ in range(rnd.randint(0, 3))}


def _fuzz_encoded(rnd: random.Random) -> Any:
    value = _fuzz_value(rnd)
    if rnd.random() < 0.6 or value is None:  # as JSON text, which OTLP attributes mostly hold
        return json.dumps(value)
    return value


def test_random_malformed_conventions_never_raise():
    rnd = random.Random(20240611)
    for _ in range(500):
        attributes = {key: _fuzz_encoded(rnd) for key in rnd.sample(_FUZZ_KEYS, rnd.randint(0, 5))}
        events = [
            event(
                rnd.choice(_FUZZ_EVENTS),
                **{k: _fuzz_encoded(rnd) for k in rnd.sample(_FUZZ_EVENT_KEYS, rnd.randint(0, 4))},
            )
            for _ in range(rnd.randint(0, 4))
        ]
        decoded = decode_one(chat_span(attributes, events=events))
        json.dumps([decoded.inputs, decoded.outputs, decoded.attributes, decoded.events])
