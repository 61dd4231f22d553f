"""The OpenAI-compatible family (providers/openai_compatible.py): default roots, moved roots
and the auth header of each type's chat call, model listing and other endpoints. No sockets:
nothing here sends a request."""

from __future__ import annotations

import pytest

from tests.support.provider_support import headers, provider

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
