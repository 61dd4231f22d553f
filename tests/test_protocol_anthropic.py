"""The Anthropic Messages codec (protocols/anthropic_*): requests, answers, streams and
errors both ways around the OpenAI pivot, over the hand-written transcripts. No sockets:
the SDK checks run the real SDKs over ``httpx2.MockTransport`` (the SDKs' own httpx fork)."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import anthropic
import httpx2
import openai
import orjson
import pytest
from pydantic import TypeAdapter

from tests.transcript_support import Assembled, load, parse, raw, read, without_volatile, write
from tollway.protocols.codec import TranslationError
from tollway.protocols.registry import codec_for

A = codec_for("anthropic")
OPENAI = codec_for("openai")


def to_claude(chat: dict[str, Any]) -> dict[str, Any]:
    return A.request_from_pivot(chat)


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def chat(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "claude-x", "messages": list(messages), **fields}


# ---- requests: pivot → Anthropic -----------------------------------------------------


def test_a_plain_request_maps_every_field() -> None:
    body = to_claude(load("openai", "chat_text.request.json"))
    assert body == {
        "model": "gpt-4o-mini",
        "max_tokens": 64,
        "system": "You are a terse assistant. Answer in one sentence.",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "stop_sequences": ["\n\n"],
        "temperature": 0.2,
        "top_p": 0.9,
        "metadata": {"user_id": "user-1234"},
    }


def test_a_tool_conversation_maps_images_tool_calls_and_results() -> None:
    body = to_claude(load("openai", "chat_tools.request.json"))
    expected = load("anthropic", "messages_tools.request.json")
    # The Anthropic transcript is the same conversation; its system is two blocks and its
    # tool_choice object the same as what the pivot's fields become.
    assert body["messages"] == [
        expected["messages"][0],
        {
            "role": "assistant",
            "content": [
                expected["messages"][1]["content"][0],
                {**expected["messages"][1]["content"][1], "id": "call_8qty38wmM1gRcNe3LsqEpnrR"},
                {**expected["messages"][1]["content"][2], "id": "call_Lq0zH9sXuE1kF9pWcD2aJ7bT"},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "call_8qty38wmM1gRcNe3LsqEpnrR",
                    "content": '{"temperature": 14, "unit": "celsius", "conditions": "light rain"}',
                },
                {"type": "tool_result", "tool_use_id": "call_Lq0zH9sXuE1kF9pWcD2aJ7bT", "content": "15:42"},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ]
    assert body["system"] == "You help travellers. Use the tools when they help."
    assert body["tools"] == expected["tools"]
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert body["max_tokens"] == 512  # max_completion_tokens
    assert body["stream"] is True
    assert "stream_options" not in body and "parallel_tool_calls" not in body


def test_max_tokens_defaults_to_4096_and_prefers_max_completion_tokens() -> None:
    assert to_claude(chat(user("hi")))["max_tokens"] == 4096
    assert to_claude(chat(user("hi"), max_tokens=10))["max_tokens"] == 10
    assert to_claude(chat(user("hi"), max_tokens=10, max_completion_tokens=20))["max_tokens"] == 20


def test_system_and_developer_messages_become_the_system_blocks() -> None:
    body = to_claude(
        chat(
            {"role": "system", "content": "one"},
            {"role": "developer", "content": [{"type": "text", "text": "two"}]},
            user("hi"),
            {"role": "system", "content": "three"},
        )
    )
    assert body["system"] == [{"type": "text", "text": t} for t in ("one", "two", "three")]
    assert body["messages"] == [user("hi")]
    parts_only = to_claude(chat({"role": "system", "content": [{"type": "text", "text": "x"}]}, user("hi")))
    assert parts_only["system"] == [{"type": "text", "text": "x"}]


def test_a_single_string_stop_becomes_a_list() -> None:
    assert to_claude(chat(user("hi"), stop="END"))["stop_sequences"] == ["END"]


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        ({"type": "function", "function": {"name": "f"}}, None, {"type": "tool", "name": "f"}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        (None, None, None),
    ],
)
def test_tool_choice(choice: Any, parallel: Any, expected: Any) -> None:
    fields: dict[str, Any] = {"tools": [{"type": "function", "function": {"name": "f"}}]}
    if choice is not None:
        fields["tool_choice"] = choice
    if parallel is not None:
        fields["parallel_tool_calls"] = parallel
    body = to_claude(chat(user("hi"), **fields))
    assert body.get("tool_choice") == expected
    assert body["tools"] == [{"name": "f", "input_schema": {"type": "object", "properties": {}}}]


def test_tool_choice_without_tools_is_not_sent() -> None:
    assert "tool_choice" not in to_claude(chat(user("hi"), tool_choice="auto"))


def test_consecutive_tool_results_share_one_user_turn_with_the_next_user_message() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    body = to_claude(
        chat(
            user("go"),
            {"role": "assistant", "content": None, "tool_calls": [call, {**call, "id": "c2"}]},
            {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "a"}]},
            {"role": "tool", "tool_call_id": "c2", "content": "b"},
            user([{"type": "text", "text": "next"}]),
            {"role": "assistant", "content": "ok"},
            user("again"),
        )
    )
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user", "assistant", "user"]
    assert body["messages"][1]["content"] == [
        {"type": "tool_use", "id": "c1", "name": "f", "input": {}},
        {"type": "tool_use", "id": "c2", "name": "f", "input": {}},
    ]
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "c1", "content": [{"type": "text", "text": "a"}]},
        {"type": "tool_result", "tool_use_id": "c2", "content": "b"},
        {"type": "text", "text": "next"},
    ]
    assert body["messages"][3:] == [{"role": "assistant", "content": "ok"}, user("again")]


def test_tool_ids_are_made_acceptable_to_anthropic() -> None:
    call = {"id": "call:1/x", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    body = to_claude(
        chat(
            user("go"),
            {"role": "assistant", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call:1/x", "content": "r"},
        )
    )
    assert body["messages"][1]["content"][0]["id"] == "call_1_x"
    assert body["messages"][2]["content"][0]["tool_use_id"] == "call_1_x"


def test_a_pdf_file_part_becomes_a_document() -> None:
    part = {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}}
    body = to_claude(chat(user([part])))
    assert body["messages"][0]["content"] == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"},
            "title": "a.pdf",
        }
    ]


@pytest.mark.parametrize(
    ("effort", "max_tokens", "thinking"),
    [
        ("low", None, {"type": "enabled", "budget_tokens": 1024}),
        ("medium", None, {"type": "enabled", "budget_tokens": 8192}),
        ("high", 20000, {"type": "enabled", "budget_tokens": 16384}),
        ("high", 3000, {"type": "enabled", "budget_tokens": 2999}),
        ("low", 1000, None),
        ("minimal", None, None),
    ],
)
def test_reasoning_effort_becomes_a_thinking_budget_within_max_tokens(
    effort: str, max_tokens: int | None, thinking: Any
) -> None:
    fields: dict[str, Any] = {"reasoning_effort": effort}
    if max_tokens:
        fields["max_completion_tokens"] = max_tokens
    body = to_claude(chat(user("hi"), **fields))
    assert body.get("thinking") == thinking
    assert body["max_tokens"] == max_tokens or (4096 + thinking["budget_tokens"] if thinking else 4096)


def test_fields_without_an_anthropic_equivalent_are_dropped() -> None:
    body = to_claude(
        chat(
            {"role": "user", "content": "hi", "name": "bob"},
            seed=1,
            presence_penalty=0.5,
            frequency_penalty=0.5,
            logprobs=True,
            response_format={"type": "json_object"},
            stream_options={"include_usage": True},
            n=1,
        )
    )
    assert body == {"model": "claude-x", "max_tokens": 4096, "messages": [user("hi")]}


@pytest.mark.parametrize(
    ("request_body", "names"),
    [
        (chat(user("hi"), n=2), "n > 1"),
        (chat(user([{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}])), "input_audio"),
        (chat(user([{"type": "image_url", "image_url": {"url": "ftp://x"}}])), "image_url.url"),
        (chat(user([{"type": "file", "file": {"file_id": "file-1"}}])), "PDF"),
        (
            chat(
                user("x"),
                {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{oops"}}]},
            ),
            "messages[1].tool_calls[0].function.arguments",
        ),
        (chat({"role": "function", "content": "x"}), "messages[0].role"),
        (chat(user("x"), tools=[{"type": "web_search"}]), "tools[0]"),
        ({"model": "m"}, "messages"),
    ],
)
def test_what_anthropic_cannot_express_is_refused(request_body: dict[str, Any], names: str) -> None:
    with pytest.raises(TranslationError, match=names.replace("[", r"\[").replace(".", r"\.")):
        to_claude(request_body)


# ---- requests: Anthropic → pivot -----------------------------------------------------


def test_an_anthropic_request_becomes_a_pivot_request() -> None:
    chat_body = A.request_to_pivot(load("anthropic", "messages_text.request.json"))
    assert chat_body == {
        "model": "claude-sonnet-4-20250514",
        "messages": [
            {"role": "system", "content": "You are a terse assistant. Answer in one sentence."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
        "max_tokens": 1024,
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
    assert chat_body["max_tokens"] == 2048
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


def test_anthropic_only_fields_are_dropped_and_server_tools_refused() -> None:
    body = {
        "model": "m",
        "max_tokens": 5,
        "top_k": 3,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "messages": [
            user("x"),
            {
                "role": "assistant",
                "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}, {"type": "text", "text": "y"}],
            },
        ],
    }
    assert A.request_to_pivot(body) == {
        "model": "m",
        "messages": [user("x"), {"role": "assistant", "content": "y"}],
        "max_tokens": 5,
    }
    with pytest.raises(TranslationError, match=r"tools\[0\]"):
        A.request_to_pivot({**body, "tools": [{"type": "web_search_20250305", "name": "web_search"}]})


# ---- requests: round trips -----------------------------------------------------------


def _normal(chat_body: dict[str, Any]) -> dict[str, Any]:
    """A pivot request with content forms that mean the same made alike: text-only part
    lists as strings, tool arguments as objects, images without ``detail``."""
    out = copy.deepcopy(chat_body)
    for m in out["messages"]:
        content = m.get("content")
        if isinstance(content, list) and all(p.get("type") == "text" for p in content):
            m["content"] = "".join(p["text"] for p in content)
        elif isinstance(content, list):
            for p in content:
                if p.get("type") == "image_url":
                    p["image_url"] = {"url": p["image_url"]["url"]}
        for call in m.get("tool_calls") or ():
            call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    return out


@pytest.mark.parametrize("name", ["chat_text.request.json", "chat_tools.request.json"])
def test_pivot_to_anthropic_and_back_keeps_the_meaning(name: str) -> None:
    original = load("openai", name)
    got = _normal(A.request_to_pivot(to_claude(original)))
    expected = _normal(original)
    # Anthropic has one token limit and no stream options; stream false is the default.
    limit = expected.pop("max_completion_tokens", None)
    if limit is not None:
        expected["max_tokens"] = limit
    expected.pop("stream_options", None)
    got.pop("stream_options", None)
    if expected.get("stream") is False:
        del expected["stream"]
    assert got == expected


@pytest.mark.parametrize("name", ["messages_text.request.json", "messages_tools.request.json"])
def test_anthropic_to_pivot_and_back_keeps_the_meaning(name: str) -> None:
    original = load("anthropic", name)
    back = to_claude(A.request_to_pivot(original))
    if isinstance(original["system"], list):  # blocks are joined; cache_control is dropped
        original["system"] = "\n".join(b["text"] for b in original["system"])
    for m in original["messages"]:
        for block in m["content"] if isinstance(m["content"], list) else ():
            if block["type"] == "tool_result" and isinstance(block["content"], list):
                block["content"] = "".join(b["text"] for b in block["content"])  # text-only: a string
    if not original.get("stream"):
        original.pop("stream", None)
    assert back == original


# ---- responses -----------------------------------------------------------------------


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


# ---- streams: Anthropic → pivot ------------------------------------------------------


def test_a_text_stream_becomes_chunks_and_a_usage_chunk() -> None:
    chunks = read(A.stream_to_pivot(), parse([raw("anthropic", "messages_text.stream.sse")]))
    for c in chunks:
        openai.types.chat.ChatCompletionChunk.model_validate(c)
    got = Assembled(chunks)
    assert got.text == "The capital of France is Paris — café société."
    assert got.roles == 1 and got.finish == "stop"
    assert got.usage == {
        "prompt_tokens": 21 + 1024,
        "completion_tokens": 12,
        "total_tokens": 1057,
        "prompt_tokens_details": {"cached_tokens": 1024},
    }
    assert chunks[-1]["choices"] == []  # the usage chunk is last, as OpenAI sends it
    assert {c["id"] for c in chunks} == {"chatcmpl-01QxKa5eSgpxzg3Mpm2PxkXb"}
    assert {c["model"] for c in chunks} == {"claude-sonnet-4-20250514"}
    # Each text delta is its own chunk, sent as soon as it arrives.
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:4]] == [
        "The capital",
        " of France is Paris",
        " — café société.",
    ]


def test_a_tool_stream_reassembles_the_arguments() -> None:
    got = Assembled(read(A.stream_to_pivot(), parse([raw("anthropic", "messages_tools.stream.sse")])))
    assert got.text == "Okay, let's check the weather for Paris:"
    assert got.names() == ["get_weather", "get_time"]
    assert [got.calls[i]["id"] for i in (0, 1)] == ["toolu_01T1x1fJ34qAmk2tNTrN7Up6", "toolu_01VxP4nQ8kLmR2sT5wY7zA3c"]
    assert got.arguments() == [{"location": "Paris, France", "unit": "celsius"}, {"timezone": "Europe/Paris"}]
    assert got.finish == "tool_calls"
    assert got.usage is not None and got.usage["completion_tokens"] == 89 and got.usage["prompt_tokens"] == 472


@pytest.mark.parametrize("name", ["messages_text.stream.sse", "messages_tools.stream.sse"])
def test_a_stream_split_at_every_byte_reads_the_same(name: str) -> None:
    stream = raw("anthropic", name)
    whole = without_volatile(read(A.stream_to_pivot(), parse([stream])))
    for cut in range(len(stream) + 1):
        split = without_volatile(read(A.stream_to_pivot(), parse([stream[:cut], stream[cut:]])))
        assert split == whole, f"split at byte {cut}"


def test_a_stream_fed_in_tiny_random_pieces_reads_the_same() -> None:
    stream = raw("anthropic", "messages_tools.stream.sse")
    whole = without_volatile(read(A.stream_to_pivot(), parse([stream])))
    rng = random.Random(7)
    for _ in range(50):
        cuts = sorted(rng.sample(range(1, len(stream)), 40))
        pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        assert without_volatile(read(A.stream_to_pivot(), parse(pieces))) == whole


def test_an_error_event_becomes_a_pivot_error_chunk() -> None:
    chunks = read(A.stream_to_pivot(), parse([raw("anthropic", "error_stream.sse")]))
    got = Assembled(chunks)
    assert got.text == "Once upon"
    assert got.errors == [{"message": "Overloaded", "type": "api_error", "code": "upstream_error", "param": None}]
    assert got.usage is not None and got.usage["prompt_tokens"] == 12  # what was seen, at the end


# ---- streams: pivot → Anthropic ------------------------------------------------------


def _pivot_chunks(name: str) -> list[dict[str, Any]]:
    return read(OPENAI.stream_to_pivot(), parse([raw("openai", name)]))


def _validate(events: list[Any]) -> list[str]:
    adapter: TypeAdapter[Any] = TypeAdapter(anthropic.types.RawMessageStreamEvent)
    names = []
    for e in events:
        data = e.json()
        assert e.event == data["type"]
        adapter.validate_python(data)
        names.append(e.event)
    return names


def test_a_text_stream_is_written_as_the_full_anthropic_sequence() -> None:
    events = write(A.stream_from_pivot({"model": "gpt-4o-mini"}), _pivot_chunks("chat_text.stream.sse"))
    assert _validate(events) == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0].json()["message"]
    assert start["id"] == "msg_B9MJ3mRUl5PAm1pD0mXv5z8a1qKtT"
    assert start["model"] == "gpt-4o-mini-2024-07-18"
    assert start["usage"]["input_tokens"] == 0  # not known yet: OpenAI reports it last
    assert events[1].json()["content_block"] == {"type": "text", "text": ""}
    assert "".join(e.json()["delta"]["text"] for e in events[2:6]) == "The capital of France is Paris."
    delta = events[7].json()
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"] == {
        "input_tokens": 1117 - 1024,
        "output_tokens": 8,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 1024,
    }


def test_tool_calls_are_written_as_tool_use_blocks_with_input_json_deltas() -> None:
    events = write(A.stream_from_pivot({"model": "gpt-4o"}), _pivot_chunks("chat_tools.stream.sse"))
    names = _validate(events)
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    starts = [e.json() for e in events if e.event == "content_block_start"]
    assert starts == [
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {
                "type": "tool_use",
                "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA",
                "name": "get_weather",
                "input": {},
            },
        },
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {
                "type": "tool_use",
                "id": "call_Jc7kQ0b8wF1mZsR5tY3uV9xN",
                "name": "get_time",
                "input": {},
            },
        },
    ]
    args: dict[int, str] = {0: "", 1: ""}
    for e in events:
        if e.event == "content_block_delta":
            data = e.json()
            assert data["delta"]["type"] == "input_json_delta"
            args[data["index"]] += data["delta"]["partial_json"]
    assert json.loads(args[0]) == {"location": "Paris, France", "day": "tomorrow"}
    assert json.loads(args[1]) == {"timezone": "Europe/Paris"}
    # Each block is stopped before the next starts.
    order = [(e.event, e.json().get("index")) for e in events if (e.event or "").startswith("content_block_")]
    assert order.index(("content_block_stop", 0)) < order.index(("content_block_start", 1))
    assert events[-2].json()["delta"]["stop_reason"] == "tool_use"
    assert events[-2].json()["usage"]["output_tokens"] == 41


def _sdk_client(body: bytes, content_type: str) -> httpx2.Client:
    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": content_type}, content=body)

    return httpx2.Client(transport=httpx2.MockTransport(answer))


def test_the_anthropic_sdk_assembles_what_the_writer_sends() -> None:
    text_chunks = _pivot_chunks("chat_text.stream.sse")
    tool_chunks = [c for c in _pivot_chunks("chat_tools.stream.sse") if c.get("choices")]
    # One answer with text, then both tool calls, then the text stream's finish and usage.
    chunks = text_chunks[:-2] + [
        {**c, "choices": [{**c["choices"][0], "finish_reason": None}]} for c in tool_chunks[:-1]
    ]
    chunks += [{**tool_chunks[-1]}, text_chunks[-1]]
    body = b"".join(e.raw for e in write(A.stream_from_pivot({"model": "m"}), chunks))
    with _sdk_client(body, "text/event-stream") as http:
        client = anthropic.Anthropic(api_key="test", base_url="http://provider.test", http_client=http)
        with client.messages.stream(model="m", max_tokens=100, messages=[{"role": "user", "content": "hi"}]) as stream:
            message = stream.get_final_message()
    text, weather, time = message.content
    assert isinstance(text, anthropic.types.TextBlock) and text.text == "The capital of France is Paris."
    assert isinstance(weather, anthropic.types.ToolUseBlock) and isinstance(time, anthropic.types.ToolUseBlock)
    assert weather.input == {"location": "Paris, France", "day": "tomorrow"}
    assert time.input == {"timezone": "Europe/Paris"}
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (1117 - 1024, 8)
    assert message.usage.cache_read_input_tokens == 1024


def test_usage_in_the_finish_chunk_and_no_usage_at_all() -> None:
    base = {"id": "chatcmpl-1", "model": "m", "object": "chat.completion.chunk", "created": 1}
    with_usage = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}, "finish_reason": None}]},
        {
            **base,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
        },
    ]
    events = write(A.stream_from_pivot({"model": "m"}), with_usage)
    assert [e.event for e in events][-2:] == ["message_delta", "message_stop"]
    assert events[-2].json()["delta"]["stop_reason"] == "max_tokens"
    assert events[-2].json()["usage"]["input_tokens"] == 5
    no_usage = write(A.stream_from_pivot({"model": "m"}), with_usage[:1])
    _validate(no_usage)
    assert no_usage[-2].json() == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 0},
    }
    assert write(A.stream_from_pivot({"model": "asked"}), [])[0].json()["message"]["model"] == "asked"


def test_reasoning_deltas_become_a_thinking_block_before_the_text() -> None:
    base = {"id": "chatcmpl-1", "model": "m", "object": "chat.completion.chunk", "created": 1}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"reasoning_content": "hmm"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"reasoning_content": "…"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": "yes"}, "finish_reason": "stop"}]},
    ]
    events = write(A.stream_from_pivot({"model": "m"}), chunks)
    _validate(events)
    blocks = [e.json()["content_block"]["type"] for e in events if e.event == "content_block_start"]
    assert blocks == ["thinking", "text"]
    assert Assembled(read(A.stream_to_pivot(), events)).reasoning == "hmm…"


def test_a_pivot_error_chunk_becomes_an_error_event_and_ends_the_stream() -> None:
    chunks = [
        *_pivot_chunks("chat_text.stream.sse")[:2],
        {"error": {"message": "boom", "type": "api_error", "code": None}},
    ]
    events = write(A.stream_from_pivot({"model": "m"}), chunks)
    assert events[-1].event == "error"
    assert events[-1].json() == {"type": "error", "error": {"type": "api_error", "message": "boom"}}
    assert "message_stop" not in [e.event for e in events]


@pytest.mark.parametrize("name", ["chat_text.stream.sse", "chat_tools.stream.sse"])
def test_pivot_stream_round_trip(name: str) -> None:
    original = Assembled(_pivot_chunks(name))
    events = write(A.stream_from_pivot({"model": "m"}), _pivot_chunks(name))
    # What a client receives, re-read from its bytes split at every byte.
    body = b"".join(e.raw for e in events)
    for cut in range(0, len(body) + 1, 7):
        back = Assembled(read(A.stream_to_pivot(), parse([body[:cut], body[cut:]])))
        assert (back.text, back.finish, back.calls) == (original.text, original.finish, original.calls)
        assert back.usage is not None and original.usage is not None
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            assert back.usage[key] == original.usage[key]


# ---- errors and model lists ----------------------------------------------------------


def test_an_anthropic_error_body_becomes_an_openai_one() -> None:
    body = A.error_to_pivot(529, raw("anthropic", "error_overloaded.json"))
    assert orjson.loads(body) == {
        "error": {"message": "Overloaded", "type": "api_error", "code": "upstream_error", "param": None}
    }
    rate = A.error_to_pivot(429, b'{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}')
    assert orjson.loads(rate)["error"] == {
        "message": "slow down",
        "type": "rate_limit_error",
        "code": "rate_limit_exceeded",
        "param": None,
    }
    assert (
        orjson.loads(A.error_to_pivot(502, b"<html>Bad gateway</html>"))["error"]["message"]
        == "<html>Bad gateway</html>"
    )


@pytest.mark.parametrize(
    ("status", "etype"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (529, "overloaded_error"),
    ],
)
def test_an_openai_error_body_becomes_an_anthropic_one(status: int, etype: str) -> None:
    body = A.error_from_pivot(status, raw("openai", "error_401.json"))
    obj = orjson.loads(body)
    assert obj["type"] == "error"
    assert obj["error"]["type"] == etype
    assert obj["error"]["message"].startswith("Incorrect API key provided")
    anthropic.types.ErrorResponse.model_validate(obj)


def test_the_anthropic_sdk_shows_a_translated_error() -> None:
    body = A.error_from_pivot(401, raw("openai", "error_401.json"))

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(401, headers={"content-type": "application/json"}, content=body)

    with httpx2.Client(transport=httpx2.MockTransport(answer)) as http:
        client = anthropic.Anthropic(api_key="k", base_url="http://provider.test", http_client=http, max_retries=0)
        with pytest.raises(anthropic.AuthenticationError, match="Incorrect API key provided"):
            client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}])


def test_model_ids() -> None:
    assert A.model_ids(load("anthropic", "models.json")) == ["claude-sonnet-4-20250514", "claude-3-5-haiku-20241022"]
    assert A.model_ids({"nope": 1}) == []


def test_api_path() -> None:
    assert A.api_path(False, "claude-x") == A.api_path(True, "claude-x")
    assert (A.api_path(True, "m").path, A.api_path(True, "m").query) == ("/messages", "")
