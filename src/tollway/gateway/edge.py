"""The only module that speaks to the HTTP server: ASGI in, ``Gateway.handle`` out."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from tollway import deadlines
from tollway.deadlines import Deadline
from tollway.errors import BadRequest, RequestTimeout
from tollway.exchange import Request
from tollway.gateway.call import ClientGone, Gateway, too_large
from tollway.headers import Headers
from tollway.routing.hosts import strip_port

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# How long after its body is in a call starts watching for its client to go away (up
# to a deadline's slot more: ``tollway.deadlines``).
WATCH_AFTER_S = 0.05
# The ASGI event the server's ``receive()`` answers once the client has sent nothing of
# an unfinished request body for ``server.body_timeout_s`` (Tollway's own event: the
# ASGI spec has none for it). ``after_s`` says how long the silence was.
BODY_TIMEOUT = "tollway.body_timeout"


# The event ``receive()`` answers once the server stopped reading an unfinished body it
# cannot frame within its bounds (``message`` says why; Tollway's own event too).
BODY_REFUSED = "tollway.body_refused"


def body_timeout(event: Message) -> RequestTimeout:
    return RequestTimeout(
        f"the request body stalled: nothing arrived for {event.get('after_s', 0):g}s",
        reason="gateway.body_timeout",
    )


def body_refused(event: Message) -> BadRequest:
    return BadRequest(event.get("message", "the request body is not valid HTTP/1.1"), reason="gateway.bad_request")


def declared_over(declared: str | None, limit: int) -> bool:
    """Whether a Content-Length value says more than ``limit`` bytes (the parser already
    refused one that is not a number)."""
    if declared is None or not (declared.isascii() and declared.isdigit()):
        return False
    # int() of thousands of digits raises; a length that long is over any limit anyway.
    return len(declared) > 18 or int(declared) > limit


# The scope key the server sets (True) when the client's connection ended before the
# answer was all written (Tollway's own: ASGI's ``send`` says nothing of it).
CLIENT_GONE = "tollway.client_gone"

# The scope key the server sets to the loop the call runs in (Tollway's own). Asking
# asyncio for it is a getpid() system call on Python 3.11 (each asyncio.current_task()
# and get_running_loop() without a loop given); a call asked four times here and four in
# the upstream client: more than half of all the system calls a call made.
LOOP = "tollway.loop"


class AsgiChannel:
    __slots__ = ("_scope", "_send", "finished", "started")

    def __init__(self, send: Send, scope: Scope | None = None) -> None:
        self._send = send
        self._scope = scope
        self.started = False
        self.finished = False

    @property
    def gone(self) -> bool:
        scope = self._scope
        return scope is not None and CLIENT_GONE in scope

    async def start(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.started = True
        await self._send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            }
        )

    async def write(self, data: bytes) -> None:
        await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def finish(self, data: bytes = b"") -> None:
        self.finished = True
        await self._send({"type": "http.response.body", "body": data, "more_body": False})


class ClientIp:
    """The peer address, or the nearest untrusted hop of X-Forwarded-For behind a trusted proxy."""

    def __init__(self, trusted: list[str]) -> None:
        self.trusted: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(c, strict=False) for c in trusted)

    def _is_trusted(self, addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr.strip())
        except ValueError:
            return False
        return any(ip in net for net in self.trusted)

    def of(self, peer: str, headers: Headers) -> str:
        if not self.trusted or not self._is_trusted(peer):
            return peer
        xff = headers.get("x-forwarded-for")
        if not xff:
            return peer
        hops = [h.strip() for h in xff.split(",") if h.strip()]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop
        return hops[0] if hops else peer


class GatewayApp:
    def __init__(self, gateway: Gateway, client_ip: ClientIp) -> None:
        self.gateway = gateway
        self.client_ip = client_ip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = Headers.from_asgi(scope["headers"])
        client = scope.get("client")
        peer = client[0] if client else ""
        req = Request(
            method=scope["method"],
            path=scope["path"],
            query=scope["query_string"].decode("latin-1"),
            headers=headers,
            client_ip=self.client_ip.of(peer, headers) if self.client_ip.trusted else peer,
            host=strip_port(headers.get("host") or ""),
            raw_path=scope.get("raw_path"),
            http10=scope.get("http_version") == "1.0",
        )
        channel = AsgiChannel(send, scope)
        loop: asyncio.AbstractEventLoop = scope.get(LOOP) or asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        assert task is not None
        watcher: asyncio.Task[None] | None = None
        timer: Deadline | None = None

        async def watch_disconnect() -> None:
            # Once the body is in, the only message left is the client going away;
            # cancelling the call then cancels the provider call too.
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    if not channel.finished:
                        task.cancel()
                    return

        def start_watching() -> None:
            nonlocal watcher
            watcher = loop.create_task(watch_disconnect())

        async def read_body(limit: int) -> bytes:
            nonlocal timer
            if declared_over(headers.get("content-length"), limit):
                raise too_large(limit)
            parts: list[bytes] = []
            size = 0
            while True:
                msg = await receive()
                if msg["type"] != "http.request":
                    if msg["type"] == BODY_TIMEOUT:
                        raise body_timeout(msg)
                    if msg["type"] == BODY_REFUSED:
                        raise body_refused(msg)
                    raise ClientGone()
                chunk = msg.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                parts.append(chunk)
                if not msg.get("more_body", False):
                    break
            # Watching takes a task per call; most calls end before this delay, and a
            # client that left meanwhile is noticed as soon as the watching starts. (A
            # deadline of the loop's, not a timer per call: ``tollway.deadlines``.)
            timer = deadlines.for_loop(loop).after(WATCH_AFTER_S, start_watching)
            return parts[0] if len(parts) == 1 else b"".join(parts)

        try:
            await self.gateway.handle(req, read_body, channel, task)
        except asyncio.CancelledError:
            if watcher is None or not watcher.done():
                raise
            # We cancelled ourselves because the client left: that is not an error.
            task.uncancel()
        finally:
            if timer is not None:
                timer.cancel()
            if watcher is not None and not watcher.done():
                watcher.cancel()
