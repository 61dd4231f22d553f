"""key-auth's Higress fields through a real gateway (SPEC §3; Higress reference §1): a
consumer with several ``credentials``, each of which authenticates it, and ``realm`` in
the ``WWW-Authenticate`` challenge, against the built-in mock provider."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.fake_provider import new_request_id, usage_record

GATEWAY = """
storage: {{database: "sqlite:///./keys.db"}}
providers: [{{id: built-in, type: mock}}]
routes: [{{name: v1, path_prefix: /v1/, provider: built-in}}]
plugins:
  - name: key-auth
    defaultConfig:
      keys: [authorization]
      realm: {realm}
      consumers:
        - {{name: alice, credentials: [ck-alice-laptop, ck-alice-ci]}}
        - {{name: bob, credential: ck-bob, credentials: [ck-bob-2]}}
"""
CHAT = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}


async def test_each_of_a_consumers_credentials_authenticates_it(gateway: Any) -> None:
    gw = gateway(GATEWAY.format(realm="tollway"))
    async with httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
        for key, consumer in [
            ("ck-alice-laptop", "alice"),
            ("ck-alice-ci", "alice"),
            ("ck-bob", "bob"),
            ("ck-bob-2", "bob"),
        ]:
            request_id = new_request_id()
            headers = {"authorization": f"Bearer {key}", "x-request-id": request_id}
            r = await http.post("/v1/chat/completions", json=CHAT, headers=headers)
            assert r.status_code == 200, (key, r.text)
            assert usage_record(gw, request_id)["consumer"] == consumer
        r = await http.post("/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer ck-alice"})
        assert r.status_code == 401


async def test_realm_names_the_challenge_of_every_refusal(gateway: Any) -> None:
    gw = gateway(GATEWAY.format(realm='"MSE Gateway"'))
    async with httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
        for headers in ({}, {"authorization": "Bearer nobody"}):
            r = await http.post("/v1/chat/completions", json=CHAT, headers=headers)
            assert r.status_code == 401
            assert r.headers["www-authenticate"] == 'Key realm="MSE Gateway"'
