"""``tollway serve`` with parts of the record path's durability turned off. Benchmark-only.

    LEAN=journal,index serve_lean_records.py serve -c CONFIG --port P --admin-port A

``journal``: no local journal (records wait for the database in memory only, as before
the journal); ``index``: no unique ``record_key`` index, inserts without ``ON CONFLICT``.
For telling what each costs a call against ``tollway serve`` itself.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tollway.runtime import root
from tollway.storage import database
from tollway.usage import store

_OFF = set(os.environ.get("LEAN", "journal,index").split(","))


def _no_folder(url: str, base_dir: Path, data_folder: str | None = None) -> Path | None:
    return None


if "journal" in _OFF:
    root.records_folder = _no_folder  # type: ignore[attr-defined]
if "index" in _OFF:
    store._MIGRATIONS = tuple(tuple(sql for sql in step if "UNIQUE INDEX" not in sql) for step in store._MIGRATIONS)
    database._skip_existing = lambda unique: ""

from tollway.cli.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
