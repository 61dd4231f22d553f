"""The OpenAI chat codec (protocols/openai/chat.py), the pivot itself, and what an
OpenAI SDK client makes of streams translated from Claude and Gemini. No sockets: the
SDK runs over ``httpx2.MockTransport`` (the SDK's own httpx fork)."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import openai
import pytest

from tests.support.transcript_support import Assembled, load, parse, raw, read, write
from tollway.protocols.registry import codec_for

OPENAI = codec_for("openai")


def test_requests_answers_and_errors_pass_as_they_are() -> None:
    body = load("openai", "chat_tools.request.json")
    assert OPENAI.request_to_pivot(body) is body and OPENAI.request_from_pivot(body) is body
    answer = load("openai", "chat_text.response.json")
    assert OPENAI.response_to_pivot(answer) is answer and OPENAI.response_from_pivot(answer) is answer
    error = raw("openai", "error_401.json")
    assert OPENAI.error_to_pivot(401, error) == error == OPENAI.error_from_pivot(401, error)
    assert (OPENAI.api_path(True, "m").path, OPENAI.api_path(True, "m").query) == ("/chat/completions", "")
    assert OPENAI.model_ids(load("openai", "models.json")) == ["gpt-4o", "gpt-4o-mini"]


def test_the_reader_skips_done_and_the_writer_ends_with_it() -> None:
    stream = raw("openai", "chat_text.stream.sse")
    chunks = read(OPENAI.stream_to_pivot(), parse([stream]))
    assert len(chunks) == 7 and chunks[-1]["choices"] == []
    events = write(OPENAI.stream_from_pivot({"stream_options": {"include_usage": True}}), chunks)
    assert events[-1].raw == b"data: [DONE]\n\n"
    assert [e.json() for e in events[:-1]] == chunks


@pytest.mark.parametrize("options", [None, {"include_usage": False}, {}])
def test_the_usage_chunk_is_hidden_from_a_client_that_did_not_ask(options: Any) -> None:
    request = {} if options is None else {"stream_options": options}
    chunks = read(OPENAI.stream_to_pivot(), parse([raw("openai", "chat_text.stream.sse")]))
    events = write(OPENAI.stream_from_pivot(request), chunks)
    assert [e.json() for e in events[:-1]] == chunks[:-1]


def test_an_error_chunk_ends_the_stream_without_done() -> None:
    events = write(OPENAI.stream_from_pivot({}), [{"error": {"message": "boom", "type": "api_error", "code": None}}])
    assert [e.raw for e in events] == [b'data: {"error":{"message":"boom","type":"api_error","code":null}}\n\n']


def _sdk_stream(body: bytes) -> openai.types.chat.ChatCompletion:
    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    with httpx2.Client(transport=httpx2.MockTransport(answer)) as http:
        client = openai.OpenAI(api_key="k", base_url="http://gateway.test/v1", http_client=http)
        with client.chat.completions.stream(
            model="m", messages=[{"role": "user", "content": "hi"}], stream_options={"include_usage": True}
        ) as stream:
            return stream.get_final_completion()


@pytest.mark.parametrize(
    ("provider", "name", "text", "calls"),
    [
        ("anthropic", "messages_text.stream.sse", "The capital of France is Paris — café société.", []),
        (
            "anthropic",
            "messages_tools.stream.sse",
            "Okay, let's check the weather for Paris:",
            [
                ("get_weather", {"location": "Paris, France", "unit": "celsius"}),
                ("get_time", {"timezone": "Europe/Paris"}),
            ],
        ),
        ("gemini", "generate_text.stream.sse", "The capital of France is Paris — café société.", []),
        (
            "gemini",
            "generate_tools.stream.sse",
            "Checking Paris.",
            [
                ("get_weather", {"location": "Paris, France", "unit": "celsius"}),
                ("get_time", {"timezone": "Europe/Paris"}),
            ],
        ),
    ],
)
def test_the_openai_sdk_assembles_a_translated_stream(
    provider: str, name: str, text: str, calls: list[tuple[str, Any]]
) -> None:
    chunks = read(codec_for(provider).stream_to_pivot(), parse([raw(provider, name)]))
    writer = OPENAI.stream_from_pivot({"stream_options": {"include_usage": True}})
    completion = _sdk_stream(b"".join(e.raw for e in write(writer, chunks)))
    message = completion.choices[0].message
    assert (message.content or "") == text
    got_calls = []
    for call in message.tool_calls or []:
        assert call.type == "function"
        got_calls.append((call.function.name, json.loads(call.function.arguments)))
    assert got_calls == calls
    assert completion.choices[0].finish_reason == ("tool_calls" if calls else "stop")
    expected = Assembled(chunks).usage
    assert completion.usage is not None and expected is not None
    assert completion.usage.prompt_tokens == expected["prompt_tokens"]
    assert completion.usage.completion_tokens == expected["completion_tokens"]
