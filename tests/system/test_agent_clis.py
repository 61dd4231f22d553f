"""Coding-agent CLIs through a real gateway with key-auth (SPEC §9): OpenAI's Codex CLI
(the Responses API) and Anthropic's Claude Code (Anthropic Messages), each once to a
provider of its own protocol (passed through) and once translated (Codex to Claude,
Claude Code to an OpenAI-style chat provider). One prompt each, run non-interactively;
the CLI must print the provider's answer, and the usage records of its calls must hold
the tokens the provider reported.

The CLIs are npm packages that CI does not install (hundreds of megabytes, and a new
release weekly): each test runs when its CLI is on ``PATH`` or in the
``node_modules/.bin`` of the folder ``TOLLWAY_AGENT_CLIS`` names (``npm install
@openai/codex @anthropic-ai/claude-code`` there), and is skipped, saying so, otherwise.
The providers are the mock model (Anthropic's and OpenAI's chat APIs) and the fake of
OpenAI's Responses API.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Proc
from tests.support.fake_provider import serve_gateway
from tests.support.responses_provider import MODEL as RESPONSES_MODEL
from tests.support.responses_provider import TEXT as RESPONSES_TEXT
from tests.support.responses_provider import USAGE as RESPONSES_USAGE
from tests.support.responses_provider import ResponsesProvider
from tollway.mockllm import replies

KEY = "ck-agents-3f9c"
CONFIG = """
storage: {{database: "sqlite:///./tollway.db"}}
providers:
  - {{id: claude, type: claude, baseUrl: "{mock}", apiTokens: [sk-ant]}}
  - {{id: chat, type: openai, baseUrl: "{mock}/v1", apiTokens: [sk-chat]}}
  - {{id: responses, type: openai, baseUrl: "{responses}/v1", apiTokens: [sk-resp]}}
routes:
  - name: agents
    path_prefix: /
    providers: [chat]
    model_providers: {{"claude-*": claude, "gpt-4o*": chat, "gpt-4.1*": responses}}
plugins:
  - name: key-auth
    defaultConfig:
      keys: [authorization, x-api-key]
      consumers: [{{name: dev, credential: {key}}}]
