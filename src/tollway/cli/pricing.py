"""``tollway pricing [MODEL]``: the price table in effect, the built-in one with the
config's ``pricing:`` laid over it (US dollars per million tokens).

Without a model, every entry; with one, the entry that prices it (a dated or aliased
name resolves as a call's would) or, when none does, a line saying its calls are
recorded without a cost (exit 1). The config is found as ``serve`` finds it; only its
``pricing:`` matters, and nothing is opened or made.

Exit codes: 0 done; 1 the model has no price; 2 a config or argument problem.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from tollway.usage.pricing import ModelPrice, PriceTable


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``pricing`` on the top-level parser."""
    p = subparsers.add_parser("pricing", help="print the price table in effect")
    p.add_argument("model", nargs="?", help="only the entry that prices this model")
    p.add_argument("-c", "--config", help="config file (default: as `tollway serve` finds it)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_pricing)


def _row(name: str, price: ModelPrice) -> dict[str, Any]:
    row: dict[str, Any] = {
        "model": name,
        "input_per_mtok": price.input,
        "cached_input_per_mtok": price.cached_input,
        "cache_write_per_mtok": price.cache_write,
        "cache_write_1h_per_mtok": price.cache_write_1h,
        "output_per_mtok": price.output,
    }
    if price.long is not None:
        above, long = price.long
        row["long_context"] = {"above_input_tokens": above, **_row(name, long)}
        del row["long_context"]["model"]
    return row


def _rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each entry, then its long-context prices (if any) as a row of their own."""
    out: list[dict[str, Any]] = []
    for row in rows:
        out.append(row)
        long = row.get("long_context")
        if long is not None:
            out.append({**long, "model": f"  prompts over {long['above_input_tokens']:,} tokens"})
    return out


def _money(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _table(rows: list[dict[str, Any]]) -> str:
    head = ("model", "input", "cached input", "cache write", "1h cache write", "output")
    money = (
        "input_per_mtok", "cached_input_per_mtok", "cache_write_per_mtok", "cache_write_1h_per_mtok", "output_per_mtok"
    )  # fmt: skip
    cells = [(r["model"], *(_money(r[k]) for k in money)) for r in _rows(rows)]
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in [head, *cells]]  # fmt: skip
    return "\n".join(lines) + "\n(US dollars per million tokens)"


def cmd_pricing(args: argparse.Namespace) -> int:
    from tollway.cli.config_file import load_cli_config, print_config_problems
    from tollway.config.load import ConfigError

    try:
        loaded = load_cli_config(args.config, reading=True)
    except ConfigError as exc:
        print_config_problems(exc)
        return 2
    table = PriceTable(loaded.config.pricing)
    if args.model:
        found = table.resolve(args.model)
        if found is None:
            print(f"tollway: no price for {args.model!r}: its calls are recorded with cost_usd null", file=sys.stderr)
            return 1
        rows = [_row(*found)]
    else:
        rows = [_row(name, price) for name, price in table.entries()]
    if args.format == "json":
        print(orjson.dumps(rows if not args.model else rows[0]).decode())
    else:
        print(_table(rows))
    return 0
