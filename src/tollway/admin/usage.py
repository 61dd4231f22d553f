"""The admin API's usage routes: ``GET /api/usage``, ``GET /api/requests``, ``GET /metrics``.

Every route first takes in the calls this process has finished (``Accountant.drain``),
and both API routes wait for their records to be written, so an answer includes every
call this process has finished (with ``--workers N``, the other
workers' calls arrive within their writer's interval, under a second).
"""

from __future__ import annotations

from tollway.admin.app import AdminApp, AdminRequest, error_reply, json_reply
from tollway.storage import StorageError
from tollway.usage.accountant import Accountant
from tollway.usage.metrics import CONTENT_TYPE, UsageMetrics
from tollway.usage.query import UsageQueryError, parse_limit, parse_window, query_from
from tollway.usage.store import UsageStore
from tollway.usage.writer import UsageWriter

Answer = tuple[int, list[tuple[str, str]], bytes]


class UsageRoutes:
    def __init__(self, accountant: Accountant, store: UsageStore, writer: UsageWriter, metrics: UsageMetrics) -> None:
        self.accountant = accountant
        self.store = store
        self.writer = writer
        self.metrics = metrics

    async def _caught_up(self) -> None:
        """Every call this process has finished is in the database."""
        self.accountant.drain()
        await self.writer.sync()

    async def usage(self, req: AdminRequest) -> Answer:
        """``?by=consumer|model|route|provider|day|hour&since=&until=&consumer=`` →
        ``{"rows": [{key, requests, errors, input_tokens, output_tokens, cost_usd}]}``."""
        try:
            query = query_from(req.query)
        except UsageQueryError as exc:
            return error_reply(400, str(exc))
        try:
            await self._caught_up()
            rows = await self.store.summary(query)
        except StorageError as exc:
            return error_reply(503, f"usage database unavailable: {exc}")
        return json_reply(200, {"rows": rows})

    async def requests(self, req: AdminRequest) -> Answer:
        """``?consumer=&limit=&since=&until=`` → ``{"requests": [records, newest first]}``."""
        try:
            limit = parse_limit(req.query.get("limit"))
            window = parse_window(req.query.get("since"), req.query.get("until"))
        except UsageQueryError as exc:
            return error_reply(400, str(exc))
        try:
            await self._caught_up()
            records = await self.store.recent(limit, req.query.get("consumer") or None, window)
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
