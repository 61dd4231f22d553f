"""A fake of OpenAI's files and batches API: one account, holding every upload and batch
it is sent, as a provider account holds every consumer's.

- ``POST /v1/files`` (multipart, ``purpose`` and ``file``) → a file object ``file-N``;
- ``GET /v1/files`` → the files in the order made, ``limit`` a page (default all)
  ``after`` an id, as OpenAI pages them; ``GET /v1/files/{id}``, ``…/content``,
  ``DELETE /v1/files/{id}``;
- ``POST /v1/batches`` → a batch ``batch-N`` in ``validating``; the first
  ``GET /v1/batches/{id}`` after it finds it ``completed`` with an output file (made
  then), as a batch that ran; ``GET /v1/batches`` → the batches, paged alike;
  ``POST /v1/batches/{id}/cancel``.

Unknown ids → 404 in OpenAI's error shape. ``seen`` keeps each request's method and
path, in order.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import parse_qsl

import orjson

from tests.support.loopback_server import LoopbackServer, read_request

_FILE = re.compile(r"^/v1/files/([^/]+)(/content)?$")
_BATCH = re.compile(r"^/v1/batches/([^/]+)(/cancel)?$")
_PURPOSE = re.compile(rb'name="purpose"\r\n\r\n([^\r]*)')
_FILE_PART = re.compile(rb'name="file"; filename="([^"]*)"\r\n(?:[^\r]+\r\n)*\r\n(.*?)\r\n--', re.S)


class FilesProvider(LoopbackServer):
    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.seen: list[tuple[str, str]] = []
        self._made = 0

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, body = await read_request(reader)
            method, target = head.split(b"\r\n", 1)[0].decode().split(" ")[:2]
            path, _, query = target.partition("?")
            self.seen.append((method, path))
            status, out = self._route(method, path, dict(parse_qsl(query)), body)
            content_type = b"application/jsonl" if path.endswith("/content") and status == 200 else b"application/json"
            writer.write(
                b"HTTP/1.1 %d X\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n%s"
                % (status, content_type, len(out), out)
            )
            await writer.drain()

    def _route(self, method: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, bytes]:
        if path == "/v1/files":
            return (200, self._upload(body)) if method == "POST" else (200, _page(list(self.files.values()), query))
        if path == "/v1/batches":
            if method == "POST":
                return 200, self._new_batch(body)
            return 200, _page(list(self.batches.values()), query)
        found = _FILE.match(path)
        if found and found[1] in self.files:
            if found[2]:
                return 200, self.contents[found[1]]
            if method == "DELETE":
                del self.files[found[1]]
                return 200, orjson.dumps({"id": found[1], "object": "file", "deleted": True})
            return 200, orjson.dumps(self.files[found[1]])
        found = _BATCH.match(path)
        if found and found[1] in self.batches:
            batch = self.batches[found[1]]
            if found[2]:
                batch["status"] = "cancelling"
            elif batch["status"] == "validating":
                self._run(batch)
            return 200, orjson.dumps(batch)
        return 404, orjson.dumps({"error": {"message": f"No such object: {path}", "type": "invalid_request_error"}})

    def _file(self, name: str, purpose: str, content: bytes) -> dict[str, Any]:
        self._made += 1
        file_id = f"file-{self._made}"
        self.files[file_id] = {"id": file_id, "object": "file", "bytes": len(content), "created_at": 1,
                               "filename": name, "purpose": purpose, "status": "processed"}  # fmt: skip
        self.contents[file_id] = content
        return self.files[file_id]

    def _upload(self, body: bytes) -> bytes:
        purpose = _PURPOSE.search(body)
        part = _FILE_PART.search(body)
        name, content = (part[1].decode(), part[2]) if part else ("upload", b"")
        return orjson.dumps(self._file(name, purpose[1].decode() if purpose else "", content))

    def _new_batch(self, body: bytes) -> bytes:
        request = orjson.loads(body)
        self._made += 1
        batch_id = f"batch-{self._made}"
        self.batches[batch_id] = {
            "id": batch_id,
            "object": "batch",
            "endpoint": request["endpoint"],
            "input_file_id": request["input_file_id"],
            "completion_window": request["completion_window"],
            "created_at": 1,
            "status": "validating",
        }
        return orjson.dumps(self.batches[batch_id])

    def _run(self, batch: dict[str, Any]) -> None:
        output = self._file(f"{batch['id']}_output.jsonl", "batch_output", b'{"custom_id": "q1"}\n')
        batch.update(status="completed", output_file_id=output["id"])


def _page(every: list[dict[str, Any]], query: dict[str, str]) -> bytes:
    ids = [item["id"] for item in every]
    start = ids.index(query["after"]) + 1 if query.get("after") in ids else 0
    end = start + int(query.get("limit", len(every)))
    items = every[start:end]
    return orjson.dumps(
        {
            "object": "list",
            "data": items,
            "has_more": end < len(every),
            "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None,
        }
    )


__all__ = ["FilesProvider"]
