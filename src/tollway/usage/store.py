"""Usage records in the database (SQLite or PostgreSQL, one schema): written in
batches, summed per consumer/model/route/provider/day, listed newest first.

``StorageError`` (from ``tollway.storage``) passes through unchanged.

Migrations are numbered steps (``tollway.storage.steps``); ``usage_schema.version``
says how many have run.

``record_key`` (step 2) is the usage writer's key for each record, unique: a record
written again (a retry, a replay of the journal) is skipped, never stored twice.
Records stored before it have none. ``api`` (step 3) says which API a call was;
``cache`` and ``cost_saved_usd`` (steps 4 and 5) what ai-cache made of it and what a hit
saved; ``mcp_method`` and ``mcp_tool`` (steps 6 and 7) an MCP call's JSON-RPC method and
tool; records stored before them have none. ``cache_write_tokens`` (step 8) is 0 in
records stored before it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from tollway.exchange import Attempt
from tollway.storage import Database, Row
from tollway.storage.steps import migrate_in_steps
from tollway.usage.query import UsageQuery, Window
from tollway.usage.record import UsageRecord
from tollway.usage.timestamps import day_hour

_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE IF NOT EXISTS usage_records (
            ts_ms BIGINT NOT NULL,
            day TEXT NOT NULL,
            hour TEXT NOT NULL,
            request_id TEXT NOT NULL,
            route TEXT,
            consumer TEXT,
            provider TEXT,
            model_requested TEXT,
            model_upstream TEXT,
            status BIGINT NOT NULL,
            reason TEXT,
            blocked_by TEXT,
            stream BIGINT NOT NULL,
            input_tokens BIGINT NOT NULL,
            output_tokens BIGINT NOT NULL,
            cached_tokens BIGINT NOT NULL,
            reasoning_tokens BIGINT NOT NULL,
            tokens_estimated BIGINT NOT NULL,
            cost_usd DOUBLE PRECISION,
            latency_ms DOUBLE PRECISION NOT NULL,
            ttft_ms DOUBLE PRECISION,
            client_ip TEXT,
            attempts TEXT NOT NULL,
            attributes TEXT
        )""",
        # Every summary and listing filters on time; the dashboard's and
        # /api/requests?consumer= filter on the consumer first.
        "CREATE INDEX IF NOT EXISTS usage_records_ts ON usage_records (ts_ms)",
        "CREATE INDEX IF NOT EXISTS usage_records_consumer_ts ON usage_records (consumer, ts_ms)",
    ),
    (
        "ALTER TABLE usage_records ADD COLUMN record_key BIGINT",
        "CREATE UNIQUE INDEX IF NOT EXISTS usage_records_key ON usage_records (record_key)",
    ),
    ("ALTER TABLE usage_records ADD COLUMN api TEXT",),
    # Each ALTER a step of its own: SQLite has no IF NOT EXISTS for columns, and a step
    # another process ran first fails here as a whole.
    ("ALTER TABLE usage_records ADD COLUMN cache TEXT",),
    ("ALTER TABLE usage_records ADD COLUMN cost_saved_usd DOUBLE PRECISION",),
    ("ALTER TABLE usage_records ADD COLUMN mcp_method TEXT",),
    ("ALTER TABLE usage_records ADD COLUMN mcp_tool TEXT",),
    ("ALTER TABLE usage_records ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0",),
)
_COLUMNS = (
    "ts_ms",
    "day",
    "hour",
    "request_id",
    "route",
    "consumer",
    "provider",
    "model_requested",
    "model_upstream",
    "status",
    "reason",
    "blocked_by",
    "stream",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "tokens_estimated",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
    "client_ip",
    "attempts",
    "attributes",
    "api",
    "cache",
    "cost_saved_usd",
    "mcp_method",
    "mcp_tool",
    "cache_write_tokens",
)
_KEY = "record_key"
# The most (consumer, server, tool) rows ``tool_calls`` answers.
MAX_TOOL_ROWS = 1000
INSERTED = (*_COLUMNS, _KEY)
# PostgreSQL sums BIGINTs into NUMERIC (a Decimal in Python): cast back.
_GROUP_KEYS = {
    "consumer": "consumer",
    "model": "COALESCE(model_upstream, model_requested)",
    "route": "route",
    "provider": "provider",
    "day": "day",
    "hour": "hour",
}
_SUMS = """COUNT(*) AS requests,
    CAST(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS BIGINT) AS errors,
    CAST(SUM(input_tokens) AS BIGINT) AS input_tokens,
    CAST(SUM(output_tokens) AS BIGINT) AS output_tokens,
    CAST(SUM(cached_tokens) AS BIGINT) AS cached_tokens,
    CAST(SUM(cache_write_tokens) AS BIGINT) AS cache_write_tokens,
    SUM(COALESCE(cost_usd, 0)) AS cost_usd"""


