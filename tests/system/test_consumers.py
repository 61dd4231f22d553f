"""Runtime consumers through real processes: ``tollway serve``, ``tollway consumers``,
the admin API, the OpenAI SDK, and two gateways sharing one PostgreSQL database.

The gateway proxies ``/v1/`` to the session's mock model server as an OpenAI-style
provider, so ``mock_requests`` shows exactly what a provider would receive.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import orjson
import pytest

from tests.conftest import GatewayFactory, Proc

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
UPSTREAM_TOKEN = "sk-upstream-secret"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _config(mock_url: str, database: str, *, admin: str = "", rules: str = "") -> str:
    return f"""
server: {{shutdown_timeout_s: 2}}
{admin}
storage: {{database: "{database}"}}
providers:
  - id: up
    type: openai
    baseUrl: {mock_url}/v1
    apiTokens: [{UPSTREAM_TOKEN}]
routes:
  - name: chat
    path_prefix: /v1/
    provider: up
plugins:
  - name: key-auth
    defaultConfig:
      keys: [authorization, x-api-key]
      consumers:
        - {{name: consumer1, credential: xxxxxx}}
{rules}
"""


def _chat(gw: Proc, key: str, header: str = "authorization") -> int:
    value = f"Bearer {key}" if header == "authorization" else key
    return httpx.post(gw.url + "/v1/chat/completions", json=CHAT, headers={header: value}, timeout=10).status_code


def _eventually(check: Callable[[], bool], within: float = 5.0) -> float:
    """Seconds until ``check()`` held; fails after ``within`` seconds."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > within:
            raise AssertionError(f"not true within {within} s")
        time.sleep(0.05)
    return time.monotonic() - start


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TOLLWAY_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "tollway", "consumers", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def _admin_add(gw: Proc, body: object, token: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.post(gw.admin_url + "/api/consumers", content=orjson.dumps(body), headers=headers, timeout=10)


# --- the command line -------------------------------------------------------------------


def test_cli_added_key_works_on_a_running_gateway(
    gateway: GatewayFactory, mock_llm: Proc, mock_requests: Callable[[], list[dict[str, object]]], tmp_path: Path
) -> None:
    gw = gateway(_config(mock_llm.url, "sqlite:///./data/tollway.db"))
    config = str(tmp_path / "tollway.yaml")

    added = _cli(tmp_path, "add", "alice", "--allow-models", "gpt-4o*", "--groups", "team-a", "-c", config)
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip()
    assert key.startswith("tw-") and len(key) >= 35 and "\n" not in key
    assert _eventually(lambda: _chat(gw, key) == 200) < 5
    assert _chat(gw, key, header="x-api-key") == 200

    seen = mock_requests()
    assert seen, "the provider saw nothing"
    for request in seen:
        headers = dict(request["headers"])  # type: ignore[call-overload]
        assert headers["x-mse-consumer"] == "alice"
        assert headers["authorization"] == f"Bearer {UPSTREAM_TOKEN}"
        assert key not in orjson.dumps(request).decode()

    listed = _cli(tmp_path, "list", "-c", config)
    assert listed.returncode == 0, listed.stderr
    assert "alice" in listed.stdout and "consumer1" in listed.stdout and key[-4:] in listed.stdout
    assert key not in listed.stdout + listed.stderr
    # As JSON, as the admin API lists them: lists stay lists (a table joins them with commas).
    as_json = _cli(tmp_path, "list", "--format", "json", "-c", config)
    assert as_json.returncode == 0, as_json.stderr
    assert key not in as_json.stdout + as_json.stderr  # never a key, as the table
    listed_json = {c["name"]: c for c in orjson.loads(as_json.stdout)["consumers"]}
    admin_listed = {c["name"]: c for c in httpx.get(gw.admin_url + "/api/consumers").json()["consumers"]}
    assert listed_json == admin_listed
    assert listed_json["alice"]["allow_models"] == ["gpt-4o*"] and listed_json["alice"]["groups"] == ["team-a"]
    assert listed_json["alice"]["source"] == "runtime" and listed_json["alice"]["key_hint"] == key[-4:]

    again = _cli(tmp_path, "add", "alice", "-c", config)
    assert again.returncode == 1 and "exists" in again.stderr and again.stdout == ""
    assert _cli(tmp_path, "add", "consumer1", "-c", config).returncode == 1
    assert _cli(tmp_path, "revoke", "consumer1", "-c", config).returncode == 1
    assert _cli(tmp_path, "revoke", "nobody", "-c", config).returncode == 1

    revoked = _cli(tmp_path, "revoke", "alice", "-c", config)
    assert revoked.returncode == 0, revoked.stderr
    assert _eventually(lambda: _chat(gw, key) == 401) < 5


def test_the_database_and_the_records_are_this_users_alone(
    gateway: GatewayFactory, mock_llm: Proc, tmp_path: Path
) -> None:
    """The database holds key hashes, usage and audit events, the records folder the
    calls not yet in it: made readable by the gateway's user alone (the demo key's file
    already was), whatever the umask: every folder made on the way to them too (the
    folders before the last were left world-readable, a judge found)."""
    gw = gateway(_config(mock_llm.url, "sqlite:///./data/inner/tollway.db"))
    added = _cli(tmp_path, "add", "alice", "-c", str(tmp_path / "tollway.yaml"))
    assert added.returncode == 0, added.stderr
    assert _eventually(lambda: _chat(gw, added.stdout.strip()) == 200) < 5
    data = tmp_path / "data"
    made = {p.name: p.stat().st_mode & 0o777 for p in (data, *data.rglob("*"))}
    assert {"data", "inner", "tollway.db", "tollway.db-wal", "records-tollway.db"} <= made.keys(), made
    for name, mode in made.items():
        assert mode & 0o077 == 0, (name, oct(mode))


def test_cli_config_problems_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("storage: {database: 'mysql://x/y'}\n")
    result = _cli(tmp_path, "list", "-c", str(bad))
    assert result.returncode == 2 and "storage.database" in result.stderr
    missing = _cli(tmp_path, "list", "-c", str(tmp_path / "missing.yaml"))
    assert missing.returncode == 2
    ok = tmp_path / "ok.yaml"
    ok.write_text("storage: {database: 'sqlite:///./ok.db'}\n")
    assert _cli(tmp_path, "list", "-c", str(ok)).returncode == 2  # no ok.db yet
    invalid = _cli(tmp_path, "add", "bad name", "-c", str(ok))
    assert invalid.returncode == 2 and "invalid consumer name" in invalid.stderr
    assert _cli(tmp_path, "list", "-c", str(ok)).returncode == 2  # the refused add made no ok.db
    assert _cli(tmp_path, "add", "good-name", "-c", str(ok)).returncode == 0
    assert _cli(tmp_path, "list", "-c", str(ok)).returncode == 0


def test_reading_commands_create_nothing_where_there_is_no_database(tmp_path: Path) -> None:
    # Run from the wrong folder, `list` and `usage` say where they looked instead of
    # making an empty database (and a demo key) there and reporting it empty; so do the
    # commands that change only what must be there already.
    changing = (["consumers", "revoke", "nosuch"], ["consumers", "rotate", "nosuch"], ["groups", "remove", "g"])
    for command in (["consumers", "list"], ["usage"], *changing):
        env = {k: v for k, v in os.environ.items() if k != "TOLLWAY_CONFIG"}
        result = subprocess.run(
            [sys.executable, "-m", "tollway", *command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 2
        assert f"no database at {tmp_path / 'tollway-data' / 'tollway.db'}" in result.stderr
        assert result.stdout == ""
        assert list(tmp_path.iterdir()) == []


def test_a_refused_add_makes_no_database(tmp_path: Path) -> None:
    # The verifier: a consumer refused for a pattern that does not compile left an empty
    # quickstart database and a demo key behind.
    refused = _cli(tmp_path, "add", "zed", "--allow-models", "~(bad")
    assert refused.returncode == 2 and "invalid allow_models entry" in refused.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_without_a_config_uses_the_quickstart_database(tmp_path: Path) -> None:
    added = _cli(tmp_path, "add", "alice")
    assert added.returncode == 0, added.stderr
    assert (tmp_path / "tollway-data" / "tollway.db").is_file()
    assert _cli(tmp_path, "add", "demo").returncode == 1  # the quickstart's own consumer
    assert "alice" in _cli(tmp_path, "list").stdout


def test_reading_commands_do_not_wait_for_the_gateways_writes(tmp_path: Path) -> None:
    """``consumers list`` and ``usage`` ran the schema's migration, which takes SQLite's
    one write lock: behind a gateway writing its records they waited out the busy timeout
    and then failed "database is locked". A current schema is only read."""
    assert _cli(tmp_path, "add", "alice").returncode == 0
    env = {k: v for k, v in os.environ.items() if k != "TOLLWAY_CONFIG"}
    usage = [sys.executable, "-m", "tollway", "usage"]
    assert subprocess.run(usage, cwd=tmp_path, env=env, capture_output=True, timeout=30).returncode == 0
    writer = sqlite3.connect(tmp_path / "tollway-data" / "tollway.db", isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # (as the gateway's record writer holds it)
        listed = _cli(tmp_path, "list")
        assert listed.returncode == 0, listed.stderr
        assert "alice" in listed.stdout
        summary = subprocess.run(usage, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
        assert summary.returncode == 0, summary.stderr
        writer.execute("ROLLBACK")
    finally:
        writer.close()


# --- the admin API ----------------------------------------------------------------------


def test_admin_added_key_works_with_the_openai_sdk_until_revoked(gateway: GatewayFactory, mock_llm: Proc) -> None:
    gw = gateway(_config(mock_llm.url, "sqlite:///./tollway.db"))
    created = _admin_add(gw, {"name": "alice", "allow_models": ["gpt-4o*"], "groups": ["team-a"]})
    assert created.status_code == 201
    assert created.headers["cache-control"] == "no-store"  # (a key shown once is kept by no cache)
    body = created.json()
    key = body.pop("key")
    assert body == {"name": "alice", "allow_models": ["gpt-4o*"], "groups": ["team-a"], "allow_tools": None}

    with openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0) as client:
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content
        with pytest.raises(openai.PermissionDeniedError):  # allow_models holds for runtime consumers too
            client.chat.completions.create(model="claude-3", messages=[{"role": "user", "content": "hi"}])
    with (
        openai.OpenAI(base_url=gw.url + "/v1", api_key=key[:-1] + "x", max_retries=0) as wrong,
        pytest.raises(openai.AuthenticationError),
    ):
        wrong.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])

    listing = httpx.get(gw.admin_url + "/api/consumers")
    assert listing.status_code == 200 and key not in listing.text
    consumers = {c["name"]: c for c in listing.json()["consumers"]}
    assert consumers["consumer1"] == {
        "name": "consumer1",
        "allow_models": None,
        "groups": [],
        "source": "config",
        "key_hint": "",  # the seed's six-character credential: too short to show any of it
        "created_at": None,
        "expires_at": None,
        "budget": None,
        "max_parallel": None,
        "allow_tools": None,
    }
    alice = consumers["alice"]
    assert alice["source"] == "runtime" and alice["key_hint"] == key[-4:] and alice["created_at"]

    assert httpx.delete(gw.admin_url + "/api/consumers/alice").status_code == 204
    # This process dropped the key at once: no waiting for a refresh.
    with (
        openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0) as client,
        pytest.raises(openai.AuthenticationError),
    ):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert "alice" not in {c["name"] for c in httpx.get(gw.admin_url + "/api/consumers").json()["consumers"]}


def test_admin_api_refusals(gateway: GatewayFactory, mock_llm: Proc) -> None:
    gw = gateway(_config(mock_llm.url, "sqlite:///./tollway.db"))
    assert _admin_add(gw, {"name": "alice"}).status_code == 201
    assert _admin_add(gw, {"name": "alice"}).status_code == 409
    assert _admin_add(gw, {"name": "consumer1"}).status_code == 409
    for bad in ({}, {"name": ""}, {"name": 5}, {"name": "a b"}, {"name": "b", "allow_models": "gpt"},
                {"name": "b", "groups": [1]}, {"name": "b", "key": "mine"}, ["b"]):  # fmt: skip
        assert _admin_add(gw, bad).status_code == 400, bad
    not_json = httpx.post(gw.admin_url + "/api/consumers", content=b"{nope")
    assert not_json.status_code == 400
    assert httpx.delete(gw.admin_url + "/api/consumers/nobody").status_code == 404
    assert httpx.delete(gw.admin_url + "/api/consumers/consumer1").status_code == 409
    assert _chat(gw, "xxxxxx") == 200  # the config consumer still works


def test_runtime_consumer_named_in_allow(gateway: GatewayFactory, mock_llm: Proc) -> None:
    rules = """    matchRules:
      - ingress: [chat]
        config: {allow: [alice]}
"""
    gw = gateway(_config(mock_llm.url, "sqlite:///./tollway.db", rules=rules))
    alice = _admin_add(gw, {"name": "alice"}).json()["key"]
    bob = _admin_add(gw, {"name": "bob"}).json()["key"]
    assert _chat(gw, alice) == 200
    assert _chat(gw, bob) == 403
    assert _chat(gw, "xxxxxx") == 403
    assert _chat(gw, "tw-not-a-key") == 401


def test_admin_token_guards_the_consumer_routes(gateway: GatewayFactory, mock_llm: Proc) -> None:
    gw = gateway(_config(mock_llm.url, "sqlite:///./tollway.db", admin="admin: {token: secret}"))
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "secret"}):
        refused = httpx.get(gw.admin_url + "/api/consumers", headers=headers)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert _admin_add(gw, {"name": "alice"}).status_code == 401
    assert httpx.delete(gw.admin_url + "/api/consumers/alice").status_code == 401
    assert httpx.get(gw.admin_url + "/healthz").status_code == 200
    assert _admin_add(gw, {"name": "alice"}, token="secret").status_code == 201
    ok = httpx.get(gw.admin_url + "/api/consumers", headers={"authorization": "Bearer secret"})
    assert ok.status_code == 200 and "alice" in ok.text


