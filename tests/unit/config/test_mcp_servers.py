"""The MCP gateway's config (SPEC §12): ``mcp_servers``, routes with ``mcp_server``,
consumers' ``allow_tools``, each mistake named with its place."""

from __future__ import annotations

from pathlib import Path

import pytest

from tollway.config.load import ConfigError, LoadedConfig, load_config_text
from tollway.plugins.key_auth import config_tools
from tollway.plugins.registry import PLUGIN_MODELS

GOOD = """
mcp_servers:
  - {name: github, url: "https://mcp.example/mcp", headers: {Authorization: "Bearer s"}, timeout: 30}
routes:
  - {name: gh, path_prefix: /mcp/github, mcp_server: github}
plugins:
  - name: key-auth
    defaultConfig:
      keys: [x-api-key]
      consumers:
        - {name: a, credential: ka, allow_tools: {github: [list_issues, "get_*", "~create_(issue|pr)"]}}
"""


def _load(text: str, tmp_path: Path) -> LoadedConfig:
    return load_config_text(text, plugins=PLUGIN_MODELS, base_dir=tmp_path)


def _problems(text: str, tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        _load(text, tmp_path)
    return raised.value.problems


def test_a_good_mcp_config_loads(tmp_path: Path) -> None:
    loaded = _load(GOOD, tmp_path)
    assert loaded.config.routes[0].mcp_server == "github"
    assert loaded.config.mcp_servers[0].timeout == 30
    # Only exact names can be metric labels.
    assert config_tools(loaded) == {("github", "list_issues")}


def test_a_route_naming_an_unknown_server_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("mcp_server: github}", "mcp_server: gitlab}")
    assert _problems(text, tmp_path) == ["routes[0].mcp_server: no mcp_servers entry named 'gitlab'"]


def test_two_servers_with_one_name_are_refused(tmp_path: Path) -> None:
    text = GOOD.replace("mcp_servers:\n", 'mcp_servers:\n  - {name: github, url: "http://127.0.0.1:1/mcp"}\n')
    assert _problems(text, tmp_path) == ["mcp_servers[1].name: duplicate MCP server name 'github'"]


def test_an_mcp_route_takes_no_provider(tmp_path: Path) -> None:
    text = GOOD.replace("mcp_server: github}", "mcp_server: github, provider: p}")
    (problem,) = _problems(text, tmp_path)
    assert problem.startswith("routes[0]") and "an mcp_server route takes no provider" in problem


@pytest.mark.parametrize(
    ("change", "place", "words"),
    [
        ('url: "https://mcp.example/mcp"', "mcp_servers[0].url", "must be an http:// or https:// URL"),
        ("Authorization:", "mcp_servers[0].headers", "is not a header name"),
        ("timeout: 30", "mcp_servers[0].timeout", "greater than 0"),
    ],
)
def test_bad_server_fields_are_named(tmp_path: Path, change: str, place: str, words: str) -> None:
    bad = {
        'url: "https://mcp.example/mcp"': 'url: "ftp://mcp.example"',
        "Authorization:": '"Bad Header":',
        "timeout: 30": "timeout: 0",
    }[change]
    (problem,) = _problems(GOOD.replace(change, bad), tmp_path)
    assert problem.startswith(place) and words in problem


def test_allow_tools_must_be_lists_of_patterns_per_server(tmp_path: Path) -> None:
    (problem,) = _problems(
        GOOD.replace('allow_tools: {github: [list_issues, "get_*", "~create_(issue|pr)"]}', "allow_tools: [x]"),
        tmp_path,
    )
    assert "allow_tools" in problem


def test_a_bad_tool_regex_is_named(tmp_path: Path) -> None:
    (problem,) = _problems(GOOD.replace("~create_(issue|pr)", "~create_(issue"), tmp_path)
    assert "allow_tools" in problem and "not a valid regular expression" in problem


@pytest.mark.parametrize(
    ("server", "words"),
    [
        ("{name: r, type: rest}", "needs tools or openapi"),
        ('{name: r, type: rest, url: "http://x/mcp", openapi: a.yaml}', "not url"),
        ("{name: r, openapi: a.yaml}", "needs a url"),
        ('{name: r, url: "http://x/mcp", openapi: a.yaml}', "for type: rest"),
        (
            "{name: r, type: rest, tools: [{name: t, request: {url: 'http://x'}}, {name: t, request: {url: 'http://y'}}]}",
            "two tools are named 't'",
        ),
        ("{name: r, type: rest, tools: [{name: t, request: {url: 'ftp://x'}}]}", "must be an http"),
    ],
)
def test_a_server_must_fit_its_type(tmp_path: Path, server: str, words: str) -> None:
    (problem,) = _problems(f"mcp_servers: [{server}]", tmp_path)
    assert problem.startswith("mcp_servers[0]") and words in problem
