"""The lean HTTP/1.1 provider client (upstream/h1.py), against scripted servers on real
sockets."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
import trustme
import uvloop

from tollway.upstream import ConnectFailed, ProtocolFailure, TransportTimeout, UpstreamRequest
from tollway.upstream.h1 import H1Transport

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]


@dataclass
class Server:
    port: int = 0
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length) if length else b""
    return head + body


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s" % (
        len(body),
        extra,
        body,
    )


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    servers: list[asyncio.base_events.Server] = []

    async def start(script: Script, ssl_ctx: ssl.SSLContext | None = None) -> Server:
        state = Server()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            state.connections += 1
            try:
                await script(reader, writer, state)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl_ctx)
        servers.append(srv)
        state.port = srv.sockets[0].getsockname()[1]
        return state

    yield start
    for srv in servers:
        srv.close()
        await srv.wait_closed()


def req(
    port: int,
    path: str = "/v1/chat/completions",
    body: bytes = b"{}",
    *,
    scheme: str = "http",
    headers: list[tuple[str, str]] | None = None,
    timeout: float = 2,
    idle: float = 2,
    method: str = "POST",
) -> UpstreamRequest:
    return UpstreamRequest(
        method,
        f"{scheme}://127.0.0.1:{port}{path}",
        headers or [("content-type", "application/json")],
        body,
        timeout,
        idle,
    )


async def fetch(client: H1Transport, port: int) -> bytes:
    """A request's whole answer body, its connection released."""
    resp = await client.send(req(port))
    try:
        return await resp.read()
    finally:
        await resp.aclose()


async def keep_alive_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server) -> None:
    while True:
        state.requests.append(await read_request(reader))
        writer.write(ok(b'{"n": %d}' % len(state.requests)))
        await writer.drain()


async def test_content_length_body_and_keep_alive_reuse(serve: Callable[..., Awaitable[Server]]) -> None:
    server = await serve(keep_alive_server)
    client = H1Transport()
    for n in (1, 2, 3):
        resp = await client.send(req(server.port, body=b'{"hello": 1}'))
        assert resp.status == 200
        assert ("content-type", "application/json") in resp.headers
        assert await resp.read() == b'{"n": %d}' % n
        await resp.aclose()
    assert server.connections == 1, "a fully read keep-alive response returns its connection to the pool"
    first = server.requests[0]
    assert first.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"host: 127.0.0.1:%d\r\n" % server.port in first
    assert b"content-length: 12\r\n" in first
    assert first.endswith(b'\r\n\r\n{"hello": 1}')
    await client.aclose()


async def test_chunked_body_arrives_as_it_is_sent(serve: Callable[..., Awaitable[Server]]) -> None:
    release = asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(b"6\r\ndata:1\r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"6\r\ndata:2\r\n0\r\n\r\n")
        await writer.drain()
        await reader.read()

    server = await serve(script)
    client = H1Transport()
    resp = await client.send(req(server.port))
    chunks = resp.chunks()
    assert await chunks.__anext__() == b"data:1", "the first chunk is readable before the server sends more"
    release.set()
    rest = [c async for c in chunks]
    assert b"".join(rest) == b"data:2"
    await resp.aclose()
    await client.aclose()


async def test_connection_close_is_not_reused(serve: Callable[..., Awaitable[Server]]) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server) -> None:
        await read_request(reader)
        writer.write(ok(b"{}", b"connection: close\r\n"))
        await writer.drain()

    server = await serve(script)
    client = H1Transport()
    for _ in range(2):
        assert await fetch(client, server.port) == b"{}"
    assert server.connections == 2
    await client.aclose()


async def test_pooled_connection_closed_by_server_is_retried_on_a_fresh_one(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server) -> None:
        state.requests.append(await read_request(reader))
        writer.write(ok(b"{}"))
        await writer.drain()
        # Keep-alive promised, but the server drops the idle connection (as servers do).

    server = await serve(script)
    client = H1Transport()
    resp = await client.send(req(server.port))
    assert await resp.read() == b"{}"
    await resp.aclose()
    await asyncio.sleep(0.1)
    resp = await client.send(req(server.port))
    assert resp.status == 200
    await resp.read()
    await resp.aclose()
    assert len(server.requests) == 2
    await client.aclose()


