"""The response phase through a real ``tollway serve`` (SPEC §4, §5): every answer the
gateway gives, model listings included, passes the plugins' response hooks, so what
ai-statistics reads off a response reaches the usage record."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from openai import OpenAI

CONFIG = """
providers: [{id: mock, type: mock, modelMapping: {house-model: gpt-4o-mini}}]
routes: [{name: v1, path_prefix: /v1/, provider: mock}]
plugins:
  - name: key-auth
    defaultConfig: {keys: [authorization], consumers: [{name: alice, credential: k-alice}]}
  - name: ai-statistics
    defaultConfig:
      attributes:
        - {key: answer_type, value_source: response_header, value: content-type}
"""


def test_a_model_listing_is_answered_through_the_response_hooks(gateway: Callable[..., Any]) -> None:
    gw = gateway(CONFIG)
    client = OpenAI(base_url=f"{gw.url}/v1", api_key="k-alice")
    assert "house-model" in [m.id for m in client.models.list()]
    records = httpx.get(f"{gw.admin_url}/api/requests", params={"limit": 5}).json()["requests"]
    listing = next(r for r in records if r["status"] == 200 and r["consumer"] == "alice")
    assert listing["attributes"] == {"answer_type": "application/json"}
