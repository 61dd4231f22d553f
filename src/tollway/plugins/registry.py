"""The built-in plugins, by their Higress names, and their config models (what the config
loader validates each plugin entry against)."""

from __future__ import annotations

from collections.abc import Mapping

from tollway.plugin import Plugin, PluginConfig
from tollway.plugins.ai_cache import AiCache
from tollway.plugins.ai_data_masking import AiDataMasking
from tollway.plugins.ai_prompt_decorator import AiPromptDecorator
from tollway.plugins.ai_prompt_template import AiPromptTemplate
from tollway.plugins.ai_statistics import AiStatistics
from tollway.plugins.chatgpt_proxy import ChatgptProxy
from tollway.plugins.key_auth import KeyAuth
from tollway.plugins.limits.ai_quota import AiQuota
from tollway.plugins.limits.ai_token_ratelimit import AiTokenRatelimit
from tollway.plugins.limits.cluster_key_rate_limit import ClusterKeyRateLimit
from tollway.plugins.limits.key_rate_limit import KeyRateLimit
from tollway.plugins.request_block import RequestBlock

REGISTRY: Mapping[str, type[Plugin[PluginConfig]]] = {
    cls.name: cls  # type: ignore[misc]
    for cls in (
        KeyAuth,
        RequestBlock,
        ChatgptProxy,
        KeyRateLimit,
        ClusterKeyRateLimit,
        AiTokenRatelimit,
        AiQuota,
        AiStatistics,
        AiDataMasking,
        AiCache,
        AiPromptTemplate,
        AiPromptDecorator,
    )
}

PLUGIN_MODELS: Mapping[str, type[PluginConfig]] = {name: cls.config_model for name, cls in REGISTRY.items()}
