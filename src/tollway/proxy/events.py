"""A provider's streamed answer as the gateway relays it: the client's events, read one
network chunk at a time, never buffered (the ``EventSource`` of a ``Reply``).

A stream that ends early is billed what the provider reported, or an estimate of the
text read, whichever is more: when the provider breaks off (the stream then ends with the
``GatewayError`` this source raises) and when the client leaves (``abandoned``: with a
drain, the text read after the client left counts too).

The provider breaks off when its connection fails, when its body ends before the
stream's last event (``EventTranslation.finished``: a cut the transport cannot see), and
when it sends an error event of its own (``failure``): the client has that event, in its
protocol, and the stream ends there, with ``UpstreamStreamFailed``. A stream that ran its
course without reporting usage is billed an estimate.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from tollway.content_coding import Decoding
from tollway.errors import GatewayError, UpstreamStreamFailed
from tollway.exchange import Exchange
from tollway.protocols.gemini.array_stream import ArrayBroken, ArrayReader
from tollway.protocols.sse import EventTooLarge, SseEvent, SseParser
from tollway.providers.base import Provider
from tollway.providers.errors import translate
from tollway.proxy.tokens import estimate_unfinished, estimated
from tollway.proxy.translation import EventTranslation
from tollway.upstream import ProtocolFailure, TransportError, UpstreamResponse, decoded_chunks


class ProviderEvents:
    """``decoding``: what undoes the stream's Content-Encoding (a provider that compressed
    it though asked for identity), before the events are parsed; none costs nothing.
    ``array``: the reader of a stream that comes as one JSON array (Gemini's without
    ``alt=sse``), whose elements are its events."""

    __slots__ = (
        "_array", "_chunks", "_decoding", "_drain_s", "_ended", "_ex", "_failed", "_parser", "_provider", "_resp",
        "_secrets", "_translation",
    )  # fmt: skip

    def __init__(
        self,
        ex: Exchange,
        resp: UpstreamResponse,
        translation: EventTranslation,
        provider: Provider,
        drain_s: float,
        decoding: Decoding | None = None,
        array: ArrayReader | None = None,
    ) -> None:
        self._ex = ex
        self._resp = resp
        self._translation = translation
        self._provider = provider.id
        # The provider's own error event may name its key: taken out (``ProviderSecrets``).
        self._secrets = provider.secrets
        # server.abandoned_stream_drain_s: 0 cancels the provider call when the client leaves.
        self._drain_s = drain_s
        self._parser = SseParser()
        self._decoding = decoding
        self._array = array
        self._chunks = self._body()
        self._ended = False
        # How the stream failed, raised at the next call once its last events are out.
        self._failed: GatewayError | None = None

    async def next(self) -> list[SseEvent] | None:
        if self._ended:
            if self._failed is not None:
                failed, self._failed = self._failed, None
                raise failed
            return None
        translation = self._translation
        while True:
            try:
                chunk = await self._chunks.__anext__()
            except StopAsyncIteration:
                self._ended = True
                tail = translation.feed(self._parser.flush())
                if translation.failure is not None:
                    return self._provider_failed(tail)
                if not translation.finished:
                    # The body ended cleanly before the stream did: the events that came
                    # go out, then the error that says it was cut off.
                    self._failed, closing = self._broke(ProtocolFailure("the stream ended before its last event"))
                    return [*tail, *closing]
                if not self._ex.usage.reported and estimated(self._ex):
                    estimate_unfinished(self._ex, translation.sent_chars)
                return [*tail, *translation.end()]
            except TransportError as exc:
                return self._told(*self._broke(exc))
            try:
                events = self._parser.feed(chunk)
            except EventTooLarge as exc:
                return self._told(*self._broke(ProtocolFailure(f"provider sent a stream event past the bound: {exc}")))
            if events:
                out = translation.feed(events)
                if translation.failure is not None:
                    return self._provider_failed(out)
                if out:
                    return out

    def _body(self) -> AsyncIterator[bytes]:
        """The stream's body from where it has been read to, decoded (a decoded chunk is
        given whole, so a new iterator after a broken one goes on where it stopped)."""
        chunks = self._resp.chunks()
        if self._decoding is not None:
            chunks = decoded_chunks(chunks, self._decoding)
        return chunks if self._array is None else _array_events(chunks, self._array)

    def _provider_failed(self, out: list[SseEvent]) -> list[SseEvent]:
        """The provider's own error event is in ``out``: it goes out, with what the
        client's protocol closes a failed stream with, and the stream ends there."""
        self._ended = True
        self._translation.broke()
        estimate_unfinished(self._ex, self._translation.sent_chars)
        secrets = self._secrets
        self._failed = UpstreamStreamFailed(
            f"provider {self._provider!r} failed mid-stream: {secrets.text(self._translation.failure or '')}",
            reason="ai-proxy.bad_upstream_response",
        )
        # (The closing events repeat the error: a Responses client's ``response.failed``.)
        return [SseEvent(secrets.body(e.raw)) for e in (*out, *self._translation.end())]

    def _broke(self, exc: TransportError) -> tuple[GatewayError, list[SseEvent]]:
        """The provider broke off (or sent what cannot be relayed): the tokens it reported
        so far are kept, the rest estimated. The error the stream ends with, and the
        events that tell the client so in its protocol (``EventTranslation.closing``;
        none: the gateway's own last event will)."""
        self._ended = True
        translation = self._translation
        translation.broke()
        estimate_unfinished(self._ex, translation.sent_chars)
        err = translate(exc, self._provider)
        closing = translation.closing(err.message, err.code)
        err.told_client = bool(closing)
        return err, closing

    def _told(self, err: GatewayError, closing: list[SseEvent]) -> list[SseEvent]:
        """The closing events now, the error at the next call; or the error now."""
        if not closing:
            raise err from None
        self._failed = err
        return closing

    async def abandoned(self) -> None:
        """The provider bills the whole answer anyway, so read the rest of it (bounded by
        ``drain_s``) for the usage it reports; estimate only when that fails too."""
        if self._ended:
            return  # its end or its break was accounted for as it came
        translation = self._translation
        ex = self._ex
        complete = False
        # Read on unless the stream has ended with its usage (Anthropic reports the
        # input first, the output last; OpenAI's usage chunk follows the finish).
        if self._drain_s and not (ex.usage.reported and translation.finished):
            complete = await self._drain()
        # What the provider reported (a translation's reader holds it until the stream's
        # end: Anthropic's message_start, Gemini's usageMetadata) is read, whether the
        # drain reached the end or not; only what it never reported is estimated, from
        # all the text read: the provider bills what it generated, the part the client
        # saw and the part the drain read after it alike (``sent_chars`` counts both).
        translation.broke()
        if not complete or (not ex.usage.reported and estimated(ex)):
            estimate_unfinished(ex, translation.sent_chars)

    def cut(self) -> None:
        """The gateway ended the stream (a plugin refused what the answer said: a deny
        word): the provider bills what it generated all the same, which nobody reads now.
        What it reported so far is kept, the rest estimated from what was read (a drain
        would hold the client's refusal up)."""
        if self._ended:
            return
        self._translation.broke()
        estimate_unfinished(self._ex, self._translation.sent_chars)

    async def _drain(self) -> bool:
        """Read the rest of a stream nobody receives any more (its events go through
        the translation, which keeps their usage; the events are dropped). True when it
        was read to its end.

        Runs after the call's task was cancelled once (the client left); a second
        cancel (a shutdown past its timeout), the limit, or a transport failure ends it."""
        feed = self._translation.feed
        try:
            async with asyncio.timeout(self._drain_s):
                async for chunk in self._body():
                    feed(self._parser.feed(chunk))
                feed(self._parser.flush())
        except (TimeoutError, TransportError, EventTooLarge, asyncio.CancelledError):
            return False
        return True

    async def aclose(self) -> None:
        await self._resp.aclose()


async def _array_events(chunks: AsyncIterator[bytes], reader: ArrayReader) -> AsyncIterator[bytes]:
    """A JSON array's elements as events (``ArrayReader``), as they complete; an answer
    that is no JSON array, or one cut short, is the provider's failure."""
    try:
        async for chunk in chunks:
            if events := reader.feed(chunk):
                yield events
        reader.end()
    except ArrayBroken as exc:
        raise ProtocolFailure(str(exc)) from None
