"""Relaying a provider's stream to the client, event by event, never buffered.

Usage is read off the events as they pass (OpenAI's usage chunk, Anthropic's
``message_start``/``message_delta``, or the translation pivot's usage chunk); plugins
with stream hooks see each event in the client's protocol. A stream that ends early —
the provider broke off, or the client left — is billed what the provider reported, or
an estimate of what was sent, whichever is more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tollway.chain import Chain
from tollway.gateway.channel import ClientChannel
from tollway.gateway.error_replies import render_stream_error
from tollway.exchange import Exchange, StateKey
from tollway.protocols.openai import wire as openai_wire
from tollway.protocols.usage import apply_usage, estimate_tokens
from tollway.proxy.provider_errors import translate
from tollway.protocols.sse import SseEvent, SseParser
from tollway.proxy.translation import Translation
from tollway.upstream import TransportError, UpstreamResponse

# Set when the gateway asked for the usage chunk itself, so the client must not see it.
HIDE_USAGE: StateKey[bool] = StateKey("ai-proxy.hide_usage")


class StreamRelay:
    def __init__(self, drain_s: float) -> None:
        # server.abandoned_stream_drain_s: 0 cancels the provider call when the client leaves.
        self.drain_s = drain_s

    async def relay(
        self,
        ex: Exchange,
        chain: Chain,
        client: ClientChannel,
        resp: UpstreamResponse,
        translation: Translation | None = None,
    ) -> None:
        if translation is not None:
            await self._relay_translated(ex, chain, client, resp, translation)
            return
        parser = SseParser()
        hide_usage = ex.get(HIDE_USAGE) is True
        rewrite = chain.rewrites_stream
        out_chars = 0
        try:
            async for chunk in resp.chunks():
                out: list[bytes] = []
                for event in parser.feed(chunk):
                    raw = event.raw
                    if b'"usage"' in raw or b'"choices"' in raw or b'"delta"' in raw:
                        obj = event.json()
                        if isinstance(obj, dict):
                            take_usage(ex, obj)
                            out_chars += openai_wire.content_chars(obj)
                            if hide_usage and openai_wire.is_usage_only_chunk(obj):
                                continue
                    if rewrite:
                        out.extend(e.raw for e in chain.stream_event(ex, event))
                    else:
                        out.append(raw)
                if out:
                    if ex.ttft_ms is None:
                        ex.ttft_ms = ex.elapsed_ms()
                    await client.write(b"".join(out))
            tail = [e.raw for ev in parser.flush() for e in (chain.stream_event(ex, ev) if rewrite else [ev])]
            if rewrite:
                tail.extend(e.raw for e in chain.stream_end(ex))
            await client.finish(b"".join(tail))
        except TransportError as exc:
            await self._stream_failed(ex, client, exc, out_chars)
        except asyncio.CancelledError:
            # The client left mid-stream. The provider bills the whole answer anyway, so
            # read the rest of it (bounded) for the usage it reports; estimate only when
            # that fails too.
            complete = False
            if self.drain_s and not ex.usage.reported:
                complete = await _drain(resp, parser, lambda event: _event_usage(ex, event), self.drain_s)
            if not complete:
                estimate_unfinished(ex, out_chars)
            raise

    async def _relay_translated(
        self, ex: Exchange, chain: Chain, client: ClientChannel, resp: UpstreamResponse, translation: Translation
    ) -> None:
        """Native events → pivot chunks (usage read here) → the client's events."""
        parser = SseParser()
        rewrite = chain.rewrites_stream
        out_chars = 0

        def on_chunk(chunk: dict[str, Any]) -> None:
            nonlocal out_chars
            usage = chunk.get("usage")
            if usage is not None and apply_usage(ex.usage, usage):
                take_model(ex, chunk)
            out_chars += openai_wire.content_chars(chunk)

        stream = translation.stream(on_chunk)

        def to_client(events: list[SseEvent]) -> list[bytes]:
            if rewrite:
                return [e.raw for ev in events for e in chain.stream_event(ex, ev)]
            return [ev.raw for ev in events]

        try:
            async for chunk in resp.chunks():
                out: list[bytes] = []
                for event in parser.feed(chunk):
                    out.extend(to_client(stream.feed(event)))
                if out:
                    if ex.ttft_ms is None:
                        ex.ttft_ms = ex.elapsed_ms()
                    await client.write(b"".join(out))
            tail = [raw for event in parser.flush() for raw in to_client(stream.feed(event))]
            tail.extend(to_client(stream.end()))
            if rewrite:
                tail.extend(e.raw for e in chain.stream_end(ex))
            await client.finish(b"".join(tail))
        except TransportError as exc:
            stream.broke()  # keeps the tokens the provider reported so far (SPEC §4)
            await self._stream_failed(ex, client, exc, out_chars)
        except asyncio.CancelledError:
            # As in _relay_stream: read the rest for its usage (on_chunk takes it).
            sent_chars = out_chars  # what the drain reads next never reached the client
            complete = False
            if self.drain_s and not ex.usage.reported:
                complete = await _drain(resp, parser, stream.feed, self.drain_s)
            if not complete:
                estimate_unfinished(ex, sent_chars)
            raise

    async def _stream_failed(self, ex: Exchange, client: ClientChannel, exc: TransportError, out_chars: int) -> None:
        """The provider failed after the answer began: an error event ends the stream."""
        err = translate(exc, ex.provider or "")
        ex.fail(err)
        ex.status = err.status
        estimate_unfinished(ex, out_chars)
        await client.finish(render_stream_error(err, ex.client_protocol))


