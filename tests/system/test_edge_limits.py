"""The HTTP edge's limits (SPEC §14) on real sockets against ``tollway serve``: heads too
large or with too many lines → 431 before they are buffered; a head that trickles in and
an idle keep-alive connection are closed; a stalled body → 408, recorded; connections
past ``max_connections`` are refused while admitted ones keep working; keep-alive and
pipelining go on working under the limits.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import Proc, start_process
from tests.support.fake_provider import usage_record

KEY = "key-alice-1"
CHAT = b'{"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}'
CONFIG = """
server: {{header_timeout_s: {head}, body_timeout_s: {body}, keepalive_timeout_s: {idle}{extra}}}
storage: {{database: "sqlite:///./tollway.db"}}
providers:
  - {{id: m, type: mock}}
routes:
  - {{name: chat, path_prefix: /v1/, provider: m}}
plugins:
  - name: key-auth
    defaultConfig:
      keys: [authorization]
      consumers: [{{name: alice, credential: "{key}"}}]
"""
# Short clocks, so slow clients are dealt with within a test's patience.
HEAD_S = 0.5
BODY_S = 0.5
IDLE_S = 0.5
MAX_CONNECTIONS = 20
PER_CLIENT = 2


def _serve(folder: Path, config: str) -> Proc:
    (folder / "tollway.yaml").write_text(config)
    return start_process(["serve", "-c", "tollway.yaml", "--port", "0", "--admin-port", "0"], cwd=folder)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    config = CONFIG.format(head=HEAD_S, body=BODY_S, idle=IDLE_S, extra="", key=KEY)
    proc = _serve(tmp_path_factory.mktemp("edge-limits"), config)
    yield proc
    assert proc.stop() == 0


def _bounded(tmp_path_factory: pytest.TempPathFactory, bound: str) -> Iterator[Proc]:
    """A gateway with ``bound`` (a ``server:`` entry) and its clocks at their defaults."""
    config = CONFIG.format(head=10, body=30, idle=75, extra=f", {bound}", key=KEY)
    proc = _serve(tmp_path_factory.mktemp("edge-connections"), config)
    yield proc
    assert proc.stop() == 0


@pytest.fixture(scope="module")
def few(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A gateway that serves at most ``MAX_CONNECTIONS`` connections."""
    yield from _bounded(tmp_path_factory, f"max_connections: {MAX_CONNECTIONS}")


