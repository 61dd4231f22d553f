"""What the deployment tests (tests/deploy) share: the repository's deployment files, the
environment their configs take their secrets from, ``tollway check`` on them, the
Dockerfile read into stages, and the build context its ``.dockerignore`` leaves.

A tool a test drives (nginx, podman, systemd-analyze) missing skips the test with the
package to install, except under ``CI=true``, where .ci/run installs it and so its
absence is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tollway.config.envsubst import substitute

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
TOLLWAY = Path(sys.executable).parent / "tollway"

# What the deployment configs need from the environment (the secrets have no defaults).
SECRETS = {
    "TOLLWAY_ADMIN_TOKEN": "deploy-test-admin-token",
    "OPENAI_API_KEY": "sk-deploy-test",
    "TOLLWAY_DATABASE_URL": "postgresql://tollway@db:5432/tollway",
    "TOLLWAY_STATE_URL": "redis://redis:6379/0",
}


def require_tool(name: str, package: str, *also: str) -> str:
    """The path of the program ``name`` (looked up on PATH, then at ``also``)."""
    found = shutil.which(name) or next((p for p in also if Path(p).exists()), None)
    if found is None:
        message = f"{name} is not installed (apt-get install {package})"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; .ci/run installs it")
        pytest.skip(message)
    return found


def read_config(text: str) -> dict[str, Any]:
    """A config file's content as the gateway reads it (``${VAR}`` substituted first)."""
    loaded: dict[str, Any] = yaml.safe_load(substitute(text, SECRETS))
    return loaded


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def tollway_check(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``tollway check -c config`` with exactly ``env``'s deployment variables set."""
    full = {k: v for k, v in os.environ.items() if k != "TOLLWAY_CONFIG" and k not in SECRETS} | env
    return subprocess.run(
        [str(TOLLWAY), "check", "-c", str(config)], capture_output=True, text=True, env=full, timeout=60
    )


# --- the Dockerfile -------------------------------------------------------------------------


@dataclass
class Stage:
    """One ``FROM`` of a Dockerfile and the instructions after it, in order."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]]

    def all(self, op: str) -> list[str]:
        return [args for name, args in self.instructions if name == op]

    def one(self, op: str) -> str:
        (args,) = self.all(op)
        return args

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for args in self.all("ENV"):
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                out[key] = value
        return out


def exec_form(args: str) -> list[str]:
    """A JSON-array instruction argument (``CMD ["a", "b"]``) as a list."""
    parsed = json.loads(args)
    assert isinstance(parsed, list) and all(isinstance(a, str) for a in parsed), args
    return parsed


def dockerfile_stages(path: Path) -> list[Stage]:
    """The Dockerfile's stages (continuation lines joined, comments dropped)."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        op, _, args = line.partition(" ")
        op, args = op.upper(), args.strip()
        if op == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", args, re.I)
            assert m is not None, line
            stages.append(Stage(m.group(1), m.group(2), []))
        else:
            assert stages, f"{line!r} before any FROM"
            stages[-1].instructions.append((op, args))
    return stages


# --- the build context --------------------------------------------------------------------


def _pattern(glob: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regular expression over slash-separated paths."""
    out, i = "", 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif glob.startswith("**", i):
            out, i = out + ".*", i + 2
        elif glob[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif glob[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(glob[i]), i + 1
    return re.compile(out)


def build_context(root: Path) -> list[str]:
    """The files (relative, slash-separated) that a build of ``root`` sends, as Docker reads
    ``.dockerignore``: the last pattern matching a path or any folder above it decides, a
    ``!`` pattern keeping it."""
    rules: list[tuple[bool, re.Pattern[str], str]] = []
    for raw in (root / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        glob = line.removeprefix("!").strip().strip("/")
        rules.append((keep, _pattern(glob), glob))

    def excluded(rel: str) -> bool:
        parts = rel.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        verdict = False
        for keep, pattern, _ in rules:
            if any(pattern.fullmatch(p) for p in prefixes):
                verdict = not keep
        return verdict

    def may_keep_below(rel: str) -> bool:
        return any(keep and (glob.startswith(rel + "/") or glob.startswith("**")) for keep, _, glob in rules)

    kept: list[str] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder).relative_to(root).as_posix()
        prefix = "" if here == "." else here + "/"
        dirs[:] = [d for d in dirs if d != ".git" and (not excluded(prefix + d) or may_keep_below(prefix + d))]
        kept.extend(prefix + f for f in files if not excluded(prefix + f))
    return sorted(kept)