async def test_a_pooled_connection_closed_as_the_request_came_is_retried_on_a_fresh_one(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    """The race of a server's idle timeout with a reuse: the server closes the connection
    as the request arrives, unread; the close comes at once, so it is sent again."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server) -> None:
        state.requests.append(await read_request(reader))
        writer.write(ok(b"{}"))
        await writer.drain()
        await reader.read(1)  # the next request's first byte: closed before reading it

    server = await serve(script)
    client = H1Transport()
    for _ in range(2):
        assert await fetch(client, server.port) == b"{}"
    assert (server.connections, len(server.requests)) == (2, 2)
    await client.aclose()


async def test_a_pooled_connection_closed_after_the_request_was_read_is_not_retried(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    """A server that read the request and worked on it before closing may have done what
    it asked: the request is not sent again, the failure is the caller's to handle."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server) -> None:
        state.requests.append(await read_request(reader))
        writer.write(ok(b"{}"))
        await writer.drain()
        state.requests.append(await read_request(reader))
        await asyncio.sleep(0.2)

    server = await serve(script)
    client = H1Transport()
    resp = await client.send(req(server.port))
    await resp.read()
    await resp.aclose()
    with pytest.raises(ProtocolFailure, match="closed the connection before answering"):
        await client.send(req(server.port))
    assert (server.connections, len(server.requests)) == (1, 2)
    await client.aclose()


async def test_idle_connections_past_keepalive_are_not_reused(serve: Callable[..., Awaitable[Server]]) -> None:
    server = await serve(keep_alive_server)
    client = H1Transport(keepalive_s=0.05)
    for _ in range(2):
        resp = await client.send(req(server.port))
        await resp.read()
        await resp.aclose()
        await asyncio.sleep(0.1)
    assert server.connections == 2
    await client.aclose()


async def test_unread_response_closes_its_connection(serve: Callable[..., Awaitable[Server]]) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n")
            await writer.drain()
            await asyncio.sleep(0.2)
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    server = await serve(script)
    client = H1Transport()
    resp = await client.send(req(server.port))
    await resp.aclose()  # the client went away: the rest of this body must not leak into the next call
    resp = await client.send(req(server.port))
    assert await resp.read() == b"abc"
    await resp.aclose()
    assert server.connections == 2
    await client.aclose()


async def test_headers_timeout(serve: Callable[..., Awaitable[Server]]) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    server = await serve(script)
    client = H1Transport()
    with pytest.raises(TransportTimeout):
        await client.send(req(server.port, timeout=0.2))
    await client.aclose()


async def test_headers_timeout_on_a_kept_alive_connection(serve: Callable[..., Awaitable[Server]]) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        await read_request(reader)  # the second request gets no answer
        await asyncio.sleep(5)

    server = await serve(script)
    client = H1Transport()
    resp = await client.send(req(server.port))
    assert await resp.read() == b"ok"
    await resp.aclose()
    started = time.monotonic()
    with pytest.raises(TransportTimeout, match=r"no response headers within 0\.2s"):
        await client.send(req(server.port, timeout=0.2))
    assert 0.2 <= time.monotonic() - started < 1.0  # never early; late by a deadline's slot at most
    assert server.connections == 1  # the wait was on the kept-alive connection
    # The connection that timed out is not reused: the next call opens another.
    resp = await client.send(req(server.port))
    assert await resp.read() == b"ok"
    await resp.aclose()
    assert server.connections == 2
    await client.aclose()


async def test_idle_body_timeout(serve: Callable[..., Awaitable[Server]]) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await writer.drain()
        await asyncio.sleep(5)

    server = await serve(script)
    client = H1Transport()
    resp = await client.send(req(server.port, idle=0.2))
    with pytest.raises(TransportTimeout):
        await resp.read()
    await resp.aclose()
    await client.aclose()


async def test_refused_connection() -> None:
    client = H1Transport()
    with pytest.raises(ConnectFailed):
        await client.send(req(1))
    await client.aclose()


async def test_garbage_response(serve: Callable[..., Awaitable[Server]]) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server) -> None:
        await read_request(reader)
        writer.write(b"this is not http\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    server = await serve(script)
    client = H1Transport()
    with pytest.raises(ProtocolFailure):
        await client.send(req(server.port))
    await client.aclose()


@pytest.mark.parametrize(
    ("head", "said"),
    [
        # One header of 8 MB (a red-team's provider: relayed whole, RSS up 160 MB for good).
        (b"x-big: " + b"a" * (8 << 20) + b"\r\n", "past 262144 bytes"),
        # Twenty thousand small ones, all relayed.
        (b"".join(b"x-h%d: v\r\n" % i for i in range(20_000)), "more than 512"),
        # Interim responses count too: a flood of them never ends the head.
        (b"".join(b"HTTP/1.1 100 Continue\r\n\r\n" for _ in range(20_000)), "past 262144 bytes"),
    ],
    ids=["one-huge", "too-many", "endless-interim"],
)
async def test_a_response_head_past_its_bounds_is_a_protocol_failure(
    serve: Callable[..., Awaitable[Server]], head: bytes, said: str
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server) -> None:
        await read_request(reader)
        if head.startswith(b"HTTP/"):
            writer.write(head + ok(b"{}"))
        else:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n" + head + b"\r\n{}")
        await writer.drain()
        await asyncio.sleep(1)

    server = await serve(script)
    client = H1Transport()
    with pytest.raises(ProtocolFailure, match=said):
        await client.send(req(server.port))
    await client.aclose()


async def test_a_response_head_within_its_bounds_is_read(serve: Callable[..., Awaitable[Server]]) -> None:
    # What a real provider sends, generously: 400 headers and 200 kB of them.
    extra = b"".join(b"x-h%d: %s\r\n" % (i, b"v" * 500) for i in range(400))

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server) -> None:
        await read_request(reader)
        writer.write(ok(b"{}", extra))
        await writer.drain()

    server = await serve(script)
    client = H1Transport()
    resp = await client.send(req(server.port))
    assert resp.status == 200 and len(resp.headers) == 402
    await resp.aclose()
    await client.aclose()


