"""Gemini answers ↔ OpenAI ``chat.completion`` objects (protocols/gemini/response.py):
parts, function calls, thoughts, finish reasons, blocked prompts, several candidates, round
trips, over the hand-written transcripts in tests/fixtures/transcripts. No sockets."""

from __future__ import annotations

import copy
import json

import openai
import pytest

from tests.support.transcript_support import load
from tollway.protocols.registry import codec_for

G = codec_for("gemini")


def test_a_gemini_answer_becomes_a_chat_completion() -> None:
    chat_body = G.response_to_pivot(load("gemini", "generate_text.response.json"))
    openai.types.chat.ChatCompletion.model_validate(chat_body)
    assert chat_body["id"] == "chatcmpl-mAitaLmkHPPlz7IPvtfUqQ4"
    assert chat_body["model"] == "gemini-2.5-flash"
    assert chat_body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "The capital of France is Paris."},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    # Thoughts count as completion tokens (as OpenAI's reasoning tokens do); the cached
    # count is part of the prompt count already.
    assert chat_body["usage"] == {
        "prompt_tokens": 1040,
        "completion_tokens": 8 + 45,
        "total_tokens": 1093,
        "prompt_tokens_details": {"cached_tokens": 1024},
        "completion_tokens_details": {"reasoning_tokens": 45},
    }


def test_a_function_call_answer_becomes_tool_calls() -> None:
    chat_body = G.response_to_pivot(load("gemini", "generate_tools.response.json"))
    openai.types.chat.ChatCompletion.model_validate(chat_body)
    choice = chat_body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"  # Gemini says STOP
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["id"].startswith("call_")
    assert call["function"] == {
        "name": "get_weather",
        "arguments": '{"location":"Paris, France","unit":"celsius","day":"tomorrow"}',
    }
    assert call["extra_content"] == {"google": {"thought_signature": "CiQB0e2Kb9a1QmVx"}}
    assert chat_body["usage"]["completion_tokens"] == 27 + 56
    assert chat_body["usage"]["total_tokens"] == 481


def test_thought_parts_become_reasoning_content() -> None:
    body = load("gemini", "generate_text.response.json")
    body["candidates"][0]["content"]["parts"].insert(0, {"text": "Thinking about France.", "thought": True})
    message = G.response_to_pivot(body)["choices"][0]["message"]
    assert message == {
        "role": "assistant",
        "content": "The capital of France is Paris.",
        "reasoning_content": "Thinking about France.",
    }


@pytest.mark.parametrize(
    ("native", "finish"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("SPII", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
        ("OTHER", "stop"),
    ],
)
def test_finish_reasons(native: str, finish: str) -> None:
    body = load("gemini", "generate_text.response.json")
    body["candidates"][0]["finishReason"] = native
    assert G.response_to_pivot(body)["choices"][0]["finish_reason"] == finish


def test_a_blocked_prompt_is_an_empty_content_filter_choice() -> None:
    body = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}}
    chat_body = G.response_to_pivot(body)
    assert chat_body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": None},
            "logprobs": None,
            "finish_reason": "content_filter",
        }
    ]
    assert chat_body["usage"] == {"prompt_tokens": 7, "completion_tokens": 0, "total_tokens": 7}


def test_several_candidates_become_several_choices() -> None:
    body = load("gemini", "generate_text.response.json")
    second = copy.deepcopy(body["candidates"][0])
    second["index"] = 1
    second["content"]["parts"] = [{"text": "Paris."}]
    body["candidates"].append(second)
    assert [c["message"]["content"] for c in G.response_to_pivot(body)["choices"]] == [
        "The capital of France is Paris.",
        "Paris.",
    ]


def test_a_chat_completion_becomes_a_gemini_answer() -> None:
    assert G.response_from_pivot(load("openai", "chat_text.response.json")) == {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": "The capital of France is Paris."}]},
                "index": 0,
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 1117,
            "candidatesTokenCount": 8,
            "totalTokenCount": 1125,
            "cachedContentTokenCount": 1024,
        },
        "modelVersion": "gpt-4o-mini-2024-07-18",
        "responseId": "B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
    }


def test_an_openai_refusal_becomes_a_text_part() -> None:
    completion = load("openai", "chat_text.response.json")
    completion["choices"][0]["message"] = {"role": "assistant", "content": None, "refusal": "I can't help."}
    (candidate,) = G.response_from_pivot(completion)["candidates"]
    assert candidate["content"]["parts"] == [{"text": "I can't help."}]


@pytest.mark.parametrize("name", ["generate_text.response.json", "generate_tools.response.json"])
def test_gemini_answer_round_trip(name: str) -> None:
    original = load("gemini", name)
    back = G.response_from_pivot(G.response_to_pivot(original))
    for part in back["candidates"][0]["content"]["parts"]:
        part.get("functionCall", {}).pop("id", None)  # ids are made up on the way in
    assert back["candidates"] == original["candidates"]
    assert back["modelVersion"] == original["modelVersion"]
    assert back["responseId"] == original["responseId"]
    usage = original["usageMetadata"]
    for key in ("promptTokenCount", "candidatesTokenCount", "totalTokenCount", "thoughtsTokenCount"):
        assert back["usageMetadata"].get(key) == usage.get(key)


@pytest.mark.parametrize("name", ["chat_text.response.json", "chat_tools.response.json"])
def test_pivot_answer_round_trip(name: str) -> None:
    original = load("openai", name)
    back = G.response_to_pivot(G.response_from_pivot(original))
    want, got = original["choices"][0], back["choices"][0]
    assert (got["finish_reason"], got["message"]["content"]) == (want["finish_reason"], want["message"]["content"])
    assert [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in got["message"].get("tool_calls", [])
    ] == [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in want["message"].get("tool_calls", [])
    ]
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert back["usage"][key] == original["usage"][key]
    assert (back["id"], back["model"]) == (original["id"], original["model"])