# --- replicas ---------------------------------------------------------------------------


@pytest.mark.postgres
def test_two_gateways_on_one_postgresql_share_consumers(gateway: GatewayFactory, mock_llm: Proc, pg_url: str) -> None:
    config = _config(mock_llm.url, pg_url)
    first = gateway(config, name="first.yaml")
    second = gateway(config, name="second.yaml")

    key = _admin_add(first, {"name": "alice"}).json()["key"]
    assert _chat(first, key) == 200
    assert _eventually(lambda: _chat(second, key) == 200) < 5
    listed = httpx.get(second.admin_url + "/api/consumers").json()["consumers"]
    assert "alice" in {c["name"] for c in listed}

    assert httpx.delete(first.admin_url + "/api/consumers/alice").status_code == 204
    assert _chat(first, key) == 401
    assert _eventually(lambda: _chat(second, key) == 401) < 5

    # And the other way round, with a key made on the second.
    key2 = _admin_add(second, {"name": "bob"}).json()["key"]
    assert _eventually(lambda: _chat(first, key2) == 200) < 5


# --- key lifecycle: expiry, rotation, edits (SPEC §10) -----------------------------------


def _reason(gw: Proc, key: str) -> tuple[int, str | None]:
    r = httpx.post(gw.url + "/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {key}"}, timeout=10)
    return r.status_code, r.headers.get("x-tollway-reason")


