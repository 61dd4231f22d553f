"""The admin API (its own listener): health and reload here; consumers, usage, metrics
and the dashboard register their routes with ``add`` (the runtime wires them all).

With a token set, every route but ``/healthz`` and the routes added as ``public`` (the
dashboard's static files, which hold no data) needs ``Authorization: Bearer <token>``,
compared in constant time.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import orjson

from tollway.config.load import ReloadResult
from tollway.gateway.edge import Receive, Scope, Send

log = logging.getLogger("tollway.admin.app")

Handler = Callable[["AdminRequest"], Awaitable[tuple[int, list[tuple[str, str]], bytes]]]


class AdminRequest:
    def __init__(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> None:
        self.method = method
        self.path = path
        self.query = {k: v[-1] for k, v in parse_qs(query).items()}
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else {}


def json_reply(status: int, obj: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("content-type", "application/json")], orjson.dumps(obj)


def error_reply(
    status: int, message: str, extra: list[tuple[str, str]] | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    code, headers, body = json_reply(status, {"error": {"message": message, "type": "admin_error"}})
    return code, headers + (extra or []), body


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

    def add(self, method: str, path: str, handler: Handler, prefix: bool = False, public: bool = False) -> None:
        """Route ``method path`` (or every path under it, with ``prefix``) to ``handler``;
        ``public`` exempts an exact path from the admin token."""
        if public:
            self.public.add(path)
        if prefix:
            self.prefix_routes.append((method, path, handler))
        else:
            self.routes[(method, path)] = handler

    def _authorized(self, headers: dict[str, str]) -> bool:
        if not self.token:
            return True
        given = headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self.token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        req = AdminRequest(scope["method"], scope["path"], scope["query_string"].decode("latin-1"), headers, body)
        status, out_headers, out = await self.dispatch(req)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in out_headers],
            }
        )
        await send({"type": "http.response.body", "body": out})

    async def dispatch(self, req: AdminRequest) -> tuple[int, list[tuple[str, str]], bytes]:
        if req.path not in self.public and not self._authorized(req.headers):
            return error_reply(401, "admin token required", [("www-authenticate", "Bearer")])
        handler = self.routes.get((req.method, req.path))
        if handler is None:
            for method, prefix, h in self.prefix_routes:
                if req.method == method and req.path.startswith(prefix):
                    handler = h
                    break
        if handler is None:
            return error_reply(404, f"no admin route {req.method} {req.path}")
        try:
            return await handler(req)
        except orjson.JSONDecodeError:
            return error_reply(400, "request body is not valid JSON")
        except Exception:  # one failing handler must not take the admin API down
            log.exception("admin handler %s %s failed", req.method, req.path)
            return error_reply(500, "internal error; see the gateway's log")

    async def healthz(self, req: AdminRequest) -> tuple[int, list[tuple[str, str]], bytes]:
        return 200, [("content-type", "text/plain")], b"ok"

    async def reload(self, req: AdminRequest) -> tuple[int, list[tuple[str, str]], bytes]:
        result = self._reload("admin API")
        if result.ok:
            if self.on_reload_ok is not None:
                self.on_reload_ok()
            return json_reply(200, {"status": "reloaded", "restart_needed": result.restart_needed})
        return json_reply(400, {"status": "rejected", "errors": result.errors})
