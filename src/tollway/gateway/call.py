"""One call through the gateway: route, run the chain, proxy, always account.

This module knows nothing of the HTTP server; ``asgi.py`` adapts it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from tollway.chain import Chain
from tollway.gateway.channel import ClientChannel
from tollway.errors import BadRequest, BodyTooLarge, GatewayError, NotFound
from tollway.gateway.error_replies import render_error, render_stream_error
from tollway.exchange import Exchange, Reply, Request

if TYPE_CHECKING:
    from tollway.proxy.ai_proxy import AiProxy
    from tollway.gateway.snapshot import Snapshot

log = logging.getLogger("tollway.gateway.call")

BodyReader = Callable[[int], Awaitable[bytes]]
Finisher = Callable[[Exchange], None]

_EMPTY_CHAIN = Chain([])


class ClientGone(Exception):
    """The client disconnected before its request body was in."""


class RequestIds:
    """Unique ids without a system call per request: a random per-process prefix and a
    counter. Ids only need to be unique, not unguessable (they are echoed to clients)."""

    __slots__ = ("_next", "_prefix")

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._next = 0

    def new(self) -> str:
        self._next += 1
        return f"{self._prefix}{self._next:08x}"


def _ambiguous_path(path: str) -> bool:
    """Whether a (decoded) path could mean another path to the provider than to our
    router: a "." or ".." segment its server resolves away, or a "?" or "#" that came
    percent-encoded and would start a query or fragment upstream."""
    if "?" in path or "#" in path:
        return True
    return "/." in path and any(seg in (".", "..") for seg in path.split("/"))


class Gateway:
    """Holds the current snapshot; ``handle`` serves one call on the snapshot it starts with."""

    def __init__(self, snapshot: Snapshot, proxy: AiProxy, max_body_bytes: int, finish: Finisher) -> None:
        self.snapshot = snapshot
        self.proxy = proxy
        self.max_body_bytes = max_body_bytes
        self._finish = finish
        self._inflight: set[asyncio.Task[None]] = set()
        self._ids = RequestIds()
        self._stopping = False

    def swap(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    async def drain(self, bound_s: float) -> None:
        """Waits up to ``bound_s`` for in-flight calls, then ends the rest as the
        gateway's own doing: 503 ``gateway.shutdown`` (an error event mid-stream)."""
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=bound_s)
        if not self._inflight:
            return
        self._stopping = True
        tasks = list(self._inflight)
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=5)

    async def handle(self, req: Request, read_body: BodyReader, client: ClientChannel) -> None:
        """Serves one call on the snapshot current at its start; never raises but for
        the cancellation of a client that went away."""
        task = asyncio.current_task()
        if task is None:
            await self._handle(req, read_body, client)
            return
        self._inflight.add(task)
        try:
            await self._handle(req, read_body, client)
        finally:
            self._inflight.discard(task)

    async def _handle(self, req: Request, read_body: BodyReader, client: ClientChannel) -> None:
        snap = self.snapshot
        request_id = req.headers.get("x-request-id") or self._ids.new()
        # Only an auth plugin may say who the consumer is.
        req.headers.remove("x-mse-consumer")
        ex = Exchange(request_id=request_id, request=req)
        if req.path.endswith("/messages"):
            ex.client_protocol = "anthropic"
        chain = _EMPTY_CHAIN

        async def respond_headers(status: int, headers: list[tuple[str, str]]) -> None:
            # A provider's own x-request-id (OpenAI sends one) must not shadow ours.
            headers[:] = [h for h in headers if h[0] != "x-request-id"]
            headers.append(("x-request-id", request_id))
            headers.extend(ex.response_headers)
            if ex.reason is not None:
                headers.append(("x-tollway-reason", ex.reason))
            await client.start(status, headers)

        try:
            if _ambiguous_path(req.path):
                raise BadRequest("the request path has dot segments or an encoded '?' or '#'",
                                 reason="gateway.bad_request")
            route = snap.routes.match(req.method, req.host, req.path)
            if route is None:
                raise NotFound(f"no route for {req.method} {req.path}", reason="gateway.no_route")
            ex.route = route
            chain = snap.chain_for(route, req.host)
            reply = await chain.request_headers(ex)
            if reply is None:
                req.body = await read_body(self.max_body_bytes)
                reply = await chain.request_body(ex)
            if reply is not None:
                await self._send_reply(ex, chain, reply, respond_headers, client)
            elif route.provider_ids:
                await self.proxy.serve(ex, chain, client, snap.route_providers[route.name], respond_headers)
            else:
                raise NotFound(f"route {route.name!r} has no provider", reason="gateway.no_route")
        except GatewayError as err:
            ex.fail(err)
            ex.status = err.status
            if ex.consumer is None and chain is not _EMPTY_CHAIN:
                chain.identify(ex)
            if not client.started:
                await self._send_error(ex, err, client)
        except ClientGone:
            ex.status = 499
            ex.reason = "gateway.client_closed"
        except asyncio.CancelledError:
            if not self._stopping:
                ex.status = 499
                ex.reason = "gateway.client_closed"
                await self._done(ex, chain)
                raise
            await self._cut_by_shutdown(ex, client)
        except Exception as exc:  # a bug must cost one request, not the process
            log.exception("unexpected error serving %s", request_id)
            internal = GatewayError(f"internal gateway error: {type(exc).__name__}", reason="gateway.internal")
            ex.fail(internal)
            ex.status = 500
            if not client.started:
                await self._send_error(ex, internal, client)
        await self._done(ex, chain)

    async def _cut_by_shutdown(self, ex: Exchange, client: ClientChannel) -> None:
        """The shutdown bound ran out on this call: answer it as the gateway's failure."""
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        err = GatewayError("the gateway is shutting down; retry the request", reason="gateway.shutdown",
                           status=503, code="service_unavailable", headers=[("retry-after", "1")])
        ex.error, ex.reason, ex.status = err, err.reason, err.status
        try:
            if not client.started:
                await self._send_error(ex, err, client)
            else:
                await client.finish(render_stream_error(err, ex.client_protocol))
        except Exception:  # the connection may be gone already; the record still counts
            log.debug("could not tell the client about the shutdown", exc_info=True)

    @staticmethod
    async def _send_error(ex: Exchange, err: GatewayError, client: ClientChannel) -> None:
        reply = render_error(err, ex.client_protocol)
        reply.headers.append(("x-request-id", ex.request_id))
        reply.headers.append(("content-length", str(len(reply.body))))
        reply.headers.extend(ex.response_headers)
        await client.start(reply.status, reply.headers)
        await client.finish(reply.body)

    async def _send_reply(
        self,
        ex: Exchange,
        chain: Chain,
        reply: Reply,
        respond_headers: Callable[[int, list[tuple[str, str]]], Awaitable[None]],
        client: ClientChannel,
    ) -> None:
        headers = [
            (k.lower(), v)
            for k, v in reply.headers
            if k.lower() not in ("content-length", "transfer-encoding", "connection")
        ]
        ex.status = reply.status
        await chain.response_headers(ex, reply.status, headers)
        body = await chain.response_body(ex, reply.body)
        headers.append(("content-length", str(len(body))))
        await respond_headers(reply.status, headers)
        await client.finish(body)

    async def _done(self, ex: Exchange, chain: Chain) -> None:
        # Shielded: a client that went away must not stop the accounting of its call.
        # (A shield runs the hooks as a task of their own, so it is skipped when there
        # are none: most chains.)
        if chain.has_done:
            try:
                await asyncio.shield(chain.done(ex))
            except asyncio.CancelledError:
                pass
        self._finish(ex)


def too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"request body is larger than {limit} bytes", reason="gateway.body_too_large")
