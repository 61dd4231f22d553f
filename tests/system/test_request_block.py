"""request-block (SPEC §3, §8; Higress reference §6) through a real gateway: what the client
receives (request-block runs before key-auth), and the consumer a blocked call is recorded
with. The plugin on its own is tested in tests/unit/plugins/test_request_block.py."""

from __future__ import annotations

import json
from typing import Any

import httpx

GATEWAY = """
storage: {{database: "sqlite:///./tollway.db"}}
providers:
  - {{id: mock, type: openai, baseUrl: "{mock}/v1", apiTokens: [sk-provider-1]}}
routes:
  - {{name: chat, path_prefix: /v1/, provider: mock}}
  - {{name: plain, path_prefix: /plain/, provider: mock}}
plugins:
  - name: request-block
    defaultConfig:
      block_urls: [password]
      block_bodies: [password]
      case_sensitive: false
      blocked_code: 404
      blocked_message: '{{"blocked": true, "hint": "no passwords"}}'
    matchRules:
      - ingress: [plain]
        config: {{blocked_message: "plain text refusal", blocked_code: 403}}
  - name: key-auth
    defaultConfig:
      keys: [authorization]
      consumers: [{{name: alice, credential: ck-alice}}]
"""


async def test_through_the_gateway_a_json_message_is_sent_as_it_stands_before_key_auth(
    gateway: Any, mock_llm: Any, mock_requests: Any
) -> None:
    gw = gateway(GATEWAY.format(mock=mock_llm.url))
    async with httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
        # No key at all: request-block (320) runs before key-auth (310).
        r = await http.get("/v1/models", params={"q": "my PASS%77ORD"})
        assert r.status_code == 404
        assert r.headers["content-type"] == "application/json"
        assert r.json() == {"blocked": True, "hint": "no passwords"}
        assert r.headers["x-tollway-reason"] == "request-block.blocked"
        assert r.headers["x-request-id"]
        body = {"model": "m", "messages": [{"role": "user", "content": "pass\u0077ord"}]}
        r = await http.post(
            "/v1/chat/completions", content=json.dumps(body), headers={"authorization": "Bearer ck-alice"}
        )
        assert r.status_code == 404 and r.json() == {"blocked": True, "hint": "no passwords"}
        r = await http.get("/plain/v1/models", params={"q": "password"})
        assert r.status_code == 403
        assert r.json()["error"]["message"] == "plain text refusal"
        assert r.json()["error"]["code"] == "request_blocked"
        r = await http.get("/v1/models", headers={"authorization": "Bearer ck-alice"})
        assert r.status_code == 200
    assert all(req["path"] == "/v1/models" for req in mock_requests())
    gw.wait_for_stdout(lambda lines: len(lines) >= 4)
    log = gw.access_log()
    assert [line["status"] for line in log] == [404, 404, 403, 200]
    assert [line["reason"] for line in log[:3]] == ["request-block.blocked"] * 3


async def test_a_blocked_request_with_a_valid_key_is_recorded_with_its_consumer(gateway: Any, mock_llm: Any) -> None:
    gw = gateway(GATEWAY.format(mock=mock_llm.url))
    async with httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
        r = await http.get("/v1/models", params={"q": "password"}, headers={"authorization": "Bearer ck-alice"})
        assert r.status_code == 404
    gw.wait_for_stdout(lambda lines: len(lines) >= 1)
    assert gw.access_log()[0]["consumer"] == "alice"