# The record's fields that go into their columns as they are: request_id … blocked_by,
# and the four token counts (the rest are converted: bools to 0/1, lists to JSON).
_AS_IS = slice(UsageRecord._fields.index("request_id"), UsageRecord._fields.index("stream"))
_TOKENS = slice(UsageRecord._fields.index("input_tokens"), UsageRecord._fields.index("tokens_estimated"))


# A row as ``row_of`` makes it: INSERTED's columns in order, the key last.
UsageRow = tuple[object, ...]


def row_of(record: UsageRecord, key: int | None = None) -> UsageRow:
    """The ``usage_records`` row for a record stored under ``key`` (``INSERTED``'
    order), made when the usage writer takes the record, off the request path."""
    day, hour = day_hour(record.ts_ms)
    ttft, attributes = record.ttft_ms, record.attributes
    values: tuple[object, ...] = record
    return (
        record.ts_ms,
        day,
        hour,
        *values[_AS_IS],
        int(record.stream),
        *values[_TOKENS],
        int(record.tokens_estimated),
        record.cost_usd,
        float(record.latency_ms),
        float(ttft) if ttft is not None else None,
        record.client_ip,
        orjson.dumps(record.attempts_json()).decode(),
        orjson.dumps(attributes).decode() if attributes else None,
        record.api,
        record.cache,
        record.cost_saved_usd,
        record.mcp_method,
        record.mcp_tool,
        record.cache_write_tokens,
        key,
    )


def _attempts_of(stored: str) -> list[Attempt]:
    return [Attempt(a["provider"], a["status"], a["latency_ms"]) for a in orjson.loads(stored)]


# Columns stored as something else than the record holds (bools as 0/1, lists as JSON).
_FROM_COLUMN: dict[str, Callable[[Any], Any]] = {
    "stream": bool,
    "tokens_estimated": bool,
    "attempts": _attempts_of,
    "attributes": lambda stored: orjson.loads(stored) if stored else None,
}


# Where a page of ``recent`` ended: its last record's time (ms) and key.
Cursor = tuple[int, int]


def record_of_row(row: Row) -> dict[str, Any]:
    """The usage record (SPEC §5 shape, ``UsageRecord.as_dict``) a stored row holds."""
    return UsageRecord._make(
        _FROM_COLUMN[name](row[name]) if name in _FROM_COLUMN else row[name] for name in UsageRecord._fields
    ).as_dict()


def record_of_inserted(row: UsageRow) -> dict[str, Any]:
    """The usage record (SPEC §5 shape) a row made by ``row_of`` holds."""
    return record_of_row(dict(zip(INSERTED, row, strict=True)))


def _where(window: Window, consumer: str | None) -> tuple[str, list[object]]:
    clauses: list[str] = []
    args: list[object] = []
    if consumer is not None:
        args.append(consumer)
        clauses.append(f"consumer = ${len(args)}")
    if window.since_ms is not None:
        args.append(window.since_ms)
        clauses.append(f"ts_ms >= ${len(args)}")
    if window.until_ms is not None:
        args.append(window.until_ms)
        clauses.append(f"ts_ms < ${len(args)}")
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def _summary_row(row: Row) -> dict[str, Any]:
    return {
        "key": row["key"],
        "requests": int(row["requests"]),
        "errors": int(row["errors"] or 0),
        "input_tokens": int(row["input_tokens"] or 0),
        "output_tokens": int(row["output_tokens"] or 0),
        "cached_tokens": int(row["cached_tokens"] or 0),
        "cache_write_tokens": int(row["cache_write_tokens"] or 0),
        # Rounded: sums of float prices carry noise in the last digits.
        "cost_usd": round(float(row["cost_usd"] or 0.0), 10),
    }


