"""Calling providers: one transport interface with one method, so tests swap in a fake.

    TransportError
    ├── ConnectFailed      the provider could not be reached (refused, DNS, TLS)
    ├── TransportTimeout   no response headers within the provider's timeout, or the
    │                      body went silent longer than the idle timeout
    └── ProtocolFailure    the connection broke or the provider sent garbage
        └── AnswerRefused  an answer the gateway will not take: in a coding it cannot
                           undo, or decoding past ``MAX_DECODED_ANSWER``

Library errors (aiohttp's) are translated into these inside each transport.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from tollway import content_coding

# The most a compressed answer the gateway must read may decode to (a decompression bomb
# costs no more): far above any model answer, an embeddings batch's included.
MAX_DECODED_ANSWER = 256 * 1024 * 1024


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

    async def read(self) -> bytes: ...

    async def aclose(self) -> None:
        """Releases the connection (back to the pool if the body was read whole)."""
        ...


class Transport(Protocol):
    async def send(self, request: UpstreamRequest) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


def content_codings(headers: list[tuple[str, str]]) -> list[str]:
    """The codings an answer's Content-Encoding lines name, in the order applied,
    ``identity`` left out (header names lower-case, as every transport gives them)."""
    named = (t.strip().lower() for k, v in headers if k == "content-encoding" for t in v.split(","))
    return [c for c in named if c and c != "identity"]


async def read_decoded(resp: UpstreamResponse) -> bytes:
    """The whole body of an answer the gateway reads itself (JSON it parses), its
    Content-Encoding undone: every request asks for ``identity``, and a server (or a
    proxy in front of it) may compress all the same. At most ``MAX_DECODED_ANSWER``
    bytes decoded; raises ``AnswerRefused`` for a body that cannot be decoded, and what
    ``read`` raises. The caller drops the answer's Content-Encoding if it passes the
    body on."""
    body = await resp.read()
    codings = content_codings(resp.headers)
    if not codings or not body:
        return body
    try:
        return content_coding.decode(body, codings, MAX_DECODED_ANSWER)
    except content_coding.CodingError as exc:
        raise AnswerRefused(f"answer cannot be decoded: {exc}") from None
