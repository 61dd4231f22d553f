"""The admin API (its own listener): health and reload here; consumers, usage, metrics
and the dashboard register their routes with ``add`` (the runtime wires them all).

With a token set, every route but ``/healthz`` and the routes added as ``public`` (the
dashboard's static files, which hold no data) needs ``Authorization: Bearer <token>``,
compared in constant time. Requests from a web page elsewhere (another ``Origin``, or
without a token a Host that is not a loopback name: DNS rebinding) are refused first
(``origin``). The token and the route are checked before any of the body is read; a
body is read only up to ``MAX_BODY_BYTES`` (beyond: 413), and one that stalls is answered
408.

A route added with ``audit="action"`` is a write: each time it succeeds (an answer
below 400), ``on_write`` is told the action, its subject (the name in the path, else the
body's ``name``), the request's JSON body as details, and the client's address.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import orjson

from tollway.admin import origin
from tollway.config.load import ReloadResult
from tollway.errors import BadRequest
from tollway.exchange import parse_json
from tollway.gateway.edge import BODY_REFUSED, BODY_TIMEOUT, Receive, Scope, Send, declared_over

log = logging.getLogger("tollway.admin.app")

Answer = tuple[int, list[tuple[str, str]], bytes]
Handler = Callable[["AdminRequest"], Awaitable[Answer]]
# action, subject, details, client address: one audit event.
WriteSink = Callable[[str, str | None, dict[str, Any] | None, str | None], Awaitable[None]]

# The largest admin request body: every admin body is a small JSON object.
MAX_BODY_BYTES = 1024 * 1024
# The ``source`` of a reload asked through ``POST /api/reload`` (audited as an admin
# write; the runtime audits reloads from other sources itself).
ADMIN_RELOAD = "admin API"


class AdminRequest:
    def __init__(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes, client_ip: str | None = None
    ) -> None:
        self.method = method
        self.path = path
        self.query = {k: v[-1] for k, v in parse_qs(query).items()}
        self.headers = headers
        self.body = body
        self.client_ip = client_ip

    def json(self) -> Any:
        """The body as JSON, read as strictly as the data plane reads one (a key twice,
        nesting past 64 levels: refused), ``{}`` for none; raises ``BadRequest``."""
        return parse_json(self.body) if self.body else {}


def json_reply(status: int, obj: Any) -> Answer:
    # No cache keeps an answer: a new key is shown once, and usage and consumers are
    # the organisation's (a browser's or a proxy's cache is no place for either).
    return status, [("content-type", "application/json"), ("cache-control", "no-store")], orjson.dumps(obj)


def error_reply(status: int, message: str, extra: list[tuple[str, str]] | None = None) -> Answer:
    code, headers, body = json_reply(status, {"error": {"message": message, "type": "admin_error"}})
    return code, headers + (extra or []), body


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class _Unread(Exception):
    """The body was not read: ``answer`` says why (None: the client went away)."""

    def __init__(self, answer: Answer | None) -> None:
        super().__init__()
        self.answer = answer


async def read_body(receive: Receive, headers: dict[str, str]) -> bytes:
    """The whole body, at most ``MAX_BODY_BYTES``; raises ``_Unread`` otherwise."""
    too_large = error_reply(413, f"an admin request body is at most {MAX_BODY_BYTES} bytes")
    if declared_over(headers.get("content-length"), MAX_BODY_BYTES):
        raise _Unread(too_large)
    parts: list[bytes] = []
    size = 0
    while True:
        msg = await receive()
        if msg["type"] != "http.request":
            if msg["type"] == BODY_REFUSED:
                raise _Unread(error_reply(400, msg["message"]))
            raise _Unread(error_reply(408, "the request body stalled") if msg["type"] == BODY_TIMEOUT else None)
        chunk: bytes = msg.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _Unread(too_large)
        parts.append(chunk)
        if not msg.get("more_body"):
            return b"".join(parts)


class AdminApp:
    """``reload`` reloads the config file (the runtime's); ``on_reload_ok`` runs after a
    reload made here took effect (with several workers: tell the others)."""

    def __init__(
        self,
        token: str,
        reload: Callable[[str], ReloadResult],
        on_reload_ok: Callable[[], None] | None = None,
    ) -> None:
        self._reload = reload
        self.on_reload_ok = on_reload_ok
        self.token = token.encode()
        self.routes: dict[tuple[str, str], Handler] = {
            ("GET", "/healthz"): self.healthz,
            ("POST", "/api/reload"): self.reload,
        }
        self.public: set[str] = {"/healthz"}
        self.prefix_routes: list[tuple[str, str, Handler]] = []
        # The write routes' audit actions, by handler; told to ``on_write`` (set by the runtime).
        self.audited: dict[Handler, tuple[str, str | None]] = {self.reload: ("config.reload", None)}
        self.on_write: WriteSink | None = None

    def add(
        self,
        method: str,
        path: str,
        handler: Handler,
        prefix: bool = False,
        public: bool = False,
        audit: str | None = None,
    ) -> None:
        """Route ``method path`` (or every path under it, with ``prefix``) to ``handler``;
        ``public`` exempts an exact path from the admin token; ``audit`` names the action
        a success records."""
        if public:
            self.public.add(path)
        if prefix:
            self.prefix_routes.append((method, path, handler))
        else:
            self.routes[(method, path)] = handler
        if audit is not None:
            self.audited[handler] = (audit, path if prefix else None)

    def _authorized(self, headers: dict[str, str], raw: list[tuple[bytes, bytes]]) -> bool:
        if not self.token:
            return True
        if sum(1 for k, _ in raw if k == b"authorization") > 1:
            return False  # which one counts would depend on who reads it: neither does
        given = headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self.token)

    def _handler(self, method: str, path: str) -> Handler | None:
        handler = self.routes.get((method, path))
        if handler is None:
            for m, prefix, h in self.prefix_routes:
                if method == m and path.startswith(prefix):
                    return h
        return handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        method: str = scope["method"]
        path: str = scope["path"]
        handler = self._handler(method, path)
        # Who asks and what for are settled from the head alone: nobody without the
        # token makes the admin API read (or even wait for) a body; nor does a web page
        # elsewhere, token or not (``origin``).
        refused = origin.refusal(scope["headers"], scope.get("http_version", "1.1"), bool(self.token))
        if refused is not None:
            answer = error_reply(*refused)
        elif path not in self.public and not self._authorized(headers, scope["headers"]):
            answer = error_reply(401, "admin token required", [("www-authenticate", "Bearer")])
        elif _CONTROL.search(path) is not None:
            # No name has them (a NUL would reach the database as a failed transaction),
            # and no route (the manual says 400 for any such path; nor is one echoed).
            answer = error_reply(400, "the path has control characters: no consumer or group is named so")
        elif handler is None:
            answer = error_reply(404, f"no admin route {method} {path}")
        else:
            try:
                body = await read_body(receive, headers)
            except _Unread as unread:
                if unread.answer is None:
                    return
                answer = unread.answer
            else:
                query = scope["query_string"].decode("latin-1")
                client = scope.get("client")
                req = AdminRequest(method, path, query, headers, body, client[0] if client else None)
                answer = await self._run(handler, req)
                if answer[0] < 400 and handler in self.audited:
                    await self._audit(handler, req)
        status, out_headers, out = answer
        wire = [(k.encode(), v.encode()) for k, v in out_headers]
        if status != 204:  # (a 204 has no body, and so no length)
            wire.append((b"content-length", str(len(out)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": wire})
        await send({"type": "http.response.body", "body": out})

    @staticmethod
    async def _run(handler: Handler, req: AdminRequest) -> Answer:
        try:
            return await handler(req)
        except BadRequest as exc:  # the body's JSON (``AdminRequest.json``)
            return error_reply(400, exc.message)
        except Exception:  # one failing handler must not take the admin API down
            log.exception("admin handler %s %s failed", req.method, req.path)
            return error_reply(500, "internal error; see the gateway's log")

    async def _audit(self, handler: Handler, req: AdminRequest) -> None:
        if self.on_write is None:
            return
        action, prefix = self.audited[handler]
        try:
            body = req.json()
        except BadRequest:
            body = None
        details = body if isinstance(body, dict) and body else None
        if prefix is not None:
            subject: str | None = req.path[len(prefix) :].split("/", 1)[0]
        else:
            name = details.get("name") if details is not None else None
            subject = name if isinstance(name, str) else None
        try:
            await self.on_write(action, subject, details, req.client_ip)
        except Exception:  # the change is made: a lost audit event must not turn it into a 500
            log.exception("audit: could not record %s", action)

    async def healthz(self, req: AdminRequest) -> Answer:
        return 200, [("content-type", "text/plain")], b"ok"

    async def reload(self, req: AdminRequest) -> Answer:
        result = self._reload(ADMIN_RELOAD)
        if result.ok:
            if self.on_reload_ok is not None:
                self.on_reload_ok()
            return json_reply(200, {"status": "reloaded", "restart_needed": result.restart_needed})
        return json_reply(400, {"status": "rejected", "errors": result.errors})
