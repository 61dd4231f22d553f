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

- ``POST /v1/uploads`` → an upload ``upload-N``; ``POST /v1/uploads/{id}/parts``
  (multipart ``data``) → a part ``part-N``; ``…/complete`` (``part_ids``) → the upload
  ``completed`` with its ``file``, made of the parts in that order; ``…/cancel``;
- Anthropic's Message Batches: ``POST /v1/messages/batches`` → ``msgbatch-N``;
  ``GET /v1/messages/batches`` paged by ``limit`` and ``after_id``; ``GET …/{id}`` (its
  ``results_url`` on ``PROVIDER_HOME``, as Anthropic's is on its own host),
  ``…/{id}/results`` (JSONL), ``POST …/{id}/cancel``, ``DELETE …/{id}``.

- ``/v1/vector_stores``, ``/v1/containers`` and ``/v1/fine_tuning/jobs``: made (``vs-N``,
  ``cntr-N``, ``ftjob-N``), listed (paged alike), read, deleted; anything under one
  (a store's ``…/search``, a container's ``…/files``, a job's ``…/events``) answers an
  empty page.

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
# Where a provider says a message batch's results are: its own address, not this fake's
# (a client sent there reaches nothing).
PROVIDER_HOME = "https://provider.invalid"
_UPLOAD = re.compile(r"^/v1/uploads/([^/]+)/(parts|complete|cancel)$")
_STORE = re.compile(r"^/v1/(vector_stores|containers|fine_tuning/jobs)(?:/([^/]+)(/.+)?)?$")
_STORE_IDS = {"vector_stores": ("vs", "vector_store"), "containers": ("cntr", "container"),
              "fine_tuning/jobs": ("ftjob", "fine_tuning.job")}  # fmt: skip
_MESSAGE_BATCH = re.compile(r"^/v1/messages/batches/([^/]+)(/results|/cancel)?$")
# Gemini's batches: made by a model's method, then long-running operations by name.
_GEMINI_MAKE = re.compile(r"^/v1beta/models/[^/:]+:batchGenerateContent$")
_GEMINI_BATCH = re.compile(r"^/v1beta/batches/([^/:]+)(:cancel)?$")
_DATA_PART = re.compile(rb'name="data"(?:; filename="[^"]*")?\r\n(?:[^\r]+\r\n)*\r\n(.*?)\r\n--', re.S)
_PURPOSE = re.compile(rb'name="purpose"\r\n\r\n([^\r]*)')
_FILE_PART = re.compile(rb'name="file"; filename="([^"]*)"\r\n(?:[^\r]+\r\n)*\r\n(.*?)\r\n--', re.S)


class FilesProvider(LoopbackServer):
    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.parts: dict[str, bytes] = {}
        self.message_batches: dict[str, dict[str, Any]] = {}
        self.gemini_batches: dict[str, dict[str, Any]] = {}
        self.gemini_files: dict[str, dict[str, Any]] = {}
        self.gemini_caches: dict[str, dict[str, Any]] = {}
        self.stores: dict[str, dict[str, dict[str, Any]]] = {}  # vector stores, containers: by id
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
        if path.startswith(("/v1/uploads", "/v1/messages/batches")):
            return self._route_more(method, path, query, body)
        if path.startswith(("/v1beta/", "/upload/v1beta/")):
            return self._gemini(method, path)
        found = _STORE.match(path)
        if found:
            return self._store(method, found[1], found[2], found[3], query)
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

    def _route_more(self, method: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, bytes]:
        """Uploads and Anthropic's message batches."""
        if path == "/v1/uploads" and method == "POST":
            request = orjson.loads(body)
            upload_id = self._new_id("upload")
            self.uploads[upload_id] = {"id": upload_id, "object": "upload", "filename": request["filename"],
                                       "purpose": request["purpose"], "bytes": request["bytes"],
                                       "status": "pending", "file": None}  # fmt: skip
            return 200, orjson.dumps(self.uploads[upload_id])
        found = _UPLOAD.match(path)
        if found and found[1] in self.uploads:
            upload = self.uploads[found[1]]
            if found[2] == "parts":
                data = _DATA_PART.search(body)
                part_id = self._new_id("part")
                self.parts[part_id] = data[1] if data else b""
                return 200, orjson.dumps({"id": part_id, "object": "upload.part", "upload_id": found[1]})
            if found[2] == "complete":
                content = b"".join(self.parts[p] for p in orjson.loads(body)["part_ids"])
                upload.update(status="completed", file=self._file(upload["filename"], upload["purpose"], content))
            else:
                upload["status"] = "cancelled"
            return 200, orjson.dumps(upload)
        if path == "/v1/messages/batches":
            if method == "POST":
                batch_id = self._new_id("msgbatch")
                count = len(orjson.loads(body)["requests"])
                results = f"{PROVIDER_HOME}/v1/messages/batches/{batch_id}/results"
                self.message_batches[batch_id] = {
                    "id": batch_id, "type": "message_batch", "processing_status": "ended",
                    "request_counts": {"succeeded": count}, "results_url": results,
                }  # fmt: skip
                return 200, orjson.dumps(self.message_batches[batch_id])
            return 200, _page(list(self.message_batches.values()), query, after="after_id")
        found = _MESSAGE_BATCH.match(path)
        if found and found[1] in self.message_batches:
            batch = self.message_batches[found[1]]
            if found[2] == "/results":
                return 200, b'{"custom_id": "q1", "result": {"type": "succeeded"}}\n'
            if method == "DELETE":
                del self.message_batches[found[1]]
                return 200, orjson.dumps({"id": found[1], "type": "message_batch_deleted"})
            if found[2] == "/cancel":
                batch["processing_status"] = "canceling"
            return 200, orjson.dumps(batch)
        return 404, orjson.dumps({"error": {"message": f"No such object: {path}", "type": "invalid_request_error"}})

    def _gemini(self, method: str, path: str) -> tuple[int, bytes]:
        """Gemini's batches and files, as Google's API serves them (one page of a list)."""
        if path == "/upload/v1beta/files" and method == "POST":  # (a multipart upload)
            name = "files/" + self._new_id("gf")
            self.gemini_files[name] = {"name": name, "mimeType": "text/plain", "state": "ACTIVE"}
            return 200, orjson.dumps({"file": self.gemini_files[name]})
        if path == "/v1beta/files" and method == "GET":
            return 200, orjson.dumps({"files": list(self.gemini_files.values())} if self.gemini_files else {})
        if path.startswith("/v1beta/files/") and "files/" + path.rpartition("/")[2] in self.gemini_files:
            return 200, orjson.dumps(self.gemini_files["files/" + path.rpartition("/")[2]])
        if path.endswith(":generateContent") and method == "POST":  # (an answer to any question)
            candidate = {"content": {"role": "model", "parts": [{"text": "ok"}]}, "finishReason": "STOP"}
            usage = {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4}
            answer = {"candidates": [candidate], "usageMetadata": usage}
            return 200, orjson.dumps(answer)
        if path == "/v1beta/cachedContents":
            if method == "POST":
                name = "cachedContents/" + self._new_id("cc")
                self.gemini_caches[name] = {"name": name, "model": "models/gemini-2.0-flash"}
                return 200, orjson.dumps(self.gemini_caches[name])
            return 200, orjson.dumps(
                {"cachedContents": list(self.gemini_caches.values())} if self.gemini_caches else {}
            )
        if path.startswith("/v1beta/cachedContents/") and path[8:] in self.gemini_caches:
            return 200, orjson.dumps(
                self.gemini_caches.pop(path[8:]) if method == "DELETE" else self.gemini_caches[path[8:]]
            )
        if _GEMINI_MAKE.match(path) and method == "POST":
            name = "batches/" + self._new_id("gb")
            self.gemini_batches[name] = {"name": name, "metadata": {"state": "BATCH_STATE_PENDING"}, "done": False}
            return 200, orjson.dumps(self.gemini_batches[name])
        if path == "/v1beta/batches" and method == "GET":
            if not self.gemini_batches:
                return 200, b"{}"  # (Google leaves an empty list out)
            return 200, orjson.dumps({"operations": list(self.gemini_batches.values()), "nextPageToken": "p2"})
        found = _GEMINI_BATCH.match(path)
        name = f"batches/{found[1]}" if found else ""
        if name in self.gemini_batches:
            if found and found[2]:
                self.gemini_batches[name]["metadata"]["state"] = "BATCH_STATE_CANCELLED"
                return 200, b"{}"
            return 200, orjson.dumps(self.gemini_batches[name])
        return 404, orjson.dumps({"error": {"code": 404, "message": f"{path} not found", "status": "NOT_FOUND"}})

    def _store(
        self, method: str, kind: str, object_id: str | None, rest: str | None, query: dict[str, str]
    ) -> tuple[int, bytes]:
        """Vector stores, containers and fine-tuning jobs: made, listed, read, deleted;
        anything under one is an empty page."""
        held = self.stores.setdefault(kind, {})
        if object_id is None:
            if method == "POST":
                prefix, object_type = _STORE_IDS[kind]
                made = self._new_id(prefix)
                held[made] = {"id": made, "object": object_type, "created_at": 1, "name": made}
                return 200, orjson.dumps(held[made])
            return 200, _page(list(held.values()), query)
        if object_id not in held:
            return 404, orjson.dumps(
                {"error": {"message": f"No such object: {object_id}", "type": "invalid_request_error"}}
            )
        if rest:
            return 200, orjson.dumps({"object": "list", "data": [], "has_more": False})
        if method == "DELETE":
            del held[object_id]
            return 200, orjson.dumps({"id": object_id, "deleted": True})
        return 200, orjson.dumps(held[object_id])

    def _new_id(self, prefix: str) -> str:
        self._made += 1
        return f"{prefix}-{self._made}"

    def _file(self, name: str, purpose: str, content: bytes) -> dict[str, Any]:
        file_id = self._new_id("file")
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
        batch_id = self._new_id("batch")
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


def _page(every: list[dict[str, Any]], query: dict[str, str], after: str = "after") -> bytes:
    ids = [item["id"] for item in every]
    start = ids.index(query[after]) + 1 if query.get(after) in ids else 0
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
