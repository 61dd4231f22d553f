"""A lean pooled HTTP/1.1 client for provider calls, on asyncio and httptools (llhttp).

Why not only a general-purpose client: on this hot path the client is most of a Python
gateway's cost per request (see benchmarks/README.md); a client that does only what a
gateway needs — keep-alive pooling, Content-Length and chunked bodies, timeouts, TLS —
is several times cheaper. Parsing stays in llhttp, Node's hardened parser.

What it does not do is delegated to the aiohttp transport by ``PooledTransport``:
requests through an HTTP(S) proxy from the environment, and HEAD requests.

Every request asks for ``Accept-Encoding: identity`` (whatever its headers say): the
gateway reads and relays answers as they are, uncompressed.

Safety:
- a request whose method, target or headers contain CR, LF or NUL is refused before a
  byte is written (no header injection or request smuggling across pooled connections);
- a connection is reused only after its response was read to the end, the server did
  not ask to close, and the parser is idle;
- a connection that sat idle past ``keepalive_s`` is closed, never reused;
- a pooled connection the server has closed (or is closing) is dropped, not used;
- a request sent on a reused connection that the server had already closed (EOF or a
  reset before any response byte, at once after the request: ``stale_within``) is sent
  once more on a fresh connection, and the idle connections older than that one are
  closed with it (the server closed them too, most likely). A close that comes later
  is the provider's failure ("provider closed the connection before answering"),
  never sent again here: the provider may have read the request and worked on it (and
  billed it); whether to try again is the caller's rule (retryOnFailure), and the
  caller records that attempt.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from functools import partial
from urllib.parse import urlsplit

import httptools

from tollway import deadlines
from tollway.upstream import (
    MAX_ANSWER_BYTES,
    AnswerRefused,
    ConnectFailed,
    ProtocolFailure,
    TransportTimeout,
    UpstreamRequest,
    read_bounded,
)

_FORBIDDEN = frozenset("\r\n\0")
# What the client writes itself, whatever the request's headers say. Accept-Encoding
# asks for the answer as it is: with none, a server may use any coding (RFC 9110
# §12.5.3), and a provider, or a CDN or nginx in front of one, may compress an answer
# the gateway must read (JSON, a stream) or a stream it relays event by event.
_SET_HERE = frozenset({"host", "content-length", "transfer-encoding", "connection", "accept-encoding"})
_IDENTITY = "accept-encoding: identity"
_HIGH_WATER = 1 << 20  # pause reading the provider once this much is queued for a slow client
# A response's head (status line and headers, interim 1xx ones too) past these is a
# broken or hostile provider's: refused as the client's request head is (431 at the
# edge), not held in memory and relayed. Real providers send a few kilobytes.
MAX_RESPONSE_HEAD_BYTES = 256 * 1024
MAX_RESPONSE_HEADERS = 512
_LOW_WATER = 1 << 16


def _time_out(wakeup: asyncio.Future[None], idle: float) -> None:
    """A stream's next piece did not come in time (a deadline's callback)."""
    if not wakeup.done():
        wakeup.set_exception(TransportTimeout(f"provider sent nothing for {idle:g}s"))


class _HeadersOverdue(Exception):
    """The response's headers did not come before the deadline (see ``send``)."""


class _StaleConnection(Exception):
    """The server closed a pooled connection before it can have read the request: safe
    to send again."""


# How soon after a request on a reused connection its close shows the connection was
# stale, closed by the server before the request came (its idle timeout raced our
# reuse), rather than closed by a server that read the request. In that race the close
# is seen within one round trip of the write: the server's FIN was already on its way,
# or its reset answers bytes sent to a closed socket. So the bound is the connection's
# own round trip, as its handshake measured it once when it was opened (TCP's is one
# round trip, TLS's two or three: an upper bound), no less than 50 ms and no more than
# 250 ms (the measure includes the DNS lookup). The floor: a loopback handshake takes
# microseconds, but the close is seen only when the loop gets to it, and a loop busy
# with other calls can take tens of milliseconds for that; a stale connection taken
# for a failed call is a 502 the client did not need. A provider that read the request
# and worked on it for longer is not sent it again.
_STALE_MIN_S = 0.050
_STALE_MAX_S = 0.250


