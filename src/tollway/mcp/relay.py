"""The Streamable HTTP transport relayed to a remote MCP server (SPEC §12).

``serve`` sends the client's request (POST, the GET notification stream, DELETE of a
session) to the server's URL with the server's credentials in place of the client's,
and hands back its answer as it comes: a JSON body whole, an event stream event by
event (``McpEvents``), never buffered. ``Mcp-Session-Id``, ``Mcp-Protocol-Version``,
``Last-Event-ID`` and the server's own headers pass both ways untouched.

A plain answer compressed though the gateway asked for ``identity`` is decoded (and
sent on without its Content-Encoding); a compressed stream, whose events the gateway
cannot read, is the server's failure, as is a server that cannot be reached or that
breaks off a streamed answer: each costs the client one JSON-RPC error for its request
(code -32603, naming the server) and the record status 502 (504 for a timeout), reason
``mcp.upstream_failed``. The error is sent with HTTP status 200 where it answers a
request: every MCP client reads a JSON-RPC error there, while some take any other
status as a broken transport.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from tollway.errors import BadRequest, GatewayError, UpstreamError, UpstreamTimeout
from tollway.exchange import Attempt, Exchange, Reply
from tollway.headers import HOP_BY_HOP, SENDER_SET
from tollway.mcp import jsonrpc, rest_calls
from tollway.mcp.jsonrpc import Message
from tollway.mcp.servers import McpServer
from tollway.mcp.sessions import HEADER, SessionOwners
from tollway.mcp.tools import ToolFilter
from tollway.protocols.sse import EventTooLarge, SseEvent, SseParser
from tollway.state import StateStore
from tollway.upstream import (
    AnswerRefused,
    Transport,
    TransportError,
    TransportTimeout,
    UpstreamRequest,
    UpstreamResponse,
    content_codings,
    read_decoded,
)

log = logging.getLogger("tollway.mcp")

# Never relayed to the server: hop-by-hop headers, what the transport sets, the
# gateway's consumer header (sent as key-auth set it), and client credentials (the
# server's come from the config; a client's key for the gateway is not the server's).
_DROP = HOP_BY_HOP | SENDER_SET | {"proxy-authorization", "x-mse-consumer", "authorization", "x-api-key", "api-key"}
# The GET stream may stay silent for as long as the server has nothing to say.
_LISTEN_IDLE_S = 24 * 3600.0
FAILED = "mcp.upstream_failed"


def _headers(ex: Exchange, server: McpServer) -> list[tuple[str, str]]:
    drop = _DROP | server.header_names | ex.strip_headers
    out = ex.without_credential([(k, v) for k, v in ex.request.headers if k not in drop])
    out.extend(h for h in ex.upstream_headers if h[0] not in server.header_names)
    out.extend(server.headers)
    return out


def _url(ex: Exchange, server: McpServer) -> str:
    query = ex.upstream_query()
    if not query:
        return server.url
    return server.url + ("&" if "?" in server.url else "?") + query


def _failure(ex: Exchange, server: McpServer, exc: TransportError, when: str) -> GatewayError:
    timeout = isinstance(exc, TransportTimeout)
    cls = UpstreamTimeout if timeout else UpstreamError
    if timeout:
        what = "did not answer in time"
    elif when == "connect":
        what = "could not be reached"
    elif isinstance(exc, AnswerRefused):
        what = f"sent what the gateway does not relay ({exc})"
    else:
        what = "broke off"
    err = cls(f"MCP server {server.name!r} {what}", reason=FAILED)
    ex.fail(err)
    ex.status = err.status
    return err


def failure_reply(ex: Exchange, msg: Message, err: GatewayError) -> Reply:
    """A failure answered as the JSON-RPC error of the client's request (see the module)."""
    body = jsonrpc.error_body(msg.reply_id, jsonrpc.INTERNAL_ERROR, err.message, {"reason": err.reason})
    return Reply(200, [("content-type", "application/json")], body)  # (x-tollway-reason: from ex.reason)


def _failed(ex: Exchange, server: McpServer, msg: Message, exc: TransportError) -> Reply:
    """The server's failure with its answer, noted on the exchange: answered to a
    request, raised for anything else (no request waits for an answer)."""
    err = _failure(ex, server, exc, "read")
    if msg.is_request:
        return failure_reply(ex, msg, err)
    raise err from None


