"""Calling providers: one transport interface with one method, so tests swap in a fake.

    TransportError
    ├── ConnectFailed      the provider could not be reached (refused, DNS, TLS)
    ├── TransportTimeout   no response headers within the provider's timeout, or the
    │                      body went silent longer than the idle timeout
    └── ProtocolFailure    the connection broke or the provider sent garbage
        └── AnswerRefused  an answer the gateway will not take: a plain body past the
                           transport's bound (``read_bounded``), in a coding it cannot
                           undo, or decoding past its bound (``decode_answer``)

Library errors (aiohttp's) are translated into these inside each transport.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from tollway import content_coding

# The most of a plain (not streamed) answer a transport reads whole into memory, unless
# told otherwise (config ``server.max_upstream_body_bytes``): far above any model answer,
# an embeddings batch's included (2048 inputs of 3072 floats are some 130 MB of JSON).
MAX_ANSWER_BYTES = 256 * 1024 * 1024
# What a compressed answer the gateway must read may decode to, besides the bound of a
# plain one: no more than this many times its size as sent, once past the floor. JSON
# compresses some 3 to 20 to 1 (Apache POI refuses zip entries past 100 to 1); a gzip
# bomb is 1000 to 1, which held whole would make a few small answers take gigabytes.
MAX_DECODING_RATIO = 100
DECODED_FLOOR = 16 * 1024 * 1024


class TransportError(Exception):
    pass


class ConnectFailed(TransportError):
    pass


class TransportTimeout(TransportError):
    pass


class ProtocolFailure(TransportError):
    pass


class AnswerRefused(ProtocolFailure):
    pass


@dataclass(slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes
    # Seconds: connect + until the response headers arrive (the provider's ``timeout``).
    headers_timeout: float
    # Seconds of silence allowed between two reads of the response body.
    idle_timeout: float


class UpstreamResponse(Protocol):
    status: int
    headers: list[tuple[str, str]]

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; raises ``TransportError`` subclasses."""
        ...

    async def read(self) -> bytes:
        """The whole body, at most the transport's bound (``read_bounded``)."""
        ...

    async def aclose(self) -> None:
        """Releases the connection (back to the pool if the body was read whole)."""
        ...


class Transport(Protocol):
    async def send(self, request: UpstreamRequest) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


async def read_bounded(resp: UpstreamResponse, limit: int) -> bytes:
    """``resp``'s whole body, at most ``limit`` bytes: past it, ``AnswerRefused`` (a
    hostile or broken server could otherwise make the gateway buffer gigabytes; the
    transport then closes the connection rather than reuse it), and what ``chunks``
    raises."""
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in resp.chunks():
            size += len(chunk)
            if size > limit:
                raise AnswerRefused(f"answer larger than {limit} bytes (server.max_upstream_body_bytes)")
            parts.append(chunk)
    except BaseException:
        # The exception's traceback holds this frame, and whatever keeps the exception
        # (a log, a record, the connection it broke) kept every byte read so far with it:
        # a provider that broke off 30 MB in held 30 MB for good, call after call.
        parts.clear()
        raise
    return b"".join(parts)


def content_codings(headers: list[tuple[str, str]]) -> list[str]:
    """The codings an answer's Content-Encoding lines name, in the order applied,
    ``identity`` left out (header names lower-case, as every transport gives them)."""
    return content_coding.named([v for k, v in headers if k == "content-encoding"])


def decode_answer(body: bytes, codings: list[str], limit: int) -> bytes:
    """``body`` with its Content-Encoding ``codings`` undone, at most ``limit`` bytes
    (the plain bound) and ``MAX_DECODING_RATIO`` times ``body`` past ``DECODED_FLOOR``;
    raises ``content_coding.CodingError``."""
    return content_coding.decode(body, codings, limit, MAX_DECODING_RATIO, DECODED_FLOOR)


def answer_decoding(codings: list[str], limit: int) -> content_coding.Decoding:
    """A streamed answer's Content-Encoding ``codings`` undone as its chunks come
    (``decoded_chunks``), bounded as ``decode_answer`` bounds a whole one: over what has
    arrived so far, so a stream as long as it likes passes, a bomb does not."""
    return content_coding.Decoding(codings, limit, MAX_DECODING_RATIO, DECODED_FLOOR)


async def decoded_chunks(chunks: AsyncIterator[bytes], decoding: content_coding.Decoding) -> AsyncIterator[bytes]:
    """``chunks`` through ``decoding``, one decoded chunk for each that decodes to
    something (a chunk is decoded whole before it is given: a caller that stops at any
    point, and goes on with new ``chunks`` of the same body, loses nothing); raises
    ``AnswerRefused`` for what cannot be decoded, and what ``chunks`` raises."""
    try:
        async for chunk in chunks:
            if decoded := decoding.feed(chunk):
                yield decoded
        decoding.end()
    except content_coding.CodingError as exc:
        raise AnswerRefused(f"answer cannot be decoded: {exc}") from None


async def read_decoded(resp: UpstreamResponse, limit: int = MAX_ANSWER_BYTES) -> bytes:
    """The whole body of an answer the gateway reads itself (JSON it parses), its
    Content-Encoding undone: every request asks for ``identity``, and a server (or a
    proxy in front of it) may compress all the same. Bounded as ``decode_answer`` says
    (``limit``: the transport's bound); raises ``AnswerRefused`` for a body that cannot
    be decoded, and what ``read`` raises. The caller drops the answer's Content-Encoding
    if it passes the body on."""
    body = await resp.read()
    codings = content_codings(resp.headers)
    if not codings or not body:
        return body
    try:
        return decode_answer(body, codings, limit)
    except content_coding.CodingError as exc:
        raise AnswerRefused(f"answer cannot be decoded: {exc}") from None