def test_an_expired_key_is_refused_naming_the_reason(gateway: GatewayFactory, mock_llm: Proc) -> None:
    config = _config(mock_llm.url, "sqlite:///./tollway.db").replace(
        "        - {name: consumer1, credential: xxxxxx}",
        "        - {name: consumer1, credential: xxxxxx}\n"
        "        - {name: gone, credential: yyyyyy, expires_at: '2020-01-01T00:00:00Z'}\n"
        "        - {name: later, credential: zzzzzz, expires_at: '2999-01-01'}",
    )
    gw = gateway(config)
    assert _reason(gw, "yyyyyy") == (401, "key-auth.expired_key")
    assert _reason(gw, "zzzzzz") == (200, None)
    listed = {c["name"]: c for c in httpx.get(gw.admin_url + "/api/consumers").json()["consumers"]}
    assert listed["gone"]["expires_at"] == "2020-01-01T00:00:00Z"
    assert listed["later"]["expires_at"] == "2999-01-01T00:00:00Z"

    soon = _admin_add(gw, {"name": "soon", "expires_at": "2020-06-01T12:00:00+02:00"})
    assert soon.status_code == 201
    assert _reason(gw, soon.json()["key"]) == (401, "key-auth.expired_key")
    shown = httpx.get(gw.admin_url + "/api/consumers/soon").json()
    assert shown["expires_at"] == "2020-06-01T10:00:00Z" and shown["spend"] == []
    # Moving the date on brings the key back; null removes it.
    patched = httpx.patch(gw.admin_url + "/api/consumers/soon", json={"expires_at": None})
    assert patched.status_code == 200 and patched.json()["expires_at"] is None
    assert _reason(gw, soon.json()["key"]) == (200, None)
    assert _admin_add(gw, {"name": "bad", "expires_at": "next tuesday"}).status_code == 400
    # An instant past year 9999 (or before year 1) in UTC could be stored but never shown
    # again: refused on add and edit, and the listing still answers.
    for late in ("9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+14:00"):
        refused = _admin_add(gw, {"name": "far", "expires_at": late})
        assert refused.status_code == 400 and "years 1 to 9999" in refused.json()["error"]["message"]
        edit = httpx.patch(gw.admin_url + "/api/consumers/soon", json={"expires_at": late})
        assert edit.status_code == 400
    assert httpx.get(gw.admin_url + "/api/consumers").status_code == 200
    assert httpx.get(gw.admin_url + "/api/consumers/soon").json()["expires_at"] is None


