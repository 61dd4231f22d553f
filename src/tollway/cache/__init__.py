"""Where ai-cache keeps answers, for the life of the process (a reload keeps them).

    AnswerStore          exact entries: a key (the hash of a request) → a stored answer
    ├── MemoryAnswers    this process: bounded by entries and bytes, least recently used out
    └── RedisAnswers     ``storage.state``'s Redis: shared by every worker and replica
    SemanticIndex        vectors of stored prompts, kept in the database and indexed in
                         memory in every process (``vectors.py``; numpy is loaded only
                         where a semantic cache is configured)
    CacheStores          the stores of one process, by namespace (ai-cache's ``cacheKeyPrefix``)

    StoredAnswer         one entry: the answer's bytes as its client got them, with the
                         call's usage (``entry.py``)

Nothing here knows requests or protocols: keys and vectors are chosen by the plugin
(``tollway.plugins.ai_cache``), and an answer's bytes are opaque to the stores.
"""

from __future__ import annotations

from tollway.cache.answers import AnswerStore, MemoryAnswers, RedisAnswers
from tollway.cache.entry import StoredAnswer, UnusableAnswer
from tollway.cache.stores import CacheStores

__all__ = ["AnswerStore", "CacheStores", "MemoryAnswers", "RedisAnswers", "StoredAnswer", "UnusableAnswer"]
