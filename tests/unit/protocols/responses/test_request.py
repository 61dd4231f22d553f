"""A Responses request → the chat pivot (``protocols.responses.request``)."""

from __future__ import annotations

from typing import Any

import pytest

from tollway.protocols import thinking_blocks
from tollway.protocols.codec import TranslationError
from tollway.protocols.responses.request import to_pivot

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def test_input_items_become_chat_messages_and_a_call_joins_the_text_before_it() -> None:
    body = {
        "model": "m",
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
            # What the SDK's ``input += response.output`` sends back: a message item and
            # the function call the model made after it, with their ids and statuses.
            {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]},
            {"type": "function_call", "id": "fc_c1", "call_id": "c1", "name": "weather",
             "arguments": '{"city":"Paris"}', "status": "completed"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            {"role": "developer", "content": "Answer in French."},
        ],
    }  # fmt: skip
    assert to_pivot(body) == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "developer", "content": "Answer in French."},
        ],
    }  # fmt: skip


def test_generation_settings_tools_and_structured_output_cross() -> None:
    body = {
        "model": "m",
        "input": "Weather?",
        "stream": True,
        "max_output_tokens": 99,
        "temperature": 0.2,
        "top_p": 0.9,
        "parallel_tool_calls": False,
        "user": "u-1",
        "tools": [{"type": "function", "name": "weather", "description": "Forecast", "parameters": WEATHER,
                   "strict": True}],
        "tool_choice": {"type": "function", "name": "weather"},
        "reasoning": {"effort": "low", "summary": None},
        "text": {"format": {"type": "json_schema", "name": "w", "schema": WEATHER, "strict": True},
                 "verbosity": "low"},
        # Kept by the gateway, not sent: they ask nothing of the model.
        "store": True, "metadata": {"team": "a"}, "truncation": "disabled", "include": ["reasoning.encrypted_content"],
        "stream_options": {"include_obfuscation": False}, "max_tool_calls": 3, "previous_response_id": None,
    }  # fmt: skip
    chat = to_pivot(body)
    del chat["messages"]
    assert chat == {
        "model": "m",
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_completion_tokens": 99,
        "temperature": 0.2,
        "top_p": 0.9,
        "parallel_tool_calls": False,
        "user": "u-1",
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": WEATHER,
                                                    "description": "Forecast", "strict": True}}],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "reasoning_effort": "low",
        "verbosity": "low",
        "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": WEATHER, "strict": True}},
    }  # fmt: skip


def test_images_by_url_and_inline_files_cross_as_chat_parts() -> None:
    content = [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
        {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"},
    ]
    [message] = to_pivot({"model": "m", "input": [{"role": "user", "content": content}]})["messages"]
    assert message["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}},
    ]


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"background": True}, "background"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"truncation": "auto"}, "truncation"),
        ({"include": ["message.output_text.logprobs"]}, "include[0]"),
        ({"top_logprobs": 5}, "top_logprobs"),
        ({"reasoning": {"effort": "high", "verbose": True}}, "reasoning.verbose"),
        ({"tools": [{"type": "namespace", "name": "ns", "tools": [{"type": "web_search"}]}]}, "tools[0].tools[0]"),
        ({"text": {"format": {"type": "grammar"}}}, "text.format"),
        ({"tools": [{"type": "web_search"}]}, "tools[0]"),
        ({"tools": [{"type": "function", "name": "f", "defer_loading": True}]}, "tools[0].defer_loading"),
        ({"tool_choice": {"type": "file_search"}}, "tool_choice"),
        ({"input": [{"type": "reasoning", "summary": []}]}, "input[0]"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]},
         "input[0].content[0]"),
        ({"input": [{"type": "function_call_output", "call_id": "c", "output": [{"type": "input_image"}]}]},
         "input[0].output"),
        ({"context_management": [{"type": "compaction"}]}, "context_management"),
        ({"some_new_field": 1}, "some_new_field"),
    ],
)  # fmt: skip
def test_what_cannot_cross_is_refused_naming_it(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(TranslationError) as caught:
        to_pivot({"model": "m", "input": "x", **fields})
    assert str(caught.value).startswith(named)


def test_what_codex_sends_crosses() -> None:
    """Codex's request shape (0.171, exec): telemetry in ``client_metadata``, a reasoning
    summary asked for, the prompt-cache key, ``store: false``, encrypted reasoning
    included, and function tools grouped in a ``namespace``."""
    chat = to_pivot(
        {
            "model": "m", "input": "x", "stream": True, "store": False, "tool_choice": "auto",
            "parallel_tool_calls": True, "reasoning": {"summary": "auto"},
            "include": ["reasoning.encrypted_content"], "prompt_cache_key": "k1",
            "client_metadata": {"x-codex-window-id": "w:0"},
            "tools": [
                {"type": "function", "name": "exec_command", "parameters": {"type": "object"}, "strict": False},
                {"type": "namespace", "name": "multi_agent_v1", "description": "sub-agents", "tools": [
                    {"type": "function", "name": "close_agent", "parameters": {"type": "object"}},
                ]},
            ],
        }
    )  # fmt: skip
    assert [t["function"]["name"] for t in chat["tools"]] == ["exec_command", "close_agent"]
    assert "client_metadata" not in chat and "reasoning_effort" not in chat
    assert chat["prompt_cache_key"] == "k1" and chat["parallel_tool_calls"] is True


def test_the_gateways_reasoning_items_become_the_thinking_blocks_of_the_turn_they_start() -> None:
    first = [{"type": "thinking", "thinking": "Hm.", "signature": "sig"}]
    second = [{"type": "redacted_thinking", "data": "d"}]
    call = {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": "{}"}
    body = {"model": "m", "input": [
        {"role": "user", "content": "Weather?"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": thinking_blocks.seal(first)},
        {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": thinking_blocks.seal(second)},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        call,
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"type": "reasoning", "summary": [], "encrypted_content": thinking_blocks.seal(first)},
        call,
    ]}  # fmt: skip
    tool_call = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
    assert to_pivot(body)["messages"][1:] == [
        {"role": "assistant", "content": "Checking.", "thinking_blocks": first + second, "tool_calls": [tool_call]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "assistant", "content": None, "thinking_blocks": first, "tool_calls": [tool_call]},
    ]
    # Another provider's encrypted reasoning (or none) means nothing here: refused.
    for encrypted in (None, "gAAAAABo-openais-own"):
        foreign = {"model": "m", "input": [{"type": "reasoning", "summary": [], "encrypted_content": encrypted}]}
        with pytest.raises(TranslationError, match=r"input\[0\] of type 'reasoning'"):
            to_pivot(foreign)
