"""``tollway groups add|list|show|remove``: consumer groups from the command line.

Runtime groups live in the database, as ``POST /api/groups`` makes them; the config
file's ``groups:`` are listed and shown but changed only in the file. ``show`` prints the
group as JSON with its members and its recorded spend in the budget's current period
(the usage records' ``cost_usd``; calls still running are not in it). A running gateway
on the same database applies a change within its refresh interval. Exit codes as for
``tollway consumers``.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from tollway.cli.consumers import PERIODS, BudgetArgumentError, budget_of, positive_argument, run, usd_argument
from tollway.cli.spend import members_of, recorded_spend

if TYPE_CHECKING:
    from tollway.config.load import LoadedConfig
    from tollway.consumers.consumer import ConsumerInfo
    from tollway.consumers.groups import Group
    from tollway.consumers.store import ConsumerStore
    from tollway.storage.audit import AuditLog


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("-c", "--config", help="config file (default: as `tollway serve` finds it)")
    p = subparsers.add_parser("groups", help="manage consumer groups (budgets shared by their members)")
    commands = p.add_subparsers(dest="groups_command", required=True)

    add = commands.add_parser("add", parents=[config], help="declare a runtime group")
    add.add_argument("name")
    add.add_argument("--budget-usd", type=usd_argument, metavar="X", help="the group's budget in US dollars")
    add.add_argument("--budget-period", choices=PERIODS, help="its UTC calendar period (default: month)")
    add.add_argument("--max-parallel", type=positive_argument, metavar="N", help="its members' calls in flight at most")
    add.set_defaults(func=cmd_add)

    listing = commands.add_parser("list", parents=[config], help="list the declared groups")
    listing.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="json: one object per group, members as a list (a table joins them with commas)",
    )
    listing.set_defaults(func=cmd_list)

    show = commands.add_parser("show", parents=[config], help="show one group as JSON, with members and spend")
    show.add_argument("name")
    show.set_defaults(func=cmd_show)

    remove = commands.add_parser("remove", parents=[config], help="remove a runtime group")
    remove.add_argument("name")
    remove.set_defaults(func=cmd_remove)


def _declared(loaded: LoadedConfig, runtime: list[Group]) -> list[Group]:
    from tollway.consumers.groups import group_of

    config = [group_of(g) for g in loaded.config.groups]
    names = {g.name for g in config}
    return config + [g for g in runtime if g.name not in names]


async def _members(store: ConsumerStore, config: list[ConsumerInfo], name: str) -> list[str]:
    return await members_of(store, config, name)


def cmd_add(args: argparse.Namespace) -> int:
    try:
        budget = budget_of(args)
    except BudgetArgumentError as exc:
        print(f"tollway: {exc}", file=sys.stderr)
        return 2

    async def add(store: ConsumerStore, _config: list[ConsumerInfo], audit: AuditLog, loaded: LoadedConfig) -> int:
        if any(g.name == args.name for g in loaded.config.groups):
            print(f"tollway: group {args.name!r} is declared in the config file", file=sys.stderr)
            return 1
        await store.add_group(args.name, budget, args.max_parallel)
        details: dict[str, object] = {"name": args.name, "max_parallel": args.max_parallel}
        if budget is not None:
            details["budget"] = {"usd": budget.usd, "period": budget.period}
        await audit.record("groups.add", args.name, details, None)
        print(f"tollway: group {args.name!r} added", file=sys.stderr)
        return 0

    return run(args.config, add)


def cmd_list(args: argparse.Namespace) -> int:
    async def show(store: ConsumerStore, config: list[ConsumerInfo], _audit: AuditLog, loaded: LoadedConfig) -> int:
        declared = [(g, await _members(store, config, g.name)) for g in _declared(loaded, await store.groups())]
        if args.format == "json":
            import orjson

            groups = [g.shown(members) for g, members in declared]
            print(orjson.dumps({"groups": groups}, option=orjson.OPT_INDENT_2).decode())
            return 0
        from tollway.cli.text import shown

        rows: list[tuple[str, ...]] = [("NAME", "SOURCE", "BUDGET", "MAX_PARALLEL", "MEMBERS")]
        for g, members in declared:
            budget = f"${g.budget.usd:g}/{g.budget.period}" if g.budget is not None else "-"
            parallel = str(g.max_parallel) if g.max_parallel is not None else "-"
            rows.append(tuple(shown(c) for c in (g.name, g.source, budget, parallel, ",".join(members) or "-")))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        return 0

    return run(args.config, show, reading=True)


def cmd_show(args: argparse.Namespace) -> int:
    async def show(store: ConsumerStore, config: list[ConsumerInfo], _audit: AuditLog, loaded: LoadedConfig) -> int:
        import orjson

        group = next((g for g in _declared(loaded, await store.groups()) if g.name == args.name), None)
        if group is None:
            print(f"tollway: no group named {args.name!r}", file=sys.stderr)
            return 1
        members = await _members(store, config, group.name)
        spend = (
            [] if group.budget is None else [await recorded_spend(store.db, "group", group.name, group.budget, members)]
        )
        print(orjson.dumps({**group.shown(members), "spend": spend}, option=orjson.OPT_INDENT_2).decode())
        return 0

    return run(args.config, show, reading=True)


def cmd_remove(args: argparse.Namespace) -> int:
    async def remove(store: ConsumerStore, _config: list[ConsumerInfo], audit: AuditLog, loaded: LoadedConfig) -> int:
        if any(g.name == args.name for g in loaded.config.groups):
            print(f"tollway: group {args.name!r} is declared in the config file; remove it there", file=sys.stderr)
            return 1
        await store.remove_group(args.name)
        await audit.record("groups.remove", args.name, None, None)
        print(f"tollway: group {args.name!r} removed", file=sys.stderr)
        return 0

    return run(args.config, remove, reading=True)  # (what it changes must be there: it makes nothing)