"""
CLAUDE = "claude-sonnet-4-5"
CHAT = "gpt-4o-mini"
PROMPT = "Say hello"
MOCK_REPLY = "This is a mock reply to:"
Requests = Callable[[], list[dict[str, Any]]]


def _cli(name: str) -> str:
    folder = os.environ.get("TOLLWAY_AGENT_CLIS")
    installed = Path(folder, "node_modules", ".bin", name) if folder else None
    found = str(installed) if installed is not None and installed.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (npm install it, or name its folder in TOLLWAY_AGENT_CLIS)")
    return found


@pytest.fixture(scope="module")
def responses_provider() -> Iterator[ResponsesProvider]:
    with ResponsesProvider() as fake:
        yield fake


@pytest.fixture(scope="module")
def gw(
    mock_llm: Proc, responses_provider: ResponsesProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Proc]:
    config = CONFIG.format(mock=mock_llm.url, responses=responses_provider.url, key=KEY)
    proc = serve_gateway(tmp_path_factory.mktemp("agents"), config)
    yield proc
    assert proc.stop() == 0


def _records(gw: Proc) -> dict[str, dict[str, Any]]:
    r = httpx.get(gw.admin_url + "/api/requests", params={"limit": "100"}, timeout=10)
    return {rec["request_id"]: rec for rec in r.json()["requests"]}


def _served(gw: Proc, before: dict[str, dict[str, Any]], api: str) -> list[dict[str, Any]]:
    """The records of the calls made since ``before`` that reached a model."""
    new = [rec for rid, rec in _records(gw).items() if rid not in before and rec["api"] == api]
    assert new and all(rec["status"] == 200 for rec in new), new
    return new


def _run(argv: list[str], home: Path, env: dict[str, str]) -> str:
    work = home / "work"
    work.mkdir(exist_ok=True)
    done = subprocess.run(
        argv, cwd=work, env={"PATH": os.environ["PATH"], "HOME": str(home), **env},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _codex(gw: Proc, home: Path, model: str) -> str:
    codex_home = home / "codex"
    codex_home.mkdir()
    # Codex offers its built-in web search unless told not to; a translated provider
    # cannot run it, and the gateway refuses to drop it silently.
    (codex_home / "config.toml").write_text(
        f'model = "{model}"\nmodel_provider = "tollway"\nweb_search = "disabled"\n\n'
        f'[model_providers.tollway]\nname = "Tollway"\nbase_url = "{gw.url}/v1"\n'
        'env_key = "TOLLWAY_KEY"\nwire_api = "responses"\n'
    )
    argv = [_cli("codex"), "exec", "--skip-git-repo-check", PROMPT]
    return _run(argv, home, {"CODEX_HOME": str(codex_home), "TOLLWAY_KEY": KEY})


def _claude_code(gw: Proc, home: Path, model: str) -> str:
    env = {"ANTHROPIC_BASE_URL": gw.url, "ANTHROPIC_API_KEY": KEY, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
    return _run([_cli("claude"), "-p", PROMPT, "--model", model], home, env)


def _truth(mock_requests: Requests, path: str) -> tuple[int, int]:
    """The input and output tokens the mock model reported for the calls it was sent."""
    total_in = total_out = 0
    for seen in mock_requests():
        if seen["path"] != path:
            continue
        body = json.loads(str(seen["body"]))
        if path == "/v1/messages":
            usage = replies.anthropic_message(body, ident="truth")["usage"]
            total_in, total_out = total_in + usage["input_tokens"], total_out + usage["output_tokens"]
        else:
            usage = replies.chat_completion(body, ident="truth", created=0)["usage"]
            total_in, total_out = total_in + usage["prompt_tokens"], total_out + usage["completion_tokens"]
    return total_in, total_out


def _billed(records: list[dict[str, Any]]) -> tuple[int, int]:
    return sum(r["input_tokens"] for r in records), sum(r["output_tokens"] for r in records)


def test_codex_reaches_claude_translated(gw: Proc, mock_requests: Requests, tmp_path: Path) -> None:
    before = _records(gw)
    out = _codex(gw, tmp_path, CLAUDE)
    assert MOCK_REPLY in out and PROMPT in out
    records = _served(gw, before, "responses")
    assert {(r["provider"], r["model_requested"], r["stream"]) for r in records} == {("claude", CLAUDE, True)}
    assert _billed(records) == _truth(mock_requests, "/v1/messages")


def test_codex_reaches_openai_through(gw: Proc, responses_provider: ResponsesProvider, tmp_path: Path) -> None:
    before, asked = _records(gw), len(responses_provider.bodies)
    out = _codex(gw, tmp_path, RESPONSES_MODEL)
    assert RESPONSES_TEXT in out
    calls = len(responses_provider.bodies) - asked
    records = _served(gw, before, "responses")
    assert {(r["provider"], r["model_requested"]) for r in records} == {("responses", RESPONSES_MODEL)}
    usage = RESPONSES_USAGE
    assert _billed(records) == (calls * usage["input_tokens"], calls * usage["output_tokens"])  # type: ignore[operator]


def test_claude_code_reaches_an_openai_chat_provider_translated(
    gw: Proc, mock_requests: Requests, tmp_path: Path
) -> None:
    before = _records(gw)
    out = _claude_code(gw, tmp_path, CHAT)
    assert MOCK_REPLY in out
    records = _served(gw, before, "messages")
    assert {(r["provider"], r["model_requested"]) for r in records} == {("chat", CHAT)}
    assert _billed(records) == _truth(mock_requests, "/v1/chat/completions")


def test_claude_code_reaches_claude_through(gw: Proc, mock_requests: Requests, tmp_path: Path) -> None:
    before = _records(gw)
    out = _claude_code(gw, tmp_path, CLAUDE)
    assert MOCK_REPLY in out
    records = _served(gw, before, "messages")
    assert {(r["provider"], r["model_requested"]) for r in records} == {("claude", CLAUDE)}
    assert _billed(records) == _truth(mock_requests, "/v1/messages")
    # Its beta headers reached Claude as it sent them.
    betas = [h for seen in mock_requests() for k, h in seen["headers"] if k == "anthropic-beta"]
    assert betas and all("claude-code-20250219" in h for h in betas)
