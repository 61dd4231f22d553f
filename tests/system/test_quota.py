"""ai-quota through a real `tollway serve` (SPEC §3, §4): the management endpoints on the
data plane, the 403 when a quota runs out, settlement to the real usage, outages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import Proc
from tests.support.redis_support import RedisServer, redis_prefix, redis_server, redis_url  # noqa: F401

GatewayFactory = Callable[..., Proc]
KEYS = {"admin": "key-admin", "alice": "key-alice"}


def config(mock_url: str, state: str) -> str:
    return f"""
storage: {{state: "{state}"}}
providers: [{{id: mock, type: openai, baseUrl: "{mock_url}/v1", apiTokens: [sk-test]}}]
routes:
  - {{name: chat, path_prefix: /v1/, provider: mock}}
  - {{name: quota-admin, path_prefix: /quota}}
plugins:
  - name: key-auth
    defaultConfig:
      keys: [authorization]
      consumers: [{{name: admin, credential: key-admin}}, {{name: alice, credential: key-alice}}]
  - name: ai-quota
    defaultConfig: {{admin_consumer: admin}}
"""


def auth(who: str) -> dict[str, str]:
    return {"authorization": f"Bearer {KEYS[who]}"}


def chat(url: str, who: str = "alice") -> httpx.Response:
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 50}
    return httpx.post(url + "/v1/chat/completions", json=body, headers=auth(who))


def get_quota(url: str, who: str = "alice") -> int:
    r = httpx.get(url + "/quota", params={"consumer": who}, headers=auth("admin"))
    assert r.status_code == 200, r.text
    assert r.json()["consumer"] == who
    value: int = r.json()["quota"]
    return value


def refresh(url: str, quota: int, who: str = "alice") -> httpx.Response:
    return httpx.post(url + "/quota/refresh", data={"consumer": who, "quota": str(quota)}, headers=auth("admin"))


def settled(url: str, expected: int) -> None:
    """Settlement runs in the done hook, just after the client has the answer."""
    deadline = time.monotonic() + 5
    while get_quota(url) != expected:
        assert time.monotonic() < deadline, f"quota stayed at {get_quota(url)}, expected {expected}"
        time.sleep(0.05)


@pytest.mark.parametrize("state", ["memory", "redis"])
def test_quota_lifecycle_through_the_management_endpoints(
    gateway: GatewayFactory, mock_llm: Proc, request: pytest.FixtureRequest, state: str
) -> None:
    state_url = request.getfixturevalue("redis_url") if state == "redis" else "memory"
    gw = gateway(config(mock_llm.url, state_url))
    refused = chat(gw.url)
    assert refused.status_code == 403
    assert refused.headers["x-tollway-reason"] == "ai-quota.exhausted"
    assert refused.json()["error"]["code"] == "insufficient_quota"

    r = refresh(gw.url, 1000)
    assert (r.status_code, r.text) == (200, "refresh quota successful")
    ok = chat(gw.url)
    assert ok.status_code == 200
    usage = ok.json()["usage"]
    settled(gw.url, 1000 - usage["prompt_tokens"] - usage["completion_tokens"])

    r = httpx.post(gw.url + "/quota/delta", data={"consumer": "alice", "value": "-5000"}, headers=auth("admin"))
    assert (r.status_code, r.text) == (200, "delta quota successful")
    assert chat(gw.url).status_code == 403

    not_admin = httpx.get(gw.url + "/quota", params={"consumer": "alice"}, headers=auth("alice"))
    assert not_admin.status_code == 403
    assert not_admin.headers["x-tollway-reason"] == "ai-quota.forbidden"
    bad = httpx.post(gw.url + "/quota/refresh", data={"consumer": "alice", "quota": "many"}, headers=auth("admin"))
    assert bad.status_code == 400


async def test_concurrent_calls_are_settled_to_exactly_what_they_spent(
    gateway: GatewayFactory,
    mock_llm: Proc,
    redis_url: str,  # noqa: F811
) -> None:
    gw = gateway(config(mock_llm.url, redis_url))
    refresh(gw.url, 300)
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 30}
    async with httpx.AsyncClient(timeout=30) as client:
        responses = await asyncio.gather(
            *(client.post(gw.url + "/v1/chat/completions", json=body, headers=auth("alice")) for _ in range(30))
        )
    ok = [r for r in responses if r.status_code == 200]
    assert ok and all(r.status_code in (200, 403) for r in responses)
    spent = sum(r.json()["usage"]["total_tokens"] for r in ok)
    settled(gw.url, 300 - spent)


def test_an_unreachable_store_refuses_calls_with_503_by_default_and_recovers(
    gateway: GatewayFactory,
    mock_llm: Proc,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    gw = gateway(config(mock_llm.url, redis_server.url))
    assert refresh(gw.url, 1000).status_code == 200
    assert chat(gw.url).status_code == 200
    redis_server.stop()
    down = [chat(gw.url) for _ in range(5)]
    assert [r.status_code for r in down] == [503] * 5
    assert down[0].headers["x-tollway-reason"] == "ai-quota.state_unavailable"
    admin = httpx.get(gw.url + "/quota", params={"consumer": "alice"}, headers=auth("admin"))
    assert admin.status_code == 503
    assert len([line for line in gw.stderr_lines if "state store" in line and "unavailable" in line]) == 1
    redis_server.start()  # empty: the quota is gone with the old server
    assert chat(gw.url).status_code == 403
    assert refresh(gw.url, 1000).status_code == 200
    assert chat(gw.url).status_code == 200
