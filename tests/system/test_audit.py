"""The audit log through a real `tollway serve` (SPEC §10): every admin write (consumers
added, edited, rotated and revoked, a reload, ai-quota's quota changes) is an event in
`GET /api/audit`, newest first, with who asked, and so is a reload by SIGHUP or a changed
config file; reads and refused writes are not; and no
key, nor any key's hash, ever appears in it or in the database's table."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.conftest import Proc
from tollway.consumers.keys import hash_key

GatewayFactory = Callable[..., Proc]
TOKEN = "admin-secret"
ADMIN = {"authorization": f"Bearer {TOKEN}"}


def _config(mock_url: str) -> str:
    return f"""
admin: {{token: {TOKEN}}}
storage: {{database: "sqlite:///./tollway.db"}}
providers: [{{id: mock, type: openai, baseUrl: "{mock_url}/v1", apiTokens: [sk-test]}}]
routes:
  - {{name: chat, path_prefix: /v1/, provider: mock}}
  - {{name: quota-admin, path_prefix: /quota}}
plugins:
  - name: key-auth
    defaultConfig:
      keys: [authorization]
      consumers: [{{name: admin, credential: key-admin}}]
  - name: ai-quota
    defaultConfig: {{admin_consumer: admin}}
"""


def _events(gw: Proc, **params: str) -> list[dict[str, object]]:
    r = httpx.get(gw.admin_url + "/api/audit", params=params, headers=ADMIN)
    assert r.status_code == 200, r.text
    events: list[dict[str, object]] = r.json()["events"]
    return events


def test_every_admin_write_is_an_event_and_no_key_is_kept(
    gateway: GatewayFactory, mock_llm: Proc, tmp_path: Path
) -> None:
    gw = gateway(_config(mock_llm.url))
    api = gw.admin_url + "/api/consumers"
    created = httpx.post(
        api, json={"name": "alice", "groups": ["team"], "metadata": {"api_key": "nope"}}, headers=ADMIN
    )
    assert created.status_code == 201
    first_key = created.json()["key"]
    assert httpx.patch(api + "/alice", json={"max_parallel": 2}, headers=ADMIN).status_code == 200
    rotated = httpx.post(api + "/alice/rotate", json={"grace_s": 5}, headers=ADMIN)
    assert rotated.status_code == 200
    second_key = rotated.json()["key"]
    assert httpx.post(gw.admin_url + "/api/reload", headers=ADMIN).status_code == 200
    quota = httpx.post(
        gw.url + "/quota/refresh",
        data={"consumer": "alice", "quota": "100"},
        headers={"authorization": "Bearer key-admin"},
    )
    assert quota.status_code == 200, quota.text
    assert httpx.delete(api + "/alice", headers=ADMIN).status_code == 204
    # Neither reads nor refused writes are events.
    assert httpx.get(api + "/alice", headers=ADMIN).status_code == 404
    assert httpx.post(api, json={"name": "admin"}, headers=ADMIN).status_code == 409
    assert httpx.patch(api + "/nobody", json={"max_parallel": 2}, headers=ADMIN).status_code == 404

    def listed() -> list[tuple[object, ...]]:
        return [(e["action"], e["subject"]) for e in _events(gw)]

    expected = [
        ("consumers.revoke", "alice"),
        ("quota.refresh", "alice"),
        ("config.reload", None),
        ("consumers.rotate", "alice"),
        ("consumers.edit", "alice"),
        ("consumers.add", "alice"),
    ]
    # The quota change is recorded without holding up its answer: give it a moment.
    for _ in range(50):
        if listed() == expected:
            break
        httpx.get(gw.admin_url + "/healthz")
    assert listed() == expected

    events = _events(gw)
    by_action = {e["action"]: e for e in events}
    assert by_action["consumers.add"]["details"] == {"name": "alice", "groups": ["team"], "metadata": {}}
    assert by_action["consumers.edit"]["details"] == {"max_parallel": 2}
    assert by_action["consumers.rotate"]["details"] == {"grace_s": 5}
    assert by_action["quota.refresh"]["details"] == {"quota": 100}
    assert all(e["client_ip"] == "127.0.0.1" for e in events)
    assert [e["action"] for e in _events(gw, limit="2")] == ["consumers.revoke", "quota.refresh"]
    assert _events(gw, since="2999-01-01") == []
    assert httpx.get(gw.admin_url + "/api/audit", params={"limit": "0"}, headers=ADMIN).status_code == 400
    assert httpx.get(gw.admin_url + "/api/audit").status_code == 401

    # No key and no key's hash: not in the answer, not in the table.
    text = httpx.get(gw.admin_url + "/api/audit", headers=ADMIN).text
    conn = sqlite3.connect(tmp_path / "tollway.db")
    try:
        stored = repr(conn.execute("SELECT * FROM audit_events").fetchall())
    finally:
        conn.close()
    for secret in (first_key, second_key, hash_key(first_key), hash_key(second_key), TOKEN, "key-admin", "nope"):
        assert secret not in text and secret not in stored


def test_a_reload_by_sighup_or_by_a_changed_file_is_an_event(
    gateway: GatewayFactory, mock_llm: Proc, tmp_path: Path
) -> None:
    # Not asked through the admin API, and a change of what the gateway enforces all
    # the same: the audit log says when and how it came.
    gw = gateway(_config(mock_llm.url))
    gw.popen.send_signal(signal.SIGHUP)
    for _ in range(100):
        if [e["action"] for e in _events(gw)] == ["config.reload"]:
            break
        time.sleep(0.05)
    [event] = _events(gw)
    assert (event["action"], event["subject"], event["details"]) == ("config.reload", None, {"source": "SIGHUP"})
    assert event["client_ip"] is None

    config = tmp_path / "tollway.yaml"
    config.write_text(config.read_text() + "\n# edited\n")
    for _ in range(100):
        if len(_events(gw)) == 2:
            break
        time.sleep(0.05)
    assert [e["details"] for e in _events(gw)] == [{"source": "file change"}, {"source": "SIGHUP"}]

    # Edited, then reloaded by hand at once (the usual way): one reload, one event; the
    # file watcher, finding the change applied, does not reload it again.
    config.write_text(config.read_text() + "\n# edited again\n")
    gw.popen.send_signal(signal.SIGHUP)
    time.sleep(2.5)  # (the watcher looks every 0.5 s and waits 0.5 s for the file to settle)
    assert [e["details"] for e in _events(gw)] == [
        {"source": "SIGHUP"},
        {"source": "file change"},
        {"source": "SIGHUP"},
    ]

    # A reload that is refused changes nothing, and is not an event (as through the API).
    config.write_text("providers: [{id: broken, type: nonsense}]\n")
    gw.popen.send_signal(signal.SIGHUP)
    time.sleep(1.5)
    assert len(_events(gw)) == 3
