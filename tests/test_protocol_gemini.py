"""The Gemini codec (protocols/gemini*): generateContent requests, answers,
``streamGenerateContent?alt=sse`` streams and errors both ways around the OpenAI pivot,
over the hand-written transcripts. No sockets."""

from __future__ import annotations

import copy
import json
from typing import Any

import openai
import orjson
import pytest

from tests.transcript_support import Assembled, load, parse, raw, read, without_volatile, write
from tollway.protocols.codec import TranslationError
from tollway.protocols.registry import codec_for
from tollway.protocols.sse import SseEvent

G = codec_for("gemini")
OPENAI = codec_for("openai")
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def chat(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "gemini-x", "messages": list(messages), **fields}


# ---- paths ---------------------------------------------------------------------------


def test_api_paths() -> None:
    plain = G.api_path(False, "gemini-2.5-flash")
    stream = G.api_path(True, "gemini-2.5-flash")
    assert (plain.path, plain.query) == ("/models/gemini-2.5-flash:generateContent", "")
    assert (stream.path, stream.query) == ("/models/gemini-2.5-flash:streamGenerateContent", "alt=sse")
    assert G.api_path(False, "models/gemini-2.5-pro").path == "/models/gemini-2.5-pro:generateContent"


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
            logprobs=True,
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
        "max_tokens": 256,
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
    assert chat_body["max_tokens"] == 512
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
    back = _normal_pivot(G.request_to_pivot(G.request_from_pivot(original)))
    expected = _normal_pivot(original)
    # In the URL, or with no Gemini equivalent:
    for gone in ("model", "stream", "stream_options", "user", "parallel_tool_calls"):
        expected.pop(gone, None)
    limit = expected.pop("max_completion_tokens", None)
    if limit is not None:
        expected["max_tokens"] = limit
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


# ---- responses -----------------------------------------------------------------------


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


# ---- streams: Gemini → pivot ---------------------------------------------------------


def test_a_text_stream_becomes_chunks_and_a_final_usage_chunk() -> None:
    chunks = read(G.stream_to_pivot(), parse([raw("gemini", "generate_text.stream.sse")]))
    for c in chunks:
        openai.types.chat.ChatCompletionChunk.model_validate(c)
    got = Assembled(chunks)
    assert got.text == "The capital of France is Paris — café société."
    assert (got.roles, got.finish) == (1, "stop")
    assert got.usage == {
        "prompt_tokens": 1040,
        "completion_tokens": 11 + 45,
        "total_tokens": 1096,
        "prompt_tokens_details": {"cached_tokens": 1024},
        "completion_tokens_details": {"reasoning_tokens": 45},
    }
    assert chunks[-1]["choices"] == [] and len(chunks) == 4
    assert {c["id"] for c in chunks} == {"chatcmpl-QAitaN3yJb2Oz7IP1r_ZgQg"}
    assert {c["model"] for c in chunks} == {"gemini-2.5-flash"}


def test_a_function_call_stream_gives_whole_arguments_and_tool_calls_finish() -> None:
    chunks = read(G.stream_to_pivot(), parse([raw("gemini", "generate_tools.stream.sse")]))
    got = Assembled(chunks)
    assert got.text == "Checking Paris."
    assert got.names() == ["get_weather", "get_time"]
    assert got.arguments() == [{"location": "Paris, France", "unit": "celsius"}, {"timezone": "Europe/Paris"}]
    assert got.finish == "tool_calls"
    calls = chunks[1]["choices"][0]["delta"]["tool_calls"]
    assert [c["index"] for c in calls] == [0, 1]
    assert calls[0]["extra_content"] == {"google": {"thought_signature": "CiQB0e2Kb6c4ZlRm"}}
    assert got.usage is not None and got.usage["completion_tokens"] == 41 + 56


