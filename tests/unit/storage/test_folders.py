"""The folders the gateway makes for what it keeps on disk are its user's alone."""

from __future__ import annotations

import os
from pathlib import Path

from tollway.config.quickstart import demo_key
from tollway.storage import private_folder


def test_every_folder_made_on_the_way_is_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        private_folder(tmp_path / "a" / "b" / "c")
        private_folder(tmp_path / "a" / "b" / "c")  # (there already: nothing to do)
        key, made = demo_key(tmp_path / "quick" / "tollway-data")
    finally:
        os.umask(old)
    for folder in ("a", "a/b", "a/b/c", "quick", "quick/tollway-data"):
        assert (tmp_path / folder).stat().st_mode & 0o777 == 0o700, folder
    assert made and (tmp_path / "quick/tollway-data/demo-key").read_text().strip() == key


def test_a_folder_that_exists_keeps_its_permissions(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    private_folder(shared / "mine")
    assert shared.stat().st_mode & 0o777 == 0o755
    assert (shared / "mine").stat().st_mode & 0o777 == 0o700