class UsageStore:
    """The ``usage_records`` table of one database (the caller connects and closes it)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def migrate(self) -> None:
        """Create or upgrade the schema (idempotent; safe with replicas starting together)."""
        await migrate_in_steps(self.db, "usage_schema", _MIGRATIONS)

    async def write(self, records: Sequence[UsageRecord]) -> None:
        """Insert ``records`` (without keys) in one transaction: all of them or, on error,
        none."""
        await self.write_rows([row_of(r) for r in records])

    async def write_rows(self, rows: Sequence[UsageRow]) -> None:
        """Insert rows made by ``row_of`` in one transaction: all of them or, on error,
        none. A row whose key is stored already is skipped."""
        if rows:
            await self.db.insert_rows("usage_records", INSERTED, rows, unique=_KEY)

    async def summary(self, query: UsageQuery) -> list[dict[str, Any]]:
        """``GET /api/usage``'s rows: by time for ``day``/``hour`` (oldest first), else
        busiest first with the no-consumer (null key) row last among equals."""
        where, args = _where(query.window, query.consumer)
        sql = f"SELECT {_GROUP_KEYS[query.by]} AS key, {_SUMS} FROM usage_records{where} GROUP BY 1"
        rows = [_summary_row(r) for r in await self.db.fetch(sql, *args)]
        if query.by in ("day", "hour"):
            rows.sort(key=lambda r: r["key"] or "")
        else:
            rows.sort(key=lambda r: (-r["requests"], r["key"] is None, r["key"] or ""))
        return rows

    async def delete_before(self, ts_ms: int, batch: int) -> int:
        """Delete up to ``batch`` records older than ``ts_ms``, oldest first; return how
        many went. Small batches keep each transaction (and the lock it holds) short."""
        row_id = "rowid" if self.db.dialect == "sqlite" else "ctid"
        return await self.db.execute(
            f"DELETE FROM usage_records WHERE {row_id} IN "
            f"(SELECT {row_id} FROM usage_records WHERE ts_ms < $1 ORDER BY ts_ms LIMIT {int(batch)})",
            ts_ms,
        )

    async def tool_calls(self, window: Window, consumer: str | None = None) -> list[dict[str, Any]]:
        """MCP ``tools/call`` requests summed per (consumer, server, tool), busiest first
        (at most ``MAX_TOOL_ROWS`` rows): the dashboard's tool calls per consumer."""
        where, args = _where(window, consumer)
        where += (" AND " if where else " WHERE ") + "api = 'mcp' AND mcp_method = 'tools/call'"
        sql = f"""SELECT consumer, provider AS server, mcp_tool AS tool, COUNT(*) AS calls,
            CAST(SUM(CASE WHEN status >= 400 OR reason IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS errors,
            AVG(latency_ms) AS latency_ms
            FROM usage_records{where} GROUP BY consumer, provider, mcp_tool"""
        rows = [
            {
                "consumer": r["consumer"],
                "server": r["server"],
                "tool": r["tool"],
                "calls": int(r["calls"]),
                "errors": int(r["errors"] or 0),
                "latency_ms": round(float(r["latency_ms"] or 0.0), 3),
            }
            for r in await self.db.fetch(sql, *args)
        ]
        rows.sort(key=lambda r: (-r["calls"], r["consumer"] or "", r["server"] or "", r["tool"] or ""))
        return rows[:MAX_TOOL_ROWS]

    async def recent(
        self, limit: int, consumer: str | None = None, window: Window | None = None, before: Cursor | None = None
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` records, newest first, those after ``before`` in that order
        (the ``cursor`` of the last record of the page before)."""
        return [record for record, _ in await self.recent_page(limit, consumer, window, before)]

    async def recent_page(
        self, limit: int, consumer: str | None = None, window: Window | None = None, before: Cursor | None = None
    ) -> list[tuple[dict[str, Any], Cursor]]:
        """``recent``, each record with its cursor. Ordered by time and then by the
        record's key, so records of one millisecond have an order a page can end in
        (by ``ts`` alone, a page ending inside such a run lost the rest of it)."""
        where, args = _where(window or Window(), consumer)
        key = f"COALESCE({_KEY}, 0)"  # (records stored before keys: 0, after any other)
        if before is not None:
            args += [before[0], before[0], before[1]]
            n = len(args)
            where += (" AND " if where else " WHERE ") + f"(ts_ms < ${n - 2} OR (ts_ms = ${n - 1} AND {key} < ${n}))"
        args.append(limit)
        sql = (
            f"SELECT {', '.join(_COLUMNS)}, {key} AS cursor_key FROM usage_records{where} "
            f"ORDER BY ts_ms DESC, cursor_key DESC LIMIT ${len(args)}"
        )
        return [(record_of_row(r), (int(r["ts_ms"]), int(r["cursor_key"]))) for r in await self.db.fetch(sql, *args)]
