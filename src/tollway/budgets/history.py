"""Spend rebuilt from the usage records: the truth a state store that lost its counters
(a Redis flushed or restarted empty, a restarted process's memory) is rebuilt from."""

from __future__ import annotations

from collections.abc import Sequence

from tollway.storage import Database

# Nano-dollars: each record's cost is rounded as the state store's counter rounds it.
NANO = 1_000_000_000


def to_nano(usd: float) -> int:
    return round(usd * NANO)


class SpendHistory:
    """Reads ``usage_records`` (the usage store owns the table and its migrations)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def spent(self, consumers: Sequence[str], start_ms: int, end_ms: int | None) -> int:
        """Nano-dollars the named consumers' calls that started in [start, end) cost."""
        if not consumers:
            return 0
        names = ", ".join(f"${i}" for i in range(1, len(consumers) + 1))
        args: list[object] = [*consumers, start_ms]
        sql = (
            f"SELECT SUM(ROUND(cost_usd * {NANO})) AS spent FROM usage_records "
            f"WHERE consumer IN ({names}) AND ts_ms >= ${len(args)}"
        )
        if end_ms is not None:
            args.append(end_ms)
            sql += f" AND ts_ms < ${len(args)}"
        rows = await self.db.fetch(sql, *args)
        value = rows[0]["spent"] if rows else None
        return int(value or 0)


__all__ = ["NANO", "SpendHistory", "to_nano"]
