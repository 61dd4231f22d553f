"""Driving a ``GatewayUnderTest`` with requests no HTTP client library would send (a
target with dot segments or raw bytes, two Host headers, an absolute-form target), and a
recording upstream that keeps every request exactly as it reached the provider."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import orjson

from tollway.testing.gateway import GatewayUnderTest

CHAT_ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13},
}


@dataclass(frozen=True)
class Reached:
    """One request as the provider got it."""

    method: str
    raw_path: bytes
    query: bytes
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k == name]
        assert len(values) <= 1, f"{name} sent {len(values)} times"
        return values[0] if values else None

    def names(self) -> set[str]:
        return {k for k, _ in self.headers}

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class RecordingUpstream:
    """Records each request (``seen``) and answers ``status`` with ``body`` as
    ``content_type`` (an OpenAI chat answer with usage, unless told otherwise), and any
    other ``headers``."""

    seen: list[Reached] = field(default_factory=list)
    status: int = 200
    content_type: str = "application/json"
    body: bytes = orjson.dumps(CHAT_ANSWER)
    headers: tuple[tuple[bytes, bytes], ...] = ()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"])
        self.seen.append(Reached(scope["method"], scope["raw_path"], scope["query_string"], headers, body))
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [(b"content-type", self.content_type.encode()), *self.headers],
            }
        )
        await send({"type": "http.response.body", "body": self.body})


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


async def send_raw(
    gw: GatewayUnderTest,
    method: str,
    target: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
    query: bytes = b"",
) -> Answer:
    """One request through the gateway's ASGI app with ``target`` as the server read it
    off the wire (``raw_path``; ``path`` decoded as uvicorn decodes it)."""
    if headers is None:
        headers = [(b"host", b"gw")]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(target.decode("latin-1")),
        "raw_path": target,
        "query_string": query,
        "root_path": "",
        "headers": [*headers, (b"content-length", str(len(body)).encode())] if body else headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 80),
    }
    sent = False
    started: dict[str, Any] = {}
    parts: list[bytes] = []

    async def receive() -> MutableMapping[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client stays until the answer is in
        return {"type": "http.disconnect"}

    async def send_message(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            started.update(message)
        else:
            parts.append(message.get("body", b""))

    await gw.app(scope, receive, send_message)
    answer_headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in started["headers"]}
    return Answer(started["status"], answer_headers, b"".join(parts))
