"""The admin API's consumer routes (SPEC §5).

    POST   /api/consumers        {"name", "allow_models"?, "groups"?, "expires_at"?,
                                  "budget"?, "max_parallel"?, "metadata"?, "allow_tools"?}
                                 → 201 {"name", "key", "allow_models", "groups",
                                   "allow_tools"}: the only
                                   time the key is shown; 400 bad body; 409 name taken
    GET    /api/consumers?spend= → 200 {"consumers": [{"name", "allow_models", "groups",
                                   "source", "key_hint", "created_at", "expires_at",
                                   "budget", "max_parallel", "allow_tools", "spend"?}]}: config consumers
                                   first, then runtime ones; never a key. ``spend`` (as
                                   GET NAME has it) only with spend=true: one answer for
                                   a whole table, however many consumers
    GET    /api/consumers/NAME   → 200 the consumer as listed, plus budget, max_parallel,
                                   metadata and spend; 404 unknown
    PATCH  /api/consumers/NAME   any of allow_models, groups, budget, max_parallel,
                                 expires_at, metadata, allow_tools → 200 as GET; 400; 404;
                                 409 config
    POST   /api/consumers/NAME/rotate {"grace_s"?}
                                 → 200 {"name", "key"}; the old key works grace_s more
                                   seconds (default 0); 404; 409 a config consumer
    DELETE /api/consumers/NAME   → 204; 404 unknown; 409 a config consumer

``allow_tools`` (MCP tool patterns per MCP server, as a config consumer's; null: every
tool) must name servers of the config (``store.unknown_tool_server``).

A database failure answers 503: the operator should retry, nothing was half-done.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from tollway.admin.app import AdminApp, AdminRequest, error_reply, json_reply
from tollway.consumers.consumer import (
    MAX_BUDGET_USD,
    MAX_PARALLEL,
    PERIODS,
    Budget,
    ConsumerDetail,
    ConsumerListed,
    parse_instant,
)
from tollway.consumers.directory import ConsumerDirectory
from tollway.consumers.groups import GroupDirectory, undeclared
from tollway.consumers.store import (
    EDITABLE,
    ConfigConsumer,
    ConsumerExists,
    ConsumerNotFound,
    InvalidConsumer,
    unknown_tool_server,
)
from tollway.storage import StorageError

_Reply = tuple[int, list[tuple[str, str]], bytes]
_PREFIX = "/api/consumers/"
_ROTATE = "/rotate"
_FIELDS = frozenset({"name", *EDITABLE})
# The longest grace a rotation may give the old key: a week.
MAX_GRACE_S = 7 * 86400
# Entries of "spend" for a consumer name: the budget part of the gateway fills it in.
SpendOf = Callable[[str], Awaitable[list[dict[str, object]]]]
# The same for each of many consumers at once, in their order (a group's spend read once).
SpendOfEach = Callable[[list[ConsumerListed]], Awaitable[list[list[dict[str, object]]]]]
# The values of ``GET /api/consumers?spend=`` that ask for each consumer's spend.
_YES = frozenset({"true", "1"})


async def no_spend(name: str) -> list[dict[str, object]]:
    return []


async def no_spend_of_each(consumers: list[ConsumerListed]) -> list[list[dict[str, object]]]:
    return [[] for _ in consumers]


class BadBody(Exception):
    pass


def register(
    admin: AdminApp,
    directory: ConsumerDirectory,
    config_consumers: Callable[[], list[ConsumerListed]],
    spend_of: SpendOf = no_spend,
    spend_of_each: SpendOfEach = no_spend_of_each,
    groups: GroupDirectory | None = None,
    mcp_servers: Callable[[], Collection[str]] = tuple,
) -> None:
    """Add the consumer routes to ``admin``. ``config_consumers`` is asked at each request,
    so after a reload the config's current consumers are listed and protected;
    ``spend_of`` gives a consumer's current spend entries, ``spend_of_each`` those of
    many; ``groups`` the declared groups a consumer's ``groups`` must name (once there
    are any); ``mcp_servers`` the names of the config's MCP servers, which
    ``allow_tools`` must name."""
    routes = _ConsumerRoutes(directory, config_consumers, spend_of, spend_of_each, groups, mcp_servers)
    admin.add("GET", "/api/consumers", routes.list)
    admin.add("POST", "/api/consumers", routes.create, audit="consumers.add")
    admin.add("GET", _PREFIX, routes.show, prefix=True)
    admin.add("PATCH", _PREFIX, routes.edit, prefix=True, audit="consumers.edit")
    admin.add("POST", _PREFIX, routes.rotate, prefix=True, audit="consumers.rotate")
    admin.add("DELETE", _PREFIX, routes.delete, prefix=True, audit="consumers.revoke")


def _string_list(body: dict[str, Any], field: str) -> list[str] | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadBody(f"{field} must be a list of strings")
    return value


def body_object(body: Any, fields: frozenset[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadBody("body must be a JSON object")
    unknown = sorted(set(body) - fields)
    if unknown:
        raise BadBody(f"unknown field(s): {', '.join(unknown)}")
    return body


def parse_budget(value: Any) -> Budget | None:
    if value is None:
        return None
    usd = value.get("usd") if isinstance(value, dict) else None
    period = value.get("period", "month") if isinstance(value, dict) else None
    if (
        not isinstance(value, dict)
        or set(value) - {"usd", "period"}
        or isinstance(usd, bool)
        or not isinstance(usd, int | float)
        or not math.isfinite(usd)
        or not 0 <= usd <= MAX_BUDGET_USD
        or period not in PERIODS
    ):
        raise BadBody(
            f'budget must be {{"usd": a number from 0 to {MAX_BUDGET_USD:.0f}, "period": one of {", ".join(PERIODS)}}}'
            " or null"
        )
    return Budget(float(usd), period)


def parse_max_parallel(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON has one number type: 4.0 is 4
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PARALLEL:
        raise BadBody(f"max_parallel must be an integer from 1 to {MAX_PARALLEL}, or null")
    return value


def _expires_at(value: Any) -> float | None:
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError
        return parse_instant(value)
    except (ValueError, OverflowError):
        raise BadBody(
            "expires_at must be an ISO-8601 date or date-time within years 1 to 9999 (UTC), or null"
        ) from None


def _metadata(value: Any) -> dict[str, object] | None:
    if value is not None and not isinstance(value, dict):
        raise BadBody("metadata must be a JSON object or null")
    return value


def _allow_tools(value: Any) -> dict[str, list[str]] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(tools, list) and all(isinstance(t, str) for t in tools) for tools in value.values()
    ):
        raise BadBody("allow_tools must be an object of MCP server names to lists of tool patterns, or null")
    return value or None  # ({} names no server: every tool, as null says)


def _edits(body: dict[str, Any]) -> dict[str, object]:
    """The editable fields of ``body``, checked and in the store's form."""
    changes: dict[str, object] = {}
    for field in EDITABLE:
        if field not in body:
            continue
        value = body[field]
        if field in ("allow_models", "groups"):
            changes[field] = _string_list(body, field)
        elif field == "budget":
            budget = parse_budget(value)
            changes[field] = {"usd": budget.usd, "period": budget.period} if budget is not None else None
        elif field == "max_parallel":
            changes[field] = parse_max_parallel(value)
        elif field == "expires_at":
            changes[field] = _expires_at(value)
        elif field == "allow_tools":
            changes[field] = _allow_tools(value)
        else:
            changes[field] = _metadata(value)
    return changes


