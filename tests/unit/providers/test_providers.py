"""Providers by type (providers/__init__.py, ``build_provider``): each speaks a known codec.
No sockets: nothing here sends a request."""

from __future__ import annotations

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
