"""The client side of a call, as the gateway writes to it; the ASGI adapter implements it."""

from __future__ import annotations

from typing import Protocol


class ClientChannel(Protocol):
    started: bool  # the status line and headers are sent
    finished: bool  # the response is complete

    @property
    def gone(self) -> bool:
        """The client's connection ended before the response was all written."""
        ...

    async def start(self, status: int, headers: list[tuple[str, str]]) -> None:
        """Sends the status line and headers; ``x-request-id`` is added by the gateway."""
        ...

    async def write(self, data: bytes) -> None:
        """Sends part of the body now (one stream event or a few)."""
        ...

    async def finish(self, data: bytes = b"") -> None:
        """Sends the last part of the body and ends the response."""
        ...
