"""key-auth's Higress fields through a real gateway (SPEC §3; Higress reference §1): a
consumer with several ``credentials``, each of which authenticates it, and ``realm`` in
the ``WWW-Authenticate`` challenge, against the built-in mock provider."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.fake_provider import FakeProvider, new_request_id, usage_record

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


async def test_a_model_refused_to_a_consumer_carries_the_challenge_too(gateway: Any) -> None:
    # SPEC §3: every key-auth 401 and 403 carries WWW-Authenticate.
    config = GATEWAY.format(realm="tollway").replace(
        "credential: ck-bob,", 'credential: ck-bob, allow_models: ["gpt-4o*"],'
    )
    gw = gateway(config)
    async with httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
        r = await http.post("/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer ck-bob"})
    assert r.status_code == 403
    assert r.headers["x-tollway-reason"] == "key-auth.model_not_allowed"
    assert r.headers["www-authenticate"] == 'Key realm="tollway"'


async def test_a_later_plugin_keys_on_the_consumer_key_auth_named(gateway: Any) -> None:
    # Higress's way to limit per consumer: key-rate-limit on the X-Mse-Consumer header
    # key-auth sets (SPEC §3: it travels on to every later plugin). A client's own
    # X-Mse-Consumer is no one's: it is removed before key-auth runs.
    config = (
        GATEWAY.format(realm="tollway")
        + """
  - name: key-rate-limit
    defaultConfig:
      limit_by_header: x-mse-consumer
      limit_keys: [{key: alice, query_per_minute: 2}]
"""
    )
    gw = gateway(config)
    async with httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
        alice = {"authorization": "Bearer ck-alice-ci"}
        bob_as_alice = {"authorization": "Bearer ck-bob", "x-mse-consumer": "alice"}
        statuses = [(await http.post("/v1/chat/completions", json=CHAT, headers=alice)).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        bob = [(await http.post("/v1/chat/completions", json=CHAT, headers=bob_as_alice)).status_code for _ in range(3)]
        assert bob == [200, 200, 200]


async def test_a_key_shown_where_none_is_asked_for_never_reaches_the_provider(gateway: Any) -> None:
    # SPEC §4: whatever key-auth reads is removed from the upstream request, also on a
    # route that does not require a key, and also when the key names nobody (a typo) or
    # the request carries two.
    with FakeProvider() as fake:
        gw = gateway(f"""
storage: {{database: "sqlite:///./keys.db"}}
providers: [{{id: up, type: openai, baseUrl: "{fake.url}/v1", apiTokens: [sk-org]}}]
routes:
  - {{name: open, path_prefix: /v1/, provider: up}}
  - {{name: internal, path_prefix: /internal/v1/, provider: up}}
plugins:
  - name: key-auth
    defaultConfig:
      keys: [apikey]
      consumers: [{{name: c1, credential: k1-valid}}]
    matchRules: [{{ingress: [internal], config: {{allow: [c1]}}}}]
""")
        async with httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
            for headers, query in [
                ({"apikey": "k1-typo"}, ""),
                ({"apikey": "k1-valid"}, "?apikey=other&keep=1"),
                ({}, "?apikey=k1-valid&keep=1"),
                ({"apikey": "k1-valid"}, "?keep=1"),
            ]:
                fake.reset()
                r = await http.post("/v1/chat/completions" + query, json={**CHAT, "model": "gpt-4o"}, headers=headers)
                assert r.status_code == 200, r.text
                [seen] = fake.seen
                assert seen.header("apikey") is None, (headers, query)
                assert "apikey" not in seen.query and "k1-" not in seen.query
                assert seen.params == ({"keep": "1"} if query else {})
