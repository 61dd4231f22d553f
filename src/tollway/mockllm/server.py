"""The mock model server: a plain ASGI 3 app over :mod:`tollway.mockllm.replies`.

Routes (each also without the leading ``/v1``):

* ``POST /v1/chat/completions``, ``POST /v1/completions``, ``POST /v1/embeddings``,
  ``GET /v1/models``, ``GET /v1/models/{id}`` — OpenAI shapes;
* ``POST /v1/messages``, ``POST /v1/messages/count_tokens`` — Anthropic shapes;
* ``GET /_mock/requests`` (the last 200 requests, newest last) and
  ``DELETE /_mock/requests`` (forget them) — for tests; not recorded themselves.

Anything else is a 404, invalid JSON a 400, both in the route's error shape (Anthropic on
``/messages``, OpenAI elsewhere).

Per-request controls are request headers, so they pass through a gateway unchanged:

* ``x-mock-latency-ms``: sleep before the response starts (applies to every answer);
* ``x-mock-ttft-ms``: streams only — sleep between the prelude (role chunk; or
  ``message_start``/``content_block_start``/``ping``) and the first content event;
* ``x-mock-chunk-delay-ms``: streams only — sleep before each event after the first
  content event;
* ``x-mock-chunks``: number of content pieces (default 4; at most the text's length);
* ``x-mock-status``: answer with this 4xx/5xx status and an error body, message
  ``"mock error <status>"``;
* ``x-mock-drop: before-headers``: close the connection without any response;
  ``x-mock-drop: mid-stream``: close it right after the first content event (for a
  non-streaming answer: after the first half of the body), leaving the body incomplete;
* ``x-mock-reply``: use this exact reply text (UTF-8) instead of the default.

A malformed control value is a 400.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from types import FrameType
from typing import Any, Final

import orjson
import uvicorn

from tollway.mockllm import replies
from tollway.mockllm.replies import RequestError, SseStream

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

RECORD_LIMIT: Final = 200
MAX_CHUNKS: Final = 10_000
# How long a drop waits for the server to notice the closed connection (see _drop).
_DROP_SETTLE_SECONDS: Final = 2.0

_JSON: Final = b"application/json"
_SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
]
_ROUTES: Final = {
    ("POST", "/chat/completions"): "chat",
    ("POST", "/completions"): "completions",
    ("POST", "/embeddings"): "embeddings",
    ("GET", "/models"): "models",
    ("POST", "/messages"): "messages",
    ("POST", "/messages/count_tokens"): "count_tokens",
}


class ConnectionDropped(Exception):
    """Raised to abort a response when the server gives no way to close the connection."""


class _UnknownModel(RequestError):
    """``GET /models/{id}`` for an id the mock does not list (answered as 404)."""


@dataclass(frozen=True, slots=True)
class Controls:
    """The ``x-mock-*`` request headers of one request; delays in seconds."""

    latency: float = 0.0
    ttft: float = 0.0
    chunk_delay: float = 0.0
    chunks: int = replies.DEFAULT_CHUNKS
    status: int | None = None
    drop: str | None = None
    reply: str | None = None


_NO_CONTROLS: Final = Controls()


def _milliseconds(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0.0 <= number <= 3_600_000.0:
        raise RequestError(f"{name} must be a number of milliseconds from 0 to 3600000")
    return number / 1000.0


def parse_controls(headers: Iterable[tuple[bytes, bytes]]) -> Controls:
    """Read the ``x-mock-*`` controls from ASGI headers; a bad value raises RequestError."""
    found: dict[str, str] = {}
    for raw_name, raw_value in headers:
        # Cheap test first: most requests (benchmarks) carry no control at all.
        if raw_name[:7].lower() != b"x-mock-":
            continue
        try:
            value = raw_value.decode("utf-8")
        except UnicodeDecodeError:
            value = raw_value.decode("latin-1")
        found[raw_name.decode("latin-1").lower()] = value
    if not found:
        return _NO_CONTROLS
    fields: dict[str, Any] = {}
    for name, value in found.items():
        if name == "x-mock-latency-ms":
            fields["latency"] = _milliseconds(name, value)
        elif name == "x-mock-ttft-ms":
            fields["ttft"] = _milliseconds(name, value)
        elif name == "x-mock-chunk-delay-ms":
            fields["chunk_delay"] = _milliseconds(name, value)
        elif name == "x-mock-chunks":
            if not value.strip().isdigit() or not 1 <= int(value) <= MAX_CHUNKS:
                raise RequestError(f"x-mock-chunks must be an integer from 1 to {MAX_CHUNKS}")
            fields["chunks"] = int(value)
        elif name == "x-mock-status":
            if not value.strip().isdigit() or not 400 <= int(value) <= 599:
                raise RequestError("x-mock-status must be an HTTP status from 400 to 599")
            fields["status"] = int(value)
        elif name == "x-mock-drop":
            if value.strip() not in ("before-headers", "mid-stream"):
                raise RequestError("x-mock-drop must be 'before-headers' or 'mid-stream'")
            fields["drop"] = value.strip()
        elif name == "x-mock-reply":
            fields["reply"] = value
        else:
            raise RequestError(f"unknown control header {name}")
    return Controls(**fields)


def _route_path(path: str) -> str:
    """``path`` without a leading ``/v1`` and without a trailing slash."""
    if path == "/v1" or path.startswith("/v1/"):
        path = path[3:]
    return path.rstrip("/") or "/"


class MockApp:
    """The mock-llm ASGI 3 application, with its own request record and id counter."""

    def __init__(self) -> None:
        self.requests: deque[dict[str, Any]] = deque(maxlen=RECORD_LIMIT)
        self._ids = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope (``http`` or ``lifespan``; others are ignored)."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        if body is None:
            return  # the client left before sending its whole request
        method: str = scope["method"]
        route = _route_path(scope["path"])
        anthropic = route.startswith("/messages")

        if route == "/_mock/requests":
            await self._inspect(method, send, anthropic)
            return
        self.requests.append(_record(scope, body))

        try:
            controls = parse_controls(scope["headers"])
        except RequestError as error:
            await _send_error(send, 400, str(error), anthropic, "invalid_control")
            return
        if controls.latency:
            await asyncio.sleep(controls.latency)
        if controls.drop == "before-headers":
            await _drop(receive, flush=False)
            return
        if controls.status is not None:
            message = f"mock error {controls.status}"
            await _send_error(send, controls.status, message, anthropic, "mock_error")
            return

        try:
            result = self._answer(method, route, body, controls)
        except _UnknownModel as error:
            message = f"The model '{error}' does not exist"
            await _send_error(send, 404, message, anthropic, "model_not_found")
            return
        except RequestError as error:
            await _send_error(send, 400, str(error), anthropic, "invalid_request")
            return
        if result is None:
            message = f"Invalid URL ({method} {scope['path']})"
            await _send_error(send, 404, message, anthropic, "unknown_url")
        elif isinstance(result, SseStream):
            await _send_stream(send, receive, result, controls)
        elif controls.drop == "mid-stream":
            await _send_half_then_drop(send, receive, orjson.dumps(result))
        else:
            await _send_json(send, 200, orjson.dumps(result))

    def _answer(self, method: str, route: str, raw: bytes, controls: Controls) -> dict[str, Any] | SseStream | None:
        """The reply to a routed request; None for an unknown route."""
        kind = _ROUTES.get((method, route))
        if kind is None:
            if method == "GET" and route.startswith("/models/"):
                found = replies.model_object(route[len("/models/") :])
                if found is not None:
                    return found
                raise _UnknownModel(route[len("/models/") :])
            return None
        if kind == "models":
            return replies.models_list()
        body = _parse_json(raw)
        stream = body.get("stream") is True
        number = next(self._ids)
        created = int(time.time())
        if kind == "chat":
            ident = f"chatcmpl-mock-{number}"
            if stream:
                return replies.chat_completion_stream(
                    body, ident=ident, created=created, chunks=controls.chunks, reply=controls.reply
                )
            return replies.chat_completion(body, ident=ident, created=created, reply=controls.reply)
        if kind == "completions":
            ident = f"cmpl-mock-{number}"
            if stream:
                return replies.completion_stream(
                    body, ident=ident, created=created, chunks=controls.chunks, reply=controls.reply
                )
            return replies.completion(body, ident=ident, created=created, reply=controls.reply)
        if kind == "embeddings":
            return replies.embeddings(body)
        if kind == "count_tokens":
            return {"input_tokens": replies.anthropic_input_tokens(body)}
        ident = f"msg_mock_{number}"
        if stream:
            return replies.anthropic_message_stream(body, ident=ident, chunks=controls.chunks, reply=controls.reply)
        return replies.anthropic_message(body, ident=ident, reply=controls.reply)

    async def _inspect(self, method: str, send: Send, anthropic: bool) -> None:
        if method == "GET":
            await _send_json(send, 200, orjson.dumps({"requests": list(self.requests)}))
        elif method == "DELETE":
            self.requests.clear()
            await _send_json(send, 200, b'{"requests":[]}')
        else:
            await _send_error(send, 404, f"Invalid URL ({method} /_mock/requests)", anthropic, "unknown_url")


def create_app() -> MockApp:
    """Return a fresh mock-llm ASGI app with an empty request record."""
    return MockApp()


# --- ASGI plumbing ----------------------------------------------------------------------


async def _lifespan(receive: Receive, send: Send) -> None:
    # Nothing to set up; answering lets the app run under lifespan="on" too.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None if the client disconnected first."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


def _parse_json(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise RequestError(f"invalid JSON body: {error}") from None
    if not isinstance(body, dict):
        raise RequestError("the JSON body must be an object")
    return body


def _record(scope: Scope, body: bytes) -> dict[str, Any]:
    return {
        "method": scope["method"],
        "path": scope["path"],
        "query_string": scope.get("query_string", b"").decode("latin-1"),
        "headers": [[name.decode("latin-1").lower(), value.decode("latin-1")] for name, value in scope["headers"]],
        "body": body.decode("utf-8", errors="replace"),
    }


async def _send_json(send: Send, status: int, payload: bytes) -> None:
    headers = [(b"content-type", _JSON), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload, "more_body": False})


async def _send_error(send: Send, status: int, message: str, anthropic: bool, code: str) -> None:
    if anthropic:
        body = replies.anthropic_error(status, message)
    else:
        body = replies.openai_error(status, message, code)
    await _send_json(send, status, orjson.dumps(body))


async def _send_stream(send: Send, receive: Receive, stream: SseStream, controls: Controls) -> None:
    """Send ``stream`` one event per ASGI message, with the controls' delays and drop."""
    await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
    first = stream.first_content
    for index, event in enumerate(stream.events):
        if index == first and controls.ttft:
            await asyncio.sleep(controls.ttft)
        elif index > first and controls.chunk_delay:
            await asyncio.sleep(controls.chunk_delay)
        await send({"type": "http.response.body", "body": event, "more_body": True})
        if index == first and controls.drop == "mid-stream":
            await _drop(receive, flush=True)
            return
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _send_half_then_drop(send: Send, receive: Receive, payload: bytes) -> None:
    # The full content-length is announced, so a client knows the body is cut short.
    headers = [(b"content-type", _JSON), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    half = payload[: len(payload) // 2]
    await send({"type": "http.response.body", "body": half, "more_body": True})
    await _drop(receive, flush=True)


async def _drop(receive: Receive, *, flush: bool) -> None:
    """Close the client's connection without finishing the HTTP response.

    ASGI has no "abort" message. Under uvicorn, ``receive`` is a bound method of the
    request cycle, which holds the asyncio transport: closing it is a real drop, and
    uvicorn, seeing the connection lost, neither answers 500 nor logs an error. ``flush``
    lets already-sent bytes reach the client first. Under any other server this raises
    :class:`ConnectionDropped`, which servers answer by closing the connection once the
    response has started (and with a 500 before that).
    """
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    # Duck-typed: uvloop's transports do not subclass asyncio's transport classes.
    close = getattr(transport, "close" if flush else "abort", None)
    if not callable(close):
        raise ConnectionDropped("x-mock-drop")
    close()
    # Wait until uvicorn has marked the request disconnected; returning earlier would make
    # it believe the app forgot to answer.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_DROP_SETTLE_SECONDS):
            while (await receive())["type"] != "http.disconnect":
                pass


# --- running it -------------------------------------------------------------------------


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (port 0 picks a free one)."""
    family, kind, proto, _name, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        # Listening now queues connections made before uvicorn starts serving.
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def serve(host: str, port: int) -> int:
    """Run mock-llm on ``host``:``port`` until SIGINT or SIGTERM; return the exit status.

    Prints ``mock-llm listening on http://HOST:PORT`` (the bound address) to stderr once
    the socket is bound. Returns 0 after a signal, 1 if the address cannot be bound.
    """
    try:
        sock = _bind(host, port)
    except OSError as error:
        reason = (error.strerror or str(error)).lower()  # (as tollway serve says it, without "[Errno 98]")
        print(f"tollway: mock-llm cannot listen on {host}:{port}: {reason}", file=sys.stderr, flush=True)
        return 1
    config = uvicorn.Config(
        create_app(),
        loop="uvloop",
        http="httptools",
        ws="none",
        lifespan="off",
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    print(f"mock-llm listening on http://{shown}:{bound_port}", file=sys.stderr, flush=True)

    def stop(signum: int, frame: FrameType | None) -> None:
        server.should_exit = True

    # uvicorn re-raises a caught SIGINT/SIGTERM once shut down, which would end the process
    # with a non-zero status; with these handlers in place that re-raise only sets a flag.
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for handled in (signal.SIGINT, signal.SIGTERM):
            previous[handled] = signal.signal(handled, stop)
    try:
        server.run(sockets=[sock])
    finally:
        for handled, handler in previous.items():
            signal.signal(handled, handler)
        sock.close()
    return 0