@pytest.mark.parametrize("status", [b"010", b"099", b"600", b"999"])
async def test_a_status_outside_100_to_599_is_a_protocol_failure(
    serve: Callable[..., Awaitable[Server]], status: bytes
) -> None:
    # llhttp takes any three digits; no client may be relayed such a status (found by tests/fuzz).
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 " + status + b" Odd\r\ncontent-length: 2\r\n\r\n{}")
        await writer.drain()
        await asyncio.sleep(1)

    server = await serve(script)
    client = H1Transport()
    with pytest.raises(ProtocolFailure, match="invalid status"):
        await client.send(req(server.port))
    await client.aclose()


async def test_a_second_response_to_one_request_drops_the_connection(serve: Callable[..., Awaitable[Server]]) -> None:
    # Bytes after a complete response cannot be trusted to answer the next request
    # (response splitting): the connection is not reused, and the next call gets its own.
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server) -> None:
        state.requests.append(await read_request(reader))
        writer.write(ok(b'{"n": 1}') + ok(b'{"smuggled": true}'))
        await writer.drain()
        while True:
            state.requests.append(await read_request(reader))
            writer.write(ok(b'{"n": %d}' % len(state.requests)))
            await writer.drain()

    server = await serve(script)
    client = H1Transport()
    resp = await client.send(req(server.port))
    assert await resp.read() == b'{"n": 1}'
    await resp.aclose()
    await asyncio.sleep(0.05)
    resp = await client.send(req(server.port))
    assert b"smuggled" not in await resp.read()
    await resp.aclose()
    assert server.connections == 2
    await client.aclose()


async def test_connection_dropped_mid_body(serve: Callable[..., Awaitable[Server]]) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly-part")
        await writer.drain()

    server = await serve(script)
    client = H1Transport()
    resp = await client.send(req(server.port))
    with pytest.raises(ProtocolFailure):
        await resp.read()
    await resp.aclose()
    await client.aclose()


