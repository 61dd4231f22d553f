"""A name belongs to one consumer and one group, whether the config file or the admin API
gave it (SPEC §10), and what one replica declares the next can use at once.

Real processes: ``tollway serve`` (two of them on one SQLite file for the replicas),
``tollway consumers``/``tollway groups`` and the admin API over HTTP.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import orjson

from tests.conftest import GatewayFactory, Proc

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
CONFIG_KEY = "erin-config-key-123456789"


def _config(mock_url: str, database: str, *, consumers: str = "", groups: str = "") -> str:
    return f"""
server: {{shutdown_timeout_s: 2}}
storage: {{database: "{database}"}}
{groups}
providers:
  - id: up
    type: openai
    baseUrl: {mock_url}/v1
    apiTokens: [sk-upstream]
routes:
  - name: chat
    path_prefix: /v1/
    provider: up
plugins:
  - name: key-auth
    defaultConfig:
      keys: [authorization]
      consumers:
        - {{name: consumer1, credential: xxxxxx}}
{consumers}
"""


# erin in the config: a key of its own, and only gpt-4o-mini.
ERIN = f"        - {{name: erin, credential: {CONFIG_KEY}, allow_models: [gpt-4o-mini]}}"
RT_GROUP = "groups: [{name: rt, budget: {usd: 5, period: month}}]"


def _chat(gw: Proc, key: str, model: str = "gpt-4o") -> int:
    body = {**CHAT, "model": model}
    return httpx.post(
        gw.url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
    ).status_code


def _post(gw: Proc, path: str, body: object) -> httpx.Response:
    return httpx.post(gw.admin_url + path, content=orjson.dumps(body), timeout=10)


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TOLLWAY_CONFIG"}
    return subprocess.run([sys.executable, "-m", "tollway", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=30)  # fmt: skip


def test_a_reload_that_gives_the_config_a_runtime_consumers_name_is_refused(
    gateway: GatewayFactory, mock_llm: Proc, tmp_path: Path
) -> None:
    # It was taken: the runtime key went on working under the config consumer's name,
    # past the config's allow_models, and the admin API could no longer revoke it (409
    # "comes from the config file"); the same for a group.
    gw = gateway(_config(mock_llm.url, "sqlite:///./tollway.db"))
    runtime_key = _post(gw, "/api/consumers", {"name": "erin"}).json()["key"]
    assert _post(gw, "/api/groups", {"name": "rt"}).status_code == 201

    (tmp_path / "tollway.yaml").write_text(_config(mock_llm.url, "sqlite:///./tollway.db", consumers=ERIN))
    refused = httpx.post(gw.admin_url + "/api/reload", timeout=10)
    assert refused.status_code == 400
    errors = refused.json()["errors"]
    assert any("'erin' is also a runtime consumer" in e and "DELETE /api/consumers/erin" in e for e in errors), errors
    assert _chat(gw, runtime_key) == 200  # nothing changed: the old config stays
    assert _chat(gw, CONFIG_KEY) == 401

    (tmp_path / "tollway.yaml").write_text(_config(mock_llm.url, "sqlite:///./tollway.db", groups=RT_GROUP))
    refused = httpx.post(gw.admin_url + "/api/reload", timeout=10)
    assert refused.status_code == 400
    assert any("group 'rt' is also a runtime group" in e for e in refused.json()["errors"]), refused.json()

    # Revoked first, the same reload goes through, and the name is the config's.
    assert httpx.delete(gw.admin_url + "/api/consumers/erin").status_code == 204
    (tmp_path / "tollway.yaml").write_text(_config(mock_llm.url, "sqlite:///./tollway.db", consumers=ERIN))
    assert httpx.post(gw.admin_url + "/api/reload", timeout=10).status_code == 200
    assert _chat(gw, CONFIG_KEY, "gpt-4o-mini") == 200
    assert _chat(gw, CONFIG_KEY, "gpt-4o") == 403
    assert _chat(gw, runtime_key) == 401


def test_a_gateway_started_with_both_serves_the_configs_and_lets_the_runtime_one_go(
    gateway: GatewayFactory, mock_llm: Proc, tmp_path: Path
) -> None:
    # The config file edited while the gateway was stopped: it starts, the config's erin
    # and rt are the ones that hold, and the runtime ones can be removed through the API.
    config = tmp_path / "tollway.yaml"
    config.write_text(_config(mock_llm.url, "sqlite:///./tollway.db"))
    added = _cli(tmp_path, "consumers", "add", "erin", "-c", str(config))
    assert added.returncode == 0, added.stderr
    runtime_key = added.stdout.strip()
    assert _cli(tmp_path, "groups", "add", "rt", "--budget-usd", "1", "-c", str(config)).returncode == 0

    gw = gateway(_config(mock_llm.url, "sqlite:///./tollway.db", consumers=ERIN, groups=RT_GROUP))
    assert _chat(gw, runtime_key) == 401  # not erin: the config's erin may not use gpt-4o
    assert _chat(gw, CONFIG_KEY, "gpt-4o-mini") == 200
    assert _chat(gw, CONFIG_KEY, "gpt-4o") == 403
    log = "\n".join(gw.stderr_lines)
    assert "key-auth consumer 'erin' is also a runtime consumer" in log and "group 'rt'" in log

    shown = httpx.get(gw.admin_url + "/api/consumers/erin").json()
    assert shown["source"] == "config" and shown["allow_models"] == ["gpt-4o-mini"]
    assert httpx.delete(gw.admin_url + "/api/consumers/erin").status_code == 204  # the runtime one
    assert httpx.delete(gw.admin_url + "/api/consumers/erin").status_code == 409  # only the config's is left
    listed = httpx.get(gw.admin_url + "/api/consumers").json()["consumers"]
    assert [c["source"] for c in listed if c["name"] == "erin"] == ["config"]
    assert httpx.delete(gw.admin_url + "/api/groups/rt").status_code == 204
    assert httpx.delete(gw.admin_url + "/api/groups/rt").status_code == 409
    assert httpx.get(gw.admin_url + "/api/groups/rt").json()["budget"] == {"usd": 5.0, "period": "month"}
    assert _chat(gw, CONFIG_KEY, "gpt-4o-mini") == 200
    assert _chat(gw, runtime_key) == 401


def test_a_group_made_through_one_replica_is_known_to_the_next_at_once(
    gateway: GatewayFactory, mock_llm: Proc, tmp_path: Path
) -> None:
    # Behind a load balancer the next request goes to another replica, whose directory
    # loads changes once a second: a script that made a group and then its members got
    # 400 "unknown group" there, at random.
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    declared = "groups: [{name: staff}]"  # with a group declared, undeclared names are refused
    first = gateway(_config(mock_llm.url, database, groups=declared), name="first.yaml")
    second = gateway(_config(mock_llm.url, database, groups=declared), name="second.yaml")
    for n in range(3):
        assert _post(first, "/api/groups", {"name": f"lb{n}"}).status_code == 201
        made = _post(second, "/api/consumers", {"name": f"member{n}", "groups": [f"lb{n}"]})
        assert made.status_code == 201, made.text
        assert _post(second, "/api/groups", {"name": f"edit{n}"}).status_code == 201
        edited = httpx.patch(first.admin_url + f"/api/consumers/member{n}", json={"groups": [f"edit{n}"]})
        assert edited.status_code == 200, edited.text
    assert _post(second, "/api/consumers", {"name": "typo", "groups": ["nope"]}).status_code == 400


def test_a_backtracking_allow_models_pattern_cannot_stop_the_gateway(gateway: GatewayFactory, mock_llm: Proc) -> None:
    # ``re`` spent minutes on this name with the event loop stopped: every other call
    # and the admin API waited. Now the match gives up and the model is not allowed.
    gw = gateway(_config(mock_llm.url, "sqlite:///./tollway.db"))
    key = _post(gw, "/api/consumers", {"name": "rx", "allow_models": ["~(a|a)*", "gpt-4o"]}).json()["key"]
    body = {**CHAT, "model": "a" * 40 + "!"}
    slow = httpx.post(
        gw.url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}, timeout=60
    )
    assert slow.status_code == 403
    assert _chat(gw, key) == 200
    assert _chat(gw, "xxxxxx") == 200
    assert any("backtracks" in line for line in gw.stderr_lines)
