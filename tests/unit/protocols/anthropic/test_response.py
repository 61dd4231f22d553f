"""Anthropic Messages answers ↔ OpenAI ``chat.completion`` objects
(protocols/anthropic/response.py): text, tool use, thinking, stop reasons and round trips,
over the hand-written transcripts in tests/fixtures/transcripts. No sockets."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from tests.support.transcript_support import load
from tollway.protocols.registry import codec_for

A = codec_for("anthropic")


def test_an_anthropic_answer_becomes_a_chat_completion() -> None:
    chat_body = A.response_to_pivot(load("anthropic", "messages_text.response.json"))
    openai.types.chat.ChatCompletion.model_validate(chat_body)
    assert chat_body["id"] == "chatcmpl-01XFDUDYJgAACzvnptvVoYEL"
    assert chat_body["object"] == "chat.completion"
    assert chat_body["model"] == "claude-sonnet-4-20250514"
    assert chat_body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "The capital of France is Paris."},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    # input_tokens excludes the cache read; OpenAI's prompt_tokens includes it.
    assert chat_body["usage"] == {
        "prompt_tokens": 21 + 1024,
        "completion_tokens": 10,
        "total_tokens": 1055,
        "prompt_tokens_details": {"cached_tokens": 1024},
    }


def test_an_anthropic_tool_answer_becomes_tool_calls() -> None:
    chat_body = A.response_to_pivot(load("anthropic", "messages_tools.response.json"))
    openai.types.chat.ChatCompletion.model_validate(chat_body)
    message = chat_body["choices"][0]["message"]
    assert message["content"] == "I'll check tomorrow's forecast for Paris."
    assert message["tool_calls"] == [
        {
            "id": "toolu_01D7FLrfh4GYq7yT1ULFeyMV",
            "type": "function",
            "function": {
                "name": "get_weather",
                "arguments": '{"location":"Paris, France","unit":"celsius","day":"tomorrow"}',
            },
        }
    ]
    assert chat_body["choices"][0]["finish_reason"] == "tool_calls"
    assert chat_body["usage"]["prompt_tokens"] == 497 + 120  # cache writes are input too


def test_a_chat_completion_becomes_an_anthropic_message() -> None:
    message = A.response_from_pivot(load("openai", "chat_text.response.json"))
    anthropic.types.Message.model_validate(message)
    assert message == {
        "id": "msg_B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "type": "message",
        "role": "assistant",
        "model": "gpt-4o-mini-2024-07-18",
        "content": [{"type": "text", "text": "The capital of France is Paris."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 1117 - 1024,
            "output_tokens": 8,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 1024,
        },
    }


def test_tool_calls_become_tool_use_blocks() -> None:
    message = A.response_from_pivot(load("openai", "chat_tools.response.json"))
    anthropic.types.Message.model_validate(message)
    assert message["content"] == [
        {
            "type": "tool_use",
            "id": "call_62136354",
            "name": "get_weather",
            "input": {"location": "Paris, France", "unit": "celsius", "day": "tomorrow"},
        }
    ]
    assert message["stop_reason"] == "tool_use"


def test_reasoning_content_becomes_a_thinking_block_and_back() -> None:
    completion = load("openai", "chat_text.response.json")
    completion["choices"][0]["message"]["reasoning_content"] = "Paris is the capital."
    message = A.response_from_pivot(completion)
    assert message["content"][0] == {"type": "thinking", "thinking": "Paris is the capital.", "signature": ""}
    assert A.response_to_pivot(message)["choices"][0]["message"]["reasoning_content"] == "Paris is the capital."


def test_malformed_model_arguments_do_not_lose_the_answer() -> None:
    completion = load("openai", "chat_tools.response.json")
    completion["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = '{"location": "Par'
    assert A.response_from_pivot(completion)["content"][0]["input"] == {"_raw_arguments": '{"location": "Par'}


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
    ],
)
def test_stop_reason_to_finish_reason(stop_reason: str, finish: str) -> None:
    body = {**load("anthropic", "messages_text.response.json"), "stop_reason": stop_reason}
    assert A.response_to_pivot(body)["choices"][0]["finish_reason"] == finish


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("content_filter", "refusal")],
)
def test_finish_reason_to_stop_reason(finish: str, stop_reason: str) -> None:
    completion = load("openai", "chat_text.response.json")
    completion["choices"][0]["finish_reason"] = finish
    assert A.response_from_pivot(completion)["stop_reason"] == stop_reason


@pytest.mark.parametrize("name", ["chat_text.response.json", "chat_tools.response.json"])
def test_pivot_answer_round_trip(name: str) -> None:
    original = load("openai", name)
    back = A.response_to_pivot(A.response_from_pivot(original))
    assert back["id"] == original["id"]
    assert back["model"] == original["model"]
    want, got = original["choices"][0], back["choices"][0]
    assert got["finish_reason"] == want["finish_reason"]
    assert got["message"]["content"] == want["message"]["content"]
    assert [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in got["message"].get("tool_calls", [])
    ] == [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in want["message"].get("tool_calls", [])
    ]
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert back["usage"][key] == original["usage"][key]
    assert (
        back["usage"].get("prompt_tokens_details", {}).get("cached_tokens", 0)
        == original["usage"]["prompt_tokens_details"]["cached_tokens"]
    )


def test_signed_and_redacted_thinking_become_thinking_blocks_and_back_exactly() -> None:
    message = load("anthropic", "messages_thinking.response.json")
    blocks = [b for b in message["content"] if b["type"] in ("thinking", "redacted_thinking")]
    pivot_message = A.response_to_pivot(message)["choices"][0]["message"]
    assert pivot_message["thinking_blocks"] == blocks
    assert pivot_message["reasoning_content"] == blocks[0]["thinking"]
    assert A.response_from_pivot(A.response_to_pivot(message))["content"][:2] == blocks
