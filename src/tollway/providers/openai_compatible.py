"""The OpenAI-compatible family: the same wire protocol at different default roots."""

from __future__ import annotations

from tollway.config.schema import ProviderConfig
from tollway.providers.base import Provider
from tollway.upstream import Transport

DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "groq": "https://api.groq.com/openai/v1",
    "mistral": "https://api.mistral.ai/v1",
    "moonshot": "https://api.moonshot.cn/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "together": "https://api.together.xyz/v1",
    "qwen": "https://dashscope.aliyuncs.com/compatible-mode/v1",
}


class OpenAICompatible(Provider):
    def __init__(self, config: ProviderConfig, transport: Transport) -> None:
        self.default_base_url = DEFAULT_BASE_URLS.get(config.type, DEFAULT_BASE_URLS["openai"])
        super().__init__(config, transport)


class Ollama(Provider):
    """Ollama's OpenAI-compatible endpoint; it takes no key."""

    def __init__(self, config: ProviderConfig, transport: Transport) -> None:
        host = config.ollamaServerHost or "127.0.0.1"
        port = config.ollamaServerPort or 11434
        self.default_base_url = f"http://{host}:{port}/v1"
        super().__init__(config, transport)


class Vllm(Provider):
    def __init__(self, config: ProviderConfig, transport: Transport) -> None:
        if config.vllmCustomUrl:
            self.default_base_url = config.vllmCustomUrl
        else:
            self.default_base_url = f"http://{config.vllmServerHost or '127.0.0.1:8000'}/v1"
        super().__init__(config, transport)
