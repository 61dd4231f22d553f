"""``tollway consumers add|list|show|rotate|revoke``: runtime consumers from the command line.

The config is found as ``serve`` finds it (``-c``, else ``$TOLLWAY_CONFIG``, else
``./tollway.yaml``, else the built-in quickstart config with its database under
``./tollway-data/``); only its ``storage.database`` and its key-auth consumers (whose
names are taken) matter here. A running gateway on the same database sees a change
within its refresh interval. Every change is an event in the audit log (its client
address null: it came from the command line).

Exit codes: 0 done; 1 the name exists, is unknown or belongs to the config file, or the
database failed; 2 a config or argument problem.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from tollway.cli.text import shown

if TYPE_CHECKING:
    # Imported where used at run time: every ``tollway`` command builds this parser, and
    # the database drivers are not worth loading for ``serve --help``.
    from tollway.config.load import LoadedConfig
    from tollway.consumers.consumer import Budget, ConsumerInfo
    from tollway.consumers.store import ConsumerStore
    from tollway.storage.audit import AuditLog

    Operation = Callable[[ConsumerStore, list[ConsumerInfo], AuditLog, LoadedConfig], Awaitable[int]]

PERIODS = ("day", "week", "month", "total")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``consumers`` and its three commands on the top-level parser."""
    config = argparse.ArgumentParser(add_help=False)
    # On each command rather than on ``consumers``: a subcommand's default would
    # overwrite a value given before it.
    config.add_argument("-c", "--config", help="config file (default: as `tollway serve` finds it)")

    p = subparsers.add_parser("consumers", help="manage runtime consumers (keys kept in the database)")
    commands = p.add_subparsers(dest="consumers_command", required=True)

    add = commands.add_parser("add", parents=[config], help="add a consumer and print its key once")
    add.add_argument("name")
    add.add_argument("--allow-models", nargs="+", action="extend", metavar="PATTERN", help="models it may use")
    add.add_argument("--groups", nargs="+", action="extend", metavar="G", default=[], help="its consumer groups")
    add.add_argument("--budget-usd", type=usd_argument, metavar="X", help="its budget in US dollars")
    add.add_argument(
        "--budget-period", choices=PERIODS, help="the budget's UTC calendar period (default: month; with --budget-usd)"
    )
    add.add_argument("--expires", metavar="ISO", help="when its key stops working (ISO-8601, UTC unless it says)")
    add.add_argument("--max-parallel", type=positive_argument, metavar="N", help="its calls in flight at most")
    add.add_argument(
        "--allow-tools",
        action="append",
        type=tools_argument,
        metavar="SERVER=PATTERN",
        help="an MCP tool pattern it may list and call on SERVER (again for each pattern; SERVER= alone: no "
        "tool); a server without it: every tool",
    )
    add.set_defaults(func=cmd_add)

    show = commands.add_parser("show", parents=[config], help="show one consumer as JSON (never its key)")
    show.add_argument("name")
    show.set_defaults(func=cmd_show)

    rotate = commands.add_parser("rotate", parents=[config], help="give a runtime consumer a new key, printed once")
    rotate.add_argument("name")
    rotate.add_argument(
        "--grace", type=_seconds, default=0.0, metavar="S", help="seconds the old key keeps working (default 0)"
    )
    rotate.set_defaults(func=cmd_rotate)

    listing = commands.add_parser("list", parents=[config], help="list consumers (never their keys)")
    listing.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="json: as GET /api/consumers lists them, lists as lists (a table joins them with commas)",
    )
    listing.set_defaults(func=cmd_list)

    revoke = commands.add_parser("revoke", parents=[config], help="revoke a runtime consumer's key")
    revoke.add_argument("name")
    revoke.set_defaults(func=cmd_revoke)


def usd_argument(text: str) -> float:
    """A ``--budget-usd``: dollars, 0 to ``MAX_BUDGET_USD``, as the admin API takes them."""
    from tollway.consumers.consumer import MAX_BUDGET_USD

    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_BUDGET_USD:  # (nan is in no range)
        raise argparse.ArgumentTypeError(f"must be a number of US dollars from 0 to {MAX_BUDGET_USD:g}, not {text!r}")
    return value