def test_consumer_show_edit_and_rotate_through_the_admin_api(gateway: GatewayFactory, mock_llm: Proc) -> None:
    gw = gateway(_config(mock_llm.url, "sqlite:///./tollway.db"))
    body = {"name": "alice", "budget": {"usd": 50, "period": "month"}, "max_parallel": 4, "metadata": {"team": "a"}}
    key = _admin_add(gw, body).json()["key"]
    shown = httpx.get(gw.admin_url + "/api/consumers/alice")
    assert shown.status_code == 200 and key not in shown.text
    alice = shown.json()
    assert alice["budget"] == {"usd": 50.0, "period": "month"} and alice["max_parallel"] == 4
    assert alice["metadata"] == {"team": "a"} and alice["source"] == "runtime" and alice["key_hint"] == key[-4:]
    config = httpx.get(gw.admin_url + "/api/consumers/consumer1").json()
    assert config["source"] == "config" and config["budget"] is None and config["spend"] == []
    assert httpx.get(gw.admin_url + "/api/consumers/nobody").status_code == 404

    edit = {"allow_models": ["claude-*"], "groups": ["team-b"], "budget": {"usd": 5, "period": "day"},
            "max_parallel": None, "metadata": {"team": "b"}}  # fmt: skip
    edited = httpx.patch(gw.admin_url + "/api/consumers/alice", json=edit)
    assert edited.status_code == 200
    got = edited.json()
    assert {k: got[k] for k in edit} == {**edit, "budget": {"usd": 5.0, "period": "day"}}
    assert _chat(gw, key) == 403  # gpt-4o-mini is no longer allowed, at once on this process
    bad_edits: list[object] = [{"name": "x"}, {"budget": {"usd": -1}}, {"budget": {"usd": 1, "period": "year"}},
                               {"max_parallel": 0}, {"max_parallel": True}, {"allow_models": "x"},
                               {"metadata": []}, []]  # fmt: skip
    for bad in bad_edits:
        assert httpx.patch(gw.admin_url + "/api/consumers/alice", json=bad).status_code == 400, bad
    assert httpx.patch(gw.admin_url + "/api/consumers/consumer1", json={"max_parallel": 2}).status_code == 409
    assert httpx.patch(gw.admin_url + "/api/consumers/nobody", json={"max_parallel": 2}).status_code == 404
    httpx.patch(gw.admin_url + "/api/consumers/alice", json={"allow_models": None})

    rotated = httpx.post(gw.admin_url + "/api/consumers/alice/rotate", json={"grace_s": 60})
    assert rotated.status_code == 200
    new = rotated.json()
    assert new["name"] == "alice" and new["key"] != key and new["key"].startswith("tw-")
    assert _chat(gw, key) == 200 and _chat(gw, new["key"]) == 200  # the old key is in its grace
    listed = httpx.get(gw.admin_url + "/api/consumers").text
    assert key not in listed and new["key"] not in listed and new["key"][-4:] in listed
    now = httpx.post(gw.admin_url + "/api/consumers/alice/rotate")
    assert now.status_code == 200
    assert _reason(gw, key) == (401, "key-auth.unknown_key") and _chat(gw, new["key"]) == 401
    assert _chat(gw, now.json()["key"]) == 200
    assert httpx.post(gw.admin_url + "/api/consumers/consumer1/rotate").status_code == 409
    assert httpx.post(gw.admin_url + "/api/consumers/nobody/rotate").status_code == 404
    assert httpx.post(gw.admin_url + "/api/consumers/alice/rotate", json={"grace_s": -1}).status_code == 400
    assert httpx.post(gw.admin_url + "/api/consumers/alice/other").status_code == 404


