"""Anthropic Messages requests → the pivot (protocols/anthropic/request_to_pivot.py): what
an Anthropic client's request becomes, over the hand-written transcripts in
tests/fixtures/transcripts. No sockets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.anthropic_support import user
from tests.support.transcript_support import load
from tollway.protocols.codec import TranslationError
from tollway.protocols.registry import codec_for

A = codec_for("anthropic")


def test_an_anthropic_request_becomes_a_pivot_request() -> None:
    chat_body = A.request_to_pivot(load("anthropic", "messages_text.request.json"))
    assert chat_body == {
        "model": "claude-sonnet-4-20250514",
        "messages": [
            {"role": "system", "content": "You are a terse assistant. Answer in one sentence."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
        "max_completion_tokens": 1024,
        "stop": ["\n\nHuman:"],
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "user-1234",
    }


def test_an_anthropic_tool_conversation_becomes_the_openai_one() -> None:
    chat_body = A.request_to_pivot(load("anthropic", "messages_tools.request.json"))
    expected = load("openai", "chat_tools.request.json")
    assert chat_body["messages"][0] == {
        "role": "system",
        "content": "You help travellers.\nUse the tools when they help.",
    }
    assert chat_body["messages"][1] == {
        "role": "user",
        "content": [
            expected["messages"][1]["content"][0],
            {"type": "image_url", "image_url": {"url": expected["messages"][1]["content"][1]["image_url"]["url"]}},
            expected["messages"][1]["content"][2],
        ],
    }
    assistant = chat_body["messages"][2]
    assert assistant["content"] == expected["messages"][2]["content"]
    assert [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in assistant["tool_calls"]
    ] == [
        ("toolu_01A09q90qw90lq917835lq9", "get_weather", {"location": "Paris, France", "unit": "celsius"}),
        ("toolu_01B7fKxQ3pLmN8vR2sT4wY6z", "get_time", {"timezone": "Europe/Paris"}),
    ]
    assert chat_body["messages"][3:] == [
        {
            "role": "tool",
            "tool_call_id": "toolu_01A09q90qw90lq917835lq9",
            "content": '{"temperature": 14, "unit": "celsius", "conditions": "light rain"}',
        },
        {"role": "tool", "tool_call_id": "toolu_01B7fKxQ3pLmN8vR2sT4wY6z", "content": "15:42"},
        {"role": "user", "content": "And tomorrow?"},
    ]
    assert chat_body["tools"] == expected["tools"]
    assert chat_body["tool_choice"] == "auto"
    assert chat_body["parallel_tool_calls"] is False
    assert chat_body["max_completion_tokens"] == 2048
    assert chat_body["stream"] is True
    assert chat_body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}),
    ],
)
def test_anthropic_tool_choice_to_pivot(choice: dict[str, Any], expected: Any) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [user("x")], "tools": [{"name": "f", "input_schema": {}}]}
    assert A.request_to_pivot({**body, "tool_choice": choice})["tool_choice"] == expected


def test_a_documents_title_and_context_come_before_its_content() -> None:
    doc = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "The body."},
           "title": "Runbook", "context": "From the wiki"}  # fmt: skip
    bare = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Only text."}}
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [doc, bare]}]}
    (message,) = A.request_to_pivot(body)["messages"]
    assert message["content"] == [
        {"type": "text", "text": "Runbook\n\nFrom the wiki\n\nThe body."},
        {"type": "text", "text": "Only text."},
    ]
    pdf = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
           "title": "Contract", "context": "The signed version"}  # fmt: skip
    body["messages"] = [{"role": "user", "content": [pdf]}]
    (message,) = A.request_to_pivot(body)["messages"]
    assert message["content"] == [
        {"type": "text", "text": "Contract\n\nThe signed version"},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "Contract"}},
    ]


def test_tool_result_images_follow_the_tool_messages_in_a_user_turn() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "see"}, image]},
                    {"type": "text", "text": "what is it?"},
                ],
            }
        ],
    }
    assert A.request_to_pivot(body)["messages"] == [
        {"role": "tool", "tool_call_id": "t1", "content": "see"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "text", "text": "what is it?"},
            ],
        },
    ]


def _tool_turn(*inner: dict[str, Any]) -> dict[str, Any]:
    result = {"type": "tool_result", "tool_use_id": "t1", "content": list(inner)}
    return {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [result]}]}


def test_a_tool_results_documents_are_its_text_or_follow_it_as_a_pdf() -> None:
    text_doc = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "DOC BODY"},
                "title": "T"}  # fmt: skip
    pdf = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}}
    assert A.request_to_pivot(_tool_turn(text_doc, pdf))["messages"] == [
        {"role": "tool", "tool_call_id": "t1", "content": "T\n\nDOC BODY"},
        {
            "role": "user",
            "content": [
                {
                    "type": "file",
                    "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "document.pdf"},
                }
            ],
        },
    ]


@pytest.mark.parametrize(
    "inner",
    [
        {
            "type": "search_result",
            "source": "https://x.example",
            "title": "t",
            "content": [{"type": "text", "text": "r"}],
        },
        {"type": "frob"},
        {"type": "document", "source": {"type": "file", "file_id": "file_1"}},
    ],
)
def test_a_tool_result_block_openai_has_no_place_for_is_refused_naming_it(inner: dict[str, Any]) -> None:
    # Dropped, the tool's answer reached the model empty, and nothing said so.
    with pytest.raises(TranslationError, match=r"messages\[0\]\.content\[0\]\.content\[1\]"):
        A.request_to_pivot(_tool_turn({"type": "text", "text": "see"}, inner))


def test_a_tools_strict_is_kept_and_a_field_openai_lacks_is_refused() -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [user("x")]}
    tool = {"name": "f", "input_schema": {"type": "object"}, "strict": True, "cache_control": {"type": "ephemeral"}}
    (fn,) = A.request_to_pivot({**body, "tools": [tool]})["tools"]
    assert fn == {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "strict": True}}
    with pytest.raises(TranslationError, match=r"tools\[0\]\.input_examples"):
        A.request_to_pivot({**body, "tools": [{**tool, "input_examples": [{"a": 1}]}]})


def test_thinking_blocks_are_dropped_top_k_and_server_tools_refused() -> None:
    body = {
        "model": "m",
        "max_tokens": 5,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "messages": [
            user("x"),
            {
                "role": "assistant",
                "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}, {"type": "text", "text": "y"}],
            },
            user("z"),
        ],
    }
    assert A.request_to_pivot(body) == {
        "model": "m",
        "messages": [user("x"), {"role": "assistant", "content": "y"}, user("z")],
        "max_completion_tokens": 5,
        "reasoning_effort": "medium",
    }
    with pytest.raises(TranslationError, match="top_k"):
        A.request_to_pivot({**body, "top_k": 3})
    with pytest.raises(TranslationError, match=r"tools\[0\]"):
        A.request_to_pivot({**body, "tools": [{"type": "web_search_20250305", "name": "web_search"}]})


@pytest.mark.parametrize(("budget", "effort"), [(1024, "low"), (4000, "medium"), (8192, "medium"), (20000, "high")])
def test_a_thinking_budget_becomes_a_reasoning_effort(budget: int, effort: str) -> None:
    body = {"model": "m", "max_tokens": 30000, "messages": [user("x")],
            "thinking": {"type": "enabled", "budget_tokens": budget}}  # fmt: skip
    assert A.request_to_pivot(body)["reasoning_effort"] == effort


def test_structured_output_becomes_a_json_schema_response_format() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    body = {"model": "m", "max_tokens": 5, "messages": [user("x")],
            "output_format": {"type": "json_schema", "schema": schema}}  # fmt: skip
    assert A.request_to_pivot(body)["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema},
    }


def test_structured_output_and_effort_of_output_config_become_response_format_and_reasoning_effort() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    body = {"model": "m", "max_tokens": 5, "messages": [user("x")],
            "output_config": {"format": {"type": "json_schema", "schema": schema}, "effort": "low"}}  # fmt: skip
    chat_body = A.request_to_pivot(body)
    assert chat_body["response_format"] == {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
    assert chat_body["reasoning_effort"] == "low"


@pytest.mark.parametrize("kind", ["adaptive", "disabled"])
def test_thinking_that_sets_no_budget_leaves_the_providers_default(kind: str) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [user("x")], "thinking": {"type": kind}}
    assert "reasoning_effort" not in A.request_to_pivot(body)


def test_fields_that_change_nothing_of_the_answer_are_dropped() -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [user("x")], "service_tier": "auto", "speed": "fast",
            "cache_control": {"type": "ephemeral"}, "workspace_id": "w", "container": None}  # fmt: skip
    assert A.request_to_pivot(body) == {"model": "m", "messages": [user("x")], "max_completion_tokens": 5}


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        ({"container": "c-1"}, "container"),
        ({"mcp_servers": [{"type": "url", "url": "https://x", "name": "x"}]}, "mcp_servers"),
        ({"context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]}}, "context_management.edits"),
        ({"context_management": {"edits": [], "trigger": 1}}, "context_management"),
        ({"inference_geo": "us"}, "inference_geo"),
        ({"some_future_field": 1}, "some_future_field"),
        ({"thinking": {"type": "telepathy"}}, "thinking"),
        ({"output_config": {"effort": "enormous"}}, "output_config.effort"),
        ({"output_config": {"task_budget": 3}}, "output_config.task_budget"),
        ({"output_format": {"type": "xml"}}, "output_format"),
    ],
)
def test_what_openais_protocol_cannot_express_is_refused_naming_it(extra: dict[str, Any], names: str) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [user("x")], **extra}
    with pytest.raises(TranslationError, match=names.replace(".", r"\.")):
        A.request_to_pivot(body)


def test_what_claude_code_sends_crosses() -> None:
    """Claude Code's request shape (2.1, ``-p``): cached system blocks, a system
    reminder within the conversation, adaptive thinking with an effort, clearing old
    thinking, and its user id in metadata."""
    body = {
        "model": "m", "max_tokens": 32000, "stream": True,
        "system": [{"type": "text", "text": "You are Claude Code."},
                   {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]},
                     {"role": "system", "content": "The date is 2026-12-05."}],
        "metadata": {"user_id": "u-1"}, "thinking": {"type": "adaptive"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
    }  # fmt: skip
    chat = A.request_to_pivot(body)
    assert chat["messages"] == [
        {"role": "system", "content": "You are Claude Code.\nBe brief."},
        {"role": "user", "content": "Say hello"},
        {"role": "system", "content": "The date is 2026-12-05."},
    ]
    assert (chat["user"], chat["reasoning_effort"], chat["max_completion_tokens"]) == ("u-1", "high", 32000)
    assert "context_management" not in chat


def test_a_user_id_longer_than_openai_takes_becomes_a_stable_hash() -> None:
    long_id = '{"device_id":"' + "d" * 64 + '","session_id":"s-1"}'
    ids = [
        A.request_to_pivot({"model": "m", "max_tokens": 5, "messages": [user("x")], "metadata": {"user_id": u}})["user"]
        for u in ("u-1", long_id, long_id, long_id + " ")
    ]
    assert ids[0] == "u-1" and len(ids[1]) == 64 and ids[1] == ids[2] != ids[3]


def test_a_last_assistant_turn_with_text_is_a_prefill_no_other_provider_continues() -> None:
    body: dict[str, Any] = {"model": "m", "max_tokens": 5, "messages": [user("JSON please"), {"role": "assistant",
            "content": [{"type": "text", "text": "{"}]}]}  # fmt: skip
    with pytest.raises(TranslationError, match=r"^messages\[1\]: a last assistant turn with text \(a prefill"):
        A.request_to_pivot(body)
    # A last assistant turn of tool calls alone is no prefill (nothing to continue).
    body["messages"][1]["content"] = [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]
    assert A.request_to_pivot(body)["messages"][-1]["tool_calls"]