def budget_of(args: argparse.Namespace) -> Budget | None:
    """``--budget-usd`` with ``--budget-period`` (a month when none is given); a period
    alone is a usage error (it was dropped without a word)."""
    from tollway.consumers.consumer import Budget

    if args.budget_usd is None:
        if args.budget_period is not None:
            raise BudgetArgumentError("--budget-period needs --budget-usd: a period alone sets no budget")
        return None
    return Budget(args.budget_usd, args.budget_period or "month")


class BudgetArgumentError(ValueError):
    pass


def positive_argument(text: str) -> int:
    """A ``--max-parallel``: 1 to ``MAX_PARALLEL``, as the admin API takes it."""
    from tollway.consumers.consumer import MAX_PARALLEL

    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_PARALLEL:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to {MAX_PARALLEL}, not {text!r}")
    return value


def tools_argument(text: str) -> tuple[str, list[str]]:
    """An ``--allow-tools``: ``SERVER=PATTERN``, one pattern whole (a ``~regex`` may hold
    commas: ``{1,20}``), or ``SERVER=`` (no tool)."""
    server, sep, pattern = text.partition("=")
    if not sep or not server:
        raise argparse.ArgumentTypeError(f"must be SERVER=PATTERN, not {text!r}")
    return server, [pattern] if pattern else []


def allow_tools_of(args: argparse.Namespace) -> dict[str, list[str]] | None:
    """The ``--allow-tools`` given, by server (one given twice: both its lists)."""
    if not args.allow_tools:
        return None
    tools: dict[str, list[str]] = {}
    for server, patterns in args.allow_tools:
        tools.setdefault(server, []).extend(patterns)
    return tools


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 7 * 86400:
        raise argparse.ArgumentTypeError(f"must be a number of seconds from 0 to {7 * 86400} (a week), not {text!r}")
    return value


def cmd_add(args: argparse.Namespace) -> int:
    from tollway.consumers.consumer import parse_instant
    from tollway.consumers.groups import undeclared
    from tollway.consumers.store import InvalidConsumer, unknown_tool_server, validate

    allow_tools = allow_tools_of(args)
    try:
        # Before the database is opened: a refused consumer makes no database (nor demo key).
        validate(args.name, args.allow_models, args.groups, allow_tools)
    except InvalidConsumer as exc:
        print(f"tollway: {exc}", file=sys.stderr)
        return 2
    try:
        expires_at = parse_instant(args.expires) if args.expires is not None else None
    except ValueError:
        print(
            f"tollway: --expires: not an ISO-8601 date or date-time within years 1 to 9999 (UTC): {args.expires!r}",
            file=sys.stderr,
        )
        return 2
    try:
        budget = budget_of(args)
    except BudgetArgumentError as exc:
        print(f"tollway: {exc}", file=sys.stderr)
        return 2

    async def add(store: ConsumerStore, _config: list[ConsumerInfo], audit: AuditLog, loaded: LoadedConfig) -> int:
        if args.groups:
            # As the admin API and the config check: once any group is declared, a name
            # outside them is a typo that would escape the group's budget.
            declared = {g.name for g in loaded.config.groups} | {g.name for g in await store.groups()}
            unknown = undeclared(args.groups, declared)
            if unknown is not None:
                print(f"tollway: unknown group {unknown!r} in --groups (declare it under groups: in the "
                      "config file, or with `tollway groups add`)", file=sys.stderr)  # fmt: skip
                return 2
        stray = unknown_tool_server(allow_tools, [s.name for s in loaded.config.mcp_servers])
        if stray is not None:  # (as the admin API refuses it)
            print(f"tollway: --allow-tools: {stray}", file=sys.stderr)
            return 2
        consumer, key, _ = await store.add(
            args.name, args.allow_models, args.groups, expires_at=expires_at, budget=budget,
            max_parallel=args.max_parallel, allow_tools=allow_tools,
        )  # fmt: skip
        details: dict[str, object] = {"name": args.name, "allow_models": args.allow_models, "groups": args.groups}
        if allow_tools is not None:
            details["allow_tools"] = allow_tools
        if budget is not None:
            details["budget"] = {"usd": budget.usd, "period": budget.period}
        details.update(expires_at=args.expires, max_parallel=args.max_parallel)
        await audit.record("consumers.add", args.name, details, None)
        print(key, flush=True)
        print(
            f"tollway: consumer {consumer.name!r} added; its key (above) is shown only this once",
            file=sys.stderr,
        )
        return 0

    return run(args.config, add)


