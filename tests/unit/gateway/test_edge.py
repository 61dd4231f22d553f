"""The ASGI edge (gateway/edge.py): how ``read_body`` ends on the server's events — a
stalled body is a 408 the gateway answers and records, a declared length over the
limit is a 413 before anything is read. Over real sockets: tests/system/test_edge_limits.py."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import orjson
import pytest

from tollway.gateway.edge import BODY_TIMEOUT, declared_over
from tollway.testing.gateway import GatewayUnderTest

CONFIG = """
server: {max_body_bytes: 1000}
providers:
  - {id: m, type: mock}
routes:
  - {name: chat, path_prefix: /v1/, provider: m}
"""
Message = MutableMapping[str, Any]


async def drive(gw: GatewayUnderTest, headers: list[tuple[bytes, bytes]], events: list[Message]) -> list[Message]:
    """One POST /v1/chat/completions whose ``receive()`` gives ``events`` in turn; what it sent."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "headers": [(b"host", b"gateway"), *headers],
        "client": ("127.0.0.1", 50000),
    }
    pending = list(events)
    sent: list[Message] = []

    async def receive() -> Message:
        assert pending, "read past the events the server had"
        return pending.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    await gw.app(scope, receive, send)
    return sent


async def test_a_body_the_server_timed_out_is_answered_408_and_recorded() -> None:
    gw = GatewayUnderTest(CONFIG)
    sent = await drive(
        gw,
        [(b"content-length", b"500")],
        [{"type": "http.request", "body": b'{"model": ', "more_body": True}, {"type": BODY_TIMEOUT, "after_s": 30.0}],
    )
    start, body = sent
    assert start["status"] == 408
    assert (b"x-tollway-reason", b"gateway.body_timeout") in start["headers"]
    error = orjson.loads(body["body"])["error"]
    assert error["code"] == "request_timeout" and "30s" in error["message"]
    [call] = gw.calls
    assert (call.status, call.reason) == (408, "gateway.body_timeout")


async def test_a_declared_length_over_the_limit_is_413_before_the_body_is_read() -> None:
    gw = GatewayUnderTest(CONFIG)
    sent = await drive(gw, [(b"content-length", b"9" * 5000)], [])
    assert sent[0]["status"] == 413
    assert gw.calls[0].reason == "gateway.body_too_large"


@pytest.mark.parametrize(
    ("declared", "over"),
    [
        (None, False),
        ("1000", False),
        ("1001", True),
        ("9" * 5000, True),
        ("", False),
        ("1e9", False),
        ("\u0661", False),
    ],
)
def test_declared_over_reads_only_plain_digits(declared: str | None, over: bool) -> None:
    assert declared_over(declared, 1000) is over