def test_unusable_patterns_and_repeated_groups_are_refused_where_given(gateway: GatewayFactory, mock_llm: Proc) -> None:
    gw = gateway(_config(mock_llm.url, "sqlite:///./tollway.db"))
    api = gw.admin_url + "/api/consumers"
    made = _admin_add(gw, {"name": "bad", "allow_models": ["gpt-4o*", "~(unclosed"]})
    assert made.status_code == 400
    message = made.json()["error"]["message"]
    assert "allow_models" in message and "'~(unclosed' is not a valid regular expression" in message
    twice = _admin_add(gw, {"name": "twice", "groups": ["g", "g"]})
    assert twice.status_code == 400 and "groups names 'g' twice" in twice.json()["error"]["message"]
    assert [c["name"] for c in httpx.get(api).json()["consumers"]] == ["consumer1"]

    key = _admin_add(gw, {"name": "alice", "allow_models": ["gpt-4o*"], "groups": ["g"]}).json()["key"]
    for bad in ({"allow_models": ["~(unclosed"]}, {"groups": ["g", "h", "g"]}):
        refused = httpx.patch(api + "/alice", json=bad)
        assert refused.status_code == 400, bad
    alice = httpx.get(api + "/alice").json()
    assert (alice["allow_models"], alice["groups"]) == (["gpt-4o*"], ["g"])
    # A regex with a comma is one pattern.
    assert httpx.patch(api + "/alice", json={"allow_models": ["~gpt-4o(-mini){0,1}"]}).status_code == 200
    assert _chat(gw, key) == 200


