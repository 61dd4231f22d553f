"""One HTTP/1.1 connection: uvicorn's httptools protocol with the edge's limits (SPEC §14).

uvicorn bounds neither the size of a request head nor the time it takes to arrive, and
does not count connections. ``EdgeConnection`` adds the bounds, one connection at a time:

    accepted ─ ``max_connections`` already open, or ``max_connections_per_client`` from
       │       the same peer address: a 503, closed at once, nothing parsed
       │
    head ───── over ``max_header_bytes`` (request line and headers, counted as the bytes
       │       arrive, before the parser buffers any of them) or ``max_headers`` lines:
       │       431; not all in within ``header_timeout_s`` of the connection's start (or,
       │       on a kept-alive connection, of its first byte): closed without an answer
    body ───── silent for ``body_timeout_s``: the app's ``receive()`` answers
       │       ``BODY_TIMEOUT`` (the gateway answers 408 and records the call);
       │       ``max_header_bytes`` in a row without body data (chunk trailers or
       │       extensions, which nothing reads): the input is dropped from there and
       │       ``receive()`` answers ``BODY_REFUSED`` (a 400, recorded; closed when no
       │       answer could be given any more). Trailers are dropped.
    answer ─── the client takes nothing of it for ``body_timeout_s``: closed (a client
       │       that stops reading must not hold the call and its provider connection)
    idle ───── ``keepalive_timeout_s`` (uvicorn's own timer): closed

A head refused here (431, 400, 417, 501, 505) is handed to ``record_refusal`` (the
gateway listener's: the usage recorder), which makes it a usage record of its own. It
costs a record at most once per connection: the connection ends with the refusal.

An answer sent before the request's body was all in (a refusal, a 431) ends the
connection with a lingering close: the rest of the input is dropped unparsed until the
client has been quiet for ``LINGER_S`` (``LINGER_MAX_S`` at most), then the socket is
closed, so a client still sending reads the answer instead of a reset.

The plain path (a head, and its body if any, in one read) pays a few attribute checks
and no timer: a clock is armed only when a head or a body spans reads.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, cast

import httptools
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string
from uvicorn.server import ServerState

from tollway import deadlines
from tollway.gateway.edge import BODY_REFUSED, BODY_TIMEOUT, CLIENT_GONE, LOOP
from tollway.protocols.openai.wire import error_body

if TYPE_CHECKING:
    from collections.abc import Iterable

    from uvicorn._types import ASGIReceiveEvent, ASGISendEvent, HTTPRequestEvent

log = logging.getLogger("tollway.connection")

# The methods the gateway relays (``gateway.call``'s), for a CONNECT's 405.
_ALLOW = b"DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"
# The response headers that frame the answer (``ResponseCycle._head``).
_FRAMING = frozenset((b"content-length", b"transfer-encoding", b"connection"))

# How long a connection answered before its request was all in keeps dropping input:
# until the client has been quiet this long, and at most the second bound.
LINGER_S = 2.0
LINGER_MAX_S = 30.0
# Requests one connection may queue behind the answer in progress (HTTP/1.1 pipelining,
# which few clients use): each costs its parsed head and a task; past it the connection
# ends once the queued ones are answered.
MAX_PIPELINED = 16
# The admin listener's own bound: a few operators, a dashboard, a metrics scraper.
ADMIN_MAX_CONNECTIONS = 64
# Descriptors kept back from client connections: the database, Redis, idle provider
# connections, log files, the listening sockets, the admin listener's connections.
RESERVED_FDS = 128 + ADMIN_MAX_CONNECTIONS
# The smallest head a request line and headers of this size could have come from: the
# method, " ", " HTTP/1.1\r\n", and ": " and "\r\n" per header line.
_REQUEST_LINE_MIN = 14
_HEADER_LINE_MIN = 4


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    """``server.*`` of the config, as one listener applies them."""

    max_header_bytes: int
    max_headers: int
    header_timeout_s: float
    body_timeout_s: float
    max_connections: int
    # From one peer address (0: no bound of its own).
    max_connections_per_client: int = 0


def derived_max_connections(fd_limit: int | None = None) -> int:
    """``server.max_connections`` when the config leaves it out: half the descriptors left
    after ``RESERVED_FDS``, since a client connection may hold a provider connection
    while its call is in flight. ``fd_limit``: the process's soft RLIMIT_NOFILE."""
    if fd_limit is None:
        fd_limit, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if fd_limit == resource.RLIM_INFINITY:
            fd_limit = 1 << 20
    return max(16, (fd_limit - RESERVED_FDS) // 2)


class Refusals:
    """What one listener refused (``what``: the connections past its bound, the requests
    that are not HTTP), told to the log at most once every ``LOG_EVERY_S`` (a flood must
    not become a flood of log lines); refusals held back are told when that time is up,
    even if no other refusal comes."""

    LOG_EVERY_S = 10.0
    AT_BOUND = "refused %d connection(s) at its bound of %s open connections"
    AT_CLIENT_BOUND = "refused %d connection(s) at its bound of %s open connections from one address"
    NOT_HTTP = "answered %d request(s) that were not valid HTTP/1.1 with a 400 (the last: %s)"

    def __init__(self, name: str, what: str = AT_BOUND) -> None:
        self.name = name
        self.what = what
        self.total = 0
        self._unlogged = 0
        self._logged_at = float("-inf")
        self._later: asyncio.TimerHandle | None = None

    def note(self, now: float, bound: object, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.total += 1
        self._unlogged += 1
        if now - self._logged_at >= self.LOG_EVERY_S:
            self._tell(now, bound)
        elif loop is not None and self._later is None:
            wait = self._logged_at + self.LOG_EVERY_S - now
            self._later = loop.call_later(wait, lambda: self._tell(loop.time(), bound))

    def _tell(self, now: float, bound: object) -> None:
        if self._later is not None:
            self._later.cancel()
            self._later = None
        if not self._unlogged:
            return
        log.warning("%s listener: " + self.what, self.name, self._unlogged, bound)
        self._unlogged = 0
        self._logged_at = now


# Takes a request the edge refused: its status, reason, request id and the peer's address.
RecordRefusal = Callable[[int, str, str, str], None]


def connection_class(
    limits: EdgeLimits, name: str = "gateway", record_refusal: RecordRefusal | None = None
) -> type[EdgeConnection]:
    """The protocol class one uvicorn server (``name``: the listener, for the log) builds
    its connections with; ``record_refusal``: what a head refused here is handed to."""
    namespace = {
        "limits": limits,
        "refusals": Refusals(name),
        "client_refusals": Refusals(name, Refusals.AT_CLIENT_BOUND),
        "by_peer": {},
        "not_http": Refusals(name, Refusals.NOT_HTTP),
        "record_refusal": record_refusal,
    }
    return cast("type[EdgeConnection]", type("EdgeConnection", (EdgeConnection,), namespace))


@dataclass(frozen=True, slots=True)
class EdgeAnswer:
    """An error answer the connection writes itself (no app saw the request): ``wire``,
    and what its usage record keeps."""

    status: int
    reason: str
    request_id: str
    wire: bytes


def _answer(status: int, message: str, code: str, reason: str, extra: bytes = b"") -> EdgeAnswer:
    """A whole error answer in the OpenAI error shape; the connection closes after it."""
    body = error_body(status, message, code)
    request_id = os.urandom(12).hex()
    wire = b"".join(
        [
            STATUS_LINE[status],
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"x-request-id: %s\r\n" % request_id.encode(),
            b"x-tollway-reason: %s\r\n" % reason.encode(),
            extra,
            b"connection: close\r\n\r\n",
            body,
        ]
    )
    return EdgeAnswer(status, reason, request_id, wire)


# ``_unmet`` when a Transfer-Encoding other than ``chunked`` was seen: the whole head
# decides the answer (``_coding_refusal``).
_CODING_UNREAD = EdgeAnswer(0, "", "", b"")


def _quoted(value: bytes) -> str:
    text = value.decode("latin-1")
    return repr(text if len(text) <= 64 else text[:64] + "…")


def _coding_refusal(headers: list[tuple[bytes, bytes]]) -> EdgeAnswer:
    """The answer to a request body sent in a transfer coding other than chunked alone.
    Chunked not last: the body's end cannot be found, a 400 (RFC 9112 6.3). Chunked
    last, after another coding (``gzip, chunked``): the gateway does not decode it, a
    501 (RFC 9112 6.1). Either way the connection ends (nothing after it can be framed).
    (llhttp itself refuses some of these, ``chunked,`` among them, as not HTTP/1.1.)"""
    value = b", ".join(v for k, v in headers if k == b"transfer-encoding")
    codings = [c.strip() for c in value.lower().split(b",")]
    if codings[-1] != b"chunked" or codings.count(b"chunked") > 1 or b"" in codings:
        return _answer(400, f"the request is not valid HTTP/1.1: its Transfer-Encoding {_quoted(value)} does not "
                       "end in one chunked", "invalid_request_error", "gateway.bad_request")  # fmt: skip
    message = f"the request's Transfer-Encoding {_quoted(value)} is not supported; send the body with " \
              "Content-Length or Transfer-Encoding: chunked alone"  # fmt: skip
    return _answer(501, message, "not_implemented", "gateway.unsupported_transfer_coding")


def _expectation_failed(value: bytes) -> EdgeAnswer:
    """RFC 9110 10.1.1: an expectation other than 100-continue cannot be met: 417."""
    message = f"the request's Expect {_quoted(value)} cannot be met; only Expect: 100-continue is supported"
    return _answer(417, message, "expectation_failed", "gateway.expectation_failed")


class _HeadRefused(Exception):
    """Raised from a parser callback to stop the parser: the head was refused."""


class ResponseCycle(RequestResponseCycle):
    """uvicorn's request cycle with a leaner ``send()``, as uvicorn's in all it answers.

    Two things cost uvicorn's a fair share of a call: two regular-expression scans per
    response header (here two per response: the names joined by a character a name may
    hold, the values by one a value may hold, so neither join can hide or make a bad
    byte), and two writes per answer, the head and then the body: two system calls and
    two TCP segments. Here the head waits for the body's first part and goes out with
    it in one write; if the app sends no body part in the same loop turn (a stream whose
    first event is not in yet), the head is written on the next turn, so a client never
    waits for headers longer than the gateway does."""

    _held: bytes | None = None
    # The connection's loop (the edge sets it on each cycle: asking asyncio for the running
    # loop is a getpid() system call on Python 3.11); None: asked.
    loop: asyncio.AbstractEventLoop | None = None
    # The server's state, whose headers (``Date``, renewed each second) the answer takes
    # as it starts (the edge sets it); None: those of the request's arrival, as uvicorn
    # does, which dated an answer made 20 s later 20 s early (a judge's finding).
    state: ServerState | None = None
    # Whether the connection, not this cycle, ends a connection whose answer went out
    # before the request's body was all in (the edge's lingering close).
    _lingers = False
    # An answer of unknown length to an HTTP/1.0 client: no chunked framing (RFC 9112
    # 6.1: never a Transfer-Encoding to HTTP/1.0), the body ends when the connection does.
    _unframed = False

    async def send(self, message: ASGISendEvent) -> None:
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if not self.response_started:
            if message["type"] != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', but got '{message['type']}'.")
            self.response_started = True
            self.waiting_for_100_continue = False
            self._held = self._head(message["status"], message.get("headers", ()))
            (self.loop or asyncio.get_running_loop()).call_soon(self._write_held)
            return
        if self.response_complete:
            raise RuntimeError(f"Unexpected ASGI message '{message['type']}' sent, after response already completed.")
        if message["type"] != "http.response.body":
            raise RuntimeError(f"Expected ASGI message 'http.response.body', but got '{message['type']}'.")
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        if self.scope["method"] == "HEAD":
            self.expected_content_length = 0
            out = b""
        elif self.chunked_encoding:
            out = b"%x\r\n%b\r\n" % (len(body), body) if body else b""
            if not more_body:
                out += b"0\r\n\r\n"
        else:
            if len(body) > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            self.expected_content_length -= len(body)
            out = body
        held = self._held
        if held is not None:
            self._held = None
            out = held + out
        if out:
            self.transport.write(out)
        if not more_body:
            if self.expected_content_length != 0 and not self._unframed:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive and not (self.more_body and self._lingers):
                self.transport.close()
            self.on_response()

    def _write_held(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self.disconnected:
                self.transport.write(held)

    def _head(self, status: int, given: Iterable[tuple[bytes, bytes]]) -> bytes:
        if self.more_body and self._lingers:
            # Answered before the request's body is all in (a 413, a 401 not waiting for
            # it): the edge ends the connection after this answer, with a lingering
            # close, so the answer says so. A client that was not told would send its
            # next request on a connection the gateway no longer reads.
            self.keep_alive = False
        state = self.state
        headers = [*(self.default_headers if state is None else state.default_headers), *given]
        if HEADER_RE.search(b"-".join([n for n, _ in headers])):
            raise RuntimeError("Invalid HTTP header name.")
        if HEADER_VALUE_RE.search(b"\t".join([v for _, v in headers])):
            raise RuntimeError("Invalid HTTP header value.")
        if self.access_log:
            self.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(self.scope),
                self.scope["method"],
                get_path_with_query_string(self.scope),
                self.scope["http_version"],
                status,
            )
        content = [STATUS_LINE[status]]
        has_connection_close = False
        for name, value in headers:
            name = name.lower()
            # One set lookup for the three names that frame the answer (most are none).
            if name in _FRAMING:
                if name == b"content-length":
                    if self.chunked_encoding is None:
                        self.expected_content_length = int(value.decode())
                        self.chunked_encoding = False
                elif name == b"transfer-encoding":
                    if value.lower() == b"chunked":
                        self.expected_content_length = 0
                        self.chunked_encoding = True
                elif b"close" in [token.lower().strip() for token in value.split(b",")]:
                    self.keep_alive = False
                    has_connection_close = True
            content += (name, b": ", value, b"\r\n")
        if self.chunked_encoding is None and self.scope["method"] != "HEAD" and status not in (204, 304):
            # Neither Content-Length nor Transfer-Encoding given (a stream).
            if self.scope["http_version"] == "1.0":
                self.chunked_encoding = False
                self._unframed = True
                self.expected_content_length = sys.maxsize
                self.keep_alive = False
            else:
                self.chunked_encoding = True
                content.append(b"transfer-encoding: chunked\r\n")
        if not self.keep_alive and not has_connection_close:
            content.append(b"connection: close\r\n")
        content.append(b"\r\n")
        return b"".join(content)


class _Cycle(ResponseCycle):
    """The edge's request cycle, whose ``receive()`` answers ``BODY_TIMEOUT`` once the
    connection's body clock ran out before the body was all in, and ``BODY_REFUSED``
    once the connection stopped reading a body it cannot frame within its bounds."""

    # What ``receive()`` answers instead of the rest of the body (None: the body comes).
    # Set on the instance at its creation: on Python 3.11 an attribute read through the
    # instance that is found on the class is not specialised, and this one is read on
    # every receive().
    refusal: ASGIReceiveEvent | None
    _lingers = True

    async def receive(self) -> ASGIReceiveEvent:
        # As uvicorn's RequestResponseCycle.receive, but for the timeout.
        if self.waiting_for_100_continue and not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.waiting_for_100_continue = False
        if not self.disconnected and not self.response_complete and self.refusal is None:
            self.flow.resume_reading()
            await self.message_event.wait()
            self.message_event.clear()
        if self.disconnected or self.response_complete:
            return {"type": "http.disconnect"}
        if self.refusal is not None and self.more_body:
            return self.refusal
        message: HTTPRequestEvent = {"type": "http.request", "body": bytes(self.body), "more_body": self.more_body}
        self.body = bytearray()
        return message


class EdgeConnection(HttpToolsProtocol):
    """See the module's docstring; ``connection_class`` binds the limits."""

    # Slots: uvicorn's ~30 attributes fill the instance dict's shared keys; more keys
    # there would slow every attribute access of uvicorn's own code.
    __slots__ = (
        "_admitted",
        "_began",
        "_chunked",
        "_clock",
        "_deadlines",
        "_dropping",
        "_head_left",
        "_in_head",
        "_linger_end",
        "_max_head",
        "_max_headers",
        "_pending",
        "_rx_at",
        "_since_data",
        "_stall",
        "_trailers",
        "_uncounted",
        "_unmet",
    )

    limits: ClassVar[EdgeLimits]
    refusals: ClassVar[Refusals]
    client_refusals: ClassVar[Refusals]
    # Open connections by peer address, where ``max_connections_per_client`` bounds them.
    by_peer: ClassVar[dict[str, int]]
    not_http: ClassVar[Refusals]
    record_refusal: ClassVar[RecordRefusal | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._admitted = False
        # The peer address counted in ``by_peer`` (None: not counted).
        self._peer: str | None = None
        # Waiting for, or reading, a request head (until its headers are complete).
        self._in_head = True
        # The parser has begun the current head.
        self._began = False
        # The hot path reads the limit from a slot: ``self.limits`` is found on the class,
        # which Python 3.11 does not specialise.
        self._max_head = self.limits.max_header_bytes
        self._max_headers = self.limits.max_headers
        # Bytes the current head may still have.
        self._head_left = self._max_head
        # Part of the current head came in the read that ended the previous request, and
        # was not counted: its size is checked from the parsed head instead.
        self._uncounted = False
        # Input is no longer parsed (the connection is ending).
        self._dropping = False
        # A 431 waiting for the answer in progress on this connection to finish.
        self._pending: bytes | None = None
        # The answer to a head that asks what the gateway cannot do (an expectation other
        # than 100-continue; ``_CODING_UNREAD``: a transfer coding to judge at its end).
        # Never reset: the connection ends with it.
        self._unmet: EdgeAnswer | None = None
        # The current head said Transfer-Encoding: chunked (checked against its version).
        self._chunked = False
        # The head clock, the body clock, or the end of a lingering close.
        self._clock: asyncio.TimerHandle | None = None
        # Runs while the client takes nothing of what we write.
        self._stall: asyncio.TimerHandle | None = None
        # When body bytes (or, lingering, any bytes) last arrived.
        self._rx_at = 0.0
        # Bytes read in the body since the parser last found body data in them: chunk
        # framing, and what nothing reads (trailers, chunk extensions).
        self._since_data = 0
        # The trailer lines of the current request's chunked body, as the parser saw them.
        self._trailers = 0
        # When a lingering close ends whatever the client does.
        self._linger_end = 0.0
        self._deadlines = deadlines.for_loop(self.loop)

    # --- the connection -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        limits = self.limits
        if len(self.connections) >= limits.max_connections:
            # Refused before it costs anything: never counted, never parsed.
            self.refusals.note(self.loop.time(), limits.max_connections, self.loop)
            self._turn_away(transport, "the gateway has too many open connections; retry shortly")
            return
        if limits.max_connections_per_client:
            peer = transport.get_extra_info("peername")
            address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
            held = self.by_peer.get(address, 0)
            if held >= limits.max_connections_per_client:
                self.client_refusals.note(self.loop.time(), limits.max_connections_per_client, self.loop)
                self._turn_away(transport, "this client has too many open connections; retry shortly")
                return
            self.by_peer[address] = held + 1
            self._peer = address
        self._admitted = True
        super().connection_made(transport)
        self._clock = self.loop.call_later(self.limits.header_timeout_s, self._head_clock_ran_out)

    def _turn_away(self, transport: asyncio.Transport, message: str) -> None:
        self._dropping = True
        answer = _answer(503, message, "service_unavailable", "gateway.too_many_connections", b"retry-after: 1\r\n")
        transport.write(answer.wire)
        transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        peer = self._peer
        if peer is not None:
            self._peer = None
            held = self.by_peer.get(peer, 1) - 1
            if held > 0:
                self.by_peer[peer] = held
            else:
                self.by_peer.pop(peer, None)
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # The app's channel reads it (``gone``): a call whose answer never got out,
            # however quickly it ran, is recorded as one whose client left.
            cycle.scope[CLIENT_GONE] = True  # type: ignore[literal-required]
        self._cancel_clock()
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        if self._admitted:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._dropping:
            self._rx_at = self.loop.time()
            return
        if self._in_head:
            if not self._began:
                self._uncounted = False
            if len(data) > self._head_left:
                self._receive_past_head_budget(data)
                return
            self._head_left -= len(data)
        else:
            self._rx_at = self.loop.time()
            self._since_data += len(data)  # (``on_body`` sets it back to 0)
        self._feed(data)
        if self._clock is None and (self._began or not self._in_head):
            self._arm_clock()
        if not self._in_head and self._since_data > self._max_head and not self._dropping:
            self._refuse_body(f"the request body's chunk extensions or trailers are larger than {self._max_head} bytes")

    def _feed(self, data: bytes) -> None:
        # As uvicorn's data_received; an Upgrade is served as plain HTTP (no WebSocket here).
        idle = self.timeout_keep_alive_task is not None
        if idle:
            self._unset_keepalive_if_required()
            before = self.cycle
        try:
            self.parser.feed_data(data)
            if idle and self.cycle is before and not self._began and self._clock is None:
                # Bytes that begin no request (the parser skips a bare CRLF) took the idle
                # timer away: the next head is now due within header_timeout_s.
                self._arm_clock()
        except httptools.HttpParserError as exc:
            if self._dropping:  # we stopped the parser: the head was refused
                return
            self._not_http(str(exc) or type(exc).__name__)
        except httptools.HttpParserUpgrade:
            log.debug("an Upgrade request is served as plain HTTP")

    def _receive_past_head_budget(self, data: bytes) -> None:
        """``data`` holds more than the current head may still have: the parser gets only
        what the head may have, and the head is refused unless it ended within it."""
        left = self._head_left
        self._head_left = 0
        if left:
            self._feed(data[:left])
            if self._dropping or self.transport.is_closing():
                return
        if self._in_head and self._head_left == 0:
            self._refuse_head(f"the request line and headers are larger than {self._max_head} bytes")
            return
        # The head ended: the rest is its body, or the next request.
        self.data_received(data[left:])

    def _busy(self) -> bool:
        """An answer is in progress (or queued) on this connection."""
        return self.cycle is not None and not self.cycle.response_complete

    # --- parser callbacks ---------------------------------------------------------------

    # The parser callbacks below are uvicorn's, written out rather than reached through
    # super(): they run for every request, and the extra call is a measurable part of it.

    def on_message_begin(self) -> None:
        self._began = True
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self.scope = {
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "root_path": self.root_path,
            "headers": self.headers,
            "state": self.app_state.copy(),
            LOOP: self.loop,  # type: ignore[misc]
        }

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            # A chunked body's trailer: nothing reads those, and they are bounded as the
            # head is. (Counted here too: trailers that came in one read with the body's
            # end passed the per-read count whole, up to twice the bound.)
            self._trailers += len(name) + len(value) + _HEADER_LINE_MIN
            if self._trailers > self._max_head and not self._dropping:
                self._refuse_body(
                    f"the request body's chunk extensions or trailers are larger than {self._max_head} bytes"
                )
                raise _HeadRefused
            return
        name = name.lower()
        # llhttp keeps trailing whitespace, which is not part of the value (RFC 9110 5.5).
        value = value.rstrip(b" \t")
        if name == b"expect":
            if value.lower() == b"100-continue":
                self.expect_100_continue = True
            else:
                self._unmet = _expectation_failed(value)
        elif name == b"transfer-encoding" and self._unmet is None:
            # Judged on the whole head (the field may repeat, and HTTP/1.0 has none).
            if value.lower() != b"chunked":
                self._unmet = _CODING_UNREAD
            else:
                self._chunked = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = self._began = False
        self._since_data = self._trailers = 0
        if self._clock is not None:
            self._cancel_clock()
        if self._unmet is not None:
            self._refuse(_coding_refusal(self.headers) if self._unmet is _CODING_UNREAD else self._unmet)
            raise _HeadRefused
        if len(self.headers) > self._max_headers:
            self._refuse_head(f"the request has more than {self._max_headers} header fields")
            raise _HeadRefused
        if self._uncounted and self._parsed_head_size() > self._max_head:
            self._refuse_head(f"the request line and headers are larger than {self._max_head} bytes")
            raise _HeadRefused
        # From here on as uvicorn's, with our cycle (and neither WebSocket nor
        # limit_concurrency, which this server does not use).
        http_version = self.parser.get_http_version()
        self.scope["method"] = self.parser.get_method().decode("ascii")
        if http_version != "1.1":
            if http_version != "1.0":  # HTTP/0.9 (a request line without a version): llhttp takes it
                self._refuse(_answer(505, f"HTTP/{http_version} is not supported; send HTTP/1.1",
                                     "http_version_not_supported", "gateway.bad_request"))  # fmt: skip
                raise _HeadRefused
            if self._chunked:  # RFC 9112 6.1: a Transfer-Encoding in HTTP/1.0 is faulty framing
                self._refuse(_answer(400, "the request is not valid HTTP/1.1: HTTP/1.0 has no Transfer-Encoding",
                                     "invalid_request_error", "gateway.bad_request"))  # fmt: skip
                raise _HeadRefused
            self.scope["http_version"] = http_version
        elif self._chunked:
            self._chunked = False
        if self.scope["method"] == "CONNECT":
            # Its target is a host and port (authority-form), no URL: the parser's URL
            # reader failed inside this callback ("User callback error"). No tunnel here.
            self._refuse(_answer(405, "the gateway does not relay 'CONNECT' requests", "method_not_allowed",
                                 "gateway.method_not_allowed", b"allow: " + _ALLOW + b"\r\n"))  # fmt: skip
            raise _HeadRefused
        parsed_url = httptools.parse_url(self.url)
        # An absolute-form target (``http://host/path``) keeps its scheme and host in
        # ``raw_path``: the gateway's target check holds its host to the Host header.
        raw_path = parsed_url.path if self.url[:1] == b"/" else self.url.partition(b"?")[0]
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        self.scope["path"] = self.root_path + path
        self.scope["raw_path"] = self.root_path.encode("ascii") + raw_path
        self.scope["query_string"] = parsed_url.query or b""
        existing = self.cycle
        if len(self.pipeline) >= MAX_PIPELINED and existing is not None and not existing.response_complete:
            # One read can hold thousands of small requests, all parsed before the loop
            # turns: past MAX_PIPELINED queued, this one is not taken, the parser stops,
            # the queued ones are answered, and the connection ends.
            log.debug("closing a connection that pipelined over %d requests", MAX_PIPELINED)
            self._dropping = True
            self._pending = b""  # nothing more to say once the queue is answered
            raise _HeadRefused
        cycle = self.cycle = _Cycle(
            scope=self.scope,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=self.expect_100_continue,
            keep_alive=http_version != "1.0" and self.parser.should_keep_alive(),
            on_response=self.on_response_complete,
        )
        cycle.refusal = None
        cycle.loop = self.loop
        cycle.state = self.server_state
        if existing is None or existing.response_complete:
            self._start_asgi_task(cycle, self.app)
        else:
            # Pipelined: queued behind the answer in progress. One read can hold thousands
            # of small requests, all parsed before the loop turns: past MAX_PIPELINED the
            # parser stops, the queued ones are answered, and the connection ends.
            self.flow.pause_reading()
            self.pipeline.appendleft((cycle, self.app))

    def _parsed_head_size(self) -> int:
        """A lower bound of the head's size on the wire, from what the parser kept."""
        return _REQUEST_LINE_MIN + len(self.url) + sum(len(k) + len(v) + _HEADER_LINE_MIN for k, v in self.headers)

    def on_body(self, body: bytes) -> None:
        self._since_data = 0
        cycle = self.cycle
        if cycle.response_complete:
            return
        cycle.body += body
        if len(cycle.body) > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        cycle.message_event.set()

    def on_message_complete(self) -> None:
        self._in_head = True
        self._head_left = self._max_head
        self._uncounted = True
        if self._clock is not None:
            self._cancel_clock()
        if not self.cycle.response_complete:
            self.cycle.more_body = False
            self.cycle.message_event.set()

    def on_response_complete(self) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        if self.pipeline and self.cycle.response_complete:
            # Requests queued before whatever ended the connection are answered first.
            if self.timeout_keep_alive_task is not None:
                self._unset_keepalive_if_required()
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        if not self._in_head or self._pending is not None:
            # Answered before its body was all in (the rest is not worth reading), or a
            # 431 waits for this answer: the connection ends once the last answer is out.
            if self.cycle.response_complete:
                if self._pending:
                    self.transport.write(self._pending)
                self._pending = None
                self._linger()
                return
        if self.timeout_keep_alive_task is not None:
            self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        elif self._began and self._clock is None:
            # The next head began while this answer went out: its clock starts now.
            self._arm_clock()
        else:
            # Armed after every answer and disarmed by the next request: a deadline of
            # the loop's, not a timer each time (``tollway.deadlines``; it has the
            # ``cancel()`` uvicorn calls).
            self.timeout_keep_alive_task = self._deadlines.after(  # type: ignore[assignment]
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    # --- refusals and clocks ------------------------------------------------------------

    def _not_http(self, problem: str) -> None:
        """The parser refused the input (two Content-Lengths, a bare CR, a bad chunk
        size, …): a 400 in the gateway's own shape, then the connection ends (nothing
        after it can be framed); told to the log at most once every 10 s, where uvicorn
        wrote a line for each."""
        self.not_http.note(self.loop.time(), problem, self.loop)
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not cycle.response_complete:
            # The body of the request being served is broken (a bad chunk): the app's
            # receive() says so, and the gateway answers the 400 and records the call
            # under the request's own id (an answer of the edge's own, under an id of
            # its own, left the call recorded as a 499 under the client's).
            self._refuse_body(f"the request body is not valid HTTP/1.1: {problem}")
            return
        self._refuse(_answer(400, f"the request is not valid HTTP/1.1: {problem}", "invalid_request_error",
                             "gateway.bad_request"))  # fmt: skip

    def _refuse_head(self, message: str) -> None:
        self._refuse(_answer(431, message, "request_header_fields_too_large", "gateway.headers_too_large"))

    def _refuse(self, answer: EdgeAnswer) -> None:
        """Answer what cannot be served (and have it recorded), then end the connection."""
        self._dropping = True
        self._cancel_clock()
        record = type(self).record_refusal  # (a function: not bound to the connection)
        if record is not None:
            record(answer.status, answer.reason, answer.request_id, self.client[0] if self.client else "")
        if self._busy():
            # Pipelined behind an answer in progress: this one follows it.
            self._pending = answer.wire
            return
        self.transport.write(answer.wire)
        self._linger()

    def _linger(self) -> None:
        """End the connection once the answer is out: half-close, drop the input, close
        after ``LINGER_S`` (closing at once, with input unread, would send a reset that
        can destroy the answer before the client reads it)."""
        self._dropping = True
        self._cancel_clock()
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._rx_at = self.loop.time()
        self._linger_end = self._rx_at + LINGER_MAX_S
        self._clock = self.loop.call_later(LINGER_S, self._linger_ran_out)

    def _linger_ran_out(self) -> None:
        self._clock = None
        now = self.loop.time()
        quiet = now - self._rx_at
        if quiet < LINGER_S and now < self._linger_end:
            self._clock = self.loop.call_later(min(LINGER_S - quiet, self._linger_end - now), self._linger_ran_out)
            return
        self.transport.close()
        if self.transport.get_write_buffer_size() and self._stall is None:
            # What is still unsent waits for a client that reads, but not forever.
            self._stall = self.loop.call_later(self.limits.body_timeout_s, self.transport.abort)

    def _arm_clock(self) -> None:
        if self._dropping or self.transport.is_closing():
            return
        if not self._in_head:
            self._rx_at = self.loop.time()
            self._clock = self.loop.call_later(self.limits.body_timeout_s, self._body_clock_ran_out)
        elif not self._busy():
            self._clock = self.loop.call_later(self.limits.header_timeout_s, self._head_clock_ran_out)

    def _cancel_clock(self) -> None:
        if self._clock is not None:
            self._clock.cancel()
            self._clock = None

    def _head_clock_ran_out(self) -> None:
        self._clock = None
        log.debug("closing a connection whose request head took over %gs", self.limits.header_timeout_s)
        self.transport.close()

    def _body_clock_ran_out(self) -> None:
        self._clock = None
        cycle = self.cycle
        if self._in_head or self._dropping or not isinstance(cycle, _Cycle):
            return
        timeout = self.limits.body_timeout_s
        now = self.loop.time()
        if self.flow.read_paused or cycle.waiting_for_100_continue:
            # Not the client's silence: we stopped reading, or it waits for our go-ahead.
            self._rx_at = now
        quiet = now - self._rx_at
        if quiet < timeout:
            self._clock = self.loop.call_later(timeout - quiet, self._body_clock_ran_out)
            return
        cycle.refusal = cast("ASGIReceiveEvent", {"type": BODY_TIMEOUT, "after_s": quiet})
        cycle.message_event.set()

    def _refuse_body(self, message: str) -> None:
        """Stop reading the body of the request being served: what follows is dropped,
        and the app's ``receive()`` answers ``BODY_REFUSED`` (the gateway answers 400
        and records the call; the connection then lingers to its end, see
        ``on_response_complete``). Closed at once if the app answers already: nothing
        could tell the client any more."""
        self._dropping = True
        self._cancel_clock()
        self._rx_at = self.loop.time()
        cycle = self.cycle
        if isinstance(cycle, _Cycle) and cycle.more_body and not cycle.response_started:
            log.debug("refusing a request body: %s", message)
            cycle.refusal = cast("ASGIReceiveEvent", {"type": BODY_REFUSED, "message": message})
            cycle.message_event.set()
            return
        log.debug("closing a connection: %s", message)
        self.transport.close()

    # --- a client that stops reading ----------------------------------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall is None:
            self._stall = self.loop.call_later(self.limits.body_timeout_s, self._stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    def _stalled(self) -> None:
        self._stall = None
        log.debug("closing a connection whose client took nothing for %gs", self.limits.body_timeout_s)
        self.transport.abort()
