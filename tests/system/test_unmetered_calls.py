"""Calls whose tokens no settlement can see, refused to a consumer whose tokens are
counted (ai-token-ratelimit, ai-quota; budgets refuse them too, test_budgets.py).

A background Responses call is answered ``queued`` with no usage, and a minted realtime
key spends with the provider directly: held at an estimate and settled to it, either
would let a consumer held to a few hundred tokens spend without bound. Through a real
`tollway serve` and a fake provider that records every call it gets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import Proc
from tests.support.responses_provider import (
    MODEL,
    ResponsesProvider,
)

GatewayFactory = Callable[..., Proc]

_TOKEN_LIMIT = """
  - name: ai-token-ratelimit
    defaultConfig:
      rule_name: tokens
      limit_by_per_consumer: ""
      limit_keys: [{key: alice, token_per_minute: 100000}]
"""
_QUOTA = """
  - name: ai-quota
    defaultConfig: {admin_consumer: admin}
"""

# (path, body) of each kind of call whose tokens are spent out of the gateway's sight.
_UNMETERED: dict[str, tuple[str, dict[str, Any]]] = {
    "background": ("/v1/responses", {"model": MODEL, "input": "hi", "max_output_tokens": 20, "background": True}),
    "client secret": ("/v1/realtime/client_secrets", {"session": {"type": "realtime", "model": "gpt-realtime"}}),
    "realtime session": ("/v1/realtime/sessions", {"model": "gpt-realtime"}),
    "transcription session": (
        "/v1/realtime/transcription_sessions",
        {"input_audio_transcription": {"model": "gpt-4o-transcribe"}},
    ),
}


def _config(provider: ResponsesProvider, plugin: str) -> str:
    return f"""
providers: [{{id: openai, type: openai, baseUrl: "{provider.url}/v1", apiTokens: [sk-openai]}}]
routes:
  - {{name: v1, path_prefix: /v1/, provider: openai}}
  - {{name: quota-admin, path_prefix: /quota}}
plugins:
  - name: key-auth
    defaultConfig:
      keys: [authorization]
      consumers:
        - {{name: admin, credential: key-admin}}
        - {{name: alice, credential: key-alice}}
        - {{name: bob, credential: key-bob}}
{plugin}"""


def _post(url: str, path: str, body: dict[str, Any], who: str = "alice") -> httpx.Response:
    return httpx.post(url + path, json=body, headers={"authorization": f"Bearer key-{who}"}, timeout=30)


@pytest.mark.parametrize("kind", sorted(_UNMETERED))
@pytest.mark.parametrize(
    ("plugin", "config"), [("ai-token-ratelimit", _TOKEN_LIMIT), ("ai-quota", _QUOTA)], ids=["token-limit", "quota"]
)
def test_a_call_spending_out_of_sight_is_refused_to_a_consumer_whose_tokens_are_counted(
    gateway: GatewayFactory, fresh_responses_provider: ResponsesProvider, plugin: str, config: str, kind: str
) -> None:
    gw = gateway(_config(fresh_responses_provider, config))
    if plugin == "ai-quota":
        given = httpx.post(
            gw.url + "/quota/refresh",
            data={"consumer": "alice", "quota": "100000"},
            headers={"authorization": "Bearer key-admin"},
        )
        assert given.status_code == 200, given.text
    path, body = _UNMETERED[kind]
    refused = _post(gw.url, path, body)
    assert refused.status_code == 403, refused.text
    assert refused.headers["x-tollway-reason"] == f"{plugin}.unmetered"
    error = refused.json()["error"]
    assert error["code"] == "permission_denied" and plugin in error["message"]
    assert ("background" if kind == "background" else "realtime key") in error["message"]
    assert fresh_responses_provider.paths == [], "a refused call reached the provider"
    # The same consumer's calls that report their own tokens are held as ever.
    fine = _post(gw.url, "/v1/responses", {"model": MODEL, "input": "hi", "max_output_tokens": 20})
    assert fine.status_code == 200, fine.text
    assert fresh_responses_provider.paths == ["POST /v1/responses"]


def test_a_consumer_no_token_limit_holds_may_spend_out_of_sight(
    gateway: GatewayFactory, fresh_responses_provider: ResponsesProvider
) -> None:
    # The token limit names alice alone: bob's calls are not counted, so nothing of his
    # is refused for being uncountable.
    gw = gateway(_config(fresh_responses_provider, _TOKEN_LIMIT))
    for path, body in _UNMETERED.values():
        assert _post(gw.url, path, body, who="bob").status_code == 200
    assert len(fresh_responses_provider.paths) == len(_UNMETERED)
