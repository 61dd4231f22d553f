"""Files and batches belong to the consumer that created them (SPEC §9).

A provider account holds every consumer's uploads and batches together; the gateway
keeps them apart with ``consumers.holdings``, and only the files and batches APIs pay
for it (one or two small queries a call):

    POST   /files                   the answer's id is recorded as the consumer's file
    POST   /batches                 its ``input_file_id`` must be the consumer's file;
                                    the answer's id is recorded as the consumer's batch
    GET    /files, /batches         the page lists only the consumer's own
    GET    /files/{id}[/content]    404 unless ``{id}`` is the consumer's
    DELETE /files/{id}
    GET    /batches/{id}            404 unless ``{id}`` is the consumer's; a batch's
    POST   /batches/{id}/cancel     ``output_file_id`` and ``error_file_id`` become the
                                    consumer's files as they appear

A call with no consumer (a route without key-auth) sees what no consumer holds: objects
made without a key, or outside the gateway. A list is filtered page by page: a page may
hold fewer than ``limit`` items (the OpenAI SDK's paging goes on from the last one it
got). The database unreachable → 503 ``ai-proxy.database_unavailable``, before the
provider is called; a created object that cannot be recorded is logged, and answered.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from tollway.consumers.holdings import Holdings, Kind
from tollway.errors import BadRequest, GatewayError, NotFound, UpstreamError
from tollway.exchange import Exchange, Reply
from tollway.protocols.apis import Api
from tollway.storage import StorageError

log = logging.getLogger("tollway.ownership")

# The APIs whose objects belong to a consumer, and what each makes.
OWNED_APIS: dict[Api, Kind] = {"files": "file", "batches": "batch"}
# A batch's files that the provider makes as it runs.
_BATCH_FILES = ("output_file_id", "error_file_id")


def _not_found(kind: Kind, object_id: str) -> NotFound:
    return NotFound(f"No such {kind} object: {object_id}", reason="ai-proxy.not_owner", code=f"{kind}_not_found")


def _database_unavailable() -> GatewayError:
    return GatewayError(
        "the gateway cannot tell whose files and batches are whose: its database is unavailable; try again shortly",
        reason="ai-proxy.database_unavailable",
        status=503,
        code="service_unavailable",
        headers=[("retry-after", "1")],
    )


def _sees(owner: str | None, consumer: str | None) -> bool:
    return owner == consumer


class Ownership:
    def __init__(self, holdings: Holdings) -> None:
        self.holdings = holdings

    async def serve(self, ex: Exchange, call: Callable[[], Awaitable[Reply]]) -> Reply:
        """The provider's answer to a files or batches call (``call``), held to the
        consumer's own objects (see the module)."""
        kind = OWNED_APIS[ex.api]
        segments = ex.api_path.strip("/").split("/")
        consumer = ex.consumer.name if ex.consumer is not None else None
        method = ex.request.method
        try:
            if len(segments) > 1:
                await self._admit(kind, segments[1], consumer)
            elif kind == "batch" and method == "POST":
                input_file = _input_file_id(ex)
                if input_file is not None:
                    await self._admit("file", input_file, consumer)
        except StorageError:
            raise _database_unavailable() from None
        reply = await call()
        if reply.events is not None or not 200 <= reply.status < 300:
            return reply
        listing = len(segments) == 1 and method == "GET"
        answer = _json_object(reply.body)
        if answer is None:
            if listing:
                # A page the gateway cannot read is a page it cannot filter.
                raise UpstreamError(
                    f"the provider's {ex.api} list is not a JSON object", reason="ai-proxy.bad_upstream_response"
                )
            return reply
        try:
            if listing:
                return Reply(reply.status, reply.headers, await self._own_page(kind, answer, consumer))
            if consumer is not None:
                await self._record(kind, answer, consumer, created=len(segments) == 1 and method == "POST")
        except StorageError as exc:
            if listing:
                raise _database_unavailable() from None
            log.warning("could not record %s %r as consumer %r's: %s", kind, answer.get("id"), consumer, exc)
        return reply

    async def _admit(self, kind: Kind, object_id: str, consumer: str | None) -> None:
        owners = await self.holdings.owners(kind, [object_id])
        if not _sees(owners.get(object_id), consumer):
            raise _not_found(kind, object_id)

    async def _record(self, kind: Kind, answer: dict[str, Any], consumer: str, *, created: bool) -> None:
        if created and isinstance(answer.get("id"), str):
            await self.holdings.add(kind, [answer["id"]], consumer)
        if kind == "batch":
            await self._take_batch_files([answer], consumer)

    async def _take_batch_files(self, batches: list[dict[str, Any]], consumer: str) -> None:
        files = [b[key] for b in batches for key in _BATCH_FILES if isinstance(b.get(key), str) and b[key]]
        if files:
            await self.holdings.add("file", files, consumer)

    async def _own_page(self, kind: Kind, answer: dict[str, Any], consumer: str | None) -> bytes:
        """The list page with only the consumer's own objects (``first_id``/``last_id``
        following, where the provider's shape has them)."""
        data = answer.get("data")
        if not isinstance(data, list):
            raise UpstreamError(f"the provider's {kind} list has no data", reason="ai-proxy.bad_upstream_response")
        items = [item for item in data if isinstance(item, dict) and isinstance(item.get("id"), str)]
        owners = await self.holdings.owners(kind, [item["id"] for item in items])
        own = [item for item in items if _sees(owners.get(item["id"]), consumer)]
        if kind == "batch" and consumer is not None:
            await self._take_batch_files(own, consumer)
        page = {**answer, "data": own}
        for key, item in (("first_id", own[0] if own else None), ("last_id", own[-1] if own else None)):
            if key in page:
                page[key] = item["id"] if item is not None else None
        return orjson.dumps(page)


def _input_file_id(ex: Exchange) -> str | None:
    try:
        body = ex.request.json()
    except BadRequest:
        return None  # the provider refuses what is not JSON; nothing runs from it
    file_id = body.get("input_file_id") if isinstance(body, dict) else None
    return file_id if isinstance(file_id, str) else None


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        answer = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None
    return answer if isinstance(answer, dict) else None
