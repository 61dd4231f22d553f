"""Answer streams of ai-data-masking (masking/streams.py): placeholders restored across
OpenAI and Anthropic stream events, held text flushed before the finish, slots kept apart,
and events without placeholders passed byte for byte. No sockets."""

from __future__ import annotations

import orjson

from tests.support.masking_support import chunk, streamed
from tollway.masking.streams import AnswerStream
from tollway.masking.vault import Vault
from tollway.protocols.sse import SseEvent


def test_openai_stream_restores_split_placeholders_and_flushes_before_the_finish() -> None:
    vault = Vault(b"")
    vault.placeholder("EMAIL", "bob@example.com")
    answer = AnswerStream(vault)
    events = [chunk(role="assistant"), chunk("Mail [EM"), chunk("AIL_1] now [EMA"), chunk(finish="stop")]
    out = [e for ev in events for e in answer.event(ev)] + answer.event(SseEvent.build("[DONE]")) + answer.end()
    assert streamed(out) == "Mail bob@example.com now [EMA"
    finish = [i for i, e in enumerate(out) if b'"finish_reason":"stop"' in e.raw]
    flushed = [i for i, e in enumerate(out) if b"[EMA" in e.raw]
    assert flushed and finish and flushed[0] < finish[0], "held text must come before the finish chunk"
    assert out[-1].data == "[DONE]"


def test_openai_stream_placeholder_completed_in_the_finishing_chunk() -> None:
    vault = Vault(b"")
    vault.placeholder("EMAIL", "bob@example.com")
    answer = AnswerStream(vault)
    out = answer.event(chunk("to [EMAIL")) + answer.event(chunk("_1]", finish="stop"))
    assert streamed(out) == "to bob@example.com"


def test_a_stream_that_ends_without_done_still_gets_its_held_text() -> None:
    vault = Vault(b"")
    vault.placeholder("EMAIL", "bob@example.com")
    answer = AnswerStream(vault)
    out = answer.event(chunk("x [EMAIL_")) + answer.event(chunk("1]")) + answer.event(chunk(" [EM")) + answer.end()
    assert streamed(out) == "x bob@example.com [EM"


def test_stream_tool_arguments_choices_and_completions_are_separate_slots() -> None:
    vault = Vault(b"")
    vault.placeholder("EMAIL", "bob@example.com")
    answer = AnswerStream(vault)
    call = {"index": 0, "function": {"arguments": '{"to": "[EMAI'}}
    out = answer.event(chunk(tool_calls=[call]))
    out += answer.event(chunk("[EMAIL_1]", index=1))
    call = {"index": 0, "function": {"arguments": 'L_1]"}'}}
    out += answer.event(chunk(tool_calls=[call]))
    completion = {"id": "c", "object": "text_completion", "choices": [{"index": 0, "text": "[EMAIL_1]"}]}
    out += answer.event(SseEvent.of_json(completion))
    args = "".join(
        c["delta"]["tool_calls"][0]["function"]["arguments"]
        for e in out
        for c in e.json()["choices"]
        if "tool_calls" in c.get("delta", {})
    )
    assert orjson.loads(args) == {"to": "bob@example.com"}
    assert [c.get("delta", {}).get("content") for c in out[1].json()["choices"]] == ["bob@example.com"]
    assert out[-1].json()["choices"][0]["text"] == "bob@example.com"


def test_anthropic_stream_flushes_at_block_stop() -> None:
    vault = Vault(b"")
    vault.placeholder("EMAIL", "bob@example.com")
    answer = AnswerStream(vault)

    def delta(text: str) -> SseEvent:
        event = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
        return SseEvent.of_json(event, "content_block_delta")

    events = [
        delta("Hi [EM"),
        delta("AIL_1] [CA"),
        SseEvent.of_json({"type": "content_block_stop", "index": 0}, "content_block_stop"),
    ]
    out = [e for ev in events for e in answer.event(ev)]
    texts = [e.json()["delta"]["text"] for e in out if e.event == "content_block_delta"]
    assert "".join(texts) == "Hi bob@example.com [CA"
    assert out[-1].event == "content_block_stop" and all(e.raw.startswith(b"event: ") for e in out)


def test_signed_thinking_keeps_its_placeholders() -> None:
    vault = Vault(b"")
    vault.placeholder("EMAIL", "bob@example.com")
    answer = AnswerStream(vault)
    thinking = {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "[EMAIL_1]"}}
    event = SseEvent.of_json(thinking, "content_block_delta")
    assert answer.event(event) == [event]


def test_events_without_placeholders_pass_byte_for_byte() -> None:
    vault = Vault(b"")
    vault.placeholder("EMAIL", "bob@example.com")
    answer = AnswerStream(vault)
    raw = SseEvent(b'data: {"choices":[{"index":0,"delta":{"content":"plain"}}]}\n\n')
    assert answer.event(raw) == [raw]
    ping = SseEvent(b"event: ping\ndata: {}\n\n")
    assert answer.event(ping) == [ping]
