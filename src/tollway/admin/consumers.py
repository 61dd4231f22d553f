"""The admin API's consumer routes (SPEC §5).

    POST   /api/consumers        {"name", "allow_models"?, "groups"?}
                                 → 201 {"name", "key", "allow_models", "groups"}: the only
                                   time the key is shown; 400 bad body; 409 name taken
    GET    /api/consumers        → 200 {"consumers": [{"name", "allow_models", "groups",
                                   "source", "key_hint", "created_at"}]}: config consumers
                                   first, then runtime ones; never a key
    DELETE /api/consumers/NAME   → 204; 404 unknown; 409 a config consumer

A database failure answers 503: the operator should retry, nothing was half-done.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tollway.admin.app import AdminApp, AdminRequest, error_reply, json_reply
from tollway.consumers.consumer import ConsumerInfo
from tollway.consumers.directory import ConsumerDirectory
from tollway.consumers.store import ConfigConsumer, ConsumerExists, ConsumerNotFound, InvalidConsumer
from tollway.storage import StorageError

_Reply = tuple[int, list[tuple[str, str]], bytes]
_PREFIX = "/api/consumers/"
_FIELDS = frozenset({"name", "allow_models", "groups"})


class _BadBody(Exception):
    pass


def register(admin: AdminApp, directory: ConsumerDirectory, config_consumers: Callable[[], list[ConsumerInfo]]) -> None:
    """Add the consumer routes to ``admin``. ``config_consumers`` is asked at each request,
    so after a reload the config's current consumers are listed and protected."""
    routes = _ConsumerRoutes(directory, config_consumers)
    admin.add("GET", "/api/consumers", routes.list)
    admin.add("POST", "/api/consumers", routes.create)
    admin.add("DELETE", _PREFIX, routes.delete, prefix=True)


def _string_list(body: dict[str, Any], field: str) -> list[str] | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _BadBody(f"{field} must be a list of strings")
    return value


def _parse_new_consumer(body: Any) -> tuple[str, list[str] | None, list[str]]:
    if not isinstance(body, dict):
        raise _BadBody("body must be a JSON object")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise _BadBody(f"unknown field(s): {', '.join(unknown)}")
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise _BadBody("name is required and must be a non-empty string")
    return name, _string_list(body, "allow_models"), _string_list(body, "groups") or []


class _ConsumerRoutes:
    def __init__(self, directory: ConsumerDirectory, config_consumers: Callable[[], list[ConsumerInfo]]) -> None:
        self.directory = directory
        self.config_consumers = config_consumers

    def _config_names(self) -> set[str]:
        return {c["name"] for c in self.config_consumers()}

    async def create(self, req: AdminRequest) -> _Reply:
        try:
            name, allow_models, groups = _parse_new_consumer(req.json())
        except _BadBody as exc:
            return error_reply(400, str(exc))
        if name in self._config_names():
            return error_reply(409, f"consumer {name!r} exists in the config file")
        try:
            consumer, key = await self.directory.add(name, allow_models, groups)
        except InvalidConsumer as exc:
            return error_reply(400, str(exc))
        except ConsumerExists as exc:
            return error_reply(409, str(exc))
        except StorageError as exc:
            return error_reply(503, f"database unavailable: {exc}")
        return json_reply(
            201,
            {
                "name": consumer.name,
                "key": key,
                "allow_models": list(consumer.allow_models) if consumer.allow_models is not None else None,
                "groups": list(consumer.groups),
            },
        )

    async def list(self, req: AdminRequest) -> _Reply:
        try:
            runtime = await self.directory.list()
        except StorageError as exc:
            return error_reply(503, f"database unavailable: {exc}")
        return json_reply(200, {"consumers": [*self.config_consumers(), *runtime]})

    async def delete(self, req: AdminRequest) -> _Reply:
        name = req.path[len(_PREFIX) :]
        if not name:
            return error_reply(404, "no consumer named in the path")
        try:
            await self.directory.revoke(name)
        except ConfigConsumer as exc:
            return error_reply(409, str(exc))
        except ConsumerNotFound as exc:
            if name in self._config_names():
                return error_reply(409, f"consumer {name!r} comes from the config file; remove it there")
            return error_reply(404, str(exc))
        except StorageError as exc:
            return error_reply(503, f"database unavailable: {exc}")
        return 204, [], b""
