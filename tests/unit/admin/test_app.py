"""The admin app's reading of a request (admin/app.py): the token and the route are
settled from the head before any body is read; bodies stop at 1 MiB; a stalled body is
408; a client gone mid-body gets nothing. Over real sockets: tests/system/test_admin_limits.py."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import orjson

from tollway.admin.app import MAX_BODY_BYTES, AdminApp, AdminRequest, json_reply
from tollway.config.load import ReloadResult
from tollway.gateway.edge import BODY_REFUSED, BODY_TIMEOUT

Message = MutableMapping[str, Any]
TOKEN = "admin-token"


def admin() -> AdminApp:
    app = AdminApp(TOKEN, lambda source: ReloadResult(True))

    async def echo(req: AdminRequest) -> tuple[int, list[tuple[str, str]], bytes]:
        return json_reply(200, {"length": len(req.body)})

    app.add("POST", "/api/echo", echo)
    return app


async def drive(
    app: AdminApp,
    events: list[Message],
    *,
    token: str | None = TOKEN,
    path: str = "/api/echo",
    length: int = 0,
    tokens: tuple[str, ...] = (),
) -> tuple[list[Message], int]:
    """POST ``path`` with ``events`` as its body (``token`` in its Authorization header, or
    one header for each of ``tokens``); what was sent back and how many events were read."""
    headers = [(b"host", b"127.0.0.1:8081"), (b"content-length", str(length).encode())]
    for given in tokens or ((token,) if token is not None else ()):
        headers.append((b"authorization", f"Bearer {given}".encode()))
    scope = {"type": "http", "http_version": "1.1", "method": "POST", "path": path, "query_string": b"",
             "headers": headers}  # fmt: skip
    pending = list(events)
    sent: list[Message] = []

    async def receive() -> Message:
        assert pending, "read past the events the server had"
        return pending.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent, len(events) - len(pending)


def body(sent: list[Message]) -> Any:
    return orjson.loads(sent[1]["body"])


async def test_without_the_token_nothing_of_the_body_is_read() -> None:
    for token in (None, "wrong"):
        sent, read = await drive(admin(), [{"type": "http.request", "body": b"{}"}], token=token, length=200_000_000)
        assert (sent[0]["status"], read) == (401, 0)


async def test_two_authorization_headers_are_refused_whichever_comes_first() -> None:
    """Which of two headers counts would depend on who reads them (a proxy in front may
    read the first, the app the last): neither does."""
    for tokens in ((TOKEN, "wrong"), ("wrong", TOKEN), (TOKEN, TOKEN)):
        sent, read = await drive(admin(), [{"type": "http.request", "body": b"{}"}], tokens=tokens, length=2)
        assert (sent[0]["status"], read) == (401, 0), tokens
    sent, _ = await drive(admin(), [{"type": "http.request", "body": b"{}"}], length=2)
    assert sent[0]["status"] == 200


async def test_an_unknown_route_reads_no_body() -> None:
    sent, read = await drive(admin(), [{"type": "http.request", "body": b"{}"}], path="/api/nothing", length=2)
    assert (sent[0]["status"], read) == (404, 0)


async def test_a_body_declared_over_1_mib_is_413_unread() -> None:
    sent, read = await drive(admin(), [{"type": "http.request", "body": b"{}"}], length=MAX_BODY_BYTES + 1)
    assert (sent[0]["status"], read) == (413, 0)


async def test_a_body_that_grows_past_1_mib_is_413_as_it_arrives() -> None:
    chunk: Message = {"type": "http.request", "body": b"x" * 65536, "more_body": True}
    sent, read = await drive(admin(), [chunk] * 20)
    assert (sent[0]["status"], read) == (413, 17)


async def test_a_body_of_1_mib_in_pieces_is_read_whole() -> None:
    pieces: list[Message] = [{"type": "http.request", "body": b"x" * 65536, "more_body": True}] * 15
    pieces.append({"type": "http.request", "body": b"x" * 65536, "more_body": False})
    sent, _ = await drive(admin(), pieces, length=MAX_BODY_BYTES)
    assert (sent[0]["status"], body(sent)) == (200, {"length": MAX_BODY_BYTES})
    assert (b"content-length", str(len(sent[1]["body"])).encode()) in sent[0]["headers"]


async def test_a_stalled_body_is_408() -> None:
    events: list[Message] = [
        {"type": "http.request", "body": b"{", "more_body": True},
        {"type": BODY_TIMEOUT, "after_s": 30.0},
    ]
    sent, _ = await drive(admin(), events, length=10)
    assert sent[0]["status"] == 408


async def test_a_body_the_server_stopped_reading_is_400_saying_why() -> None:
    events: list[Message] = [
        {"type": "http.request", "body": b"{", "more_body": True},
        {"type": BODY_REFUSED, "message": "the request body's trailers are larger than 65536 bytes"},
    ]
    sent, _ = await drive(admin(), events, length=10)
    assert (sent[0]["status"], body(sent)["error"]["message"]) == (400, events[1]["message"])


async def test_a_client_gone_mid_body_gets_nothing() -> None:
    events: list[Message] = [{"type": "http.request", "body": b"{", "more_body": True}, {"type": "http.disconnect"}]
    sent, _ = await drive(admin(), events, length=10)
    assert sent == []
