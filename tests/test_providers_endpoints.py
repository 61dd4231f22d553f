"""Provider modules (providers/*): the exact URL, query and auth headers of each type's
chat call, stream and model listing, and which codec each speaks. No sockets: nothing
here sends a request."""

from __future__ import annotations

from typing import Any

import pytest

from tollway.config.schema import ProviderConfig
from tollway.protocols.registry import codec_for
from tollway.providers import UnsupportedProvider, build_provider
from tollway.providers.azure import Azure
from tollway.providers.base import Endpoint, Provider
from tollway.providers.claude import Claude
from tollway.providers.gemini import Gemini
from tollway.upstream import UpstreamRequest, UpstreamResponse


class NoTransport:
    """Endpoints are computed, never sent."""

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        raise AssertionError("no request may be sent")

    async def aclose(self) -> None:
        pass


def provider(type_: str, **fields: Any) -> Provider:
    fields.setdefault("apiTokens", ["sk-test"])
    return build_provider(ProviderConfig(id="p", type=type_, **fields), NoTransport(), NoTransport())


def headers(endpoint: Endpoint) -> dict[str, str]:
    return dict(endpoint.headers)


# ---- the OpenAI-compatible family ----------------------------------------------------

DEFAULT_ROOTS = {
    "openai": "https://api.openai.com/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "qwen": "https://dashscope.aliyuncs.com/compatible-mode/v1",
    "groq": "https://api.groq.com/openai/v1",
    "mistral": "https://api.mistral.ai/v1",
    "moonshot": "https://api.moonshot.cn/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "together": "https://api.together.xyz/v1",
    "ollama": "http://127.0.0.1:11434/v1",
    "vllm": "http://127.0.0.1:8000/v1",
}


@pytest.mark.parametrize(("type_", "root"), sorted(DEFAULT_ROOTS.items()))
def test_openai_family_default_roots(type_: str, root: str) -> None:
    p = provider(type_)
    assert p.protocol == "openai"
    for stream in (False, True):
        chat = p.chat_endpoint("some-model", stream, "sk-test")
        assert chat.url == f"{root}/chat/completions"
        assert headers(chat) == {"authorization": "Bearer sk-test"}
    models = p.models_endpoint("sk-test")
    assert models is not None and models.url == f"{root}/models"
    assert p.endpoint("/embeddings", "a=1", "sk-test").url == f"{root}/embeddings?a=1"


def test_openai_family_roots_can_be_moved() -> None:
    assert provider("openai", baseUrl="http://127.0.0.1:9000/v1/").chat_endpoint("m", False, "k").url == (
        "http://127.0.0.1:9000/v1/chat/completions"
    )
    custom = provider("deepseek", openaiCustomUrl="https://proxy.example/deepseek/v1/chat/completions")
    assert custom.chat_endpoint("m", True, "k").url == "https://proxy.example/deepseek/v1/chat/completions"
    assert provider("ollama", ollamaServerHost="gpu1", ollamaServerPort=8080).chat_endpoint("m", False, None).url == (
        "http://gpu1:8080/v1/chat/completions"
    )
    assert provider("vllm", vllmServerHost="gpu2:9000").chat_endpoint("m", False, None).url == (
        "http://gpu2:9000/v1/chat/completions"
    )


def test_no_token_means_no_auth_header() -> None:
    assert provider("openai", apiTokens=[]).chat_endpoint("m", False, None).headers == ()


# ---- azure ---------------------------------------------------------------------------


def test_azure_full_url_mode_uses_the_urls_deployment_and_version() -> None:
    p = provider(
        "azure",
        azureServiceUrl="https://res1.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-06-01",
    )
    assert isinstance(p, Azure) and p.protocol == "openai"
    for stream in (False, True):
        chat = p.chat_endpoint("whatever-the-model-is", stream, "az-key")
        assert (
            chat.url
            == "https://res1.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-06-01"
        )
        assert headers(chat) == {"api-key": "az-key"}
    assert p.endpoint("/embeddings", "", "az-key").url == (
        "https://res1.openai.azure.com/openai/deployments/gpt4o-prod/embeddings?api-version=2024-06-01"
    )


def test_azure_deployment_base_mode_and_the_default_version() -> None:
    p = provider("azure", azureServiceUrl="https://res1.openai.azure.com/openai/deployments/gpt4o-prod/")
    assert p.chat_endpoint("gpt-4o", True, "k").url == (
        "https://res1.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
    )


