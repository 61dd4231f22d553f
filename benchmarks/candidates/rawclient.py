"""A bare keep-alive HTTP/1.1 client: asyncio streams + httptools' response parser (llhttp).

Benchmark-only prototype, to measure what a lean client could buy: plain http://, one
pool per host, LIFO reuse, a retry on a fresh connection when a reused one turns out
to be closed before any response byte. No TLS, proxies, timeouts or redirects here
(callers wrap calls in ``asyncio.timeout``); a product client needs all of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httptools


class RawError(Exception):
    pass


class RawConnectError(RawError):
    pass


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


class RawResponse:
    """One response; the parser calls the ``on_*`` methods while ``_feed`` runs."""

    __slots__ = ("_body", "_conn", "_done", "_heads", "_parser", "_pool", "headers", "status")

    def __init__(self, pool: RawPool, conn: _Conn) -> None:
        self._pool = pool
        self._conn: _Conn | None = conn
        self._parser = httptools.HttpResponseParser(self)
        self._heads = False
        self._done = False
        self._body: list[bytes] = []
        self.status = 0
        self.headers: list[tuple[str, str]] = []

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self._heads = True
        self.status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._done = True

    async def _read_more(self) -> bool:
        """Reads and parses one socket read; False at EOF."""
        assert self._conn is not None
        data = await self._conn.reader.read(65536)
        if not data:
            return False
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            raise RawError("unexpected upgrade") from exc
        except httptools.HttpParserError as exc:
            raise RawError(f"bad response: {exc}") from exc
        return True

    async def _read_head(self) -> bool:
        """False when the connection closed before any byte (a stale pooled connection)."""
        first = True
        while not self._heads:
            if not await self._read_more():
                if first:
                    return False
                raise RawError("connection closed inside the response head")
            first = False
        return True

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            if self._body:
                parts, self._body = self._body, []
                yield parts[0] if len(parts) == 1 else b"".join(parts)
            if self._done:
                break
            if not await self._read_more():
                # No length and no chunking: the body ends with the connection.
                if self._parser.should_keep_alive():
                    raise RawError("connection closed inside the response body")
                self._done = True
        self.release()

    async def read(self) -> bytes:
        parts = [c async for c in self.chunks()]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._done and self._parser.should_keep_alive():
            self._pool.idle.append(conn)
        else:
            conn.close()


class RawPool:
    """Connections to one host:port."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.idle: list[_Conn] = []
        self._host_header = f"Host: {host}:{port}\r\n"

    async def _connect(self) -> _Conn:
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        except OSError as exc:
            raise RawConnectError(str(exc)) from exc
        return _Conn(reader, writer)

    def _head(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
        lines = [f"{method} {target} HTTP/1.1\r\n", self._host_header]
        for k, v in headers:
            if "\r" in v or "\n" in v or "\r" in k or "\n" in k or ":" in k:
                raise ValueError(f"invalid header {k!r}")  # no header injection / smuggling
            lines.append(f"{k}: {v}\r\n")
        lines.append(f"Content-Length: {len(body)}\r\n\r\n")
        return "".join(lines).encode("latin-1")

    async def request(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> RawResponse:
        data = self._head(method, target, headers, body) + body
        while self.idle:
            conn = self.idle.pop()
            if conn.reader.at_eof() or conn.writer.is_closing():
                conn.close()
                continue
            resp = await self._send(conn, data)
            if resp is not None:
                return resp
        resp = await self._send(await self._connect(), data)
        if resp is None:
            raise RawError("server closed a new connection without answering")
        return resp

    async def _send(self, conn: _Conn, data: bytes) -> RawResponse | None:
        resp = RawResponse(self, conn)
        try:
            conn.writer.write(data)
            if not await resp._read_head():
                conn.close()
                return None
        except OSError:
            conn.close()
            return None
        except BaseException:
            conn.close()
            raise
        return resp

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()
