"""ai-cache: answers a request again from a stored answer, exactly or by a similar prompt
(``plugin.py``; docs/plugins/ai-cache.md)."""

from __future__ import annotations

from tollway.plugins.ai_cache.config import AiCacheConfig
from tollway.plugins.ai_cache.plugin import AiCache

__all__ = ["AiCache", "AiCacheConfig"]