def test_azure_resource_mode_deploys_the_mapped_model() -> None:
    p = provider(
        "azure",
        azureServiceUrl="https://res1.openai.azure.com",
        apiVersion="2025-01-01-preview",
        modelMapping={"gpt-4o*": "prod-4o", "*": "fallback"},
    )
    model = p.map_model("gpt-4o-mini")
    assert model == "prod-4o"
    assert p.chat_endpoint(model, False, "k").url == (
        "https://res1.openai.azure.com/openai/deployments/prod-4o/chat/completions?api-version=2025-01-01-preview"
    )
    # A client's own api-version is replaced; its other parameters stay.
    assert p.endpoint("/chat/completions", "api-version=1999-01-01&x=1", "k", "prod-4o").url == (
        "https://res1.openai.azure.com/openai/deployments/prod-4o/chat/completions?x=1&api-version=2025-01-01-preview"
    )
    assert p.endpoint("/chat/completions", "", "k", "my dep").url.startswith(
        "https://res1.openai.azure.com/openai/deployments/my%20dep/"
    )
    with pytest.raises(ValueError, match="no deployment"):
        p.endpoint("/chat/completions", "", "k")


def test_azure_gateway_prefix_v1_api_and_listing() -> None:
    behind = provider("azure", azureServiceUrl="https://apim.example.com/aoai")
    assert behind.chat_endpoint("d1", False, "k").url == (
        "https://apim.example.com/aoai/openai/deployments/d1/chat/completions?api-version=2024-10-21"
    )
    v1 = provider("azure", azureServiceUrl="https://res1.openai.azure.com/openai/v1/")
    assert v1.chat_endpoint("gpt-4o", False, "k").url == "https://res1.openai.azure.com/openai/v1/chat/completions"
    assert behind.models_endpoint("k") is None  # deployments cannot be listed on the data plane
    assert (
        behind.endpoint("/models", "", "k").url == "https://apim.example.com/aoai/openai/models?api-version=2024-10-21"
    )


def test_azure_takes_base_url_and_refuses_no_url() -> None:
    assert provider("azure", baseUrl="https://res2.openai.azure.com").chat_endpoint("d", False, "k").url == (
        "https://res2.openai.azure.com/openai/deployments/d/chat/completions?api-version=2024-10-21"
    )
    with pytest.raises(UnsupportedProvider, match="azureServiceUrl"):
        provider("azure")
    with pytest.raises(UnsupportedProvider, match="azureServiceUrl"):
        provider("azure", azureServiceUrl="res1.openai.azure.com")


# ---- claude --------------------------------------------------------------------------


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


# ---- gemini --------------------------------------------------------------------------


def test_gemini_chat_stream_and_models() -> None:
    p = provider("gemini", apiTokens=["AIza-test"])
    assert isinstance(p, Gemini) and p.protocol == "gemini"
    chat = p.chat_endpoint("gemini-2.5-flash", False, "AIza-test")
    assert chat.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    assert headers(chat) == {"x-goog-api-key": "AIza-test"}
    stream = p.chat_endpoint("gemini-2.5-flash", True, "AIza-test")
    assert stream.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert headers(stream) == {"x-goog-api-key": "AIza-test"}
    models = p.models_endpoint("AIza-test")
    assert models is not None
    assert models.url == "https://generativelanguage.googleapis.com/v1beta/models?pageSize=1000"
    assert headers(models) == {"x-goog-api-key": "AIza-test"}
    assert "key=" not in stream.url  # the key never goes in the URL


def test_gemini_version_and_roots() -> None:
    assert provider("gemini", apiVersion="v1").chat_endpoint("gemini-2.5-pro", False, "k").url == (
        "https://generativelanguage.googleapis.com/v1/models/gemini-2.5-pro:generateContent"
    )
    assert provider("gemini", baseUrl="http://127.0.0.1:9000/v1beta").chat_endpoint("g", True, "k").url == (
        "http://127.0.0.1:9000/v1beta/models/g:streamGenerateContent?alt=sse"
    )
    assert provider("gemini", baseUrl="http://127.0.0.1:9000").chat_endpoint("models/g", False, "k").url == (
        "http://127.0.0.1:9000/v1beta/models/g:generateContent"
    )


# ---- every provider names a codec ----------------------------------------------------


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
