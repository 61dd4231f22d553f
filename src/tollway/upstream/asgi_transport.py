"""A transport that calls an ASGI app in this process: the built-in mock model, served
without a socket, so the quickstart needs no second process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from tollway.upstream import MAX_ANSWER_BYTES, ProtocolFailure, TransportTimeout, UpstreamRequest, read_bounded

_END = object()


class AsgiResponse:
    def __init__(
        self,
        status: int,
        headers: list[tuple[str, str]],
        queue: asyncio.Queue[Any],
        task: asyncio.Task[None],
        idle: float,
    ) -> None:
        self.status = status
        self.headers = headers
        self._queue = queue
        self._task = task
        self._idle = idle

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            try:
                async with asyncio.timeout(self._idle):
                    item = await self._queue.get()
            except TimeoutError:
                raise TransportTimeout(f"provider sent nothing for {self._idle:g}s") from None
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise ProtocolFailure("provider connection broke") from None
            if item:
                yield item

    async def read(self) -> bytes:
        return await read_bounded(self, MAX_ANSWER_BYTES)

    async def aclose(self) -> None:
        if not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except BaseException:
                pass


class AsgiTransport:
    def __init__(self, app: Any) -> None:
        self._app = app

    async def send(self, request: UpstreamRequest) -> AsgiResponse:
        parts = urlsplit(request.url)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": parts.scheme,
            "path": parts.path,
            "raw_path": parts.path.encode(),
            "query_string": parts.query.encode(),
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in request.headers],
            "client": ("127.0.0.1", 0),
            "server": (parts.hostname or "mock", parts.port or 80),
        }
        queue: asyncio.Queue[Any] = asyncio.Queue()
        started: asyncio.Future[tuple[int, list[tuple[str, str]]]] = asyncio.get_running_loop().create_future()
        body_sent = False

        async def receive() -> dict[str, Any]:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": request.body, "more_body": False}
            await asyncio.Event().wait()  # the client never disconnects on its own
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", [])]
                started.set_result((message["status"], headers))
            elif message["type"] == "http.response.body":
                queue.put_nowait(message.get("body", b""))
                if not message.get("more_body", False):
                    queue.put_nowait(_END)

        async def run() -> None:
            try:
                await self._app(scope, receive, send)
            except Exception as exc:  # the app "dropped the connection"
                if not started.done():
                    started.set_exception(ProtocolFailure("provider closed the connection before answering"))
                queue.put_nowait(exc)

        task = asyncio.get_running_loop().create_task(run())
        try:
            async with asyncio.timeout(request.headers_timeout):
                status, headers = await started
        except TimeoutError:
            task.cancel()
            raise TransportTimeout(f"no response headers within {request.headers_timeout:g}s") from None
        except ProtocolFailure:
            raise
        return AsgiResponse(status, headers, queue, task, request.idle_timeout)

    async def aclose(self) -> None:
        return None
