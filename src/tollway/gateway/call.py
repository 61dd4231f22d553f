"""One call through the gateway, from route to usage record; the only driver of a call.

    the canonical target and Host ─▶ facts from the path ─▶ route ─▶ chain.request_headers
      ─▶ body (its Content-Encoding undone) ─▶ facts from the body ─▶ chain.request_body
      ─▶ ai-proxy (unless a plugin answered) ─▶ the response phase: chain.response_headers,
    then response_body (a whole answer) or stream_event per batch and stream_end (a
    stream) ─▶ the client ─▶ chain.done ─▶ the usage record

Control goes down once (gateway → chain → proxy → provider transport) and comes back
once, here: the proxy returns the provider's answer; this module alone runs the
response hooks and writes to the client. It knows nothing of the HTTP server
(``edge.py`` adapts it); ``ClientChannel`` is all it writes to.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from tollway.chain import Chain
from tollway.errors import BodyTooLarge, GatewayError, MethodNotAllowed, NotFound
from tollway.exchange import EventSource, Exchange, Reply, Request
from tollway.gateway import facts, target
from tollway.gateway.body import decode as decode_content
from tollway.gateway.channel import ClientChannel, JsonArrayChannel
from tollway.gateway.error_replies import render_error, render_stream_error
from tollway.gateway.unsuspended import run_shielded
from tollway.mcp import jsonrpc
from tollway.mcp.relay import McpRelay
from tollway.mcp.tools import ToolFilter
from tollway.protocols.sse import is_comment, is_terminal

if TYPE_CHECKING:
    from tollway.budgets.enforcer import Budgets
    from tollway.gateway.snapshot import Snapshot
    from tollway.proxy.ai_proxy import AiProxy

log = logging.getLogger("tollway.gateway")

_CONSUMER_SPELLINGS = frozenset(("x-mse-consumer", "x_mse_consumer", "x-mse_consumer", "x_mse-consumer"))

BodyReader = Callable[[int], Awaitable[bytes]]
Finisher = Callable[[Exchange], None]

# Never sent on to the client: hop-by-hop headers, and the framing and identity headers
# this server sets itself.
_DROP_RESPONSE = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "date",
        "server",
    }
)


def _length_of(ex: Exchange, reply: Reply, body: bytes) -> str:
    """The answer's Content-Length: its body's, but for a provider's answer to a HEAD
    (no body by definition), whose own says what a GET's body would be."""
    if not body and ex.request.method == "HEAD":
        given = next((v for k, v in reply.headers if k.lower() == "content-length"), "")
        if given.isascii() and given.isdigit():
            return given
    return str(len(body))


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


# The methods a provider's API takes. Any other (TRACE, CONNECT, a made-up one) is
# refused before anything goes upstream: an upstream or a proxy in front of it that
# honours TRACE echoes the request it got, the organisation's key with it.
_RELAYED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_ALLOW = ", ".join(sorted(_RELAYED_METHODS))


def _drop_consumer_headers(req: Request) -> None:
    """Only an auth plugin may say who the consumer is: X-Mse-Consumer goes, in every
    spelling a server might take for it (names are lower-case already)."""
    headers = req.headers
    if headers.has_any(_CONSUMER_SPELLINGS):
        for name in _CONSUMER_SPELLINGS:
            headers.remove(name)


def _undo_content_encoding(req: Request, limit: int) -> None:
    """The body with its Content-Encoding undone (``gateway.body``); the request then
    says what it carries, as it goes upstream: no Content-Encoding, the decoded length."""
    headers = req.headers
    req.body = decode_content(req.body or b"", headers.get_all("content-encoding"), limit)
    headers.remove("content-encoding")
    if "content-length" in headers:
        headers.set("content-length", str(len(req.body)))


# The largest body of a call refused before its body was read (a 401, a route not
# found) that is still read for its model: the record keeps the model a refused call
# named (SPEC §9), and a body this small is mostly in already; a larger one is not
# waited for, nor parsed for a client that may have no key.
REFUSED_BODY_LIMIT = 64 * 1024
# How long such a body is waited for: one that has not come by then (a client that
# stalls, or waits for ``100 Continue``) is not worth delaying the refusal for.
REFUSED_BODY_WAIT_S = 0.2


