"""A recording fake provider for end-to-end tests: a plain asyncio HTTP/1.1 server on a
free loopback port, run by its own event loop in a background thread.

It answers every provider protocol the gateway speaks from the hand-written transcripts
in ``tests/fixtures/transcripts`` (chosen by path, whatever the prefix before it):

- ``…/chat/completions`` → OpenAI ``chat_{text,tools}``: JSON, or SSE when ``stream``;
- ``…/messages`` → Anthropic ``messages_{text,tools}``: JSON, or SSE when ``stream``;
- ``…/models/<m>:generateContent`` → Gemini ``generate_{text,tools}`` JSON;
  ``…:streamGenerateContent`` → its SSE, only with ``alt=sse`` (else a 400);
- ``GET …/models`` → the model list of the protocol the request speaks (a ``v1beta``
  path: Gemini; an ``anthropic-version`` header: Anthropic; else OpenAI).

``*_tools`` answers are used when the request body carries tools, Gemini's
``generate_json`` when it asks for JSON (``responseMimeType``), Anthropic's
``messages_thinking`` (signed and redacted thinking, then a tool call) when it asks for
``thinking``, and ``messages_cache_1h`` (cache writes split by the cache's lifetime in
``usage.cache_creation``) when a block asks for the one-hour cache
(``cache_control: {ttl: "1h"}``). Every request is
recorded (``seen``) before it is answered. Faults are set on the fake, never by request
header (headers reach every provider of a failover list alike):

- ``next_answers(503, "drop", …)``: the next answers, in order, then normal ones;
- ``always(status_or_drop)``: every answer from now on (``None`` to stop);
- ``refuse_key(key, 401)``: requests carrying this key (in any auth header) get that status.

``"drop"`` sends the headers and the first event of a stream (the first half of a JSON
body) and closes the connection mid-response. A stream's ``"cut"`` sends its first two
events and ends the body cleanly there (no terminal event: a cut no transport sees);
``"error"`` sends them, then an error event in the protocol's own shape (then, for
OpenAI chat, ``[DONE]``), as a provider that fails mid-answer does. ``"error200"``
answers status 200 with the protocol's error body (a provider or a proxy in front of it
that says 200 all the same). ``"nofinish"`` answers in full, but an OpenAI answer's
``finish_reason`` is null throughout (a server that never says it finished). Error bodies are in
the protocol's own shape with the message ``fake error <status>``.

The gateway side of such tests is here too: ``serve_gateway`` starts ``tollway serve``
for a module, ``usage_record`` reads one request's usage record off the admin API.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl

import httpx

from tests.conftest import Proc, start_process
from tests.support.transcript_support import TRANSCRIPTS

Fault = int | Literal["drop", "cut", "error", "error200", "nofinish"]

_EVENT_END = re.compile(rb"(?<=\r\n\r\n)|(?<=\n\n)")
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error", 503: "Service Unavailable", 529: "Overloaded"}  # fmt: skip
_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                    429: "rate_limit_error", 529: "overloaded_error"}  # fmt: skip
_GEMINI_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
                  503: "UNAVAILABLE"}  # fmt: skip


@dataclass(frozen=True)
class Seen:
    """One request as the fake received it."""

    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]  # names lower-cased, in the order sent
    body: bytes

    def header(self, name: str) -> str | None:
        """The one value of header ``name``; an error when it was sent more than once."""
        values = self.all(name)
        assert len(values) <= 1, f"header {name!r} sent {len(values)} times: {values!r}"
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def params(self) -> dict[str, str]:
        return dict(parse_qsl(self.query, keep_blank_values=True))


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes  # JSON, or the whole raw SSE text


def _transcript(provider: str, name: str) -> bytes:
    return (TRANSCRIPTS / provider / name).read_bytes()


def _protocol(seen: Seen) -> str:
    """The protocol a request speaks: by its path, else (a model list) by its headers."""
    if ":generateContent" in seen.path or ":streamGenerateContent" in seen.path or "/v1beta/" in seen.path:
        return "gemini"
    if seen.path.endswith("/messages"):
        return "anthropic"
    if seen.path.endswith("/chat/completions") or not seen.path.startswith("/v1/"):
        return "openai"  # (only the Anthropic API sits at the root: the others under /<type>/v1/)
    return "anthropic" if seen.all("anthropic-version") else "openai"


def error_answer(protocol: str, status: int) -> Answer:
    message = f"fake error {status}"
    body: dict[str, Any]
    if protocol == "anthropic":
        body = {"type": "error", "error": {"type": _ANTHROPIC_TYPES.get(status, "api_error"), "message": message}}
    elif protocol == "gemini":
        body = {"error": {"code": status, "message": message, "status": _GEMINI_STATUS.get(status, "INTERNAL")}}
    else:
        etype = "rate_limit_error" if status == 429 else ("server_error" if status >= 500 else "invalid_request_error")
        body = {"error": {"message": message, "type": etype, "param": None, "code": None}}
    return Answer(status, "application/json", json.dumps(body).encode())


def canned_answer(seen: Seen) -> Answer:
    """The transcript answering ``seen``, or a 4xx in its protocol's shape."""
    protocol = _protocol(seen)
    if seen.method in ("GET", "HEAD") and seen.path.endswith("/models"):
        return Answer(200, "application/json", _transcript(protocol, "models.json"))
    if seen.method == "GET" and "/models/" in seen.path:  # one model's details: its entry in the list
        listed = json.loads(_transcript(protocol, "models.json"))
        wanted = seen.path.rpartition("/models/")[2]
        for entry in listed.get("data") or listed.get("models") or ():
            if wanted in (entry.get("id"), entry.get("name", "").removeprefix("models/")):
                return Answer(200, "application/json", json.dumps(entry).encode())
        return error_answer(protocol, 404)
    if seen.method != "POST":
        return error_answer(protocol, 404)
    try:
        body = seen.json()
    except ValueError:
        return error_answer(protocol, 400)
    kind = "tools" if isinstance(body, dict) and body.get("tools") else "text"
    if protocol == "gemini" and _asks_json(body):
        kind = "json"
    if protocol == "anthropic" and isinstance(body, dict) and body.get("thinking"):
        kind = "thinking"
    if protocol == "anthropic" and _asks_hour_cache(body):
        kind = "cache_1h"
    stream = isinstance(body, dict) and body.get("stream") is True
    if seen.path.endswith("/chat/completions"):
        name = f"chat_{kind}"
    elif seen.path.endswith("/messages"):
        name = f"messages_{kind}"
    elif seen.path.endswith(":generateContent"):
        name, stream = f"generate_{kind}", False
    elif seen.path.endswith(":streamGenerateContent"):
        # (Without alt=sse: the same chunks as one JSON array, ``_send_array``.)
        name, stream = f"generate_{kind}", True
    else:
        return error_answer(protocol, 404)
    if stream:
        return Answer(200, "text/event-stream", _transcript(protocol, f"{name}.stream.sse"))
    return Answer(200, "application/json", _transcript(protocol, f"{name}.response.json"))


