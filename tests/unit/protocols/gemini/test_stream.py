"""Gemini ``streamGenerateContent?alt=sse`` streams ↔ OpenAI chunk streams
(protocols/gemini/stream.py), both ways, over the hand-written transcripts in
tests/fixtures/transcripts. No sockets."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.support.transcript_support import Assembled, parse, raw, read, without_volatile, write
from tollway.protocols.registry import codec_for
from tollway.protocols.sse import SseEvent

G = codec_for("gemini")
OPENAI = codec_for("openai")


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


@pytest.mark.parametrize(
    "event",
    [
        {"candidates": 7},
        {"candidates": "text"},
        {"candidates": [{"index": [1], "content": {"parts": [{"text": "a"}]}}]},
        {"candidates": [{"index": {"k": 1}, "content": {"parts": [{"text": "b"}]}}]},
    ],
)
def test_a_malformed_candidate_list_or_index_is_read_around_not_raised(event: dict[str, Any]) -> None:
    # Found by tests/fuzz: a hostile provider's "candidates" as a number, or an index
    # that is a list, raised inside the relay.
    data = b"data: " + json.dumps(event).encode() + b"\n\n"
    chunks = read(G.stream_to_pivot(), [SseEvent(data)])
    texts = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert texts in ("", "a", "b")
