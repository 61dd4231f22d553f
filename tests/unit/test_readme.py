"""The README stays true: its config example is valid and CI runs its test command."""

from __future__ import annotations

import re
from pathlib import Path

from tollway.config.load import load_config_text
from tollway.gateway.snapshot import check_buildable
from tollway.plugins.registry import PLUGIN_MODELS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_the_config_example_is_valid() -> None:
    [example] = re.findall(r"## What a config looks like\n\n```yaml\n(.*?)```", README, re.S)
    env = {"TOLLWAY_ADMIN_TOKEN": "t", "OPENAI_API_KEY": "sk-x", "ANTHROPIC_API_KEY": "sk-ant-x", "ALICE_KEY": "k"}
    loaded = load_config_text(example, plugins=PLUGIN_MODELS, base_dir=ROOT, env=env)
    check_buildable(loaded)
    assert [p.name for p in loaded.plugins][:1] == ["key-auth"]


def test_ci_runs_the_readmes_test_command() -> None:
    commands = re.findall(r"^(python3 -m venv .*)$", README, re.M)
    assert len(commands) == 2, "the README opens with two commands"
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[1] in ci
    assert "tollway serve" in commands[0] and "pytest" in commands[1]
