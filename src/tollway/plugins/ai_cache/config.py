"""ai-cache's config: Higress's fields and Tollway's additions (docs/plugins/ai-cache.md).

Higress's ``cache`` block may carry ``cacheTTL`` and ``cacheKeyPrefix`` (newer Higress
puts them there): they count as if given at the top, which wins when both are. Its
connection fields, the ``vector`` and ``embedding`` blocks (external vector databases and
embedding services), and the answer-extraction paths and templates are accepted so a
Higress config loads, and warned about: entries live in ``storage.state`` and the
database, the semantic cache is configured with ``semantic``, and a hit is the whole
stored answer in the client's own shape.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from tollway.plugin import PluginConfig
from tollway.plugins.ai_cache.key import KeyStrategy

Scope = Literal["route", "group", "consumer"]

# Higress fields accepted and not acted on, each with why (``ignored``).
_HIGRESS_ONLY = {
    "vector": "an external vector database: Tollway keeps vectors in its database (use `semantic`)",
    "embedding": "an external embedding service: Tollway embeds through a provider (use `semantic`)",
    "cacheKeyFrom": "Tollway keys on the request (cacheKeyStrategy)",
    "cacheValueFrom": "a hit is the whole stored answer, in the client's own shape",
    "cacheStreamValueFrom": "a hit is the whole stored answer, in the client's own shape",
    "cacheToolCallsFrom": "a hit is the whole stored answer, in the client's own shape",
    "responseTemplate": "a hit is the whole stored answer, in the client's own shape",
    "streamResponseTemplate": "a hit is the whole stored answer, in the client's own shape",
}
_CACHE_CONNECTION = "entries live in storage.state (Redis there is shared by every replica)"


class CacheBlock(PluginConfig):
    """Higress's ``cache``: where Redis is (ignored here) and the entries' TTL and prefix."""

    type: Literal["redis"] = "redis"
    serviceName: str | None = None
    serviceHost: str | None = None
    servicePort: int | None = None
    username: str | None = None
    password: str | None = None
    timeout: int | None = None
    database: int | None = None
    cacheTTL: int | None = Field(None, ge=0)
    cacheKeyPrefix: str | None = None


class SemanticConfig(PluginConfig):
    """The semantic cache: prompts embedded through ``provider`` (an OpenAI-style
    provider's ``/embeddings``) with ``model``; a stored prompt at least ``threshold``
    similar (cosine) is a hit."""

    provider: str = Field(min_length=1)
    model: str = Field(min_length=1)
    threshold: float = Field(0.92, gt=0, le=1)
    # Vectors each process holds in memory per cacheKeyPrefix (the oldest go first).
    max_entries: int = Field(100_000, ge=1)
    # How often at most a process reads the entries other replicas stored.
    sync_s: float = Field(1.0, ge=0)


class AiCacheConfig(PluginConfig):
    cacheKeyStrategy: KeyStrategy = "request"
    cacheKeyPrefix: str = "higress-ai-cache:"
    cacheTTL: int = Field(0, ge=0)
    enableSemanticCache: bool = True
    scope: Scope = "route"
    # Bounds of the in-memory store (storage.state: memory), per cacheKeyPrefix.
    max_entries: int = Field(10_000, ge=1)
    max_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    semantic: SemanticConfig | None = None
    cache: CacheBlock | None = None
    vector: dict[str, Any] | None = None
    embedding: dict[str, Any] | None = None
    cacheKeyFrom: str | None = None
    cacheValueFrom: str | None = None
    cacheStreamValueFrom: str | None = None
    cacheToolCallsFrom: str | None = None
    responseTemplate: str | None = None
    streamResponseTemplate: str | None = None

    @property
    def ttl_s(self) -> int:
        if "cacheTTL" not in self.model_fields_set and self.cache is not None and self.cache.cacheTTL is not None:
            return self.cache.cacheTTL
        return self.cacheTTL

    @property
    def key_prefix(self) -> str:
        if "cacheKeyPrefix" not in self.model_fields_set and self.cache is not None and self.cache.cacheKeyPrefix:
            return self.cache.cacheKeyPrefix
        return self.cacheKeyPrefix

    def ignored(self) -> list[str]:
        out = [f"{name}: ignored; {why}" for name, why in _HIGRESS_ONLY.items() if getattr(self, name) is not None]
        if self.cache is not None:
            given = self.cache.model_fields_set - {"cacheTTL", "cacheKeyPrefix"}
            out.extend(f"cache.{name}: ignored; {_CACHE_CONNECTION}" for name in sorted(given))
        if self.semantic is not None and not self.enableSemanticCache:
            out.append("semantic: ignored; enableSemanticCache is false")
        return out


__all__ = ["AiCacheConfig", "CacheBlock", "SemanticConfig"]
