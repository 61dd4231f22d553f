"""The audit log: one event per admin write (consumers, groups, quota changes, reloads),
kept in the database every replica shares, newest first on reading (SPEC §10).

An event is ``{ts, action, subject, details, client_ip}``. ``details`` is what the
writer asked for, never a key: every field whose name says it holds a secret (``key``,
``token``, ``credential``, ``password``, ``secret``) is dropped before it is stored, so a
caller cannot leak one by accident.

Writing an event never blocks the change it records beyond one insert; ``note`` (for
callers that must not wait at all) schedules it and logs a failure instead of raising.
Usage retention (``storage.retention_days``) deletes usage records only: events stay.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import unicodedata
from collections.abc import Mapping
from typing import Any, TypedDict

import orjson

from tollway.storage.database import Database, StorageError
from tollway.storage.steps import migrate_in_steps

log = logging.getLogger("tollway")

_STEPS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE IF NOT EXISTS audit_events (
            ts DOUBLE PRECISION NOT NULL,
            action TEXT NOT NULL,
            subject TEXT,
            details TEXT,
            client_ip TEXT
        )""",
        "CREATE INDEX IF NOT EXISTS audit_events_ts ON audit_events (ts)",
    ),
)
_INSERT = "INSERT INTO audit_events (ts, action, subject, details, client_ip) VALUES ($1, $2, $3, $4, $5)"
# Parts of a field name that say it holds a secret, matched in the name's NFKC case
# folding (so ``ＡＰＩ_ＫＥＹ`` is ``api_key``): the five the docs name and longer
# spellings metadata uses for them anywhere in a name; short ones only as a whole word of
# it (``x_auth``, ``cred``, but not ``author``).
_SECRET_WORDS = ("key", "token", "credential", "password", "secret", "passwd", "passphrase", "passcode",
                 "bearer", "cookie", "authoriz", "authentic", "private", "session", "signature", "jwt")  # fmt: skip
_SECRET_NAMES = frozenset({"auth", "cred", "creds", "pwd", "pass", "sid", "otp", "pin"})
_NAME_WORDS = re.compile(r"[^\w]+|_")
MAX_EVENTS = 1000


class AuditEvent(TypedDict):
    ts: str
    action: str
    subject: str | None
    details: dict[str, Any] | None
    client_ip: str | None


def without_secrets(details: Mapping[str, Any]) -> dict[str, Any]:
    """``details`` without any field (at any depth, in lists too) whose name says it
    holds a secret."""
    kept: dict[str, Any] = {}
    for name, value in details.items():
        # (Format characters, a zero-width space among them, are no part of a name.)
        shown = "".join(c for c in str(name) if unicodedata.category(c) != "Cf")
        folded = unicodedata.normalize("NFKC", shown).casefold()
        if any(word in folded for word in _SECRET_WORDS) or not _SECRET_NAMES.isdisjoint(_NAME_WORDS.split(folded)):
            continue
        kept[name] = _kept(value)
    return kept


def _kept(value: Any) -> Any:
    if isinstance(value, Mapping):
        return without_secrets(value)
    if isinstance(value, list | tuple):
        return [_kept(item) for item in value]
    return value


def _iso_ms(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


class AuditLog:
    """The ``audit_events`` table of one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: set[asyncio.Task[None]] = set()

    async def migrate(self) -> None:
        await migrate_in_steps(self.db, "audit_schema", _STEPS)

    async def record(
        self, action: str, subject: str | None, details: Mapping[str, Any] | None, client_ip: str | None
    ) -> None:
        """Store one event now; ``StorageError`` passes through."""
        kept = orjson.dumps(without_secrets(details)).decode() if details else None
        await self.db.execute(_INSERT, time.time(), action, subject, kept, client_ip)

    def note(self, action: str, subject: str | None, details: Mapping[str, Any] | None, client_ip: str | None) -> None:
        """``record`` without waiting for it: a failure is logged, not raised."""
        task = asyncio.get_running_loop().create_task(self._quietly(action, subject, details, client_ip))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _quietly(
        self, action: str, subject: str | None, details: Mapping[str, Any] | None, client_ip: str | None
    ) -> None:
        try:
            await self.record(action, subject, details, client_ip)
        except StorageError as exc:
            log.error("audit: could not record %s %s: %s", action, subject or "", exc)

    async def drain(self) -> None:
        """Wait for the events ``note`` scheduled (before the database closes)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def events(self, since: float | None = None, limit: int = 100) -> list[AuditEvent]:
        """Events at or after ``since`` (seconds since the epoch), newest first."""
        rows = await self.db.fetch(
            "SELECT ts, action, subject, details, client_ip FROM audit_events WHERE ts >= $1 "
            f"ORDER BY ts DESC LIMIT {int(limit)}",
            since if since is not None else 0.0,
        )
        return [
            AuditEvent(
                ts=_iso_ms(row["ts"]),
                action=row["action"],
                subject=row["subject"],
                details=orjson.loads(row["details"]) if row["details"] is not None else None,
                client_ip=row["client_ip"],
            )
            for row in rows
        ]