class McpRelay:
    """Relays MCP calls over the process's upstream transport."""

    def __init__(self, transport: Transport, state: StateStore | None = None) -> None:
        self.transport = transport
        self.sessions = SessionOwners(state)

    async def serve(self, ex: Exchange, server: McpServer, msg: Message, tools: ToolFilter | None) -> Reply:
        if tools is not None:
            refusal = tools.refusal(ex, msg)
            if refusal is not None:
                return refusal
        req = ex.request
        if HEADER in req.headers:
            if req.headers.repeated(HEADER):
                # The check reads one; a server (or a proxy before it) may read another:
                # a consumer's own first and another's second reached the server.
                raise BadRequest(
                    "the request names more than one MCP session (Mcp-Session-Id given twice)",
                    reason="gateway.bad_request",
                )
            await self.sessions.check(ex, server)
        listen = req.method == "GET"
        upstream = UpstreamRequest(
            method=req.method,
            url=_url(ex, server),
            headers=_headers(ex, server),
            body=req.body or b"",
            headers_timeout=server.timeout_s,
            idle_timeout=_LISTEN_IDLE_S if listen else server.timeout_s,
        )
        t0 = time.perf_counter()
        try:
            resp = await (server.transport or self.transport).send(upstream)
        except TransportError as exc:
            err = _failure(ex, server, exc, "connect")
            ex.attempts.append(Attempt(server.name, err.status, (time.perf_counter() - t0) * 1000, t0, 0, err.reason))
            if msg.is_request:
                return failure_reply(ex, msg, err)
            raise err from None
        ex.attempts.append(Attempt(server.name, resp.status, (time.perf_counter() - t0) * 1000, t0))
        if 300 <= resp.status < 400:
            # Relayed, a redirect would send a client that follows it, with its key for
            # the gateway, wherever the server points, to get an answer no tool filter
            # read: the server's failure (a REST tool follows none either).
            await resp.aclose()
            return _failed(ex, server, msg, AnswerRefused(f"a redirect, HTTP {resp.status}"))
        # What the answer shows of the server's credentials never reaches the client.
        headers = server.secrets.headers(list(resp.headers))
        if resp.status < 400 and HEADER in req.headers:
            await self.sessions.used(ex, server)  # (a session the server has: first use binds it)
        if any(k == HEADER for k, _ in headers):
            await self.sessions.take(ex, server, headers)
        ctype = next((v for k, v in headers if k == "content-type"), "").lower()  # (media types: any case)
        coded = content_codings(headers)
        if ctype.startswith("text/event-stream"):
            if coded:
                # Asked for identity, compressed anyway: no event can be read or relayed.
                await resp.aclose()
                refused = AnswerRefused(f"a stream with Content-Encoding {', '.join(coded)[:40]!r}")
                return _failed(ex, server, msg, refused)
            ex.stream = True
            # The notification stream has no last event: a client closing it is how it
            # ends, not a call cut short.
            ex.stream_ended = listen
            return Reply(resp.status, headers, events=McpEvents(ex, server, resp, msg, tools))
        try:
            body = await read_decoded(resp)
        except TransportError as exc:
            return _failed(ex, server, msg, exc)
        finally:
            await resp.aclose()
        if coded:
            headers = [h for h in headers if h[0] != "content-encoding"]
        if resp.status >= 400 or b'"error"' in body:  # (a JSON-RPC error comes with a 200)
            body = server.secrets.body(body)
        wanted = ctype.startswith("application/json") and (msg.is_request or tools is not None)
        answer = _json(body) if wanted else _NOT_JSON
        if msg.is_request and (resp.status >= 500 or (resp.status < 300 and not _responds(msg, answer))):
            # A failed server, or an answer that is no JSON-RPC response to the request
            # (no JSON, another id): the client would wait for its response in vain.
            what = f"failed with HTTP {resp.status}" if resp.status >= 500 else "answered no JSON-RPC response to it"
            err = UpstreamError(f"MCP server {server.name!r} {what}", reason=FAILED)
            ex.fail(err)
            ex.status = err.status
            return failure_reply(ex, msg, err)
        if answer is not _NOT_JSON and (msg.is_request or tools is not None):
            body = _answered(ex, msg, tools, body, answer)
        if server.rest:
            if msg.kind == "tools/call" and rest_calls.take(ex, server.name, answer):
                # The REST call recorded, its note taken out of what the agent gets.
                body = orjson.dumps({**answer, "id": msg.reply_id})
            else:
                # No request reached the REST service (initialize, tools/list, arguments
                # refused): the in-process exchange is no attempt of the record's.
                ex.attempts.pop()
        return Reply(resp.status, headers, body)


# What ``_json`` answers for a body that is no JSON (``None`` is JSON's null).
_NOT_JSON: Any = object()


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return _NOT_JSON


def _responds(msg: Message, answer: Any) -> bool:
    """Whether a plain answer to ``msg`` (a request), parsed, is its JSON-RPC response:
    an object with ``msg``'s id and a result or an error."""
    return type(answer) is dict and answer.get("id") == msg.id and ("result" in answer or "error" in answer)


def _answered(ex: Exchange, msg: Message, tools: ToolFilter | None, body: bytes, answer: Any) -> bytes:
    """A JSON answer (``body``, parsed): the outcome of the client's request noted, and
    any tool list filtered for the consumer."""
    if msg.is_request:
        _note(ex, answer)
    if tools is not None:
        filtered = tools.filter_list(answer, msg)
        if filtered is not None:
            return orjson.dumps(filtered)
    return body