def estimate_unfinished(ex: Exchange, out_chars: int) -> None:
    """Tokens for an answer that did not run to its end. Nothing reported: estimate
    both sides. Reported only in part (Anthropic's ``message_start`` counts the
    output so far as 1): keep the input, and raise the output to what the client
    was sent if that is more."""
    usage = ex.usage
    if not usage.reported:
        if not usage.estimated:
            usage.output_tokens = estimate_tokens(out_chars)
            usage.input_tokens = estimate_tokens(len(ex.request.body or b""))
            usage.estimated = True
        return
    sent = estimate_tokens(out_chars)
    if sent > usage.output_tokens:
        usage.output_tokens = sent
        usage.estimated = True


def take_model(ex: Exchange, obj: dict[str, Any]) -> None:
    model = obj.get("model")
    if isinstance(model, str) and model:
        ex.model_reported = model


def take_usage(ex: Exchange, obj: dict[str, Any]) -> None:
    """The usage (and the model named beside it) in one decoded stream event: OpenAI's
    usage chunk, Anthropic's ``message_start`` and ``message_delta``."""
    u = obj.get("usage")
    if u is not None and apply_usage(ex.usage, u):
        take_model(ex, obj)
    msg = obj.get("message")
    if isinstance(msg, dict) and msg.get("usage") is not None and apply_usage(ex.usage, msg["usage"]):
        take_model(ex, msg)


def _event_usage(ex: Exchange, event: SseEvent) -> None:
    if b'"usage"' in event.raw:
        obj = event.json()
        if isinstance(obj, dict):
            take_usage(ex, obj)


async def _drain(
    resp: UpstreamResponse, parser: SseParser, on_event: Callable[[SseEvent], object], limit_s: float
) -> bool:
    """Read the rest of a stream nobody receives any more, handing each event to
    ``on_event`` (which keeps its usage; what it returns is dropped). True when the
    stream was read to its end.

    Runs after the task was cancelled once (the client left); a second cancel (a
    shutdown past its timeout), the limit, or a transport failure just ends it."""
    try:
        async with asyncio.timeout(limit_s):
            async for chunk in resp.chunks():
                for event in parser.feed(chunk):
                    on_event(event)
            for event in parser.flush():
                on_event(event)
    except (TimeoutError, TransportError, asyncio.CancelledError):
        return False
    return True
