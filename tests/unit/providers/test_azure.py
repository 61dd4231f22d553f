"""Azure OpenAI (providers/azure.py): full-URL, deployment-base and resource modes, API
versions, gateways in front, and the ``api-key`` header. No sockets: nothing here sends a
request."""

from __future__ import annotations

import pytest

from tests.support.provider_support import headers, provider
from tollway.errors import BadRequest
from tollway.providers import UnsupportedProvider
from tollway.providers.azure import Azure


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
    with pytest.raises(BadRequest, match="names no deployment"):
        p.endpoint("/chat/completions", "", "k")
    # The resource's own APIs are not a deployment's: files, batches, the Responses API.
    for api in ("/files", "/batches/b1", "/responses"):
        assert p.endpoint(api, "", "k").url == (
            f"https://res1.openai.azure.com/openai{api}?api-version=2025-01-01-preview"
        )


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