@pytest.mark.parametrize("name", ["generate_text.stream.sse", "generate_tools.stream.sse"])
def test_a_stream_split_at_every_byte_reads_the_same(name: str) -> None:
    stream = raw("gemini", name)

    def ids_out(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        text = json.dumps(without_volatile(chunks))
        for c in chunks:  # call ids are made up per reading
            for choice in c.get("choices") or ():
                for call in choice["delta"].get("tool_calls") or ():
                    text = text.replace(call["id"], "ID")
        loaded: list[dict[str, Any]] = json.loads(text)
        return loaded

    whole = ids_out(read(G.stream_to_pivot(), parse([stream])))
    for cut in range(len(stream) + 1):
        assert ids_out(read(G.stream_to_pivot(), parse([stream[:cut], stream[cut:]]))) == whole, f"split at {cut}"


def test_an_error_event_becomes_a_pivot_error_chunk() -> None:
    stream = raw("gemini", "generate_text.stream.sse").split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    stream += b'data: {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}\r\n\r\n'
    got = Assembled(read(G.stream_to_pivot(), parse([stream])))
    assert got.text == "The capital"
    assert got.errors == [
        {"message": "The model is overloaded.", "type": "api_error", "code": "upstream_error", "param": None}
    ]


def test_a_json_array_answer_in_one_event_is_read_too() -> None:
    items = [json.loads(e.data) for e in parse([raw("gemini", "generate_text.stream.sse")])]
    got = Assembled(read(G.stream_to_pivot(), [SseEvent.of_json(items)]))
    assert got.text == "The capital of France is Paris — café société."


# ---- streams: pivot → Gemini ---------------------------------------------------------


def _pivot_chunks(name: str) -> list[dict[str, Any]]:
    return read(OPENAI.stream_to_pivot(), parse([raw("openai", name)]))


@pytest.mark.parametrize("name", ["chat_text.stream.sse", "chat_tools.stream.sse"])
def test_pivot_stream_round_trip(name: str) -> None:
    original = Assembled(_pivot_chunks(name))
    events = write(G.stream_from_pivot({}), _pivot_chunks(name))
    for e in events:
        assert e.event is None and isinstance(e.json(), dict)
    back = Assembled(read(G.stream_to_pivot(), parse([b"".join(e.raw for e in events)])))
    assert (back.text, back.finish, back.names(), back.arguments()) == (
        original.text,
        original.finish,
        original.names(),
        original.arguments(),
    )
    assert back.usage is not None and original.usage is not None
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert back.usage[key] == original.usage[key]


def test_tool_call_fragments_go_out_as_whole_function_calls_with_the_finish() -> None:
    events = write(G.stream_from_pivot({}), _pivot_chunks("chat_tools.stream.sse"))
    bodies = [e.json() for e in events]
    with_calls = [
        b for b in bodies if any("functionCall" in p for c in b.get("candidates", ()) for p in c["content"]["parts"])
    ]
    assert len(with_calls) == 1
    (candidate,) = with_calls[0]["candidates"]
    assert candidate["finishReason"] == "STOP"
    assert [p["functionCall"] for p in candidate["content"]["parts"]] == [
        {
            "name": "get_weather",
            "args": {"location": "Paris, France", "day": "tomorrow"},
            "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA",
        },
        {"name": "get_time", "args": {"timezone": "Europe/Paris"}, "id": "call_Jc7kQ0b8wF1mZsR5tY3uV9xN"},
    ]
    assert bodies[-1]["usageMetadata"] == {"promptTokenCount": 412, "candidatesTokenCount": 41, "totalTokenCount": 453}


def test_a_pivot_error_chunk_becomes_a_gemini_error_event() -> None:
    events = write(G.stream_from_pivot({}), [{"error": {"message": "slow down", "type": "rate_limit_error"}}])
    assert [e.json() for e in events] == [
        {"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}}
    ]


# ---- errors and model lists ----------------------------------------------------------


def test_gemini_error_bodies_become_openai_ones() -> None:
    assert orjson.loads(G.error_to_pivot(400, raw("gemini", "error_400.json"))) == {
        "error": {
            "message": "API key not valid. Please pass a valid API key.",
            "type": "invalid_request_error",
            "code": "invalid_request_error",
            "param": None,
        }
    }
    limited = orjson.loads(G.error_to_pivot(429, raw("gemini", "error_429.json")))["error"]
    assert (limited["type"], limited["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    wrapped = b"[" + raw("gemini", "error_429.json") + b"]"  # streamGenerateContent without alt=sse
    assert orjson.loads(G.error_to_pivot(429, wrapped))["error"]["message"].startswith("Resource has been exhausted")
    assert orjson.loads(G.error_to_pivot(500, b"oops"))["error"]["message"] == "oops"


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (400, "INVALID_ARGUMENT"),
        (401, "UNAUTHENTICATED"),
        (403, "PERMISSION_DENIED"),
        (404, "NOT_FOUND"),
        (429, "RESOURCE_EXHAUSTED"),
        (503, "UNAVAILABLE"),
    ],
)
def test_openai_error_bodies_become_gemini_ones(status: int, name: str) -> None:
    obj = orjson.loads(G.error_from_pivot(status, raw("openai", "error_401.json")))
    assert obj["error"]["code"] == status
    assert obj["error"]["status"] == name
    assert obj["error"]["message"].startswith("Incorrect API key provided")


def test_model_ids_keep_the_models_that_can_chat() -> None:
    assert G.model_ids(load("gemini", "models.json")) == ["gemini-2.5-flash", "gemini-2.5-pro"]
    assert G.model_ids([]) == []
