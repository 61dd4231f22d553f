"""What media and moderation calls cost, against a fake of OpenAI's media APIs (SPEC §9,
§10): moderation is free whatever model it names, so a budget lets it pass."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import GatewayFactory, Proc
from tests.support.fake_provider import new_request_id, usage_record
from tests.support.media_provider import MediaProvider


def config(media: MediaProvider) -> str:
    return f"""
storage: {{database: "sqlite:///./tollway.db"}}
providers: [{{id: openai, type: openai, baseUrl: "{media.url}/v1", apiTokens: [sk-openai]}}]
routes: [{{name: v1, path_prefix: /v1/, provider: openai}}]
plugins:
  - name: key-auth
    defaultConfig:
      keys: [authorization]
      consumers:
        - {{name: alice, credential: key-alice, budget: {{usd: 5, period: day}}}}
        - {{name: frank, credential: key-frank}}
"""


@pytest.fixture(scope="module")
def media() -> Iterator[MediaProvider]:
    with MediaProvider() as fake:
        yield fake


@pytest.fixture
def gw(gateway: GatewayFactory, media: MediaProvider) -> Proc:
    return gateway(config(media))


def test_moderation_naming_a_model_passes_a_budget(gw: Proc, media: MediaProvider) -> None:
    rid = new_request_id()
    r = httpx.post(
        gw.url + "/v1/moderations",
        json={"model": "omni-moderation-latest", "input": "hi"},
        headers={"authorization": "Bearer key-alice", "x-request-id": rid},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert media.paths[-1] == "/v1/moderations"
    record = usage_record(gw, rid)
    want = ("moderations", "omni-moderation-latest", 200)
    assert (record["api"], record["model_requested"], record["status"]) == want
