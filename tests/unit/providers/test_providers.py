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
