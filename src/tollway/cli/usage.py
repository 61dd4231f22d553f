"""``tollway usage``: usage from the database, summed by consumer, model, route,
provider, day or hour.

The config is found as ``serve`` finds it; only its ``storage.database`` matters.
``--format json`` prints exactly what ``GET /api/usage`` answers for the same
parameters; ``csv`` has a header line and an empty key for the no-consumer row;
``table`` (the default) is for people, with a total line.

Exit codes: 0 done; 1 the database failed; 2 a config or argument problem.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import sys
from typing import TYPE_CHECKING, Any

import orjson

from tollway.cli.text import csv_cell, shown
from tollway.usage.query import GROUPINGS, UsageQuery, UsageQueryError, query_from

if TYPE_CHECKING:
    from tollway.storage import Database

Rows = list[dict[str, Any]]
_FIELDS = (
    "key", "requests", "errors", "input_tokens", "output_tokens", "cached_tokens", "cache_write_tokens", "cost_usd",
)  # fmt: skip
_COUNTS = _FIELDS[1:-1]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``usage`` on the top-level parser."""
    p = subparsers.add_parser("usage", help="print usage from the database")
    p.add_argument("-c", "--config", help="config file (default: as `tollway serve` finds it)")
    p.add_argument("--by", choices=GROUPINGS, default="consumer")
    p.add_argument("--since", help="24h, 7d, … or an ISO-8601 time (default: all time)")
    p.add_argument("--until", help="24h, 7d, … or an ISO-8601 time (default: now)")
    p.add_argument("--consumer", help="only this consumer's calls")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.set_defaults(func=cmd_usage)


def cmd_usage(args: argparse.Namespace) -> int:
    from tollway.cli.config_file import open_cli_database
    from tollway.storage import StorageError

    params = {"by": args.by, "since": args.since or "", "until": args.until or "", "consumer": args.consumer or ""}
    try:
        query = query_from(params)
    except UsageQueryError as exc:
        print(f"tollway: {exc}", file=sys.stderr)
        return 2
    opened = open_cli_database(args.config, reading=True)
    if opened is None:
        return 2
    _, db = opened
    try:
        rows = asyncio.run(_summary(db, query))
    except StorageError as exc:
        print(f"tollway: database error: {exc}", file=sys.stderr)
        return 1
    if not rows:
        # Say where it looked: an empty answer from the wrong database reads like "no calls".
        print(f"tollway: no calls recorded in {db.describe()} for that window", file=sys.stderr)
    if args.format == "json":
        sys.stdout.write(orjson.dumps({"rows": rows}).decode() + "\n")
    elif args.format == "csv":
        sys.stdout.write(format_csv(rows))
    else:
        print(format_table(rows, args.by))
    return 0


async def _summary(db: Database, query: UsageQuery) -> Rows:
    from tollway.usage.store import UsageStore

    store = UsageStore(db)
    try:
        await db.connect()
        await store.migrate()
        return await store.summary(query)
    finally:
        await db.close()


def format_csv(rows: Rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_FIELDS)
    for row in rows:
        writer.writerow(["" if row[f] is None else csv_cell(row[f]) for f in _FIELDS])
    return out.getvalue()


def format_table(rows: Rows, by: str) -> str:
    """Aligned columns under a header, numbers right-aligned, then a total line."""
    header = (by.upper(), *(f.upper() for f in _FIELDS[1:]))
    totals = [sum(r[f] for r in rows) for f in _FIELDS[1:]]
    lines = [
        (
            "(no consumer)"
            if r["key"] is None and by == "consumer"
            else shown(str(r["key"] if r["key"] is not None else "-")),
            *(str(r[f]) for f in _COUNTS),
            f"{r['cost_usd']:.6f}",
        )
        for r in rows
    ]
    lines.append(("TOTAL", *(str(t) for t in totals[:-1]), f"{totals[-1]:.6f}"))
    table = [header, *lines]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]

    def fmt(row: tuple[str, ...]) -> str:
        cells = [row[0].ljust(widths[0]), *(cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True))]
        return "  ".join(cells)

    return "\n".join(fmt(row) for row in table)