@pytest.fixture(scope="module")
def per_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A gateway that serves at most ``PER_CLIENT`` connections from one address."""
    yield from _bounded(tmp_path_factory, f"max_connections_per_client: {PER_CLIENT}")


# --- a raw HTTP/1.1 client ---------------------------------------------------------------------


class Conn(socket.socket):
    """A client socket that keeps what it read past the response it was reading (the
    next pipelined answer may come in the same read)."""

    pending = b""


def connect(proc: Proc, timeout: float = 10, source: str | None = None) -> Conn:
    """A connection to ``proc``, from ``source`` (another loopback address) if given."""
    host, port = proc.url.removeprefix("http://").rsplit(":", 1)
    sock = Conn(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    if source is not None:
        sock.bind((source, 0))
    sock.connect((host, int(port)))
    return sock


def head(target: str = "/v1/chat/completions", *lines: str, method: str = "POST", length: int | None = None) -> bytes:
    fields = ["Host: gateway", f"Authorization: Bearer {KEY}", *lines]
    if length is not None:
        fields.append(f"Content-Length: {length}")
    return (f"{method} {target} HTTP/1.1\r\n" + "".join(f"{f}\r\n" for f in fields) + "\r\n").encode()


def chat_request(*lines: str) -> bytes:
    return head("/v1/chat/completions", "Content-Type: application/json", *lines, length=len(CHAT)) + CHAT


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return orjson.loads(self.body)


def read_response(sock: Conn) -> Response:
    """One response with a Content-Length body (every answer this test asks for has one)."""
    buf, sock.pending = sock.pending, b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a whole response head: {buf!r}")
        buf += chunk
    raw_head, _, body = buf.partition(b"\r\n\r\n")
    status_line, *lines = raw_head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        body += chunk
    body, sock.pending = body[:length], body[length:]
    return Response(int(status_line.split()[1]), headers, body)


def closed_by_server(sock: Conn) -> bool:
    """Whether the server ended the connection (reading gives EOF or a reset) before the
    socket's timeout, with nothing more to read."""
    if sock.pending:
        return False
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def rss_kib(proc: Proc) -> int:
    for line in Path(f"/proc/{proc.popen.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def assert_431(r: Response) -> None:
    assert r.status == 431, r.body
    assert r.headers["x-tollway-reason"] == "gateway.headers_too_large"
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-request-id"]
    error = r.json()["error"]
    assert error["code"] == "request_header_fields_too_large"
    assert error["message"] and error["type"]


def assert_still_serving(proc: Proc) -> None:
    r = httpx.post(proc.url + "/v1/chat/completions", content=CHAT, headers={"authorization": f"Bearer {KEY}"})
    assert r.status_code == 200, r.text


def records(proc: Proc) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = httpx.get(proc.admin_url + "/api/requests", params={"limit": 1000}).json()["requests"]
    return out


# --- heads -------------------------------------------------------------------------------------


def test_a_megabyte_header_without_a_key_is_431_at_once(gw: Proc) -> None:
    with connect(gw) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nX-Pad: " + b"a" * 1_000_000 + b"\r\n\r\n")
        assert_431(read_response(sock))
        assert closed_by_server(sock)
    assert_still_serving(gw)


def test_oversized_heads_are_never_buffered(gw: Proc) -> None:
    # 8 clients with a 6 MB header each, at once: buffered, that is 48 MB and more.
    before = rss_kib(gw)
    statuses: list[int] = []

    def oversized() -> None:
        with connect(gw) as sock:
            sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: gateway\r\nX-Pad: " + b"a" * 6_000_000 + b"\r\n\r\n")
            statuses.append(read_response(sock).status)

    clients = [threading.Thread(target=oversized) for _ in range(8)]
    for c in clients:
        c.start()
    for c in clients:
        c.join(30)
    assert statuses == [431] * 8
    grown_mib = (rss_kib(gw) - before) / 1024
    assert grown_mib < 8, f"RSS grew by {grown_mib:.1f} MiB"


def _head_of_size(size: int) -> bytes:
    """A GET head of exactly ``size`` bytes (request line, headers, the blank line)."""
    bare = head("/v1/models", "X-Pad: ", method="GET")
    pad = size - len(bare)
    return head("/v1/models", "X-Pad: " + "p" * pad, method="GET")


def test_a_head_of_max_header_bytes_is_served_and_one_byte_more_is_431(gw: Proc) -> None:
    exact = _head_of_size(65536)
    assert len(exact) == 65536
    with connect(gw) as sock:
        sock.sendall(exact)
        assert read_response(sock).status == 200
        over = _head_of_size(65537)
        sock.sendall(over)
        assert_431(read_response(sock))


def test_101_header_lines_are_431_and_100_are_served(gw: Proc) -> None:
    # head() writes Host and Authorization: 98 more make 100 lines, 99 more make 101.
    with connect(gw) as sock:
        sock.sendall(head("/v1/models", *(f"X-H{i}: v" for i in range(98)), method="GET"))
        assert read_response(sock).status == 200
    with connect(gw) as sock:
        sock.sendall(head("/v1/models", *(f"X-H{i}: v" for i in range(99)), method="GET"))
        r = read_response(sock)
        assert_431(r)
        assert "100 header fields" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("request_bytes", "status", "reason"),
    [
        (b"GET /v1/models HTTP/1.1\r\nHost: gateway\r\nX-Pad: " + b"a" * 70_000 + b"\r\n\r\n", 431,
         "gateway.headers_too_large"),
        (head("/v1/models", *(f"X-H{i}: v" for i in range(99)), method="GET"), 431, "gateway.headers_too_large"),
        (b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nX-Bad: a\x01b\r\n\r\n", 400,
         "gateway.bad_request"),
        (b"GET /v1/models\r\n\r\n", 505, "gateway.bad_request"),
    ],
)  # fmt: skip
def test_a_request_the_edge_refuses_is_recorded_and_counted(
    gw: Proc, request_bytes: bytes, status: int, reason: str
) -> None:
    """SPEC §5: every request that reaches the gateway is a usage record, those the
    HTTP parser refuses too (with the peer's address: no header was read)."""
    with connect(gw) as sock:
        sock.sendall(request_bytes)
        r = read_response(sock)
        assert (r.status, r.headers["x-tollway-reason"]) == (status, reason)
    record = usage_record(gw, r.headers["x-request-id"])
    assert (record["status"], record["reason"], record["client_ip"]) == (status, reason, "127.0.0.1")
    assert (record["route"], record["consumer"], record["model_requested"]) == (None, None, None)
    metrics = httpx.get(gw.admin_url + "/metrics").text
    assert f'tollway_requests_total{{code="{status}",consumer="none",model="other",route="none"}}' in metrics