def _parse_new_consumer(body: Any) -> tuple[str, dict[str, Any]]:
    body = body_object(body, _FIELDS)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise BadBody("name is required and must be a non-empty string")
    _edits(body)  # every field checked before anything is stored
    return name, body


def _grace(body: Any) -> float:
    grace = body_object(body, frozenset({"grace_s"})).get("grace_s", 0)
    if isinstance(grace, bool) or not isinstance(grace, int | float) or not 0 <= grace <= MAX_GRACE_S:
        raise BadBody(f"grace_s must be a number of seconds from 0 to {MAX_GRACE_S}")
    return float(grace)


class _ConsumerRoutes:
    def __init__(
        self,
        directory: ConsumerDirectory,
        config_consumers: Callable[[], list[ConsumerListed]],
        spend_of: SpendOf,
        spend_of_each: SpendOfEach,
        groups: GroupDirectory | None = None,
        mcp_servers: Callable[[], Collection[str]] = tuple,
    ) -> None:
        self.directory = directory
        self.config_consumers = config_consumers
        self.spend_of = spend_of
        self.spend_of_each = spend_of_each
        self.groups = groups
        self.mcp_servers = mcp_servers

    def _unknown_servers(self, allow_tools: object) -> str | None:
        why = unknown_tool_server(allow_tools, self.mcp_servers()) if isinstance(allow_tools, dict) else None
        return f"allow_tools: {why}" if why is not None else None

    async def _undeclared(self, names: list[str] | None) -> str | None:
        """Why ``names`` cannot be a consumer's groups: once any group is declared (in
        the config or here), a name outside them is a typo that would escape a group's
        budget, as the config check says of a config consumer. Raises ``StorageError``."""
        if not names or self.groups is None:
            return None
        unknown = undeclared(names, {g.name for g in self.groups.all()})
        if unknown is not None:
            # Perhaps made a moment ago through another replica, whose change this
            # process's directory has not loaded yet: the database says, not the memory.
            await self.directory.refresh()
            unknown = undeclared(names, {g.name for g in self.groups.all()})
        if unknown is None:
            return None
        return f"unknown group {unknown!r} in groups (declare it under groups: or with POST /api/groups)"

    def _config_names(self) -> set[str]:
        return {c["name"] for c in self.config_consumers()}

    async def create(self, req: AdminRequest) -> _Reply:
        try:
            name, body = _parse_new_consumer(req.json())
        except BadBody as exc:
            return error_reply(400, str(exc))
        if name in self._config_names():
            return error_reply(409, f"consumer {name!r} exists in the config file")
        unknown = self._unknown_servers(body.get("allow_tools"))
        if unknown is not None:
            return error_reply(400, unknown)
        try:
            undeclared = await self._undeclared(_string_list(body, "groups"))
            if undeclared is not None:
                return error_reply(400, undeclared)
            consumer, key = await self.directory.add(
                name,
                _string_list(body, "allow_models"),
                _string_list(body, "groups") or [],
                expires_at=_expires_at(body.get("expires_at")),
                budget=parse_budget(body.get("budget")),
                max_parallel=parse_max_parallel(body.get("max_parallel")),
                metadata=_metadata(body.get("metadata")),
                allow_tools=_allow_tools(body.get("allow_tools")),
            )
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
                "allow_tools": {server: list(tools) for server, tools in consumer.allow_tools} or None,
            },
        )

    async def list(self, req: AdminRequest) -> _Reply:
        spend = req.query.get("spend", "false")
        if spend not in _YES | {"false", "0"}:
            return error_reply(400, "spend must be true or false")
        try:
            consumers = [*self.config_consumers(), *await self.directory.listed()]
            if spend not in _YES:
                return json_reply(200, {"consumers": consumers})
            # One read of the state store per budget, not a request per consumer: a
            # dashboard of thousands of consumers asks once per refresh.
            spends = await self.spend_of_each(consumers)
        except StorageError as exc:
            return error_reply(503, f"database unavailable: {exc}")
        return json_reply(200, {"consumers": [{**c, "spend": s} for c, s in zip(consumers, spends, strict=True)]})

    async def show(self, req: AdminRequest) -> _Reply:
        name = req.path[len(_PREFIX) :]
        config = {c["name"]: c for c in self.config_consumers()}
        try:
            detail: ConsumerDetail | None
            if name in config:
                detail = ConsumerDetail(**config[name], metadata=None)
            else:
                detail = await self.directory.get(name)
            if detail is None:
                return error_reply(404, f"no consumer named {name!r}")
            spend = await self.spend_of(name)
        except StorageError as exc:
            return error_reply(503, f"database unavailable: {exc}")
        return json_reply(200, {**detail, "spend": spend})

    async def edit(self, req: AdminRequest) -> _Reply:
        name = req.path[len(_PREFIX) :]
        try:
            changes = _edits(body_object(req.json(), frozenset(EDITABLE)))
        except BadBody as exc:
            return error_reply(400, str(exc))
        return await self._changing(name, lambda: self._edited(name, changes))

    async def _edited(self, name: str, changes: dict[str, object]) -> _Reply:
        unknown = self._unknown_servers(changes.get("allow_tools"))
        if unknown is not None:
            return error_reply(400, unknown)
        groups = changes.get("groups")
        undeclared = await self._undeclared(groups if isinstance(groups, list) else None)
        if undeclared is not None:
            return error_reply(400, undeclared)
        detail = await self.directory.edit(name, changes)
        return json_reply(200, {**detail, "spend": await self.spend_of(name)})

    async def rotate(self, req: AdminRequest) -> _Reply:
        path = req.path[len(_PREFIX) :]
        name = path.removesuffix(_ROTATE)
        if name == path or not name or "/" in name:
            return error_reply(404, f"no admin route {req.method} {req.path}")
        try:
            grace_s = _grace(req.json())
        except BadBody as exc:
            return error_reply(400, str(exc))
        return await self._changing(name, lambda: self._rotated(name, grace_s))

    async def _rotated(self, name: str, grace_s: float) -> _Reply:
        return json_reply(200, {"name": name, "key": await self.directory.rotate(name, grace_s)})

    async def delete(self, req: AdminRequest) -> _Reply:
        name = req.path[len(_PREFIX) :]
        if not name:
            return error_reply(404, "no consumer named in the path")
        # Not refused for a config name first: a runtime consumer made before the config
        # took its name (served by neither, see ``ConsumerDirectory.refresh``) must be
        # removable here. The store says 409 when only the config has the name.
        return await answering(lambda: self._revoked(name))

    async def _revoked(self, name: str) -> _Reply:
        await self.directory.revoke(name)
        return 204, [], b""

    async def _changing(self, name: str, change: Callable[[], Awaitable[_Reply]]) -> _Reply:
        """Run a change to a runtime consumer, answering its refusals."""
        if not name:
            return error_reply(404, "no consumer named in the path")
        if name in self._config_names():
            return error_reply(409, f"consumer {name!r} comes from the config file; change it there")
        return await answering(change)


async def answering(change: Callable[[], Awaitable[_Reply]]) -> _Reply:
    """Run a change to the store, answering its refusals and a database failure."""
    try:
        return await change()
    except InvalidConsumer as exc:
        return error_reply(400, str(exc))
    except (ConfigConsumer, ConsumerExists) as exc:
        return error_reply(409, str(exc))
    except ConsumerNotFound as exc:
        return error_reply(404, str(exc))
    except StorageError as exc:
        return error_reply(503, f"database unavailable: {exc}")
