"""Calling providers: one transport interface with one method, so tests swap in a fake.

    TransportError
    ├── ConnectFailed      the provider could not be reached (refused, DNS, TLS)
    ├── TransportTimeout   no response headers within the provider's timeout, or the
    │                      body went silent longer than the idle timeout
    └── ProtocolFailure    the connection broke or the provider sent garbage

Library errors (aiohttp's) are translated into these inside each transport.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


class TransportError(Exception):
    pass


class ConnectFailed(TransportError):
    pass


class TransportTimeout(TransportError):
    pass


class ProtocolFailure(TransportError):
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
