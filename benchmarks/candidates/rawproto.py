"""The raw client again, on an ``asyncio.Protocol`` instead of streams: the event loop
hands bytes straight to httptools' parser, with no StreamReader buffer and no task
wake-up per read. Same scope and same limits as rawclient.py (benchmark-only: plain
http://, no TLS, proxies or timeouts of its own). Same interface as ``RawPool``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httptools
from rawclient import RawConnectError, RawError

_HIGH_WATER = 256 * 1024


class _Proto(asyncio.Protocol):
    __slots__ = ("closed", "resp", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.resp: ProtoResponse | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport

    def data_received(self, data: bytes) -> None:
        resp = self.resp
        if resp is None:  # bytes nobody asked for: this connection is unusable
            self.closed = True
            assert self.transport is not None
            self.transport.close()
            return
        try:
            resp.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            resp.fail(RawError(f"bad response: {exc}"))
            self.closed = True
            assert self.transport is not None
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.resp is not None:
            self.resp.eof()


class ProtoResponse:
    __slots__ = (
        "_buffered",
        "_error",
        "_got_bytes",
        "_waiter",
        "body",
        "done",
        "headers",
        "heads",
        "parser",
        "pool",
        "proto",
        "status",
    )

    def __init__(self, pool: ProtoPool, proto: _Proto) -> None:
        self.pool = pool
        self.proto: _Proto | None = proto
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.heads = False
        self.done = False
        self._buffered = 0
        self._got_bytes = False
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._got_bytes = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.heads = True
        self.status = self.parser.get_status_code()
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and self.proto is not None and self.proto.transport is not None:
            self.proto.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.done = True
        self._wake()

    # from the protocol
    def fail(self, exc: Exception) -> None:
        self._error = exc
        self._wake()

    def eof(self) -> None:
        if self.heads and not self.done and not self.parser.should_keep_alive():
            self.done = True  # the body ran to the end of the connection
        elif not self.done:
            self._error = RawError("connection closed before the response ended")
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
        if self._error is not None and not self.done:
            raise self._error

    async def read_head(self) -> bool:
        """False when a reused connection was found closed before any byte came."""
        while not self.heads:
            if self._error is not None and not self._got_bytes:
                return False
            await self._wait()
        return True

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            if self.body:
                parts, self.body, self._buffered = self.body, [], 0
                if self.proto is not None and self.proto.transport is not None and not self.proto.closed:
                    self.proto.transport.resume_reading()
                yield parts[0] if len(parts) == 1 else b"".join(parts)
            elif self.done:
                break
            else:
                await self._wait()
        self.release()

    async def read(self) -> bytes:
        parts = [c async for c in self.chunks()]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def release(self) -> None:
        proto, self.proto = self.proto, None
        if proto is None:
            return
        proto.resp = None
        if self.done and not proto.closed and self.parser.should_keep_alive():
            self.pool.idle.append(proto)
        elif proto.transport is not None:
            proto.closed = True
            proto.transport.close()


class ProtoPool:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.idle: list[_Proto] = []
        self._host_header = f"Host: {host}:{port}\r\n"

    def _head(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
        lines = [f"{method} {target} HTTP/1.1\r\n", self._host_header]
        for k, v in headers:
            if "\r" in v or "\n" in v or "\r" in k or "\n" in k or ":" in k:
                raise ValueError(f"invalid header {k!r}")
            lines.append(f"{k}: {v}\r\n")
        lines.append(f"Content-Length: {len(body)}\r\n\r\n")
        return "".join(lines).encode("latin-1")

    async def request(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> ProtoResponse:
        data = self._head(method, target, headers, body) + body
        while self.idle:
            proto = self.idle.pop()
            if proto.closed:
                continue
            resp = await self._send(proto, data)
            if resp is not None:
                return resp
        try:
            _, proto = await asyncio.get_running_loop().create_connection(_Proto, self.host, self.port)
        except OSError as exc:
            raise RawConnectError(str(exc)) from exc
        resp = await self._send(proto, data)
        if resp is None:
            raise RawError("server closed a new connection without answering")
        return resp

    async def _send(self, proto: _Proto, data: bytes) -> ProtoResponse | None:
        resp = ProtoResponse(self, proto)
        proto.resp = resp
        assert proto.transport is not None
        try:
            proto.transport.write(data)
            if await resp.read_head():
                return resp
        except BaseException:
            resp.release()
            raise
        resp.release()
        return None

    def close(self) -> None:
        for proto in self.idle:
            if proto.transport is not None:
                proto.transport.close()
        self.idle.clear()