def test_an_oversized_head_pipelined_behind_a_call_is_answered_after_it(gw: Proc) -> None:
    with connect(gw) as sock:
        sock.sendall(chat_request() + b"GET /v1/models HTTP/1.1\r\nX-Pad: " + b"a" * 100_000 + b"\r\n\r\n")
        assert read_response(sock).status == 200
        assert_431(read_response(sock))
        assert closed_by_server(sock)


def test_a_head_that_trickles_in_is_closed_after_header_timeout_s(gw: Proc) -> None:
    with connect(gw) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\n")
        started = time.monotonic()
        sock.settimeout(0.1)
        closed = False
        # One byte of a header every 0.1 s: each arrives well inside any per-read timeout.
        while time.monotonic() - started < HEAD_S + 5:
            try:
                sock.sendall(b"X")
                if sock.recv(1) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except (ConnectionResetError, BrokenPipeError):
                closed = True
                break
        assert closed, "the trickling head was never cut off"
        assert time.monotonic() - started >= HEAD_S * 0.9


def test_a_connection_that_sends_nothing_is_closed_after_header_timeout_s(gw: Proc) -> None:
    with connect(gw, timeout=HEAD_S + 5) as sock:
        started = time.monotonic()
        assert closed_by_server(sock)
        assert time.monotonic() - started >= HEAD_S * 0.9


# --- bodies ------------------------------------------------------------------------------------


def test_a_stalled_body_is_408_and_recorded(gw: Proc) -> None:
    with connect(gw) as sock:
        sock.sendall(head("/v1/chat/completions", "x-request-id: stalled-body", length=1000) + b'{"model": ')
        started = time.monotonic()
        r = read_response(sock)
        waited = time.monotonic() - started
        assert r.status == 408, r.body
        assert r.headers["x-tollway-reason"] == "gateway.body_timeout"
        assert r.json()["error"]["code"] == "request_timeout"
        assert waited >= BODY_S * 0.9
        assert closed_by_server(sock)
    [record] = [rec for rec in records(gw) if rec["request_id"] == "stalled-body"]
    assert (record["status"], record["reason"], record["consumer"]) == (408, "gateway.body_timeout", "alice")


