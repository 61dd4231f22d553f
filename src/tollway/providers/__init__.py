"""Providers by Higress ``type`` name."""

from __future__ import annotations

from tollway.config.schema import ProviderConfig
from tollway.providers.azure import Azure
from tollway.providers.base import Provider, UnsupportedProvider
from tollway.providers.claude import Claude
from tollway.providers.gemini import Gemini
from tollway.providers.openai_compatible import DEFAULT_BASE_URLS, Ollama, OpenAICompatible, Vllm
from tollway.upstream import Transport


def build_provider(config: ProviderConfig, transport: Transport, mock_transport: Transport) -> Provider:
    if config.type == "mock":
        # Without a baseUrl the built-in mock model answers in-process.
        if config.baseUrl or config.openaiCustomUrl:
            return OpenAICompatible(config, transport)
        return Provider(config, mock_transport, base_url="http://mock.tollway.internal/v1")
    if config.type == "azure":
        return Azure(config, transport)
    if config.type == "claude":
        return Claude(config, transport)
    if config.type == "gemini":
        return Gemini(config, transport)
    if config.type == "ollama":
        return Ollama(config, transport)
    if config.type == "vllm":
        return Vllm(config, transport)
    if config.type in DEFAULT_BASE_URLS:
        return OpenAICompatible(config, transport)
    raise UnsupportedProvider(f"provider type {config.type!r} is not supported")


__all__ = ["Provider", "UnsupportedProvider", "build_provider"]
