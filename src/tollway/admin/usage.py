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
import re
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

from tollway.admin.app import AdminApp, AdminRequest, error_reply, json_reply
from tollway.storage import StorageError
from tollway.usage.accountant import Accountant
from tollway.usage.metrics import CONTENT_TYPE, UsageMetrics
from tollway.usage.query import UsageQueryError, consumer_param, parse_limit, parse_window, query_from
from tollway.usage.store import Cursor, UsageStore
from tollway.usage.writer import UsageWriter

Answer = tuple[int, list[tuple[str, str]], bytes]
T = TypeVar("T")

SYNC_WAIT_S = 2.0
QUERY_WAIT_S = 10.0


_CURSOR = re.compile(r"([0-9]{1,19})\.([0-9]{1,19})")


def _cursor(given: str | None) -> Cursor | None:
    """``before=``: a page's ``next`` (``<ts_ms>.<key>``)."""
    if given is None:
        return None
    found = _CURSOR.fullmatch(given)
    cursor = (int(found[1]), int(found[2])) if found is not None else None
    if cursor is None or max(cursor) >= 1 << 63:  # (the database's integers are 64-bit)
        raise UsageQueryError(f"before: {given[:40]!r} is not a page's next (<ms>.<key>)")
    return cursor


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
        rows = await self._fetched(query)
        return rows if isinstance(rows, tuple) else json_reply(200, {name: rows})

    async def _fetched(self, query: Coroutine[Any, Any, T]) -> T | Answer:
        """``query``'s answer once this process's calls are in the database, or the 503
        when the database fails or is too slow."""
        try:
            await self._caught_up()
            return await _bounded(query)
        except StorageError as exc:
            query.close()  # never awaited when the sync failed first
            return error_reply(503, f"usage database unavailable: {exc}")

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
        """``?consumer=&limit=&since=&until=&before=`` → ``{"requests": [records, newest
        first], "next": cursor}``: ``next`` (when the page is full) is the ``before`` of
        the page after it, so every record is on exactly one page."""
        try:
            limit = parse_limit(req.query.get("limit"))
            window = parse_window(req.query.get("since"), req.query.get("until"))
            consumer = consumer_param(req.query.get("consumer"))
            before = _cursor(req.query.get("before"))
        except UsageQueryError as exc:
            return error_reply(400, str(exc))
        page = await self._fetched(self.store.recent_page(limit, consumer, window, before))
        if isinstance(page, tuple):
            return page
        last = page[-1][1] if len(page) == limit else None
        return json_reply(200, {"requests": [r for r, _ in page], "next": f"{last[0]}.{last[1]}" if last else None})

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
