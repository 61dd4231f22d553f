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
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

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

    async def _answer(self, name: str, query: Coroutine[Any, Any, list[dict[str, Any]]]) -> Answer:
        """``{name: rows}`` from the database once this process's calls are in it; 503
        when the database fails or is too slow."""
        try:
            await self._caught_up()
            rows = await _bounded(query)
        except StorageError as exc:
            query.close()  # never awaited when the sync failed first
            return error_reply(503, f"usage database unavailable: {exc}")
        return json_reply(200, {name: rows})

    async def usage(self, req: AdminRequest) -> Answer:
        """``?by=consumer|model|route|provider|day|hour&since=&until=&consumer=`` →
        ``{"rows": [{key, requests, errors, input_tokens, output_tokens, cached_tokens,
        cache_write_tokens, cost_usd}]}``."""
        try:
            query = query_from(req.query)
        except UsageQueryError as exc:
            return error_reply(400, str(exc))
        return await self._answer("rows", self.store.summary(query))

    async def requests(self, req: AdminRequest) -> Answer:
        """``?consumer=&limit=&since=&until=`` → ``{"requests": [records, newest first]}``."""
        try:
            limit = parse_limit(req.query.get("limit"))
            window = parse_window(req.query.get("since"), req.query.get("until"))
            consumer = consumer_param(req.query.get("consumer"))
        except UsageQueryError as exc:
            return error_reply(400, str(exc))
        return await self._answer("requests", self.store.recent(limit, consumer, window))

    async def tool_calls(self, req: AdminRequest) -> Answer:
        """``?since=&until=&consumer=`` → ``{"tools": [{consumer, server, tool, calls,
        errors, latency_ms}]}``: MCP tool calls per consumer, busiest first."""
        try:
            window = parse_window(req.query.get("since"), req.query.get("until"))
            consumer = consumer_param(req.query.get("consumer"))
        except UsageQueryError as exc:
            return error_reply(400, str(exc))
        return await self._answer("tools", self.store.tool_calls(window, consumer))

    async def prometheus(self, req: AdminRequest) -> Answer:
        self.accountant.drain()
        return 200, [("content-type", CONTENT_TYPE)], self.metrics.render()


def register(
    admin: AdminApp, accountant: Accountant, store: UsageStore, writer: UsageWriter, metrics: UsageMetrics
) -> None:
    routes = UsageRoutes(accountant, store, writer, metrics)
    admin.add("GET", "/api/usage", routes.usage)
    admin.add("GET", "/api/requests", routes.requests)
    admin.add("GET", "/api/mcp/tools", routes.tool_calls)
    admin.add("GET", "/metrics", routes.prometheus)