def _check_token(value: str, what: str) -> None:
    if not _FORBIDDEN.isdisjoint(value):
        raise ProtocolFailure(f"refusing to send a request with CR/LF/NUL in its {what}")


# Linux's TCP_QUICKACK (None elsewhere). A server that writes an answer's head and body
# in two writes with Nagle's algorithm on (uvicorn does, and so most Python MCP
# servers) holds the body until the head is acknowledged, and a delayed ACK holds that
# for 40 ms: every answer took 40 ms more through the gateway than from a client that
# happened to stay in quick-ACK mode. So when a read leaves the answer incomplete, the
# connection asks for a quick ACK, which also sends the one pending at once. Only then:
# asked on every read and after every request, it cost the plain gateway 8% of its CPU
# per call (two system calls and an ACK packet per segment, paired against the tree
# before it), for answers that came whole in one read.
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


def _quickack_socket(transport: asyncio.BaseTransport) -> socket.socket | None:
    sock = transport.get_extra_info("socket")
    if _QUICKACK is None or sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    return sock  # type: ignore[no-any-return]


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection and the response currently being read on it."""

    def __init__(self, key: tuple[str, str, int], loop: asyncio.AbstractEventLoop) -> None:
        self.key = key
        # The loop the connection was made in, which it serves (on Python 3.11 each
        # asyncio.get_running_loop() is a getpid() system call; a call asked for it four
        # times, more than half of all its system calls).
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.sock: socket.socket | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        # When a request was last taken onto this reused connection, and how soon a close
        # after it still shows the connection was stale (``_STALE_MIN_S``).
        self.sent_at = 0.0
        self.stale_within = _STALE_MIN_S
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.head_bytes = 0
        self.headers: list[tuple[str, str]] = []
        self.headers_done: asyncio.Future[None] = self.loop.create_future()
        self.chunks: deque[bytes] = deque()
        self.queued = 0
        self.complete = False
        self.got_bytes = False
        self.error: BaseException | None = None
        self.wakeup: asyncio.Future[None] | None = None
        self.paused = False
        self.until_close = False
        self.keep_alive = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check.
        self.transport = transport  # type: ignore[assignment]
        self.sock = _quickack_socket(transport)

    def quickack(self) -> None:
        """Acknowledge what came at once, and what arrives next (see ``_QUICKACK``); the
        kernel drops back to delayed ACKs on its own, so this is asked again for each
        read that leaves the answer incomplete."""
        if self.sock is not None:
            try:
                self.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)  # type: ignore[arg-type]
            except OSError:
                self.sock = None

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        if not self.headers_done.done():
            # Counted before the parser takes it: httptools holds a header until it ends.
            self.head_bytes += len(data)
            if self.head_bytes > MAX_RESPONSE_HEAD_BYTES:
                self._fail(ProtocolFailure(f"provider sent response headers past {MAX_RESPONSE_HEAD_BYTES} bytes"))
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolFailure("provider tried to upgrade the connection"))
        except httptools.HttpParserError as exc:
            ours = exc.__context__  # a callback of ours refused what it saw
            self._fail(
                ours
                if isinstance(ours, ProtocolFailure)
                else ProtocolFailure(f"provider sent a malformed response: {exc}")
            )
            return
        if not self.complete:
            self.quickack()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete and self.until_close and self.headers_done.done() and exc is None:
            self.complete = True
            self._wake()
        if not self.complete:
            if self.got_bytes:
                self._fail(ProtocolFailure("provider closed the connection mid-response"))
            elif self.reused and time.monotonic() - self.sent_at < self.stale_within:
                self._fail(_StaleConnection())
            else:
                self._fail(ProtocolFailure("provider closed the connection before answering"))

    def pause_writing(self) -> None:  # the request bodies we send are small
        pass

    def resume_writing(self) -> None:
        pass

    # httptools callbacks
    def on_message_begin(self) -> None:
        if self.complete:
            # A second response to one request: whatever follows cannot be trusted to
            # belong to the next request (response splitting); the connection is dropped.
            raise ProtocolFailure("provider sent a response nobody asked for")

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= MAX_RESPONSE_HEADERS:
            raise ProtocolFailure(f"provider sent more than {MAX_RESPONSE_HEADERS} response headers")
        self.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if not 100 <= self.status <= 599:
            # llhttp takes any three digits ("010"); no client may be sent such a status.
            self._fail(ProtocolFailure(f"provider sent an invalid status {self.status}"))
            return
        if 100 <= self.status < 200:
            self.headers = []  # an interim response: the real one follows
            return
        names = {k for k, _ in self.headers}
        # No length and not chunked: the body runs to the end of the connection.
        self.until_close = (
            "content-length" not in names and "transfer-encoding" not in names and self.status not in (204, 304)
        )
        if not self.headers_done.done():
            self.headers_done.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.queued += len(body)
        if self.queued > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:
            return
        # Read now: llhttp resets its flags once the message is over.
        self.keep_alive = self.parser.should_keep_alive()
        self.complete = True
        self._wake()

    def _wake(self) -> None:
        if self.wakeup is not None and not self.wakeup.done():
            self.wakeup.set_result(None)

    def headers_overdue(self) -> None:
        """The response's headers did not come in time (a deadline's callback)."""
        if not self.headers_done.done():
            self._fail(_HeadersOverdue())

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        if not self.headers_done.done():
            self.headers_done.set_exception(exc)
            self.headers_done.exception()  # mark retrieved: the sender may be gone
        self._wake()
        if self.transport is not None:
            self.transport.close()

    def reusable(self) -> bool:
        return (
            not self.closed
            and self.complete
            and self.error is None
            and not self.chunks
            and not self.until_close
            and self.keep_alive
        )

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class H1Response:
    __slots__ = ("_conn", "_done", "_idle", "_pool", "headers", "status")

    def __init__(self, conn: _Connection, pool: H1Transport, idle: float) -> None:
        self._conn = conn
        self._pool = pool
        self._idle = idle
        self._done = False
        self.status = conn.status
        self.headers = conn.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        conn = self._conn
        loop = conn.loop
        while True:
            if conn.chunks:
                chunk = conn.chunks.popleft()
                conn.queued -= len(chunk)
                if conn.paused and conn.queued < _LOW_WATER and conn.transport is not None:
                    conn.paused = False
                    conn.transport.resume_reading()
                yield chunk
                continue
            if conn.complete:
                return
            if conn.error is not None:
                if isinstance(conn.error, ProtocolFailure):
                    raise conn.error
                raise ProtocolFailure("provider connection broke") from None
            wakeup = conn.wakeup = loop.create_future()
            # (A deadline of the loop's, not a timer per wait: see ``tollway.deadlines``.)
            deadline = deadlines.for_loop(loop).after(self._idle, partial(_time_out, wakeup, self._idle))
            try:
                await wakeup
            finally:
                deadline.cancel()
                conn.wakeup = None

    async def read(self) -> bytes:
        try:
            return await read_bounded(self, self._pool.max_answer_bytes)
        except AnswerRefused:
            self._conn.close()  # what is left of the answer is not read: never reused
            raise

    async def aclose(self) -> None:
        if self._done:
            return
        self._done = True
        self._pool._release(self._conn)


class H1Transport:
    """Keep-alive connections per (scheme, host, port), most recently used first."""

    def __init__(
        self,
        *,
        keepalive_s: float = 25.0,
        max_idle_per_host: int = 256,
        ssl_context: ssl.SSLContext | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self.keepalive_s = keepalive_s
        self.max_idle_per_host = max_idle_per_host
        self.max_answer_bytes = max_answer_bytes
        self._ssl = ssl_context
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._closed = False

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            # The default context honours SSL_CERT_FILE / SSL_CERT_DIR.
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def send(self, request: UpstreamRequest) -> H1Response:
        parts = urlsplit(request.url)
        scheme = parts.scheme
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        # The Host is the host and port: never a URL's user info (a password).
        head = self._head(request, target, parts.netloc.rpartition("@")[2])
        key = (scheme, host, port)
        # A kept-alive connection (nearly every call): the wait for the headers has a
        # deadline of the loop's (``tollway.deadlines``), not a timer of its own.
        conn = self._idle_connection(key)
        loop = conn.loop if conn is not None else asyncio.get_running_loop()
        due = loop.time() + request.headers_timeout
        if conn is not None:
            try:
                return await self._exchange(conn, head, request.body, request.idle_timeout, due)
            except _StaleConnection:
                conn.close()
                self._drop_idle_since(key, conn.idle_since)
            except _HeadersOverdue:
                raise self._headers_timeout(request) from None
        # A new connection: the connect and the wait under one timeout.
        try:
            async with asyncio.timeout_at(due):
                conn = await self._connect(key)
                return await self._exchange(conn, head, request.body, request.idle_timeout, None)
        except _StaleConnection:
            raise ProtocolFailure("provider closed the connection before answering") from None
        except TimeoutError:
            raise self._headers_timeout(request) from None

    @staticmethod
    def _headers_timeout(request: UpstreamRequest) -> TransportTimeout:
        return TransportTimeout(f"no response headers within {request.headers_timeout:g}s")

    def _head(self, request: UpstreamRequest, target: str, netloc: str) -> bytes:
        _check_token(request.method, "method")
        _check_token(target, "target")
        lines = [f"{request.method} {target} HTTP/1.1", f"host: {netloc}", _IDENTITY]
        for name, value in request.headers:
            if name.lower() in _SET_HERE:
                continue
            _check_token(name, "header names")
            _check_token(value, "header values")
            lines.append(f"{name}: {value}")
        if request.body or request.method in ("POST", "PUT", "PATCH"):
            lines.append(f"content-length: {len(request.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _idle_connection(self, key: tuple[str, str, int]) -> _Connection | None:
        """The most recently used idle connection to ``key`` still fit for a request."""
        idle = self._idle.get(key)
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            transport = conn.transport
            if (
                not conn.closed
                and transport is not None
                and not transport.is_closing()
                and now - conn.idle_since < self.keepalive_s
            ):
                conn.reused = True
                conn.sent_at = now  # (the request is written before the next await)
                conn._reset()
                return conn
            conn.close()
        return None

    def _drop_idle_since(self, key: tuple[str, str, int], since: float) -> None:
        """Close the idle connections to ``key`` idle since ``since`` or longer: one of
        them was found closed by the server (its keep-alive timeout, a restart, a
        middlebox's idle timeout), and so, most likely, were the ones older than it.
        Tried one by one, each would cost a round trip, and the request a 502 once the
        tries ran out; connections released since stay."""
        idle = self._idle.get(key)
        if idle:
            old = [c for c in idle if c.idle_since <= since]
            idle[:] = [c for c in idle if c.idle_since > since]
            for c in old:
                c.close()

    async def _connect(self, key: tuple[str, str, int]) -> _Connection:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        try:
            transport, conn = await loop.create_connection(
                lambda: _Connection(key, loop),
                host,
                port,
                ssl=self._ssl_context() if scheme == "https" else None,
                server_hostname=host if scheme == "https" else None,
            )
        except ssl.SSLError as exc:
            raise ConnectFailed(f"TLS handshake with provider failed: {exc.reason}") from None
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to provider: {exc.strerror or type(exc).__name__}") from None
        # uvloop may call connection_made after create_connection returns.
        conn.transport = transport
        conn.stale_within = min(max(time.monotonic() - started, _STALE_MIN_S), _STALE_MAX_S)
        return conn

    async def _exchange(
        self, conn: _Connection, head: bytes, body: bytes, idle: float, due: float | None
    ) -> H1Response:
        """Send the request on ``conn`` and wait for the response's headers, until the
        loop's clock passes ``due`` (None: the caller's own timeout bounds the wait)."""
        assert conn.transport is not None
        conn.transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            conn.transport.write(body)
        deadline = None
        if due is not None:
            deadline = deadlines.for_loop(conn.loop).at(due, conn.headers_overdue)
        try:
            await conn.headers_done
        except BaseException:
            conn.close()
            raise
        finally:
            if deadline is not None:
                deadline.cancel()
        return H1Response(conn, self, idle)

    def _release(self, conn: _Connection) -> None:
        if self._closed or not conn.reusable():
            conn.close()
            return
        idle = self._idle.setdefault(conn.key, [])
        if len(idle) >= self.max_idle_per_host:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    async def aclose(self) -> None:
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
