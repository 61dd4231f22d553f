"""The mock model's ASGI app (mockllm/server.py) driven in-process, without sockets: the
request record, one ASGI message per stream event, drops outside uvicorn, lifespan. The
server through real HTTP is tested in tests/system/test_mock_llm.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.support.mockllm_support import chat
from tollway.mockllm import create_app
from tollway.mockllm.server import ConnectionDropped, MockApp


async def _call_app(
    app: MockApp,
    method: str,
    path: str,
    body: bytes = b"",
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> list[dict[str, Any]]:
    """Run one HTTP request through ``app`` in-process; return the ASGI messages it sent."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"test"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    pending = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop()
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await app(scope, receive, send)
    return sent


async def test_record_keeps_last_200_and_apps_are_separate() -> None:
    app, other = create_app(), create_app()
    for number in range(205):
        await _call_app(app, "GET", f"/v1/models/{number}")
    assert len(app.requests) == 200
    assert app.requests[0]["path"] == "/v1/models/5"
    assert app.requests[-1]["path"] == "/v1/models/204"
    assert len(other.requests) == 0
    sent = await _call_app(other, "GET", "/_mock/requests")
    assert json.loads(sent[1]["body"]) == {"requests": []}


async def test_each_stream_event_is_its_own_asgi_message() -> None:
    body = json.dumps(chat("one message per event", stream=True)).encode()
    sent = await _call_app(create_app(), "POST", "/v1/chat/completions", body)
    assert sent[0]["type"] == "http.response.start"
    bodies = sent[1:]
    # role, 4 contents, finish, [DONE], then the empty closing message.
    assert len(bodies) == 8
    assert all(m["more_body"] for m in bodies[:-1]) and bodies[-1] == {
        "type": "http.response.body",
        "body": b"",
        "more_body": False,
    }
    assert all(m["body"].startswith(b"data: ") and m["body"].endswith(b"\n\n") for m in bodies[:-1])


async def test_drop_outside_uvicorn_raises() -> None:
    body = json.dumps(chat("x")).encode()
    with pytest.raises(ConnectionDropped):
        await _call_app(create_app(), "POST", "/chat/completions", body, ((b"x-mock-drop", b"before-headers"),))


async def test_lifespan_is_answered() -> None:
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: Any) -> None:
        sent.append(message["type"])

    await asyncio.wait_for(create_app()({"type": "lifespan"}, receive, send), timeout=5)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