def test_a_body_that_keeps_coming_slowly_is_not_cut_off(gw: Proc) -> None:
    with connect(gw) as sock:
        sock.sendall(head("/v1/chat/completions", "Content-Type: application/json", length=len(CHAT)))
        # Each piece within body_timeout_s of the last, the whole well past it.
        for i in range(0, len(CHAT), len(CHAT) // 4 + 1):
            time.sleep(BODY_S / 2)
            sock.sendall(CHAT[i : i + len(CHAT) // 4 + 1])
        assert read_response(sock).status == 200


def test_a_refusal_before_the_body_does_not_wait_for_it(gw: Proc) -> None:
    # No key: key-auth answers 401 from the head; the 100 MB the head announces are never awaited.
    with connect(gw) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-Length: 100000000\r\n\r\n{")
        r = read_response(sock)
        assert r.status == 401
        assert closed_by_server(sock)


@pytest.mark.parametrize("expect", [False, True])
def test_a_refusal_does_not_wait_for_a_small_body_that_stalls_or_asks_first(few: Proc, expect: bool) -> None:
    """A small body is read for the model the record keeps, but not waited for: a client
    with no key whose body stalls gets its 401 at once, not after body_timeout_s (30 s
    here); one that waits for 100 Continue is not told to send."""
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-Length: 100\r\n"
    with connect(few) as sock:
        started = time.monotonic()
        if expect:
            sock.sendall(head + b"Expect: 100-continue\r\n\r\n")
        else:
            sock.sendall(head + b"\r\n" + b'{"model"')
        r = read_response(sock)
        assert r.status == 401 and time.monotonic() - started < 5


def test_small_trailers_are_ignored_and_endless_ones_are_a_400_recorded(gw: Proc) -> None:
    chunked = head("/v1/chat/completions", "Content-Type: application/json", "Transfer-Encoding: chunked")
    with connect(gw) as sock:
        sock.sendall(chunked + b"%x\r\n%s\r\n0\r\nX-Trailer: ignored\r\n\r\n" % (len(CHAT), CHAT))
        assert read_response(sock).status == 200
    before = rss_kib(gw)
    endless = head("/v1/chat/completions", "Transfer-Encoding: chunked", "x-request-id: endless-trailers")
    with connect(gw) as sock:
        sock.sendall(endless + b"%x\r\n%s\r\n0\r\n" % (len(CHAT), CHAT))
        for _ in range(200):  # 40 MB of trailer lines, dropped unread past max_header_bytes
            sock.sendall(b"a: b\r\n" * 33_000)
        r = read_response(sock)
        assert (r.status, r.headers["x-tollway-reason"]) == (400, "gateway.bad_request")
        assert "trailers are larger than 65536 bytes" in r.json()["error"]["message"]
        assert closed_by_server(sock)
    assert (rss_kib(gw) - before) / 1024 < 8
    [record] = [rec for rec in records(gw) if rec["request_id"] == "endless-trailers"]
    assert (record["status"], record["reason"], record["consumer"]) == (400, "gateway.bad_request", "alice")
    assert_still_serving(gw)


def test_trailers_past_max_header_bytes_in_one_read_with_the_body_are_a_400(gw: Proc) -> None:
    # All of it in one write: the per-read count saw the body's end reset it, and up to
    # twice max_header_bytes of trailers passed (a judge's finding).
    chunked = head("/v1/chat/completions", "Content-Type: application/json", "Transfer-Encoding: chunked")
    lines = [b"x-t%d: %s\r\n" % (i, b"v" * 1000) for i in range(80)]
    trailers = b"".join(lines)  # ~80 KB
    with connect(gw) as sock:
        sock.sendall(chunked + b"%x\r\n%s\r\n0\r\n%s\r\n" % (len(CHAT), CHAT, trailers))
        r = read_response(sock)
        assert (r.status, r.headers["x-tollway-reason"]) == (400, "gateway.bad_request")
        assert "trailers are larger than 65536 bytes" in r.json()["error"]["message"]
    with connect(gw) as sock:  # (60 KB of them pass, as the bound says)
        sock.sendall(chunked + b"%x\r\n%s\r\n0\r\n%s\r\n" % (len(CHAT), CHAT, b"".join(lines[:60])))
        assert read_response(sock).status == 200
    assert_still_serving(gw)


def test_a_chunk_extension_past_max_header_bytes_is_a_400_not_a_reset(gw: Proc) -> None:
    chunked = head("/v1/chat/completions", "Transfer-Encoding: chunked", "x-request-id: long-extension")
    with connect(gw) as sock:
        sock.sendall(chunked + b"%x;ext=%s" % (len(CHAT), b"e" * 150_000))
        time.sleep(0.2)  # (the extension alone: in one read with the chunk's data, it costs nothing)
        sock.sendall(b"\r\n%s\r\n0\r\n\r\n" % CHAT)
        r = read_response(sock)
        assert (r.status, r.headers["x-tollway-reason"]) == (400, "gateway.bad_request")
        assert closed_by_server(sock)
    [record] = [rec for rec in records(gw) if rec["request_id"] == "long-extension"]
    assert (record["status"], record["reason"]) == (400, "gateway.bad_request")
    assert_still_serving(gw)


def test_a_broken_chunked_body_is_a_400_recorded_under_the_requests_own_id(gw: Proc) -> None:
    """A bad chunk size once the head was taken: the edge answered a 400 of its own under
    an id of its own, and the call was recorded as a 499 under the client's (a judge's
    Medium). The gateway answers it, the client's id on both."""
    chunked = head("/v1/chat/completions", "Transfer-Encoding: chunked", "x-request-id: broken-chunk")
    with connect(gw) as sock:
        sock.sendall(chunked + b"zz\r\nabc\r\n")
        r = read_response(sock)
        assert (r.status, r.headers["x-tollway-reason"]) == (400, "gateway.bad_request"), r.body
        assert r.headers["x-request-id"] == "broken-chunk"
        assert "not valid HTTP/1.1" in r.json()["error"]["message"]
        assert closed_by_server(sock)
    [record] = [rec for rec in records(gw) if rec["request_id"] == "broken-chunk"]
    assert (record["status"], record["reason"]) == (400, "gateway.bad_request")
    assert_still_serving(gw)


# --- keep-alive and pipelining -----------------------------------------------------------------


def test_keep_alive_and_pipelining_still_work(gw: Proc) -> None:
    with connect(gw) as sock:
        sock.sendall(chat_request("x-request-id: first"))
        assert read_response(sock).headers["x-request-id"] == "first"
        sock.sendall(chat_request("x-request-id: second") + chat_request("x-request-id: third"))
        assert [read_response(sock).headers["x-request-id"] for _ in range(2)] == ["second", "third"]


@pytest.mark.parametrize(
    "request_bytes",
    [
        chat_request("Content-Length: 5"),  # two Content-Lengths
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\rX: y\r\n\r\n",  # a bare CR
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # an HTTP/2 preface
        # A bad chunk size: the head was fine, so the gateway answers (and records) it.
        head("/v1/chat/completions", "Transfer-Encoding: chunked") + b"zz\r\n",
    ],
)
def test_what_is_not_http_is_a_400_in_the_gateways_shape_and_one_log_line(gw: Proc, request_bytes: bytes) -> None:
    """The HTTP parser's own refusals answer as every other refusal does (x-request-id,
    x-tollway-reason, the OpenAI error shape), not as uvicorn's plain text, and a flood
    of them is not a flood of log lines."""
    for _ in range(3):
        with connect(gw) as sock:
            sock.sendall(request_bytes)
            r = read_response(sock)
            assert r.status == 400 and r.headers["x-tollway-reason"] == "gateway.bad_request"
            assert r.headers["x-request-id"] and r.json()["error"]["code"] == "invalid_request_error"
            assert "not valid HTTP/1.1" in r.json()["error"]["message"]
            assert closed_by_server(sock)
    assert_still_serving(gw)
    assert gw.logged("were not valid HTTP/1.1")  # told, once in 10 s (every case here: one line, maybe two)
    assert len(gw.logged("were not valid HTTP/1.1", within=0)) <= 2
    assert not [line for line in gw.stderr_lines if "Invalid HTTP request received" in line]


@pytest.mark.parametrize(
    ("codings", "status", "reason"),
    [
        (["gzip, chunked"], 501, "gateway.unsupported_transfer_coding"),
        (["gzip", "chunked"], 501, "gateway.unsupported_transfer_coding"),  # one list, in two lines
        (["chunked, gzip"], 400, "gateway.bad_request"),  # the body's end cannot be found
        (["chunked", "chunked"], 400, "gateway.bad_request"),
        (["chunked,"], 400, "gateway.bad_request"),
    ],
)
def test_a_body_in_a_transfer_coding_other_than_chunked_alone_is_refused_before_it_is_read(
    gw: Proc, codings: list[str], status: int, reason: str
) -> None:
    """RFC 9112: a coding the gateway does not decode is a 501 (forwarding gzip bytes as
    JSON would fail upstream, or worse, pass request-block unread); chunked not last is
    a 400. Either way nothing of the body is read and the connection ends."""
    lines = [f"Transfer-Encoding: {c}" for c in codings]
    with connect(gw) as sock:
        sock.sendall(head("/v1/chat/completions", "Content-Type: application/json", *lines))
        sock.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(CHAT), CHAT))
        r = read_response(sock)
        assert (r.status, r.headers["x-tollway-reason"]) == (status, reason)
        assert "Transfer-Encoding" in r.json()["error"]["message"]
        assert closed_by_server(sock)
    assert_still_serving(gw)


def test_an_http_1_0_request_with_a_transfer_encoding_is_400(gw: Proc) -> None:
    """RFC 9112 6.1: HTTP/1.0 has no Transfer-Encoding; a request with one has faulty
    framing (a way to smuggle a request past a proxy that reads it as 1.0 would)."""
    with connect(gw) as sock:
        start = f"POST /v1/chat/completions HTTP/1.0\r\nHost: gateway\r\nAuthorization: Bearer {KEY}\r\n"
        sock.sendall(f"{start}Transfer-Encoding: chunked\r\n\r\n".encode())
        sock.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(CHAT), CHAT))
        r = read_response(sock)
        assert (r.status, r.headers["x-tollway-reason"]) == (400, "gateway.bad_request")
        assert closed_by_server(sock)
    with connect(gw) as sock:  # chunked HTTP/1.1 on a connection after it is still served
        sock.sendall(head("/v1/chat/completions", "Content-Type: application/json", "Transfer-Encoding: chunked"))
        sock.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(CHAT), CHAT))
        assert read_response(sock).status == 200
        sock.sendall(chat_request())
        assert read_response(sock).status == 200