def test_a_consumer_stored_before_those_checks_is_refused_its_models_not_failed(
    gateway: GatewayFactory, mock_llm: Proc, tmp_path: Path
) -> None:
    groups = "groups: [{name: team, max_parallel: 1, budget: {usd: 100, period: month}}]"
    gw = gateway(_config(mock_llm.url, "sqlite:///./tollway.db") + groups)
    api = gw.admin_url + "/api/consumers"
    key = _admin_add(gw, {"name": "alice", "allow_models": ["gpt-4o*"], "groups": ["team"]}).json()["key"]
    # As a release before the checks stored them: a regex that does not compile, a group twice.
    with sqlite3.connect(tmp_path / "tollway.db") as db:
        db.execute("""UPDATE consumers SET allow_models = '["~(unclosed"]', groups = '["team", "team"]'""")
        db.execute("UPDATE consumer_changes SET version = version + 1")

    def refused() -> bool:
        return _reason(gw, key) == (403, "key-auth.model_not_allowed")

    _eventually(refused)  # not a 500: the pattern matches no model
    assert refused()
    said = gw.logged("allow_models entry matches no model")
    assert len(said) == 1 and "'alice'" in said[0] and "~(unclosed" in said[0]

    # The group named twice is one group: a call is held and settled against its budget
    # once, and its spend shown once.
    assert httpx.patch(api + "/alice", json={"allow_models": ["gpt-4o*"]}).status_code == 200
    assert _chat(gw, key) == 200
    alice = httpx.get(api + "/alice").json()
    assert alice["groups"] == ["team", "team"]
    cost = sum(r["cost_usd"] for r in httpx.get(gw.admin_url + "/api/usage", params={"by": "consumer"}).json()["rows"])
    assert cost > 0
    assert [(e["kind"], e["name"], e["spend_usd"]) for e in alice["spend"]] == [("group", "team", pytest.approx(cost))]
    assert len(gw.logged("allow_models entry matches no model", count=2, within=0.5)) == 1


