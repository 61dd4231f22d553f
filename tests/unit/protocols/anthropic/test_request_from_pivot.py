"""Pivot → Anthropic Messages requests (protocols/anthropic/request_from_pivot.py): what a
Claude provider receives for an OpenAI chat-completions request, over the hand-written
transcripts in tests/fixtures/transcripts. No sockets."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.anthropic_support import chat, to_claude, user
from tests.support.transcript_support import load
from tollway.protocols.codec import TranslationError


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
        ("xhigh", None, {"type": "enabled", "budget_tokens": 32768}),
        ("max", 70000, {"type": "enabled", "budget_tokens": 65536}),
        ("medium", 1025, {"type": "enabled", "budget_tokens": 1024}),
        ("minimal", None, None),
        ("none", None, None),
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


def test_fields_that_change_nothing_of_the_answer_are_dropped() -> None:
    body = to_claude(
        chat(
            {"role": "user", "content": "hi", "name": "bob"},
            seed=1,
            presence_penalty=0,
            frequency_penalty=0.0,
            logprobs=False,
            logit_bias={},
            response_format={"type": "text"},
            stream_options={"include_usage": True},
            n=1,
            store=True,
            metadata={"tag": "x"},
            service_tier="auto",
            prediction={"type": "content", "content": "hello"},
            prompt_cache_key="k",
            verbosity="medium",
            modalities=["text"],
            audio=None,
        )
    )
    assert body == {"model": "claude-x", "max_tokens": 4096, "messages": [user("hi")]}


def test_top_k_a_thinking_object_and_the_safety_identifier_have_their_anthropic_fields() -> None:
    thinking = {"type": "adaptive"}
    body = to_claude(chat(user("hi"), top_k=5, thinking=thinking, reasoning_effort="high", safety_identifier="u-1"))
    assert (body["top_k"], body["thinking"], body["metadata"]) == (5, thinking, {"user_id": "u-1"})
    assert body["max_tokens"] == 4096  # the client's own thinking: no budget added


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.mark.parametrize(
    ("response_format", "output_format"),
    [
        ({"type": "json_schema", "json_schema": {"name": "place", "schema": SCHEMA, "strict": True}},
         {"type": "json_schema", "schema": SCHEMA}),
        ({"type": "json_object"}, {"type": "json_schema", "schema": {"type": "object"}}),
    ],
)  # fmt: skip
def test_response_format_becomes_anthropics_structured_output(response_format: Any, output_format: Any) -> None:
    body = to_claude(chat(user("hi"), response_format=response_format))
    assert body["output_config"] == {"format": output_format}


@pytest.mark.parametrize(
    ("request_body", "names"),
    [
        (chat(user("hi"), n=2), "n > 1"),
        (chat(user("hi"), logprobs=True), "logprobs"),
        (chat(user("hi"), top_logprobs=3), "top_logprobs"),
        (chat(user("hi"), logit_bias={"50256": -100}), "logit_bias"),
        (chat(user("hi"), frequency_penalty=0.5), "frequency_penalty"),
        (chat(user("hi"), presence_penalty=-1), "presence_penalty"),
        (chat(user("hi"), response_format={"type": "json_schema", "json_schema": {"name": "x"}}), "response_format"),
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
        (chat(user("x"), verbosity="low"), "verbosity"),
        (chat(user("x"), modalities=["text", "audio"], audio={"voice": "alloy"}), "modalities"),
        (chat(user("x"), web_search_options={}), "web_search_options"),
        (chat(user("x"), functions=[{"name": "f"}]), "functions"),
        (chat(user("x"), function_call="auto"), "function_call"),
        (chat(user("x"), reasoning_effort="extreme"), "reasoning_effort"),
        # Claude's smallest budget (1024) must fit inside max_tokens: not dropped unsaid.
        (chat(user("x"), reasoning_effort="low", max_completion_tokens=1000), "reasoning_effort"),
        (chat(user("x"), reasoning_effort="high", max_tokens=1024), "reasoning_effort"),
        (chat(user("x"), chat_template_kwargs={"x": 1}), "chat_template_kwargs"),
        ({"model": "m"}, "messages"),
    ],
)
def test_what_anthropic_cannot_express_is_refused(request_body: dict[str, Any], names: str) -> None:
    with pytest.raises(TranslationError, match=names.replace("[", r"\[").replace(".", r"\.")):
        to_claude(request_body)


SIGNED = [
    {"type": "thinking", "thinking": "Weather first.", "signature": "EqQBCgIYAhIM"},
    {"type": "redacted_thinking", "data": "EmwKAhgBEgy3"},
]


def test_thinking_blocks_lead_the_assistant_turn_exactly_as_given() -> None:
    call = {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    turn = {"role": "assistant", "content": "Checking.", "reasoning_content": "Weather first.",
            "thinking_blocks": SIGNED, "tool_calls": [call]}  # fmt: skip
    body = to_claude(chat(user("Weather?"), turn, {"role": "tool", "tool_call_id": "toolu_1", "content": "18"}))
    assert body["messages"][1]["content"] == [
        *SIGNED,
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
    ]
    # Reasoning text alone is not sent: Claude takes no unsigned thinking.
    unsigned = to_claude(chat(user("Hi"), {"role": "assistant", "content": "Hello", "reasoning_content": "Hm."}))
    assert unsigned["messages"][1] == {"role": "assistant", "content": "Hello"}


def test_thinking_blocks_that_are_not_whole_are_refused() -> None:
    with pytest.raises(TranslationError, match=r"messages\[1\]\.thinking_blocks\[0\]"):
        to_claude(chat(user("Hi"), {"role": "assistant", "content": "Hi", "thinking_blocks": [{"type": "thinking"}]}))


def _with_tool_answer(*parts: dict[str, Any]) -> dict[str, Any]:
    call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    return chat(
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "t1", "content": list(parts)},
    )


def test_a_tool_messages_images_and_pdfs_go_in_its_tool_result() -> None:
    """Anthropic's tool_result holds images and documents: they were dropped, and the
    model read the tool's answer without the screenshot it returned."""
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    linked = {"type": "image_url", "image_url": {"url": "https://x.example/a.png"}}
    pdf = {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "r.pdf"}}
    body = to_claude(_with_tool_answer({"type": "text", "text": "r"}, image, linked, pdf))
    (result,) = body["messages"][-1]["content"]
    assert result == {
        "type": "tool_result",
        "tool_use_id": "t1",
        "content": [
            {"type": "text", "text": "r"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
            {"type": "image", "source": {"type": "url", "url": "https://x.example/a.png"}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
             "title": "r.pdf"},
        ],
    }  # fmt: skip


def test_a_tool_messages_audio_is_refused_naming_it() -> None:
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    with pytest.raises(TranslationError, match=r"messages\[2\]\.content\[1\]"):
        to_claude(_with_tool_answer({"type": "text", "text": "r"}, audio))


def test_an_assistant_refusal_part_is_its_text_and_an_image_part_is_refused() -> None:
    said = [{"type": "text", "text": "A1"}, {"type": "refusal", "refusal": "R1"}]
    body = to_claude(chat(user("x"), {"role": "assistant", "content": said}, user("y")))
    assert body["messages"][1] == {"role": "assistant", "content": [{"type": "text", "text": "A1R1"}]}
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    with pytest.raises(TranslationError, match=r"messages\[1\]\.content\[1\]"):
        to_claude(chat(user("x"), {"role": "assistant", "content": [said[0], image]}, user("y")))