def _asks_hour_cache(body: Any) -> bool:
    """Whether a Messages request's system blocks ask for Anthropic's one-hour cache."""
    system = body.get("system") if isinstance(body, dict) else None
    blocks = system if isinstance(system, list) else ()
    return any(isinstance(b, dict) and (b.get("cache_control") or {}).get("ttl") == "1h" for b in blocks)


def _asks_json(body: Any) -> bool:
    config = body.get("generationConfig") if isinstance(body, dict) else None
    return isinstance(config, dict) and config.get("responseMimeType") == "application/json"


class FakeProvider:
    """See the module docstring. Use as a context manager, or ``start()``/``stop()``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: list[Seen] = []
        self._next: deque[Fault] = deque()
        self._always: Fault | None = None
        self._refused: dict[str, int] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-provider", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.url = ""
        # The pause between the elements of a Gemini stream sent as a JSON array.
        self.array_gap_s = 0.0

    # ---- lifetime ------------------------------------------------------------------

    def start(self) -> FakeProvider:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _listen(self) -> asyncio.base_events.Server:
        return await asyncio.start_server(self._connection, "127.0.0.1", 0)

    async def _close(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---- test controls -------------------------------------------------------------

    @property
    def seen(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    def reset(self) -> None:
        """Forget what was seen and every fault set."""
        with self._lock:
            self._seen.clear()
            self._next.clear()
            self._always = None
            self._refused.clear()
        self.array_gap_s = 0.0

    def next_answers(self, *faults: Fault) -> None:
        with self._lock:
            self._next.extend(faults)

    def always(self, fault: Fault | None) -> None:
        with self._lock:
            self._always = fault

    def refuse_key(self, key: str, status: int = 401) -> None:
        with self._lock:
            self._refused[key] = status

    # ---- serving -------------------------------------------------------------------

    def _record(self, seen: Seen) -> Fault | None:
        with self._lock:
            self._seen.append(seen)
            for name in ("authorization", "x-api-key", "api-key", "x-goog-api-key"):
                for value in seen.all(name):
                    status = self._refused.get(value.removeprefix("Bearer "))
                    if status is not None:
                        return status
            if self._next:
                return self._next.popleft()
            return self._always

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            while await self._exchange(reader, writer):
                pass
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Reads one request and answers it; False when the connection must end."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        line, *lines = head.decode("latin-1").split("\r\n")
        method, target, _version = line.split(" ", 2)
        headers = tuple(
            (name.strip().lower(), value.strip()) for name, _, value in (h.partition(":") for h in lines if h)
        )
        names = {k: v for k, v in headers}
        if names.get("transfer-encoding", "").lower() == "chunked":
            body = await _read_chunked(reader)
        else:
            body = await reader.readexactly(int(names.get("content-length", "0")))
        path, _, query = target.partition("?")
        seen = Seen(method, path, query, headers, body)
        fault = self._record(seen)
        if isinstance(fault, int):
            await _send(writer, error_answer(_protocol(seen), fault))
            return True
        if fault == "error200":
            error = error_answer(_protocol(seen), 500)
            await _send(writer, Answer(200, error.content_type, error.body))
            return True
        try:
            answer = canned_answer(seen)
        except Exception as exc:  # a bug in the fake: say so to the client, do not just hang up
            failed = {"error": {"message": f"fake provider failed: {exc!r}", "type": "server_error"}}
            answer = Answer(500, "application/json", json.dumps(failed).encode())
        if fault == "nofinish":
            answer = Answer(answer.status, answer.content_type, _FINISH.sub(b'"finish_reason": null', answer.body))
        if (
            answer.content_type == "text/event-stream"
            and _protocol(seen) == "gemini"
            and seen.params.get("alt") != "sse"
        ):
            return await _send_array(writer, answer, fault if isinstance(fault, str) else None, self.array_gap_s)
        if answer.content_type == "text/event-stream":
            return await _send_stream(writer, answer, fault if isinstance(fault, str) else None, _protocol(seen))
        if fault == "drop":
            await _send(writer, answer, cut=True)
            return False
        await _send(writer, answer, head_only=method == "HEAD")
        return True


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        parts.append(await reader.readexactly(size + 2))
        if size == 0:
            return b"".join(p[:-2] for p in parts)


_FINISH = re.compile(rb'"finish_reason": ?"[a-z_]+"')


def _status_line(status: int) -> bytes:
    return f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n".encode()


async def _send(writer: asyncio.StreamWriter, answer: Answer, cut: bool = False, head_only: bool = False) -> None:
    body = answer.body[: len(answer.body) // 2] if cut else b"" if head_only else answer.body
    # A rate limit says when to come back, as OpenAI's and Anthropic's do.
    retry = "retry-after: 7\r\n" if answer.status == 429 else ""
    head = f"content-type: {answer.content_type}\r\n{retry}content-length: {len(answer.body)}\r\n\r\n"
    writer.write(_status_line(answer.status) + head.encode() + body)
    await writer.drain()
    if cut:
        writer.close()


def error_event(protocol: str) -> bytes:
    """An error event mid-stream, as each protocol sends one."""
    message = "fake error mid-stream"
    if protocol == "anthropic":
        err = {"type": "error", "error": {"type": "overloaded_error", "message": message}}
        return b"event: error\ndata: " + json.dumps(err).encode() + b"\n\n"
    if protocol == "gemini":
        failed = {"error": {"code": 503, "message": message, "status": "UNAVAILABLE"}}
        return b"data: " + json.dumps(failed).encode() + b"\n\n"
    err = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
    return b"data: " + json.dumps(err).encode() + b"\n\ndata: [DONE]\n\n"


async def _send_stream(writer: asyncio.StreamWriter, answer: Answer, fault: str | None, protocol: str) -> bool:
    """The SSE body one event per chunk (chunked encoding), as a provider streams it."""
    writer.write(_status_line(200) + b"content-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
    events = [e for e in _EVENT_END.split(answer.body) if e]
    if fault == "drop":
        events = events[:1]
    elif fault == "cut":
        events = events[:2]
    elif fault == "error":
        events = [*events[:2], error_event(protocol)]
    for event in events:
        writer.write(b"%x\r\n%s\r\n" % (len(event), event))
        await writer.drain()
    if fault == "drop":
        writer.close()  # mid-body: the client sees the connection end before the last chunk
        return False
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    return True


async def _send_array(writer: asyncio.StreamWriter, answer: Answer, fault: str | None, gap_s: float) -> bool:
    """Gemini's stream without ``alt=sse``, as Google sends it: one JSON array, each chunk
    pretty-printed and sent as it is made (``gap_s`` apart), ``\r\n,\r\n`` between them.
    ``drop``: the connection ends after the first; ``cut``: the body ends cleanly after
    the second, the array unclosed; ``error``: an error object after the second."""
    writer.write(
        _status_line(200) + b"content-type: application/json; charset=UTF-8\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    chunks = [json.loads(e.removeprefix(b"data: ")) for e in _EVENT_END.split(answer.body) if e.strip()]
    if fault == "drop":
        chunks = chunks[:1]
    elif fault in ("cut", "error"):
        chunks = chunks[:2]
    if fault == "error":
        chunks.append({"error": {"code": 503, "message": "fake error mid-stream", "status": "UNAVAILABLE"}})
    pieces = [(b"[" if i == 0 else b"\r\n,\r\n") + json.dumps(c, indent=2).encode() for i, c in enumerate(chunks)]
    if fault not in ("drop", "cut"):
        pieces.append(b"]")
    for i, piece in enumerate(pieces):
        if i and gap_s:
            await asyncio.sleep(gap_s)
        writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        await writer.drain()
    if fault == "drop":
        writer.close()
        return False
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    return True


def closed_port_url() -> str:
    """An http:// URL on a loopback port nothing listens on (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ---- the gateway side ------------------------------------------------------------------


