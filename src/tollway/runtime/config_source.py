"""Where a process's config comes from: a file (reloadable), or the built-in quickstart
text. Loading hands the config layer the plugins' models, so that every plugin entry is
validated against its own plugin."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tollway.config.load import LoadedConfig, load_config, load_config_text
from tollway.plugins.registry import PLUGIN_MODELS


def load_file(path: str | Path, env: Mapping[str, str] | None = None) -> LoadedConfig:
    return load_config(path, plugins=PLUGIN_MODELS, env=env)


def load_text(text: str, base_dir: Path, env: Mapping[str, str] | None = None) -> LoadedConfig:
    return load_config_text(text, plugins=PLUGIN_MODELS, base_dir=base_dir, env=env)


@dataclass(frozen=True)
class ConfigSource:
    path: Path | None
    text: str | None = None

    def digest(self) -> bytes | None:
        """The file's content as it is now, hashed (None: no file, or unreadable): the
        file watcher's way to tell a change from the one a reload already applied."""
        if self.path is None:
            return None
        try:
            return hashlib.sha256(self.path.read_bytes()).digest()
        except OSError:
            return None

    def load(self) -> LoadedConfig:
        if self.path is not None:
            return load_file(self.path)
        assert self.text is not None
        return load_text(self.text, base_dir=Path.cwd())