def test_an_expectation_other_than_100_continue_is_417_and_100_continue_is_met(gw: Proc) -> None:
    with connect(gw) as sock:
        sock.sendall(head("/v1/chat/completions", "Content-Type: application/json", "Expect: 200-ok", length=len(CHAT)))
        r = read_response(sock)
        assert (r.status, r.headers["x-tollway-reason"]) == (417, "gateway.expectation_failed")
        assert "'200-ok'" in r.json()["error"]["message"]
        assert closed_by_server(sock)
    with connect(gw) as sock:
        sock.sendall(head("/v1/chat/completions", "Content-Type: application/json", "Expect: 100-Continue",
                          length=len(CHAT)))  # fmt: skip
        assert sock.recv(64).startswith(b"HTTP/1.1 100 ")
        sock.sendall(CHAT)
        assert read_response(sock).status == 200


def test_an_http_1_1_request_without_host_is_400_and_one_of_http_1_0_or_absolute_form_is_served(gw: Proc) -> None:
    """RFC 9112 3.2: a server MUST answer 400 to an HTTP/1.1 request without Host (as
    nginx does); HTTP/1.0 has no such rule, and an absolute-form target names its host."""
    line = f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: {len(CHAT)}\r\n"
    for target, version, status in [
        ("/v1/chat/completions", "1.1", 400),
        ("/v1/chat/completions", "1.0", 200),
        ("http://gateway/v1/chat/completions", "1.1", 200),
    ]:
        with connect(gw) as sock:
            sock.sendall(f"POST {target} HTTP/{version}\r\n{line}\r\n".encode() + CHAT)
            r = read_response(sock)
            assert r.status == status, (target, version)
            if status == 400:
                assert "Host" in r.json()["error"]["message"]


