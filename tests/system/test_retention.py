"""storage.retention_days through a real `tollway serve`: a database holding records of
two months ago and of yesterday keeps only yesterday's soon after the gateway starts,
and its audit log whole."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.conftest import Proc
from tests.support.usage_support import rec
from tollway.storage import open_database
from tollway.storage.audit import AuditLog
from tollway.usage.store import UsageStore, row_of

GatewayFactory = Callable[..., Proc]


async def _seed(path: Path) -> None:
    db = open_database(f"sqlite:///{path}", path.parent)
    await db.connect()
    store = UsageStore(db)
    await store.migrate()
    now = time.time()
    await store.write_rows(
        [row_of(rec(now - 60 * 86400 + i, "alice", request_id=f"old{i}"), i + 1) for i in range(1200)]
        + [row_of(rec(now - 86400, "bob", request_id="yesterday"), 5000)]
    )
    audit = AuditLog(db)
    await audit.migrate()
    await audit.record("consumers.add", "alice", None, None)
    await db.close()


def test_old_usage_records_are_deleted_and_the_audit_log_kept(gateway: GatewayFactory, tmp_path: Path) -> None:
    asyncio.run(_seed(tmp_path / "tollway.db"))
    gw = gateway("storage: {database: 'sqlite:///./tollway.db', retention_days: 30}\n")

    def ids() -> list[str]:
        r = httpx.get(gw.admin_url + "/api/requests", params={"limit": "1000"})
        assert r.status_code == 200
        return [x["request_id"] for x in r.json()["requests"]]

    deadline = time.monotonic() + 20
    while ids() != ["yesterday"]:
        assert time.monotonic() < deadline, ids()[:3]
        time.sleep(0.2)
    audit = httpx.get(gw.admin_url + "/api/audit").json()["events"]
    assert [(e["action"], e["subject"]) for e in audit] == [("consumers.add", "alice")]
