"""The Responses API as a client's protocol (``protocols.openai.responses``)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tollway.protocols.codec import TranslationError
from tollway.protocols.openai.responses import ResponsesStreamWriter, request_to_pivot, response_from_pivot


def test_input_items_become_chat_messages() -> None:
    body = {
        "model": "m",
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
            {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": '{"city":"Paris"}'},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        ],
        "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"}}],
        "tool_choice": "auto",
        "max_output_tokens": 99,
        "reasoning": {"effort": "low"},
        "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}}},
    }
    assert request_to_pivot(body) == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ],
        "max_completion_tokens": 99,
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
        "tool_choice": "auto",
        "reasoning_effort": "low",
        "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}}},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"input": "x", "previous_response_id": "resp_1"}, "previous_response_id"),
        ({"input": "x", "tools": [{"type": "web_search"}]}, "tools[0]"),
        ({"input": [{"type": "reasoning", "summary": []}]}, "input[0]"),
    ],
)
def test_what_cannot_cross_is_refused_naming_it(body: dict[str, Any], names: str) -> None:
    with pytest.raises(TranslationError, match=names.replace("[", r"\[")):
        request_to_pivot({"model": "m", **body})


def test_a_completion_becomes_a_response_with_its_usage_details() -> None:
    chat = {
        "id": "x1", "model": "claude", "created": 5,
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Checking.",
                     "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 10}},
    }  # fmt: skip
    response = response_from_pivot(chat)
    assert [item["type"] for item in response["output"]] == ["message", "function_call"]
    assert response["output"][1]["call_id"] == "c1" and response["status"] == "completed"
    usage = response["usage"]
    assert usage["input_tokens_details"] == {"cached_tokens": 10} and usage["total_tokens"] == 37


def test_a_stream_of_text_and_a_tool_call_becomes_the_event_sequence() -> None:
    writer = ResponsesStreamWriter({"model": "m"})
    chunks: list[dict[str, Any]] = [
        {"id": "s1", "model": "claude", "choices": [{"index": 0, "delta": {"content": "Hi"}}]},
        {"id": "s1", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "c1", "function": {"name": "f", "arguments": '{"a":'}}]}}]},
        {"id": "s1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]},
                                  "finish_reason": "tool_calls"}]},
        {"id": "s1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}},
    ]  # fmt: skip
    events = [e for chunk in chunks for e in writer.feed(chunk)] + writer.end()
    kinds = [e.event for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    data = [orjson.loads(e.data) for e in events]
    assert [d["sequence_number"] for d in data] == list(range(len(data)))
    final = data[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == "Hi"
    assert final["output"][1]["arguments"] == '{"a":1}' and final["usage"]["output_tokens"] == 4
