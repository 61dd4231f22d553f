"""Gemini ``generateContent`` requests ↔ the OpenAI pivot (protocols/gemini/request.py),
both ways and round trips, over the hand-written transcripts in tests/fixtures/transcripts.
No sockets."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.support.transcript_support import load
from tollway.protocols.codec import TranslationError
from tollway.protocols.registry import codec_for

G = codec_for("gemini")
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def chat(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "gemini-x", "messages": list(messages), **fields}


# ---- requests: pivot → Gemini --------------------------------------------------------


def test_a_plain_request_maps_every_field() -> None:
    body = G.request_from_pivot(load("openai", "chat_text.request.json"))
    assert body == {
        "systemInstruction": {"parts": [{"text": "You are a terse assistant. Answer in one sentence."}]},
        "contents": [{"role": "user", "parts": [{"text": "What is the capital of France?"}]}],
        "generationConfig": {"maxOutputTokens": 64, "temperature": 0.2, "topP": 0.9, "stopSequences": ["\n\n"]},
    }


def test_a_tool_conversation_maps_images_calls_and_responses() -> None:
    original = load("openai", "chat_tools.request.json")
    del original["parallel_tool_calls"]  # false: Gemini cannot promise one call (refused, below)
    body = G.request_from_pivot(original)
    weather, clock = "call_8qty38wmM1gRcNe3LsqEpnrR", "call_Lq0zH9sXuE1kF9pWcD2aJ7bT"
    assert body["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "Where was this photo taken, and what is the weather there now? Compare with this one."},
                {"inlineData": {"mimeType": "image/png", "data": PIXEL}},
                {
                    "fileData": {
                        "mimeType": "image/jpeg",
                        "fileUri": "https://upload.wikimedia.org/wikipedia/commons/a/a8/Tour_Eiffel_Wikimedia_Commons.jpg",
                    }
                },
            ],
        },
        {
            "role": "model",
            "parts": [
                {"text": "Both photos show Paris. Let me check the weather and the time there."},
                {
                    "functionCall": {
                        "name": "get_weather",
                        "args": {"location": "Paris, France", "unit": "celsius"},
                        "id": weather,
                    }
                },
                {"functionCall": {"name": "get_time", "args": {"timezone": "Europe/Paris"}, "id": clock}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "name": "get_weather",
                        "response": {"temperature": 14, "unit": "celsius", "conditions": "light rain"},
                        "id": weather,
                    }
                },
                {"functionResponse": {"name": "get_time", "response": {"output": "15:42"}, "id": clock}},
            ],
        },
        {"role": "user", "parts": [{"text": "And tomorrow?"}]},
    ]
    assert body["systemInstruction"] == {"parts": [{"text": "You help travellers. Use the tools when they help."}]}
    assert body["generationConfig"] == {"maxOutputTokens": 512}
    declarations = body["tools"][0]["functionDeclarations"]
    assert [d["name"] for d in declarations] == ["get_weather", "get_time"]
    assert declarations[0]["parametersJsonSchema"] == original["tools"][0]["function"]["parameters"]
    assert declarations[0]["description"] == "Get the current weather in a given location"
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    assert "model" not in body and "stream" not in body  # both are in the URL


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        ({"type": "function", "function": {"name": "f"}}, {"mode": "ANY", "allowedFunctionNames": ["f"]}),
    ],
)
def test_tool_choice(choice: Any, config: dict[str, Any]) -> None:
    body = G.request_from_pivot(
        chat(user("x"), tools=[{"type": "function", "function": {"name": "f"}}], tool_choice=choice)
    )
    assert body["toolConfig"] == {"functionCallingConfig": config}
    assert body["tools"] == [{"functionDeclarations": [{"name": "f"}]}]


def test_generation_config_fields() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    body = G.request_from_pivot(
        chat(
            user("x"),
            max_completion_tokens=100,
            max_tokens=5,
            n=2,
            seed=7,
            presence_penalty=0.1,
            frequency_penalty=0.2,
            stop="END",
            response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": schema}},
            user="u-1",
            logprobs=False,
            top_k=40,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert body["generationConfig"] == {
        "maxOutputTokens": 100,
        "seed": 7,
        "presencePenalty": 0.1,
        "frequencyPenalty": 0.2,
        "stopSequences": ["END"],
        "candidateCount": 2,
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
        "topK": 40,
    }
    assert set(body) == {"contents", "generationConfig"}
    json_mode = G.request_from_pivot(chat(user("x"), response_format={"type": "json_object"}))
    assert json_mode["generationConfig"] == {"responseMimeType": "application/json"}


def test_audio_pdf_and_developer_messages() -> None:
    body = G.request_from_pivot(
        chat(
            {"role": "developer", "content": "be brief"},
            user(
                [
                    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0x"}},
                ]
            ),
        )
    )
    assert body["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert body["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0x"}},
    ]


def test_a_thought_signature_goes_back_with_its_function_call() -> None:
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "f", "arguments": "{}"},
        "extra_content": {"google": {"thought_signature": "sig=="}},
    }
    body = G.request_from_pivot(chat(user("x"), {"role": "assistant", "content": None, "tool_calls": [call]}))
    assert body["contents"][1] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "f", "args": {}, "id": "c1"}, "thoughtSignature": "sig=="}],
    }


@pytest.mark.parametrize(
    ("request_body", "names"),
    [
        (chat(user("x"), {"role": "tool", "tool_call_id": "nobody", "content": "r"}), "messages[1].tool_call_id"),
        (chat(user([{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}])), "messages[0].content[0]"),
        (chat(user([{"type": "input_audio", "input_audio": {"data": "x", "format": "flac"}}])), "input_audio"),
        (chat(user("x"), tools=[{"type": "code_interpreter"}]), "tools[0]"),
        (chat({"role": "critic", "content": "x"}), "messages[0].role"),
        # Fields that ask for what Gemini cannot do, and one nobody translates.
        (chat(user("x"), logprobs=True), "logprobs"),
        (chat(user("x"), parallel_tool_calls=False), "parallel_tool_calls"),
        (chat(user("x"), verbosity="high"), "verbosity"),
        (chat(user("x"), thinking={"type": "enabled", "budget_tokens": 2048}), "thinking"),
        (chat(user("x"), reasoning_effort="extreme"), "reasoning_effort"),
        (chat(user("x"), brand_new_field=1), "brand_new_field"),
        (
            chat(
                user("x"),
                {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1]"}}]},
            ),
            "arguments",
        ),
    ],
)
def test_what_gemini_cannot_express_is_refused(request_body: dict[str, Any], names: str) -> None:
    with pytest.raises(TranslationError, match=names.replace("[", r"\[").replace(".", r"\.")):
        G.request_from_pivot(request_body)


@pytest.mark.parametrize(
    ("model", "effort", "thinking"),
    [
        ("gemini-2.5-flash", "none", {"thinkingBudget": 0}),
        ("gemini-2.5-flash", "low", {"thinkingBudget": 1024}),
        ("gemini-2.5-pro", "medium", {"thinkingBudget": 8192}),
        ("gemini-2.5-pro", "xhigh", {"thinkingBudget": 24576}),
        ("gemini-3-flash-preview", "minimal", {"thinkingLevel": "minimal"}),
        ("gemini-3-pro-preview", "high", {"thinkingLevel": "high"}),
        ("gemini-3-pro-preview", "none", {"thinkingLevel": "minimal"}),
    ],
)
def test_reasoning_effort_becomes_the_models_thinking_setting(model: str, effort: str, thinking: Any) -> None:
    body = G.request_from_pivot({**chat(user("x"), reasoning_effort=effort), "model": model})
    assert body["generationConfig"] == {"thinkingConfig": thinking}


def test_a_tool_message_may_name_its_function_itself() -> None:
    body = G.request_from_pivot(
        chat(user("x"), {"role": "tool", "tool_call_id": "gone", "name": "f", "content": "[1, 2]"})
    )
    assert body["contents"][1] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "f", "response": {"output": "[1, 2]"}, "id": "gone"}}],
    }


# ---- requests: Gemini → pivot --------------------------------------------------------


def test_a_gemini_request_becomes_a_pivot_request() -> None:
    assert G.request_to_pivot(load("gemini", "generate_text.request.json")) == {
        "messages": [
            {"role": "system", "content": "You are a terse assistant. Answer in one sentence."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
        "temperature": 0.2,
        "top_p": 0.9,
        "max_completion_tokens": 256,
        "stop": ["\n\n"],
    }


def test_function_calls_without_ids_get_ids_their_responses_share() -> None:
    chat_body = G.request_to_pivot(load("gemini", "generate_tools.request.json"))
    messages = chat_body["messages"]
    assert messages[1] == user(
        [
            {"type": "text", "text": "Where was this photo taken, and what is the weather there now?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
        ]
    )
    calls = messages[2]["tool_calls"]
    assert messages[2]["content"] == "This is Paris. Let me check the weather and the time there."
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("get_weather", {"location": "Paris, France", "unit": "celsius"}),
        ("get_time", {"timezone": "Europe/Paris"}),
    ]
    assert calls[0]["extra_content"] == {"google": {"thought_signature": "CiQB0e2Kb7r0xQm2bXr3"}}
    assert "extra_content" not in calls[1]
    assert messages[3] == {
        "role": "tool",
        "tool_call_id": calls[0]["id"],
        "content": '{"temperature":14,"unit":"celsius","conditions":"light rain"}',
    }
    assert messages[4] == {"role": "tool", "tool_call_id": calls[1]["id"], "content": "15:42"}
    assert calls[0]["id"] != calls[1]["id"]
    assert messages[5] == user("And tomorrow?")
    assert [t["function"]["parameters"]["required"] for t in chat_body["tools"]] == [["location"], ["timezone"]]
    assert chat_body["tool_choice"] == "auto"
    assert chat_body["max_completion_tokens"] == 512
    assert "model" not in chat_body


# ---- requests: round trips -----------------------------------------------------------


def _normal_pivot(chat_body: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(chat_body)
    for m in out["messages"]:
        content = m.get("content")
        if isinstance(content, list):
            for p in content:
                if p.get("type") == "image_url":
                    p["image_url"] = {"url": p["image_url"]["url"]}
        if m["role"] == "tool":
            try:
                m["content"] = json.loads(m["content"])
            except ValueError:
                pass
        for call in m.get("tool_calls") or ():
            call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    return out


@pytest.mark.parametrize("name", ["chat_text.request.json", "chat_tools.request.json"])
def test_pivot_to_gemini_and_back_keeps_the_meaning(name: str) -> None:
    original = load("openai", name)
    original.pop("parallel_tool_calls", None)  # false is refused (Gemini cannot promise one call)
    back = _normal_pivot(G.request_to_pivot(G.request_from_pivot(original)))
    expected = _normal_pivot(original)
    # In the URL, or with no Gemini equivalent:
    for gone in ("model", "stream", "stream_options", "user", "parallel_tool_calls"):
        expected.pop(gone, None)
    limit = expected.pop("max_tokens", None)
    if limit is not None:
        expected["max_completion_tokens"] = limit
    assert back == expected


def _normal_gemini(body: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(body)
    for content in out["contents"]:
        for part in content["parts"]:
            for key in ("functionCall", "functionResponse"):
                if key in part:
                    part[key].pop("id", None)
    for tool in out.get("tools", ()):
        for decl in tool["functionDeclarations"]:
            if "parameters" in decl:
                decl["parametersJsonSchema"] = decl.pop("parameters")
    return out


@pytest.mark.parametrize("name", ["generate_text.request.json", "generate_tools.request.json"])
def test_gemini_to_pivot_and_back_keeps_the_meaning(name: str) -> None:
    original = load("gemini", name)
    back = G.request_from_pivot(G.request_to_pivot(original))
    assert _normal_gemini(back) == _normal_gemini(original)