def test_a_request_line_without_a_version_is_refused(gw: Proc) -> None:
    """llhttp reads ``GET /path`` with no version as HTTP/0.9, which has no headers at all:
    not served as if it were HTTP/1.1."""
    with connect(gw) as sock:
        sock.sendall(b"GET /v1/models\r\n\r\n")
        r = read_response(sock)
        assert (r.status, r.headers["x-tollway-reason"]) == (505, "gateway.bad_request")
        assert closed_by_server(sock)
    assert_still_serving(gw)


@pytest.mark.parametrize("how", ["close", "shutdown"])
def test_a_client_that_ends_its_connection_right_after_its_request_is_recorded_499(gw: Proc, how: str) -> None:
    """The call may be answered before the gateway's watch on the client begins (50 ms
    after the body), into a connection no one reads: the record says the client left
    (499), not 200. ``shutdown(SHUT_WR)`` reads the same on the wire (an end of input),
    and is taken the same way, as nginx does. The provider answers after 25 ms, so the
    client's end surely comes first: an answer the gateway wrote before the end arrived
    was answered, and is 200 whatever the client did next."""
    rid = f"gone-{how}"
    with connect(gw) as sock:
        sock.sendall(chat_request(f"x-request-id: {rid}", "x-mock-latency-ms: 25"))
        if how == "shutdown":
            sock.shutdown(socket.SHUT_WR)
        # (leaving the block closes the socket)
    deadline = time.monotonic() + 10
    while rid not in {r["request_id"] for r in records(gw)} and time.monotonic() < deadline:
        time.sleep(0.05)
    record = {r["request_id"]: r for r in records(gw)}[rid]
    assert (record["status"], record["reason"]) == (499, "gateway.client_closed")