def _note(ex: Exchange, answer: Any) -> None:
    outcome = jsonrpc.outcome_of(answer)
    if outcome is not None and ex.reason is None:
        ex.reason = outcome


class McpEvents:
    """A server's event stream, relayed as it comes: the answer to a POST (progress and
    other notifications, then the response) or the GET notification stream.

    Each event is passed on unchanged but for a tool list a consumer may see only part
    of. When the server breaks off a POST's stream before its response came, the stream
    ends with a JSON-RPC error for the request (see the module)."""

    __slots__ = ("_answered", "_chunks", "_done", "_ex", "_msg", "_parser", "_resp", "_resumable", "_server", "_tools")

    def __init__(
        self, ex: Exchange, server: McpServer, resp: UpstreamResponse, msg: Message, tools: ToolFilter | None
    ) -> None:
        self._ex = ex
        self._server = server
        self._resp = resp
        self._msg = msg
        self._tools = tools
        self._parser = SseParser()
        self._chunks = resp.chunks().__aiter__()
        self._answered = False
        # An event with an id: the client may resume the stream (Last-Event-ID) rather
        # than take its end as a failure.
        self._resumable = False
        self._done = False

    async def next(self) -> list[SseEvent] | None:
        if self._answered:
            # The batch with the response to the client's request was written before
            # this call: the call was answered, whatever the client does next (SDKs
            # close the stream once they have the response, before the chunked end).
            self._ex.stream_ended = True
        if self._done:
            return None
        try:
            chunk = await self._chunks.__anext__()
        except StopAsyncIteration:
            self._done = True
            return self._look(self._parser.flush()) + self._unanswered(None)
        except TransportError as exc:
            self._done = True
            return self._unanswered(exc)
        try:
            return self._look(self._parser.feed(chunk))
        except EventTooLarge as exc:
            # Not relayed in part: the client could not read what it got.
            self._done = True
            return self._unanswered(AnswerRefused(str(exc)))

    def _look(self, events: list[SseEvent]) -> list[SseEvent]:
        """Notes the response to the client's request when it passes (its outcome, and a
        tool list filtered for the consumer)."""
        msg = self._msg
        tools = self._tools
        waiting = msg.is_request and not self._answered
        if not waiting and tools is None and not self._server.secrets.any:
            return events
        unreadable: list[int] = []
        for i, event in enumerate(events):
            raw = event.raw
            if b'"error"' in raw:  # what a server's error says of its credentials: taken out
                events[i] = event = SseEvent(self._server.secrets.body(raw))
            if tools is not None and b'"tools"' in raw:
                # Any tool list, on any stream (a GET stream's replay included): only
                # the allowed tools, the event's id and name kept.
                message = event.json()
                if not isinstance(message, dict):
                    # One the filter cannot read (not UTF-8 JSON, a batch array, a byte
                    # order mark): not relayed, since a client may read it all the same
                    # (a Latin-1 list of every tool reached a consumer held to one).
                    unreadable.append(i)
                    continue
                filtered = tools.filter_list(message, msg)
                if filtered is not None:
                    events[i] = event.with_data(orjson.dumps(filtered))
            if not waiting:
                continue
            if raw.startswith(b"id:") or b"\nid:" in raw:
                self._resumable = True
            if b'"id"' not in raw:
                continue
            message = event.json()
            if not isinstance(message, dict) or message.get("id") != msg.id or "method" in message:
                continue
            self._answered, waiting = True, False
            _note(self._ex, message)
        if unreadable:
            log.warning(
                "MCP server %r sent an event naming tools that could not be read; not relayed", self._server.name
            )
            return [event for i, event in enumerate(events) if i not in unreadable]
        return events

    def _unanswered(self, exc: TransportError | None) -> list[SseEvent]:
        """The stream ended: a request still waiting for its response gets an error."""
        ex = self._ex
        if self._answered:
            return []  # the client has its answer: what follows cannot take it away
        if not self._msg.is_request:
            if exc is not None:  # the notification stream broke: no request to answer
                _failure(ex, self._server, exc, "read")
            return []
        if exc is None:
            if self._resumable:
                return []
            err: GatewayError = UpstreamError(
                f"MCP server {self._server.name!r} ended its answer without a response", reason=FAILED
            )
            ex.fail(err)
            ex.status = err.status
        else:
            err = _failure(ex, self._server, exc, "read")
        body = jsonrpc.error(self._msg.reply_id, jsonrpc.INTERNAL_ERROR, err.message, {"reason": err.reason})
        return [SseEvent.of_json(body)]

    async def abandoned(self) -> None:
        await self._resp.aclose()

    def cut(self) -> None:
        return  # (a tool call has no tokens to settle; the connection closes with aclose)

    async def aclose(self) -> None:
        await self._resp.aclose()