def serve_gateway(folder: Path, config: str) -> Proc:
    """``tollway serve`` with ``config`` on free ports, for a module-scoped fixture (the
    caller stops it)."""
    (folder / "tollway.yaml").write_text(config)
    return start_process(["serve", "-c", "tollway.yaml", "--port", "0", "--admin-port", "0"], cwd=folder)


def new_request_id() -> str:
    """An ``x-request-id`` to send, so the call's usage record can be found."""
    return "t-" + uuid.uuid4().hex


def usage_record(gw: Proc, request_id: str, within: float = 10.0) -> dict[str, Any]:
    """The usage record of the request sent with ``x-request-id: request_id``. Records
    are written in batches off the request path, so this waits for it to appear."""
    deadline = time.monotonic() + within
    while True:
        r = httpx.get(gw.admin_url + "/api/requests", params={"limit": "100"}, timeout=10)
        assert r.status_code == 200, r.text
        for record in r.json()["requests"]:
            if record["request_id"] == request_id:
                found: dict[str, Any] = record
                return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no usage record for request {request_id} within {within} s")
        time.sleep(0.05)


def tried(record: dict[str, Any]) -> list[tuple[str, int]]:
    """A record's ``attempts`` as (provider, status) pairs, checking each has a latency."""
    for attempt in record["attempts"]:
        assert set(attempt) == {"provider", "status", "latency_ms"}, attempt
        assert isinstance(attempt["latency_ms"], int | float) and attempt["latency_ms"] >= 0, attempt
    return [(a["provider"], a["status"]) for a in record["attempts"]]