@pytest.mark.postgres
def test_rotation_expiry_and_revocation_reach_three_replicas(
    gateway: GatewayFactory, mock_llm: Proc, pg_url: str
) -> None:
    config = _config(mock_llm.url, pg_url)
    gateways = [gateway(config, name=f"replica{i}.yaml") for i in range(3)]
    first = gateways[0]

    def everywhere(key: str, status: int) -> bool:
        return all(_chat(gw, key) == status for gw in gateways)

    key = _admin_add(first, {"name": "alice"}).json()["key"]
    _eventually(lambda: everywhere(key, 200))

    # Rotation with a grace period: the new key works everywhere, the old one until its grace ends.
    new = httpx.post(first.admin_url + "/api/consumers/alice/rotate", json={"grace_s": 3}).json()["key"]
    assert _eventually(lambda: everywhere(new, 200)) < 5
    assert _eventually(lambda: everywhere(key, 401), within=8) < 8

    # An expiry set on one replica refuses the key on every replica.
    past = "2001-01-01T00:00:00Z"
    assert httpx.patch(gateways[1].admin_url + "/api/consumers/alice", json={"expires_at": past}).status_code == 200
    assert _eventually(lambda: all(_reason(gw, new) == (401, "key-auth.expired_key") for gw in gateways)) < 5
    assert httpx.patch(gateways[2].admin_url + "/api/consumers/alice", json={"expires_at": None}).status_code == 200
    assert _eventually(lambda: everywhere(new, 200)) < 5

    # Revocation on the last replica stops the key on all three.
    assert httpx.delete(gateways[2].admin_url + "/api/consumers/alice").status_code == 204
    assert _eventually(lambda: everywhere(new, 401)) < 5


def test_cli_add_with_budget_and_expiry_show_and_rotate(
    gateway: GatewayFactory, mock_llm: Proc, tmp_path: Path
) -> None:
    gw = gateway(_config(mock_llm.url, "sqlite:///./data/tollway.db"))
    config = str(tmp_path / "tollway.yaml")
    added = _cli(tmp_path, "add", "carol", "--budget-usd", "12.5", "--budget-period", "week", "--max-parallel", "3",
                 "--expires", "2999-01-01T00:00:00Z", "-c", config)  # fmt: skip
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip()
    assert _eventually(lambda: _chat(gw, key) == 200) < 5

    # Asking the admin API for records first waits until the gateway has written them.
    recorded = httpx.get(gw.admin_url + "/api/requests", params={"consumer": "carol"}).json()["requests"]
    shown = _cli(tmp_path, "show", "carol", "-c", config)
    assert shown.returncode == 0, shown.stderr
    carol = orjson.loads(shown.stdout)
    assert carol["budget"] == {"usd": 12.5, "period": "week"} and carol["max_parallel"] == 3
    assert carol["expires_at"] == "2999-01-01T00:00:00Z" and key not in shown.stdout
    # Its budget's spend, as the records show it: the cost of the calls made so far.
    spent = sum(round(r["cost_usd"] * 1e9) for r in recorded) / 1e9
    assert spent > 0
    assert [(e["kind"], e["period"], e["spend_usd"], e["budget_usd"]) for e in carol["spend"]] == [
        ("consumer", "week", spent, 12.5)
    ]
    assert httpx.get(gw.admin_url + "/api/consumers/carol").json()["budget"] == carol["budget"]
    assert _cli(tmp_path, "show", "nobody", "-c", config).returncode == 1
    assert orjson.loads(_cli(tmp_path, "show", "consumer1", "-c", config).stdout)["source"] == "config"

    rotated = _cli(tmp_path, "rotate", "carol", "--grace", "30", "-c", config)
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.strip()
    assert new.startswith("tw-") and new != key
    assert _eventually(lambda: _chat(gw, new) == 200) < 5
    assert _chat(gw, key) == 200  # within its 30 s of grace
    assert _cli(tmp_path, "rotate", "carol", "-c", config).returncode == 0  # no grace: both earlier keys stop
    assert _eventually(lambda: _chat(gw, key) == 401 and _chat(gw, new) == 401) < 5
    assert _cli(tmp_path, "rotate", "consumer1", "-c", config).returncode == 1

    expired = _cli(tmp_path, "add", "dave", "--expires", "2001-01-01", "-c", config)
    assert expired.returncode == 0, expired.stderr
    dave = expired.stdout.strip()
    assert _eventually(lambda: _reason(gw, dave) == (401, "key-auth.expired_key")) < 5
    assert _cli(tmp_path, "add", "erin", "--expires", "soon", "-c", config).returncode == 2
    for usd in ("-1", "abc", "nan"):  # (said in words, where argparse said "invalid usd_argument value")
        refused = _cli(tmp_path, "add", "erin", "--budget-usd", usd, "-c", config)
        assert refused.returncode == 2 and "must be a number of US dollars from 0 to" in refused.stderr, refused.stderr
    grace = _cli(tmp_path, "rotate", "carol", "--grace", "-5", "-c", config)
    assert grace.returncode == 2 and "--grace: must be a number of seconds from 0" in grace.stderr, grace.stderr
    assert _cli(tmp_path, "add", "erin", "--budget-period", "year", "--budget-usd", "1", "-c", config).returncode == 2
    # A period without a budget was dropped without a word: the consumer had no budget.
    alone = _cli(tmp_path, "add", "erin", "--budget-period", "week", "-c", config)
    assert alone.returncode == 2 and "--budget-period needs --budget-usd" in alone.stderr

    # The command line's changes are in the audit log like the admin API's, without a key.
    audit = httpx.get(gw.admin_url + "/api/audit")
    actions = [(e["action"], e["subject"]) for e in audit.json()["events"]]
    assert actions == [("consumers.add", "dave"), ("consumers.rotate", "carol"), ("consumers.rotate", "carol"),
                       ("consumers.add", "carol")]  # fmt: skip
    assert key not in audit.text and new not in audit.text and dave not in audit.text