def cmd_show(args: argparse.Namespace) -> int:
    async def show(store: ConsumerStore, config: list[ConsumerInfo], _audit: AuditLog, loaded: LoadedConfig) -> int:
        import orjson

        from tollway.cli.spend import consumer_spend
        from tollway.consumers.consumer import Budget
        from tollway.plugins.key_auth import config_consumer_detail

        detail = config_consumer_detail(loaded, args.name) or await store.get(args.name)
        if detail is None:
            print(f"tollway: no consumer named {args.name!r}", file=sys.stderr)
            return 1
        b = detail["budget"]
        budget = Budget(b["usd"], b["period"]) if b is not None else None
        spend = await consumer_spend(store, config, loaded, args.name, budget, detail["groups"])
        print(orjson.dumps({**detail, "spend": spend}, option=orjson.OPT_INDENT_2).decode())
        return 0

    return run(args.config, show, reading=True)


def cmd_rotate(args: argparse.Namespace) -> int:
    async def rotate(store: ConsumerStore, _config: list[ConsumerInfo], audit: AuditLog, _loaded: LoadedConfig) -> int:
        key, _, _ = await store.rotate(args.name, args.grace)
        await audit.record("consumers.rotate", args.name, {"grace_s": args.grace}, None)
        print(key, flush=True)
        print(
            f"tollway: consumer {args.name!r} has a new key (above), shown only this once; "
            f"the old one works {args.grace:g} more seconds",
            file=sys.stderr,
        )
        return 0

    return run(args.config, rotate, reading=True)  # (what it changes must be there: it makes nothing)


def cmd_list(args: argparse.Namespace) -> int:
    async def show(store: ConsumerStore, config: list[ConsumerInfo], _audit: AuditLog, loaded: LoadedConfig) -> int:
        if args.format == "json":
            import orjson

            from tollway.plugins.key_auth import config_consumer_listing

            listed = [*config_consumer_listing(loaded), *await store.listed()]
            print(orjson.dumps({"consumers": listed}, option=orjson.OPT_INDENT_2).decode())
        else:
            print(format_table([*config, *await store.list()]))
        return 0

    return run(args.config, show, reading=True)


def cmd_revoke(args: argparse.Namespace) -> int:
    async def revoke(store: ConsumerStore, _config: list[ConsumerInfo], audit: AuditLog, _loaded: LoadedConfig) -> int:
        await store.revoke(args.name)
        await audit.record("consumers.revoke", args.name, None, None)
        print(f"tollway: consumer {args.name!r} revoked", file=sys.stderr)
        return 0

    return run(args.config, revoke, reading=True)  # (what it changes must be there: it makes nothing)


def format_table(consumers: list[ConsumerInfo]) -> str:
    """One aligned line per consumer under a header; ``-`` for an unset field."""
    header = ("NAME", "SOURCE", "KEY", "ALLOW_MODELS", "GROUPS", "CREATED_AT")
    rows = [header] + [
        (
            c["name"],
            c["source"],
            "…" + c["key_hint"],
            ",".join(c["allow_models"]) if c["allow_models"] is not None else "*",
            ",".join(c["groups"]) or "-",
            c["created_at"] or "-",
        )
        for c in consumers
    ]
    cells = [[shown(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def run(given: str | None, operation: Operation, *, reading: bool = False) -> int:
    from tollway.cli.config_file import open_cli_database
    from tollway.consumers.store import ConsumerStore, ConsumerStoreError, InvalidConsumer
    from tollway.plugins.key_auth import config_consumers
    from tollway.storage import StorageError
    from tollway.storage.audit import AuditLog

    opened = open_cli_database(given, reading=reading)
    if opened is None:
        return 2
    loaded, db = opened
    config = config_consumers(loaded)
    store = ConsumerStore(db, config_names=lambda: {c["name"] for c in config})

    async def main() -> int:
        try:
            await db.connect()
            await store.migrate()
            audit = AuditLog(db)
            if not reading:
                await audit.migrate()
            return await operation(store, config, audit, loaded)
        finally:
            await db.close()

    try:
        return asyncio.run(main())
    except InvalidConsumer as exc:
        print(f"tollway: {exc}", file=sys.stderr)
        return 2
    except ConsumerStoreError as exc:
        print(f"tollway: {exc}", file=sys.stderr)
        return 1
    except StorageError as exc:
        print(f"tollway: database error: {exc}", file=sys.stderr)
        return 1