def test_an_idle_keep_alive_connection_is_closed_after_keepalive_timeout_s(gw: Proc) -> None:
    with connect(gw, timeout=IDLE_S + 5) as sock:
        sock.sendall(chat_request())
        assert read_response(sock).status == 200
        answered = time.monotonic()
        assert closed_by_server(sock)
        assert time.monotonic() - answered >= IDLE_S * 0.9


# --- connections -------------------------------------------------------------------------------


def logged(proc: Proc, said: str) -> None:
    deadline = time.monotonic() + 5
    while not any(said in line for line in proc.stderr_lines):
        assert time.monotonic() < deadline, f"no log line {said!r}"
        time.sleep(0.05)


def all_served(socks: list[Conn]) -> None:
    for sock in socks:
        sock.sendall(chat_request())
        assert read_response(sock).status == 200


def turned_away(proc: Proc) -> dict[str, Any]:
    """A new connection's refusal at a connection bound (its error object): a 503 with
    its reason, and the connection closed."""
    with connect(proc) as extra:
        r = read_response(extra)
        assert (r.status, r.headers["x-tollway-reason"]) == (503, "gateway.too_many_connections")
        assert closed_by_server(extra)
        error: dict[str, Any] = r.json()["error"]
        return error


def served_again(proc: Proc) -> None:
    """A new connection is served (once the server saw a close that freed a place)."""
    deadline = time.monotonic() + 5
    while True:
        with connect(proc) as sock:
            sock.sendall(chat_request())
            try:
                if read_response(sock).status == 200:
                    return
            except ConnectionError:  # refused with the request unread: a reset
                pass
        assert time.monotonic() < deadline, "the freed place was never given to a new connection"
        time.sleep(0.05)


def test_one_address_past_max_connections_per_client_is_refused_and_others_are_served(per_client: Proc) -> None:
    mine = [connect(per_client) for _ in range(PER_CLIENT)]
    try:
        all_served(mine)
        assert "this client has too many open connections" in turned_away(per_client)["message"]
        with connect(per_client, source="127.0.0.2") as other:  # another address: its own count
            all_served([other])
        said = "gateway listener: refused 1 connection(s) at its bound of 2 open connections from one address"
        logged(per_client, said)
        mine.pop().close()
        served_again(per_client)  # the freed place is this address's again
        # The admin listener has no bound per address (a dashboard opens several).
        with contextlib.ExitStack() as stack:
            clients = [stack.enter_context(httpx.Client(base_url=per_client.admin_url)) for _ in range(PER_CLIENT + 2)]
            assert [c.get("/healthz").status_code for c in clients] == [200] * (PER_CLIENT + 2)
    finally:
        for sock in mine:
            sock.close()


def test_connections_past_max_connections_are_refused_at_once_and_the_admitted_keep_working(few: Proc) -> None:
    admitted = [connect(few) for _ in range(MAX_CONNECTIONS)]
    try:
        all_served(admitted)
        assert turned_away(few)["code"] == "service_unavailable"
        logged(few, "gateway listener: refused 1 connection(s) at its bound of 20 open connections")
        all_served(admitted)
        admitted.pop().close()
        served_again(few)  # the freed place goes to the next connection
    finally:
        for sock in admitted:
            sock.close()
