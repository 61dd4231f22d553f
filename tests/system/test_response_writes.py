"""How the gateway writes an answer to the client (runtime/connection.py's ResponseCycle):
the head goes out with the body's first part in one write, but is never held waiting for
a body that is not there yet: a stream's head reaches the client while the provider has
sent nothing but its own head, so clients see the status (and start their own timers)
as soon as the gateway knows it.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Proc
from tests.support.fake_provider import serve_gateway
from tests.support.loopback_server import LoopbackServer, read_request

EVENT = (
    b'data: {"id":"c1","object":"chat.completion.chunk","model":"m",'
    b'"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}\n\n'
)
DONE = b"data: [DONE]\n\n"


class GatedProvider(LoopbackServer):
    """Sends a stream's head at once, then waits for ``release()`` before its events."""

    def __init__(self) -> None:
        super().__init__()
        self._released = asyncio.Event()

    def release(self) -> None:
        """From the test's thread: let the held events go."""
        self._loop.call_soon_threadsafe(self._released.set)

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        await writer.drain()
        await self._released.wait()
        for event in (EVENT, DONE):
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
        writer.write(b"0\r\n\r\n")
        await writer.drain()


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[tuple[Proc, GatedProvider]]:
    with GatedProvider() as provider:
        config = f"""
providers: [{{id: up, type: openai, baseUrl: "{provider.url}/v1", apiTokens: [sk-up]}}]
routes: [{{name: chat, path_prefix: /v1/, provider: up}}]
"""
        proc = serve_gateway(tmp_path, config)
        yield proc, provider
        provider.release()
        assert proc.stop() == 0


def _read_until(sock: socket.socket, marker: bytes, got: bytes = b"") -> bytes:
    while marker not in got:
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


STREAM = b'{"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}'


def _ask_for_a_stream(gw: Proc, version: bytes, *headers: bytes) -> socket.socket:
    host, port = gw.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    lines = b"".join(h + b"\r\n" for h in (b"content-type: application/json", *headers))
    sock.sendall(b"POST /v1/chat/completions HTTP/%s\r\n%scontent-length: %d\r\n\r\n%s"
                 % (version, lines, len(STREAM), STREAM))  # fmt: skip
    return sock


def test_a_streams_head_reaches_the_client_before_any_event_does(gated: tuple[Proc, GatedProvider]) -> None:
    gw, provider = gated
    with _ask_for_a_stream(gw, b"1.1", b"Host: gw") as sock:
        # The provider holds its events until told: the head must come without them.
        head = _read_until(sock, b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert b"text/event-stream" in head.lower()
        assert b"data:" not in head
        provider.release()
        rest = _read_until(sock, b"0\r\n\r\n", head)
    assert b'"content":"hi"' in rest and b"data: [DONE]" in rest


def test_a_plain_answer_comes_whole_with_its_length(gated: tuple[Proc, GatedProvider]) -> None:
    # An answer the gateway makes itself (here a 404 for an unknown route): head and body
    # in one piece, its content-length the body's length, the connection kept.
    gw, _ = gated
    host, port = gw.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        for _ in range(2):  # twice on one connection: the first left it usable
            sock.sendall(b"GET /nowhere HTTP/1.1\r\nHost: gw\r\n\r\n")
            got = _read_until(sock, b"\r\n\r\n")
            head, _, body = got.partition(b"\r\n\r\n")
            length = int(next(h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")))
            while len(body) < length:
                body += sock.recv(65536)
            assert head.startswith(b"HTTP/1.1 404 ")
            assert len(body) == length and body.startswith(b"{")


def test_a_stream_to_an_http_1_0_client_is_unframed_and_ends_with_the_connection(
    gated: tuple[Proc, GatedProvider],
) -> None:
    # RFC 9112 6.1: no Transfer-Encoding to an HTTP/1.0 client, which would read the chunk
    # sizes as part of the events; the body ends when the gateway closes the connection.
    gw, provider = gated
    with _ask_for_a_stream(gw, b"1.0", b"connection: keep-alive") as sock:
        head = _read_until(sock, b"\r\n\r\n")
        provider.release()
        got = _read_until(sock, b"never in an answer", head)  # to the end: the gateway closes
    head, _, events = got.partition(b"\r\n\r\n")
    headers = head.lower().split(b"\r\n")
    assert headers[0].startswith(b"http/1.1 200 ")
    assert not any(h.startswith((b"transfer-encoding", b"content-length")) for h in headers)
    assert b"connection: close" in headers
    assert events == EVENT + DONE
