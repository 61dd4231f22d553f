"""The connection protocol's clocks and bounds (runtime/connection.py), driven byte by
byte through a recording transport: the cases a real socket cannot stage on cue (a
client that stops reading, bytes that keep coming after an early answer, a body that
waits for our go-ahead). The wire behaviour is in tests/system/test_edge_limits.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from tollway.gateway.edge import BODY_TIMEOUT
from tollway.runtime import connection
from tollway.runtime.connection import EdgeConnection, EdgeLimits, connection_class, derived_max_connections

TICK = 0.05
LIMITS = EdgeLimits(
    max_header_bytes=4096, max_headers=10, header_timeout_s=TICK, body_timeout_s=TICK, max_connections=2
)


class Transport(asyncio.Transport):
    """Records what the protocol does to its socket."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False
        self.aborted = False
        self.eof = False
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


Scope = dict[str, Any]


class App:
    """Answers each request with 200 and what ``receive()`` gave it, once asked to."""

    def __init__(self, read_body: bool = True) -> None:
        self.read_body = read_body
        self.events: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if self.read_body:
            while True:
                event = await receive()
                self.events.append(event)
                if event["type"] != "http.request" or not event["more_body"]:
                    break
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def state() -> Iterator[ServerState]:
    yield ServerState()


def open_connection(app: App, state: ServerState, limits: EdgeLimits = LIMITS) -> tuple[EdgeConnection, Transport]:
    config = uvicorn.Config(app, http=connection_class(limits), ws="none", lifespan="off", log_level="warning")
    config.load()
    protocol = config.http_protocol_class(config=config, server_state=state, app_state={})  # type: ignore[call-arg]
    assert isinstance(protocol, EdgeConnection)
    transport = Transport()
    protocol.connection_made(transport)
    return protocol, transport


async def settle(seconds: float = 0.0) -> None:
    await asyncio.sleep(seconds)
    for _ in range(5):
        await asyncio.sleep(0)


def test_max_connections_default_is_half_the_descriptors_left_after_the_reserve() -> None:
    assert derived_max_connections(1024) == (1024 - connection.RESERVED_FDS) // 2
    assert derived_max_connections(65536) == (65536 - connection.RESERVED_FDS) // 2
    assert derived_max_connections(100) == 16
    assert derived_max_connections() >= 16


async def test_a_connection_past_the_bound_is_refused_and_never_counted(state: ServerState) -> None:
    first, _ = open_connection(App(), state)
    second, _ = open_connection(App(), state)
    third, transport = open_connection(App(), state)
    assert transport.written.startswith(b"HTTP/1.1 503 ")
    assert b"x-tollway-reason: gateway.too_many_connections" in transport.written
    assert transport.closed
    assert state.connections == {first, second}
    third.connection_lost(None)
    assert state.connections == {first, second}
    assert third.refusals.total == 1


async def test_a_client_that_stops_reading_the_answer_is_cut_off(state: ServerState) -> None:
    protocol, transport = open_connection(App(), state)
    protocol.pause_writing()  # the socket's buffer is full: the client takes nothing
    await settle(TICK * 3)
    assert transport.aborted


async def test_a_client_that_reads_slowly_is_not_cut_off(state: ServerState) -> None:
    patient = EdgeLimits(4096, 10, header_timeout_s=1.0, body_timeout_s=1.0, max_connections=2)
    protocol, transport = open_connection(App(), state, patient)
    for _ in range(4):  # each stall well inside body_timeout_s, together past it
        protocol.pause_writing()
        await settle(0.3)
        protocol.resume_writing()
    assert not transport.aborted


async def test_the_rest_of_a_body_after_an_early_answer_is_dropped_until_the_client_is_quiet(
    state: ServerState, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection, "LINGER_S", 0.5)
    app = App(read_body=False)
    protocol, transport = open_connection(app, state)
    protocol.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
    await settle()
    assert transport.written.startswith(b"HTTP/1.1 200 ") and transport.eof and not transport.closed
    # The client goes on sending what nobody will read: the connection stays while it does.
    for _ in range(4):  # each piece well inside LINGER_S of the last, together past it
        protocol.data_received(b"x" * 65536)
        await settle(0.2)
        assert not transport.closed
    await settle(0.6)
    assert transport.closed


async def test_a_body_that_waits_for_100_continue_is_not_timed_out(state: ServerState) -> None:
    gate = asyncio.Event()

    class Slow(App):
        async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
            await gate.wait()  # e.g. a plugin that checks the key first
            await super().__call__(scope, receive, send)

    app = Slow()
    protocol, transport = open_connection(app, state)
    protocol.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    await settle(TICK * 4)
    gate.set()
    await settle()
    assert transport.written.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    protocol.data_received(b"{}")
    await settle()
    assert [e["type"] for e in app.events] == ["http.request"]
    assert b"HTTP/1.1 200 " in transport.written


async def test_a_body_that_goes_silent_makes_receive_answer_the_timeout(state: ServerState) -> None:
    app = App()
    protocol, _ = open_connection(app, state)
    protocol.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{")
    await settle(TICK * 4)
    assert [e["type"] for e in app.events] == ["http.request", BODY_TIMEOUT]
    assert app.events[1]["after_s"] >= TICK


async def test_a_head_over_the_bound_is_refused_however_it_is_split(state: ServerState) -> None:
    protocol, transport = open_connection(App(), state)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n")
    for _ in range(10):
        protocol.data_received(b"X-Pad: " + b"a" * 500 + b"\r\n")
    assert transport.written.startswith(b"HTTP/1.1 431 ")
    assert transport.eof


async def test_a_flood_of_pipelined_requests_is_bounded_and_the_queued_ones_answered(state: ServerState) -> None:
    # One read holding thousands of tiny requests must not queue thousands of calls: past
    # MAX_PIPELINED the parser stops, the queued ones are answered in order, the
    # connection ends, and nothing more is read.
    protocol, transport = open_connection(App(), state)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 5000)
    assert len(protocol.pipeline) == connection.MAX_PIPELINED
    await settle(TICK)
    assert transport.written.count(b"HTTP/1.1 200 ") == connection.MAX_PIPELINED + 1
    assert transport.eof  # then a lingering close
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 100)
    await settle()
    assert transport.written.count(b"HTTP/1.1 200 ") == connection.MAX_PIPELINED + 1


async def test_bytes_that_begin_no_request_do_not_keep_an_idle_connection_open(state: ServerState) -> None:
    # A bare CRLF after an answer took away the keep-alive timer, and the parser skips it
    # without beginning a request: the head clock must take over.
    protocol, transport = open_connection(App(), state)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await settle()
    assert transport.written.startswith(b"HTTP/1.1 200 ")
    assert protocol.timeout_keep_alive_task is not None
    protocol.data_received(b"\r\n")
    assert protocol.timeout_keep_alive_task is None
    await settle(TICK * 3)
    assert transport.closed


async def test_refusals_held_back_from_the_log_are_told_when_the_interval_is_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refusals = connection.Refusals("gateway")
    refusals.LOG_EVERY_S = TICK
    loop = asyncio.get_running_loop()
    with caplog.at_level("WARNING", logger="tollway.connection"):
        for _ in range(50):
            refusals.note(loop.time(), 2, loop)
        told = [r.getMessage() for r in caplog.records]
        assert told == ["gateway listener: refused 1 connection(s) at its bound of 2 open connections"]
        await settle(TICK * 2)  # no further refusal comes: the 49 held back are told anyway
        told = [r.getMessage() for r in caplog.records]
    assert told[1:] == ["gateway listener: refused 49 connection(s) at its bound of 2 open connections"]
    assert refusals.total == 50
