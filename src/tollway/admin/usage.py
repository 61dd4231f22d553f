"""The admin API's usage routes: ``GET /api/usage``, ``GET /api/requests``, ``GET /metrics``.

Every route first takes in the calls this process has finished (``Accountant.drain``),
and both API routes wait for their records to be written, so an answer includes every
call this process has finished (with ``--workers N``, the other
workers' calls arrive within their writer's interval, under a second). A database
that stops answering bounds both waits: the records are waited for ``SYNC_WAIT_S`` at
most (the answer then leaves out what is not yet stored), the query ``QUERY_WAIT_S``
(then 503).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from tollway.admin.app import AdminApp, AdminRequest, error_reply, json_reply
from tollway.storage import StorageError
from tollway.usage.accountant import Accountant
from tollway.usage.metrics import CONTENT_TYPE, UsageMetrics
from tollway.usage.query import UsageQueryError, consumer_param, parse_limit, parse_window, query_from
from tollway.usage.store import UsageStore
from tollway.usage.writer import UsageWriter

Answer = tuple[int, list[tuple[str, str]], bytes]
T = TypeVar("T")

SYNC_WAIT_S = 2.0
QUERY_WAIT_S = 10.0


async def _bounded(query: Awaitable[T]) -> T:
    try:
        return await asyncio.wait_for(query, QUERY_WAIT_S)
    except TimeoutError:
        raise StorageError(f"no answer within {QUERY_WAIT_S:g}s") from None


class UsageRoutes:
    def __init__(self, accountant: Accountant, store: UsageStore, writer: UsageWriter, metrics: UsageMetrics) -> None:
        self.accountant = accountant
        self.store = store
        self.writer = writer
        self.metrics = metrics

    async def _caught_up(self) -> None:
        """Every call this process has finished is in the database."""
        self.accountant.drain()
        try:
            await asyncio.wait_for(self.writer.sync(), SYNC_WAIT_S)
        except TimeoutError:
            pass  # the database is slow or away: answer from what it has (or 503 below)

    async def usage(self, req: AdminRequest) -> Answer:
        """``?by=consumer|model|route|provider|day|hour&since=&until=&consumer=`` →
        ``{"rows": [{key, requests, errors, input_tokens, output_tokens, cost_usd}]}``."""
        try:
            query = query_from(req.query)
        except UsageQueryError as exc:
            return error_reply(400, str(exc))
        try:
            await self._caught_up()
            rows = await _bounded(self.store.summary(query))
        except StorageError as exc:
            return error_reply(503, f"usage database unavailable: {exc}")
        return json_reply(200, {"rows": rows})

    async def requests(self, req: AdminRequest) -> Answer:
        """``?consumer=&limit=&since=&until=`` → ``{"requests": [records, newest first]}``."""
        try:
            limit = parse_limit(req.query.get("limit"))
            window = parse_window(req.query.get("since"), req.query.get("until"))
            consumer = consumer_param(req.query.get("consumer"))
        except UsageQueryError as exc:
            return error_reply(400, str(exc))
        try:
            await self._caught_up()
            records = await _bounded(self.store.recent(limit, consumer, window))
        except StorageError as exc:
            return error_reply(503, f"usage database unavailable: {exc}")
        return json_reply(200, {"requests": records})

    async def prometheus(self, req: AdminRequest) -> Answer:
        self.accountant.drain()
        return 200, [("content-type", CONTENT_TYPE)], self.metrics.render()


def register(
    admin: AdminApp, accountant: Accountant, store: UsageStore, writer: UsageWriter, metrics: UsageMetrics
) -> None:
    routes = UsageRoutes(accountant, store, writer, metrics)
    admin.add("GET", "/api/usage", routes.usage)
    admin.add("GET", "/api/requests", routes.requests)
    admin.add("GET", "/metrics", routes.prometheus)
