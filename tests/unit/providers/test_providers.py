"""Providers by type (providers/__init__.py, ``build_provider``): each speaks a known codec.
No sockets: nothing here sends a request."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.support.provider_support import provider
from tollway.protocols.registry import codec_for


@pytest.mark.parametrize(
    ("type_", "fields", "protocol"),
    [
        ("openai", {}, "openai"),
        ("azure", {"azureServiceUrl": "https://r.openai.azure.com"}, "openai"),
        ("claude", {}, "anthropic"),
        ("gemini", {}, "gemini"),
        ("mock", {}, "openai"),
        ("qwen", {}, "openai"),
    ],
)
def test_each_provider_speaks_a_known_codec(type_: str, fields: dict[str, Any], protocol: str) -> None:
    p = provider(type_, **fields)
    assert p.protocol == protocol
    assert codec_for(p.protocol).name == protocol


def test_a_query_in_the_base_url_goes_after_the_api_path() -> None:
    p = provider("openai", baseUrl="http://llm.internal/v1?key=q1")
    assert p.endpoint("/chat/completions", "", "k").url == "http://llm.internal/v1/chat/completions?key=q1"
    assert p.endpoint("/models", "a=1", "k").url == "http://llm.internal/v1/models?key=q1&a=1"


def test_a_base_urls_user_info_is_basic_auth_beside_a_key_in_another_header() -> None:
    p = provider("claude", baseUrl="https://proxy-user:s3cret-pass@llm.internal", apiTokens=["sk-ant-key-12345678"])
    call = p.endpoint("/messages", "", "sk-ant-key-12345678")
    assert call.url == "https://llm.internal/v1/messages"
    basic = "Basic " + base64.b64encode(b"proxy-user:s3cret-pass").decode()
    assert dict(call.headers) == {"x-api-key": "sk-ant-key-12345678", "authorization": basic,
                                  "anthropic-version": "2023-06-01"}  # fmt: skip
    # A provider answer that shows the password, or the header it went in, shows neither.
    shown = p.secrets.text(f"denied: {basic} (password s3cret-pass)")
    assert "s3cret-pass" not in shown and basic.split()[1] not in shown


def test_a_key_in_authorization_wins_over_the_base_urls_user_info() -> None:
    p = provider("openai", baseUrl="http://u:p@llm.internal/v1")
    assert p.endpoint("/chat/completions", "", "sk-1").headers == (("authorization", "Bearer sk-1"),)
    assert p.base_url == "http://llm.internal/v1"
    keyed = provider("openai", baseUrl="http://u:p@llm.internal/v1", apiTokens=["sk-1"])
    assert not keyed.basic_auth  # what start-up says: the key wins, no Basic auth goes
    assert provider("ollama", baseUrl="http://u:p@llm.internal/v1", apiTokens=[]).basic_auth
