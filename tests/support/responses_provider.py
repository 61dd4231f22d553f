"""A small fake of OpenAI's ``POST /v1/responses``, written from OpenAI's API reference:
it answers a JSON response object, a JSON text when ``text.format`` asks for one, or the
Responses event stream when ``stream`` is true, with ``USAGE`` as its usage and
``ANSWERED_BY`` as the answering model; a background call, and reads of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from typing import Any

from tests.support.loopback_server import LoopbackServer, read_request

MODEL = "gpt-4.1-mini"
CITY = '{"city": "Paris", "country": "France"}'
ANSWERED_BY = "gpt-4.1-mini-2025-04-14"
TEXT = "Paris is the capital of France."
USAGE = {
    "input_tokens": 1200,
    "input_tokens_details": {"cached_tokens": 1024},
    "output_tokens": 57,
    "output_tokens_details": {"reasoning_tokens": 40},
    "total_tokens": 1257,
}


def _response(
    status: str, usage: dict[str, Any] | None, text: str | None, background: bool = False, rid: str = "resp_1"
) -> dict[str, Any]:
    output = []
    if text is not None:
        output = [
            {
                "type": "message",
                "id": _item_id(rid),
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ]
    return {
        "id": rid,
        "object": "response",
        "created_at": 1767000000,
        "status": status,
        "background": background,
        "model": ANSWERED_BY,
        "output": output,
        "usage": usage,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }


def _item_id(rid: str) -> str:
    """A response's message item: ``msg_N`` of ``resp_N`` (each response's items are its own)."""
    return "msg_" + rid.removeprefix("resp_")


def _events(background: bool = False, rid: str = "resp_1") -> list[tuple[str, dict[str, Any]]]:
    mid = _item_id(rid)
    item = {"type": "message", "id": mid, "status": "in_progress", "role": "assistant", "content": []}
    part = {"type": "output_text", "text": "", "annotations": []}
    events: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": _response("in_progress", None, None, background, rid)}),
        ("response.in_progress", {"response": _response("in_progress", None, None, background, rid)}),
        ("response.output_item.added", {"output_index": 0, "item": item}),
        ("response.content_part.added", {"item_id": mid, "output_index": 0, "content_index": 0, "part": part}),
    ]
    for word in TEXT.split(" "):
        delta = word if not events[-1][0].endswith("delta") else " " + word
        events.append(
            ("response.output_text.delta", {"item_id": mid, "output_index": 0, "content_index": 0, "delta": delta})
        )
    done_part = {**part, "text": TEXT}
    events += [
        ("response.output_text.done", {"item_id": mid, "output_index": 0, "content_index": 0, "text": TEXT}),
        ("response.content_part.done", {"item_id": mid, "output_index": 0, "content_index": 0, "part": done_part}),
        (
            "response.output_item.done",
            {"output_index": 0, "item": _response("completed", None, TEXT, rid=rid)["output"][0]},
        ),
        ("response.completed", {"response": _response("completed", USAGE, TEXT, background, rid)}),
    ]
    return [(name, {"type": name, "sequence_number": i, **data}) for i, (name, data) in enumerate(events)]


async def _conversation(
    writer: asyncio.StreamWriter, method: str, path: str, body: bytes, provider: ResponsesProvider
) -> None:
    """OpenAI's Conversations API, as far as a conversation's maker needs it: ``POST
    /v1/conversations`` makes ``conv_<n>``; ``POST …/{id}/items`` answers the items given,
    each with an id (``citem_<n>``); any other call on one answers it, or an empty item
    list."""
    segments = path.split("?")[0].strip("/").split("/")  # v1, conversations, id, …
    if method == "POST" and len(segments) == 2:
        provider.made += 1
        cid = f"conv_{provider.made}"
    else:
        cid = segments[2]
    answer: dict[str, Any] = {"id": cid, "object": "conversation", "created_at": 1, "metadata": {}}
    if len(segments) > 3:
        added: list[dict[str, Any]] = []
        if method == "POST" and segments[3:] == ["items"]:  # the items given, each with an id of its own
            for item in json.loads(body or b"{}").get("items", []):
                provider.made += 1
                added.append({**item, "id": f"citem_{provider.made}"})
        answer = {"object": "list", "data": added, "first_id": None, "last_id": None, "has_more": False}
    out = json.dumps(answer).encode()
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(out), out))
    await writer.drain()


class ResponsesProvider(LoopbackServer):
    """``POST /v1/responses``: the JSON answer (a JSON text when ``text.format`` asks for
    one), or its events when ``stream`` is true; ``GET /v1/responses/{id}``: the answer.
    A call with ``background: true`` is answered ``queued`` with no usage, as OpenAI
    does; reads of it then answer it finished, with its usage. Each POST makes a response
    of its own id (``resp_1``, ``resp_2``, …); a read answers the id it names.
    ``/v1/conversations``: see ``_conversation``."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.background = False
        self.made = 0
        # A stream whose input is "HOLD" sends its first event (response.created), then
        # waits for this before the rest (a client can leave it in between).
        self.released = threading.Event()

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, raw = await read_request(reader)
            method, path = head.decode("latin-1").split(" ")[:2]
            self.paths.append(f"{method} {path}")
            body = json.loads(raw) if raw else {}
            self.bodies.append(body)
            if body.get("background") is True:
                self.background = True
            if path.startswith("/v1/conversations"):
                await _conversation(writer, method, path, raw, self)
                continue
            if method == "POST":
                self.made += 1
                rid = f"resp_{self.made}"
            else:
                rid = path.split("?")[0].rstrip("/").split("/")[-1]
            if body.get("stream") or (method == "GET" and "stream=true" in path):
                events = _events(self.background, rid)
                encoded = [f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events]
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n")
                if body.get("input") == "HOLD":
                    writer.write(b"transfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(encoded[0]), encoded[0]))
                    await writer.drain()
                    await asyncio.to_thread(self.released.wait, 10)
                    rest = b"".join(encoded[1:])
                    writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(rest), rest))
                    with contextlib.suppress(ConnectionError):
                        await writer.drain()
                    continue
                out = b"".join(encoded)
            elif body.get("background") is True:
                out = json.dumps(_response("queued", None, None, True, rid)).encode()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n")
            elif method == "DELETE":
                out = json.dumps({"id": rid, "object": "response", "deleted": True}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n")
            elif method == "GET":
                out = json.dumps(_response("completed", USAGE, TEXT, self.background, rid)).encode()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n")
            elif (body.get("text") or {}).get("format", {}).get("type") == "json_schema":
                out = json.dumps(_response("completed", USAGE, CITY, rid=rid)).encode()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n")
            else:
                out = json.dumps(_response("completed", USAGE, TEXT, rid=rid)).encode()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n")
            writer.write(b"content-length: %d\r\n\r\n%s" % (len(out), out))
            await writer.drain()


__all__ = ["ANSWERED_BY", "CITY", "MODEL", "TEXT", "USAGE", "ResponsesProvider"]
