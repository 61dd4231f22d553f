"""Runtime groups through real `tollway serve` processes (SPEC §10): declared, changed
and removed through the admin API, their budgets binding every member on this gateway
and on another one sharing the database, with their members and their spend (the
members' records' cost) shown; config groups listed and protected; every write in the
audit log."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson

from tests.conftest import Proc
from tests.support.plugin_support import DAY_S, wait_for_window_room
from tests.system.test_budgets import KINDS, NANO, assert_refused_for_budget, body, records, spent_nano

GatewayFactory = Callable[..., Proc]


def _config(mock_url: str) -> str:
    return f"""
storage: {{database: "sqlite:///./tollway.db"}}
pricing: {{mock-gpt: {{input_per_mtok: 1000, output_per_mtok: 10}}}}
providers: [{{id: mock, type: openai, baseUrl: "{mock_url}/v1", apiTokens: [sk-test]}}]
routes: [{{name: chat, path_prefix: /v1/, provider: mock}}]
groups:
  - {{name: staff, max_parallel: 5}}
plugins:
  - name: key-auth
    defaultConfig:
      keys: [authorization]
      consumers:
        - {{name: bob, credential: key-bob, groups: [staff], budget: {{usd: 50, period: week}}, max_parallel: 7}}
"""


def _eventually(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not check():
        assert time.monotonic() < deadline, "not true within 5 s"
        time.sleep(0.05)


def _call(gw: Proc, key: str, kind: str = "plain") -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions", json=body(kind), headers={"authorization": f"Bearer {key}"}, timeout=30
    )


def test_runtime_groups_bind_their_members_and_show_their_spend(gateway: GatewayFactory, mock_llm: Proc) -> None:
    wait_for_window_room(DAY_S, 60)  # its budgets are per UTC day: not across midnight
    cfg = _config(mock_llm.url)
    gw = gateway(cfg)
    other = gateway(cfg, name="other.yaml")  # a second replica on the same database
    api = gw.admin_url + "/api/groups"

    listed = httpx.get(api).json()["groups"]
    assert listed == [
        {"name": "staff", "source": "config", "budget": None, "max_parallel": 5, "members": ["bob"], "spend": []}
    ]
    # A config consumer shows the budget and max_parallel the file gives it.
    bob = httpx.get(gw.admin_url + "/api/consumers/bob").json()
    assert (bob["source"], bob["budget"], bob["max_parallel"]) == ("config", {"usd": 50.0, "period": "week"}, 7)
    assert [(e["kind"], e["name"], e["spend_usd"]) for e in bob["spend"]] == [("consumer", "bob", 0.0)]
    made = httpx.post(api, json={"name": "team-r", "budget": {"usd": 0.2, "period": "day"}})
    assert made.status_code == 201, made.text
    assert made.json()["source"] == "runtime" and made.json()["budget"] == {"usd": 0.2, "period": "day"}
    keys = {}
    for name in ("ann", "cid"):
        r = httpx.post(gw.admin_url + "/api/consumers", json={"name": name, "groups": ["team-r"]})
        keys[name] = r.json()["key"]
    assert httpx.get(api + "/team-r").json()["members"] == ["ann", "cid"]

    # Both members spend the one budget until it refuses either of them.
    n = 0
    while True:
        r = _call(gw, keys[("ann", "cid")[n % 2]], KINDS[n % 3])
        if r.status_code != 200:
            break
        n += 1
        assert n < 200
    assert n > 2
    assert_refused_for_budget(r, "group 'team-r'")
    assert_refused_for_budget(_call(gw, keys["cid"], KINDS[n % 3]), "group 'team-r'")
    both = records(gw, "ann") + records(gw, "cid")
    assert spent_nano(both) <= 0.2 * NANO
    shown = httpx.get(api + "/team-r").json()
    assert [(e["kind"], e["name"], e["spend_usd"], e["budget_usd"]) for e in shown["spend"]] == [
        ("group", "team-r", spent_nano(both) / NANO, 0.2)
    ]
    # The other replica knows the group and holds its members to it too.
    _eventually(lambda: httpx.get(other.admin_url + "/api/groups/team-r").status_code == 200)
    _eventually(lambda: _call(other, keys["ann"], KINDS[n % 3]).status_code == 403)

    # A larger budget lets them through again, here at once and there within seconds.
    raised = httpx.patch(api + "/team-r", json={"budget": {"usd": 100, "period": "day"}, "max_parallel": 3})
    assert raised.status_code == 200 and raised.json()["max_parallel"] == 3
    assert _call(gw, keys["ann"]).status_code == 200
    _eventually(lambda: _call(other, keys["cid"]).status_code == 200)

    # Removed: the members keep the name, with no limits from it.
    assert httpx.patch(api + "/team-r", json={"budget": {"usd": 0, "period": "day"}}).status_code == 200
    assert_refused_for_budget(_call(gw, keys["ann"]), "group 'team-r'")
    assert httpx.delete(api + "/team-r").status_code == 204
    assert _call(gw, keys["ann"]).status_code == 200
    assert httpx.get(api + "/team-r").status_code == 404
    assert httpx.get(gw.admin_url + "/api/consumers/ann").json()["groups"] == ["team-r"]

    # Refusals: config groups are the file's, names are checked, bodies too.
    assert httpx.patch(api + "/staff", json={"max_parallel": 1}).status_code == 409
    assert httpx.delete(api + "/staff").status_code == 409
    assert httpx.post(api, json={"name": "staff"}).status_code == 409
    assert httpx.post(api, json={"name": "dup"}).status_code == 201
    assert httpx.post(api, json={"name": "dup"}).status_code == 409
    too_big = {"name": "x", "budget": {"usd": 1.7e308}}  # more than the counters can hold: refused, not a 500
    for bad in ({}, {"name": "a b"}, {"name": "x", "budget": {"usd": -1}}, {"name": "x", "other": 1}, ["x"], too_big):
        assert httpx.post(api, json=bad).status_code == 400, bad
    assert httpx.patch(api + "/nobody", json={"max_parallel": 1}).status_code == 404
    assert httpx.delete(api + "/nobody").status_code == 404
    # Once groups are declared, a runtime consumer names declared ones only, as a config
    # consumer must (a typo would escape the group's budget).
    typo = httpx.post(gw.admin_url + "/api/consumers", json={"name": "eve", "groups": ["staf"]})
    assert typo.status_code == 400 and "unknown group 'staf'" in typo.json()["error"]["message"]
    assert httpx.patch(gw.admin_url + "/api/consumers/ann", json={"groups": ["dup", "nope"]}).status_code == 400
    assert httpx.get(gw.admin_url + "/api/consumers/ann").json()["groups"] == ["team-r"]

    actions = [(e["action"], e["subject"]) for e in httpx.get(gw.admin_url + "/api/audit").json()["events"]]
    assert actions[:5] == [("groups.add", "dup"), ("groups.remove", "team-r"), ("groups.edit", "team-r"),
                           ("groups.edit", "team-r"), ("consumers.add", "cid")]  # fmt: skip


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TOLLWAY_CONFIG"}
    return subprocess.run([sys.executable, "-m", "tollway", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=30)  # fmt: skip


def test_groups_from_the_command_line(gateway: GatewayFactory, mock_llm: Proc, tmp_path: Path) -> None:
    wait_for_window_room(DAY_S, 60)  # its budget is per UTC day: not across midnight
    gw = gateway(_config(mock_llm.url))
    config = str(tmp_path / "tollway.yaml")
    alone = _cli(tmp_path, "groups", "add", "team-c", "--budget-period", "day", "-c", config)
    assert alone.returncode == 2 and "--budget-period needs --budget-usd" in alone.stderr  # (it set no budget)
    added = _cli(tmp_path, "groups", "add", "team-c", "--budget-usd", "0.2", "--budget-period", "day", "-c", config)
    assert added.returncode == 0, added.stderr
    _eventually(lambda: httpx.get(gw.admin_url + "/api/groups/team-c").status_code == 200)
    key = httpx.post(gw.admin_url + "/api/consumers", json={"name": "dee", "groups": ["team-c"]}).json()["key"]
    n = 0
    while _call(gw, key, KINDS[n % 3]).status_code == 200:
        n += 1
        assert n < 200
    assert n > 2

    spent = spent_nano(records(gw, "dee")) / NANO  # (asking waits until the records are written)
    listed = _cli(tmp_path, "groups", "list", "-c", config)
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[0]: line.split()[1:] for line in listed.stdout.splitlines()[1:]}
    assert lines == {"staff": ["config", "-", "5", "bob"], "team-c": ["runtime", "$0.2/day", "-", "dee"]}
    as_json = _cli(tmp_path, "groups", "list", "--format", "json", "-c", config)
    assert as_json.returncode == 0, as_json.stderr
    assert orjson.loads(as_json.stdout)["groups"] == [
        {"name": "staff", "source": "config", "budget": None, "max_parallel": 5, "members": ["bob"]},
        {"name": "team-c", "source": "runtime", "budget": {"usd": 0.2, "period": "day"}, "max_parallel": None,
         "members": ["dee"]},
    ]  # fmt: skip
    shown = _cli(tmp_path, "groups", "show", "team-c", "-c", config)
    assert shown.returncode == 0, shown.stderr
    group = orjson.loads(shown.stdout)
    # The recorded spend: the members' records' cost, as the gateway counts it.
    assert group["members"] == ["dee"] and group["budget"] == {"usd": 0.2, "period": "day"}
    assert group["spend"][0]["spend_usd"] == spent
    assert (
        group["spend"][0]["spend_usd"] == httpx.get(gw.admin_url + "/api/groups/team-c").json()["spend"][0]["spend_usd"]
    )

    bob = orjson.loads(_cli(tmp_path, "consumers", "show", "bob", "-c", config).stdout)
    assert (bob["budget"], bob["max_parallel"]) == ({"usd": 50.0, "period": "week"}, 7)
    dee = orjson.loads(_cli(tmp_path, "consumers", "show", "dee", "-c", config).stdout)
    assert [(e["kind"], e["name"], e["spend_usd"]) for e in dee["spend"]] == [("group", "team-c", spent)]
    assert _cli(tmp_path, "groups", "add", "team-c", "-c", config).returncode == 1
    assert _cli(tmp_path, "groups", "add", "staff", "-c", config).returncode == 1
    assert _cli(tmp_path, "groups", "add", "bad name", "-c", config).returncode == 2
    assert _cli(tmp_path, "groups", "remove", "staff", "-c", config).returncode == 1
    assert _cli(tmp_path, "groups", "show", "nobody", "-c", config).returncode == 1
    # Groups declared: a name outside them (config or runtime) is a typo, refused as the
    # admin API refuses it, and nothing is added.
    typo = _cli(tmp_path, "consumers", "add", "erin", "--groups", "team-cc", "-c", config)
    assert typo.returncode == 2 and "unknown group 'team-cc'" in typo.stderr and not typo.stdout
    assert httpx.get(gw.admin_url + "/api/consumers/erin").status_code == 404
    both = _cli(tmp_path, "consumers", "add", "erin", "--groups", "team-c", "staff", "-c", config)
    assert both.returncode == 0, both.stderr
    removed = _cli(tmp_path, "groups", "remove", "team-c", "-c", config)
    assert removed.returncode == 0, removed.stderr
    _eventually(lambda: _call(gw, key).status_code == 200)  # no group budget holds dee now
    assert _cli(tmp_path, "groups", "remove", "team-c", "-c", config).returncode == 1
    audit = [(e["action"], e["subject"]) for e in httpx.get(gw.admin_url + "/api/audit").json()["events"]]
    assert audit == [
        ("groups.remove", "team-c"),
        ("consumers.add", "erin"),
        ("consumers.add", "dee"),
        ("groups.add", "team-c"),
    ]


def test_a_groups_spend_follows_its_members_as_a_restart_would_rebuild_it(
    gateway: GatewayFactory, mock_llm: Proc
) -> None:
    """The live counter counted each call under the groups its consumer was in then; a
    restart sums the current members' records. Jo's spend joined the group only after a
    restart, and leaving and restarting took it away again (a judge's finding): a
    change of members now renews the group's spend from its members' records at once."""
    wait_for_window_room(DAY_S, 60)
    gw = gateway(_config(mock_llm.url))
    api = gw.admin_url + "/api/groups"
    assert httpx.post(api, json={"name": "hg", "budget": {"usd": 100, "period": "day"}}).status_code == 201
    keys = {
        name: httpx.post(gw.admin_url + "/api/consumers", json={"name": name, "groups": groups}).json()["key"]
        for name, groups in (("jo", []), ("ko", ["hg"]))
    }
    for who in ("jo", "jo", "ko"):
        assert _call(gw, keys[who]).status_code == 200

    def shown() -> float:
        return float(httpx.get(api + "/hg").json()["spend"][0]["spend_usd"])

    _eventually(lambda: len(records(gw, "jo")) == 2 and len(records(gw, "ko")) == 1)
    jo, ko = spent_nano(records(gw, "jo")), spent_nano(records(gw, "ko"))
    assert jo > 0 and shown() == ko / NANO
    assert httpx.patch(gw.admin_url + "/api/consumers/jo", json={"groups": ["hg"]}).status_code == 200
    _eventually(lambda: shown() == (jo + ko) / NANO)
    assert httpx.patch(gw.admin_url + "/api/consumers/jo", json={"groups": []}).status_code == 200
    _eventually(lambda: shown() == ko / NANO)
