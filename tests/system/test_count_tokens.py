"""``POST /v1/messages/count_tokens`` (SPEC §9), with the Anthropic SDK as the client: routed
by its model like ``/v1/messages``; an Anthropic provider counts natively (the built-in
mock model server answers Anthropic's API here), any other provider gets the gateway's
own estimate, said to be one (``x-tollway-estimate: true``), with no provider called.
Either way the call is recorded and costs nothing."""

from __future__ import annotations

import anthropic
import httpx

from tests.conftest import GatewayFactory, Proc
from tests.support.fake_provider import new_request_id, usage_record

MESSAGES: list[anthropic.types.MessageParam] = [
    {"role": "user", "content": "Count the words of this question, please, all eleven of them."}
]
SYSTEM = "You answer briefly."


def _config(mock_url: str) -> str:
    return f"""
storage: {{database: "sqlite:///./tollway.db"}}
providers:
  - {{id: claude, type: claude, baseUrl: "{mock_url}", apiTokens: [sk-ant]}}
  - {{id: openai, type: openai, baseUrl: "{mock_url}/v1", apiTokens: [sk-openai]}}
routes:
  - name: v1
    path_prefix: /v1/
    providers: [openai]
    model_providers: {{"claude-*": claude}}
"""


def test_count_tokens_is_native_for_claude_and_estimated_for_others(gateway: GatewayFactory, mock_llm: Proc) -> None:
    gw = gateway(_config(mock_llm.url))
    ids = {"claude": new_request_id(), "gpt": new_request_id()}
    with anthropic.Anthropic(base_url=gw.url, api_key="client", max_retries=0, timeout=10) as sdk:
        native = sdk.messages.with_raw_response.count_tokens(
            model="claude-3-5-haiku-latest",
            system=SYSTEM,
            messages=MESSAGES,
            extra_headers={"x-request-id": ids["claude"]},
        )
        estimated = sdk.messages.with_raw_response.count_tokens(
            model="gpt-4o-mini", system=SYSTEM, messages=MESSAGES, extra_headers={"x-request-id": ids["gpt"]}
        )
    # The mock counts words (11 + 3 of the system prompt): what the provider says, as it said it.
    truth = httpx.post(
        mock_llm.url + "/v1/messages/count_tokens",
        json={"model": "claude-3-5-haiku-latest", "system": SYSTEM, "messages": MESSAGES},
        timeout=10,
    ).json()["input_tokens"]
    assert native.parse().input_tokens == truth
    assert "x-tollway-estimate" not in native.headers
    # The estimate: about four characters a token of the text the model would read.
    text_chars = len(SYSTEM) + len(str(MESSAGES[0]["content"]))
    assert estimated.parse().input_tokens == (text_chars + 3) // 4
    assert estimated.headers["x-tollway-estimate"] == "true"
    # Both priced (the built-in table prices these models): counting costs nothing, as
    # no provider bills it. The estimate called no provider: its record names none.
    called = {"claude": ("claude", "claude-3-5-haiku-latest"), "gpt": (None, "gpt-4o-mini")}
    for who, rid in ids.items():
        record = usage_record(gw, rid)
        assert (record["status"], record["api"], record["cost_usd"], record["output_tokens"]) == (
            200, "count_tokens", 0.0, 0
        )  # fmt: skip
        assert (record["provider"], record["model_upstream"]) == called[who]
