"""A minimal raw-ASGI pass-through proxy: the floor a Python gateway pays per call.

Per request: one dict lookup for the caller's key, orjson parse of the request (the
model), forward with the provider's key, orjson parse of the answer's usage, return.
The upstream client is picked by ``BENCH_CLIENT`` (aiohttp, httpx, raw); the upstream
root is ``BENCH_UPSTREAM`` (http://127.0.0.1:PORT). Benchmark-only.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from clients import CLIENTS, Client

CONSUMERS = {b"Bearer k-bench": "bench"}
PROVIDER_AUTH = ("authorization", "Bearer sk-bench")
_KEEP_RESPONSE = frozenset({"content-type"})

_client: Client | None = None


def _make_client() -> Client:
    return CLIENTS[os.environ.get("BENCH_CLIENT", "aiohttp")](os.environ["BENCH_UPSTREAM"])


async def _reply(send: Any, status: int, body: bytes, ctype: str = "application/json") -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _client
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                _client = _make_client()
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                if _client is not None:
                    await _client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    consumer = None
    for k, v in scope["headers"]:
        if k == b"authorization":
            consumer = CONSUMERS.get(v)
    del consumer  # a real gateway would act on it; the lookup is what costs
    parts = []
    more = True
    while more:
        msg = await receive()
        parts.append(msg.get("body", b""))
        more = msg.get("more_body", False)
    body = parts[0] if len(parts) == 1 else b"".join(parts)
    try:
        model = orjson.loads(body).get("model")
    except (orjson.JSONDecodeError, AttributeError):
        model = None
    if not isinstance(model, str):
        await _reply(send, 400, b'{"error":{"message":"model required"}}')
        return
    assert _client is not None
    status, headers, data = await _client.post(
        scope["path"], [("content-type", "application/json"), PROVIDER_AUTH], body
    )
    if status == 200:
        try:
            usage = orjson.loads(data).get("usage")
        except (orjson.JSONDecodeError, AttributeError):
            usage = None
        del usage
    ctype = next((v for k, v in headers if k in _KEEP_RESPONSE), "application/json")
    await _reply(send, status, data, ctype)
