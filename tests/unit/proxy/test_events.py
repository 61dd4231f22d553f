"""A provider's stream as the gateway relays it (proxy/events.py with the pass-through
translation): batches as the bytes arrive, never buffered; usage read on the way; the
gateway's own usage chunk hidden; a break mid-stream billed and named; a client that
leaves billed what the provider reports, or an estimate."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import cast

import orjson
import pytest

from tollway.config.schema import ProviderConfig
from tollway.errors import UpstreamError, UpstreamStreamFailed
from tollway.exchange import Exchange
from tollway.protocols.registry import codec_for
from tollway.protocols.sse import SseEvent
from tollway.providers.base import Provider
from tollway.proxy.events import ProviderEvents
from tollway.proxy.translation import Passthrough, StreamTranslation
from tollway.testing.harness import make_exchange
from tollway.upstream import ProtocolFailure, Transport, answer_decoding


class ScriptedResponse:
    """An upstream response whose body arrives in the given pieces; an exception in the
    script is raised when its turn comes."""

    def __init__(self, pieces: Sequence[bytes | Exception]) -> None:
        self.status = 200
        self.headers = [("content-type", "text/event-stream")]
        self._pieces = list(pieces)
        self.closed = False

    async def chunks(self) -> AsyncIterator[bytes]:
        while self._pieces:
            piece = self._pieces.pop(0)
            if isinstance(piece, Exception):
                raise piece
            yield piece

    async def read(self) -> bytes:
        raise AssertionError("a stream is never read whole")

    async def aclose(self) -> None:
        self.closed = True


def chunk(content: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    obj: dict[str, object] = {"object": "chat.completion.chunk", "model": "gpt-4o-mini-2024-07-18"}
    obj["choices"] = [] if content is None else [{"index": 0, "delta": {"content": content}}]
    if usage is not None:
        obj["usage"] = usage
    return b"data: " + orjson.dumps(obj) + b"\n\n"


USAGE = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
KEY = "sk-up-0123456789abcdef"
# (The events never reach its transport.)
UP = Provider(ProviderConfig(id="up", type="openai", apiTokens=[KEY]), cast(Transport, None))


def source(
    pieces: Sequence[bytes | Exception], hide_usage: bool = False, drain_s: float = 0.0
) -> tuple[ProviderEvents, Exchange, ScriptedResponse]:
    ex = make_exchange("POST", "/v1/chat/completions", body=b'{"model": "gpt-4o-mini", "stream": true}')
    resp = ScriptedResponse(pieces)
    return ProviderEvents(ex, resp, Passthrough(ex, hide_usage), UP, drain_s), ex, resp


async def drained(events: ProviderEvents) -> list[list[bytes]]:
    """Every non-empty batch until the end of the stream."""
    batches = []
    while (batch := await events.next()) is not None:
        if batch:
            batches.append([e.raw for e in batch])
    return batches


async def test_each_read_is_one_batch_and_an_event_split_across_reads_is_whole() -> None:
    first, second = chunk("Hel"), chunk("lo")
    events, _, _ = source([first + second[:10], second[10:], chunk(usage=USAGE) + b"data: [DONE]\n\n"])
    batches = await drained(events)
    assert batches == [[first], [second], [chunk(usage=USAGE), b"data: [DONE]\n\n"]]
    assert await events.next() is None


async def test_usage_is_read_on_the_way_and_the_gateways_own_usage_chunk_is_hidden() -> None:
    events, ex, _ = source([chunk("Hi"), chunk(usage=USAGE), b"data: [DONE]\n\n"], hide_usage=True)
    batches = await drained(events)
    assert [raw for batch in batches for raw in batch] == [chunk("Hi"), b"data: [DONE]\n\n"]
    assert (ex.usage.input_tokens, ex.usage.output_tokens, ex.usage.reported) == (12, 3, True)
    assert ex.model_reported == "gpt-4o-mini-2024-07-18"


async def test_a_break_mid_stream_is_a_502_naming_the_provider_with_the_tokens_estimated() -> None:
    events, ex, _ = source([chunk("x" * 40), ProtocolFailure("connection reset")])
    assert await events.next() is not None
    with pytest.raises(UpstreamError) as broke:
        await events.next()
    assert broke.value.status == 502 and "'up'" in broke.value.message
    assert ex.usage.estimated and ex.usage.output_tokens == 10
    assert await events.next() is None


async def test_a_client_that_leaves_is_billed_what_the_provider_reports_when_the_rest_is_drained() -> None:
    events, ex, _ = source([chunk("Hi"), chunk(" there"), chunk(usage=USAGE)], drain_s=1.0)
    assert await events.next() is not None
    await events.abandoned()
    usage = ex.usage
    assert (usage.input_tokens, usage.output_tokens, usage.reported, usage.estimated) == (12, 3, True, False)


async def test_without_a_drain_a_client_that_leaves_is_billed_an_estimate_of_what_it_was_sent() -> None:
    events, ex, _ = source([chunk("y" * 80), chunk(usage=USAGE)])
    assert await events.next() is not None
    await events.abandoned()
    usage = ex.usage
    assert usage.estimated and not usage.reported and usage.output_tokens == 20


async def test_closing_releases_the_provider_response() -> None:
    events, _, resp = source([chunk("Hi")])
    await events.aclose()
    assert resp.closed


async def test_an_event_past_the_bound_is_the_providers_failure_with_the_tokens_estimated() -> None:
    events, ex, _ = source([chunk("x" * 40), b"data: " + b"z" * 600, b"z" * 600])
    events._parser.max_event_bytes = 1000
    assert await events.next() is not None
    with pytest.raises(UpstreamError) as broke:
        await events.next()
    assert broke.value.status == 502 and "past the bound" in broke.value.message
    assert ex.usage.estimated and ex.usage.output_tokens == 10
    assert await events.next() is None


async def test_a_drain_that_meets_an_event_past_the_bound_bills_an_estimate() -> None:
    events, ex, _ = source([chunk("y" * 80), b"data: " + b"z" * 600, b"z" * 600, chunk(usage=USAGE)], drain_s=1.0)
    events._parser.max_event_bytes = 1000
    assert await events.next() is not None
    await events.abandoned()  # returns: the oversized event ends the drain, not the call's bookkeeping
    usage = ex.usage
    assert usage.estimated and not usage.reported and usage.output_tokens == 20


def finishing_chunk(content: str) -> bytes:
    choice = {"index": 0, "delta": {"content": content}, "finish_reason": "stop"}
    obj = {"object": "chat.completion.chunk", "choices": [choice]}
    return b"data: " + orjson.dumps(obj) + b"\n\n"


async def test_a_stream_whose_body_ends_before_its_last_event_is_cut_off_a_502_after_what_came() -> None:
    """No transport error, no [DONE], no finish reason: the provider broke off all the
    same, and the client must not take the fragment for a whole answer."""
    events, ex, _ = source([chunk("x" * 40)])
    assert [e.raw for e in await events.next() or []] == [chunk("x" * 40)]
    with pytest.raises(UpstreamError) as cut:
        while await events.next() is not None:
            pass
    assert cut.value.status == 502 and cut.value.reason == "ai-proxy.bad_upstream_response"
    assert "ended before its last event" in cut.value.message
    assert ex.usage.estimated and ex.usage.output_tokens == 10


async def test_a_stream_that_finishes_without_done_is_whole_and_one_without_usage_is_estimated() -> None:
    """Some OpenAI-compatible servers send no [DONE]: a finish reason ends the stream as
    well. It reported no usage, so its tokens are estimated."""
    events, ex, _ = source([chunk("x" * 40), finishing_chunk("y" * 40)])
    batches = await drained(events)
    assert [raw for batch in batches for raw in batch] == [chunk("x" * 40), finishing_chunk("y" * 40)]
    assert ex.usage.estimated and not ex.usage.reported and ex.usage.output_tokens == 20


async def test_the_providers_error_event_goes_out_and_ends_the_stream_as_a_failure() -> None:
    error = b'data: {"error": {"message": "overloaded mid-stream", "type": "server_error"}}\n\n'
    events, ex, _ = source([chunk("Hi"), error + chunk("never") + b"data: [DONE]\n\n"])
    assert [e.raw for e in await events.next() or []] == [chunk("Hi")]
    assert [e.raw for e in await events.next() or []] == [error]  # nothing after it, no [DONE]
    with pytest.raises(UpstreamStreamFailed) as failed:
        await events.next()
    assert failed.value.status == 502 and "overloaded mid-stream" in failed.value.message
    assert ex.usage.estimated
    assert await events.next() is None


async def test_the_providers_error_event_never_shows_its_key() -> None:
    error = f'data: {{"error": {{"message": "key {KEY} revoked ({KEY[:5]}****{KEY[-4:]})", "type": "auth"}}}}\n\n'
    events, _, _ = source([chunk("Hi") + error.encode()])
    out = b"".join(e.raw for e in await events.next() or [])
    assert b"revoked" in out and KEY.encode() not in out and KEY[-4:].encode() not in out
    with pytest.raises(UpstreamStreamFailed) as failed:
        await events.next()
    assert KEY not in failed.value.message and KEY[-4:] not in failed.value.message


async def test_a_complete_stream_with_usage_is_neither_cut_nor_estimated() -> None:
    events, ex, _ = source([chunk("Hi"), chunk(usage=USAGE), b"data: [DONE]\n\n"])
    await drained(events)
    assert (ex.usage.reported, ex.usage.estimated, ex.usage.output_tokens) == (True, False, 3)


def _anthropic(kind: str, **data: object) -> SseEvent:
    return SseEvent(b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n")


def test_an_anthropic_pass_through_knows_its_end_its_cut_and_its_error() -> None:
    def fed(*events: SseEvent) -> tuple[Passthrough, list[SseEvent]]:
        ex = make_exchange("POST", "/v1/messages", body=b'{"model": "claude-x", "stream": true}')
        ex.api = "messages"
        through = Passthrough(ex, False)
        return through, through.feed(list(events))

    start = _anthropic("message_start", message={"id": "m", "usage": {"input_tokens": 5, "output_tokens": 1}})
    text = _anthropic("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hi"})
    stop = _anthropic("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 2})
    assert fed(start, text, stop, _anthropic("message_stop"))[0].finished
    assert fed(start, text, stop)[0].finished  # a stop reason ends it, even without message_stop
    cut, _ = fed(start, text)
    assert not cut.finished and cut.failure is None
    error = _anthropic("error", error={"type": "overloaded_error", "message": "Overloaded"})
    failed, out = fed(start, text, error, stop)
    assert failed.failure == "Overloaded" and out == [start, text, error]


def anthropic_event(obj: Mapping[str, object]) -> bytes:
    return b"event: " + str(obj["type"]).encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


async def test_a_drain_reads_an_anthropic_stream_to_its_end_though_its_input_was_reported_first() -> None:
    """Anthropic reports the input in message_start: that must not pass for the whole
    usage (the drain was skipped, the output estimated)."""
    start = {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [],
             "model": "claude-x", "usage": {"input_tokens": 170, "output_tokens": 1}}}  # fmt: skip
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}
    end = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 40}}
    pieces = [anthropic_event(start), anthropic_event(delta), anthropic_event(end),
              anthropic_event({"type": "message_stop"})]  # fmt: skip
    ex = make_exchange("POST", "/v1/messages", body=b'{"model": "claude-x", "max_tokens": 64, "stream": true}')
    events = ProviderEvents(ex, ScriptedResponse(pieces), Passthrough(ex, False), UP, 1.0)
    assert await events.next() is not None
    await events.abandoned()
    usage = ex.usage
    assert (usage.input_tokens, usage.output_tokens, usage.reported, usage.estimated) == (170, 40, True, False)


def gemini_chunk(text: str, output: int, finish: str | None = None) -> bytes:
    candidate: dict[str, object] = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    usage = {"promptTokenCount": 200, "cachedContentTokenCount": 40, "candidatesTokenCount": output,
             "totalTokenCount": 200 + output}  # fmt: skip
    return (
        b"data: " + orjson.dumps({"candidates": [candidate], "usageMetadata": usage, "modelVersion": "g"}) + b"\r\n\r\n"
    )


async def test_a_drained_translated_stream_that_ends_is_billed_the_usage_its_reader_held() -> None:
    """Gemini's usage is read off its last chunk at the stream's end: a drain that read
    the stream to its end recorded 0 tokens as exact (and budgets charged $0)."""
    body = {"model": "g", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    ex = make_exchange("POST", "/v1/chat/completions", body=orjson.dumps(body))
    translation = StreamTranslation(
        ex, codec_for("gemini").stream_to_pivot(), codec_for("openai").stream_from_pivot(body)
    )
    pieces = [gemini_chunk("Hel", 1), gemini_chunk("lo", 2), gemini_chunk(" there", 33, "STOP")]
    events = ProviderEvents(ex, ScriptedResponse(pieces), translation, UP, 1.0)
    assert await events.next() is not None
    await events.abandoned()
    usage = ex.usage
    assert (usage.input_tokens, usage.cached_tokens, usage.output_tokens) == (200, 40, 33)
    assert (usage.reported, usage.estimated) == (True, False)


def gzipped_as_sent(events: Sequence[bytes]) -> list[bytes]:
    """Each event gzipped and flushed on its own, as a compressing server sends it."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    pieces = [packer.compress(e) + packer.flush(zlib.Z_SYNC_FLUSH) for e in events]
    return [*pieces[:-1], pieces[-1] + packer.flush()]


async def test_a_compressed_stream_is_decoded_event_by_event_as_it_arrives_and_when_drained() -> None:
    ex = make_exchange("POST", "/v1/chat/completions", body=b'{"model": "gpt-4o-mini", "stream": true}')
    sent = [chunk("Hel"), chunk("lo"), chunk(usage=USAGE), b"data: [DONE]\n\n"]
    resp = ScriptedResponse(gzipped_as_sent(sent))
    events = ProviderEvents(ex, resp, Passthrough(ex, False), UP, 1.0, answer_decoding(["gzip"], 1 << 20))
    assert [e.raw for e in await events.next() or []] == [sent[0]]
    assert [e.raw for e in await events.next() or []] == [sent[1]]
    await events.abandoned()  # the drain goes on decoding where the client left off
    usage = ex.usage
    assert (usage.input_tokens, usage.output_tokens, usage.reported, usage.estimated) == (12, 3, True, False)