def test_the_cli_takes_and_refuses_what_the_admin_api_does(tmp_path: Path) -> None:
    # The CLI took --max-parallel 5000000 (the API refuses past 1,000,000), failed with a
    # database error (exit 1) past int64, and refused a lower-case t/z in --expires that
    # the API and RFC 3339 take.
    config = tmp_path / "tollway.yaml"
    config.write_text(_config("http://127.0.0.1:9", "sqlite:///./tollway.db"))
    for value in ("5000000", "99999999999999999999", "0", "lots"):
        refused = _cli(tmp_path, "add", "x", "--max-parallel", value, "-c", str(config))
        assert refused.returncode == 2, refused.stderr
        assert "must be an integer from 1 to 1000000" in refused.stderr
    added = _cli(
        tmp_path, "add", "y", "--max-parallel", "1000000", "--expires", "2099-12-31t00:00:00z", "-c", str(config)
    )
    assert added.returncode == 0, added.stderr
    shown = _cli(tmp_path, "show", "y", "-c", str(config))
    assert shown.returncode == 0 and "2099-12-31T00:00:00Z" in shown.stdout, shown.stdout + shown.stderr


def test_cli_add_takes_allow_tools_for_the_configs_mcp_servers(tmp_path: Path) -> None:
    """As the admin API: a consumer made at the command line is held to the MCP tools it
    is given, and an entry for a server the config lacks is refused (a typo would leave
    every tool of the server meant)."""
    config = tmp_path / "tollway.yaml"
    config.write_text(
        'storage: {database: "sqlite:///./tollway.db"}\n'
        "mcp_servers: [{name: tools, url: 'http://127.0.0.1:9/mcp'}]\n"
        "routes: [{name: mcp, path_prefix: /mcp, mcp_server: tools}]\n"
    )
    typo = _cli(tmp_path, "add", "agent", "--allow-tools", "toolz=echo", "-c", str(config))
    assert typo.returncode == 2 and "no MCP server named 'toolz'" in typo.stderr
    bad = _cli(tmp_path, "add", "agent", "--allow-tools", "tools=~(", "-c", str(config))
    assert bad.returncode == 2 and "allow_tools" in bad.stderr
    given = ("tools=echo", "tools=~get_[a-z]{1,20}")  # (one pattern each: a regex may hold a comma)
    made = _cli(tmp_path, "add", "agent", *(a for g in given for a in ("--allow-tools", g)), "-c", str(config))
    assert made.returncode == 0, made.stderr
    shown = orjson.loads(_cli(tmp_path, "show", "agent", "-c", str(config)).stdout)
    assert shown["allow_tools"] == {"tools": ["echo", "~get_[a-z]{1,20}"]}
