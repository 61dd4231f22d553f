"""Exact cache entries (cache/answers.py): in memory, bounded and least recently used out,
and in Redis, shared; both forget an entry after its TTL."""

from __future__ import annotations

import pytest

from tollway.cache import MemoryAnswers, RedisAnswers, StoredAnswer, UnusableAnswer
from tollway.cache.entry import ENTRY_OVERHEAD
from tollway.state.redis import RedisStateStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def entry(payload: bytes) -> StoredAnswer:
    return StoredAnswer("chat", False, payload, (3, 4, 0, 0, 0, 0), "m")


async def payload_of(store: MemoryAnswers | RedisAnswers, key: str) -> bytes | None:
    found = await store.get(key)
    return found.payload if found is not None else None


async def test_the_least_recently_used_entry_goes_first_when_there_are_too_many() -> None:
    store = MemoryAnswers(max_entries=2, max_bytes=1 << 20)
    await store.put("a", entry(b"1"), 0)
    await store.put("b", entry(b"2"), 0)
    assert await payload_of(store, "a") == b"1"  # a is now the most recently used
    await store.put("c", entry(b"3"), 0)
    assert (await payload_of(store, "a"), await payload_of(store, "b"), await payload_of(store, "c")) == (
        b"1",
        None,
        b"3",
    )
    assert len(store) == 2


async def test_the_byte_bound_counts_keys_and_entries_and_refuses_what_cannot_fit() -> None:
    each = 2 + 8 + ENTRY_OVERHEAD  # the key, the payload, the entry's other fields
    store = MemoryAnswers(max_entries=100, max_bytes=2 * each)
    await store.put("k1", entry(b"x" * 8), 0)
    await store.put("k2", entry(b"y" * 8), 0)  # both fit, exactly
    assert store.size_bytes == 2 * each
    await store.put("k3", entry(b"z" * 8), 0)  # k1 goes
    assert await store.get("k1") is None and await payload_of(store, "k3") == b"z" * 8
    await store.put("big", entry(b"w" * 2 * each), 0)  # larger than the whole bound: not kept, nothing evicted
    assert await store.get("big") is None and await payload_of(store, "k2") == b"y" * 8
    assert store.size_bytes == 2 * each


async def test_an_entry_is_forgotten_after_its_ttl_and_never_without_one() -> None:
    clock = Clock()
    store = MemoryAnswers(max_entries=10, max_bytes=1 << 20, clock=clock)
    await store.put("short", entry(b"1"), 60)
    await store.put("forever", entry(b"2"), 0)
    clock.now += 59
    assert await payload_of(store, "short") == b"1"
    clock.now += 2
    assert await store.get("short") is None and await payload_of(store, "forever") == b"2"
    assert len(store) == 1
    # Stored again without a TTL, an entry that had one keeps no expiry of the old one.
    await store.put("again", entry(b"3"), 60)
    await store.put("again", entry(b"4"), 0)
    clock.now += 1000
    assert await payload_of(store, "again") == b"4"


async def test_resizing_drops_what_the_new_bounds_cannot_hold() -> None:
    store = MemoryAnswers(max_entries=3, max_bytes=1 << 20)
    for key in "abc":
        await store.put(key, entry(b"v"), 0)
    store.resize(1, 1 << 20)
    assert [await payload_of(store, k) for k in "abc"] == [None, None, b"v"]


async def test_redis_entries_are_shared_and_expire(redis_url: str) -> None:
    one, two = RedisStateStore.from_url(redis_url), RedisStateStore.from_url(redis_url)
    try:
        stored = StoredAnswer("messages", True, b"\x00answer\xff", (1, 2, 3, 4, 5, 1), "claude", estimated=True)
        await RedisAnswers(one).put("k", stored, 60)
        assert await RedisAnswers(two).get("k") == stored
        assert 0 < await two.client.pttl(two.key_prefix + "k") <= 60_000
        await RedisAnswers(one).put("forever", entry(b"x"), 0)
        assert await two.client.pttl(two.key_prefix + "forever") == -1
        assert await RedisAnswers(two).get("missing") is None
        await two.set_bytes("foreign", b"not an entry", 0)
        with pytest.raises(UnusableAnswer):
            await RedisAnswers(one).get("foreign")
    finally:
        await one.aclose()
        await two.aclose()
