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


def load_cli_config(given: str | None) -> LoadedConfig:
    from tollway.config.quickstart import DATA_DIR, demo_key, quickstart_yaml

    path = config_path(given)
    if path is not None:
        return load_file(path)
    key, _ = demo_key(DATA_DIR)
    return load_text(quickstart_yaml(key, os.environ), base_dir=Path.cwd())


def print_config_problems(exc: ConfigError) -> None:
    print("tollway: invalid config:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


def open_cli_database(given: str | None) -> tuple[LoadedConfig, Database] | None:
    """The config and its (unconnected) database; ``None`` after printing why not."""
    try:
        loaded = load_cli_config(given)
        return loaded, open_database(loaded.config.storage.database, loaded.base_dir)
    except ConfigError as exc:
        print_config_problems(exc)
    except StorageError as exc:
        print(f"tollway: storage.database: {exc}", file=sys.stderr)
    return None
