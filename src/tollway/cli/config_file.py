"""How every ``tollway`` command finds its config, and opens its database.

``-c FILE``, else ``$TOLLWAY_CONFIG``, else ``./tollway.yaml``, else the built-in
quickstart (whose demo consumer's name is then taken, as ``serve`` would run it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tollway.config.load import ConfigError, LoadedConfig
from tollway.runtime.config_source import load_file, load_text
from tollway.storage import Database, StorageError, open_database


def config_path(given: str | None) -> Path | None:
    if given:
        return Path(given)
    env = os.environ.get("TOLLWAY_CONFIG")
    if env:
        return Path(env)
    local = Path("tollway.yaml")
    return local if local.exists() else None


def load_cli_config(given: str | None, *, reading: bool = False) -> LoadedConfig:
    """``reading``: for a command that only reads, which must create nothing (not the
    quickstart's demo key either)."""
    from tollway.config.quickstart import DATA_DIR, demo_key, quickstart_yaml

    path = config_path(given)
    if path is not None:
        return load_file(path)
    if reading and not (DATA_DIR / "demo-key").exists():
        key = "tw-not-made-yet"  # only a reader: no key is checked against it
    else:
        key, _ = demo_key(DATA_DIR)
    return load_text(quickstart_yaml(key, os.environ), base_dir=Path.cwd())


def print_config_problems(exc: ConfigError) -> None:
    print("tollway: invalid config:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


def open_cli_database(given: str | None, *, reading: bool = False) -> tuple[LoadedConfig, Database] | None:
    """The config and its (unconnected) database; ``None`` after printing why not.

    ``reading``: the command only reads, or changes only what must be there already
    (revoke, rotate, remove), so a SQLite file that is not there is not made (an empty
    database made in the wrong folder would answer "nothing" instead of "not here"),
    nor the quickstart's demo key: the command says where it looked, and stops."""
    try:
        loaded = load_cli_config(given, reading=reading)
        db = open_database(loaded.config.storage.database, loaded.base_dir)
        path = getattr(db, "path", None)
        if reading and isinstance(path, Path) and not path.exists():
            where = "" if config_path(given) is not None else " (no config file here: the quickstart's)"
            print(
                f"tollway: no database at {path}{where}; run this where `tollway serve` ran, or give -c CONFIG",
                file=sys.stderr,
            )
            return None
        return loaded, db
    except ConfigError as exc:
        print_config_problems(exc)
    except StorageError as exc:
        print(f"tollway: storage.database: {exc}", file=sys.stderr)
    return None
