"""The admin API's group routes (SPEC §10): groups with their budgets, ``max_parallel``,
members and current spend; runtime groups made and changed here, config groups (the
config file's ``groups:``) listed but changed only in the file.

    GET    /api/groups          → 200 {"groups": [{"name", "source", "budget",
                                  "max_parallel", "members", "spend"}]}: config groups first
    POST   /api/groups          {"name", "budget"?, "max_parallel"?} → 201 the group;
                                  400 bad body; 409 the name is declared already
    GET    /api/groups/NAME     → 200 the group; 404
    PATCH  /api/groups/NAME     {"budget"?, "max_parallel"?} → 200; 400; 404; 409 config
    DELETE /api/groups/NAME     → 204 (its members keep the name, as a plain label);
                                  404; 409 config

Every process holds calls to a runtime group's limits within about a second of a change
(at once here). A database failure answers 503.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tollway.admin.app import AdminApp, AdminRequest, Answer, error_reply, json_reply
from tollway.admin.consumers import BadBody, answering, body_object, parse_budget, parse_max_parallel
from tollway.consumers.directory import ConsumerDirectory
from tollway.consumers.groups import Group, GroupDirectory
from tollway.consumers.store import GROUP_EDITABLE, ConsumerNotFound
from tollway.storage import StorageError

PATH = "/api/groups"
_PREFIX = PATH + "/"
Members = Callable[[str], Awaitable[list[str]]]
GroupSpend = Callable[[Group], Awaitable[list[dict[str, object]]]]


def register(
    admin: AdminApp, directory: ConsumerDirectory, groups: GroupDirectory, members: Members, spend: GroupSpend
) -> None:
    routes = _GroupRoutes(directory, groups, members, spend)
    admin.add("GET", PATH, routes.list)
    admin.add("POST", PATH, routes.create, audit="groups.add")
    admin.add("GET", _PREFIX, routes.show, prefix=True)
    admin.add("PATCH", _PREFIX, routes.edit, prefix=True, audit="groups.edit")
    admin.add("DELETE", _PREFIX, routes.delete, prefix=True, audit="groups.remove")


def _changes(body: dict[str, Any]) -> dict[str, object]:
    changes: dict[str, object] = {}
    if "budget" in body:
        budget = parse_budget(body["budget"])
        changes["budget"] = {"usd": budget.usd, "period": budget.period} if budget is not None else None
    if "max_parallel" in body:
        changes["max_parallel"] = parse_max_parallel(body["max_parallel"])
    return changes


class _GroupRoutes:
    def __init__(self, directory: ConsumerDirectory, groups: GroupDirectory, members: Members, spend: GroupSpend):
        self.directory = directory
        self.groups = groups
        self.members = members
        self.spend = spend

    async def _shown(self, group: Group) -> dict[str, object]:
        return {**group.shown(await self.members(group.name)), "spend": await self.spend(group)}

    def _config_group(self, name: str) -> bool:
        found = self.groups.get(name)
        return found is not None and found.source == "config"

    async def list(self, req: AdminRequest) -> Answer:
        try:
            await self.directory.refresh()
            shown = [await self._shown(g) for g in self.groups.all()]
        except StorageError as exc:
            return error_reply(503, f"database unavailable: {exc}")
        return json_reply(200, {"groups": shown})

    async def show(self, req: AdminRequest) -> Answer:
        name = req.path[len(_PREFIX) :]
        try:
            await self.directory.refresh()
            group = self.groups.get(name)
            if group is None:
                return error_reply(404, f"no group named {name!r}")
            return json_reply(200, await self._shown(group))
        except StorageError as exc:
            return error_reply(503, f"database unavailable: {exc}")

    async def create(self, req: AdminRequest) -> Answer:
        try:
            body = body_object(req.json(), frozenset({"name", *GROUP_EDITABLE}))
            name = body.get("name")
            if not isinstance(name, str) or not name:
                raise BadBody("name is required and must be a non-empty string")
            budget = parse_budget(body.get("budget"))
            max_parallel = parse_max_parallel(body.get("max_parallel"))
        except BadBody as exc:
            return error_reply(400, str(exc))
        if self._config_group(name):
            return error_reply(409, f"group {name!r} is declared in the config file")

        async def add() -> Answer:
            return json_reply(201, await self._shown(await self.directory.add_group(name, budget, max_parallel)))

        return await answering(add)

    async def edit(self, req: AdminRequest) -> Answer:
        name = req.path[len(_PREFIX) :]
        try:
            changes = _changes(body_object(req.json(), frozenset(GROUP_EDITABLE)))
        except BadBody as exc:
            return error_reply(400, str(exc))
        if self._config_group(name):
            return error_reply(409, f"group {name!r} is declared in the config file; change it there")

        async def edit() -> Answer:
            return json_reply(200, await self._shown(await self.directory.edit_group(name, changes)))

        return await answering(edit)

    async def delete(self, req: AdminRequest) -> Answer:
        name = req.path[len(_PREFIX) :]
        declared_in_config = self._config_group(name)

        async def remove() -> Answer:
            try:
                await self.directory.remove_group(name)
            except ConsumerNotFound:
                if declared_in_config:
                    return error_reply(409, f"group {name!r} is declared in the config file; remove it there")
                raise
            # (A runtime group the config declared since is removed too: the config's
            # hid it, and it would come back with its old budget once the config's went.)
            return 204, [], b""

        return await answering(remove)
