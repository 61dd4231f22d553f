"""The client side of a call, as the gateway writes to it; the ASGI adapter implements it."""

from __future__ import annotations

from typing import Protocol

from tollway.protocols.gemini.array_stream import ArrayWriter


class ClientChannel(Protocol):
    @property
    def started(self) -> bool:
        """The status line and headers are sent."""
        ...

    @property
    def finished(self) -> bool:
        """The response is complete."""
        ...

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


class JsonArrayChannel:
    """``client`` reading its stream as one JSON array (``Reply.json_array``): the events
    the gateway writes go out as the array's elements (``ArrayWriter``), the stream's end
    as its ``]``. An answer started with another status than 200 (a refusal before the
    stream began) passes as it is."""

    __slots__ = ("_client", "_writer")

    def __init__(self, client: ClientChannel) -> None:
        self._client = client
        self._writer: ArrayWriter | None = None

    @property
    def started(self) -> bool:
        return self._client.started

    @property
    def finished(self) -> bool:
        return self._client.finished

    @property
    def gone(self) -> bool:
        return self._client.gone

    async def start(self, status: int, headers: list[tuple[str, str]]) -> None:
        if status == 200:
            self._writer = ArrayWriter()
        await self._client.start(status, headers)

    async def write(self, data: bytes) -> None:
        writer = self._writer
        if writer is None:
            await self._client.write(data)
        elif out := writer.write(data):
            await self._client.write(out)

    async def finish(self, data: bytes = b"") -> None:
        writer = self._writer
        await self._client.finish(data if writer is None else writer.write(data) + writer.close())
