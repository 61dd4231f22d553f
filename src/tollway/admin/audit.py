"""``GET /api/audit?since=&limit=`` → ``{"events": [{ts, action, subject, details,
client_ip}]}``, newest first: every admin write (SPEC §10), never a key.

``since`` takes what ``/api/requests`` takes (``24h``, ``7d``, an ISO-8601 date or time);
``limit`` 1 to 1000, default 100. A database failure answers 503.
"""

from __future__ import annotations

from tollway.admin.app import AdminApp, AdminRequest, Answer, error_reply, json_reply
from tollway.storage import StorageError
from tollway.storage.audit import AuditLog
from tollway.usage.query import UsageQueryError, parse_limit, parse_window

PATH = "/api/audit"


def register(admin: AdminApp, audit: AuditLog) -> None:
    """Serve the audit log, and record every audited write of ``admin`` in it."""

    async def events(req: AdminRequest) -> Answer:
        try:
            limit = parse_limit(req.query.get("limit"))
            window = parse_window(req.query.get("since"), None)
        except UsageQueryError as exc:
            return error_reply(400, str(exc))
        since = window.since_ms / 1000 if window.since_ms is not None else None
        try:
            found = await audit.events(since, limit)
        except StorageError as exc:
            return error_reply(503, f"database unavailable: {exc}")
        return json_reply(200, {"events": found})

    admin.add("GET", PATH, events)
    admin.on_write = audit.record
