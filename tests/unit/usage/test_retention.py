"""storage.retention_days (usage/retention.py, UsageStore.delete_before): records older
than the cut are deleted in batches, newer ones and the audit log stay; SQLite and
PostgreSQL."""

from __future__ import annotations

import time

import pytest

from tests.support.usage_support import rec
from tollway.storage.audit import AuditLog
from tollway.usage import retention
from tollway.usage.retention import Retention
from tollway.usage.store import UsageStore, row_of


async def test_records_past_the_cut_go_in_batches_and_the_rest_stay(
    store: UsageStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "BATCH", 3)
    now = time.time()
    old = [row_of(rec(now - 40 * 86400 - i, "alice", request_id=f"old{i}"), i + 1) for i in range(7)]
    recent = [row_of(rec(now - 86400 * d, "bob", request_id=f"new{d}"), 100 + d) for d in (1, 29)]
    await store.write_rows([*old, *recent])
    audit = AuditLog(store.db)
    await audit.migrate()
    await audit.record("consumers.add", "alice", {"name": "alice"}, "127.0.0.1")

    assert await Retention(store, 30).trim() == 7
    assert sorted(r["request_id"] for r in await store.recent(100)) == ["new1", "new29"]
    assert await Retention(store, 30).trim() == 0
    assert [e["action"] for e in await audit.events()] == ["consumers.add"]
