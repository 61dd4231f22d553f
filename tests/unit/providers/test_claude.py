"""Claude (providers/claude.py): the Messages URL, the ``x-api-key`` and
``anthropic-version`` headers, and moved roots. No sockets: nothing here sends a request."""

from __future__ import annotations

from tests.support.provider_support import headers, provider
from tollway.providers.claude import Claude


def test_claude_defaults() -> None:
    p = provider("claude", apiTokens=["sk-ant-test"])
    assert isinstance(p, Claude) and p.protocol == "anthropic"
    for stream in (False, True):
        chat = p.chat_endpoint("claude-sonnet-4-20250514", stream, "sk-ant-test")
        assert chat.url == "https://api.anthropic.com/v1/messages"
        assert headers(chat) == {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
        assert "authorization" not in headers(chat)
    models = p.models_endpoint("sk-ant-test")
    assert models is not None and models.url == "https://api.anthropic.com/v1/models"
    assert headers(models)["x-api-key"] == "sk-ant-test"


def test_claude_version_fields_and_roots() -> None:
    assert headers(provider("claude", claudeVersion="2024-01-01").chat_endpoint("m", False, "k"))[
        "anthropic-version"
    ] == ("2024-01-01")
    assert headers(provider("claude", apiVersion="2023-01-01").chat_endpoint("m", False, "k"))["anthropic-version"] == (
        "2023-01-01"
    )
    both = provider("claude", claudeVersion="2024-01-01", apiVersion="2023-01-01")
    assert headers(both.chat_endpoint("m", False, "k"))["anthropic-version"] == "2024-01-01"
    assert provider("claude", baseUrl="http://127.0.0.1:9000").chat_endpoint("m", False, "k").url == (
        "http://127.0.0.1:9000/v1/messages"
    )
    custom = provider("claude", openaiCustomUrl="https://proxy.example/anthropic/v1/messages")
    assert custom.chat_endpoint("m", False, "k").url == "https://proxy.example/anthropic/v1/messages"
    assert provider("claude", apiTokens=[]).chat_endpoint("m", False, None).headers == (
        ("anthropic-version", "2023-06-01"),
    )
