"""The built-in quickstart config: what ``tollway serve`` runs with no config file."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from tollway.storage import private_folder

DATA_DIR = Path("tollway-data")


def demo_key(data_dir: Path) -> tuple[str, bool]:
    """The demo consumer's key: made on first start, kept (owner-only) in ``demo-key``."""
    path = data_dir / "demo-key"
    if path.exists():
        key = path.read_text().strip()
        if key:
            return key, False
    private_folder(data_dir)
    key = "tw-" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key, True


def quickstart_yaml(key: str, env: dict[str, str] | os._Environ[str]) -> str:
    """OpenAI when ``OPENAI_API_KEY`` is set, else the built-in mock model."""
    if env.get("OPENAI_API_KEY"):
        provider = "  - id: openai\n    type: openai\n    apiTokens: [${OPENAI_API_KEY}]\n"
        pid = "openai"
    else:
        provider = "  - id: mock\n    type: mock\n"
        pid = "mock"
    return f"""\
server: {{host: 127.0.0.1, port: 8080}}
admin: {{host: 127.0.0.1, port: 8081, token: "${{TOLLWAY_ADMIN_TOKEN:-}}"}}
storage: {{database: "sqlite:///./tollway-data/tollway.db", state: memory}}
providers:
{provider}routes:
  - name: v1
    path_prefix: /v1/
    provider: {pid}
plugins:
  - name: key-auth
    defaultConfig:
      keys: [authorization, x-api-key]
      in_query: false
      consumers:
        - name: demo
          credential: "{key}"
"""