@pytest.mark.parametrize(
    "headers",
    [
        [("x-evil", "a\r\ntransfer-encoding: chunked")],
        [("x-evil\r\nx-other", "1")],
        [("x-nul", "a\0b")],
    ],
)
async def test_header_injection_is_refused_before_sending(
    serve: Callable[..., Awaitable[Server]], headers: list[tuple[str, str]]
) -> None:
    server = await serve(keep_alive_server)
    client = H1Transport()
    with pytest.raises(ProtocolFailure):
        await client.send(req(server.port, headers=headers))
    await asyncio.sleep(0.05)
    assert server.requests == []
    await client.aclose()


async def test_body_delimited_by_close(serve: Callable[..., Awaitable[Server]]) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end")
        await writer.drain()

    server = await serve(script)
    client = H1Transport()
    resp = await client.send(req(server.port))
    assert await resp.read() == b"until the end"
    await resp.aclose()
    await client.aclose()


async def test_tls_with_verified_certificate(serve: Callable[..., Awaitable[Server]]) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    server = await serve(keep_alive_server, server_ctx)

    client = H1Transport(ssl_context=client_ctx)
    resp = await client.send(req(server.port, scheme="https"))
    assert await resp.read() == b'{"n": 1}'
    await resp.aclose()
    await client.aclose()

    untrusting = H1Transport(ssl_context=ssl.create_default_context())
    with pytest.raises(ConnectFailed):
        await untrusting.send(req(server.port, scheme="https"))
    await untrusting.aclose()


def test_on_uvloop_as_the_gateway_runs_it() -> None:
    """The gateway serves on uvloop, whose transports behave slightly differently
    (connection_made may come after create_connection returns)."""

    async def scenario() -> tuple[int, list[bytes]]:
        state = Server()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            state.connections += 1
            try:
                await keep_alive_server(reader, writer, state)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        client = H1Transport()
        bodies = []
        for _ in range(3):
            resp = await client.send(req(port))
            bodies.append(await resp.read())
            await resp.aclose()
        await client.aclose()
        srv.close()
        await srv.wait_closed()
        return state.connections, bodies

    connections, bodies = uvloop.run(scenario())
    assert bodies == [b'{"n": 1}', b'{"n": 2}', b'{"n": 3}']
    assert connections == 1


async def test_the_host_header_never_carries_a_urls_user_info(serve: Callable[..., Awaitable[Server]]) -> None:
    server = await serve(keep_alive_server)
    client = H1Transport()
    request = req(server.port)
    request = UpstreamRequest(request.method, request.url.replace("://", "://me:pa55word@"), request.headers,
                              request.body, request.headers_timeout, request.idle_timeout)  # fmt: skip
    resp = await client.send(request)
    await resp.read()
    await resp.aclose()
    (head,) = server.requests
    assert f"host: 127.0.0.1:{server.port}\r\n".encode() in head and b"pa55word" not in head
    await client.aclose()


async def test_an_answer_that_breaks_off_keeps_none_of_what_was_read(serve: Callable[..., Awaitable[Server]]) -> None:
    """A provider that sent 1 MB of a promised 4 MB and closed: the read fails, and the
    error's traceback (which whoever keeps the error keeps with it) holds none of the
    megabyte. It held it all, so every such call kept its bytes for good (a judge's High:
    +29.5 MB of memory a call)."""

    async def breaks_off(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 4000000\r\n\r\n")
        writer.write(b"x" * 1_000_000)
        await writer.drain()

    server = await serve(breaks_off)
    client = H1Transport()
    resp = await client.send(req(server.port))
    with pytest.raises(ProtocolFailure) as caught:
        await resp.read()
    await resp.aclose()
    held = 0
    tb = caught.value.__traceback__
    while tb is not None:
        for value in tb.tb_frame.f_locals.values():
            if isinstance(value, list):
                held += sum(len(part) for part in value if isinstance(part, bytes))
        tb = tb.tb_next
    assert held == 0, f"the failed read's traceback still holds {held} bytes of the answer"
    await client.aclose()
