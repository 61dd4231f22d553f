"""The adapter that joins wire formats (``protocols/``) to providers (``providers/``).

A call needs translating when the client speaks one protocol (OpenAI chat, or
Anthropic messages on ``/v1/messages``) and the provider's native chat API another
(``Provider.protocol``). Everything crosses the OpenAI-chat pivot; this module only
sequences the codec calls and reads usage off the pivot, so ai-proxy stays the same
for every pair of protocols.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from tollway.errors import BadRequest
from tollway.protocols.codec import Codec, Json, StreamReader, StreamWriter, TranslationError
from tollway.protocols.registry import codec_for
from tollway.providers.base import CHAT, MESSAGES, Provider
from tollway.protocols.sse import SseEvent

# Client headers that belong to one protocol and mean nothing (or harm) to another.
PROTOCOL_HEADERS = frozenset({"anthropic-version", "anthropic-beta", "openai-organization", "openai-project"})


def client_protocol_of(api: str) -> str:
    return "anthropic" if api == MESSAGES else "openai"


class Translation:
    """One call's crossing from the client's format to the provider's and back."""

    __slots__ = ("client", "client_body", "native")

    def __init__(self, client: Codec, native: Codec, client_body: Json) -> None:
        self.client = client
        self.native = native
        self.client_body = client_body

    @classmethod
    def for_call(cls, api: str, provider: Provider, body: Json | None) -> Translation | None:
        """The translation a call needs, or ``None`` when the provider speaks the
        client's protocol for this API (or the API is not a chat API)."""
        if body is None or api not in (CHAT, MESSAGES):
            return None
        client_name = client_protocol_of(api)
        if provider.protocol == client_name:
            return None
        return cls(codec_for(client_name), codec_for(provider.protocol), body)

    def request(self, upstream_model: str) -> bytes:
        """The provider's request body; a request the target cannot express is a 400."""
        try:
            chat = self.client.request_to_pivot(self.client_body)
            native = self.native.request_from_pivot({**chat, "model": upstream_model})
        except TranslationError as exc:
            raise BadRequest(str(exc), reason="gateway.bad_request") from None
        return orjson.dumps(native)

    def response(self, body: bytes) -> tuple[bytes, Json | None]:
        """The client's answer body and the pivot it came through (for usage); a body
        that is not JSON passes as it came (the provider's own words)."""
        try:
            native = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body, None
        if not isinstance(native, dict):
            return body, None
        pivot = self.native.response_to_pivot(native)
        return orjson.dumps(self.client.response_from_pivot(pivot)), pivot

    def error(self, status: int, body: bytes) -> bytes:
        """A provider's error in the client's own error shape, status unchanged."""
        return self.client.error_from_pivot(status, self.native.error_to_pivot(status, body))

    def stream(self, on_chunk: Callable[[Json], None]) -> StreamTranslation:
        return StreamTranslation(self.native.stream_to_pivot(), self.client.stream_from_pivot(self.client_body),
                                 on_chunk)


class StreamTranslation:
    """Native events in, client events out; ``on_chunk`` sees every pivot chunk first
    (usage, generated text), before the client's writer may hide it."""

    __slots__ = ("_on_chunk", "_reader", "_writer")

    def __init__(self, reader: StreamReader, writer: StreamWriter, on_chunk: Callable[[Json], None]) -> None:
        self._reader = reader
        self._writer = writer
        self._on_chunk = on_chunk

    def _write(self, chunks: list[Json]) -> list[SseEvent]:
        out: list[SseEvent] = []
        for chunk in chunks:
            self._on_chunk(chunk)
            out.extend(self._writer.feed(chunk))
        return out

    def feed(self, event: SseEvent) -> list[SseEvent]:
        return self._write(self._reader.feed(event))

    def end(self) -> list[SseEvent]:
        out = self._write(self._reader.end())
        out.extend(self._writer.end())
        return out

    def broke(self) -> None:
        """The native stream failed midway: what the reader still owes (the usage the
        provider reported so far, for formats that send it before their last event) goes
        to ``on_chunk`` only; the client's writer gets nothing more."""
        for chunk in self._reader.end():
            self._on_chunk(chunk)