async def _read_refused_model(ex: Exchange, read_body: BodyReader) -> None:
    """Read a refused call's small body for its model (see ``REFUSED_BODY_LIMIT``)."""
    req = ex.request
    length = req.headers.get("content-length")
    if req.method != "POST" or "content-encoding" in req.headers or length is None or not length.isdigit():
        return
    if int(length) > REFUSED_BODY_LIMIT or "expect" in req.headers:
        return  # (asking for the body would tell a client waiting for 100 Continue to send it)
    try:
        async with asyncio.timeout(REFUSED_BODY_WAIT_S):
            req.body = await read_body(REFUSED_BODY_LIMIT)
        facts.from_body(ex)
        if ex.api == "mcp":  # and the JSON-RPC method and tool of a refused MCP call
            jsonrpc.read(ex)
    except (GatewayError, ClientGone, TimeoutError):
        pass  # a body that does not come, or names no usable model: the refusal stands


def too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"request body is larger than {limit} bytes", reason="gateway.body_too_large")


async def _one_turn() -> None:
    """Let the event loop take one turn; a cancellation then is ignored (the call's
    accounting goes on)."""
    try:
        await asyncio.sleep(0)
    except asyncio.CancelledError:
        pass


class Gateway:
    """Holds the current snapshot; ``handle`` serves one call on the snapshot it starts with."""

    def __init__(
        self,
        snapshot: Snapshot,
        proxy: AiProxy,
        max_body_bytes: int,
        finish: Finisher,
        mcp: McpRelay,
        budgets: Budgets | None = None,
    ) -> None:
        self.snapshot = snapshot
        # Money budgets and max_parallel (SPEC §10): held after the request plugins,
        # released when the call ends, before its record is made.
        self.budgets = budgets
        self.proxy = proxy
        self.mcp = mcp
        self.max_body_bytes = max_body_bytes
        self._finish = finish
        self._inflight: set[asyncio.Task[None]] = set()
        self._ids = RequestIds()
        self._stopping = False

    def swap(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    @property
    def in_flight(self) -> int:
        """Calls being served now."""
        return len(self._inflight)

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

    async def handle(
        self, req: Request, read_body: BodyReader, client: ClientChannel, task: asyncio.Task[None] | None = None
    ) -> None:
        """Serves one call on the snapshot current at its start, in ``task`` (the
        current one when not given); never raises but for the cancellation of a client
        that went away."""
        if task is None:
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
        _drop_consumer_headers(req)
        ex = Exchange(request_id=request_id, request=req)
        if snap.sampler is not None:  # telemetry on: is this call traced?
            ex.trace = snap.sampler.begin(req.headers)
        chain = snap.no_plugins
        body_asked = False
        try:
            if req.method not in _RELAYED_METHODS:
                raise MethodNotAllowed(f"the gateway does not relay {req.method[:20]!r} requests", _ALLOW)
            try:
                target.settle(req)
            except GatewayError:
                # (A path refused as it stands is still answered in its API's shape:
                # Google's under /v1beta/, Anthropic's under /v1/messages.)
                ex.dialect = facts.client_dialect(req)
                raise
            facts.from_path(ex)
            route = snap.routes.match(req.method, req.host, req.path)
            if route is None:
                raise NotFound(f"no route for {req.method} {req.path}", reason="gateway.no_route")
            ex.route = route
            server = route.mcp_server
            if server is not None:
                ex.api, ex.provider = "mcp", server
            chain = snap.chain_for(route, req.host)
            reply = await chain.request_headers(ex) if chain.on_request_headers else None
            if reply is None:
                body_asked = True
                req.body = await read_body(self.max_body_bytes)
                if "content-encoding" in req.headers:
                    _undo_content_encoding(req, self.max_body_bytes)
                unfit = facts.from_body(ex)
                msg = jsonrpc.read(ex) if server is not None else None
                reply = await chain.request_body(ex) if chain.on_request_body else None
                if reply is None and server is not None and msg is not None:
                    tools = ToolFilter.of(ex.consumer, server)
                    budgets = self.budgets
                    if budgets is not None and ex.consumer is not None and msg.kind == "tools/call":
                        # A tool call runs as long as a model call may: max_parallel counts
                        # it (at no price). The session's other messages, and its
                        # notification stream that stays open, are not "calls in flight".
                        if not budgets.admit_now(ex, snap.upstream_calls):
                            await budgets.admit(ex, snap.upstream_calls)
                    reply = await self.mcp.serve(ex, snap.mcp_servers[server], msg, tools)
                if reply is None:
                    call = ex.upstream_call  # (a plugin's own provider call: chatgpt-proxy's)
                    if call is None and not route.provider_ids and not route.model_providers:
                        raise NotFound(f"route {route.name!r} has no provider", reason="gateway.no_route")
                    if unfit is not None and (ex.upstream_json is None or ex.model_requested is None):
                        # (A plugin that rewrote the body into one naming its model, as
                        # ai-prompt-template does, made it fit.)
                        raise unfit
                    budgets = self.budgets
                    if (
                        budgets is not None
                        and ex.consumer is not None
                        and not budgets.holds(ex)  # (held already: ai-cache's ``admit_early``)
                        and not budgets.admit_now(ex, snap.upstream_calls)
                    ):
                        await budgets.admit(ex, snap.upstream_calls)
                    if call is not None:
                        reply = await call(ex)
                    else:
                        reply = await self.proxy.serve(ex, snap.route_providers[route.name])
            if reply.json_array:
                client = JsonArrayChannel(client)  # (and so for the stream's end, however it ends)
            await self._respond(ex, chain, client, reply)
            if client.gone and not ex.stream_ended:
                # Left before the answer was out, too soon for the watch to cancel the
                # call (a client that closes right after its request): the answer went
                # nowhere, and the record says so. A stream whose last event went out
                # was answered, whatever the client did after it (the OpenAI SDK closes
                # on [DONE]; an MCP notification stream ends by its client closing it).
                raise ClientGone()
            if ex.error is not None and server is not None:
                # A refusal or failure answered as a JSON-RPC error: the record keeps
                # the status it stands for (``tollway.mcp.relay``).
                ex.status = ex.error.status
        except GatewayError as err:
            ex.fail(err)
            ex.status = err.status
            if ex.consumer is None:
                chain.identify(ex)
            if not body_asked and not client.started:
                await _read_refused_model(ex, read_body)
            if not client.started:
                await self._send_error(ex, err, client)
            elif not client.finished:
                await client.finish(render_stream_error(err, ex.dialect, ex.api_path))
        except ClientGone:
            ex.status = 499
            ex.reason = "gateway.client_closed"
        except asyncio.CancelledError:
            if not self._stopping:
                if not ex.stream_ended:
                    # A client that left after the stream's last event (the OpenAI SDK
                    # closes on [DONE]) had the whole answer: the provider's status stands.
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
            elif not client.finished:
                await client.finish(render_stream_error(internal, ex.dialect, ex.api_path))
        await self._done(ex, chain)

    # --- the response phase ---------------------------------------------------------

    async def _respond(self, ex: Exchange, chain: Chain, client: ClientChannel, reply: Reply) -> None:
        """Runs the response hooks on ``reply`` (a plugin's or the provider's) and sends
        it; a streamed reply is relayed event by event, its source always closed."""
        events = reply.events
        try:
            headers = [(name, v) for k, v in reply.headers if (name := k.lower()) not in _DROP_RESPONSE]
            ex.status = reply.status
            if chain.on_response_headers:
                await chain.response_headers(ex, reply.status, headers)
            if events is None:
                ex.reply_body = reply.body
                body = await chain.response_body(ex, reply.body) if chain.on_response_body else reply.body
                headers.append(("content-length", _length_of(ex, reply, body)))
                await self._start(ex, client, reply.status, headers)
                await client.finish(body)
                return
            await self._start(ex, client, reply.status, headers)
            await self._relay(ex, chain, client, events)
        finally:
            if events is not None:
                await events.aclose()

    @staticmethod
    async def _relay(ex: Exchange, chain: Chain, client: ClientChannel, events: EventSource) -> None:
        """The one relay loop: each batch of events as it arrives, through the plugins'
        stream hooks, to the client; never buffered."""
        rewrite = chain.rewrites_stream
        # Asked for by a body field, a form's, a method or none (speech's
        # ``stream_format: sse``): what is relayed as events is a stream to the record.
        ex.stream = True
        try:
            while (batch := await events.next()) is not None:
                if rewrite:
                    try:
                        batch = chain.stream_events(ex, batch)
                    except GatewayError:
                        events.cut()  # (a plugin ended the stream: the call is settled so)
                        raise
                if batch:
                    # The first event proper: a comment (``: keep-alive``) is no token.
                    # (Checked only until then: one attribute test per batch after.)
                    if ex.ttft_ms is None and not all(is_comment(e.raw) for e in batch):
                        ex.ttft_ms = ex.elapsed_ms()
                    await client.write(b"".join([e.raw for e in batch]))
                    if is_terminal(batch[-1].raw):
                        ex.stream_ended = True
            tail = chain.stream_end(ex) if rewrite else []
            await client.finish(b"".join([e.raw for e in tail]))
        except asyncio.CancelledError:
            await events.abandoned()
            raise

    @staticmethod
    async def _start(ex: Exchange, client: ClientChannel, status: int, headers: list[tuple[str, str]]) -> None:
        # A provider's own x-request-id (OpenAI sends one) must not shadow ours.
        headers = [h for h in headers if h[0] != "x-request-id"]
        headers.append(("x-request-id", ex.request_id))
        headers.extend(ex.response_headers)
        if ex.reason is not None:
            headers.append(("x-tollway-reason", ex.reason))
        await client.start(status, headers)

    @staticmethod
    async def _send_error(ex: Exchange, err: GatewayError, client: ClientChannel) -> None:
        if ex.api == "mcp" and err.body is None:
            err.body = jsonrpc.refusal_body(ex, err.message, err.reason, err.status)
        reply = render_error(err, ex.dialect)
        reply.headers.append(("x-request-id", ex.request_id))
        if ex.dialect == "anthropic":
            # Anthropic's SDKs read a call's id (``err.request_id``) from ``request-id``,
            # as Anthropic names it; the gateway's own refusals say it there too.
            reply.headers.append(("request-id", ex.request_id))
        reply.headers.append(("content-length", str(len(reply.body))))
        reply.headers.extend(ex.response_headers)
        await client.start(reply.status, reply.headers)
        await client.finish(reply.body)

    async def _cut_by_shutdown(self, ex: Exchange, client: ClientChannel) -> None:
        """The shutdown bound ran out on this call: answer it as the gateway's failure."""
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        err = GatewayError(
            "the gateway is shutting down; retry the request",
            reason="gateway.shutdown",
            status=503,
            code="service_unavailable",
            headers=[("retry-after", "1")],
        )
        ex.error, ex.reason, ex.status = err, err.reason, err.status
        try:
            if not client.started:
                await self._send_error(ex, err, client)
            elif not client.finished:
                await client.finish(render_stream_error(err, ex.dialect, ex.api_path))
        except Exception:  # the connection may be gone already; the record still counts
            log.debug("could not tell the client about the shutdown", exc_info=True)

    async def _done(self, ex: Exchange, chain: Chain) -> None:
        if chain.has_done:
            # A turn of the event loop before the hooks and one after, as the shield that
            # ran them as a task gave: without them a call's median latency at one
            # connection was ~10% longer (benchmarks/README.md; why is not settled: the
            # answer's write and the next request's read wait for the tail of this call).
            # Each turn costs about a µs; the shield's task cost ~4.6.
            await _one_turn()
            # Shielded: a client that went away must not stop the accounting of its call
            # (without a task of their own when the hooks need not wait: ``unsuspended``).
            try:
                await run_shielded(chain.done(ex))
            except asyncio.CancelledError:
                pass
            await _one_turn()
        budgets = self.budgets
        if budgets is not None:
            # Before the record is made: a rebuild reading the records then finds the
            # call's cost either in the store or in the database, never in both.
            if budgets.settles_at_once:
                budgets.release_now(ex)  # (a call that holds nothing: one lookup)
            elif budgets.holds(ex):
                try:
                    await asyncio.shield(budgets.release(ex))
                except asyncio.CancelledError:
                    pass
        self._finish(ex)
